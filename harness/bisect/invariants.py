"""Invariants a replay's output must hold, behind the one interface ``bisect --invariants`` and ``shrink`` use.

The interface: an invariant is a callable ``check(records, events) -> Violation | None`` taking the replay's
normalized records with their provenance (``(record, event_index)`` pairs, in output order) and the
recording's events (in timeline order, iterated once, alongside), and returning the first violation.
``REGISTRY`` names them; besides the two below, ``scenario-a`` and ``scenario-c`` are the fault scenarios'
invariants (``harness/scenarios/invariants.py``) that apply to an unfaulted recording (``SCENARIO``).

The two this module holds, on their own:

* ``book``: every book line equals the book rebuilt independently from the recording: the REST snapshot
  answers and the depth deltas in the frames, applied with the exchange's documented rules by the shared
  reference book (``harness.refbook.StreamBook``: dicts of Decimals, no code shared with
  ``backpack.protocol.book``). A line is checked where the reference is synchronised; its sequence and
  its top levels must match.
* ``trades``: no trade id is delivered twice for a symbol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from backpack.protocol.normalized import DEFAULT_DEPTH
from harness.recording.format import Event, HttpRequestEvent, HttpResponseEvent, WsRecv
from harness.refbook import Delta, StreamBook, levels, seq

Record = tuple[dict[str, Any], int | None]


@dataclass(frozen=True)
class Violation:
    invariant: str
    index: int  # the line (0-based) that breaks it
    frame: int | None  # the recording event behind that line
    message: str
    record: dict[str, Any] = field(default_factory=dict)


Invariant = Callable[[Iterable[Record], Iterable[Event]], "Violation | None"]


# --- the reference book (harness.refbook.StreamBook) ---------------------------------------------

ReferenceBook = StreamBook


def _as_levels(raw: Any) -> list[tuple[Decimal, Decimal]] | None:
    """A book line's levels as Decimal pairs (None: not pairs of numbers)."""
    out = []
    try:
        for price, size in raw or ():
            p, s = Decimal(str(price)), Decimal(str(size))
            if not (p.is_finite() and s.is_finite()) or s < 0:
                return None
            out.append((p, s))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return out


class _Exchange:
    """Feeds the reference books from the recording's events, up to a given event index."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events: Iterator[Event] = iter(events)
        self.done = 0  # events consumed
        self.books: dict[str, ReferenceBook] = {}
        self._depth_requests: dict[str, str] = {}  # REST exchange id -> symbol

    def upto(self, index: int) -> None:
        while self.done <= index:
            event = next(self.events, None)
            if event is None:
                return
            self.done += 1
            self._event(event)

    def _book(self, native: str) -> ReferenceBook:
        book = self.books.get(native)
        if book is None:
            book = self.books[native] = ReferenceBook()
        return book

    def _event(self, event: Event) -> None:
        if isinstance(event, WsRecv):
            if not isinstance(event.data, str) or '"depth' not in event.data[:40]:
                return
            try:
                doc = orjson.loads(event.data)
                data = doc["data"]
                stream = doc["stream"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                return
            if not (isinstance(stream, str) and stream.startswith("depth.") and isinstance(data, dict)):
                return
            first, last = seq(data.get("U")), seq(data.get("u"))
            bids, asks = levels(data.get("b")), levels(data.get("a"))
            symbol = data.get("s")
            if not isinstance(symbol, str) or first is None or last is None or first > last or bids is None or asks is None:
                return
            self._book(symbol).delta(Delta(first, last, bids, asks, None))
        elif isinstance(event, HttpRequestEvent) and event.url.rstrip("/").endswith("/api/v1/depth"):
            symbol = next((v for k, v in event.params if k == "symbol"), None)
            if symbol is not None:
                self._depth_requests[event.conn] = symbol
        elif isinstance(event, HttpResponseEvent) and event.conn in self._depth_requests and 200 <= event.status < 300:
            symbol = self._depth_requests.pop(event.conn)
            try:
                body = orjson.loads(event.body)
            except orjson.JSONDecodeError:
                return
            if not isinstance(body, dict):
                return
            last = seq(body.get("lastUpdateId"))
            bids, asks = levels(body.get("bids")), levels(body.get("asks"))
            if last is not None and bids is not None and asks is not None:
                self._book(symbol).snapshot(last, bids, asks)


def _native(symbol: str) -> str:
    return symbol.replace("-", "_")


def book_invariant(depth: int | None = DEFAULT_DEPTH) -> Invariant:
    """``book`` (see the module docstring); ``depth`` is the levels per side the replay printed."""

    def check(records: Iterable[Record], events: Iterable[Event]) -> Violation | None:
        exchange = _Exchange(events)
        for index, (rec, frame) in enumerate(records):
            if rec.get("type") != "book" or frame is None:
                continue
            exchange.upto(frame)
            symbol = rec.get("symbol")
            book = exchange.books.get(_native(symbol)) if isinstance(symbol, str) else None
            if book is None or book.seq is None:
                continue  # the reference is not synchronised here: nothing to compare with
            if rec.get("sequence") != book.seq:
                return Violation("book", index, frame, f"{symbol} book line at sequence {rec.get('sequence')}, "
                                 f"but the recording's snapshot and deltas put the book at {book.seq}", rec)
            bids, asks = book.top(depth)
            got_bids, got_asks = _as_levels(rec.get("bids")), _as_levels(rec.get("asks"))
            for side, want, got in (("bids", bids, got_bids), ("asks", asks, got_asks)):
                if got != want:
                    where = _first_difference(want, got or [])
                    return Violation("book", index, frame, f"{symbol} {side} at sequence {book.seq} differ from the "
                                     f"book rebuilt from the recording at level {where + 1}: line has "
                                     f"{_show(got, where)}, the recording gives {_show(want, where)}", rec)
        return None

    return check


def _first_difference(a: list[Any], b: list[Any]) -> int:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return min(len(a), len(b))


def _show(levels: list[tuple[Decimal, Decimal]] | None, i: int) -> str:
    if levels is None:
        return "malformed levels"
    if i >= len(levels):
        return "no level"
    p, s = levels[i]
    return f"{p} x {s}"


def trades_invariant() -> Invariant:
    """``trades``: no (symbol, trade id) twice."""

    def check(records: Iterable[Record], events: Iterable[Event]) -> Violation | None:
        seen: dict[Any, int] = {}
        for index, (rec, frame) in enumerate(records):
            if rec.get("type") != "trade":
                continue
            key = (rec.get("symbol"), rec.get("id"))
            if key in seen:
                return Violation("trades", index, frame, f"trade {key[1]} of {key[0]} delivered twice (first at "
                                 f"line {seen[key] + 1})", rec)
            seen[key] = index
        return None

    return check


SCENARIO = {"a": ("book",), "c": ("trade",)}
"""The fault scenarios' invariants that hold on a clean replay too, and the record types each judges: (a) books
against the whole recording's reference, (c) trades (twice, or missing). (b) and (d) need to know which frames,
snapshots and connections the client lost; (e) its sends; (f) a second run: a replay's lines carry none of it."""


