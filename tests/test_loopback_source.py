"""The MarketSource seam: the seeded generator behind it serves exactly what it served before the seam.

The golden digests below were taken from the server before ``MarketSource`` existed (commit 8b4bf63):
one session of WebSocket frames and REST answers (errors included), with and without
``ints_as_strings``. If a deliberate change to the generator moves them, re-take them from the commit
before that change and say so in its message; the equivalence test beside them holds on any generator.
The private account's activity is switched off (every ``p_*`` knob but the public market's, so one added
later is switched off too: account events move the public frames' E/T): the session's private path is
the subscribe-time positions snapshot.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import aiohttp
import pytest

from backpack.protocol.auth import Signer
from harness.loopback.market import MarketConfig, MarketGenerator, encode_frame
from harness.loopback.server import TEST_ACCOUNT_SECRET, BackpackServer
from harness.pytest_plugin import running_server

CLOCK_MS = 1_754_006_400_000
SYMBOLS = ("SOL_USDC", "BTC_USDC_PERP")
PUBLIC = [
    f"{kind}.{s}"
    for s in SYMBOLS
    for kind in (
        "depth",
        "depth.200ms",
        "bookTicker",
        "trade",
        "ticker",
        "kline.1m",
        "markPrice",
        "openInterest",
        "liquidation",
    )
] + ["liquidation"]
PRIVATE = ["account.positionUpdate", "account.positionUpdate.BTC_USDC_PERP"]
REST_PATHS = [
    "/api/v1/markets", "/api/v1/markets?marketType=PERP", "/api/v1/markets?marketType=NOPE",
    "/api/v1/market?symbol=SOL_USDC", "/api/v1/market?symbol=NOPE_USDC", "/api/v1/market",
    "/api/v1/assets", "/api/v1/securities",
    "/api/v1/depth?symbol=SOL_USDC", "/api/v1/depth?symbol=BTC_USDC_PERP&limit=5",
    "/api/v1/depth?symbol=SOL_USDC&limit=7", "/api/v1/depth?symbol=SOL_USDC&limit=x", "/api/v1/depth",
    "/api/v1/trades?symbol=SOL_USDC&limit=5", "/api/v1/trades?symbol=SOL_USDC&limit=0",
    "/api/v1/klines?symbol=SOL_USDC&interval=1m&startTime=0",
    "/api/v1/klines?symbol=SOL_USDC&interval=7m&startTime=0",
    "/api/v1/klines?symbol=SOL_USDC&interval=1m", "/api/v1/klines?interval=1m&startTime=0",
    "/api/v1/ticker?symbol=SOL_USDC", "/api/v1/ticker?symbol=SOL_USDC&interval=1h", "/api/v1/tickers",
    "/api/v1/markPrices", "/api/v1/markPrices?symbol=BTC_USDC_PERP", "/api/v1/openInterest",
    "/api/v1/fundingRates?symbol=BTC_USDC_PERP&limit=3", "/api/v1/fundingRates?symbol=BTC_USDC_PERP&limit=0",
    "/api/v1/time", "/api/v1/status", "/api/v1/ping", "/api/v1/nothing", "/nothing",
]  # fmt: skip

_PUBLIC_KNOBS = {"p_book", "p_trade", "p_aggregate", "p_liquidation"}


def _quiet_account(seed: int) -> MarketConfig:
    knobs = {name: 0.0 for name in MarketConfig.__dataclass_fields__ if name.startswith("p_")}
    return MarketConfig(seed=seed, **{k: v for k, v in knobs.items() if k not in _PUBLIC_KNOBS})


GOLDEN = {
    False: "5718379d653b99d7a4a3df84878dc7b93ee2b2bcf0b97819418e16bf6943c226",
    True: "ab6876a4ffbc44bb3c79c1374d757a238cdad775f376b1ef5a3c758ec2607fb9",
}


async def _session_digest(server: BackpackServer) -> str:
    h = hashlib.sha256()

    async def rest(http: aiohttp.ClientSession) -> None:
        for path in REST_PATHS:
            async with http.get(server.rest_url + path) as resp:
                h.update(f"{path} {resp.status} {resp.content_type}\n".encode() + await resp.read() + b"\n")

    async with aiohttp.ClientSession() as http:
        await rest(http)
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": PUBLIC}))
        signature = Signer(TEST_ACCOUNT_SECRET).ws_signature(CLOCK_MS, 5000)
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": PRIVATE, "signature": signature}))
        await server.wait_subscribed(PRIVATE[-1])
        for _ in range(12):
            server.step(25)
            await server.flush()
            await asyncio.sleep(0)
        await rest(http)
        await ws.close()
    for text in server.frames():
        h.update(text.encode() + b"\n")
    return h.hexdigest()


@pytest.mark.parametrize("ints_as_strings", [False, True], ids=["ints", "ints-as-strings"])
async def test_seeded_session_is_byte_identical_to_before_the_seam(ints_as_strings: bool) -> None:
    config = _quiet_account(5)
    async with running_server(
        market_config=config, rate=0, clock_ms=lambda: CLOCK_MS, ints_as_strings=ints_as_strings
    ) as server:
        digest = await _session_digest(server)
        assert len(server.frames()) > 1000  # the session is not trivially small
    assert digest == GOLDEN[ints_as_strings]


async def test_server_sends_what_the_generator_emits_for_each_subscription() -> None:
    """Invariant: a subscriber gets exactly the generator's emissions on its streams, in order."""
    config = MarketConfig(seed=9)
    twin = MarketGenerator(config)
    async with running_server(market_config=config, rate=0) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": PUBLIC}))
        await server.wait_subscribed(PUBLIC[-1])
        for _ in range(8):
            server.step(25)
            await server.flush()
        want = [encode_frame(e.stream, e.data) for e in twin.run(200) if e.stream in PUBLIC]
        got: list[Any] = server.frames()
        await ws.close()
    assert len(want) > 500 and got == want
