"""Live transport: REST over one aiohttp session, WebSockets over the ``websockets`` asyncio client.

Incoming protocol Pings are answered by ``websockets`` itself; a small ``ClientConnection`` subclass
also *observes* them (and data frames) as they are parsed, so ``pings_received``, ``last_activity``
and frame receipt times reflect arrival on the socket, not the moment a slow consumer got round to
``recv()``. A per-session watchdog closes the socket when nothing at all arrives for too long: the
exchange pings every 60 s, so silence beyond two intervals means the connection is dead even when the
kernel has not noticed.

Proxies: http(s) proxies use aiohttp's and websockets' own support; SOCKS5 proxies go through
``aiohttp-socks`` for REST and through ``websockets``' python-socks integration for WS. ``socks5``
resolves the exchange's host name here, ``socks5h`` lets the proxy resolve it. Errors name a proxy by
``host:port`` only; a URL's password never reaches a message or a repr.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import ssl
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import aiohttp_socks
import python_socks
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
    ProtocolError,
    WebSocketException,
)
from websockets.frames import DATA_OPCODES, Frame, Opcode
from websockets.protocol import State

from backpack.clock import Clock, WallClock
from backpack.logs import ScrubbingLogger
from backpack.redaction import mask_url, scrub
from backpack.transport import (
    WATCHDOG_CLOSE_CODE,
    ControlListener,
    HttpRequest,
    HttpResponse,
    TransportError,
    TransportTimeout,
    WsClosed,
    WsFrame,
)

log = logging.getLogger(__name__)
# websockets logs every frame at DEBUG, private SUBSCRIBE frames (and their signatures) included
_WS_LOG = ScrubbingLogger(logging.getLogger("websockets.client"))

_MAX_CLOSE_REASON = 123  # bytes allowed in a close frame's reason


def _host_port(url: str) -> str:
    """``host:port`` of a URL, without userinfo, path or query (safe for messages)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    if port is None:
        port = {"https": 443, "wss": 443, "http": 80, "ws": 80}.get(parts.scheme, 0)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _describe(exc: BaseException, *secrets: str | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    cause = exc.__cause__
    if cause is not None and str(cause) and str(cause) not in text:  # e.g. why a SOCKS handshake failed
        text += f" ({type(cause).__name__}: {cause})"
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
            decoded = unquote(secret)
            if decoded != secret:
                text = text.replace(decoded, "***")
    return scrub(text)[:300]


def _userinfo(url: str | None) -> str | None:
    """The ``user:password`` part of a URL, to be blanked out of library messages."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.netloc.rpartition("@")[0] or None


def _is_socks(proxy: str | None) -> bool:
    return bool(proxy) and proxy.split(":", 1)[0].lower() in ("socks5", "socks5h")  # type: ignore[union-attr]


def _socks_connector(proxy: str, limit: int) -> aiohttp.TCPConnector:
    """An aiohttp connector that opens every connection through a SOCKS5 proxy."""
    parts = urlsplit(proxy)
    return aiohttp_socks.ProxyConnector(
        proxy_type=python_socks.ProxyType.SOCKS5,
        host=parts.hostname,
        port=parts.port or 1080,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        rdns=parts.scheme.lower() == "socks5h",
        limit=limit,
    )


# What a SOCKS handshake can raise on the REST path besides OSError: aiohttp-socks' own wrappers (not
# ClientError subclasses), python-socks' errors, and a proxy that hangs up mid-handshake (EOFError).
_SOCKS_ERRORS = (
    aiohttp_socks.ProxyError,
    aiohttp_socks.ProxyConnectionError,
    python_socks.ProxyError,
    EOFError,
)


class ObservedConnection(ClientConnection):
    """A client connection that timestamps every incoming data frame and counts protocol Pings.

    ``process_event`` is the hook ``websockets`` calls for each parsed event, synchronously and in
    arrival order, before any ``recv()`` sees the message; Pong replies are already queued by then.
    """

    def __init__(self, *args: Any, clock: Callable[[], int], **kwargs: Any) -> None:
        self.clock = clock
        self.pings = 0
        self.control_listener: ControlListener | None = None
        self.last_activity_us = clock()
        self.last_activity_mono = time.monotonic()
        self.receipts: deque[int] = deque()
        super().__init__(*args, **kwargs)

    def connection_lost(self, exc: Exception | None) -> None:
        # websockets calls this without connection_made when TLS to the origin fails inside an
        # HTTP proxy tunnel; the base class would then fail on state it never set up.
        if not hasattr(self, "recv_messages"):
            return
        super().connection_lost(exc)

    def process_event(self, event: Any) -> None:
        super().process_event(event)
        if not isinstance(event, Frame):
            return
        if event.opcode is Opcode.PING:
            self.pings += 1
            now = self.last_activity_us = self.clock()
            self.last_activity_mono = time.monotonic()
            listener = self.control_listener
            if listener is not None:
                # websockets queued the Pong while parsing this Ping, before this hook runs.
                payload = bytes(event.data)
                listener("ping", payload, now)
                listener("pong", payload, now)
        elif event.opcode in DATA_OPCODES:
            now = self.clock()
            self.last_activity_us = now
            self.last_activity_mono = time.monotonic()
            if event.fin:  # one complete message per final data frame
                self.receipts.append(now)


class LiveWsSession:
    """One WebSocket connection; ``recv()`` is meant for a single consumer task."""

    def __init__(
        self, session_id: str, url: str, conn: ObservedConnection, watchdog_seconds: float | None
    ) -> None:
        self.id = session_id
        self.url = url
        self._conn = conn
        self._watchdog_seconds = watchdog_seconds
        self._failure: WsClosed | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watchdog_task: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._watchdog_cancelled = False
        if watchdog_seconds is not None and watchdog_seconds > 0:
            self._arm(watchdog_seconds)

    def __repr__(self) -> str:
        return f"LiveWsSession(id={self.id!r}, url={mask_url(self.url)!r}, state={self._conn.state.name})"

    # -- seam ---------------------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        if self._failure is not None:
            raise WsClosed(self._failure.code, self._failure.reason)
        try:
            await self._conn.send(text)
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from None

    async def recv(self) -> WsFrame:
        if self._failure is not None:
            raise WsClosed(self._failure.code, self._failure.reason)
        self._reader = asyncio.current_task()
        try:
            data = await self._conn.recv()
        except ConnectionClosed as exc:
            raise self._closed_error(exc) from None
        except asyncio.CancelledError:
            # The watchdog cancels a blocked reader so it need not wait out the close handshake
            # with a dead peer; any other cancellation is passed on untouched.
            reader = self._reader
            if self._watchdog_cancelled and reader is not None:
                self._watchdog_cancelled = False
                if reader.uncancel() == 0 and self._failure is not None:
                    raise WsClosed(self._failure.code, self._failure.reason) from None
            raise
        finally:
            self._reader = None
        if self._failure is not None:  # arrived after the watchdog declared the socket dead
            raise WsClosed(self._failure.code, self._failure.reason)
        receipts = self._conn.receipts
        receipt = receipts.popleft() if receipts else self._conn.clock()
        return WsFrame(data, receipt)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        try:
            await self._conn.close(code, _clip_reason(reason))
        except ProtocolError as exc:  # e.g. a reserved code such as 1006
            raise ValueError(f"cannot close with code {code}: {exc}") from None
        self._disarm()

    @property
    def pings_received(self) -> int:
        return self._conn.pings

    @property
    def last_activity(self) -> int:
        return self._conn.last_activity_us

    def observe_control(self, listener: ControlListener | None) -> None:
        self._conn.control_listener = listener

    # -- extras -------------------------------------------------------------------------------------

    @property
    def extensions(self) -> list[str]:
        """Negotiated extension names, e.g. ``["permessage-deflate"]``."""
        return [ext.name for ext in self._conn.protocol.extensions]

    @property
    def closed(self) -> bool:
        return self._conn.state is State.CLOSED

    async def wait_closed(self) -> None:
        await self._conn.wait_closed()

    # -- internals ----------------------------------------------------------------------------------

    def _closed_error(self, exc: ConnectionClosed) -> WsClosed:
        if self._failure is not None:
            return WsClosed(self._failure.code, self._failure.reason)
        if exc.rcvd is not None:
            return WsClosed(exc.rcvd.code, exc.rcvd.reason)
        if exc.sent is not None:
            return WsClosed(None, f"closed locally with code {exc.sent.code}; no close frame received")
        return WsClosed(None, "connection lost without a close frame")

    def _arm(self, delay: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(delay, self._check)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        limit = self._watchdog_seconds
        assert limit is not None
        if self._conn.state is not State.OPEN:
            return  # closed by someone else; their close code stands
        idle = time.monotonic() - self._conn.last_activity_mono
        if idle < limit:
            self._arm(limit - idle)
            return
        reason = f"watchdog: no data or ping for {limit:g} s"
        log.warning("%s %s: %s; closing", self.id, _host_port(self.url), reason)
        self._failure = WsClosed(WATCHDOG_CLOSE_CODE, reason)
        if self._reader is not None and not self._reader.done():
            self._watchdog_cancelled = True
            self._reader.cancel()
        self._watchdog_task = asyncio.get_running_loop().create_task(
            self._conn.close(WATCHDOG_CLOSE_CODE, _clip_reason(reason))
        )


def _clip_reason(reason: str) -> str:
    raw = reason.encode()
    if len(raw) <= _MAX_CLOSE_REASON:
        return reason
    return raw[:_MAX_CLOSE_REASON].decode(errors="ignore")


class LiveTransport:
    """Real sockets. One instance per feed; ``close()`` releases the HTTP pool and open sockets."""

    def __init__(
        self,
        rest_proxy: str | None = None,
        ws_proxy: str | None = None,
        compression: bool = True,
        watchdog_seconds: float | None = 130.0,
        ws_open_timeout: float = 10.0,
        *,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_close_timeout: float = 5.0,
        ws_max_size: int = 16 * 2**20,
        ws_max_queue: int = 1024,
        http_pool_size: int = 32,
        user_agent: str = "cryptofeed-backpack",
        ssl_context: ssl.SSLContext | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._rest_proxy = rest_proxy
        self._ws_proxy = ws_proxy
        self._compression = compression
        self._watchdog_seconds = watchdog_seconds
        self._ws_open_timeout = ws_open_timeout
        self._ws_ping_interval = ws_ping_interval
        self._ws_ping_timeout = ws_ping_timeout
        self._ws_close_timeout = ws_close_timeout
        self._ws_max_size = ws_max_size
        self._ws_max_queue = ws_max_queue
        self._http_pool_size = http_pool_size
        self._user_agent = user_agent
        self._ssl = ssl_context  # None: the default verified context; set one to trust a private CA
        self._clock = clock if clock is not None else WallClock()
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._sessions: weakref.WeakSet[LiveWsSession] = weakref.WeakSet()

    def __repr__(self) -> str:
        # Proxies may carry credentials: show only where they point.
        rest = _host_port(self._rest_proxy) if self._rest_proxy else None
        ws = _host_port(self._ws_proxy) if self._ws_proxy else None
        return f"LiveTransport(rest_proxy={rest!r}, ws_proxy={ws!r}, compression={self._compression})"

    # -- clock --------------------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self._clock

    # -- REST ---------------------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            connector = (
                _socks_connector(self._rest_proxy, self._http_pool_size)  # type: ignore[arg-type]
                if _is_socks(self._rest_proxy)
                else aiohttp.TCPConnector(limit=self._http_pool_size)
            )
            # trust_env=False: only the configured proxy is used, never one from the environment.
            self._http = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent},
                trust_env=False,
            )
        return self._http

    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        where = _host_port(request.url)
        via = f" via proxy {_host_port(self._rest_proxy)}" if self._rest_proxy else ""
        path = urlsplit(request.url).path
        try:
            # Redirects are not followed: signed headers must never be replayed to another host.
            async with self._session().request(
                request.method,
                request.url,
                params=list(request.params) or None,
                headers=dict(request.headers),
                data=request.body,
                proxy=None if _is_socks(self._rest_proxy) else self._rest_proxy,  # SOCKS: in the connector
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
                ssl=self._ssl if self._ssl is not None else True,
            ) as resp:
                body = await resp.read()
                receipt = self._clock.now_us()
                headers: dict[str, str] = {}
                for key, value in resp.headers.items():
                    headers[key] = f"{headers[key]}, {value}" if key in headers else value
                return HttpResponse(resp.status, headers, body, receipt)
        except (TimeoutError, aiohttp_socks.ProxyTimeoutError):  # aiohttp's timeout errors subclass the first
            raise TransportTimeout(
                f"{request.method} {where}{path}{via} timed out after {timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError, *_SOCKS_ERRORS) as exc:
            detail = _describe(exc, _userinfo(self._rest_proxy), _userinfo(request.url))
            raise TransportError(f"{request.method} {where}{path}{via} failed: {detail}") from None

    # -- WebSocket ----------------------------------------------------------------------------------

    async def connect(self, url: str, *, timeout: float | None = None) -> LiveWsSession:
        open_timeout = self._ws_open_timeout if timeout is None else timeout
        where = _host_port(url)
        via = f" via proxy {_host_port(self._ws_proxy)}" if self._ws_proxy else ""
        factory = functools.partial(ObservedConnection, clock=self._clock.now_us)
        try:
            conn = await ws_connect(
                url,
                compression="deflate" if self._compression else None,
                # None disables websockets' default of reading proxies from the environment.
                proxy=self._ws_proxy,
                open_timeout=open_timeout,
                ping_interval=self._ws_ping_interval,
                ping_timeout=self._ws_ping_timeout,
                close_timeout=self._ws_close_timeout,
                max_size=self._ws_max_size,
                max_queue=self._ws_max_queue,
                user_agent_header=self._user_agent,
                create_connection=factory,  # type: ignore[arg-type]  # a partial of the subclass
                logger=_WS_LOG,
                **({"ssl": self._ssl} if self._ssl is not None and url.startswith("wss:") else {}),
            )
        except TimeoutError:
            raise TransportTimeout(
                f"websocket connect to {where}{via} timed out after {open_timeout:g} s"
            ) from None
        except InvalidStatus as exc:
            raise TransportError(
                f"websocket handshake with {where}{via} rejected: HTTP {exc.response.status_code}"
            ) from None
        except OSError as exc:  # before ValueError: ssl.SSLCertVerificationError is both
            detail = _describe(exc, _userinfo(self._ws_proxy), _userinfo(url))
            raise TransportError(f"websocket connect to {where}{via} failed: {detail}") from None
        except ImportError:  # websockets imports python-socks lazily, on the first SOCKS connect
            raise TransportError(
                f"websocket connect to {where}{via}: a SOCKS proxy needs the python-socks package"
            ) from None
        except (InvalidURI, InvalidProxy, ValueError) as exc:
            raise TransportError(
                f"websocket connect to {where}: bad url or proxy: {type(exc).__name__}"
            ) from None
        except WebSocketException as exc:  # including ProxyError: a SOCKS handshake refused or cut off
            detail = _describe(exc, _userinfo(self._ws_proxy), _userinfo(url))
            raise TransportError(f"websocket connect to {where}{via} failed: {detail}") from None
        assert isinstance(conn, ObservedConnection)
        session = LiveWsSession(f"ws-{next(self._ids)}", url, conn, self._watchdog_seconds)
        self._sessions.add(session)
        return session

    async def close(self) -> None:
        for session in list(self._sessions):
            try:
                await session.close(1000, "transport closing")
            except Exception:  # best effort: the transport is going away anyway
                log.debug("closing %s failed", session.id, exc_info=True)
        if self._http is not None:
            await self._http.close()
            self._http = None
