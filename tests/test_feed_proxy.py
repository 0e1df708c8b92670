"""The feed's own proxy settings: REST and WS of a running BackpackFeed go through the configured proxy."""

from __future__ import annotations

import pytest

from backpack import compat
from harness.pytest_fixtures import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until
from .test_proxy import TinyProxy

pytestmark = pytest.mark.e2e


async def test_feed_routes_rest_and_ws_through_the_configured_proxy() -> None:
    proxy = TinyProxy()
    proxy_port = await proxy.start()
    collector = Collector()
    channels = [compat.TRADES, compat.L2_BOOK]
    try:
        async with running_server(seed=4, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
            section = backpack_section(server, private=False, rest_proxy=f"http://127.0.0.1:{proxy_port}",
                                       ws_proxy=f"http://127.0.0.1:{proxy_port}")
            async with running_handler(
                symbols=["SOL-USDC"], channels=channels, callbacks=collector.callbacks(channels),
                handler_config={"log": {"disabled": True}, "backpack": section},
            ):
                await server.wait_subscribed("depth.SOL_USDC")
                await drive(server, 200)
                await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"))
                book = server.book("SOL_USDC")
                assert collector.books["SOL-USDC"] == {"bids": dict(book["bids"]), "asks": dict(book["asks"])}
            target = f"127.0.0.1:{server.port}"
            # WS is tunnelled with CONNECT; plain-http REST goes as absolute-form requests
            assert target in proxy.connects
            assert any(f"http://{target}/api/v1/markets" in line for line in proxy.forwards)
            assert any(f"http://{target}/api/v1/depth" in line for line in proxy.forwards)
    finally:
        await proxy.stop()
