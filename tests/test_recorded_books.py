"""The book rebuild behind ``serve --recording``'s REST depth answers (harness/loopback/recorded/books.py)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness.loopback.market import MarketConfig, MarketGenerator
from harness.loopback.recorded.books import BookTimeline, Delta
from harness.loopback.recorded.session import Snapshot
from harness.refbook import Levels, levels

SYMBOL = "SOL_USDC"


def _wire(raw: list[list[str]]) -> Levels:
    parsed = levels(raw, spelled=True)
    assert parsed is not None
    return parsed


def _snapshot(gen: MarketGenerator, t: int) -> Snapshot:
    raw = gen.depth_snapshot(SYMBOL)
    return Snapshot(t, int(raw["lastUpdateId"]), _wire(raw["bids"]), _wire(raw["asks"]), raw["timestamp"])


def _apply(book: dict[str, dict[Decimal, Decimal]], side: str, levels: list[list[str]]) -> None:
    for price, size in levels:
        if Decimal(size):
            book[side][Decimal(price)] = Decimal(size)
        else:
            book[side].pop(Decimal(price), None)


@settings(max_examples=40, deadline=None)
@example(seed=0, steps=20, snap_steps={0}, gap=(1, 1), repeat=1)  # an old delta after a gap: no second seed
@given(
    seed=st.integers(0, 10_000),
    steps=st.integers(20, 120),
    snap_steps=st.sets(st.integers(0, 120), max_size=4),
    gap=st.one_of(st.none(), st.tuples(st.integers(0, 200), st.integers(1, 30))),
    repeat=st.one_of(st.none(), st.integers(0, 200)),
)
def test_every_known_point_is_the_true_book_at_that_sequence(
    seed: int, steps: int, snap_steps: set[int], gap: tuple[int, int] | None, repeat: int | None
) -> None:
    """Invariant: whatever deltas are missing or repeated, every state the timeline knows is the true book at
    its sequence, known sequences strictly increase, and every snapshot some delta bridges is known."""
    gen = MarketGenerator(MarketConfig(seed=seed))
    truth: dict[int, dict[str, dict[Decimal, Decimal]]] = {}
    book = gen.book(SYMBOL)
    truth[gen.sequence(SYMBOL)] = {k: dict(v) for k, v in book.items()}
    deltas: list[Delta] = []
    snapshots = [_snapshot(gen, 0)] if 0 in snap_steps else []
    for step in range(1, steps + 1):
        for em in gen.step():
            if em.stream != f"depth.{SYMBOL}":
                continue
            d = em.data
            _apply(book, "bids", d["b"])
            _apply(book, "asks", d["a"])
            truth[d["u"]] = {k: dict(v) for k, v in book.items()}
            deltas.append(Delta(d["U"], d["u"], _wire(d["b"]), _wire(d["a"]), d["T"]))
        if step in snap_steps:
            snapshots.append(_snapshot(gen, step))
    if gap is not None:
        del deltas[gap[0] : gap[0] + gap[1]]
    if repeat is not None and deltas:
        k = min(repeat, len(deltas) - 1)
        deltas.insert(k + 1, deltas[max(0, k - 20)])  # an old delta again: must change nothing

    timeline = BookTimeline(SYMBOL, deltas, snapshots)
    sequences = [p.sequence for p in timeline.points]
    assert sequences == sorted(set(sequences))
    for point in timeline.points:
        bids, asks = timeline.book(point.sequence)  # type: ignore[misc]
        assert {"bids": bids, "asks": asks} == truth[point.sequence], point
    for s in snapshots:  # a snapshot that some delta bridges is always a known point (or followed by one)
        if any(d.first - 1 <= s.last_update_id < d.last for d in deltas):
            assert timeline.at_or_after(s.last_update_id) is not None


def test_gaps_and_seeds_decide_what_is_known() -> None:
    def delta(first: int, last: int, bid: str = "1") -> Delta:
        return Delta(first, last, _wire([["100", bid]]), (), last * 10)

    def snap(last: int) -> Snapshot:
        return Snapshot(0, last, _wire([["99", "5"]]), _wire([["101", "5"]]), 7)

    deltas = [
        delta(1, 1),
        delta(2, 3),
        delta(4, 4),
        delta(7, 7, "2"),
        delta(8, 8),
        Delta(9, 9, None, (), 0),
        delta(10, 10),
    ]
    timeline = BookTimeline(SYMBOL, deltas, [snap(2), snap(7), snap(9)])
    # seeded at 2 (inside 2..3), known to 4; the gap 5..6 is unknown until the seed at 7; the delta with
    # no levels makes 9 unknown, and the snapshot at 9 seeds again at delta 10
    assert [p.sequence for p in timeline.points] == [2, 3, 4, 7, 8, 9, 10]
    assert timeline.at_or_after(None).sequence == 2
    assert timeline.at_or_after(5).sequence == 7  # inside the gap: the next state it can bridge to
    assert timeline.at_or_after(11) is None
    answer = timeline.answer(timeline.at_or_after(4), 1)
    assert answer == {"asks": [["101", "5"]], "bids": [["100", "1"]], "lastUpdateId": "4", "timestamp": 40}
    assert timeline.answer(timeline.at_or_after(8), 5)["bids"] == [["99", "5"], ["100", "1"]]
    assert BookTimeline(SYMBOL, deltas, []).points == []  # no snapshot: nothing is known
