"""LiveTransport against aiohttp servers started by the tests on 127.0.0.1 (ephemeral ports)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer

from backpack.clock import WallClock, sleep_or_stop
from backpack.live import LiveTransport
from backpack.transport import (
    WATCHDOG_CLOSE_CODE,
    HttpRequest,
    Transport,
    TransportError,
    TransportTimeout,
    WsClosed,
    WsSession,
)

GUARD = 10.0  # deadlock guard only; no test asserts on elapsed time


@dataclass
class ServerLog:
    close_codes: list[int | None] = field(default_factory=list)
    compress: list[object] = field(default_factory=list)
    requests: list[tuple[str, str, list[tuple[str, str]], bytes, dict[str, str]]] = field(
        default_factory=list
    )


LOG = web.AppKey("log", ServerLog)


async def _ws_handler(request: web.Request) -> web.WebSocketResponse:
    log: ServerLog = request.app[LOG]
    ws = web.WebSocketResponse(compress=True, autoping=True)
    await ws.prepare(request)
    log.compress.append(ws.compress)
    async for msg in ws:
        if msg.type is not WSMsgType.TEXT:
            continue
        cmd, _, arg = msg.data.partition(":")
        if cmd == "echo":
            await ws.send_str(arg)
        elif cmd == "burst":
            for i in range(int(arg)):
                await ws.send_str(f"m{i}")
        elif cmd == "bin":
            await ws.send_bytes(arg.encode())
        elif cmd == "ping":
            for _ in range(int(arg)):
                await ws.ping(b"srv")
            await ws.send_str("pinged")
        elif cmd == "pingonly":
            for _ in range(int(arg)):
                await ws.ping(b"srv")
        elif cmd == "pingloop":
            count, interval = arg.split(",")
            for _ in range(int(count)):
                await asyncio.sleep(float(interval))
                await ws.ping(b"srv")
            await ws.send_str("done")
        elif cmd == "close":
            await ws.close(code=int(arg), message=b"bye")
        # "silence" and anything else: say nothing
    log.close_codes.append(ws.close_code)
    return ws


async def _http_handler(request: web.Request) -> web.StreamResponse:
    log: ServerLog = request.app[LOG]
    body = await request.read()
    log.requests.append(
        (request.method, request.path, list(request.query.items()), body, dict(request.headers))
    )
    if request.path == "/slow":
        await asyncio.sleep(GUARD)
    if request.path == "/fail":
        return web.json_response({"code": "SERVER_ERROR", "message": "boom"}, status=503)
    if request.path == "/forbidden":
        return web.Response(status=403, text="no")
    if request.path == "/redirect":
        raise web.HTTPFound("/elsewhere")
    return web.json_response({"ok": True}, headers={"X-Extra": "1"})


@pytest.fixture
async def server() -> AsyncIterator[tuple[TestServer, ServerLog]]:
    log = ServerLog()
    app = web.Application()
    app[LOG] = log
    app.router.add_get("/ws", _ws_handler)
    app.router.add_route("*", "/{tail:.*}", _http_handler)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv, log
    finally:
        await srv.close()


def ws_url(srv: TestServer) -> str:
    return f"ws://127.0.0.1:{srv.port}/ws"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(predicate, what: str) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), GUARD)
    except TimeoutError:
        pytest.fail(f"never happened: {what}")


async def test_implements_the_seam(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        assert isinstance(transport, Transport)
        session = await transport.connect(ws_url(srv))
        assert isinstance(session, WsSession)
        await session.close()
    finally:
        await transport.close()


async def test_send_recv_text_and_binary_and_ids(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        a = await transport.connect(ws_url(srv))
        b = await transport.connect(ws_url(srv))
        assert (a.id, b.id) == ("ws-1", "ws-2")
        await a.send("echo:hello")
        frame = await asyncio.wait_for(a.recv(), GUARD)
        assert frame.data == "hello"
        await b.send("bin:raw")
        frame = await asyncio.wait_for(b.recv(), GUARD)
        assert frame.data == b"raw"
        await a.close()
        await b.close()
    finally:
        await transport.close()


async def test_receipts_monotonic_and_bounded(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        session = await transport.connect(ws_url(srv))
        before = transport.clock.now_us()
        await session.send("burst:200")
        frames = [await asyncio.wait_for(session.recv(), GUARD) for _ in range(200)]
        after = transport.clock.now_us()
        assert [f.data for f in frames] == [f"m{i}" for i in range(200)]
        receipts = [f.receipt for f in frames]
        assert receipts == sorted(receipts)
        assert before <= receipts[0] and receipts[-1] <= after
        assert session.last_activity >= receipts[-1]
        await session.close()
    finally:
        await transport.close()


async def test_receipt_is_arrival_time_not_read_time(server) -> None:
    """Frames that queue up while nobody reads keep the time they arrived, not the time of recv()."""
    srv, _ = server
    transport = LiveTransport()
    try:
        session = await transport.connect(ws_url(srv))
        await session.send("burst:3")
        await wait_until(lambda: session.last_activity > 0 and len(session._conn.receipts) == 3, "3 queued")
        marker = transport.clock.now_us()
        frames = [await session.recv() for _ in range(3)]
        assert all(f.receipt <= marker for f in frames)
        await session.close()
    finally:
        await transport.close()


async def test_server_close_code_surfaces(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        session = await transport.connect(ws_url(srv))
        await session.send("close:4321")
        with pytest.raises(WsClosed) as info:
            await asyncio.wait_for(session.recv(), GUARD)
        assert info.value.code == 4321
        assert info.value.reason == "bye"
        with pytest.raises(WsClosed) as again:  # stays closed
            await session.send("echo:x")
        assert again.value.code == 4321
    finally:
        await transport.close()


async def test_client_close_code_reaches_server(server) -> None:
    srv, log = server
    transport = LiveTransport()
    try:
        session = await transport.connect(ws_url(srv))
        await session.close(4100, "client done")
        await wait_until(lambda: log.close_codes, "server saw the close")
        assert log.close_codes == [4100]
        with pytest.raises(WsClosed):
            await session.recv()
    finally:
        await transport.close()


async def test_protocol_pings_counted_and_touch_activity(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        session = await transport.connect(ws_url(srv))
        assert session.pings_received == 0
        await session.send("echo:first")
        first = await asyncio.wait_for(session.recv(), GUARD)
        await session.send("ping:3")
        frame = await asyncio.wait_for(session.recv(), GUARD)
        assert frame.data == "pinged"
        assert session.pings_received == 3
        # Pings alone (no data frame) must move last_activity forward.
        await asyncio.sleep(0.002)
        mark = session.last_activity
        assert mark >= frame.receipt > first.receipt
        await session.send("pingonly:2")
        await wait_until(lambda: session.pings_received == 5, "two more pings")
        assert session.last_activity > mark
        await session.close()
    finally:
        await transport.close()


async def test_watchdog_fires_on_silence(server) -> None:
    srv, log = server
    transport = LiveTransport(watchdog_seconds=0.5)
    try:
        session = await transport.connect(ws_url(srv))
        await session.send("silence")
        with pytest.raises(WsClosed) as info:
            await asyncio.wait_for(session.recv(), GUARD)
        assert info.value.code == WATCHDOG_CLOSE_CODE
        assert "watchdog" in info.value.reason and "0.5" in info.value.reason
        await wait_until(lambda: log.close_codes, "server saw the watchdog close")
        assert log.close_codes == [WATCHDOG_CLOSE_CODE]
        with pytest.raises(WsClosed) as again:
            await session.recv()
        assert again.value.code == WATCHDOG_CLOSE_CODE
    finally:
        await transport.close()


async def test_pings_alone_keep_watchdog_quiet(server) -> None:
    srv, _ = server
    transport = LiveTransport(watchdog_seconds=1.0)
    try:
        session = await transport.connect(ws_url(srv))
        # 2 s of pings every 0.1 s and no data: twice the watchdog interval, yet the socket stays up.
        await session.send("pingloop:20,0.1")
        frame = await asyncio.wait_for(session.recv(), GUARD)
        assert frame.data == "done"
        assert session.pings_received == 20
        await session.close()
    finally:
        await transport.close()


@pytest.mark.parametrize("enabled", [True, False])
async def test_permessage_deflate_negotiation(server, enabled: bool) -> None:
    srv, log = server
    transport = LiveTransport(compression=enabled)
    try:
        session = await transport.connect(ws_url(srv))
        assert session.extensions == (["permessage-deflate"] if enabled else [])
        payload = "x" * 50_000
        await session.send(f"echo:{payload}")
        frame = await asyncio.wait_for(session.recv(), GUARD)
        assert frame.data == payload
        assert bool(log.compress[0]) is enabled
        await session.close()
    finally:
        await transport.close()


async def test_connect_refused_names_host_port() -> None:
    port = free_port()
    transport = LiveTransport()
    try:
        with pytest.raises(TransportError) as info:
            await transport.connect(f"ws://127.0.0.1:{port}/ws", timeout=GUARD)
        assert f"127.0.0.1:{port}" in str(info.value)
        assert not isinstance(info.value, WsClosed)
    finally:
        await transport.close()


async def test_handshake_rejected(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        with pytest.raises(TransportError, match="HTTP 403"):
            await transport.connect(f"ws://127.0.0.1:{srv.port}/forbidden", timeout=GUARD)
    finally:
        await transport.close()


async def test_transport_close_closes_sessions(server) -> None:
    srv, log = server
    transport = LiveTransport()
    session = await transport.connect(ws_url(srv))
    await transport.close()
    await wait_until(lambda: log.close_codes, "server saw the close")
    assert session.closed
    with pytest.raises(WsClosed):
        await session.recv()


# -- REST ------------------------------------------------------------------------------------------


async def test_rest_roundtrip_params_body_headers(server) -> None:
    srv, log = server
    transport = LiveTransport()
    try:
        before = transport.clock.now_us()
        resp = await transport.request(
            HttpRequest(
                "POST",
                f"http://127.0.0.1:{srv.port}/api/v1/thing",
                params=(("marketType", "SPOT"), ("marketType", "PERP"), ("q", "a b&c")),
                headers={"X-Test": "yes", "Content-Type": "application/json"},
                body=b'{"a":1}',
            )
        )
        assert resp.status == 200
        assert resp.body == b'{"ok": true}'
        assert resp.headers["X-Extra"] == "1"
        assert before <= resp.receipt <= transport.clock.now_us()
        method, path, query, body, headers = log.requests[-1]
        assert (method, path, body) == ("POST", "/api/v1/thing", b'{"a":1}')
        assert query == [("marketType", "SPOT"), ("marketType", "PERP"), ("q", "a b&c")]
        assert headers["X-Test"] == "yes"
    finally:
        await transport.close()


async def test_rest_non_2xx_is_returned_not_raised(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        resp = await transport.request(HttpRequest("GET", f"http://127.0.0.1:{srv.port}/fail"))
        assert resp.status == 503
        assert b"SERVER_ERROR" in resp.body
        redirect = await transport.request(HttpRequest("GET", f"http://127.0.0.1:{srv.port}/redirect"))
        assert redirect.status == 302  # never followed: signed headers must not travel to another URL
    finally:
        await transport.close()


async def test_rest_timeout_is_transport_timeout(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        with pytest.raises(TransportTimeout) as info:
            await transport.request(HttpRequest("GET", f"http://127.0.0.1:{srv.port}/slow"), timeout=0.2)
        assert f"127.0.0.1:{srv.port}" in str(info.value)
    finally:
        await transport.close()


async def test_rest_connection_error_names_host_never_headers() -> None:
    port = free_port()
    transport = LiveTransport()
    secret = "c2lnbmF0dXJlLXNob3VsZC1uZXZlci1sZWFr"
    try:
        with pytest.raises(TransportError) as info:
            await transport.request(
                HttpRequest("GET", f"http://127.0.0.1:{port}/api/v1/time", headers={"X-Signature": secret})
            )
        text = str(info.value) + repr(info.value)
        assert f"127.0.0.1:{port}" in text
        assert secret not in text
        assert not isinstance(info.value, TransportTimeout)
        assert info.value.__cause__ is None and info.value.__suppress_context__
    finally:
        await transport.close()


async def test_proxy_credentials_never_in_repr_or_errors() -> None:
    port = free_port()
    transport = LiveTransport(rest_proxy=f"http://user:hunter2@127.0.0.1:{port}")
    try:
        assert "hunter2" not in repr(transport)
        with pytest.raises(TransportError) as info:
            await transport.request(HttpRequest("GET", "http://127.0.0.1:9/x"))
        assert "hunter2" not in str(info.value)
        assert f"proxy 127.0.0.1:{port}" in str(info.value)
    finally:
        await transport.close()


def test_wall_clock_never_goes_backwards() -> None:
    clock = WallClock()
    clock._last = 2**62  # as if the wall clock had just stepped back
    assert clock.now_us() == 2**62
    assert WallClock().now_us() > 1_600_000_000_000_000


async def test_wall_clock_sleeps_and_sleep_or_stop_returns_on_stop() -> None:
    clock, stop = WallClock(), asyncio.Event()
    before = clock.now_us()
    assert await sleep_or_stop(clock, 20_000, stop) is False
    assert clock.now_us() - before >= 19_000  # real time passed (a lower bound, not a timing claim)
    asyncio.get_running_loop().call_later(0.01, stop.set)
    assert await asyncio.wait_for(sleep_or_stop(clock, 60_000_000, stop), 5) is True


async def test_the_live_transport_uses_the_clock_it_is_given() -> None:
    class Fixed(WallClock):
        def now_us(self) -> int:
            return 42

    transport = LiveTransport(clock=Fixed())
    assert transport.clock.now_us() == 42


class DeadPeer:
    """Completes the WebSocket handshake, then never reads or writes again (a hung exchange)."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        key = next(
            line.split(":", 1)[1].strip()
            for line in head.split("\r\n")
            if line.lower().startswith("sec-websocket-key:")
        )
        accept = base64.b64encode(
            hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
        ).decode()
        writer.write(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )
        await writer.drain()

    async def stop(self) -> None:
        for writer in self.writers:
            writer.close()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_watchdog_does_not_wait_for_a_dead_peer_close_handshake() -> None:
    """A blocked recv() raises as soon as the watchdog fires, even though the peer never answers Close."""
    peer = DeadPeer()
    port = await peer.start()
    # close_timeout far beyond the guard: if recv() waited for the close handshake, wait_for would trip.
    transport = LiveTransport(watchdog_seconds=0.5, ws_close_timeout=10 * GUARD)
    try:
        session = await transport.connect(f"ws://127.0.0.1:{port}/", timeout=GUARD)
        with pytest.raises(WsClosed) as info:
            await asyncio.wait_for(session.recv(), GUARD)
        assert info.value.code == WATCHDOG_CLOSE_CODE
    finally:
        await peer.stop()
        await transport.close()


async def test_outer_cancellation_is_not_swallowed(server) -> None:
    srv, _ = server
    transport = LiveTransport()
    try:
        session = await transport.connect(ws_url(srv))
        reader = asyncio.ensure_future(session.recv())
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await session.send("echo:still-alive")  # cancelling recv() loses nothing
        frame = await asyncio.wait_for(session.recv(), GUARD)
        assert frame.data == "still-alive"
        await session.close()
    finally:
        await transport.close()


async def test_close_rejects_reserved_codes_and_clips_long_reasons(server) -> None:
    srv, log = server
    transport = LiveTransport()
    try:
        session = await transport.connect(ws_url(srv))
        with pytest.raises(ValueError, match="1006"):
            await session.close(1006)
        assert not session.closed
        await session.close(1000, "é" * 200)  # 400 bytes: clipped to the 123 a close frame allows
        await wait_until(lambda: log.close_codes, "server saw the close")
        assert log.close_codes == [1000]
    finally:
        await transport.close()
