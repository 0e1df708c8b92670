"""Each injected fault: the native feed recovers, keeps a correct book and never delivers a trade twice."""

from __future__ import annotations

import logging

import pytest

from backpack import compat
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until

pytestmark = pytest.mark.e2e

SYM, NAT = "BTC-USDC-PERP", "BTC_USDC_PERP"
CHANNELS = [compat.TRADES, compat.L2_BOOK]


def server_book(server):
    book = server.book(NAT)
    return {"bids": dict(book["bids"]), "asks": dict(book["asks"])}


def in_step(collector: Collector, server) -> bool:
    return collector.book_sequences.get(SYM) == server.market.sequence(NAT)


def assert_trades_once(collector: Collector) -> None:
    ids = [(t.symbol, t.id) for t in collector.items[compat.TRADES]]
    assert ids, "no trades delivered"
    assert len(ids) == len(set(ids)), "a trade was delivered twice"


async def run_with_fault(inject, *, arm=None, private: bool = False, channels=CHANNELS, steps_before=200,
                         steps_after=300, extra: dict | None = None, check_book: bool = True):
    """Run the feed on a stepped server, ``arm`` faults before it connects, ``inject`` once the book is synced."""
    collector = Collector()
    async with running_server(seed=11, rate=0, ping_interval=0.2, pong_timeout=1.0) as server:
        if arm is not None:
            arm(server)
        section = backpack_section(server, private=private, **(extra or {}))
        async with running_handler(
            symbols=[SYM], channels=channels, callbacks=collector.callbacks(channels),
            handler_config={"log": {"disabled": True}, "backpack": section},
        ) as fh:
            feed = fh.feeds[0]
            await server.wait_subscribed(f"depth.{NAT}")
            await drive(server, steps_before)
            await until(lambda: in_step(collector, server))
            await inject(server, feed)
            await drive(server, steps_after)
            if check_book:
                await until(lambda: in_step(collector, server), timeout=15)
                assert collector.books[SYM] == server_book(server)
            return collector, feed, server


async def test_socket_killed_mid_stream_reconnects_resubscribes_and_resyncs() -> None:
    async def inject(server, feed):
        server.faults.close_socket(abrupt=True)
        await until(lambda: feed.session.stats.reconnects >= 1 and feed.session.session is not None)
        await server.wait_subscribed(f"depth.{NAT}", connection_id=max(server.connections))

    collector, feed, server = await run_with_fault(inject)
    assert feed.session.stats.reconnects >= 1
    assert feed.metrics["resyncs"] >= 1  # the book was invalidated by the reconnect, then rebuilt
    assert_trades_once(collector)


async def test_missing_pong_and_silent_server_trip_the_watchdog() -> None:
    async def inject(server, feed):
        server.faults.stop_pongs()
        server.faults.stop_pings()
        await until(lambda: feed.session.stats.reconnects >= 1, timeout=10)
        server.faults.resume_pongs()
        server.faults.resume_pings()
        await server.wait_subscribed(f"depth.{NAT}", connection_id=max(server.connections))

    collector, feed, server = await run_with_fault(inject, extra={"ws_watchdog_seconds": 0.5})
    assert 4000 in feed.session.stats.closes  # closed by our watchdog, not by the server
    assert_trades_once(collector)


async def test_skipped_sequence_resyncs_that_symbol() -> None:
    async def inject(server, feed):
        server.faults.skip_depth(NAT)

    collector, feed, server = await run_with_fault(inject)
    assert feed.router.books.get(NAT).stats["resyncs"] >= 1
    assert feed.metrics["snapshots"] >= 2
    assert_trades_once(collector)


async def test_duplicate_delta_is_ignored_and_counted() -> None:
    async def inject(server, feed):
        server.faults.duplicate_depth(NAT, count=3)

    collector, feed, server = await run_with_fault(inject)
    assert feed.router.books.get(NAT).stats["duplicates"] == 3
    assert feed.metrics["resyncs"] == 0


async def test_snapshot_5xx_is_retried() -> None:
    async def inject(server, feed):
        server.faults.fail_snapshots(count=3, status=503)
        server.faults.skip_depth(NAT)  # force a resync so a fresh snapshot is needed

    collector, feed, server = await run_with_fault(inject)
    assert feed.rest.metrics["retries"] >= 3


async def test_rejected_signature_reports_and_keeps_public_channels(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="backpack")

    async def inject(server, feed):
        await until(lambda: feed.session.stats.private_stopped, "private channels to stop", timeout=20)

    collector, feed, server = await run_with_fault(
        inject, arm=lambda server: server.faults.reject_private(count=None), private=True,
        channels=CHANNELS + [compat.ORDER_INFO],
    )
    assert feed.session.stats.private_rejections == feed.bp_config.private_subscribe_retries + 1
    assert not collector.items[compat.ORDER_INFO]
    assert_trades_once(collector)
    assert "private channels stopped, public channels keep running" in caplog.text
    assert feed.bp_config.secret_seed() not in caplog.text
