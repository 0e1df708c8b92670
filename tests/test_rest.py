"""RestClient: decoding, typed errors, retries/backoff, circuit breaker, signing.

Most tests use a scripted fake transport with a virtual clock (sleeps advance it; nothing waits for
real); a few run the same paths through LiveTransport against an aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from nacl.signing import SigningKey, VerifyKey

from backpack.errors import (
    AuthError,
    BackpackError,
    CircuitOpen,
    ClientRequestError,
    DecodeError,
    ExchangeError,
    RateLimited,
    ServerError,
    error_from_response,
    parse_retry_after,
)
from backpack.live import LiveTransport
from backpack.protocol.auth import Signer
from backpack.rest import BreakerState, RestClient, RestResult, encode_query
from backpack.transport import HttpRequest, HttpResponse, Transport, TransportError, TransportTimeout

from .feed_helpers import OwnClock

BASE = "https://api.example.test"
T0 = 1_700_000_000_000_000  # µs
SEED = base64.b64encode(bytes(range(32))).decode()
JSON = {"Content-Type": "application/json"}
TEXT = {"Content-Type": "text/plain"}

Reply = tuple[int, dict[str, str], bytes] | BaseException | Callable[[HttpRequest], Any]


def ok(doc: Any) -> Reply:
    return (200, JSON, orjson.dumps(doc))


class FakeTransport(OwnClock):
    """Answers from a script; ``sleep`` only advances the virtual clock."""

    def __init__(self, *script: Reply) -> None:
        self.script: deque[Reply] = deque(script)
        self.requests: list[HttpRequest] = []
        self.timeouts: list[float] = []
        self.sleeps: list[float] = []
        self.now = T0

    def add(self, *script: Reply) -> None:
        self.script.extend(script)

    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        self.requests.append(request)
        self.timeouts.append(timeout)
        if not self.script:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        item = self.script.popleft()
        if callable(item) and not isinstance(item, BaseException):
            item = item(request)
        if isinstance(item, BaseException):
            raise item
        status, headers, body = item
        self.now += 1_000
        return HttpResponse(status, headers, body, self.now)

    async def connect(self, url: str, *, timeout: float = 10.0) -> Any:
        raise AssertionError("REST tests never open sockets")

    def now_us(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += int(seconds * 1_000_000)

    async def close(self) -> None:
        pass


def client(transport: FakeTransport, **kwargs: Any) -> RestClient:
    kwargs.setdefault("rng", random.Random(1))
    return RestClient(transport, BASE, **kwargs)


def test_fake_is_a_transport() -> None:
    assert isinstance(FakeTransport(), Transport)


# -- decoding ----------------------------------------------------------------------------------------


async def test_json_text_204_and_empty_bodies() -> None:
    fake = FakeTransport(
        ok({"status": "Ok"}),
        (200, TEXT, b"pong"),
        (200, TEXT, b"1700000000123"),
        (204, {}, b""),
        (200, {}, b""),
    )
    rest = client(fake)
    assert await rest.status() == {"status": "Ok"}
    assert await rest.ping() == "pong"
    assert await rest.server_time_ms() == 1700000000123
    assert await rest.ticker("SOL_USDC") is None
    assert await rest.get("/api/v1/anything") is None
    assert [r.url for r in fake.requests] == [
        f"{BASE}/api/v1/status",
        f"{BASE}/api/v1/ping",
        f"{BASE}/api/v1/time",
        f"{BASE}/api/v1/ticker",
        f"{BASE}/api/v1/anything",
    ]
    assert fake.requests[3].params == (("symbol", "SOL_USDC"),)
    assert fake.sleeps == []


async def test_declared_json_that_is_not_json_is_a_decode_error() -> None:
    fake = FakeTransport((200, {"content-type": "application/json; charset=utf-8"}, b"{not json"))
    with pytest.raises(DecodeError, match="not"):
        await client(fake).get("/api/v1/markets")
    assert len(fake.requests) == 1


async def test_request_returns_receipt_and_status() -> None:
    fake = FakeTransport(ok({"asks": [], "bids": [], "lastUpdateId": "7"}), ok([1]))
    rest = client(fake)
    data, receipt = await rest.depth_snapshot("SOL_USDC")
    assert data["lastUpdateId"] == "7"
    assert receipt == T0 + 1_000
    assert fake.requests[0].params == (("symbol", "SOL_USDC"), ("limit", "1000"))
    result = await rest.request("GET", "/api/v1/trades", {"symbol": "SOL_USDC"})
    assert result == RestResult([1], T0 + 2_000, 200)


# -- typed errors ------------------------------------------------------------------------------------


async def test_400_json_error_not_retried() -> None:
    body = orjson.dumps({"code": "INVALID_CLIENT_REQUEST", "message": "Invalid symbol"})
    fake = FakeTransport((400, JSON, body))
    rest = client(fake)
    with pytest.raises(ClientRequestError) as info:
        await rest.get("/api/v1/depth", {"symbol": "NOPE"})
    err = info.value
    assert type(err) is ClientRequestError
    assert (err.status, err.code, err.message) == (400, "INVALID_CLIENT_REQUEST", "Invalid symbol")
    assert "INVALID_CLIENT_REQUEST" in str(err) and "Invalid symbol" in str(err)
    assert len(fake.requests) == 1 and fake.sleeps == []
    assert rest.metrics["failures"] == 1 and rest.metrics["retries"] == 0


async def test_400_plain_text_error_not_retried() -> None:
    fake = FakeTransport((400, TEXT, b"Failed to deserialize query string: missing field `symbol`"))
    with pytest.raises(ClientRequestError) as info:
        await client(fake).get("/api/v1/depth")
    assert info.value.code is None
    assert info.value.message == "Failed to deserialize query string: missing field `symbol`"
    assert len(fake.requests) == 1


async def test_long_plain_text_error_is_truncated() -> None:
    fake = FakeTransport((404, TEXT, b"x" * 10_000))
    with pytest.raises(ClientRequestError) as info:
        await client(fake).get("/api/v1/nothing")
    assert len(info.value.message) < 400
    assert len(str(info.value)) < 450


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, b'{"code":"UNAUTHORIZED","message":"no"}', AuthError),
        (403, b"forbidden", AuthError),
        (400, b'{"code":"INVALID_SIGNATURE","message":"bad sig"}', AuthError),
        (404, b'{"code":"RESOURCE_NOT_FOUND","message":"?"}', ClientRequestError),
        (429, b"slow down", RateLimited),
        (400, b'{"code":"TOO_MANY_REQUESTS","message":"slow"}', RateLimited),
        (500, b"", ServerError),
        (503, b'{"code":"MAINTENANCE","message":"m"}', ServerError),
        (302, b"", ExchangeError),
    ],
)
def test_error_mapping(status: int, body: bytes, expected: type[ExchangeError]) -> None:
    err = error_from_response(status, {}, body)
    assert type(err) is expected
    assert isinstance(err, BackpackError)
    assert err.status == status


def test_retry_after_parsing() -> None:
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"retry-after": " 1.5 "}) == 1.5
    assert parse_retry_after({"Retry-After": "-1"}) is None
    assert parse_retry_after({"Retry-After": "nan"}) is None
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None
    date = "Tue, 14 Nov 2023 22:13:40 GMT"  # T0 / 1e6 + 20 s
    assert parse_retry_after({"Retry-After": date}, now_s=T0 / 1e6) == pytest.approx(20.0)
    assert parse_retry_after({"Retry-After": date}) is None


# -- retries -----------------------------------------------------------------------------------------


async def test_retries_on_500_then_succeeds() -> None:
    fake = FakeTransport((500, TEXT, b"oops"), (502, TEXT, b"bad gateway"), ok({"fine": True}))
    rest = client(fake, backoff_base=0.5, backoff_max=10.0)
    assert await rest.get("/api/v1/status") == {"fine": True}
    assert len(fake.requests) == 3
    assert len(fake.sleeps) == 2
    for attempt, delay in enumerate(fake.sleeps):
        ceiling = 0.5 * 2**attempt
        assert ceiling / 2 <= delay <= ceiling
    assert rest.metrics == {
        "requests": 3,
        "retries": 2,
        "failures": 0,
        "breaker_opens": 0,
        "breaker_rejections": 0,
    }
    assert rest.breaker.state is BreakerState.CLOSED


async def test_retries_exhausted_raises_last_server_error() -> None:
    fake = FakeTransport(*[(503, JSON, b'{"code":"SERVER_ERROR","message":"down"}')] * 4)
    rest = client(fake, retries=3)
    with pytest.raises(ServerError) as info:
        await rest.get("/api/v1/status")
    assert (info.value.status, info.value.code) == (503, "SERVER_ERROR")
    assert len(fake.requests) == 4 and len(fake.sleeps) == 3
    assert rest.metrics["failures"] == 1 and rest.metrics["retries"] == 3


async def test_backoff_is_capped() -> None:
    fake = FakeTransport(*[(500, TEXT, b"")] * 8)
    rest = client(fake, retries=7, backoff_base=1.0, backoff_max=4.0)
    with pytest.raises(ServerError):
        await rest.get("/api/v1/status")
    assert all(d <= 4.0 for d in fake.sleeps)
    assert all(d >= 2.0 for d in fake.sleeps[2:])  # ceiling reached: never below half of it


async def test_transport_errors_and_timeouts_are_retried() -> None:
    fake = FakeTransport(TransportError("refused"), TransportTimeout("slow"), ok([]))
    rest = client(fake, timeout=3.5)
    assert await rest.get("/api/v1/markets") == []
    assert len(fake.requests) == 3
    assert fake.timeouts == [3.5, 3.5, 3.5]


async def test_transport_error_after_retries_propagates() -> None:
    fake = FakeTransport(*[TransportTimeout("slow")] * 3)
    rest = client(fake, retries=2)
    with pytest.raises(TransportTimeout):
        await rest.get("/api/v1/markets")
    assert rest.metrics["failures"] == 1


async def test_429_honours_retry_after() -> None:
    fake = FakeTransport((429, {"Retry-After": "3"}, b"rate limited"), ok({"ok": 1}))
    rest = client(fake)
    assert await rest.get("/api/v1/tickers") == {"ok": 1}
    assert fake.sleeps == [3.0]


async def test_429_without_retry_after_uses_backoff() -> None:
    fake = FakeTransport((429, {}, b""), ok(1))
    rest = client(fake, backoff_base=0.25)
    assert await rest.get("/api/v1/tickers") == 1
    assert len(fake.sleeps) == 1 and 0.125 <= fake.sleeps[0] <= 0.25


async def test_429_retry_after_beyond_cap_is_raised_not_slept() -> None:
    fake = FakeTransport((429, {"Retry-After": "600"}, b""))
    rest = client(fake, retry_after_max=60.0)
    with pytest.raises(RateLimited) as info:
        await rest.get("/api/v1/tickers")
    assert info.value.retry_after == 600.0
    assert fake.sleeps == []


async def test_post_is_not_retried_on_ambiguous_failures_but_is_on_429() -> None:
    signer = Signer(SEED)
    fake = FakeTransport(TransportTimeout("slow"))
    rest = client(fake, signer=signer)
    with pytest.raises(TransportTimeout):
        await rest.signed("POST", "/api/v1/order", "orderExecute", {"symbol": "SOL_USDC"})
    assert len(fake.requests) == 1

    fake.add((500, TEXT, b""))
    with pytest.raises(ServerError):
        await rest.signed("POST", "/api/v1/order", "orderExecute", {"symbol": "SOL_USDC"})
    assert len(fake.requests) == 2

    fake.add((429, {"Retry-After": "1"}, b""), ok({"id": "1"}))
    assert await rest.signed("POST", "/api/v1/order", "orderExecute", {"symbol": "SOL_USDC"}) == {"id": "1"}
    assert len(fake.requests) == 4

    fake.add((500, TEXT, b""), ok({"id": "2"}))  # the caller vouches for idempotency (e.g. a clientId)
    result = await rest.signed(
        "POST", "/api/v1/order", "orderExecute", {"symbol": "SOL_USDC"}, idempotent=True
    )
    assert result == {"id": "2"}


async def test_jitter_is_deterministic_with_seeded_rng() -> None:
    async def run(seed: int) -> list[float]:
        fake = FakeTransport(*[(500, TEXT, b"")] * 6)
        rest = RestClient(fake, BASE, retries=5, rng=random.Random(seed))
        with pytest.raises(ServerError):
            await rest.get("/api/v1/status")
        return fake.sleeps

    first, again, other = await run(42), await run(42), await run(43)
    assert first == again
    assert first != other
    assert len(first) == 5


# -- circuit breaker ---------------------------------------------------------------------------------


async def test_breaker_opens_rejects_fast_then_half_open_probe_closes() -> None:
    fake = FakeTransport(*[(500, TEXT, b"")] * 3)
    rest = client(fake, retries=0, breaker_threshold=3, breaker_reset=30.0)
    for _ in range(3):
        with pytest.raises(ServerError):
            await rest.get("/api/v1/status")
    assert rest.breaker.state is BreakerState.OPEN
    assert rest.metrics["breaker_opens"] == 1

    sent = len(fake.requests)
    with pytest.raises(CircuitOpen) as info:
        await rest.get("/api/v1/status")
    assert len(fake.requests) == sent  # rejected without touching the transport
    assert 0 < info.value.retry_in <= 30.0
    assert rest.metrics["breaker_rejections"] == 1

    fake.now += 29_000_000
    with pytest.raises(CircuitOpen):
        await rest.get("/api/v1/status")

    fake.now += 1_000_000
    fake.add(ok({"status": "Ok"}))
    assert await rest.get("/api/v1/status") == {"status": "Ok"}
    assert rest.breaker.state is BreakerState.CLOSED
    assert rest.breaker.consecutive_failures == 0


async def test_half_open_probe_failure_reopens_and_probe_is_single_attempt() -> None:
    fake = FakeTransport(*[(500, TEXT, b"")] * 2)
    rest = client(fake, retries=0, breaker_threshold=2, breaker_reset=10.0)
    for _ in range(2):
        with pytest.raises(ServerError):
            await rest.get("/x")
    assert rest.breaker.state is BreakerState.OPEN

    rest.retries = 5  # the probe must still be one attempt, not a retry storm
    fake.now += 10_000_000
    fake.add((503, TEXT, b""))
    with pytest.raises(ServerError):
        await rest.get("/x")
    assert rest.breaker.state is BreakerState.OPEN
    assert rest.metrics["breaker_opens"] == 2
    assert fake.sleeps == []
    with pytest.raises(CircuitOpen):  # the reset interval starts again from the failed probe
        await rest.get("/x")

    fake.now += 10_000_000
    fake.add(ok(1))
    assert await rest.get("/x") == 1
    assert rest.breaker.state is BreakerState.CLOSED


async def test_only_one_probe_in_flight() -> None:
    gate_requests: list[HttpRequest] = []

    rest_fake = FakeTransport(*[(500, TEXT, b"")] * 1)
    rest = client(rest_fake, retries=0, breaker_threshold=1, breaker_reset=5.0)
    with pytest.raises(ServerError):
        await rest.get("/x")
    rest_fake.now += 5_000_000

    release = asyncio.Event()

    async def slow_probe(request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        gate_requests.append(request)
        await release.wait()
        return HttpResponse(200, JSON, b"1", rest_fake.now)

    rest_fake.request = slow_probe  # type: ignore[method-assign]
    probe = asyncio.ensure_future(rest.get("/x"))
    await asyncio.sleep(0)
    assert rest.breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen):
        await rest.get("/x")
    release.set()
    assert await probe == 1
    assert len(gate_requests) == 1
    assert rest.breaker.state is BreakerState.CLOSED


async def test_client_errors_do_not_trip_the_breaker() -> None:
    fake = FakeTransport(*[(400, JSON, b'{"code":"INVALID_CLIENT_REQUEST","message":"x"}')] * 5)
    rest = client(fake, breaker_threshold=2)
    for _ in range(5):
        with pytest.raises(ClientRequestError):
            await rest.get("/x")
    assert rest.breaker.state is BreakerState.CLOSED


async def test_redirects_and_decode_errors_do_not_trip_the_breaker() -> None:
    fake = FakeTransport(*[(302, {"Location": "https://elsewhere.test/"}, b"")] * 3, (200, JSON, b"{bad"))
    rest = client(fake, breaker_threshold=1)
    for _ in range(3):
        with pytest.raises(ExchangeError) as info:
            await rest.get("/x")
        assert info.value.status == 302
    with pytest.raises(DecodeError):
        await rest.get("/x")
    assert len(fake.requests) == 4  # none of these is retried either
    assert rest.breaker.state is BreakerState.CLOSED


async def test_success_resets_consecutive_count() -> None:
    fake = FakeTransport((500, TEXT, b""), ok(1), (500, TEXT, b""), ok(1), (500, TEXT, b""))
    rest = client(fake, retries=0, breaker_threshold=2)
    for _ in range(2):
        with pytest.raises(ServerError):
            await rest.get("/x")
        assert await rest.get("/x") == 1
    with pytest.raises(ServerError):
        await rest.get("/x")
    assert rest.breaker.state is BreakerState.CLOSED


# -- signing -----------------------------------------------------------------------------------------


def verify_headers(request: HttpRequest, expected_text: str) -> None:
    headers = request.headers
    public = base64.b64decode(headers["X-API-Key"])
    assert public == bytes(SigningKey(bytes(range(32))).verify_key)
    VerifyKey(public).verify(expected_text.encode(), base64.b64decode(headers["X-Signature"]))


async def test_signed_get_puts_params_in_query_and_signs_exact_string() -> None:
    fake = FakeTransport(ok([]))
    rest = client(fake, signer=Signer(SEED), window_ms=6000)
    await rest.signed("GET", "/api/v1/orders", "orderQueryAll", {"symbol": "SOL_USDC", "limit": 5})
    request = fake.requests[0]
    assert request.params == (("symbol", "SOL_USDC"), ("limit", "5"))
    assert request.body is None
    ts = T0 // 1000
    assert request.headers["X-Timestamp"] == str(ts)
    assert request.headers["X-Window"] == "6000"
    verify_headers(request, f"instruction=orderQueryAll&limit=5&symbol=SOL_USDC&timestamp={ts}&window=6000")


async def test_signed_post_sends_json_body_and_resigns_on_retry() -> None:
    fake = FakeTransport((429, {"Retry-After": "2"}, b""), ok({"id": "9"}))
    rest = client(fake, signer=Signer(SEED))
    params = {
        "symbol": "SOL_USDC",
        "side": "Bid",
        "orderType": "Limit",
        "price": "150.5",
        "quantity": "1",
        "postOnly": True,
        "clientId": None,
    }
    assert await rest.signed("POST", "/api/v1/order", "orderExecute", params) == {"id": "9"}
    first, second = fake.requests
    assert orjson.loads(first.body or b"") == {k: v for k, v in params.items() if v is not None}
    assert first.headers["Content-Type"] == "application/json"
    assert first.params == ()
    texts = []
    for request in (first, second):
        ts = request.headers["X-Timestamp"]
        texts.append(
            "instruction=orderExecute&orderType=Limit&postOnly=true&price=150.5&quantity=1&side=Bid"
            f"&symbol=SOL_USDC&timestamp={ts}&window=5000"
        )
        verify_headers(request, texts[-1])
    assert int(second.headers["X-Timestamp"]) >= int(first.headers["X-Timestamp"]) + 2000


async def test_signed_without_params_and_no_signer() -> None:
    fake = FakeTransport(ok({}))
    rest = client(fake, signer=Signer(SEED))
    await rest.signed("GET", "/api/v1/capital", "balanceQuery")
    ts = T0 // 1000
    verify_headers(fake.requests[0], f"instruction=balanceQuery&timestamp={ts}&window=5000")
    with pytest.raises(ValueError, match="signer"):
        await client(FakeTransport()).signed("GET", "/api/v1/capital", "balanceQuery")


async def test_secrets_never_in_errors_or_reprs() -> None:
    fake = FakeTransport((401, JSON, b'{"code":"INVALID_SIGNATURE","message":"Invalid signature"}'))
    signer = Signer(SEED)
    rest = client(fake, signer=signer)
    with pytest.raises(AuthError) as info:
        await rest.signed("GET", "/api/v1/capital", "balanceQuery")
    signature = fake.requests[0].headers["X-Signature"]
    for text in (str(info.value), repr(info.value), repr(rest), repr(signer)):
        assert signature not in text
        assert SEED not in text


# -- helpers and validation --------------------------------------------------------------------------


async def test_helper_query_shapes() -> None:
    fake = FakeTransport(*[ok([])] * 8)
    rest = client(fake)
    await rest.markets(["SPOT", "PERP"])
    await rest.markets()
    await rest.trades("SOL_USDC", 50)
    await rest.klines("SOL_USDC", "1m", 1_700_000_000, 1_700_000_600)
    await rest.tickers()
    await rest.mark_prices()
    await rest.open_interest("SOL_USDC_PERP")
    await rest.market("kSHIB_USDC_PERP")
    got = [(urlsplit(r.url).path, r.params) for r in fake.requests]
    assert got == [
        ("/api/v1/markets", (("marketType", "SPOT"), ("marketType", "PERP"))),
        ("/api/v1/markets", ()),
        ("/api/v1/trades", (("symbol", "SOL_USDC"), ("limit", "50"))),
        (
            "/api/v1/klines",
            (
                ("symbol", "SOL_USDC"),
                ("interval", "1m"),
                ("startTime", "1700000000"),
                ("endTime", "1700000600"),
            ),
        ),
        ("/api/v1/tickers", ()),
        ("/api/v1/markPrices", ()),
        ("/api/v1/openInterest", (("symbol", "SOL_USDC_PERP"),)),
        ("/api/v1/market", (("symbol", "kSHIB_USDC_PERP"),)),
    ]


async def test_helper_validation_rejects_bad_input_before_sending() -> None:
    fake = FakeTransport()
    rest = client(fake)
    with pytest.raises(ValueError, match="seconds"):
        await rest.klines("SOL_USDC", "1m", 1_700_000_000_000)
    with pytest.raises(ValueError, match="before"):
        await rest.klines("SOL_USDC", "1m", 1_700_000_600, 1_700_000_000)
    with pytest.raises(ValueError, match="interval"):
        await rest.klines("SOL_USDC", "7m", 1_700_000_000)
    with pytest.raises(ValueError, match="depth limit"):
        await rest.depth_snapshot("SOL_USDC", 7)
    with pytest.raises(ValueError, match="limit"):
        await rest.trades("SOL_USDC", 5000)
    with pytest.raises(ValueError, match="symbol"):
        await rest.trades("", 10)
    with pytest.raises(ValueError, match="path"):
        await rest.get("api/v1/time")
    assert fake.requests == []
    assert rest.breaker.state is BreakerState.CLOSED


def test_encode_query() -> None:
    assert encode_query({"a": True, "b": None, "c": [1, 2], "d": "x"}) == (
        ("a", "true"),
        ("c", "1"),
        ("c", "2"),
        ("d", "x"),
    )
    assert encode_query([("k", 1), ("k", False)]) == (("k", "1"), ("k", "false"))
    assert encode_query(None) == ()


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        RestClient(FakeTransport(), "ftp://x")
    with pytest.raises(ValueError):
        RestClient(FakeTransport(), BASE, window_ms=70_000)
    with pytest.raises(ValueError):
        RestClient(FakeTransport(), BASE, retries=-1)


# -- through the live transport ----------------------------------------------------------------------


@pytest.fixture
async def flaky_server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"hits": 0, "verified": []}
    key = web.AppKey("state", dict)

    async def status(request: web.Request) -> web.Response:
        s = request.app[key]
        s["hits"] += 1
        if s["hits"] <= 2:
            return web.Response(status=500, text="try again")
        return web.json_response({"status": "Ok"})

    async def bad(request: web.Request) -> web.Response:
        return web.Response(status=400, text="Failed to parse limit")

    async def orders(request: web.Request) -> web.Response:
        # Rebuild the signing string from what actually arrived on the wire and verify it.
        pairs = dict(parse_qsl(urlsplit(str(request.url)).query))
        if request.method == "POST":
            pairs = {
                k: str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in (await request.json()).items()
            }
        instruction = "orderQueryAll" if request.method == "GET" else "orderExecute"
        body = "&".join(f"{k}={pairs[k]}" for k in sorted(pairs))
        text = (
            f"instruction={instruction}&{body}&timestamp={request.headers['X-Timestamp']}"
            f"&window={request.headers['X-Window']}"
        )
        VerifyKey(base64.b64decode(request.headers["X-API-Key"])).verify(
            text.encode(), base64.b64decode(request.headers["X-Signature"])
        )
        request.app[key]["verified"].append(text)
        return web.json_response([])

    app = web.Application()
    app[key] = state
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/bad", bad)
    app.router.add_route("*", "/api/v1/orders", orders)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield f"http://127.0.0.1:{srv.port}", state
    finally:
        await srv.close()


async def test_live_retry_then_success_and_plain_text_error(flaky_server) -> None:
    base, state = flaky_server
    transport = LiveTransport()
    try:
        rest = RestClient(transport, base, backoff_base=0.01, rng=random.Random(3))
        assert await rest.status() == {"status": "Ok"}
        assert state["hits"] == 3 and rest.metrics["retries"] == 2
        with pytest.raises(ClientRequestError) as info:
            await rest.get("/api/v1/bad")
        assert (info.value.status, info.value.code, info.value.message) == (
            400,
            None,
            "Failed to parse limit",
        )
    finally:
        await transport.close()


async def test_live_signed_requests_verify_server_side(flaky_server) -> None:
    base, state = flaky_server
    transport = LiveTransport()
    try:
        rest = RestClient(transport, base, signer=Signer(SEED))
        await rest.signed("GET", "/api/v1/orders", "orderQueryAll", {"symbol": "SOL_USDC", "limit": 5})
        await rest.signed(
            "POST", "/api/v1/orders", "orderExecute", {"symbol": "SOL_USDC", "postOnly": True, "price": "1.5"}
        )
        assert len(state["verified"]) == 2
        assert state["verified"][0].startswith("instruction=orderQueryAll&limit=5&symbol=SOL_USDC&timestamp=")
        assert state["verified"][1].startswith(
            "instruction=orderExecute&postOnly=true&price=1.5&symbol=SOL_USDC&timestamp="
        )
    finally:
        await transport.close()
