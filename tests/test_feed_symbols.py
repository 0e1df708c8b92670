"""The feed's symbol service: markets of every type, unknown symbols reported, periodic refresh."""

from __future__ import annotations

import logging

import pytest

from backpack import compat
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until

pytestmark = pytest.mark.e2e


async def test_unknown_symbol_is_reported_and_the_rest_keeps_running(caplog) -> None:
    caplog.set_level(logging.ERROR, logger="backpack")
    collector = Collector()
    async with running_server(seed=2, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        async with running_handler(
            symbols=["SOL-USDC", "NOPE-USDC"], channels=[compat.L2_BOOK], callbacks=collector.callbacks([compat.L2_BOOK]),
            handler_config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)},
        ) as fh:
            feed = fh.feeds[0]
            await server.wait_subscribed("depth.SOL_USDC")
            await drive(server, 100)
            await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"))
            assert feed.symbol_map is not None and "SOL_USDC" in feed.symbol_map
    assert "NOPE_USDC is not listed by /api/v1/markets" in caplog.text
    markets_calls = [p for _, p, _ in server.rest_log if p.startswith("/api/v1/markets")]
    assert markets_calls and all("marketType=IPERP" in p for p in markets_calls)


async def test_market_list_is_refreshed_after_the_ttl() -> None:
    async with running_server(seed=2, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        section = backpack_section(server, private=False, symbol_cache_ttl=0.2)
        async with running_handler(
            symbols=["SOL-USDC"], channels=[compat.TRADES], callbacks={},
            handler_config={"log": {"disabled": True}, "backpack": section},
        ):
            await until(lambda: sum(p.startswith("/api/v1/markets") for _, p, _ in server.rest_log) >= 3, timeout=10)
