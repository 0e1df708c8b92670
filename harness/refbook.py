"""The reference order book: what a recording says a symbol's book was, read by the harness's own rules.

This is the oracle the native book (``backpack/protocol/book.py``) is judged against, so it is written
apart from it on purpose and shares no code with it (no ``backpack`` import): plain dicts of Decimal
price -> Decimal size, int sequences, and the exchange's documented rules only. A bug in the native
book cannot hide here by being repeated.

* **Wire fields.** ``seq`` and ``levels`` read a depth frame's or a depth answer's fields; anything
  that is not a non-negative integer sequence or ``[[price, size >= 0], ...]`` finite decimal text is
  None, never an exception (recordings can be hostile).
* **Levels.** Sizes are absolute: a level of size zero deletes the price, any other sets it.
* **Timeline** (the scenario oracle and ``serve --recording``): every book a whole recording lets us
  know, given all its deltas and REST snapshots. A snapshot with ``U - 1 <= lastUpdateId < u`` seeds
  the book at a delta; a known book applies each delta with ``U <= seq + 1``, skips ``u <= seq``
  (a repeat), and a gap (``U > seq + 1``) or unreadable levels make it unknown until a snapshot
  bridges again; known sequences only grow.
* **StreamBook** (``bisect --invariants``): the same rules in event order, as a client would see them:
  a snapshot only counts once it has arrived, and bridges the deltas held back since the last gap.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

Side = dict[Decimal, Decimal]
Level = tuple[Decimal, Decimal]
Levels = tuple[Level, ...]

CHECKPOINT = 64
"""Points between stored copies of a timeline's book: a random query applies at most this many deltas."""


# -- wire fields -------------------------------------------------------------------------------------


