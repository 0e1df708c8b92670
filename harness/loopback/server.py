"""Loopback Backpack exchange: REST and WebSocket on one 127.0.0.1 port, fed by the seeded market.

Why it exists: every networked test, the demo and the ccxt parity run need an exchange that behaves
like Backpack on the wire (shapes, silences, error frames, keep-alive) but is reproducible and can be
made to misbehave on demand (``server.faults``). Nothing here talks to anything but loopback.

Wire choices that the real exchange does not document (kept here so clients can be tested against
them deliberately):

* Private subscribe refused → ``{"id":null,"error":{"code":4003,"message":<reason>}}`` where reason is
  one of ``Missing signature``, ``Invalid signature``, ``Unknown API key``, ``Invalid window``,
  ``Signature expired``. Nothing is subscribed for that frame's private streams; its public streams are
  still subscribed.
* A frame that is not JSON, or not ``{"method": "SUBSCRIBE"|"UNSUBSCRIBE", "params": [str, ...]}`` →
  4002 ``Parse error``. Any malformed stream name in a frame → 4006 (or 4008 for a bad depth window)
  and nothing in that frame is (un)subscribed.
* Missing Pong for ``pong_timeout`` seconds → Close code 1000, reason ``Pong timeout``. Server stop →
  Close 1001 ``Server shutdown``. A client that stops reading → Close 1008 ``Slow consumer``.
* UNSUBSCRIBE of private streams is accepted without a signature.
* 429 body: ``{"code":"TOO_MANY_REQUESTS","message":"Too many requests"}``; snapshot 5xx body: plain
  text.
* The private account events (all configured API keys see the same single test account) use event name
  ``balanceUpdate`` on ``account.balanceUpdate``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import math
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from backpack.protocol.auth import MAX_WINDOW_MS, public_key_of, signing_string, verify
from backpack.protocol.wire import INVALID_DEPTH_WINDOW, INVALID_STREAM, PARSE_ERROR
from backpack.redaction import got
from harness.loopback.faults import CloseRequest, Faults, SendRequest
from harness.loopback.market import (
    DEPTH_WINDOWS_US,
    INTERVALS,
    Emission,
    MarketConfig,
    MarketGenerator,
    encode_frame,
)
from harness.loopback.seeded import SeededSource
from harness.loopback.source import (
    MarketSource,
    RestAnswer,
    RestClientError,
    RestNotFound,
    RestParseFailure,
    RestRequest,
)

log = logging.getLogger(__name__)

# A fixed, public, test-only key pair: the loopback server's one private account. Never a real key.
TEST_ACCOUNT_SECRET = base64.b64encode(
    hashlib.sha256(b"cryptofeed-backpack loopback test account").digest()
).decode()
TEST_ACCOUNT_API_KEY = public_key_of(TEST_ACCOUNT_SECRET)

# 4003 is the loopback server's own choice: the exchange documents no code for a refused private subscription.
AUTH_ERROR = 4003
DEFAULT_RATE = 20.0  # steps per second; with the default 50 ms step this is real time
_SYMBOL_STREAMS = frozenset({"bookTicker", "trade", "ticker", "markPrice", "openInterest", "liquidation"})
_PRIVATE_KINDS = frozenset({"orderUpdate", "positionUpdate", "balanceUpdate", "rfqUpdate"})
_SYMBOL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_WINDOW_RE = re.compile(r"\d+ms")


class StreamError(ValueError):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_stream(name: object) -> bool:
    """Validate a stream name the way the exchange does; return True for private (``account.*``) streams."""
    if not isinstance(name, str) or not name:
        raise StreamError(INVALID_STREAM, "Invalid stream")
    head, _, rest = name.partition(".")
    if head == "account":
        kind, _, sym = rest.partition(".")
        if kind not in _PRIVATE_KINDS or (sym and (kind == "balanceUpdate" or not _SYMBOL_RE.fullmatch(sym))):
            raise StreamError(INVALID_STREAM, "Invalid stream")
        return True
    if head == "liquidation" and not rest:
        return False
    if head == "depth":
        first, _, remainder = rest.partition(".")
        if _WINDOW_RE.fullmatch(first):
            if first not in DEPTH_WINDOWS_US:
                raise StreamError(INVALID_DEPTH_WINDOW, "Invalid depth window")
            rest = remainder
    elif head == "kline":
        interval, _, rest = rest.partition(".")
        if interval not in INTERVALS:
            raise StreamError(INVALID_STREAM, "Invalid stream")
    elif head not in _SYMBOL_STREAMS:
        raise StreamError(INVALID_STREAM, "Invalid stream")
    if not _SYMBOL_RE.fullmatch(rest):
        raise StreamError(INVALID_STREAM, "Invalid stream")
    return False


def error_frame(code: int, message: str) -> str:
    return json.dumps({"id": None, "error": {"code": code, "message": message}}, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class SentFrame:
    """One thing the server put on a socket: ``kind`` is "text", "ping" or "close"."""

    kind: str
    data: str
    step: int  # market step count at send time


class Connection:
    """One accepted WebSocket and its complete outgoing log."""

    def __init__(self, conn_id: int, ws: web.WebSocketResponse, path: str, log_limit: int) -> None:
        self.id = conn_id
        self.ws = ws
        self.path = path
        self.subscriptions: set[str] = set()
        self.sent: deque[SentFrame] = deque(maxlen=log_limit)
        self.received: deque[str] = deque(maxlen=log_limit)
        self.queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self.open = True
        self.close_code: int | None = None
        self.ping_outstanding_since: float | None = None
        self.pings_received = 0
        self.pongs_received = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.transport: asyncio.Transport | None = None
        self.text_sent = 0
        self.write_lock = asyncio.Lock()  # a frame written in pieces must not have a pong in the middle
        self.held: str | None = None  # a depth frame held back by ``reorder_depth``, sent after the next one

    @property
    def texts(self) -> list[str]:
        return [f.data for f in self.sent if f.kind == "text"]

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, open={self.open}, subscriptions={sorted(self.subscriptions)})"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BackpackServer:
    """Start with ``await server.start()``; drive the market with the ticker (``rate`` > 0) or ``step()``.

    The data comes from a ``MarketSource`` (``harness/loopback/source.py``): by default the seeded generator
    (``seed``, ``market_config`` or ``market``), or any source given as ``source`` (e.g. a recording).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        rate: float = DEFAULT_RATE,
        market: MarketGenerator | None = None,
        market_config: MarketConfig | None = None,
        source: MarketSource | None = None,
        ping_interval: float = 60.0,
        pong_timeout: float = 120.0,
        compress: bool = True,
        ints_as_strings: bool = False,
        account_keys: Iterable[str] = (TEST_ACCOUNT_API_KEY,),
        clock_ms: Callable[[], int] | None = None,
        log_limit: int = 200_000,
        max_queue: int = 100_000,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError(f"the loopback server binds loopback addresses only, not {host!r}")
        if ping_interval <= 0 or pong_timeout <= 0:
            raise ValueError("ping_interval and pong_timeout must be > 0")
        if source is None:
            if market is None:
                market = MarketGenerator(market_config or MarketConfig(seed=seed))
            source = SeededSource(market, ints_as_strings=ints_as_strings)
        elif market is not None or market_config is not None:
            raise ValueError("give either a source or a seeded market (market, market_config), not both")
        self.source: MarketSource = source
        self.faults = Faults()
        self.host, self._requested_port = host, port
        self.rate = rate
        self.ping_interval, self.pong_timeout = ping_interval, pong_timeout
        self.compress = compress
        self.ints_as_strings = ints_as_strings
        self.account_keys = frozenset(account_keys)
        self.clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.log_limit, self.max_queue = log_limit, max_queue
        self.connections: dict[int, Connection] = {}
        self.rest_log: deque[tuple[str, str, int]] = deque(maxlen=log_limit)
        self.port = 0
        self._next_conn = 0
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.faults.set_listener(self._faults_changed)

    @property
    def market(self) -> MarketGenerator:
        """The seeded generator (tests read its books and sequences); a recording-driven server has none."""
        market = getattr(self.source, "market", None)
        if not isinstance(market, MarketGenerator):
            raise AttributeError(f"this server is driven by {self.source.label}, not by a seeded market")
        return market

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        return f"http://{self._url_host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}/"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    async def start(self) -> BackpackServer:
        self._loop = asyncio.get_running_loop()
        app = web.Application(middlewares=[self._rest_middleware])
        r = app.router
        for path, handler in (("time", self._time), ("status", self._status), ("ping", self._ping)):
            r.add_get(f"/api/v1/{path}", handler)
        r.add_get("/api/v1/{name}", self._rest)  # everything else is the source's
        r.add_get("/{tail:.*}", self._ws_or_404)  # WS upgrade on "/" or any other path (ccxt, websockets)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.source.bind(self)
        if self.rate > 0:
            self._ticker = asyncio.create_task(self._tick_loop(), name="backpack-loopback-ticker")
        log.info("loopback Backpack server on %s (%s)", self.rest_url, self.source.label)
        return self

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.source.close()
        open_conns = [c for c in self.connections.values() if c.open]
        if open_conns:
            await asyncio.gather(
                *(self._close(c, 1001, "Server shutdown") for c in open_conns), return_exceptions=True
            )
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> BackpackServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- market driving -------------------------------------------------------------------------
    def step(self, n: int = 1) -> list[Emission]:
        """Advance the market ``n`` steps and queue every resulting frame to its subscribers."""
        out: list[Emission] = []
        for _ in range(n):
            emissions = self.source.step()
            self._dispatch(emissions)
            out.extend(emissions)
        return out

    def set_rate(self, rate: float) -> None:
        """Change the ticker rate while running (0 stops the ticker: step manually)."""
        self.rate = rate
        if self._ticker is not None and rate <= 0:
            self._ticker.cancel()
            self._ticker = None
        elif self._ticker is None and rate > 0 and self._loop is not None:
            self._ticker = asyncio.create_task(self._tick_loop(), name="backpack-loopback-ticker")

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            deadline += 1.0 / self.rate
            delay = deadline - loop.time()
            if delay < -1.0:  # fell far behind (debugger, loaded CI): do not burst to catch up
                deadline = loop.time()
            await asyncio.sleep(max(0.0, delay))
            try:
                self.step()
            except Exception:  # a generator bug must not kill the server silently
                log.exception("market step failed")
                raise

    def book(self, symbol: str) -> dict[str, dict[Any, Any]]:
        """The server's current full book: ``{"bids": {Decimal: Decimal}, "asks": {...}}``."""
        return self.market.book(symbol)

    def frames(self, connection_id: int | None = None) -> list[str]:
        """Text frames sent on one connection (default: the most recent one)."""
        if not self.connections:
            return []
        conn = self.connections[connection_id if connection_id is not None else max(self.connections)]
        return conn.texts

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued frame has been written to its socket."""
        async with asyncio.timeout(timeout):
            for conn in list(self.connections.values()):
                if conn.open:
                    await conn.queue.join()

    async def wait_connections(self, n: int = 1, timeout: float = 5.0) -> list[Connection]:
        async with asyncio.timeout(timeout):
            while len(self.connections) < n:
                await asyncio.sleep(0.005)
        return [self.connections[k] for k in sorted(self.connections)]

    async def wait_subscribed(
        self, stream: str, timeout: float = 5.0, connection_id: int | None = None
    ) -> Connection:
        """Wait until some (or the given) open connection is subscribed to ``stream``."""
        async with asyncio.timeout(timeout):
            while True:
                for conn in self.connections.values():
                    if conn.open and stream in conn.subscriptions and connection_id in (None, conn.id):
                        return conn
                await asyncio.sleep(0.005)

    # -- dispatch -------------------------------------------------------------------------------
    def _dispatch(self, emissions: list[Emission]) -> None:
        conns = [c for c in self.connections.values() if c.open and c.subscriptions]
        if not conns:
            return
        for em in emissions:
            subscribers = [c for c in conns if em.stream in c.subscriptions]
            if not subscribers:
                continue
            copies = 1
            if em.data.get("e") == "depth" and em.stream == f"depth.{em.symbol}":
                copies = self._depth_copies(em.symbol, em.data.get("u"))
                if not copies:
                    continue
            text = encode_frame(em.stream, em.data, self.ints_as_strings)
            for conn in subscribers:
                for _ in range(copies):
                    self._enqueue(conn, "text", text)

    def _depth_copies(self, symbol: str | None, seq: Any) -> int:
        """How many times a realtime depth frame goes out: 0 (skipped), 1 or 2 (duplicated) by the faults."""
        if self.faults.take_skip_depth(symbol, seq):
            return 0
        return 2 if self.faults.take_duplicate_depth(symbol, seq) else 1

    # -- SourceHost: what a per-connection source (a recording) uses -----------------------------------
    def deliver(self, conn: Connection, stream: str, text: str, depth: tuple[str, int] | None = None) -> None:
        """Queue one frame to one connection; realtime depth frames meet the depth faults as broadcasts do."""
        copies = 1
        if depth is not None and stream == f"depth.{depth[0]}":
            if conn.held is None and self.faults.take_reorder_depth(*depth):
                conn.held = text
                return
            copies = self._depth_copies(*depth)
        for _ in range(copies):
            self._enqueue(conn, "text", text)
        if conn.held is not None and depth is not None:
            held, conn.held = conn.held, None
            self._enqueue(conn, "text", held)

    async def drain(self, conn: Connection) -> None:
        if conn.open:
            await conn.queue.join()

    async def end(self, conn: Connection, code: int, reason: str) -> None:
        await self._close(conn, code, reason)

    def _enqueue(self, conn: Connection, kind: str, payload: str) -> None:
        if not conn.open:
            return
        if conn.queue.qsize() >= self.max_queue:
            log.warning("connection %s is not reading; closing it", conn.id)
            asyncio.get_running_loop().create_task(self._close(conn, 1008, "Slow consumer"))
            return
        conn.queue.put_nowait((kind, payload))

    async def _writer(self, conn: Connection) -> None:
        while True:
            kind, payload = await conn.queue.get()
            try:
                if kind == "text":
                    delay = self.faults.take_delay() + self.faults.take_stall_after(conn.text_sent)
                    if delay:
                        await asyncio.sleep(delay)
                    split = self.faults.take_split()
                    async with conn.write_lock:
                        if split is not None and conn.transport is not None:
                            await _write_split(conn.transport, payload, *split)
                        else:
                            await conn.ws.send_str(payload)
                    conn.text_sent += 1
                    for action in self.faults.take_at_frame(conn.id, conn.text_sent):
                        action()
                    close = self.faults.take_close_after(conn.text_sent)
                    if close is not None:
                        asyncio.get_running_loop().create_task(
                            self._close(conn, close.code, close.message, close.abrupt))
                elif kind == "ping":
                    await conn.ws.ping()
                conn.sent.append(SentFrame(kind, payload, self.source.steps))
            except (ConnectionError, RuntimeError) as exc:
                log.debug("connection %s: send failed (%s)", conn.id, type(exc).__name__)
                conn.open = False
            finally:
                conn.queue.task_done()

    async def _watchdog(self, conn: Connection) -> None:
        loop = asyncio.get_running_loop()
        tick = min(self.ping_interval, self.pong_timeout, 4.0) / 4
        next_ping = loop.time() + self.ping_interval
        while conn.open:
            await asyncio.sleep(tick)
            now = loop.time()
            since = conn.ping_outstanding_since
            if since is not None and now - since >= self.pong_timeout:
                await self._close(conn, 1000, "Pong timeout")
                return
            if now >= next_ping:
                next_ping = now + self.ping_interval
                if self.faults.take_ping_suppression():
                    continue
                self._enqueue(conn, "ping", "")
                if conn.ping_outstanding_since is None:
                    conn.ping_outstanding_since = now

    async def _close(self, conn: Connection, code: int, message: str, abrupt: bool = False) -> None:
        if not conn.open and conn.close_code is not None:
            return
        conn.open = False
        conn.close_code = code
        conn.sent.append(SentFrame("close", f"{code} {message}".strip(), self.source.steps))
        for task in conn.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        with contextlib.suppress(Exception):
            if abrupt:
                if conn.transport is not None:
                    conn.transport.abort()
                return
            async with asyncio.timeout(2.0):
                await conn.ws.close(code=code, message=message.encode())

    def _faults_changed(self) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._apply_actions)

    def _apply_actions(self) -> None:
        for action in self.faults.drain_actions():
            targets = [
                c for c in self.connections.values() if c.open and action.connection_id in (None, c.id)
            ]
            if isinstance(action, CloseRequest):
                for conn in targets:
                    self.faults._fire(
                        "close_socket", connection_id=conn.id, code=action.code, abrupt=action.abrupt
                    )
                    asyncio.get_running_loop().create_task(
                        self._close(conn, action.code, action.message, action.abrupt)
                    )
            elif isinstance(action, SendRequest):
                for conn in targets:
                    self.faults._fire("send_frame", connection_id=conn.id)
                    self._enqueue(conn, "text", action.text)

    # -- WebSocket ------------------------------------------------------------------------------
    async def _ws_or_404(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            compress=self.compress, autoping=False, heartbeat=None, timeout=2.0, max_msg_size=1 << 20
        )
        if not ws.can_prepare(request).ok:
            return web.Response(status=404, text="Not Found")
        await ws.prepare(request)
        self._next_conn += 1
        conn = Connection(self._next_conn, ws, request.path, self.log_limit)
        conn.transport = request.transport  # type: ignore[assignment]
        self.connections[conn.id] = conn
        conn.tasks = [
            asyncio.create_task(self._writer(conn), name=f"loopback-ws-writer-{conn.id}"),
            asyncio.create_task(self._watchdog(conn), name=f"loopback-ws-watchdog-{conn.id}"),
        ]
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(conn, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    self._on_text(conn, msg.data.decode("utf-8", errors="replace"))
                elif msg.type == WSMsgType.PING:
                    conn.pings_received += 1
                    if not self.faults.take_pong_suppression():
                        with contextlib.suppress(ConnectionError, RuntimeError):
                            async with conn.write_lock:
                                await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.pongs_received += 1
                    conn.ping_outstanding_since = None
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            if conn.close_code is None:
                conn.close_code = ws.close_code
            conn.open = False
            for task in conn.tasks:
                task.cancel()
            self.source.disconnected(conn)
        return ws

    def _on_text(self, conn: Connection, text: str) -> None:
        conn.received.append(text)
        try:
            msg = json.loads(text)
        except ValueError:
            self._enqueue(conn, "text", error_frame(PARSE_ERROR, "Parse error"))
            return
        method = msg.get("method") if isinstance(msg, dict) else None
        params = msg.get("params") if isinstance(msg, dict) else None
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            self._enqueue(conn, "text", error_frame(PARSE_ERROR, "Parse error"))
            return
        try:
            private = [s for s in params if check_stream(s)]
        except StreamError as exc:
            self._enqueue(conn, "text", error_frame(exc.code, exc.message))
            return
        public = [s for s in params if s not in private]
        if method == "UNSUBSCRIBE":
            conn.subscriptions.difference_update(params)
            self.source.unsubscribed(conn, params)
            return
        conn.subscriptions.update(public)
        if public:
            self._send_now(conn, self.source.subscribed(conn, public))
        if not private:
            return
        refusal = self._authorize(msg.get("signature"))
        if refusal is not None:
            self._enqueue(conn, "text", error_frame(AUTH_ERROR, refusal))
            return
        conn.subscriptions.update(private)
        self._send_now(conn, self.source.subscribed(conn, private))

    def _send_now(self, conn: Connection, emissions: list[Emission]) -> None:
        for em in emissions:
            self._enqueue(conn, "text", encode_frame(em.stream, em.data, self.ints_as_strings))

    def _authorize(self, signature: object) -> str | None:
        """None when the private subscribe may proceed, else the refusal reason (never echoes the key)."""
        if signature is None:
            return "Missing signature"
        if self.faults.take_private_reject():
            return "Invalid signature"
        if not isinstance(signature, list) or len(signature) != 4:
            return "Invalid signature"
        if not all(isinstance(x, str | int) and not isinstance(x, bool) for x in signature):
            return "Invalid signature"
        key, sig = str(signature[0]), str(signature[1])
        try:
            ts, window = int(signature[2]), int(signature[3])
        except ValueError:
            return "Invalid signature"
        if not verify(key, signing_string("subscribe", None, ts, window), sig):
            return "Invalid signature"
        if key not in self.account_keys:
            return "Unknown API key"
        if not 0 < window <= MAX_WINDOW_MS:
            return "Invalid window"
        if abs(self.clock_ms() - ts) > window:
            return "Signature expired"
        return None

    # -- REST -----------------------------------------------------------------------------------
    @web.middleware
    async def _rest_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        limited, retry_after = self.faults.take_rate_limit()
        if limited:
            headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
            resp: web.StreamResponse = _json(
                {"code": "TOO_MANY_REQUESTS", "message": "Too many requests"}, 429, headers
            )
        else:
            try:
                resp = await handler(request)
            except RestParseFailure as exc:
                resp = web.Response(status=400, text=f"Failed to deserialize query string: {exc}")
            except RestClientError as exc:
                resp = _json({"code": "INVALID_CLIENT_REQUEST", "message": str(exc)}, 400)
            except RestNotFound as exc:
                resp = web.Response(status=404, text=str(exc))
            except web.HTTPException as exc:
                resp = web.Response(status=exc.status, text=exc.reason)
        self.rest_log.append((request.method, request.path_qs, resp.status))
        return resp

    async def _rest(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "depth":
            status = self.faults.take_snapshot_failure()
            if status is not None:
                return web.Response(status=status, text="Service Unavailable")
            if self.faults.take_empty_snapshot():
                return web.Response(status=204)
        answer = self.source.rest(RestRequest(name, request.query, request.path_qs))
        return _response(answer)

    async def _time(self, request: web.Request) -> web.Response:
        return web.Response(text=str(self.clock_ms()), content_type="text/plain")

    async def _status(self, request: web.Request) -> web.Response:
        return _json({"message": None, "status": "Ok"})

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong", content_type="text/plain")


async def _write_split(transport: asyncio.Transport, text: str, chunk: int, pause: float) -> None:
    """One unmasked, uncompressed WebSocket text frame written ``chunk`` bytes at a time (valid under
    permessage-deflate too: RSV1 clear means "not compressed")."""
    data = text.encode("utf-8")
    n = len(data)
    if n < 126:
        head = bytes([0x81, n])
    elif n < 1 << 16:
        head = bytes([0x81, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 127]) + n.to_bytes(8, "big")
    frame = head + data
    for i in range(0, len(frame), chunk):
        if transport.is_closing():
            raise ConnectionError("transport closed")
        transport.write(frame[i:i + chunk])
        await asyncio.sleep(pause)  # let each piece go out on its own


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(data, separators=(",", ":"))
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def _response(answer: RestAnswer) -> web.Response:
    headers = dict(answer.headers)
    if answer.body is None:
        return web.Response(status=answer.status, headers=headers)
    if isinstance(answer.body, str):
        ctype = answer.content_type or "text/plain"
        return web.Response(status=answer.status, text=answer.body, content_type=ctype, headers=headers)
    if answer.content_type is not None:
        headers["Content-Type"] = answer.content_type
    return web.Response(status=answer.status, body=answer.body, headers=headers)


# -- CLI --------------------------------------------------------------------------------------------


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 0,
    rate: float = DEFAULT_RATE,
    *,
    ping_interval: float = 60.0,
    pong_timeout: float = 120.0,
    ints_as_strings: bool = False,
    compress: bool = True,
    ready: Callable[[BackpackServer], None] | None = None,
    stop: asyncio.Event | None = None,
    source: MarketSource | None = None,
) -> None:
    """Run the loopback server until ``stop`` is set or the task is cancelled (``source``: a recording)."""
    server = BackpackServer(
        seed=seed,
        source=source,
        host=host,
        port=port,
        rate=rate,
        ping_interval=ping_interval,
        pong_timeout=pong_timeout,
        ints_as_strings=ints_as_strings,
        compress=compress,
    )
    await server.start()
    try:
        if ready is not None:
            ready(server)
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        await server.stop()


def add_serve_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default: an ephemeral one)")
    parser.add_argument("--seed", type=int, default=0, help="market seed (default 0)")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="market steps per second (0: frozen)"
    )
    parser.add_argument("--ping-interval", type=float, default=60.0, help="seconds between protocol Pings")
    parser.add_argument(
        "--pong-timeout", type=float, default=120.0, help="close after this long without a Pong"
    )
    parser.add_argument("--ints-as-strings", action="store_true", help="send E/T/U/u/t as JSON strings")
    parser.add_argument("--no-compress", action="store_true", help="refuse permessage-deflate")
    parser.add_argument(
        "--recording", metavar="RECORDING",
        help="serve a recording (.jsonl, .jsonl.zst) instead of the seeded market (docs/serve-recording.md)",
    )
    parser.add_argument(
        "--speed", type=_speed, default=argparse.SUPPRESS, metavar="X",
        help="with --recording: recorded time x X (default 1; 0 or max: as fast as each client reads)",
    )
    parser.add_argument(
        "--loop", action="store_true", default=argparse.SUPPRESS,
        help="with --recording: start the recording again at its end instead of closing the connection",
    )
    return parser


def _speed(text: str) -> float | None:
    """A pace factor; None means as fast as possible."""
    if text.strip().lower() == "max":
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'max' {got(text)}") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0 or 'max' {got(text)}")
    return None if value == 0 or math.isinf(value) else value


def _recording_source(args: argparse.Namespace) -> tuple[MarketSource | None, int | None]:
    """The source ``serve`` runs on, or an exit code after a one-line error on stderr."""
    from harness.cli import EXIT_DATAERR, EXIT_USAGE
    from harness.cli._recordings import exit_code

    recording = getattr(args, "recording", None)
    given = [flag for flag in ("--speed", "--loop") if hasattr(args, flag[2:])]
    if recording is None:
        if given:
            print(f"error: {' and '.join(given)} apply to --recording only", file=sys.stderr)
            return None, EXIT_USAGE
        return None, None
    seeded = [flag for flag, value, default in (("--seed", args.seed, 0), ("--rate", args.rate, DEFAULT_RATE),
                                                ("--ints-as-strings", args.ints_as_strings, False))
              if value != default]
    if seeded:
        print(f"error: {', '.join(seeded)} drive the seeded market and do not apply to --recording",
              file=sys.stderr)
        return None, EXIT_USAGE
    from harness.loopback.recorded import RecordingSource
    from harness.recording.reader import RecordingError

    try:
        source = RecordingSource.open(recording, speed=getattr(args, "speed", 1.0),
                                      loop=getattr(args, "loop", False))
    except RecordingError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return None, exit_code(exc)
    session = source.session
    if not session.frames and not session.rest:
        print(f"error: {session.path.name}: nothing to serve: no WebSocket data frames and no REST answers",
              file=sys.stderr)
        return None, EXIT_DATAERR
    if session.damage is not None:
        print(f"warning: {session.damage.message}; serving the events before it", file=sys.stderr)
    return source, None


def main_serve(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Entry point for ``backpack-harness serve``: prints the URLs, runs until Ctrl-C."""
    if not isinstance(args, argparse.Namespace):
        parser = add_serve_arguments(argparse.ArgumentParser(prog="backpack-harness serve"))
        args = parser.parse_args(list(args) if args is not None else None)
    source, failed = _recording_source(args)
    if failed is not None:
        return failed

    def ready(server: BackpackServer) -> None:
        print(f"REST  {server.rest_url}/api/v1/...", flush=True)
        print(f"WS    {server.ws_url}", flush=True)
        recorded = getattr(server.source, "session", None)
        if recorded is None:
            seed = server.market.config.seed
            print(f"seed  {seed}; test account API key {TEST_ACCOUNT_API_KEY}", flush=True)
            return
        speed = getattr(server.source, "speed", None)
        pace = "as fast as clients read" if speed is None else f"speed {speed:g}x"
        print(f"replay {recorded.path.name}: {recorded.describe()}; {pace}; test account API key "
              f"{TEST_ACCOUNT_API_KEY}", flush=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):  # clean Close frames to clients on either
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve(
            host=args.host,
            port=args.port,
            seed=args.seed,
            rate=0 if source is not None else args.rate,
            source=source,
            ping_interval=args.ping_interval,
            pong_timeout=args.pong_timeout,
            ints_as_strings=args.ints_as_strings,
            compress=not args.no_compress,
            ready=ready,
            stop=stop,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
    return 0
