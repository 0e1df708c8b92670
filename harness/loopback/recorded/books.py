"""The order book of one symbol at every sequence a recording lets us know it, for REST depth answers.

Why rebuild instead of serving the recorded snapshot: a client of ``serve --recording`` asks for its
snapshot when *it* has buffered enough deltas, not when the recorded client did, and the exchange's
rule is that the snapshot must bridge the deltas it has (``U <= lastUpdateId + 1 <= u``). Depth deltas
carry absolute sizes, so the book after any delta is known once some snapshot bridges into the stream:

* walk the symbol's depth deltas in replay order; while the book is unknown, a recorded snapshot with
  ``U - 1 <= lastUpdateId < u`` for the current delta seeds it (the smallest such ``lastUpdateId``);
* a known book applies each delta with ``U <= seq + 1``; a delta with ``u <= seq`` is a repeat and
  changes nothing; a delta with ``U > seq + 1`` is a gap: unknown again until a snapshot bridges;
* a delta whose levels are not ``[[price, size], ...]`` text makes the book unknown too;
* known sequences only grow: a delta or a seed at or below the last known sequence is ignored.

Every known state is a *point* ``(sequence, ...)``. ``at_or_after(seq)`` answers the first point at or
after ``seq``: a client that has had deltas up to ``u`` gets the book exactly at ``u``; one inside a
gap, or before the first seed, gets the next state it can bridge to with the deltas still coming.
States are rebuilt on demand from their seed with a forward cursor, so memory stays one book per symbol.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from harness.loopback.recorded.session import Snapshot, levels

Levels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Delta:
    first: int  # U
    last: int  # u
    bids: Levels | None  # None: not valid level text
    asks: Levels | None
    timestamp: int | None  # T (engine time, µs) where the frame has it


@dataclass(frozen=True, slots=True)
class _Segment:
    seed: Snapshot
    start: int  # index of the first delta applied on top of the seed


@dataclass(frozen=True, slots=True)
class Point:
    sequence: int
    segment: int
    applied: int  # deltas applied after the seed: deltas[start : start + applied]
    timestamp: int | None


class _Side:
    """Price -> (price text, size text); the text is what the wire said (first price spelling, last size)."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: dict[Decimal, tuple[str, str]] = {}

    def apply(self, entries: Levels) -> None:
        for price, size in entries:
            try:
                key, amount = Decimal(price), Decimal(size)
            except InvalidOperation:
                continue
            if not (key.is_finite() and amount.is_finite()) or amount < 0:
                continue  # what no exchange sends; a hostile recording must not break the sort
            if not amount:
                self.levels.pop(key, None)
            else:
                old = self.levels.get(key)
                self.levels[key] = (old[0] if old else price, size)


class BookTimeline:
    def __init__(self, symbol: str, deltas: list[Delta], snapshots: list[Snapshot]) -> None:
        self.symbol = symbol
        self.deltas = deltas
        self.segments: list[_Segment] = []
        self.points: list[Point] = []
        self._cursor: tuple[int, int, int, _Side, _Side] | None = None  # segment, applied, seq, bids, asks
        self._build(sorted(snapshots, key=lambda s: (s.last_update_id, s.t)))
        self._sequences = [p.sequence for p in self.points]

    def _build(self, snaps: list[Snapshot]) -> None:
        ids = [s.last_update_id for s in snaps]
        known: int | None = None  # the book's sequence while known
        i, n = 0, len(self.deltas)
        while i < n:
            d = self.deltas[i]
            if known is not None:
                if d.bids is None or d.asks is None:
                    known = None
                    i += 1
                    continue
                if d.last <= known:
                    i += 1
                    continue
                if d.first <= known + 1:
                    seg = len(self.segments) - 1
                    applied = i - self.segments[seg].start + 1
                    self.points.append(Point(d.last, seg, applied, d.timestamp))
                    known = d.last
                    i += 1
                    continue
                known = None  # a gap: look for a seed at this very delta
            floor = self.points[-1].sequence if self.points else -1
            if d.last <= floor:  # behind what is already known: time does not go back
                i += 1
                continue
            k = bisect.bisect_left(ids, max(d.first - 1, floor + 1))
            if k < len(ids) and ids[k] < d.last and d.bids is not None and d.asks is not None:
                seed = snaps[k]
                self.segments.append(_Segment(seed, i))
                self.points.append(Point(seed.last_update_id, len(self.segments) - 1, 0, seed.timestamp))
                known = seed.last_update_id
                continue  # the same delta now bridges the seed
            i += 1
        tail = self.deltas[-1].last if self.deltas else -1
        if known is None:  # a snapshot newer than every delta still tells the book from there on
            later = [
                s
                for s in snaps
                if s.last_update_id >= tail
                and (not self.points or s.last_update_id > self.points[-1].sequence)
            ]
            if later:
                self.segments.append(_Segment(later[0], n))
                self.points.append(
                    Point(later[0].last_update_id, len(self.segments) - 1, 0, later[0].timestamp)
                )

    @property
    def known(self) -> bool:
        return bool(self.points)

    def at_or_after(self, sequence: int | None) -> Point | None:
        """The first known state at or after ``sequence`` (None: the first known state at all)."""
        if not self.points:
            return None
        if sequence is None:
            return self.points[0]
        k = bisect.bisect_left(self._sequences, sequence)
        return self.points[k] if k < len(self.points) else None

    def book(self, point: Point) -> tuple[_Side, _Side]:
        cursor = self._cursor
        if cursor is None or cursor[0] != point.segment or cursor[1] > point.applied:
            seed = self.segments[point.segment].seed
            bids, asks = _Side(), _Side()
            bids.apply(seed.bids)
            asks.apply(seed.asks)
            cursor = (point.segment, 0, seed.last_update_id, bids, asks)
        seg_index, applied, seq, bids, asks = cursor
        start = self.segments[seg_index].start
        for d in self.deltas[start + applied : start + point.applied]:
            if d.last <= seq or d.bids is None or d.asks is None:
                continue  # a repeat the walk skipped (invalid deltas never lie inside a segment)
            bids.apply(d.bids)
            asks.apply(d.asks)
            seq = d.last
        self._cursor = (seg_index, point.applied, seq, bids, asks)
        return bids, asks

    def answer(self, point: Point, limit: int) -> dict[str, Any]:
        """The REST depth body at ``point``: both sides ascending, the best ``limit`` levels of each."""
        bids, asks = self.book(point)
        bid_keys = sorted(bids.levels)[-limit:] if limit > 0 else []
        ask_keys = sorted(asks.levels)[:limit]
        body: dict[str, Any] = {
            "asks": [list(asks.levels[p]) for p in ask_keys],
            "bids": [list(bids.levels[p]) for p in bid_keys],
            "lastUpdateId": str(point.sequence),
        }
        if point.timestamp is not None:
            body["timestamp"] = point.timestamp
        return body


def delta_of(data: dict[str, Any], first: int, last: int) -> Delta:
    timestamp = data.get("T")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        timestamp = None
    return Delta(first, last, levels(data.get("b")), levels(data.get("a")), timestamp)


__all__ = ["BookTimeline", "Delta", "Point", "delta_of"]
