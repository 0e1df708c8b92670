"""The compiled core against the pure one, directly: same events (by ``repr``), same books, same counters.

tests/test_perf_equivalence.py compares each core with the generic decode-then-route pipeline; here the two
cores meet head on, over hostile payloads too, so a difference in what the compiled handlers accept or build
shows up even where the generic pipeline has nothing to say.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backpack.protocol import messages, speedups
from backpack.protocol.book import SYNCED, BookSync
from backpack.protocol.events import DepthDelta, DepthSnapshot
from backpack.protocol.messages import Decoder
from backpack.protocol.router import Router
from tests.core_impls import NO_COMPILER
from tests.test_messages_fuzz import STREAMS, VALID, json_values, payloads, shaped_payload
from tests.test_perf_equivalence import books_of, scripts

pytestmark = pytest.mark.skipif(NO_COMPILER, reason="BACKPACK_NO_COMPILER=1: there is no second core to compare")

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _compiled():
    module = speedups.compiled_for(speedups.CYTHON)
    assert module is not None
    return module


def _outcome(fn: Any, *args: Any) -> str:
    """What a fast handler did: the repr of its event, or that it declined (any exception)."""
    try:
        return repr(fn(*args))
    except Exception:
        return "declined"


@SETTINGS
@given(st.sampled_from(["depth", "trade"]).flatmap(lambda k: st.tuples(st.just(k), shaped_payload(k))))
def test_compiled_handlers_accept_and_build_exactly_what_the_pure_ones_do(case: tuple[str, dict]) -> None:
    """For any payload shaped like a depth or trade frame (with wrong types, absent fields, junk numbers),
    the compiled fast handler declines exactly when the pure one does, and otherwise builds an event with
    the same repr."""
    kind, data = case
    data = orjson.loads(json.dumps(data))
    pure = messages._KINDS[kind][1]
    compiled = getattr(_compiled(), f"fast_{kind}")
    assert _outcome(compiled, data, 7) == _outcome(pure, data, 7)


@SETTINGS
@given(st.sampled_from(["depth", "trade"]), payloads | json_values)
def test_compiled_handlers_never_accept_arbitrary_payloads_the_pure_ones_refuse(kind: str, data: Any) -> None:
    """For any JSON value as a payload, both handlers decline or both build the same event."""
    pure = messages._KINDS[kind][1]
    compiled = getattr(_compiled(), f"fast_{kind}")
    assert _outcome(compiled, data, 7) == _outcome(pure, data, 7)


@SETTINGS
@given(st.lists(st.sampled_from(STREAMS).flatmap(
    lambda s: st.builds(lambda d: json.dumps({"stream": s, "data": d}), payloads | json_values)
) | st.sampled_from([json.dumps(v) for v in VALID.values()]) | st.text(max_size=40), min_size=1, max_size=12))
def test_decoders_of_both_cores_agree_frame_by_frame(frames: list[str]) -> None:
    """For any sequence of frames (valid, mutated, junk), a pure and a compiled Decoder emit events with the
    same repr and keep the same counters after every frame."""
    pure, compiled = Decoder("python"), Decoder("cython")
    for frame in frames + frames:  # the second pass takes the fast paths the first one opened
        assert repr(compiled.decode(frame, 3)) == repr(pure.decode(frame, 3))
        assert compiled.stats == pure.stats


@settings(SETTINGS, max_examples=300)
@given(scripts())
def test_routers_of_both_cores_agree_step_by_step(steps: list[tuple[str, Any]]) -> None:
    """For any script of frames, snapshots and reconnects, the compiled Router emits what the pure Router
    emits (by repr), and both end with the same books, decoder counters and Router counters."""
    pure, compiled = Router(implementation="python"), Router(implementation="cython")
    for receipt, (kind, arg) in enumerate(steps):
        if kind == "frame":
            got, want = compiled.receive_frame(arg, receipt), pure.receive_frame(arg, receipt)
        elif kind == "snapshot":
            got, want = compiled.receive_snapshot(*arg, receipt), pure.receive_snapshot(*arg, receipt)
        else:
            got, want = compiled.connection_lost(), pure.connection_lost()
        assert repr(got) == repr(want), (kind, arg)
    assert books_of(compiled.books) == books_of(pure.books)
    assert compiled.decoder.stats == pure.decoder.stats and compiled.stats == pure.stats
    assert compiled.books.ignored == pure.books.ignored


def _synced(symbol: str = "S") -> BookSync:
    sync = BookSync(symbol)
    sync.on_delta(DepthDelta(symbol, 1, 1, [], [], 0, 0))
    sync.on_snapshot(DepthSnapshot(symbol, 1, [(Decimal("99"), Decimal("1"))], [(Decimal("101"), Decimal("2"))], 0))
    assert sync.state == SYNCED
    return sync


LEVELS = st.lists(st.tuples(st.sampled_from([Decimal(x) for x in ("98", "99", "99.0", "100", "101", "102")]),
                            st.sampled_from([Decimal(x) for x in ("0", "0.00", "1", "2.5", "-1", "-0")])),
                  max_size=4)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 4), LEVELS, LEVELS), min_size=1, max_size=20))
def test_the_compiled_book_step_equals_on_decoded_delta(deltas: list[tuple[int, list, list]]) -> None:
    """For any run of deltas (in sequence, gaps, repeats, negative sizes, zero spellings, equal prices
    spelled differently), the compiled book step returns what ``BookSync.on_decoded_delta`` returns and
    leaves the same book, sequence and counters."""
    step = _compiled().synced_delta
    pure, compiled = _synced(), _synced()
    seq = 1
    for jump, bids, asks in deltas:
        seq += jump
        d = DepthDelta("S", seq, seq, bids, asks, 5, 6, 7)
        assert repr(step(compiled, d, SYNCED)) == repr(pure.on_decoded_delta(d))
        assert (compiled.state, compiled.last_update_id, compiled.stats) == (pure.state, pure.last_update_id, pure.stats)
        assert repr(compiled.book.top()) == repr(pure.book.top())
        assert compiled.book._bid_keys == sorted(compiled.book._bids)  # the sorted price list stays in step
        assert compiled.book._ask_keys == sorted(compiled.book._asks)
        if compiled.state != SYNCED:
            break


def test_the_compiled_price_cache_is_bounded() -> None:
    """Hostile streams of ever new prices cost time, not memory: the cache is cleared when full."""
    compiled = _compiled()
    limit = compiled.DECIMAL_CACHE_MAX
    assert limit == messages._DECIMAL_CACHE_MAX
    for i in range(limit + 10):
        compiled.fast_trade({"s": "S", "q": "1", "t": i, "m": True, "b": "x", "a": "y", "T": 1, "E": 1,
                             "p": f"{i}.5"}, 0)
        assert compiled.price_cache_size() <= limit
    assert compiled.price_cache_size() < limit


def test_compiled_events_are_real_events() -> None:
    """The slot stores build ordinary dataclass instances: equal to, hashable like and printed like the
    ones ``__init__`` builds."""
    compiled = _compiled()
    data = {"e": "depth", "E": 5, "s": "S", "U": 3, "u": 4, "T": 6, "b": [["1.50", "2"]], "a": [["2", "0"]]}
    delta = compiled.fast_depth(data, 9)
    want = DepthDelta("S", 3, 4, [(Decimal("1.50"), Decimal("2"))], [(Decimal("2"), Decimal("0"))], 6, 5, 9)
    assert delta == want and repr(delta) == repr(want) and type(delta) is DepthDelta
    assert delta.bids[0][0].as_tuple() == Decimal("1.50").as_tuple()
    del delta.receipt  # a slot can be emptied and set again, like any slot
    delta.receipt = 9
    assert delta == want
