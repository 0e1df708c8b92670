"""Failures are contained: a raising callback, frames nobody asked for, a hung market list, floods of bad
frames and a snapshot task that blows up each cost what they must and nothing more."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from backpack import compat
from backpack.feed import BackpackFeed
from backpack.live import LiveTransport
from backpack.transport import HttpRequest, HttpResponse
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, sent_payloads, until

pytestmark = pytest.mark.e2e

SYM, NAT = "BTC-USDC-PERP", "BTC_USDC_PERP"


def server_book(server: Any, native: str = NAT) -> dict[str, dict]:
    book = server.book(native)
    return {"bids": dict(book["bids"]), "asks": dict(book["asks"])}


async def raising_trade_callback(trade: Any, receipt: float) -> None:
    raise RuntimeError(f"consumer bug on trade {trade.id}")


async def test_a_raising_callback_stops_nothing_and_a_second_feed_is_unaffected(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="backpack")
    bad, good = Collector(), Collector()
    channels = [compat.TRADES, compat.L2_BOOK]
    async with running_server(seed=5, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        from cryptofeed import FeedHandler

        fh = FeedHandler(config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)})
        bad_callbacks = bad.callbacks(channels)
        bad_callbacks[compat.TRADES] = [raising_trade_callback, bad_callbacks[compat.TRADES]]
        fh.add_feed("BACKPACK", symbols=[SYM], channels=channels, callbacks=bad_callbacks)
        fh.add_feed("BACKPACK", symbols=[SYM], channels=channels, callbacks=good.callbacks(channels))
        token = await compat.start_handler(fh)
        try:
            bad_feed, good_feed = fh.feeds
            await until(lambda: len([c for c in server.connections.values() if f"depth.{NAT}" in c.subscriptions]) == 2)
            await drive(server, 600)
            seq = server.market.sequence(NAT)
            await until(lambda: bad.book_sequences.get(SYM) == seq and good.book_sequences.get(SYM) == seq)
            sent = len(sent_payloads(server, f"trade.{NAT}")) // 2  # both connections got every trade
            await until(lambda: len(good.items[compat.TRADES]) == sent and len(bad.items[compat.TRADES]) == sent)
            # the feed whose first trade callback raises keeps an exact book and its second trade callback
            assert bad.books[SYM] == server_book(server) == good.books[SYM]
            assert [t.id for t in bad.items[compat.TRADES]] == [t.id for t in good.items[compat.TRADES]]
            assert sent > 20
            assert bad_feed.callback_errors == {"raising_trade_callback": sent}
            assert good_feed.callback_errors == {} and bad_feed.restarts == good_feed.restarts == 0
            assert bad_feed.session.stats.connects == 1  # never stopped, never reconnected
        finally:
            await compat.stop_handler(fh, token)
    lines = [r for r in caplog.records if "raising_trade_callback" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]  # once, then counted
    assert lines[0].exc_info is not None and "trades" in lines[0].getMessage()


async def test_frames_for_unsubscribed_symbols_create_no_state() -> None:
    collector = Collector()
    channels = [compat.TRADES, compat.L2_BOOK, compat.LIQUIDATIONS]
    foreign_depth = {"e": "depth", "E": 2, "s": "SOL_USDC", "a": [["150", "1"]], "b": [], "U": 1, "u": 1, "T": 1}
    foreign_trade = {"e": "trade", "E": 2, "s": "SOL_USDC", "p": "150", "q": "1", "b": "1", "a": "2", "t": 9,
                     "T": 1, "m": True}  # fmt: skip
    async with running_server(seed=5, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        async with running_handler(
            symbols=[SYM], channels=channels, callbacks=collector.callbacks(channels),
            handler_config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)},
        ) as fh:
            feed = fh.feeds[0]
            await server.wait_subscribed(f"depth.{NAT}")
            for _ in range(50):
                server.faults.send_raw(json.dumps({"stream": "depth.SOL_USDC", "data": foreign_depth}))
                server.faults.send_raw(json.dumps({"stream": "trade.SOL_USDC", "data": foreign_trade}))
            await drive(server, 2500)  # liquidations are rare: run long enough to see several symbols'
            await until(lambda: collector.book_sequences.get(SYM) == server.market.sequence(NAT))
            await until(lambda: feed.router.stats["unsubscribed"] >= 100)
            assert set(feed.router.books) == {NAT} and set(feed.router._trades) <= {NAT}
            assert not any("SOL_USDC" in path for _, path, _ in server.rest_log)  # no snapshot fetched for it
            assert {t.symbol for t in collector.items[compat.TRADES]} == {SYM}
            # liquidations arrive market-wide; only the subscribed symbol's are delivered
            sent = sent_payloads(server, "liquidation")
            assert {d["s"] for d in sent} > {NAT}, "the market sent no other symbol's liquidation"
            ours = [d for d in sent if d["s"] == NAT]
            assert len(collector.items[compat.LIQUIDATIONS]) == len(ours) > 0
            assert {liq.symbol for liq in collector.items[compat.LIQUIDATIONS]} == {SYM}


class SlowMarkets(LiveTransport):
    """The market list never answers (or fails); everything else is the real transport."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail = fail
        self.market_calls = 0

    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        if request.url.endswith("/api/v1/markets"):
            self.market_calls += 1
            if self.fail:
                return HttpResponse(503, {}, b"down", self.clock.now_us())
            await asyncio.Event().wait()  # hangs until cancelled
        return await super().request(request, timeout=timeout)


