"""The first diverging event of two normalized streams, found in one streaming pass.

Lines are compared in order, as text first (canonical lines of equal records are equal bytes, so nearly
every pair is settled by one string comparison), and a pair whose text differs is compared field by field
with the parity comparator's value rules (``harness.parity.compare.equal``: decimals as numbers, book
levels level by level), so a stream written by another tool with ``"86700.0"`` for ``"86700"`` still
matches. Only a small window of lines is held: either side may be millions of lines long.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.parity.compare import FieldDiff, equal

from .sides import Item

CONTEXT = 3


@dataclass
class Divergence:
    """Line ``index`` (0-based) is the first that differs; ``a``/``b`` None means that side had ended."""

    index: int
    a: Item | None
    b: Item | None
    fields: list[FieldDiff] = field(default_factory=list)
    before: list[tuple[Item, Item]] = field(default_factory=list)  # the equal lines just before
    after_a: list[Item] = field(default_factory=list)
    after_b: list[Item] = field(default_factory=list)

    @property
    def frame(self) -> int | None:
        """The recording event behind the diverging line (from whichever side was replayed)."""
        for item in (self.a, self.b):
            if item is not None and item.frame is not None:
                return item.frame
        return None


def _record(line: str) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def field_diffs(a: str, b: str) -> list[FieldDiff]:
    """The fields that differ between two lines ([] when they are the same record); a line that is not a
    JSON object differs as a whole (field ``line``)."""
    if a == b:
        return []
    ra, rb = _record(a), _record(b)
    if ra is None or rb is None:
        return [FieldDiff("line", a, b)]
    names = sorted(set(ra) | set(rb))
    return [FieldDiff(n, ra.get(n), rb.get(n)) for n in names
            if not (n in ra and n in rb and equal(n, ra[n], rb[n]))]


def first_divergence(a: Iterable[Item], b: Iterable[Item], *, context: int = CONTEXT) -> Divergence | None:
    """None when both streams hold the same records in the same order."""
    ia: Iterator[Item] = iter(a)
    ib: Iterator[Item] = iter(b)
    window: deque[tuple[Item, Item]] = deque(maxlen=context)
    index = 0
    for x in ia:
        y = next(ib, None)
        if y is None:
            return _finish(Divergence(index, x, None, before=list(window)), ia, ib, context)
        if x.line != y.line:
            diffs = field_diffs(x.line, y.line)
            if diffs:
                return _finish(Divergence(index, x, y, diffs, list(window)), ia, ib, context)
        window.append((x, y))
        index += 1
    y = next(ib, None)
    if y is None:
        return None
    return _finish(Divergence(index, None, y, before=list(window)), ia, ib, context)


def _finish(d: Divergence, ia: Iterator[Item], ib: Iterator[Item], context: int) -> Divergence:
    d.after_a = [x for _, x in zip(range(context), ia, strict=False)]
    d.after_b = [y for _, y in zip(range(context), ib, strict=False)]
    return d


__all__ = ["CONTEXT", "Divergence", "field_diffs", "first_divergence"]
