"""Every timed decision goes through the one Clock: readings, receipts and waits (backoff, retries)."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from backpack import compat
from backpack.ccxt_feed import BackpackCcxtFeed
from backpack.clock import WallClock, to_us
from backpack.feed import BackpackFeed
from backpack.live import LiveTransport
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until
from .test_ccxt_feed import Recorder, ScriptedExchange, _trade, running


class StoppedClock(WallClock):
    """Time stands still at ``t``; every wait is recorded and returns at once (the replay's contract)."""

    def __init__(self, t: int = 1_754_006_400_000_000) -> None:
        super().__init__()
        self.t = t
        self.waits: list[int] = []

    def now_us(self) -> int:
        return self.t

    async def sleep_us(self, delay_us: int) -> None:
        self.waits.append(delay_us)
        await asyncio.sleep(0)


def test_to_us_rounds_and_never_goes_negative() -> None:
    assert (to_us(0.5), to_us(1e-7), to_us(-3.0), to_us(0.0000015)) == (500_000, 0, 0, 2)


def test_a_feed_takes_its_transport_clock_or_refuses_two_clocks() -> None:
    clock = StoppedClock()
    transport = LiveTransport(clock=clock)
    feed = BackpackFeed(symbols=["SOL-USDC"], channels=[compat.TRADES], transport=transport,
                        config={"log": {"disabled": True}})
    assert feed.clock is clock and feed.ratelog.clock == clock.now_us
    with pytest.raises(ValueError, match="not both"):
        BackpackFeed(symbols=["SOL-USDC"], channels=[compat.TRADES], transport=transport, clock=WallClock(),
                     config={"log": {"disabled": True}})
    own = BackpackFeed(symbols=["SOL-USDC"], channels=[compat.TRADES], clock=clock, config={"log": {"disabled": True}})
    assert own._make_transport().clock is clock  # the live transport it builds reads the feed's clock


@pytest.mark.e2e
async def test_rest_and_snapshot_backoff_wait_on_the_feed_clock_not_on_real_time() -> None:
    """With 5xx snapshots and a clock whose waits return at once, the book still syncs, and the
    waits the feed asked for (REST retries and snapshot retries) are all on that clock."""
    clock = StoppedClock()
    collector = Collector()
    async with running_server(seed=4, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        server.faults.fail_snapshots(count=9, status=503)  # more than one REST call's retries
        async with running_handler(
            symbols=["SOL-USDC"], channels=[compat.L2_BOOK], callbacks=collector.callbacks([compat.L2_BOOK]),
            clock=clock, handler_config={"log": {"disabled": True},
                                         "backpack": backpack_section(server, private=False, rest_retries=3)},
        ) as fh:
            await server.wait_subscribed("depth.SOL_USDC")
            await drive(server, 50)
            await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"),
                        timeout=5)
            feed = fh.feeds[0]
            assert feed.metrics["snapshot_failures"] >= 2 and feed.rest.metrics["retries"] >= 6
    assert len([w for w in clock.waits if w > 0]) >= 8  # 6+ REST retries and 2+ snapshot retries


async def test_the_ccxt_feed_stamps_receipts_and_backs_off_on_its_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = StoppedClock(t=1_800_000_000_000_000)
    fake = ScriptedExchange([ccxt.NetworkError("down"), [_trade(1, 1.0, 1.0)]], market_failures=1)
    trades = Recorder()
    feed = BackpackCcxtFeed(exchange_factory=lambda o: fake, symbols=["BTC-USDC"], channels=[compat.TRADES],
                            callbacks={compat.TRADES: trades}, clock=clock)
    async with running(feed):
        await until(lambda: trades.items, "a trade")
    assert trades.items[0][1] == 1_800_000_000.0  # the receipt is the clock's, not time.time()
    assert len(clock.waits) >= 2 and all(w > 0 for w in clock.waits)  # market-load and watch backoff
