"""The invariants a client must keep under every fault program, each stated in one sentence.

``Checker`` watches one run as it happens: which steps of the faulted timeline reached the client and
which were lost (``step``), connection losses, the snapshot answers, and every normalized record the
client emitted (``record``), and it checks after every step what can be checked then; ``finish``
checks what needs the whole run. Everything is judged against the clean recording (``oracle``), never
against the client's own idea of the truth.

A broken invariant is an ``InvariantBroken`` naming the invariant (its letter and sentence) and the
evidence; ``raise_at_once=False`` collects the first one instead, for runs whose callbacks swallow
exceptions (the full feed isolates consumer errors); ``violation`` holds it and ``check()`` raises it.
"""

from __future__ import annotations

import bisect
from collections import Counter
from decimal import Decimal
from typing import Any

from harness.scenarios.program import Answer, Faulted, Step

INVARIANTS: dict[str, str] = {
    "a": "every book the client emits equals the reference book at its sequence: never silently wrong",
    "b": "every fault that loses book information is followed by a book_resync before that symbol's next "
         "book emission, and only a symbol that lost information (or its connection) is reset",
    "c": "no trade id is emitted twice, and a trade is missing only where every copy of its frame was lost or "
         "garbled",
    "d": "bad frames produce error events and counters, never exceptions escaping the client",
    "e": "after a disconnect the client resubscribes to exactly the same streams, and private streams are "
         "re-signed with a fresh timestamp",
    "f": "a given recording and fault program always produce byte-identical output",
}


class InvariantBroken(AssertionError):
    """One invariant did not hold; the message names it, states it, and gives the evidence."""

    def __init__(self, invariant: str, detail: str, where: str | None = None) -> None:
        self.invariant = invariant
        self.detail = detail
        self.where = where
        at = f" at {where}" if where else ""
        super().__init__(f"invariant ({invariant}) broken{at}: {detail} [({invariant}) {INVARIANTS[invariant]}]")


def _native(symbol: Any) -> str | None:
    return symbol.replace("-", "_") if isinstance(symbol, str) else None


def _top(side: dict[Decimal, Decimal], n: int | None, best_high: bool) -> list[tuple[Decimal, Decimal]]:
    keys = sorted(side, reverse=best_high)
    if n is not None:
        keys = keys[:n]
    return [(p, side[p]) for p in keys]


def _parse_levels(levels: Any) -> list[tuple[Decimal, Decimal]] | None:
    try:
        return [(Decimal(p), Decimal(s)) for p, s in levels]
    except Exception:  # noqa: BLE001 - a client's malformed record is evidence, not a crash
        return None


def _diff(name: str, got: list[tuple[Decimal, Decimal]], want: list[tuple[Decimal, Decimal]]) -> str:
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"{name}[{i}] is {g[0]} x {g[1]}, the reference has {w[0]} x {w[1]}"
    if len(got) != len(want):
        return f"{name} has {len(got)} levels, the reference {len(want)}"
    return f"{name} differ"