@pytest.mark.parametrize("fail", [False, True], ids=["hung", "failing"])
async def test_market_list_trouble_does_not_hold_back_market_data(fail: bool) -> None:
    collector = Collector()
    transport = SlowMarkets(fail=fail)
    async with running_server(seed=5, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        async with running_handler(
            symbols=[SYM], channels=[compat.TRADES, compat.L2_BOOK], transport=transport,
            callbacks=collector.callbacks([compat.TRADES, compat.L2_BOOK]),
            handler_config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)},
        ):
            await server.wait_subscribed(f"depth.{NAT}", timeout=3)
            await drive(server, 200)
            await until(lambda: collector.book_sequences.get(SYM) == server.market.sequence(NAT), timeout=3)
            assert collector.items[compat.TRADES] and transport.market_calls >= 1
    await transport.close()


async def test_a_flood_of_bad_frames_is_counted_and_logged_once(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="backpack")
    collector = Collector()
    async with running_server(seed=5, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        async with running_handler(
            symbols=[SYM], channels=[compat.TRADES, compat.L2_BOOK],
            callbacks=collector.callbacks([compat.TRADES, compat.L2_BOOK]),
            handler_config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)},
        ) as fh:
            feed = fh.feeds[0]
            await server.wait_subscribed(f"depth.{NAT}")
            for i in range(300):
                server.faults.send_raw(f"not json {i}")
            for _ in range(300):
                server.faults.send_error(4006, "Invalid stream")
            await drive(server, 100)
            await until(lambda: feed.metrics["errors"] >= 600)
            await until(lambda: collector.book_sequences.get(SYM) == server.market.sequence(NAT))
    bad = [r for r in caplog.records if "undecodable frame" in r.getMessage()]
    exchange = [r for r in caplog.records if "exchange error frame" in r.getMessage()]
    assert len(bad) == 1 and len(exchange) == 1, [r.getMessage() for r in bad + exchange]
    assert feed.ratelog.suppressed >= 598


class ExplodingDepth(LiveTransport):
    """The first depth snapshot request fails with an error no layer expects."""

    def __init__(self) -> None:
        super().__init__()
        self.exploded = 0

    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        if request.url.endswith("/api/v1/depth") and not self.exploded:
            self.exploded += 1
            raise RuntimeError("unexpected failure below the REST client")
        return await super().request(request, timeout=timeout)


