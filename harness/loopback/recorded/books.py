"""The order book of one symbol at every sequence a recording lets us know it, for REST depth answers.

Why rebuild instead of serving the recorded snapshot: a client of ``serve --recording`` asks for its
snapshot when *it* has buffered enough deltas, not when the recorded client did, and the exchange's
rule is that the snapshot must bridge the deltas it has (``U <= lastUpdateId + 1 <= u``). Depth deltas
carry absolute sizes, so the book after any delta is known once some snapshot bridges into the stream.
The walk is the shared reference book's (``harness.refbook.Timeline``: seeds, repeats, gaps and
unreadable levels are decided there); this module adds what serving needs:

* ``at_or_after(seq)`` answers the first point at or after ``seq``: a client that has had deltas up to
  ``u`` gets the book exactly at ``u``; one inside a gap, or before the first seed, gets the next state
  it can bridge to with the deltas still coming;
* answers repeat the wire's text (``Spelled`` numbers: a price keeps its first spelling, a size its last);
* states are rebuilt on demand from their seed with a forward cursor (no checkpoints), so memory stays
  one book per symbol.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.refbook import Delta, Point, Seed, Timeline, levels, timestamp


class BookTimeline(Timeline):
    def __init__(self, symbol: str, deltas: Sequence[Delta], snapshots: Sequence[Seed]) -> None:
        super().__init__(symbol, deltas, snapshots, checkpoint=None)

    def at_or_after(self, sequence: int | None) -> Point | None:
        """The first known state at or after ``sequence`` (None: the first known state at all)."""
        k = self.point_at_or_after(sequence)
        return None if k is None else self.points[k]

    def answer(self, point: Point, limit: int) -> dict[str, Any]:
        """The REST depth body at ``point``: both sides ascending, the best ``limit`` levels of each."""
        return self.body(self.point_of(point.sequence), limit)  # type: ignore[arg-type]


def delta_of(data: dict[str, Any], first: int, last: int) -> Delta:
    return Delta(first, last, levels(data.get("b"), spelled=True), levels(data.get("a"), spelled=True),
                 timestamp(data.get("T")))


__all__ = ["BookTimeline", "Delta", "Point", "delta_of"]
