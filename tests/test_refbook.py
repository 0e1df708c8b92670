"""The shared reference book (harness/refbook.py) and its wire fields, used by the scenario oracle,
``serve --recording``'s depth answers and ``bisect --invariants``."""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness.refbook as refbook_module
from harness.bisect.invariants import book_invariant
from harness.loopback.recorded.session import Snapshot, index_events
from harness.recording.format import Header, HttpRequestEvent, HttpResponseEvent, WsRecv
from harness.recording.reader import ReadStats, Recording
from harness.refbook import Delta, Spelled, StreamBook, Timeline, apply, levels, seq
from harness.scenarios.oracle import Reference

PRICES = st.integers(1, 12).map(lambda n: Decimal(n) / 4)
SIZES = st.one_of(st.just(Decimal(0)), st.integers(0, 50).map(lambda n: Decimal(n) / 10))
UPDATES = st.lists(st.tuples(PRICES, SIZES), max_size=6)


def _replay(side: dict[Decimal, Decimal], updates: list[tuple[Decimal, Decimal]]) -> None:
    """The plain reading of absolute sizes, written apart from ``apply``: set it, and a zero size is no level."""
    for price, size in updates:
        side[price] = size
        if size == 0:
            del side[price]


@settings(max_examples=150, deadline=None)
@given(
    seed_bids=UPDATES,
    seed_asks=UPDATES,
    steps=st.lists(st.tuples(UPDATES, UPDATES, st.integers(1, 3)), max_size=40),
    checkpoint=st.sampled_from([None, 1, 3, 64]),
    order=st.randoms(use_true_random=False),
)
def test_any_level_updates_give_the_book_a_plain_dict_replay_gives(
    seed_bids: list, seed_asks: list, steps: list, checkpoint: int | None, order: object
) -> None:
    """Invariant: after any sequence of level updates on a snapshot, the timeline's book at every point (read in
    any order, with any checkpoint spacing) and the stream book are the plain dict that replays the same updates
    with zero sizes deleting."""
    bids: dict[Decimal, Decimal] = {p: s for p, s in seed_bids if s}
    asks: dict[Decimal, Decimal] = {p: s for p, s in seed_asks if s}
    truth = {10: (dict(bids), dict(asks))}
    deltas, last = [], 10
    for b, a, width in steps:
        first, last = last + 1, last + width
        deltas.append(Delta(first, last, tuple(b), tuple(a), last))
        _replay(bids, b)
        _replay(asks, a)
        truth[last] = (dict(bids), dict(asks))
    snapshot = Snapshot(0, 10, tuple(seed_bids), tuple(seed_asks), None)

    timeline = Timeline("X", deltas, [snapshot], checkpoint=checkpoint)
    assert timeline.sequences == sorted(truth)
    ks = list(range(len(timeline.points)))
    order.shuffle(ks)  # type: ignore[attr-defined]
    for k in ks:
        assert timeline.state(k) == truth[timeline.points[k].sequence]

    stream = StreamBook()
    for d in deltas[:3]:  # deltas before the snapshot are held, then bridged by it
        stream.delta(d)
    stream.snapshot(10, seed_bids, seed_asks)
    for d in deltas[3:]:
        stream.delta(d)
    assert stream.seq == last and (stream.bids, stream.asks) == truth[last]


def test_apply_deletes_zero_sizes_and_keeps_a_price_s_first_spelling() -> None:
    side = {Decimal(1): Decimal(2)}
    apply(side, [(Decimal("1"), Decimal("0")), (Decimal("2.0"), Decimal("1")), (Decimal("2.00"), Decimal("3"))])
    assert side == {Decimal(2): Decimal(3)} and str(next(iter(side))) == "2.0"


@pytest.mark.parametrize(
    ("value", "want"),
    [(7, 7), ("7", 7), ("0", 0), (True, None), (-1, None), ("-1", None), ("1.0", None), ("", None),
     ("1" * 20, None), (1.0, None), (None, None), ("\u00b2", None), ("\u0663", None)],
)
def test_a_sequence_is_a_non_negative_integer_or_ascii_digits(value: object, want: int | None) -> None:
    assert seq(value) == want


@pytest.mark.parametrize(
    "raw",
    [None, "x", [["1"]], [["1", "2", "3"]], [[1, 2]], [["x", "1"]], [["NaN", "1"]], [["1", "Infinity"]],
     [["1", "-1"]], [["1", "2"], "x"], [("1", "2")]],
)
def test_levels_that_are_not_finite_decimal_text_are_none(raw: object) -> None:
    assert levels(raw) is None


def test_spelled_levels_keep_the_wire_text_and_equal_their_value() -> None:
    parsed = levels([["0.00000001", "1.50"]], spelled=True)
    assert parsed == ((Decimal("1E-8"), Decimal("1.5")),)
    assert [str(x) for x in parsed[0]] == ["0.00000001", "1.50"]  # type: ignore[index]
    assert isinstance(parsed[0][0], Spelled) and {Decimal("1E-8"): 1}[parsed[0][0]] == 1  # type: ignore[index]
    assert levels([["1e-8", "1"]]) == ((Decimal("1E-8"), Decimal(1)),)


def test_the_reference_book_shares_no_code_with_the_native_book() -> None:
    tree = ast.parse(Path(refbook_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(str(m).startswith(("backpack", "harness")) for m in imported)  # the truth is not the code under test


# --- hostile sequence text: a digit that is not ASCII ----------------------------------------------


def _depth(first: str, last: str) -> str:
    data = {"e": "depth", "E": 1, "s": "SOL_USDC", "a": [], "b": [["1", "2"]], "U": first, "u": last, "T": 1}
    return json.dumps({"stream": "depth.SOL_USDC", "data": data}, ensure_ascii=False)


HOSTILE = [
    HttpRequestEvent(1, "http-1", "GET", "http://127.0.0.1:1/api/v1/depth", (("symbol", "SOL_USDC"),)),
    HttpResponseEvent(2, "http-1", 200, {}, b'{"asks":[],"bids":[["1","1"]],"lastUpdateId":"\\u00b2"}', 1),
    WsRecv(3, "ws-1", _depth("\u00b2", "\u00b2"), 1),  # "²".isdigit() is True, int("²") raises
    WsRecv(4, "ws-1", _depth("5", "5"), 1),
]


def test_a_superscript_digit_is_no_sequence_for_any_reader_of_the_recording() -> None:
    reference = Reference.of(Recording(Header.new(), HOSTILE, None, ReadStats()))
    assert [f.depth for f in reference.frames] == [False, True]  # the ² frame is data, not a delta
    session = index_events(Path("hostile.jsonl"), Header.new(), HOSTILE)
    assert [f.depth for f in session.streams["depth.SOL_USDC"].frames] == [None, ("SOL_USDC", 5, 5)]
    assert session.snapshots == {}  # lastUpdateId "²" is not a snapshot
    records = [({"type": "book", "symbol": "SOL-USDC", "sequence": 5, "bids": [], "asks": []}, 3)]
    assert book_invariant()(records, HOSTILE) is None  # never synchronised: nothing to compare with
