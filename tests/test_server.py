"""The loopback Backpack server and its seeded market, exercised over real 127.0.0.1 sockets.

Silence is tested without timers: the server handles a connection's frames in order, so a malformed
"barrier" frame sent after the thing under test produces a 4002 error that is queued after every
frame the earlier input caused. Everything received before that error is everything that was sent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from backpack.protocol.auth import Signer
from harness.loopback.market import DEFAULT_MARKETS, MarketConfig, MarketGenerator, encode_frame
from harness.loopback.server import (
    TEST_ACCOUNT_API_KEY,
    TEST_ACCOUNT_SECRET,
    BackpackServer,
    StreamError,
    add_serve_arguments,
    check_stream,
    serve,
)
from harness.pytest_plugin import running_server, start_server

BARRIER = "{barrier"
PARSE_ERROR = '{"id":null,"error":{"code":4002,"message":"Parse error"}}'


@pytest_asyncio.fixture
async def srv() -> AsyncIterator[BackpackServer]:
    """Frozen market (the test steps it), fast keep-alive: the shape of ``harness.pytest_plugin.backpack_server``."""
    async with running_server(seed=0, rate=0, ping_interval=0.5, pong_timeout=2.0) as server:
        yield server


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, server: BackpackServer, path: str) -> tuple[int, str, str]:
    async with http.get(server.rest_url + path) as resp:
        return resp.status, resp.content_type, await resp.text()


async def get_json(http: aiohttp.ClientSession, server: BackpackServer, path: str) -> Any:
    status, ctype, body = await get(http, server, path)
    assert (status, ctype) == (200, "application/json"), body
    return json.loads(body)


async def subscribe(ws: aiohttp.ClientWebSocketResponse, *streams: str, **extra: Any) -> None:
    await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": list(streams), **extra}))


async def until_barrier(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10.0) -> list[dict]:
    """Everything the server sent before answering a barrier frame."""
    await ws.send_str(BARRIER)
    out = []
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            if msg.data == PARSE_ERROR:
                return out
            out.append(json.loads(msg.data))


def sign(ts_ms: int, window: int = 5000, secret: str = TEST_ACCOUNT_SECRET) -> list[str]:
    return Signer(secret).ws_signature(ts_ms, window)


def now_ms(server: BackpackServer) -> int:
    return server.clock_ms()


def apply(book: dict[str, dict[Decimal, Decimal]], side: str, levels: list[list[str]]) -> None:
    for price, size in levels:
        if Decimal(size) == 0:
            book[side].pop(Decimal(price), None)
        else:
            book[side][Decimal(price)] = Decimal(size)


# --- pure market -------------------------------------------------------------------------------


def test_market_same_seed_same_emissions_and_different_seed_differs() -> None:
    """Invariant: the emission stream is a function of (seed, number of steps) only."""
    a = [encode_frame(e.stream, e.data) for e in MarketGenerator(MarketConfig(seed=5)).run(300)]
    b = [encode_frame(e.stream, e.data) for e in MarketGenerator(MarketConfig(seed=5)).run(300)]
    c = [encode_frame(e.stream, e.data) for e in MarketGenerator(MarketConfig(seed=6)).run(300)]
    assert a == b
    assert a != c


def test_market_deltas_rebuild_the_book_and_book_never_crosses() -> None:
    """Invariant: initial book + every realtime delta == current book; best bid < best ask after every step;
    every price is a multiple of the tick size; U == previous u + 1; bookTicker u == depth u."""
    gen = MarketGenerator(MarketConfig(seed=11))
    books = {s: gen.book(s) for s in gen.symbols}
    last_u = {s: gen.sequence(s) for s in gen.symbols}
    ticks = {spec.symbol: spec.tick_size for spec in DEFAULT_MARKETS}
    aggregated = 0
    for _ in range(400):
        for em in gen.step():
            sym = em.symbol
            if em.stream == f"depth.{sym}":
                assert em.data["U"] == last_u[sym] + 1
                aggregated += em.data["U"] < em.data["u"]
                last_u[sym] = em.data["u"]
                apply(books[sym], "bids", em.data["b"])
                apply(books[sym], "asks", em.data["a"])
                for price, _ in em.data["a"] + em.data["b"]:
                    assert Decimal(price) % ticks[sym] == 0
            elif em.stream == f"bookTicker.{sym}":
                assert em.data["u"] == last_u[sym]
                assert Decimal(em.data["b"]) == max(books[sym]["bids"])
                assert Decimal(em.data["a"]) == min(books[sym]["asks"])
        for sym in gen.symbols:
            book = gen.book(sym)
            assert max(book["bids"]) < min(book["asks"])
    for sym in gen.symbols:
        assert books[sym] == gen.book(sym)
        assert last_u[sym] == gen.sequence(sym)
    assert aggregated > 0  # multi-event aggregation (U < u) happens


def test_market_trades_klines_and_private_activity_are_consistent() -> None:
    """Invariant: trade ids increase per symbol; a closed kline (X true) is pushed once per candle;
    order fills report cumulative z == sum of their l, and each fill's t is a public trade id."""
    gen = MarketGenerator(MarketConfig(seed=3, p_private=0.5))
    last_trade: dict[str, int] = {}
    public_trade_ids: set[tuple[str, int]] = set()
    filled: dict[str, Decimal] = {}
    closed: set[tuple[str, str]] = set()
    kinds: set[str] = set()
    for em in gen.run(2500):
        d = em.data
        kinds.add(em.stream.split(".")[0] if not em.private else em.stream.split(".")[1])
        if em.stream.startswith("trade."):
            assert d["t"] > last_trade.get(d["s"], 0)
            last_trade[d["s"]] = d["t"]
            public_trade_ids.add((d["s"], d["t"]))
        elif em.stream.startswith("kline.") and d["X"]:
            key = (em.stream, d["t"])
            assert key not in closed
            closed.add(key)
        elif em.stream == "account.orderUpdate" and d["e"] == "orderFill":
            filled[d["i"]] = filled.get(d["i"], Decimal(0)) + Decimal(d["l"])
            assert Decimal(d["z"]) == filled[d["i"]]
            assert (d["s"], d["t"]) in public_trade_ids
            assert d["X"] in ("Filled", "PartiallyFilled")
    assert filled, "no fills generated"
    assert any(iv.startswith("kline.1m.") for iv, _ in closed)
    assert {"depth", "bookTicker", "trade", "ticker", "kline", "markPrice", "liquidation"} <= kinds
    assert {"orderUpdate", "positionUpdate", "balanceUpdate"} <= kinds


