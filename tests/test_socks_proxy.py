"""REST and WebSocket traffic through a SOCKS5 proxy that the test runs on 127.0.0.1.

The proxy is pproxy (a test dependency) served in-process, so its own log says which destinations it
carried: a test passes only if the proxy reports the connection, not merely if the request succeeded
(a request that bypassed the proxy would succeed too).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import pproxy
import pytest

from backpack.live import LiveTransport
from backpack.rest import RestClient
from backpack.transport import TransportError

from .test_proxy import GUARD, free_port, origin  # noqa: F401  (origin is a fixture)

USER = "alice"
PASSWORD = "p@ss:w/rd%"  # every character that needs percent-encoding in userinfo


class SocksProxy:
    """pproxy's SOCKS5 server; ``log`` holds its verbose lines ("socks5 <client> -> ... <host:port>").

    With ``forward_to`` every connection goes to that loopback port whatever the client asked for, so a
    client pointed at a closed port works only if its traffic really passes through the proxy.
    """

    def __init__(self, auth: str | None = None, forward_to: int | None = None) -> None:
        self.auth = auth
        self.forward_to = forward_to
        self.log: list[str] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        port = free_port()
        userinfo = f"#{self.auth}" if self.auth else ""
        # authtime=0: pproxy otherwise trusts an address that authenticated once, for 30 days.
        remote = [pproxy.Connection(f"tunnel://127.0.0.1:{self.forward_to}")] if self.forward_to else []
        args: dict = {"rserver": remote, "verbose": self.log.append, "authtime": 0}
        self._server = await pproxy.Server(f"socks5://127.0.0.1:{port}{userinfo}").start_server(args)
        self.port = port
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def carried(self, target: str) -> int:
        """How many connections the proxy opened to ``target`` (host:port)."""
        return sum(1 for line in self.log if line.startswith("socks5 ") and line.endswith(f"-> {target}"))

    def refused(self) -> int:
        return sum(1 for line in self.log if line.startswith("Unauthorized SOCKS"))


@asynccontextmanager
async def socks(auth: str | None = None, forward_to: int | None = None) -> AsyncIterator[SocksProxy]:
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
        assert proxy.carried(f"127.0.0.1:{origin}") == 2, proxy.log


async def test_socks5_with_user_and_password(origin: int) -> None:  # noqa: F811
    async with socks(f"{USER}:{PASSWORD}") as proxy:
        good = _url("socks5", proxy.port, USER, PASSWORD)
        transport = LiveTransport(rest_proxy=good, ws_proxy=good)
        try:
            await _round_trip(transport, "127.0.0.1", origin)
        finally:
            await transport.close()
        assert proxy.carried(f"127.0.0.1:{origin}") == 2 and proxy.refused() == 0, proxy.log

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
        assert proxy.refused() == 2 and proxy.carried(f"127.0.0.1:{origin}") == 2, proxy.log
        for err in (rest_err.value, ws_err.value):
            text = str(err)
            assert f"via proxy 127.0.0.1:{proxy.port}" in text
            assert wrong not in text and PASSWORD not in text and quote(PASSWORD, safe="") not in text


async def test_socks5h_lets_the_proxy_resolve_the_host(origin: int) -> None:  # noqa: F811
    """socks5h sends the host name to the proxy; socks5 resolves it here and sends the address."""
    async with socks() as proxy:
        transport = LiveTransport(rest_proxy=_url("socks5h", proxy.port), ws_proxy=_url("socks5h", proxy.port))
        try:
            await _round_trip(transport, "localhost", origin)
        finally:
            await transport.close()
        assert proxy.carried(f"localhost:{origin}") == 2, proxy.log


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
async def test_dead_socks_proxy_is_a_transport_error_naming_host_port_only(origin: int, scheme: str) -> None:  # noqa: F811
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
            await asyncio.wait_for(RestClient(transport, f"http://127.0.0.1:{origin}", retries=0).status(), GUARD)
        with pytest.raises(TransportError, match=f"via proxy 127.0.0.1:{origin}"):
            await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
    finally:
        await transport.close()
