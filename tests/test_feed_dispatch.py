"""The two ways a frame's outputs reach cryptofeed: the direct handlers (no protocol callback: every live
feed) and the observed dispatch (a protocol callback first: the harness). They must deliver the same
objects and leave the same records, and the callback-latency histogram must count every call in bounded
memory."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from backpack import compat
from backpack.feed import BackpackFeed
from backpack.feedbase import _LATENCY_SINK_MAX
from backpack.transport import WsFrame

NATIVE = "SOL_USDC"
CHANNELS = [compat.L2_BOOK, compat.TRADES, compat.TICKER]


class TickingClock:
    """Every reading is 7 µs after the one before: latencies, ages and rates are deterministic, and equal
    for two feeds only if both read the clock the same way."""

    def __init__(self) -> None:
        self.t = 1_754_006_400_000_000

    def now_us(self) -> int:
        self.t += 7
        return self.t

    async def sleep_us(self, delay_us: int) -> None:
        self.t += max(0, delay_us)


class _NoFetch:
    def cancel(self) -> None:
        pass


def _depth(seq: int, size: str) -> str:
    return json.dumps({"stream": f"depth.{NATIVE}", "data": {
        "e": "depth", "E": 1_754_006_400_000_001, "s": NATIVE, "a": [["11", size]], "b": [["9", "2"]],
        "U": seq, "u": seq, "T": 1_754_006_400_000_000}})


def _trade(tid: int, price: str) -> str:
    return json.dumps({"stream": f"trade.{NATIVE}", "data": {
        "e": "trade", "E": 1_754_006_400_000_002, "s": NATIVE, "p": price, "q": "0.5", "b": "1", "a": "2",
        "t": tid, "T": 1_754_006_400_000_001 + tid, "m": tid % 2 == 0}})


def _ticker(bid: str) -> str:
    return json.dumps({"stream": f"bookTicker.{NATIVE}", "data": {
        "e": "bookTicker", "E": 1_754_006_400_000_003, "s": NATIVE, "a": "12", "A": "1", "b": bid, "B": "3",
        "u": 7, "T": 1_754_006_400_000_002}})


def _snapshot(last: int) -> bytes:
    return json.dumps({"asks": [["11", "1"]], "bids": [["9", "1"]], "lastUpdateId": str(last),
                       "timestamp": 1}).encode()


def _seen(book: Any) -> tuple:
    """What a callback could read from a book at the moment it was handed over."""
    return (book.symbol, book.sequence_number, book.timestamp, book.delta, book.book.bids.to_dict(),
            book.book.asks.to_dict(), len(book.book.bids), book.book.asks.index(0))


def _build(observed: bool, delivered: list[Any], protocol: list[Any]) -> BackpackFeed:
    def callback(channel: str) -> Any:
        async def cb(obj: Any, receipt: float) -> None:
            delivered.append((channel, receipt, _seen(obj) if channel == compat.L2_BOOK else obj.to_dict()))
        return cb

    return BackpackFeed(
        symbols=["SOL-USDC"], channels=CHANNELS, callbacks={c: callback(c) for c in CHANNELS},
        clock=TickingClock(), protocol_callback=protocol.append if observed else None,
        config={"log": {"disabled": True}},
    )


async def _run(observed: bool, ops: list[tuple[str, int]]) -> tuple[BackpackFeed, list[Any], list[Any]]:
    delivered: list[Any] = []
    protocol: list[Any] = []
    feed = _build(observed, delivered, protocol)
    feed._snapshot_tasks[NATIVE] = _NoFetch()  # type: ignore[assignment]  # no REST: the test syncs the book
    seq, receipt = 100, 1_000
    await feed._on_frame(WsFrame(_depth(seq, "1"), receipt))  # buffered; asks for a snapshot
    await feed._dispatch(feed.router.receive_snapshot(NATIVE, _snapshot(seq), receipt))
    for op, n in ops:
        receipt += 1 + n % 3
        if op == "depth":
            seq += 1
            frame = _depth(seq, str(1 + n % 4))
        elif op == "gap":
            seq += 3
            frame = _depth(seq, "5")
        elif op == "snapshot":
            await feed._dispatch(feed.router.receive_snapshot(NATIVE, _snapshot(seq), receipt))
            continue
        elif op == "trade":
            frame = _trade(n % 5, str(100 + n))  # ids repeat: duplicates are dropped by the core
        elif op == "ticker":
            frame = _ticker(str(9 + n % 2))
        else:
            frame = "not json" if n % 2 else '{"id": null, "error": {"code": 4005, "message": "nope"}}'
        await feed._on_frame(WsFrame(frame, receipt * 1_000_000 if op == "trade" and n == 3 else receipt))
    return feed, delivered, protocol


_ops = st.lists(st.tuples(st.sampled_from(["depth", "depth", "trade", "trade", "ticker", "gap", "snapshot",
                                           "error"]), st.integers(0, 20)), max_size=30)


@settings(max_examples=60, deadline=None)
@given(ops=_ops)
def test_direct_and_observed_dispatch_deliver_and_record_the_same(ops: list[tuple[str, int]]) -> None:
    """For any frames (deltas, gaps, snapshots, trades with repeated ids, tickers, junk), a feed without a
    protocol callback and one with one hand equal objects to the same callbacks in the same order, and
    report the same stream activity, book times, /metrics samples (latencies included) and health."""
    direct, got_direct, none = asyncio.run(_run(False, ops))
    observed, got_observed, protocol = asyncio.run(_run(True, ops))
    assert none == []
    assert got_direct == got_observed
    assert sum(1 for channel, _, _ in got_direct if channel == compat.TRADES) == sum(
        1 for out in protocol if type(out).__name__ == "Trade")
    assert direct.activity.counts == observed.activity.counts
    assert direct.activity.last == observed.activity.last
    assert direct._book_times == observed._book_times
    assert direct._last_frame_us == observed._last_frame_us
    assert direct.registry.snapshot() == observed.registry.snapshot()
    assert direct.health_status(10**18, 10**9) == observed.health_status(10**18, 10**9)


class _Listing:
    """A market list that names the market its own way (what ``exchange_symbol_to_std_symbol`` reads)."""

    def __contains__(self, native: object) -> bool:
        return native == NATIVE

    def to_normalized(self, native: str) -> str:
        return "SOL-USDC-LISTED"


def test_a_market_list_refresh_renames_trades_delivered_after_it() -> None:
    """The trade route caches the normalized name; a new market list must reach the next trade."""

    async def main() -> list[Any]:
        delivered: list[Any] = []
        feed = _build(False, delivered, [])
        await feed._on_frame(WsFrame(_trade(1, "100"), 10))
        feed.symbol_map = _Listing()  # type: ignore[assignment]
        await feed._on_frame(WsFrame(_trade(2, "101"), 11))
        return delivered

    delivered = asyncio.run(main())
    assert [obj["symbol"] for _, _, obj in delivered] == ["SOL-USDC", "SOL-USDC-LISTED"]


def test_callback_latency_counts_every_call_and_keeps_at_most_a_bounded_backlog() -> None:
    """Past the sink's bound the durations are folded in as they come: the count is every call, the sum
    what observing each at once gives, and the backlog never exceeds the bound."""
    n = 2 * _LATENCY_SINK_MAX + 5

    async def main() -> tuple[BackpackFeed, int]:
        feed = _build(False, [], [])
        longest = 0
        for i in range(n):
            await feed._on_frame(WsFrame(_trade(i, "100"), 10 + i))
            longest = max(longest, len(feed._latency_by_channel[compat.TRADES]))
        return feed, longest

    feed, longest = asyncio.run(main())
    assert longest <= _LATENCY_SINK_MAX + 1
    assert feed.metrics["callbacks"] == n
    expected = 0.0
    for _ in range(n):
        expected += 7_000 / 1e9  # two clock readings 7 µs apart around each call
    hist = feed.registry.snapshot()["backpack_callback_latency_seconds"]
    assert [row["labels"]["channel"] for row in hist] == [compat.TRADES]
    assert hist[0]["value"]["count"] == n and hist[0]["value"]["sum"] == expected
    assert hist[0]["value"]["buckets"]["1e-05"] == n  # 7 µs each