class Checker:
    """Online checks of one run of ``faulted`` (see the module docstring). ``depth`` is N of book records."""

    def __init__(self, faulted: Faulted, *, depth: int | None = 10, raise_at_once: bool = True,
                 observed: bool = True) -> None:
        """``observed=False``: the runner cannot see which frames reached the client (real sockets), so the
        checks that need it ((b), and (c) against what arrived) give way to (c) against the whole window."""
        self.faulted = faulted
        self.observed = observed
        self.ref = faulted.reference
        self.depth = depth
        self.raise_at_once = raise_at_once
        self.violation: InvariantBroken | None = None
        self.counts: Counter[str] = Counter()
        self.where: str | None = None
        # per native symbol: the window's clean deltas by u, the (U, u) that reached the client intact
        self._ws: dict[str, tuple[list[int], list[tuple[int, int, int]]]] = {}
        for f in faulted.frames:
            if f.depth and f.symbol is not None:
                us, rows = self._ws.setdefault(f.symbol, ([], []))
                rows.append((f.last, f.first, f.index))
        for us, rows in self._ws.values():
            rows.sort()
            us.extend(r[0] for r in rows)
        self._got: dict[str, set[tuple[int, int]]] = {}
        self._last_u: dict[str, int] = {}
        self._emitted: dict[str, int | None] = {}  # sequence of the last book emission since a resync
        # symbol -> the first thing that went wrong for it since its last resync (a resync consumes it: one
        # fault may show later than the next book, e.g. a late frame that makes the client drop newer ones)
        self._disturbed: dict[str, str] = {}
        self._trades_out: set[tuple[str, str]] = set()
        self._trades_in: dict[tuple[str, str], str] = {}  # delivered intact -> where
        self._pending_error: str | None = None

    # -- plumbing -----------------------------------------------------------------------------------

    def broken(self, invariant: str, detail: str) -> None:
        error = InvariantBroken(invariant, detail, self.where)
        if self.violation is None:
            self.violation = error
        if self.raise_at_once:
            raise error

    def check(self) -> None:
        if self.violation is not None:
            raise self.violation

    def _disturb(self, symbol: str, why: str) -> None:
        self._disturbed.setdefault(symbol, why)

    # -- what happened to the client ----------------------------------------------------------------

    def step(self, index: int, step: Step, delivered: bool) -> None:
        """Step ``index`` of the faulted timeline was handed to the client (or lost on the way)."""
        self.settle_error()
        self.where = f"step {index} (event {step.origin}{', ' + step.edit if step.edit else ''})"
        if step.kind != "frame":
            return
        frame = step.frame
        if delivered:
            self.counts["delivered"] += 1
            if step.bad:
                self._pending_error = self.where
        else:
            self.counts["lost"] += 1
        if frame is None:
            return
        if frame.depth:
            symbol = frame.symbol
            assert symbol is not None and frame.first is not None and frame.last is not None
            last = self._last_u.get(symbol)
            if not delivered:
                if last is None or frame.last > last:
                    self._disturb(symbol, f"delta {frame.first}..{frame.last} lost at {self.where}")
            elif not step.intact or not frame.levels_ok:
                self._disturb(symbol, f"delta {frame.first}..{frame.last} garbled at {self.where}")
            else:
                got = self._got.setdefault(symbol, set())
                new = (frame.first, frame.last) not in got
                got.add((frame.first, frame.last))
                if new and last is not None and frame.first != last + 1:
                    # a gap, or a late frame from before the last one: either may cost the client its state
                    self._disturb(symbol, f"delta {frame.first}..{frame.last} out of sequence after {last} at "
                                          f"{self.where}")
                self._last_u[symbol] = frame.last if last is None else max(last, frame.last)
        elif frame.trade is not None and delivered and step.intact and frame.symbol is not None:
            self._trades_in.setdefault((frame.symbol, frame.trade), self.where)

    def expect_error(self, where: str) -> None:
        """A bad frame the run made up on the spot (a refused private subscribe) reached the client."""
        self.settle_error()
        self._pending_error = where

    def disconnected(self, why: str = "connection lost") -> None:
        for symbol in set(self._ws) | set(self._emitted):
            self._disturb(symbol, why)
        self.counts["disconnects"] += 1

    def snapshot(self, symbol: str, answer: Answer) -> None:
        self.counts["snapshots"] += 1
        if answer.faulted or answer.status != 200:
            self._disturb(symbol, f"snapshot answered {answer.kind} (HTTP {answer.status})")

    def exception(self, where: str, exc: BaseException) -> None:
        self.broken("d", f"{type(exc).__name__} escaped the client while handling {where}: {exc}")

    # -- what the client emitted --------------------------------------------------------------------

    def record(self, rec: dict[str, Any], book: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None = None
               ) -> None:
        """One normalized record; ``book``: the client's whole book right after it (a stricter (a))."""
        kind = rec.get("type")
        if kind == "book":
            self._book(rec, book)
        elif kind == "book_resync":
            self._resync(rec)
        elif kind == "trade":
            key = (_native(rec.get("symbol")) or "?", str(rec.get("id")))
            if key in self._trades_out:
                self.broken("c", f"trade {key[1]} of {key[0]} emitted twice")
            self._trades_out.add(key)
            self.counts["trades"] += 1
        elif kind == "error":
            self._pending_error = None
            self.counts["errors"] += 1

    def _book(self, rec: dict[str, Any], book: Any) -> None:
        symbol = _native(rec.get("symbol"))
        seq = rec.get("sequence")
        if symbol is None or type(seq) is not int:
            self.broken("a", f"a book record without a symbol or an integer sequence: {rec!r:.200}")
            return
        self.counts["books"] += 1
        self._compare(symbol, seq, rec, book)
        previous = self._emitted.get(symbol)
        if previous is not None and self.observed:
            missing = self._missing(symbol, previous, seq)
            if missing is not None:
                self.broken("b", f"{symbol} went from book {previous} to {seq} without a book_resync, but delta "
                                 f"{missing[1]}..{missing[0]} (event {missing[2]}) never reached it intact")
        self._emitted[symbol] = seq

    def _compare(self, symbol: str, seq: int, rec: dict[str, Any], book: Any) -> None:
        truth = self.ref.book(symbol, seq)
        if truth is None:
            self.counts["books_unchecked"] += 1
            return
        bids, asks = truth
        if book is not None:
            got_bids, got_asks = book
            if got_bids != bids or got_asks != asks:
                side, g, w = ("bids", got_bids, bids) if got_bids != bids else ("asks", got_asks, asks)
                high = side == "bids"
                self.broken("a", f"{symbol} book at {seq}: {_diff(side, _top(g, None, high), _top(w, None, high))}")
                return
        got_b, got_a = _parse_levels(rec.get("bids") or []), _parse_levels(rec.get("asks") or [])
        if got_b is None or got_a is None:
            self.broken("a", f"{symbol} book at {seq} has levels that are not decimal pairs")
            return
        want_b, want_a = _top(bids, self.depth, True), _top(asks, self.depth, False)
        if got_b != want_b:
            self.broken("a", f"{symbol} book at {seq}: {_diff('bids', got_b, want_b)}")
        elif got_a != want_a:
            self.broken("a", f"{symbol} book at {seq}: {_diff('asks', got_a, want_a)}")
        else:
            self.counts["books_checked"] += 1

    def _missing(self, symbol: str, previous: int, seq: int) -> tuple[int, int, int] | None:
        """A clean delta of the window in (previous, seq] that never reached the client intact."""
        table = self._ws.get(symbol)
        if table is None or seq <= previous:
            return None
        us, rows = table
        got = self._got.get(symbol, set())
        for k in range(bisect.bisect_right(us, previous), bisect.bisect_right(us, seq)):
            u, first, index = rows[k]
            if (first, u) not in got:
                return rows[k]
        return None

    def _resync(self, rec: dict[str, Any]) -> None:
        symbol = _native(rec.get("symbol")) or "?"
        self.counts["resyncs"] += 1
        if self._disturbed.pop(symbol, None) is None and self.observed:
            self.broken("b", f"{symbol} was reset ({rec.get('reason')}) though nothing went wrong for it since its "
                             "previous reset (no frame of it lost, garbled or out of order, no bad snapshot, no "
                             "lost connection)")
        self._emitted[symbol] = None

    def settle_error(self) -> None:
        if self._pending_error is not None:
            where, self._pending_error = self._pending_error, None
            self.broken("d", f"the bad frame at {where} produced no error event")

    # -- the whole run ------------------------------------------------------------------------------

    def finish(self, *, internal_errors: int = 0) -> None:
        self.where = "the end of the run"
        self.settle_error()
        if internal_errors:
            self.broken("d", f"{internal_errors} exception(s) escaped into the client's internal-error counter")
        if not self.observed:
            for f in self.faulted.frames:
                if f.trade is not None and f.symbol is not None:
                    self._trades_in.setdefault((f.symbol, f.trade), f"event {f.index}")
        missing = [k for k in self._trades_in if k not in self._trades_out]
        if missing:
            symbol, tid = missing[0]
            how = "reached the client intact" if self.observed else "is in the recording the server played"
            self.broken("c", f"trade {tid} of {symbol} {how} ({self._trades_in[missing[0]]}) but was never emitted "
                             f"({len(missing)} such trade(s))")


__all__ = ["INVARIANTS", "Checker", "InvariantBroken"]
