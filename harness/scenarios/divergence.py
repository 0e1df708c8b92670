"""Silent divergences: wrong books a client emitted without telling its user anything was wrong.

The ``Checker`` stops at the first broken invariant; comparing clients needs every wrong book counted
and each one classified. ``Tally`` is a ``Checker`` (same reference, same comparison, all levels when
the client hands over its book) that never raises and keeps, per run:

* ``wrong``: book records that differ from the reference book at their sequence (invariant (a));
* ``silent``: those of them emitted while the client had signalled nothing since that symbol's last
  correct book — no ``book_resync`` of the symbol, no ``error`` record, no exception. A user of such a
  client holds a wrong book and has no way to know.

An error counts as a signal for every symbol (most error records name none), so the count errs
towards calling a wrong book signalled, never towards calling it silent.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.scenarios.invariants import Checker, InvariantBroken
from harness.scenarios.program import Faulted


def _native(symbol: Any) -> str | None:
    return symbol.replace("-", "_") if isinstance(symbol, str) else None


class Tally(Checker):
    """A ``Checker`` that counts wrong and silently wrong books instead of stopping at the first."""

    def __init__(self, faulted: Faulted, *, depth: int | None = 10, raise_at_once: bool = False) -> None:
        super().__init__(faulted, depth=depth, raise_at_once=False)
        self.broken_counts: Counter[str] = Counter()  # every broken check, by invariant letter
        self.wrong = 0
        self.silent = 0
        self.first_silent: InvariantBroken | None = None
        self._signals = 0  # errors and exceptions so far (they speak for every symbol)
        self._mark: dict[str, int] = {}  # symbol -> ``_signals`` at its last correct book
        self._resynced: set[str] = set()  # reset since their last correct book
        self._wrong_book: InvariantBroken | None = None
        self._in_book = False

    def broken(self, invariant: str, detail: str) -> None:
        self.broken_counts[invariant] += 1
        if invariant == "a" and self._in_book and self._wrong_book is None:
            self._wrong_book = InvariantBroken(invariant, detail, self.where)
        super().broken(invariant, detail)

    def exception(self, where: str, exc: BaseException) -> None:
        self._signals += 1
        super().exception(where, exc)

    def record(self, rec: dict[str, Any], book: Any = None) -> None:
        kind = rec.get("type")
        if kind != "book":
            super().record(rec, book)
            if kind == "book_resync":
                symbol = _native(rec.get("symbol"))
                if symbol is not None:
                    self._resynced.add(symbol)
            elif kind == "error":
                self._signals += 1
            return
        symbol = _native(rec.get("symbol")) or "?"
        checked = self.counts["books_checked"]
        self._in_book, self._wrong_book = True, None
        try:
            super().record(rec, book)
        finally:
            self._in_book = False
        if self._wrong_book is not None:
            self.wrong += 1
            if symbol not in self._resynced and self._signals == self._mark.get(symbol, 0):
                self.silent += 1
                if self.first_silent is None:
                    self.first_silent = self._wrong_book
        elif self.counts["books_checked"] > checked:
            self._mark[symbol] = self._signals
            self._resynced.discard(symbol)


__all__ = ["Tally"]
