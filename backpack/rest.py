"""Backpack REST client over the transport seam: decoding, typed errors, retries, circuit breaker.

Every wait and every time reading goes through ``transport.clock``, so a replay runs backoff and
breaker timing on its virtual clock. Retries re-sign each attempt (a fresh
timestamp keeps the request inside its window). Non-idempotent calls (POST by default) are retried only
on 429, where the exchange has certainly not acted on them.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from backpack.backoff import equal_jitter
from backpack.clock import to_us
from backpack.errors import (
    CircuitOpen,
    DecodeError,
    ExchangeError,
    RateLimited,
    error_from_response,
)
from backpack.metrics import Registry
from backpack.protocol.auth import DEFAULT_WINDOW_MS, MAX_WINDOW_MS, MIN_WINDOW_MS, Signer
from backpack.protocol.wire import CANDLE_INTERVALS, DEPTH_LIMITS
from backpack.redaction import mask_url
from backpack.transport import HttpRequest, HttpResponse, Transport, TransportError

log = logging.getLogger(__name__)

KLINE_INTERVALS = frozenset(CANDLE_INTERVALS)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "DELETE", "PUT", "OPTIONS"})

Params = Mapping[str, Any] | Sequence[tuple[str, Any]] | None


@dataclass(frozen=True, slots=True)
class RestResult:
    data: Any  # decoded JSON, plain text for non-JSON bodies, None for 204 / empty bodies
    receipt: int  # µs on the transport clock
    status: int


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker on an injected µs clock; after ``reset_s`` one probe decides."""

    def __init__(self, threshold: int, reset_s: float, clock: Any) -> None:
        self.threshold = threshold  # 0 disables the breaker
        self.reset_us = int(reset_s * 1_000_000)
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0
        self._probe_out = False
        self.opens = 0

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def acquire(self) -> bool:
        """Admit a call or raise ``CircuitOpen``; True when the admitted call is the half-open probe."""
        if self._state is BreakerState.CLOSED:
            return False
        elapsed = self._clock() - self._opened_at
        if self._state is BreakerState.OPEN and elapsed >= self.reset_us:
            self._state = BreakerState.HALF_OPEN
        if self._state is BreakerState.HALF_OPEN and not self._probe_out:
            self._probe_out = True
            return True
        raise CircuitOpen(max(0, self.reset_us - elapsed) / 1_000_000)

    def success(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._probe_out = False

    def failure(self) -> bool:
        """Count one failed call; True when this failure opened (or reopened) the circuit."""
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (0 < self.threshold <= self._failures):
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probe_out = False
            self.opens += 1
            return True
        return False

    def abandon(self, probe: bool) -> None:
        """A call ended without a verdict (cancelled): let the next caller probe instead."""
        if probe and self._state is BreakerState.HALF_OPEN:
            self._probe_out = False


def _param_value(value: Any) -> str:
    # Must match the signing rule in protocol.auth: booleans lower-case, everything else str().
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def encode_query(params: Params) -> tuple[tuple[str, str], ...]:
    """Query pairs in order; None values dropped; list/tuple values become repeated keys."""
    if not params:
        return ()
    items = params.items() if isinstance(params, Mapping) else params
    out: list[tuple[str, str]] = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, list | tuple | set | frozenset):
            out.extend((str(key), _param_value(v)) for v in value if v is not None)
        else:
            out.append((str(key), _param_value(value)))
    return tuple(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} in a request body")