def scenario_invariant(letter: str, depth: int | None = DEFAULT_DEPTH) -> Invariant:
    """``scenario-a`` / ``scenario-c``: ``harness.scenarios.invariants.Checker`` over the replay's lines, the
    recording taken as an unfaulted program (every frame delivered, no snapshot faulted)."""
    kinds = SCENARIO[letter]

    def check(records: Iterable[Record], events: Iterable[Event]) -> Violation | None:
        from harness.recording.format import Header
        from harness.recording.reader import ReadStats, Recording
        from harness.scenarios.invariants import INVARIANTS, Checker, InvariantBroken
        from harness.scenarios.oracle import Reference
        from harness.scenarios.program import Program, apply

        timeline = list(events)
        if not timeline:
            return None
        reference = Reference.of(Recording(Header.new(), timeline, None, ReadStats()))
        checker = Checker(apply(Program(), reference), depth=depth, observed=False)
        name, lines = f"scenario-{letter}", 0
        for index, (rec, frame) in enumerate(records):
            lines = index + 1
            if rec.get("type") not in kinds:
                continue
            checker.where = f"line {lines}"
            try:
                checker.record(rec)
            except InvariantBroken as exc:
                return Violation(name, index, frame, f"{exc.detail} [({letter}) {INVARIANTS[letter]}]", rec)
        if letter == "c":
            try:
                checker.finish()
            except InvariantBroken as exc:  # a trade never emitted: no line to blame, past the last one
                return Violation(name, lines, None, f"{exc.detail} [({letter}) {INVARIANTS[letter]}]")
        return None

    return check


REGISTRY: dict[str, Callable[[int | None], Invariant]] = {
    "book": book_invariant,
    "trades": lambda depth: trades_invariant(),
    "scenario-a": lambda depth: scenario_invariant("a", depth),
    "scenario-c": lambda depth: scenario_invariant("c", depth),
}
"""Invariant name -> factory (given the replay's book depth)."""


def first_violation(records: list[Record], events: list[Event], names: Iterable[str],
                    depth: int | None = DEFAULT_DEPTH) -> Violation | None:
    """The earliest violation (by line) of the named invariants over one replay's records."""
    found = [REGISTRY[name](depth)(records, events) for name in names]
    hits = [v for v in found if v is not None]
    return min(hits, key=lambda v: v.index) if hits else None


__all__ = ["REGISTRY", "SCENARIO", "Invariant", "Record", "ReferenceBook", "Violation", "book_invariant",
           "first_violation", "scenario_invariant", "trades_invariant"]