class Spelled(Decimal):
    """A Decimal that keeps the text it was read from, so a rebuilt REST answer repeats the wire's text
    (``"0.00000001"``, not ``1E-8``); it equals and hashes as its value, so it keys a Side like any Decimal."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> Spelled:
        value = super().__new__(cls, text)
        value.text = text
        return value

    def __str__(self) -> str:
        return self.text


def seq(value: object) -> int | None:
    """A sequence the wire sends as an integer or (ccxt's samples) a string of ASCII digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        return int(value)
    return None


def timestamp(value: object) -> int | None:
    """An integer µs timestamp (``T``, ``timestamp``) or None; never a bool."""
    return value if type(value) is int else None


def levels(raw: object, spelled: bool = False) -> Levels | None:
    """``[[price, size], ...]`` of finite decimal text with ``size >= 0``, or None if any entry is not.

    ``spelled`` keeps each number's wire text (``Spelled``) for answers that must repeat it."""
    if not isinstance(raw, list):
        return None
    number = Spelled if spelled else Decimal
    out = []
    for entry in raw:
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
            return None
        try:
            price, size = number(entry[0]), number(entry[1])
        except (InvalidOperation, ValueError):
            return None
        if not (price.is_finite() and size.is_finite()) or size < 0:
            return None
        out.append((price, size))
    return tuple(out)


# -- levels ------------------------------------------------------------------------------------------


def apply(side: Side, updates: Iterable[Level]) -> None:
    """Absolute sizes: zero deletes the price, anything else sets it (a price keeps its first key)."""
    for price, size in updates:
        if size:
            side[price] = size
        else:
            side.pop(price, None)


def seeded(snapshot: Iterable[Level]) -> Side:
    """A side as a snapshot lists it (a zero size lists nothing)."""
    return {p: s for p, s in snapshot if s}


def top(side: Side, n: int | None, high: bool) -> list[Level]:
    """The best ``n`` levels (all for None): bids high first, asks low first."""
    ordered = sorted(side.items(), reverse=high)
    return ordered if n is None else ordered[:n]


def depth_body(bids: Side, asks: Side, sequence: int, ts: int | None, limit: int) -> dict[str, Any]:
    """A REST depth answer: both sides ascending, the best ``limit`` levels of each, numbers as ``str``."""
    bid_keys = sorted(bids)[-limit:] if limit > 0 else []
    ask_keys = sorted(asks)[:limit]
    out: dict[str, Any] = {
        "asks": [[str(p), str(asks[p])] for p in ask_keys],
        "bids": [[str(p), str(bids[p])] for p in bid_keys],
        "lastUpdateId": str(sequence),
    }
    if ts is not None:
        out["timestamp"] = ts
    return out


# -- the timeline ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delta:
    first: int  # U
    last: int  # u
    bids: Levels | None  # None: levels the reference cannot read
    asks: Levels | None
    timestamp: int | None  # T where the frame has it


class Seed(Protocol):
    """A recorded REST depth answer, as any reader of one keeps it."""

    @property
    def last_update_id(self) -> int: ...
    @property
    def bids(self) -> Levels: ...
    @property
    def asks(self) -> Levels: ...
    @property
    def timestamp(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class Point:
    sequence: int
    segment: int  # index in ``seeds`` of the seed this point grew from
    delta: int  # index in ``deltas`` of the delta that made it (-1: the seed itself)
    timestamp: int | None


class Timeline:
    """Every known state of one symbol's book (see the module docstring), rebuilt on demand.

    Copies of the book are kept at each seed and, with ``checkpoint``, every that many points; a forward
    cursor makes the common query (the next point) one delta's work. ``checkpoint=None`` keeps only the
    seeds' copies: one book per symbol in memory, a backward query replays from its seed."""

    def __init__(self, symbol: str, deltas: Sequence[Delta], seeds: Sequence[Seed],
                 checkpoint: int | None = CHECKPOINT) -> None:
        self.symbol = symbol
        self.deltas = list(deltas)
        self.seeds: list[Seed] = []  # the seeds used, in order
        self.points: list[Point] = []
        self.checkpoint = checkpoint
        self._checkpoints: dict[int, tuple[Side, Side]] = {}
        self._cursor: tuple[int, Side, Side] | None = None
        self._build(sorted(seeds, key=lambda s: s.last_update_id))
        self.sequences = [p.sequence for p in self.points]

    # -- building ---------------------------------------------------------------------------------

    def _build(self, seeds: list[Seed]) -> None:
        ids = [s.last_update_id for s in seeds]
        bids: Side = {}
        asks: Side = {}
        known: int | None = None  # the book's sequence while known
        i, n = 0, len(self.deltas)
        while i < n:
            d = self.deltas[i]
            if known is not None:
                if d.bids is None or d.asks is None:
                    known = None
                    i += 1
                    continue
                if d.last <= known:  # a repeat: changes nothing
                    i += 1
                    continue
                if d.first <= known + 1:
                    apply(bids, d.bids)
                    apply(asks, d.asks)
                    known = d.last
                    self._point(d.last, i, d.timestamp, bids, asks)
                    i += 1
                    continue
                known = None  # a gap: can a seed bridge into this very delta?
            floor = self.points[-1].sequence if self.points else -1
            if d.last <= floor or d.bids is None or d.asks is None:  # time does not go back
                i += 1
                continue
            k = bisect.bisect_left(ids, max(d.first - 1, floor + 1))
            if k < len(ids) and ids[k] < d.last:
                bids, asks = self._seed(seeds[k])
                known = seeds[k].last_update_id
                continue  # the same delta now bridges the seed
            i += 1
        if known is None:  # a snapshot at or after every delta still tells the book from there on
            tail = max((d.last for d in self.deltas), default=-1)
            floor = self.points[-1].sequence if self.points else -1
            later = [s for s in seeds if s.last_update_id >= tail and s.last_update_id > floor]
            if later:
                self._seed(later[0])

    def _seed(self, seed: Seed) -> tuple[Side, Side]:
        self.seeds.append(seed)
        bids, asks = seeded(seed.bids), seeded(seed.asks)
        self._point(seed.last_update_id, -1, seed.timestamp, bids, asks, start=True)
        return bids, asks

    def _point(self, sequence: int, delta: int, ts: int | None, bids: Side, asks: Side,
               start: bool = False) -> None:
        index = len(self.points)
        self.points.append(Point(sequence, len(self.seeds) - 1, delta, ts))
        if start or (self.checkpoint is not None and index % self.checkpoint == 0):
            self._checkpoints[index] = (dict(bids), dict(asks))

    # -- reading ----------------------------------------------------------------------------------

    @property
    def known(self) -> bool:
        return bool(self.points)

    def point_of(self, sequence: int) -> int | None:
        """Index of the point at exactly ``sequence``, None where the recording cannot tell the book."""
        k = bisect.bisect_left(self.sequences, sequence)
        return k if k < len(self.sequences) and self.sequences[k] == sequence else None

    def point_at_or_after(self, sequence: int | None) -> int | None:
        """Index of the first point at or after ``sequence`` (None: the first point at all)."""
        if not self.points:
            return None
        if sequence is None:
            return 0
        k = bisect.bisect_left(self.sequences, sequence)
        return k if k < len(self.points) else None

    def book(self, sequence: int) -> tuple[Side, Side] | None:
        """Both sides at ``sequence`` (read them before the next call: they may be the cursor's own)."""
        k = self.point_of(sequence)
        return None if k is None else self.state(k)

    def state(self, k: int) -> tuple[Side, Side]:
        """Both sides at point ``k`` (the same caveat as ``book``)."""
        point = self.points[k]
        cursor = self._cursor
        if cursor is not None and cursor[0] <= k and self.points[cursor[0]].segment == point.segment \
                and (self.checkpoint is None or k - cursor[0] <= self.checkpoint):
            start, bids, asks = cursor
        else:
            start = max(j for j in self._checkpoints if j <= k and self.points[j].segment == point.segment)
            bids, asks = (dict(side) for side in self._checkpoints[start])
        for j in range(start + 1, k + 1):
            d = self.deltas[self.points[j].delta]
            apply(bids, d.bids)  # type: ignore[arg-type]  # a point's delta has levels
            apply(asks, d.asks)  # type: ignore[arg-type]
        self._cursor = (k, bids, asks)
        return bids, asks

    def body(self, k: int, limit: int = 1000) -> dict[str, Any]:
        """The REST depth answer at point ``k`` (``depth_body``)."""
        bids, asks = self.state(k)
        point = self.points[k]
        return depth_body(bids, asks, point.sequence, point.timestamp, limit)


# -- the book in event order -------------------------------------------------------------------------


class StreamBook:
    """One symbol's book as the recording's events arrive: a snapshot (``lastUpdateId`` L) seeds it and
    bridges the deltas held since the last gap, then deltas apply with ``U <= seq + 1 <= u``."""

    HELD = 10_000
    """Deltas held back while not synchronised (the newest; an older one only a later snapshot passes)."""

    def __init__(self) -> None:
        self.bids: Side = {}
        self.asks: Side = {}
        self.seq: int | None = None  # None: not synchronised
        self.pending: list[Delta] = []

    def _apply(self, d: Delta) -> None:
        apply(self.bids, d.bids or ())
        apply(self.asks, d.asks or ())
        self.seq = d.last

    def delta(self, d: Delta) -> None:
        if self.seq is None:
            if self.pending and d.first != self.pending[-1].last + 1:
                self.pending = []  # not contiguous: only a later snapshot can bridge to it
            self.pending = [*self.pending[-(self.HELD - 1):], d]
        elif d.last <= self.seq:
            return  # already in the book
        elif d.first <= self.seq + 1:
            self._apply(d)
        else:
            self.seq, self.bids, self.asks, self.pending = None, {}, {}, [d]  # a gap

    def snapshot(self, last: int, bids: Iterable[Level], asks: Iterable[Level]) -> None:
        if self.seq is not None:
            return  # synchronised already: the chain of deltas is the truth
        pending = [d for d in self.pending if d.last > last]
        if pending and pending[0].first > last + 1:
            self.pending = pending  # older than the deltas held: useless
            return
        self.bids, self.asks = seeded(bids), seeded(asks)
        self.seq = last
        self.pending = []
        for d in pending:
            self._apply(d)

    def top(self, n: int | None) -> tuple[list[Level], list[Level]]:
        return top(self.bids, n, True), top(self.asks, n, False)


__all__ = ["CHECKPOINT", "Delta", "Level", "Levels", "Point", "Seed", "Side", "Spelled", "StreamBook",
           "Timeline", "apply", "depth_body", "levels", "seeded", "seq", "timestamp", "top"]
