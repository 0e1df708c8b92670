"""The Router's fast paths change nothing observable.

``Router.receive_frame`` short-cuts the generic pipeline (``Decoder.decode`` -> route each event ->
``BookManager.on_delta`` / trade de-duplication) for the frames that dominate a live feed. These tests
drive the optimised Router and a reference built only from the generic public pieces with the same
inputs, and require identical outputs (compared by ``repr``, so even a Decimal's exponent must agree),
identical books and identical counters. Every test runs on each core (``tests/core_impls.py``): the pure
Router and the compiled one (``backpack/protocol/_speedups.pyx``) against the same pure reference.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backpack.protocol import router as router_module
from backpack.protocol import speedups
from backpack.protocol.book import SYNCED, BookManager, BookSync
from backpack.protocol.events import DepthDelta, ErrorEvent, OrderUpdate, Trade
from backpack.protocol.messages import Decoder
from backpack.protocol.router import Router, is_auth_error
from tests.core_impls import each_core

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SYMBOLS = ("SOL_USDC", "BTC_USDC")


class ReferenceRouter:
    """The pre-optimisation pipeline, from public parts only: decode, then route event by event.

    De-duplication remembers every id (unbounded): the tests keep streams far shorter than the Router's
    window, where a bounded memory must agree with it.
    """

    def __init__(self, accept: dict[type, frozenset[str] | None] | None = None) -> None:
        self.decoder = Decoder("python")
        self.books = BookManager()
        self.seen_trades: set[tuple[str, str]] = set()
        self.seen_fills: set[str] = set()
        self.accept = accept
        self.stats = {"duplicate_trades": 0, "duplicate_fills": 0, "auth_errors": 0, "unsubscribed": 0}

    def _accepted(self, event: Any) -> bool:
        if self.accept is None or type(event) is ErrorEvent:
            return True
        if type(event) not in self.accept:
            return False
        symbols = self.accept[type(event)]
        return symbols is None or event.symbol in symbols

    def receive_frame(self, data: str, receipt: int = 0) -> list[Any]:
        out: list[Any] = []
        for event in self.decoder.decode(data, receipt):
            cls = type(event)
            if not self._accepted(event):
                self.stats["unsubscribed"] += 1
            elif cls is DepthDelta:
                out.extend(self.books.on_delta(event))
            elif cls is Trade:
                key = (event.symbol, event.id)
                if key in self.seen_trades:
                    self.stats["duplicate_trades"] += 1
                else:
                    self.seen_trades.add(key)
                    out.append(event)
            elif cls is OrderUpdate and event.event == "orderFill" and event.trade_id is not None:
                key = f"{event.symbol}:{event.trade_id}:{event.order_id}"
                if key in self.seen_fills:
                    self.stats["duplicate_fills"] += 1
                else:
                    self.seen_fills.add(key)
                    out.append(event)
            else:
                if cls is ErrorEvent and is_auth_error(event):
                    self.stats["auth_errors"] += 1
                out.append(event)
        return out

    def receive_snapshot(self, symbol: str, body: Any, receipt: int = 0) -> list[Any]:
        from backpack.protocol.messages import decode_depth_snapshot

        if symbol not in self.books:  # a snapshot nobody asked for creates nothing
            self.books.ignored += 1
            return []
        snap = decode_depth_snapshot(symbol, body, receipt)
        if isinstance(snap, ErrorEvent):
            return [snap, *self.books.get(symbol).on_snapshot_failed()]
        return self.books.on_snapshot(snap)

    def connection_lost(self) -> list[Any]:
        return self.books.reset(None, reason="reconnect")


# --- frames ------------------------------------------------------------------------------------

PRICES = st.sampled_from(["100", "100.0", "100.5", "101", "99.75", "102.25", "98", "0.5", "103"])
GOOD_SIZES = st.sampled_from(["0", "0.0", "1", "2.50", "3.125", "10", "0.001"])
BAD_VALUES = st.sampled_from(
    ["-1", "NaN", "Infinity", "1e3", " 1", "1_0", "", "abc", "-0", "1.2.3", "-", "+1", 5, 1.5, None, True]
)
SIZES = st.one_of(GOOD_SIZES, GOOD_SIZES, GOOD_SIZES, BAD_VALUES)
LEVEL = st.one_of(
    st.tuples(PRICES, SIZES).map(list),
    st.tuples(PRICES, SIZES).map(list),
    st.tuples(st.one_of(PRICES, BAD_VALUES), SIZES).map(list),
    st.sampled_from(["12", {"1": "2", "3": "4"}, ["1"], ["1", "2", "3"], None]),
)
# "-1" is plain decimal text: the decoder passes it and the book must refuse it.
CLEAN_SIZES = st.integers(0, 29).flatmap(lambda i: st.just("-1") if i == 0 else GOOD_SIZES)
CLEAN_LEVEL = st.tuples(PRICES, CLEAN_SIZES).map(list)
IDS = st.one_of(st.integers(0, 40), st.integers(0, 40), st.integers(0, 40).map(str), BAD_VALUES)


@st.composite
def depth_frame(draw: st.DrawFn, state: dict[str, int]) -> str:
    symbol = draw(st.sampled_from(SYMBOLS))
    roll = draw(st.integers(0, 19))
    nxt = state.get(symbol, 10) + 1
    if roll < 16:  # in sequence (the common case)
        first = nxt
        last = nxt + draw(st.sampled_from([0, 0, 0, 1, 2]))
        state[symbol] = last
    elif roll < 19:  # gap, duplicate or step back
        first = nxt + draw(st.integers(-4, 4))
        last = first + draw(st.integers(-1, 2))
    else:  # ids of any shape
        first, last = draw(IDS), draw(IDS)
    clean = draw(st.integers(0, 19)) < 18  # mostly frames the fast paths accept, so books stay synced
    level = CLEAN_LEVEL if clean else LEVEL
    times = [1_700_000_000_000_001, "1700000000000002"] + ([] if clean else [1.5])
    data: dict[str, Any] = {
        "e": "depth", "E": 1_700_000_000_000_000, "s": symbol, "U": first, "u": last,
        "T": draw(st.sampled_from(times)), "b": draw(st.lists(level, max_size=3)),
        "a": draw(st.lists(level, max_size=3)),
    }  # fmt: skip
    if not clean and draw(st.integers(0, 3)) == 0:
        del data[draw(st.sampled_from(sorted(data)))]
    stream_symbol = symbol if draw(st.integers(0, 19)) else draw(st.sampled_from(SYMBOLS))
    stream = draw(st.sampled_from([f"depth.{stream_symbol}", f"depth.200ms.{stream_symbol}"]))
    return json.dumps({"stream": stream, "data": data})


@st.composite
def trade_frame(draw: st.DrawFn) -> str:
    symbol = draw(st.sampled_from(SYMBOLS))
    data: dict[str, Any] = {
        "e": "trade", "E": 1_700_000_000_000_000, "s": symbol, "p": draw(PRICES), "q": draw(SIZES),
        "b": "111", "a": "222", "t": draw(st.one_of(st.integers(1, 30), st.integers(1, 30).map(str), BAD_VALUES)),
        "T": 1_700_000_000_000_001, "m": draw(st.booleans()),
    }  # fmt: skip
    return json.dumps({"stream": f"trade.{symbol}", "data": data})


@st.composite
def fill_frame(draw: st.DrawFn) -> str:
    data = {
        "e": "orderFill", "E": 1_700_000_000_000_000, "s": draw(st.sampled_from(SYMBOLS)), "i": "77",
        "S": "Bid", "t": draw(st.one_of(st.integers(1, 5), st.none())), "T": 1_700_000_000_000_001,
    }  # fmt: skip
    return json.dumps({"stream": "account.orderUpdate", "data": data})


OTHER_FRAMES = st.sampled_from(
    [
        "not json",
        "[]",
        '{"result": null, "id": 1}',
        '{"error": {"code": 4006, "message": "Invalid signature"}, "id": null}',
        '{"error": {"code": 4003, "message": "Invalid signature"}, "id": null}',
        # data and error in one frame: both are reported, on the Router's fast path as in decode-then-route
        json.dumps({"stream": "trade.SOL_USDC", "error": {"code": 4008, "message": "Invalid depth window"},
                    "data": {"e": "trade", "E": 1, "s": "SOL_USDC", "p": "1", "q": "1", "b": "x", "a": "y",
                             "t": 31, "T": 1, "m": True}}),
        json.dumps({"stream": "depth.SOL_USDC", "error": "odd", "data": {"e": "depth", "E": 1, "s": "SOL_USDC",
                    "U": 11, "u": 11, "T": 1, "b": [["100", "1"]], "a": []}}),
        '{"stream": "what.ever", "data": {}}',
        '{"stream": "depth.SOL_USDC"}',
        json.dumps(
            {
                "stream": "bookTicker.SOL_USDC",
                "data": {
                    "e": "bookTicker",
                    "E": 1,
                    "s": "SOL_USDC",
                    "a": "101",
                    "A": "1",
                    "b": "100",
                    "B": "2",
                    "u": 5,
                    "T": 1,
                },
            }
        ),  # fmt: skip
    ]
)


def snapshot_body(draw: st.DrawFn, state: dict[str, int], symbol: str) -> str:
    last = state.get(symbol, 10) + draw(st.integers(-3, 1))
    level = st.tuples(PRICES, GOOD_SIZES).map(list)
    return json.dumps(
        {
            "lastUpdateId": str(last),
            "bids": draw(st.lists(level, max_size=4)),
            "asks": draw(st.lists(level, max_size=4)),
            "timestamp": 1_700_000_000_000_000,
        }  # fmt: skip
    )


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[str, Any]]:
    state: dict[str, int] = {}
    steps: list[tuple[str, Any]] = []
    for _ in range(draw(st.integers(1, 60))):
        roll = draw(st.integers(0, 19))
        if roll < 11:
            steps.append(("frame", draw(depth_frame(state))))
        elif roll < 14:
            steps.append(("frame", draw(trade_frame())))
        elif roll < 15:
            steps.append(("frame", draw(fill_frame())))
        elif roll < 16:
            steps.append(("frame", draw(OTHER_FRAMES)))
        elif roll < 19:
            symbol = draw(st.sampled_from(SYMBOLS))
            steps.append(("snapshot", (symbol, snapshot_body(draw, state, symbol))))
        else:
            steps.append(("lost", None))
    return steps


def books_of(books: BookManager) -> dict[str, Any]:
    return {
        s: (
            books.get(s).state,
            books.get(s).last_update_id,
            repr(books.get(s).book.top()),
            books.get(s).stats,
        )
        for s in books
    }


# What a feed subscribed to SOL_USDC's book, BTC_USDC's trades and all private orders accepts.
NARROW = {DepthDelta: frozenset({"SOL_USDC"}), Trade: frozenset({"BTC_USDC"}), OrderUpdate: None}


def run_both(
    steps: list[tuple[str, Any]], impl: str, accept: dict[type, frozenset[str] | None] | None = None
) -> None:
    fast, ref = Router(accept=accept, implementation=impl), ReferenceRouter(accept)
    assert fast.implementation == impl
    for receipt, (kind, arg) in enumerate(steps):
        if kind == "frame":
            got, want = fast.receive_frame(arg, receipt), ref.receive_frame(arg, receipt)
        elif kind == "snapshot":
            got, want = fast.receive_snapshot(*arg, receipt), ref.receive_snapshot(*arg, receipt)
        else:
            got, want = fast.connection_lost(), ref.connection_lost()
        assert repr(got) == repr(want), (kind, arg)
        assert got == want
    assert books_of(fast.books) == books_of(ref.books)
    assert fast.books.ignored == ref.books.ignored
    if accept is not None:
        assert set(fast.books) <= set(accept[DepthDelta] or ())
    assert fast.decoder.stats == ref.decoder.stats
    assert fast.stats == ref.stats


@each_core
@SETTINGS
@given(scripts())
def test_router_matches_the_generic_pipeline(impl: str, steps: list[tuple[str, Any]]) -> None:
    """For any script of frames, snapshots and reconnects, the Router emits exactly what decoding then
    routing event by event emits, and ends with the same books and counters."""
    run_both(steps, impl)


@each_core
@SETTINGS
@given(scripts())
def test_router_with_a_subscription_matches_filtering_first(impl: str, steps: list[tuple[str, Any]]) -> None:
    """For any script, a Router bounded by a subscription emits exactly what dropping unsubscribed
    events before any routing emits, and holds books only for subscribed symbols."""
    run_both(steps, impl, NARROW)


def _depth(seq: int, bids: list[list[str]], asks: list[list[str]], symbol: str = "SOL_USDC") -> str:
    data = {"e": "depth", "E": 5, "s": symbol, "U": seq, "u": seq, "T": 6, "b": bids, "a": asks}
    return json.dumps({"stream": f"depth.{symbol}", "data": data})


def _synced_router(impl: str) -> Router:
    r = Router(implementation=impl)
    r.receive_frame(_depth(10, [], []))
    body = json.dumps({"lastUpdateId": "10", "bids": [["99", "1"], ["100", "2"]], "asks": [["101", "3"]]})
    r.receive_snapshot("SOL_USDC", body)
    assert r.books.get("SOL_USDC").state == SYNCED
    return r


@each_core
def test_synced_fast_path_applies_updates_inserts_and_deletes(impl: str) -> None:
    r = _synced_router(impl)
    [upd] = r.receive_frame(_depth(11, [["100", "0"], ["99.5", "4"]], [["101", "3.5"]]), receipt=7)
    assert (upd.kind, upd.sequence, upd.timestamp, upd.receipt) == ("delta", 11, 6, 7)
    assert upd.delta.bids == [(Decimal("100"), Decimal("0")), (Decimal("99.5"), Decimal("4"))]
    bids, asks = r.books.get("SOL_USDC").book.top()
    assert bids == [(Decimal("99.5"), Decimal("4")), (Decimal("99"), Decimal("1"))]
    assert asks == [(Decimal("101"), Decimal("3.5"))]
    assert r.books.get("SOL_USDC").stats["applied"] == 1


@each_core
def test_synced_fast_path_still_refuses_a_negative_size(impl: str) -> None:
    """The decoder passes "-1" (plain decimal text); the book, not the decoder, refuses it."""
    r = _synced_router(impl)
    out = r.receive_frame(_depth(11, [["98", "1"]], [["102", "-1"]]))
    assert [type(o).__name__ for o in out] == ["ResyncNeeded", "FetchSnapshot"]
    assert out[0].reason == "invalid_level"
    sync = r.books.get("SOL_USDC")
    assert sync.state == "buffering" and len(sync.book) == 0


@each_core
def test_on_decoded_delta_never_raises_on_foreign_input(impl: str) -> None:
    """Callers other than the decoder can hand anything to the trusted entry point; it must not raise."""
    compiled = speedups.compiled_for(impl)
    for bad in ([("x", "y")], [(Decimal(1), "2")], [None], "ab", [(Decimal(1), Decimal("NaN"))]):
        sync = BookSync("S")
        sync.on_delta(DepthDelta("S", 1, 1, [], [], 0, 0))
        from backpack.protocol.events import DepthSnapshot

        sync.on_snapshot(DepthSnapshot("S", 1, [], [], 0))
        assert sync.state == SYNCED
        delta = DepthDelta("S", 2, 2, bad, [], 0, 0)  # type: ignore[arg-type]
        out = sync.on_decoded_delta(delta) if compiled is None else compiled.synced_delta(sync, delta, SYNCED)
        assert all(type(o).__name__ in ("ResyncNeeded", "FetchSnapshot") for o in out), (bad, out)
        assert sync.state != SYNCED or sync.last_update_id == 2


def _trade(tid: int | str, symbol: str = "SOL_USDC") -> str:
    data = {
        "e": "trade",
        "E": 1,
        "s": symbol,
        "p": "1",
        "q": "1",
        "b": "x",
        "a": "y",
        "t": tid,
        "T": 1,
        "m": True,
    }
    return json.dumps({"stream": f"trade.{symbol}", "data": data})


@each_core
def test_replayed_trades_after_a_reconnect_are_dropped(impl: str) -> None:
    r = Router(dedup_window=64, implementation=impl)
    delivered = [e.id for t in range(1, 201) for e in r.receive_frame(_trade(t))]
    r.connection_lost()
    replay = [e.id for t in range(150, 221) for e in r.receive_frame(_trade(t))]
    assert delivered == [str(t) for t in range(1, 201)]
    assert replay == [str(t) for t in range(201, 221)]
    assert r.stats["duplicate_trades"] == 51


def test_every_id_within_the_window_is_remembered_and_memory_is_bounded() -> None:
    """Whatever the order of ids, a repeat of any of the last ``window`` new ids is dropped, an id never
    seen is delivered, and the memory never holds more than twice the window."""
    window = 16
    seen = router_module._SeenIds(window)
    accepted: list[str] = []
    ever: set[str] = set()
    for i in range(2000):
        key = str((i * 7919) % 263 + (i // 400) * 1000)  # wanders back and forth, drifts upwards
        new = seen.add(key)
        if key in accepted[-window:]:
            assert new is False, (i, key)
        if key not in ever:
            assert new is True, (i, key)
        if new:
            accepted.append(key)
        ever.add(key)
        assert len(seen) <= 2 * window


@each_core
def test_out_of_order_new_trade_is_still_delivered(impl: str) -> None:
    r = Router(implementation=impl)
    assert [e.id for e in r.receive_frame(_trade(10))] == ["10"]
    assert [e.id for e in r.receive_frame(_trade(5))] == ["5"]
    assert r.receive_frame(_trade(10)) == [] and r.receive_frame(_trade(5)) == []
    assert [e.id for e in r.receive_frame(_trade(10, "BTC_USDC"))] == ["10"]  # ids are per symbol


@each_core
def test_hot_path_constructors_set_every_field(impl: str) -> None:
    """The hot paths build DepthDelta, Trade and BookUpdate with object.__new__ and explicit attribute
    stores (messages._fast_depth and _fast_trade, BookSync.on_decoded_delta, and their transcriptions in
    _speedups.pyx, which store by slot position). If events.py changes one of these classes, this fails,
    so those places get updated instead of emitting objects with a field left unset."""
    import dataclasses

    from backpack.protocol.events import BookUpdate

    assert [f.name for f in dataclasses.fields(DepthDelta)] == [
        "symbol", "first_update_id", "last_update_id", "bids", "asks", "timestamp", "event_time", "receipt",
    ]  # fmt: skip
    assert [f.name for f in dataclasses.fields(BookUpdate)] == [
        "symbol", "kind", "sequence", "delta", "timestamp", "receipt",
    ]  # fmt: skip
    assert [f.name for f in dataclasses.fields(Trade)] == [
        "symbol", "id", "side", "price", "amount", "timestamp", "event_time", "buyer_order_id",
        "seller_order_id", "receipt",
    ]  # fmt: skip
    for cls in (DepthDelta, BookUpdate, Trade):
        assert not hasattr(cls, "__post_init__")  # bypassing __init__ would skip it
    r = _synced_router(impl)
    [upd] = r.receive_frame(_depth(11, [["98", "1"]], []), receipt=3)
    want_delta = DepthDelta("SOL_USDC", 11, 11, [(Decimal("98"), Decimal("1"))], [], 6, 5, 3)
    assert upd == BookUpdate("SOL_USDC", "delta", 11, want_delta, 6, 3)
    assert repr(upd) == repr(BookUpdate("SOL_USDC", "delta", 11, want_delta, 6, 3))
    [trade] = r.receive_frame(_trade(7), receipt=4)
    assert repr(trade) == repr(Trade("SOL_USDC", "7", "sell", Decimal("1"), Decimal("1"), 1, 1, "x", "y", 4))