class RestClient:
    """Backpack REST API over any ``Transport``."""

    def __init__(
        self,
        transport: Transport,
        base_url: str,
        *,
        signer: Signer | None = None,
        window_ms: int = DEFAULT_WINDOW_MS,
        retries: int = 5,
        backoff_base: float = 0.25,
        backoff_max: float = 10.0,
        retry_after_max: float = 60.0,
        breaker_threshold: int = 5,
        breaker_reset: float = 30.0,
        timeout: float = 10.0,
        rng: random.Random | None = None,
        registry: Registry | None = None,
    ) -> None:
        if not MIN_WINDOW_MS <= window_ms <= MAX_WINDOW_MS:
            raise ValueError(f"window_ms must be within {MIN_WINDOW_MS}..{MAX_WINDOW_MS}, got {window_ms}")
        if retries < 0 or backoff_base < 0 or backoff_max < 0 or breaker_threshold < 0 or timeout <= 0:
            raise ValueError(
                "retries, backoff and breaker settings must be non-negative and timeout positive"
            )
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        self.transport = transport
        self.base_url = base_url.rstrip("/")
        self.signer = signer
        self.window_ms = window_ms
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_max = retry_after_max
        self.timeout = timeout
        self.rng = rng if rng is not None else random.Random()
        self.clock = transport.clock
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset, self.clock.now_us)
        self.metrics: dict[str, int] = {
            "requests": 0,
            "retries": 0,
            "failures": 0,
            "breaker_opens": 0,
            "breaker_rejections": 0,
        }
        # Per-attempt status and latency by endpoint go to the feed's registry; the totals above are read
        # from this dict by the feed's collector.
        self._status = registry.counter("backpack_rest_requests_total") if registry is not None else None
        self._latency = registry.histogram("backpack_rest_latency_seconds") if registry is not None else None

    def __repr__(self) -> str:
        return (
            f"RestClient(base_url={mask_url(self.base_url)!r}, signed={self.signer is not None}, "
            f"breaker={self.breaker.state})"
        )

    # -- core ---------------------------------------------------------------------------------------

    def backoff_delay(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed (never a zero wait), half random."""
        return equal_jitter(self.backoff_base, attempt, self.backoff_max, self.rng)

    def _build(self, method: str, path: str, params: Params, instruction: str | None) -> HttpRequest:
        url = self.base_url + path
        headers: dict[str, str] = {}
        body: bytes | None = None
        query: tuple[tuple[str, str], ...] = ()
        if method in _BODY_METHODS:
            if params is not None and not isinstance(params, Mapping):
                raise TypeError(f"{method} params must be a mapping (sent as a JSON object)")
            clean = {k: v for k, v in (params or {}).items() if v is not None}
            if clean:
                body = orjson.dumps(clean, default=_json_default)
                headers["Content-Type"] = "application/json"
        else:
            query = encode_query(params)
        if instruction is not None:
            if self.signer is None:
                raise ValueError("this RestClient has no signer: signed endpoints need API keys")
            if method in _BODY_METHODS:
                signed_params: Mapping[str, Any] = {k: v for k, v in (params or {}).items() if v is not None}  # type: ignore[union-attr]
            else:
                if len({k for k, _ in query}) != len(query):
                    raise ValueError("signed GET parameters cannot repeat a key")
                signed_params = dict(query)
            timestamp_ms = self.clock.now_us() // 1000
            headers.update(
                self.signer.sign(instruction, signed_params, timestamp_ms, self.window_ms).headers()
            )
        return HttpRequest(method, url, query, headers, body)

    def _decode(self, method: str, path: str, resp: HttpResponse) -> Any:
        if resp.status == 204 or not resp.body.strip():
            return None
        try:
            return orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            content_type = next((v for k, v in resp.headers.items() if k.lower() == "content-type"), "")
            if "json" in content_type.lower():
                raise DecodeError(
                    f"{method} {path}: HTTP {resp.status} declared JSON but the body ({len(resp.body)} bytes) is not"
                ) from None
            return resp.text()

    async def request(
        self,
        method: str,
        path: str,
        params: Params = None,
        *,
        instruction: str | None = None,
        idempotent: bool | None = None,
    ) -> RestResult:
        """One logical call: breaker admission, attempts with backoff, decoding, typed errors."""
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/', got {path!r}")
        if idempotent is None:
            idempotent = method in _IDEMPOTENT_METHODS
        try:
            probe = self.breaker.acquire()
        except CircuitOpen:
            self.metrics["breaker_rejections"] += 1
            raise
        verdict = False
        try:
            result = await self._attempts(
                method, path, params, instruction, idempotent, 0 if probe else self.retries
            )
            verdict = True
            self.breaker.success()
            return result
        except (ExchangeError, DecodeError, TransportError) as exc:
            verdict = True
            self.metrics["failures"] += 1
            if isinstance(exc, DecodeError) or (isinstance(exc, ExchangeError) and not exc.retryable):
                # The exchange answered: it is up, the request (or its body) was wrong.
                self.breaker.success()
            elif self.breaker.failure():
                self.metrics["breaker_opens"] += 1
                log.warning(
                    "REST circuit opened after %d consecutive failures", self.breaker.consecutive_failures
                )
            raise
        finally:
            if not verdict:
                self.breaker.abandon(probe)

    async def _attempts(
        self, method: str, path: str, params: Params, instruction: str | None, idempotent: bool, retries: int
    ) -> RestResult:
        attempt = 0
        while True:
            request = self._build(method, path, params, instruction)
            self.metrics["requests"] += 1
            hint: float | None = None
            started = self.clock.now_us()
            try:
                resp = await self.transport.request(request, timeout=self.timeout)
            except TransportError as exc:
                self._observe(path, "error", started)
                error: Exception = exc
                # The request may have reached the exchange: only idempotent calls are repeated.
                may_retry = idempotent
            else:
                self._observe(path, str(resp.status), started)
                if 200 <= resp.status < 300:
                    return RestResult(self._decode(method, path, resp), resp.receipt, resp.status)
                err = error_from_response(resp.status, resp.headers, resp.body, self.clock.now_us() / 1e6)
                if not err.retryable:
                    raise err
                error = err
                if isinstance(err, RateLimited):
                    may_retry = True  # rejected before execution
                    hint = err.retry_after
                    if hint is not None and hint > self.retry_after_max:
                        raise err  # the caller decides whether to wait that long
                else:
                    may_retry = idempotent
            if attempt >= retries or not may_retry:
                raise error
            delay = hint if hint is not None else self.backoff_delay(attempt)
            self.metrics["retries"] += 1
            log.info(
                "%s %s attempt %d failed (%s); retrying in %.3f s",
                method,
                path,
                attempt + 1,
                type(error).__name__,
                delay,
            )
            await self.clock.sleep_us(to_us(delay))
            attempt += 1

    def _observe(self, path: str, status: str, started_us: int) -> None:
        if self._status is not None and self._latency is not None:
            self._status.inc(path, status)
            self._latency.observe(path, value=max(0, self.clock.now_us() - started_us) / 1_000_000)

    async def get(self, path: str, params: Params = None) -> Any:
        return (await self.request("GET", path, params)).data

    async def signed(
        self,
        method: str,
        path: str,
        instruction: str,
        params: Mapping[str, Any] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> Any:
        """A signed call: GET parameters go in the query, POST/DELETE parameters in a JSON body."""
        return (await self.request(method, path, params, instruction=instruction, idempotent=idempotent)).data

    # -- public endpoints ---------------------------------------------------------------------------

    async def markets(self, market_types: Iterable[str] | None = None) -> Any:
        types = list(market_types) if market_types is not None else None
        return await self.get("/api/v1/markets", [("marketType", t) for t in types] if types else None)

    async def market(self, symbol: str) -> Any:
        return await self.get("/api/v1/market", {"symbol": _symbol(symbol)})

    async def depth_snapshot(self, symbol: str, limit: int = 1000) -> tuple[Any, int]:
        """Raw depth JSON and its receipt time (the book sync needs when the snapshot arrived)."""
        if limit not in DEPTH_LIMITS:
            raise ValueError(f"depth limit must be one of {DEPTH_LIMITS}, got {limit!r}")
        result = await self.request("GET", "/api/v1/depth", {"symbol": _symbol(symbol), "limit": limit})
        return result.data, result.receipt

    async def trades(self, symbol: str, limit: int = 100) -> Any:
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise ValueError(f"trades limit must be within 1..1000, got {limit!r}")
        return await self.get("/api/v1/trades", {"symbol": _symbol(symbol), "limit": limit})

    async def klines(
        self,
        symbol: str,
        interval: str,
        start_s: int,
        end_s: int | None = None,
        price_type: str | None = None,
    ) -> Any:
        """Candles; the exchange takes **seconds** here, unlike everywhere else."""
        if interval not in KLINE_INTERVALS:
            raise ValueError(f"unknown kline interval {interval!r}")
        for name, value in (("start_s", start_s), ("end_s", end_s)):
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int of seconds")
            if value > 10**11:
                raise ValueError(
                    f"{name}={value} looks like milliseconds or microseconds; klines take seconds"
                )
        if end_s is not None and end_s < start_s:
            raise ValueError("end_s is before start_s")
        params = {
            "symbol": _symbol(symbol),
            "interval": interval,
            "startTime": start_s,
            "endTime": end_s,
            "priceType": price_type,
        }
        return await self.get("/api/v1/klines", params)

    async def ticker(self, symbol: str, interval: str | None = None) -> Any:
        """One 24h (or ``interval``) ticker; None when the exchange answers 204."""
        return await self.get("/api/v1/ticker", {"symbol": _symbol(symbol), "interval": interval})

    async def tickers(self, interval: str | None = None) -> Any:
        return await self.get("/api/v1/tickers", {"interval": interval})

    async def mark_prices(self, symbol: str | None = None) -> Any:
        return await self.get("/api/v1/markPrices", {"symbol": _symbol(symbol) if symbol else None})

    async def open_interest(self, symbol: str | None = None) -> Any:
        return await self.get("/api/v1/openInterest", {"symbol": _symbol(symbol) if symbol else None})

    async def server_time_ms(self) -> int:
        data = await self.get("/api/v1/time")
        try:
            return int(str(data).strip())
        except ValueError:
            raise DecodeError("/api/v1/time did not return an integer") from None

    async def status(self) -> Any:
        return await self.get("/api/v1/status")

    async def ping(self) -> Any:
        return await self.get("/api/v1/ping")


def _symbol(symbol: str | None) -> str:
    if not isinstance(symbol, str) or not symbol or any(c.isspace() for c in symbol):
        raise ValueError(f"invalid exchange symbol {symbol!r}")
    return symbol