def test_encode_frame_can_quote_sequence_integers() -> None:
    data = {"e": "depth", "E": 1, "U": 2, "u": 3, "T": 4, "t": 5, "m": True, "n": 7}
    plain = json.loads(encode_frame("depth.X_Y", data))["data"]
    quoted = json.loads(encode_frame("depth.X_Y", data, ints_as_strings=True))["data"]
    assert plain == data
    assert quoted == {**data, "E": "1", "U": "2", "u": "3", "T": "4", "t": "5"}  # n and m untouched


@pytest.mark.parametrize(
    ("stream", "private"),
    [
        ("depth.SOL_USDC", False),
        ("depth.200ms.SOL_USDC", False),
        ("depth.AAPL.US_USDC_PERP", False),
        ("kline.1month.kSHIB_USDC_PERP", False),
        ("liquidation", False),
        ("account.orderUpdate", True),
        ("account.positionUpdate.SOL_USDC_PERP", True),
        ("account.balanceUpdate", True),
    ],
)
def test_check_stream_accepts(stream: str, private: bool) -> None:
    assert check_stream(stream) is private


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        ("depth.7ms.SOL_USDC", 4008),
        ("depth.250ms.SOL_USDC", 4008),
        ("depth", 4006),
        ("bogus.SOL_USDC", 4006),
        ("kline.2m.SOL_USDC", 4006),
        ("account.balanceUpdate.SOL_USDC", 4006),
        ("account.nope", 4006),
        ("trade.", 4006),
        (5, 4006),
    ],
)
def test_check_stream_rejects(stream: Any, code: int) -> None:
    with pytest.raises(StreamError) as err:
        check_stream(stream)
    assert err.value.code == code


# --- REST --------------------------------------------------------------------------------------