async def test_a_snapshot_task_that_blows_up_is_retried_not_left_buffering() -> None:
    collector = Collector()
    transport = ExplodingDepth()
    loop = asyncio.get_running_loop()
    unretrieved: list[dict] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    try:
        async with running_server(seed=5, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
            async with running_handler(
                symbols=[SYM], channels=[compat.L2_BOOK], transport=transport,
                callbacks=collector.callbacks([compat.L2_BOOK]),
                handler_config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)},
            ) as fh:
                feed = fh.feeds[0]
                await server.wait_subscribed(f"depth.{NAT}")
                await drive(server, 200)
                await until(lambda: collector.book_sequences.get(SYM) == server.market.sequence(NAT))
                assert collector.books[SYM] == server_book(server)
                assert transport.exploded == 1 and feed.metrics["snapshot_failures"] == 1
                assert feed.metrics["internal_errors"] == 1
    finally:
        loop.set_exception_handler(previous)
        await transport.close()
    assert not [c for c in unretrieved if "exception was never retrieved" in c.get("message", "")]


async def test_base_callback_isolates_each_consumer_for_both_feeds() -> None:
    """The ccxt-backed feed shares the isolation: the callbacks after a raising one still run."""
    from backpack.ccxt_feed import BackpackCcxtFeed

    got: list[Any] = []

    async def boom(obj: Any, receipt: float) -> None:
        raise ValueError("nope")

    async def keep(obj: Any, receipt: float) -> None:
        got.append(obj)

    for cls in (BackpackFeed, BackpackCcxtFeed):
        feed = cls(symbols=[SYM], channels=[compat.TRADES], callbacks={compat.TRADES: [boom, keep]},
                   config={"log": {"disabled": True}})
        await feed.callback(compat.TRADES, "t1", 1.0)
        await feed.callback(compat.TRADES, "t2", 2.0)
        assert feed.callback_errors == {"test_base_callback_isolates_each_consumer_for_both_feeds.<locals>.boom": 2}
    assert got == ["t1", "t2", "t1", "t2"]


async def test_a_run_that_fails_unexpectedly_is_restarted_not_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    """On either cryptofeed line the feed's own coroutine survives a bug in one run: it is logged,
    counted and started again, and nothing escapes into the FeedHandler."""
    from backpack import feedbase

    runs: list[int] = []

    async def flaky_run(self: BackpackFeed, stop: asyncio.Event) -> None:
        runs.append(len(runs) + 1)
        if len(runs) < 3:
            raise KeyError("bug in run")
        await stop.wait()

    monkeypatch.setattr(BackpackFeed, "_run", flaky_run)
    monkeypatch.setattr(feedbase, "equal_jitter", lambda *a: 0.01)
    feed = BackpackFeed(symbols=[SYM], channels=[compat.TRADES], config={"log": {"disabled": True}})
    stop = asyncio.Event()
    task = asyncio.ensure_future(feed.run(stop) if compat.CRYPTOFEED_MAJOR >= 3 else feed._supervised(stop))
    await until(lambda: len(runs) == 3)
    assert not task.done() and feed.restarts == 2
    stop.set()
    await asyncio.wait_for(task, 5)  # ends cleanly, no exception


async def test_resyncs_are_logged_once_per_symbol_and_cause_and_the_core_stays_quiet(caplog) -> None:
    from decimal import Decimal

    from backpack.protocol.book import BookSync
    from backpack.protocol.events import DepthDelta, DepthSnapshot, ResyncNeeded

    caplog.set_level(logging.DEBUG, logger="backpack")
    sync = BookSync("S")
    sync.on_delta(DepthDelta("S", 1, 1, [], [], 0, 0))
    sync.on_snapshot(DepthSnapshot("S", 1, [], [], 0))
    outs = []
    for i in range(100):  # a stream of deltas with negative sizes: each one invalidates the book
        outs += sync.on_delta(DepthDelta("S", 2 + i, 2 + i, [(Decimal(1), Decimal(-1))], [], 0, 0))
        sync.on_snapshot(DepthSnapshot("S", 2 + i, [], [], 0))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("backpack.protocol")]
    feed = BackpackFeed(symbols=[SYM], channels=[compat.L2_BOOK], config={"log": {"disabled": True}})
    for out in outs:
        if isinstance(out, ResyncNeeded):
            await feed._on_resync(out)
    warned = [r for r in caplog.records if "book resync" in r.getMessage()]
    assert feed.metrics["resyncs"] == 100 and len(warned) == 1 and "invalid_level" in warned[0].getMessage()
