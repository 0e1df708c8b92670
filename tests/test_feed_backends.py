"""cryptofeed backends (here the UDP socket backend, to 127.0.0.1) receive the feed's data on both cryptofeed lines."""

from __future__ import annotations

import asyncio
import json

import pytest
from cryptofeed.backends.socket import TradeSocket

from backpack import compat
from harness.pytest_plugin import running_server

from .feed_helpers import backpack_section, drive, running_handler, until

pytestmark = pytest.mark.e2e


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.messages.append(data)


async def test_trades_reach_a_cryptofeed_socket_backend() -> None:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(_Datagrams, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        async with running_server(seed=9, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
            async with running_handler(
                symbols=["SOL-USDC"], channels=[compat.TRADES],
                callbacks={compat.TRADES: TradeSocket("udp://127.0.0.1", port=port)},
                handler_config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)},
            ):
                await server.wait_subscribed("trade.SOL_USDC")
                await drive(server, 300)
                await until(lambda: len(sink.messages) >= 5)
        decoded = [json.loads(m) for m in sink.messages]
        data = [d.get("data", d) for d in decoded]
        assert all(d["symbol"] == "SOL-USDC" and d["exchange"] == "BACKPACK" for d in data)
        assert len({d["id"] for d in data}) == len(data)
    finally:
        transport.close()