async def test_rest_markets_assets_securities(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    default = await get_json(http, srv, "/api/v1/markets")
    assert [m["symbol"] for m in default] == [s.symbol for s in DEFAULT_MARKETS]
    spot = await get_json(http, srv, "/api/v1/markets?marketType=SPOT")
    assert {m["symbol"] for m in spot} == {"SOL_USDC", "BTC_USDC"}
    both = await get_json(http, srv, "/api/v1/markets?marketType=SPOT&marketType=PERP")
    assert len(both) == 6
    assert await get_json(http, srv, "/api/v1/markets?marketType=RFQ") == []
    status, ctype, body = await get(http, srv, "/api/v1/markets?marketType=FUTURES")
    assert (status, ctype) == (400, "text/plain") and "FUTURES" in body

    one = await get_json(http, srv, "/api/v1/market?symbol=kSHIB_USDC_PERP")
    assert one["baseSymbol"] == "kSHIB" and one["filters"]["price"]["tickSize"] == "0.000001"
    status, ctype, body = await get(http, srv, "/api/v1/market?symbol=KSHIB_USDC_PERP")  # case-sensitive
    assert (status, ctype) == (400, "application/json")
    assert json.loads(body)["code"] == "INVALID_CLIENT_REQUEST"

    assets = await get_json(http, srv, "/api/v1/assets")
    assert {"SOL", "BTC", "USDC", "kSHIB", "AAPL.US"} <= {a["symbol"] for a in assets}
    securities = await get_json(http, srv, "/api/v1/securities")
    assert [s["asset"] for s in securities] == ["AAPL.US"]


async def test_rest_depth_shape_and_errors(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    srv.step(5)
    depth = await get_json(http, srv, "/api/v1/depth?symbol=BTC_USDC&limit=5")
    assert isinstance(depth["lastUpdateId"], str) and int(depth["lastUpdateId"]) == srv.market.sequence(
        "BTC_USDC"
    )
    assert isinstance(depth["timestamp"], int) and depth["timestamp"] == srv.market.now_us
    bids = [Decimal(p) for p, _ in depth["bids"]]
    asks = [Decimal(p) for p, _ in depth["asks"]]
    assert len(bids) == len(asks) == 5
    assert bids == sorted(bids) and asks == sorted(asks)  # both ascending: best bid is LAST
    book = srv.book("BTC_USDC")
    assert bids[-1] == max(book["bids"]) and asks[0] == min(book["asks"])

    status, ctype, body = await get(http, srv, "/api/v1/depth")
    assert (status, ctype) == (400, "text/plain") and "symbol" in body
    status, ctype, _ = await get(http, srv, "/api/v1/depth?symbol=SOL_USDC&limit=abc")
    assert (status, ctype) == (400, "text/plain")
    status, ctype, body = await get(http, srv, "/api/v1/depth?symbol=SOL_USDC&limit=7")
    assert (status, ctype) == (400, "application/json")
    status, ctype, body = await get(http, srv, "/api/v1/depth?symbol=NOPE_USDC")
    assert (status, json.loads(body)) == (
        400,
        {"code": "INVALID_CLIENT_REQUEST", "message": "Market not found"},
    )


async def test_rest_time_ping_status(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    status, ctype, body = await get(http, srv, "/api/v1/time")
    assert (status, ctype) == (200, "text/plain") and body.isdigit()
    assert await get(http, srv, "/api/v1/ping") == (200, "text/plain", "pong")
    assert await get_json(http, srv, "/api/v1/status") == {"message": None, "status": "Ok"}
    status, _, _ = await get(http, srv, "/api/v1/nothing")
    assert status == 404


async def test_rest_market_data_endpoints(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    status, _, body = await get(http, srv, "/api/v1/ticker?symbol=SOL_USDC")
    assert (status, body) == (204, "")  # no trades yet
    srv.step(1300)  # > 1 minute of virtual time: closed 1m candles exist
    ticker = await get_json(http, srv, "/api/v1/ticker?symbol=SOL_USDC")
    assert set(ticker) == {
        "symbol", "firstPrice", "lastPrice", "priceChange", "priceChangePercent", "high", "low", "volume",
        "quoteVolume", "trades",
    }  # fmt: skip
    assert all(isinstance(v, str) for v in ticker.values())
    tickers = await get_json(http, srv, "/api/v1/tickers")
    assert {t["symbol"] for t in tickers} == set(srv.market.symbols)

    trades = await get_json(http, srv, "/api/v1/trades?symbol=SOL_USDC&limit=20")
    assert len(trades) == 20
    ids = [t["id"] for t in trades]
    assert ids == sorted(ids, reverse=True) and all(isinstance(i, int) for i in ids)
    assert set(trades[0]) == {"id", "price", "quantity", "quoteQuantity", "timestamp", "isBuyerMaker"}

    status, ctype, body = await get(http, srv, "/api/v1/klines?symbol=SOL_USDC&interval=1m")
    assert (status, ctype) == (400, "text/plain") and "startTime" in body
    status, ctype, _ = await get(http, srv, "/api/v1/klines?symbol=SOL_USDC&interval=7m&startTime=0")
    assert (status, ctype) == (400, "text/plain")
    start_s = srv.market.config.start_us // 1_000_000
    klines = await get_json(http, srv, f"/api/v1/klines?symbol=SOL_USDC&interval=1m&startTime={start_s}")
    assert len(klines) >= 2 and klines[0]["start"] == "2025-08-01 00:00:00"
    assert klines[0]["end"] == "2025-08-01 00:01:00"
    later = await get_json(http, srv, f"/api/v1/klines?symbol=SOL_USDC&interval=1m&startTime={start_s + 60}")
    assert later == klines[1:]

    marks = await get_json(http, srv, "/api/v1/markPrices")
    assert {m["symbol"] for m in marks} == {s.symbol for s in DEFAULT_MARKETS if s.perp}
    assert all(isinstance(m["nextFundingTimestamp"], int) for m in marks)
    oi = await get_json(http, srv, "/api/v1/openInterest?symbol=BTC_USDC_PERP")
    assert [o["symbol"] for o in oi] == ["BTC_USDC_PERP"]
    rates = await get_json(http, srv, "/api/v1/fundingRates?symbol=SOL_USDC_PERP&limit=2")
    assert len(rates) == 2 and rates[0]["intervalEndTimestamp"] > rates[1]["intervalEndTimestamp"]


async def test_rest_ints_as_strings_option(http: aiohttp.ClientSession) -> None:
    async with running_server(rate=0, ints_as_strings=True) as srv:
        srv.step(100)
        trades = await get_json(http, srv, "/api/v1/trades?symbol=SOL_USDC&limit=3")
        assert all(isinstance(t["id"], str) and isinstance(t["timestamp"], str) for t in trades)
        async with http.ws_connect(srv.ws_url) as ws:
            await subscribe(ws, "depth.SOL_USDC", "trade.SOL_USDC")
            await srv.wait_subscribed("trade.SOL_USDC")
            srv.step(40)
            frames = await until_barrier(ws)
        assert frames
        for f in frames:
            keys = {"E", "T", "U", "u"} if f["stream"].startswith("depth") else {"E", "T", "t"}
            assert all(isinstance(f["data"][k], str) for k in keys), f


# --- WebSocket basics --------------------------------------------------------------------------


async def test_subscribe_gives_only_that_stream(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, "trade.SOL_USDC", "depth.NOPE_USDC")
        await srv.wait_subscribed("trade.SOL_USDC")
        srv.step(80)
        frames = await until_barrier(ws)
    assert frames
    assert {f["stream"] for f in frames} == {"trade.SOL_USDC"}
    assert all(f["data"]["e"] == "trade" and f["data"]["s"] == "SOL_USDC" for f in frames)


async def test_unknown_symbol_is_silence(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, "depth.NOPE_USDC", "trade.SOLUSDC", "bookTicker.sol_usdc")
        await srv.wait_subscribed("depth.NOPE_USDC")
        srv.step(50)
        assert await until_barrier(ws) == []  # no acknowledgement and no data


async def test_unsubscribe_stops_the_stream(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, "depth.SOL_USDC")
        await srv.wait_subscribed("depth.SOL_USDC")
        srv.step(10)
        assert await until_barrier(ws)
        await ws.send_str(json.dumps({"method": "UNSUBSCRIBE", "params": ["depth.SOL_USDC"]}))
        assert await until_barrier(ws) == []  # barrier also orders the unsubscribe before stepping
        srv.step(20)
        assert await until_barrier(ws) == []


async def test_error_frames(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        cases = [
            ("not json", 4002, "Parse error"),
            ('{"method":"SUBSCRIBE"}', 4002, "Parse error"),
            ('{"method":"LIST","params":[]}', 4002, "Parse error"),
            ('{"method":"SUBSCRIBE","params":["bogus.SOL_USDC"]}', 4006, "Invalid stream"),
            ('{"method":"SUBSCRIBE","params":["trade.SOL_USDC","depth"]}', 4006, "Invalid stream"),
            ('{"method":"SUBSCRIBE","params":["depth.7ms.SOL_USDC"]}', 4008, "Invalid depth window"),
        ]
        for text, code, message in cases:
            await ws.send_str(text)
            msg = json.loads((await ws.receive()).data)
            assert msg == {"id": None, "error": {"code": code, "message": message}}, text
        await subscribe(ws, "depth.200ms.SOL_USDC")
        assert await until_barrier(ws) == []  # valid window: no error, no ack
    conn = srv.connections[1]
    assert "trade.SOL_USDC" not in conn.subscriptions  # a bad name voids the whole frame


async def test_ws_on_other_paths_and_non_upgrade_get(
    srv: BackpackServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{srv.ws_url}stream") as ws:
        await ws.send_str("{")
        assert (await ws.receive()).data == PARSE_ERROR
    assert srv.connections[1].path == "/stream"
    status, _, _ = await get(http, srv, "/")
    assert status == 404


async def test_permessage_deflate_negotiated(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url, compress=15) as ws:
        assert ws.compress == 15
        await subscribe(ws, "depth.SOL_USDC")
        await srv.wait_subscribed("depth.SOL_USDC")
        srv.step(5)
        frames = await until_barrier(ws)
    assert frames and all(f["stream"] == "depth.SOL_USDC" for f in frames)


# --- book consistency --------------------------------------------------------------------------


async def test_depth_continuity_and_snapshot_consistency(
    srv: BackpackServer, http: aiohttp.ClientSession
) -> None:
    symbols = ["SOL_USDC", "BTC_USDC_PERP", "AAPL.US_USDC_PERP"]
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, *(f"depth.{s}" for s in symbols), *(f"bookTicker.{s}" for s in symbols))
        await srv.wait_subscribed("bookTicker.AAPL.US_USDC_PERP")
        srv.step(30)
        snapshots = {}
        for s in symbols:
            snap = await get_json(http, srv, f"/api/v1/depth?symbol={s}")
            assert int(snap["lastUpdateId"]) == srv.market.sequence(s)  # == u of the last delta generated
            snapshots[s] = snap
        srv.step(150)
        frames = await until_barrier(ws)
    for s in symbols:
        deltas = [f["data"] for f in frames if f["stream"] == f"depth.{s}"]
        assert deltas
        for prev, cur in zip(deltas, deltas[1:], strict=False):
            assert cur["U"] == prev["u"] + 1
        snap = snapshots[s]
        last = int(snap["lastUpdateId"])
        book: dict[str, dict[Decimal, Decimal]] = {
            "bids": {Decimal(p): Decimal(q) for p, q in snap["bids"]},
            "asks": {Decimal(p): Decimal(q) for p, q in snap["asks"]},
        }
        live = [d for d in deltas if d["u"] > last]
        assert live[0]["U"] <= last + 1 <= live[0]["u"]
        by_u = {}
        for d in live:
            apply(book, "bids", d["b"])
            apply(book, "asks", d["a"])
            by_u[d["u"]] = (max(book["bids"]), min(book["asks"]))
        assert book == srv.book(s)
        for f in frames:
            if f["stream"] == f"bookTicker.{s}" and f["data"]["u"] in by_u:
                best_bid, best_ask = by_u[f["data"]["u"]]
                assert (Decimal(f["data"]["b"]), Decimal(f["data"]["a"])) == (best_bid, best_ask)


async def test_aggregated_depth_stream(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, "depth.600ms.SOL_USDC")
        await srv.wait_subscribed("depth.600ms.SOL_USDC")
        srv.step(100)
        frames = await until_barrier(ws)
    deltas = [f["data"] for f in frames]
    assert len(deltas) >= 5
    assert any(d["U"] < d["u"] for d in deltas)
    for prev, cur in zip(deltas, deltas[1:], strict=False):
        assert cur["U"] == prev["u"] + 1


# --- private streams ---------------------------------------------------------------------------


async def test_private_subscribe_accepted(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        streams = ["account.positionUpdate", "account.orderUpdate", "account.balanceUpdate"]
        await subscribe(ws, *streams, signature=sign(now_ms(srv)))
        snapshot = await until_barrier(ws)
        assert snapshot and all(f["stream"] == "account.positionUpdate" for f in snapshot)
        assert all("e" not in f["data"] for f in snapshot)  # the subscribe-time snapshot has no event type
        assert {f["data"]["s"] for f in snapshot} == set(srv.market.positions)
        srv.step(600)
        frames = await until_barrier(ws)
    events = {(f["stream"], f["data"]["e"]) for f in frames}
    assert ("account.orderUpdate", "orderAccepted") in events
    assert ("account.orderUpdate", "orderFill") in events
    assert ("account.balanceUpdate", "balanceUpdate") in events
    assert any(stream == "account.positionUpdate" for stream, _ in events)


async def test_private_subscribe_per_symbol_snapshot(
    srv: BackpackServer, http: aiohttp.ClientSession
) -> None:
    held = next(iter(srv.market.positions))
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, f"account.positionUpdate.{held}", signature=sign(now_ms(srv)))
        frames = await until_barrier(ws)
        await subscribe(ws, "account.positionUpdate.BTC_USDC", signature=sign(now_ms(srv)))
        assert await until_barrier(ws) == []  # no position there: empty snapshot
    assert [f["data"]["s"] for f in frames] == [held]


@pytest.mark.parametrize(
    ("make_signature", "reason"),
    [
        (lambda ts: None, "Missing signature"),
        (lambda ts: sign(ts)[:3], "Invalid signature"),
        (lambda ts: [sign(ts)[0], sign(ts + 1)[1], str(ts), "5000"], "Invalid signature"),
        (lambda ts: sign(ts, secret="A" * 43 + "="), "Unknown API key"),
        (lambda ts: sign(ts - 10_000, 5000), "Signature expired"),
        (lambda ts: sign(ts, 0), "Invalid window"),
    ],
)
async def test_private_subscribe_rejected(
    srv: BackpackServer, http: aiohttp.ClientSession, make_signature: Any, reason: str
) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        sig = make_signature(now_ms(srv))
        extra = {} if sig is None else {"signature": sig}
        await subscribe(ws, "account.orderUpdate", "account.positionUpdate", "trade.SOL_USDC", **extra)
        frames = await until_barrier(ws)
        assert frames == [{"id": None, "error": {"code": 4003, "message": reason}}]
        srv.step(300)
        after = await until_barrier(ws)
    assert after and {f["stream"] for f in after} == {"trade.SOL_USDC"}  # public part still subscribed


async def test_signature_window_uses_server_clock(http: aiohttp.ClientSession) -> None:
    fixed = 1_800_000_000_000
    async with running_server(rate=0, clock_ms=lambda: fixed) as srv:
        async with http.ws_connect(srv.ws_url) as ws:
            await subscribe(ws, "account.orderUpdate", signature=sign(fixed - 4_000, 5000))
            assert await until_barrier(ws) == []
            await subscribe(ws, "account.orderUpdate", signature=sign(fixed + 6_000, 5000))
            assert (await until_barrier(ws))[0]["error"]["message"] == "Signature expired"


# --- keep-alive --------------------------------------------------------------------------------


async def test_server_pings_and_closes_a_client_that_never_pongs(http: aiohttp.ClientSession) -> None:
    async with running_server(rate=0, ping_interval=0.1, pong_timeout=0.4) as srv:
        async with http.ws_connect(srv.ws_url, autoping=False) as ws:
            msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.PING
            while msg.type == aiohttp.WSMsgType.PING:  # never answer
                msg = await ws.receive(timeout=10)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == 1000 and msg.extra == "Pong timeout"
        conn = srv.connections[1]
        assert conn.close_code == 1000 and conn.sent[-1].kind == "close"


async def test_client_that_pongs_stays_open(http: aiohttp.ClientSession) -> None:
    async with running_server(rate=0, ping_interval=0.1, pong_timeout=0.3) as srv:
        async with http.ws_connect(srv.ws_url) as ws:  # aiohttp answers pings while it is reading
            conn = (await srv.wait_connections(1))[0]
            reader = asyncio.create_task(ws.receive())
            async with asyncio.timeout(10):
                while conn.pongs_received < 5:  # 5 pings: pong_timeout has passed several times
                    await asyncio.sleep(0.05)
            assert conn.open and not ws.closed
            await ws.send_str("{")
            assert (await reader).data == PARSE_ERROR


async def test_server_answers_client_pings(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url, autoping=False) as ws:
        await ws.ping(b"hi")
        await ws.send_str(BARRIER)
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"hi")
        assert (await ws.receive(timeout=10)).data == PARSE_ERROR


# --- faults ------------------------------------------------------------------------------------


async def test_fault_close_socket_with_code(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await srv.wait_connections(1)
        srv.faults.close_socket(4000, "bye")
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4000, "bye")
    assert srv.faults.count("close_socket") == 1
    assert srv.connections[1].close_code == 4000


async def test_fault_abrupt_close(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await srv.wait_connections(1)
        srv.faults.close_socket(abrupt=True)
        msg = await ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
        assert msg.type != aiohttp.WSMsgType.CLOSE or msg.data != 1000  # no clean close handshake
    assert srv.connections[1].sent[-1].kind == "close"


async def test_fault_stop_pongs(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url, autoping=False) as ws:
        srv.faults.stop_pongs(count=1)
        await ws.ping(b"1")
        await ws.send_str(BARRIER)
        assert (await ws.receive(timeout=10)).data == PARSE_ERROR  # no PONG came first
        await ws.ping(b"2")
        await ws.send_str(BARRIER)
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (aiohttp.WSMsgType.PONG, b"2")
    assert srv.faults.count("no_pong") == 1


async def test_fault_stop_pings(http: aiohttp.ClientSession) -> None:
    async with running_server(rate=0, ping_interval=0.05, pong_timeout=0.2) as srv:
        async with http.ws_connect(srv.ws_url) as ws:
            conn = (await srv.wait_connections(1))[0]
            srv.faults.stop_pings()
            pings_before = sum(1 for f in conn.sent if f.kind == "ping")
            async with asyncio.timeout(10):
                while srv.faults.count("no_ping") < 8:  # 8 heartbeats skipped: longer than pong_timeout
                    await asyncio.sleep(0.02)
            assert sum(1 for f in conn.sent if f.kind == "ping") == pings_before
            assert conn.open  # no ping outstanding, so no pong timeout either
            srv.faults.resume_pings()
            async with asyncio.timeout(10):
                while sum(1 for f in conn.sent if f.kind == "ping") == pings_before:
                    await asyncio.sleep(0.02)
            assert not ws.closed


async def test_fault_skip_and_duplicate_depth(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, "depth.SOL_USDC", "depth.BTC_USDC")
        await srv.wait_subscribed("depth.BTC_USDC")
        srv.step(5)
        srv.faults.skip_depth("SOL_USDC")
        srv.step(5)
        srv.faults.duplicate_depth("BTC_USDC")
        srv.step(5)
        frames = await until_barrier(ws)
    sol = [f["data"] for f in frames if f["stream"] == "depth.SOL_USDC"]
    gaps = [(a["u"], b["U"]) for a, b in zip(sol, sol[1:], strict=False) if b["U"] != a["u"] + 1]
    skipped = srv.faults.fired[0]
    assert skipped.kind == "skip_depth" and skipped.detail["symbol"] == "SOL_USDC"
    assert len(gaps) == 1 and gaps[0][1] == skipped.detail["u"] + 1
    assert skipped.detail["u"] not in {d["u"] for d in sol}
    btc = [f["data"] for f in frames if f["stream"] == "depth.BTC_USDC"]
    dups = [a for a, b in zip(btc, btc[1:], strict=False) if a == b]
    assert len(dups) == 1 and srv.faults.count("duplicate_depth") == 1
    assert len(btc) == len({d["u"] for d in btc}) + 1


async def test_fault_delay_error_and_raw_frames(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    async with http.ws_connect(srv.ws_url) as ws:
        await srv.wait_connections(1)
        srv.faults.delay_frames(0.05, count=2)
        srv.faults.send_error(4006, "Invalid stream")
        srv.faults.send_raw("not json at all")
        assert json.loads((await ws.receive(timeout=10)).data) == {
            "id": None,
            "error": {"code": 4006, "message": "Invalid stream"},
        }
        assert (await ws.receive(timeout=10)).data == "not json at all"
    assert srv.faults.count("delay") == 2 and srv.faults.count("send_frame") == 2


async def test_fault_snapshot_5xx_and_rate_limit(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    srv.faults.fail_snapshots(2, status=502)
    assert (await get(http, srv, "/api/v1/depth?symbol=SOL_USDC"))[0] == 502
    assert (await get(http, srv, "/api/v1/depth?symbol=SOL_USDC"))[0] == 502
    assert (await get(http, srv, "/api/v1/depth?symbol=SOL_USDC"))[0] == 200
    srv.faults.rate_limit(1, retry_after=2)
    async with http.get(srv.rest_url + "/api/v1/markets") as resp:
        assert resp.status == 429 and resp.headers["Retry-After"] == "2"
        assert (await resp.json())["code"] == "TOO_MANY_REQUESTS"
    assert (await get(http, srv, "/api/v1/markets"))[0] == 200
    assert srv.faults.count("fail_snapshot") == 2 and srv.faults.count("rate_limit") == 1
    assert [s for _, _, s in srv.rest_log] == [502, 502, 200, 429, 200]


async def test_fault_reject_private(srv: BackpackServer, http: aiohttp.ClientSession) -> None:
    srv.faults.reject_private(1)
    async with http.ws_connect(srv.ws_url) as ws:
        await subscribe(ws, "account.orderUpdate", signature=sign(now_ms(srv)))
        assert (await until_barrier(ws))[0]["error"]["code"] == 4003
        await subscribe(ws, "account.orderUpdate", signature=sign(now_ms(srv)))
        assert await until_barrier(ws) == []
    assert "account.orderUpdate" in srv.connections[1].subscriptions


# --- determinism -------------------------------------------------------------------------------


async def _session_frames(http: aiohttp.ClientSession, seed: int) -> list[str]:
    async with running_server(seed=seed, rate=0, clock_ms=lambda: 1_754_006_400_000) as srv:
        async with http.ws_connect(srv.ws_url) as ws:
            await subscribe(
                ws,
                "depth.SOL_USDC",
                "bookTicker.BTC_USDC_PERP",
                "trade.kSHIB_USDC_PERP",
                "kline.1s.SOL_USDC",
                "markPrice.AAPL.US_USDC_PERP",
                "ticker.BTC_USDC",
            )
            await subscribe(
                ws, "account.orderUpdate", "account.positionUpdate", signature=sign(1_754_006_400_000)
            )
            await until_barrier(ws)
            srv.step(200)
            await until_barrier(ws)
        await srv.flush()
        return srv.frames(1)


async def test_same_seed_same_frames(http: aiohttp.ClientSession) -> None:
    first = await _session_frames(http, 42)
    second = await _session_frames(http, 42)
    other = await _session_frames(http, 43)
    assert len(first) > 100
    assert first == second
    assert first != other


# --- ccxt and CLI ------------------------------------------------------------------------------


async def test_ccxt_load_markets_and_fetch_order_book(srv: BackpackServer) -> None:
    import ccxt.async_support as ccxt_async

    srv.step(20)
    exchange = ccxt_async.backpack()
    exchange.urls["api"] = {"public": srv.rest_url, "private": srv.rest_url}
    try:
        markets = await exchange.load_markets()
        assert {"SOL/USDC", "BTC/USDC", "SOL/USDC:USDC", "BTC/USDC:USDC"} <= set(markets)
        assert markets["SOL/USDC"]["precision"]["price"] == 0.01
        book = await exchange.fetch_order_book("SOL/USDC")
    finally:
        await exchange.close()
    assert book["nonce"] == srv.market.sequence("SOL_USDC")
    assert book["timestamp"] == srv.market.now_us // 1000
    server_book = srv.book("SOL_USDC")
    assert book["bids"][0][0] == float(max(server_book["bids"]))  # ccxt sorts bids best first
    assert book["asks"][0][0] == float(min(server_book["asks"]))
    assert len(book["bids"]) == len(server_book["bids"])
    assert all(path.startswith("/api/v1/") for _, path, _ in srv.rest_log)
    assert {p.split("?")[0] for _, p, _ in srv.rest_log} >= {
        "/api/v1/assets",
        "/api/v1/markets",
        "/api/v1/securities",
        "/api/v1/depth",
    }


async def test_serve_runs_until_stopped(http: aiohttp.ClientSession) -> None:
    started: list[BackpackServer] = []
    stop = asyncio.Event()
    task = asyncio.create_task(serve(seed=3, rate=50, ready=started.append, stop=stop))
    async with asyncio.timeout(10):
        while not started:
            await asyncio.sleep(0.01)
    srv = started[0]
    assert srv.host == "127.0.0.1" and srv.port > 0
    assert await get(http, srv, "/api/v1/ping") == (200, "text/plain", "pong")
    async with asyncio.timeout(10):
        while srv.market.steps < 3:  # the ticker drives the market on its own
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert srv._runner is None  # stopped and cleaned up


def test_cli_arguments_and_loopback_only() -> None:
    import argparse

    args = add_serve_arguments(argparse.ArgumentParser()).parse_args(["--port", "0", "--seed", "9"])
    assert (args.host, args.port, args.seed, args.ints_as_strings) == ("127.0.0.1", 0, 9, False)
    with pytest.raises(ValueError, match="loopback"):
        BackpackServer(host="0.0.0.0")


def test_test_account_key_matches_secret() -> None:
    assert Signer(TEST_ACCOUNT_SECRET).api_key == TEST_ACCOUNT_API_KEY


async def test_start_server_helper() -> None:
    srv = await start_server(rate=0)
    try:
        assert srv.rest_url == f"http://127.0.0.1:{srv.port}" and srv.ws_url == f"ws://127.0.0.1:{srv.port}/"
    finally:
        await srv.stop()


async def test_ccxt_pro_watch_order_book_matches_server_book(srv: BackpackServer) -> None:
    """ccxt.pro, unchanged, syncs a book over this server's WS + REST and ends equal to ``server.book``."""
    import ccxt.pro as ccxt_pro

    exchange = ccxt_pro.backpack()
    exchange.urls["api"] = {
        "public": srv.rest_url,
        "private": srv.rest_url,
        "ws": {"public": srv.ws_url, "private": srv.ws_url},
    }
    try:
        first = asyncio.create_task(exchange.watch_order_book("SOL/USDC"))
        async with asyncio.timeout(20):
            while not first.done():  # ccxt caches ~10 deltas before it fetches the REST snapshot
                srv.step()
                await asyncio.sleep(0.002)
            book = first.result()
            while book["nonce"] < srv.market.sequence("SOL_USDC"):
                book = await exchange.watch_order_book("SOL/USDC")
    finally:
        await exchange.close()
    server_book = srv.book("SOL_USDC")
    assert book["nonce"] == srv.market.sequence("SOL_USDC")
    assert [b[:2] for b in book["bids"]] == [
        [float(p), float(q)] for p, q in sorted(server_book["bids"].items(), reverse=True)
    ]
    assert [a[:2] for a in book["asks"]] == [
        [float(p), float(q)] for p, q in sorted(server_book["asks"].items())
    ]
    assert srv.connections[1].path == "/"


def test_market_output_ignores_hash_seed() -> None:
    """Invariant: emissions do not depend on PYTHONHASHSEED (no set/hash ordering leaks into frames)."""
    import os
    import subprocess
    import sys

    code = (
        "import hashlib\n"
        "from harness.loopback.market import MarketConfig, MarketGenerator, encode_frame\n"
        "h = hashlib.sha256()\n"
        "for e in MarketGenerator(MarketConfig(seed=9, p_private=0.3)).run(400):\n"
        "    h.update(encode_frame(e.stream, e.data).encode())\n"
        "print(h.hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(digests) == 1


async def test_main_serve_prints_urls_and_stops_cleanly_on_sigterm(http: aiohttp.ClientSession) -> None:
    import re
    import signal
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from harness.loopback.server import main_serve; raise SystemExit(main_serve(['--seed', '4', '--rate', '0']))",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            line = (await proc.stdout.readline()).decode()
        match = re.match(r"REST  (http://127\.0\.0\.1:\d+)/api/v1/", line)
        assert match, line
        async with http.get(match.group(1) + "/api/v1/ping") as resp:
            assert await resp.text() == "pong"
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
