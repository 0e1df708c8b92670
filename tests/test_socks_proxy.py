"""REST and WebSocket traffic through a SOCKS5 proxy that the test runs on 127.0.0.1.

The proxy is a small asyncio SOCKS5 server (RFC 1928, with RFC 1929 user/password) written here, so
the test can read from the proxy's side what it was asked to reach and whether it relayed it: a test
passes only if the proxy reports the connection, not merely if the request succeeded (a request that
bypassed the proxy would succeed too). pproxy served in-process loses its relay tasks to the garbage
collector on Python 3.13 (it keeps no reference to them), so it is not used here.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import pytest

from backpack.live import LiveTransport
from backpack.rest import RestClient
from backpack.transport import TransportError

from .test_proxy import GUARD, free_port, origin  # noqa: F401  (origin is a fixture)

USER = "alice"
PASSWORD = "p@ss:w/rd%"  # every character that needs percent-encoding in userinfo

_LOOPBACK_NAMES = {"localhost"}


class SocksProxy:
    """A SOCKS5 CONNECT proxy that only ever dials loopback addresses.

    ``requests`` records each CONNECT as ``(host:port asked for, sent as a name?)``; ``relayed`` the ones
    it connected; ``refused`` counts failed logins. With ``forward_to`` every connection goes to that
    loopback port whatever the client asked for, so a client pointed at a closed port works only if
    its traffic really passes through the proxy.
    """

    def __init__(self, auth: tuple[str, str] | None = None, forward_to: int | None = None) -> None:
        self.auth = auth
        self.forward_to = forward_to
        self.requests: list[tuple[str, bool]] = []
        self.relayed: list[str] = []
        self.refused = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def carried(self, target: str) -> int:
        """How many connections asked for ``target`` (host:port) were relayed."""
        return self.relayed.count(target)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # only stop() cancels
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5:
            return
        wanted = 2 if self.auth else 0
        if wanted not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(bytes([5, wanted]))
        if self.auth:
            _, ulen = await reader.readexactly(2)
            user = (await reader.readexactly(ulen)).decode()
            password = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            if (user, password) != self.auth:
                self.refused += 1
                writer.write(b"\x01\x01")
                return
            writer.write(b"\x01\x00")
        _, command, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
        else:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        port = int.from_bytes(await reader.readexactly(2), "big")
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.requests.append((target, atyp == 3))
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
            return
        if not (host in _LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback):
            writer.write(b"\x05\x02\x00\x01" + bytes(6))  # not allowed: this proxy never leaves the machine
            return
        if self.forward_to:
            dest = ("127.0.0.1", self.forward_to)
        else:
            dest = ("127.0.0.1" if atyp == 3 else host, port)
        try:
            up_reader, up_writer = await asyncio.open_connection(*dest)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
            return
        self._writers.append(up_writer)
        self.relayed.append(target)
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while chunk := await src.read(65536):
            dst.write(chunk)
            await dst.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            dst.write_eof() if dst.can_write_eof() else dst.close()


@asynccontextmanager
async def socks(
    auth: tuple[str, str] | None = None, forward_to: int | None = None
) -> AsyncIterator[SocksProxy]:
    proxy = SocksProxy(auth, forward_to)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def _url(scheme: str, port: int, user: str | None = None, password: str | None = None) -> str:
    userinfo = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
    return f"{scheme}://{userinfo}127.0.0.1:{port}"


async def _round_trip(transport: LiveTransport, host: str, port: int) -> None:
    rest = RestClient(transport, f"http://{host}:{port}", retries=0, rng=random.Random(0))
    assert (await rest.get("/api/v1/status", {"via": "socks"})) == {
        "status": "Ok", "path": "/api/v1/status?via=socks"
    }
    session = await transport.connect(f"ws://{host}:{port}/ws", timeout=GUARD)
    await session.send("through socks")
    assert (await asyncio.wait_for(session.recv(), GUARD)).data == "echo through socks"
    await session.close()


async def test_rest_and_ws_go_through_socks5(origin: int) -> None:  # noqa: F811
    async with socks() as proxy:
        url = _url("socks5", proxy.port)
        transport = LiveTransport(rest_proxy=url, ws_proxy=url)
        try:
            await _round_trip(transport, "127.0.0.1", origin)
        finally:
            await transport.close()
        # one pooled REST connection and one WS connection, both opened by the proxy
        assert proxy.carried(f"127.0.0.1:{origin}") == 2, proxy.requests


async def test_socks5_with_user_and_password(origin: int) -> None:  # noqa: F811
    async with socks((USER, PASSWORD)) as proxy:
        good = _url("socks5", proxy.port, USER, PASSWORD)
        transport = LiveTransport(rest_proxy=good, ws_proxy=good)
        try:
            await _round_trip(transport, "127.0.0.1", origin)
        finally:
            await transport.close()
        assert proxy.carried(f"127.0.0.1:{origin}") == 2 and proxy.refused == 0, proxy.requests

        wrong = "Wr0ngPassw0rdThatIsLong"
        bad = _url("socks5", proxy.port, USER, wrong)
        transport = LiveTransport(rest_proxy=bad, ws_proxy=bad)
        try:
            with pytest.raises(TransportError) as rest_err:
                await RestClient(transport, f"http://127.0.0.1:{origin}", retries=0).status()
            with pytest.raises(TransportError) as ws_err:
                await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
        finally:
            await transport.close()
        assert proxy.refused == 2 and proxy.carried(f"127.0.0.1:{origin}") == 2, proxy.requests
        for err in (rest_err.value, ws_err.value):
            text = str(err)
            assert f"via proxy 127.0.0.1:{proxy.port}" in text
            assert wrong not in text and PASSWORD not in text and quote(PASSWORD, safe="") not in text


async def test_socks5h_lets_the_proxy_resolve_the_host(origin: int) -> None:  # noqa: F811
    """socks5h sends the host name to the proxy; socks5 resolves it here and sends the address."""
    async with socks() as proxy:
        url = _url("socks5h", proxy.port)
        transport = LiveTransport(rest_proxy=url, ws_proxy=url)
        try:
            await _round_trip(transport, "localhost", origin)
        finally:
            await transport.close()
        assert proxy.requests == [(f"localhost:{origin}", True)] * 2

    async with socks() as proxy:
        url = _url("socks5", proxy.port)
        transport = LiveTransport(rest_proxy=url, ws_proxy=url)
        try:
            await _round_trip(transport, "localhost", origin)
        finally:
            await transport.close()
        assert len(proxy.requests) == 2 and not any(by_name for _, by_name in proxy.requests), proxy.requests


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_dead_socks_proxy_is_a_transport_error_naming_host_port_only(
    origin: int, scheme: str  # noqa: F811
) -> None:
    dead = free_port()
    url = _url(scheme, dead, "bob", "Hunter2Hunter2")
    transport = LiveTransport(rest_proxy=url, ws_proxy=url)
    try:
        with pytest.raises(TransportError) as rest_err:
            await RestClient(transport, f"http://127.0.0.1:{origin}", retries=0).status()
        with pytest.raises(TransportError) as ws_err:
            await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
    finally:
        await transport.close()
    for err in (rest_err.value, ws_err.value):
        text = str(err)
        assert f"via proxy 127.0.0.1:{dead}" in text and "Hunter2" not in text and "bob:" not in text


async def test_proxy_that_is_not_socks_is_a_transport_error(origin: int) -> None:  # noqa: F811
    """A socks5:// URL pointing at a plain HTTP server: the handshake fails cleanly, nothing hangs."""
    transport = LiveTransport(rest_proxy=_url("socks5", origin), ws_proxy=_url("socks5", origin))
    try:
        with pytest.raises(TransportError, match=f"via proxy 127.0.0.1:{origin}"):
            rest = RestClient(transport, f"http://127.0.0.1:{origin}", retries=0)
            await asyncio.wait_for(rest.status(), GUARD)
        with pytest.raises(TransportError, match=f"via proxy 127.0.0.1:{origin}"):
            await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
    finally:
        await transport.close()
