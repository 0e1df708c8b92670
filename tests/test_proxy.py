"""REST and WebSocket traffic through an HTTP proxy started by the test on 127.0.0.1.

The proxy is a few dozen lines of asyncio: CONNECT tunnels (what ``websockets`` uses) and absolute-form
forwarding (what aiohttp uses for plain-http targets). It records what it was asked to reach and
refuses any destination other than 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import random
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from cryptography import x509  # a dependency of ccxt, which the test extra pins
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from backpack.live import LiveTransport
from backpack.rest import RestClient
from backpack.transport import TransportError

GUARD = 10.0  # deadlock guard only


class TinyProxy:
    def __init__(self) -> None:
        self.connects: list[str] = []  # CONNECT targets, host:port
        self.forwards: list[str] = []  # absolute-form request lines, "METHOD url"
        self.auth: list[str | None] = []  # Proxy-Authorization seen per client request
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.writers.append(writer)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # only stop() cancels; ending quietly avoids 3.11's noisy stream-callback report
        finally:
            writer.close()
            self.tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        request_line, *lines = head[:-4].split("\r\n")
        method, target, version = request_line.split(" ")
        headers = [line for line in lines if line]
        self.auth.append(
            next(
                (h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("proxy-authorization:")),
                None,
            )
        )
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self.connects.append(target)
            if host != "127.0.0.1":
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
            except OSError:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            url = urlsplit(target)
            self.forwards.append(f"{method} {target}")
            if url.hostname != "127.0.0.1":
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
            origin_form = url.path + (f"?{url.query}" if url.query else "")
            kept = [h for h in headers if not h.lower().startswith(("proxy-", "connection:", "keep-alive:"))]
            # One request per upstream connection keeps this proxy honest and tiny.
            new_head = "\r\n".join([f"{method} {origin_form} {version}", *kept, "Connection: close", "", ""])
            up_writer.write(new_head.encode("latin-1"))
        self.writers.append(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
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


async def _ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=True)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(f"echo {msg.data}")
    return ws


async def _status(request: web.Request) -> web.Response:
    return web.json_response({"status": "Ok", "path": request.path_qs})


@pytest.fixture
async def origin() -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/ws", _ws)
    app.router.add_get("/api/v1/status", _status)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv.port
    finally:
        await srv.close()


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[TinyProxy, int]]:
    p = TinyProxy()
    port = await p.start()
    try:
        yield p, port
    finally:
        await p.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_rest_goes_through_the_proxy(origin: int, proxy) -> None:
    tiny, pport = proxy
    transport = LiveTransport(rest_proxy=f"http://127.0.0.1:{pport}")
    try:
        rest = RestClient(transport, f"http://127.0.0.1:{origin}", rng=random.Random(0))
        data = await rest.get("/api/v1/status", {"probe": "1"})
        assert data == {"status": "Ok", "path": "/api/v1/status?probe=1"}
        assert tiny.forwards == [f"GET http://127.0.0.1:{origin}/api/v1/status?probe=1"]
        assert tiny.connects == []
    finally:
        await transport.close()


async def test_websocket_goes_through_the_proxy(origin: int, proxy) -> None:
    tiny, pport = proxy
    transport = LiveTransport(ws_proxy=f"http://127.0.0.1:{pport}")
    try:
        session = await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
        await session.send("hi")
        frame = await asyncio.wait_for(session.recv(), GUARD)
        assert frame.data == "echo hi"
        assert session.extensions == ["permessage-deflate"]  # negotiated end to end through the tunnel
        assert tiny.connects == [f"127.0.0.1:{origin}"]
        assert tiny.forwards == []
        await session.close()
    finally:
        await transport.close()


async def test_both_paths_with_proxy_credentials(origin: int, proxy) -> None:
    tiny, pport = proxy
    url = f"http://alice:s3cret@127.0.0.1:{pport}"
    transport = LiveTransport(rest_proxy=url, ws_proxy=url)
    try:
        rest = RestClient(transport, f"http://127.0.0.1:{origin}")
        assert (await rest.status())["status"] == "Ok"
        session = await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
        await session.send("x")
        assert (await asyncio.wait_for(session.recv(), GUARD)).data == "echo x"
        await session.close()
        expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        assert tiny.auth == [expected, expected]
        assert len(tiny.forwards) == 1 and tiny.connects == [f"127.0.0.1:{origin}"]
    finally:
        await transport.close()


async def test_environment_proxies_are_ignored(origin: int, proxy, monkeypatch) -> None:
    """Only the configured proxy is used: proxy variables in the environment change nothing."""
    tiny, pport = proxy
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "WS_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.setenv(name, f"http://127.0.0.1:{pport}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = LiveTransport()
    try:
        rest = RestClient(transport, f"http://127.0.0.1:{origin}")
        assert (await rest.status())["status"] == "Ok"
        session = await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
        await session.close()
        assert tiny.connects == [] and tiny.forwards == []
    finally:
        await transport.close()


async def test_proxy_down_is_a_transport_error_naming_the_proxy(origin: int) -> None:
    dead = free_port()
    transport = LiveTransport(
        rest_proxy=f"http://bob:pw123@127.0.0.1:{dead}", ws_proxy=f"http://bob:pw123@127.0.0.1:{dead}"
    )
    try:
        with pytest.raises(TransportError) as rest_err:
            await RestClient(transport, f"http://127.0.0.1:{origin}", retries=0).status()
        with pytest.raises(TransportError) as ws_err:
            await transport.connect(f"ws://127.0.0.1:{origin}/ws", timeout=GUARD)
        for err in (rest_err.value, ws_err.value):
            assert f"127.0.0.1:{dead}" in str(err)
            assert "pw123" not in str(err)
    finally:
        await transport.close()


async def test_unreachable_target_behind_proxy(proxy) -> None:
    tiny, pport = proxy
    target = free_port()
    transport = LiveTransport(ws_proxy=f"http://127.0.0.1:{pport}")
    try:
        with pytest.raises(TransportError, match="502"):
            await transport.connect(f"ws://127.0.0.1:{target}/ws", timeout=GUARD)
        assert tiny.connects == [f"127.0.0.1:{target}"]
    finally:
        await transport.close()


async def test_proxy_refusing_the_target_is_a_transport_error(proxy) -> None:
    tiny, pport = proxy
    transport = LiveTransport(ws_proxy=f"http://127.0.0.1:{pport}")
    try:
        # The tiny proxy refuses anything but 127.0.0.1; "localhost" is never resolved or dialled by it.
        with pytest.raises(TransportError, match="proxy"):
            await transport.connect("ws://localhost:1/ws", timeout=GUARD)
        assert tiny.connects == ["localhost:1"]
    finally:
        await transport.close()


def make_tls(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a 127.0.0.1 leaf: (server context, client context trusting only that CA)."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name, key, signer, public, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca_cert = build("test CA", ca_name, ca_key, ca_key, ca_key.public_key(), ca=True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = build("127.0.0.1", ca_name, leaf_key, ca_key, leaf_key.public_key(), ca=False)

    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "leaf.pem", tmp / "leaf.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    return server_ctx, ssl.create_default_context(cafile=str(ca_file))


@pytest.fixture
async def tls_origin(tmp_path: Path) -> AsyncIterator[tuple[int, ssl.SSLContext]]:
    server_ctx, client_ctx = make_tls(tmp_path)
    app = web.Application()
    app.router.add_get("/ws", _ws)
    app.router.add_get("/api/v1/status", _status)
    srv = TestServer(app, host="127.0.0.1", scheme="https")
    await srv.start_server(ssl=server_ctx)
    try:
        yield srv.port, client_ctx
    finally:
        await srv.close()


async def test_https_and_wss_are_tunnelled_with_connect(tls_origin, proxy) -> None:
    """The production shape: TLS origins, so REST and WS both use CONNECT tunnels through the proxy."""
    port, client_ctx = tls_origin
    tiny, pport = proxy
    url = f"http://127.0.0.1:{pport}"
    transport = LiveTransport(rest_proxy=url, ws_proxy=url, ssl_context=client_ctx)
    try:
        rest = RestClient(transport, f"https://127.0.0.1:{port}")
        assert (await rest.status())["status"] == "Ok"
        session = await transport.connect(f"wss://127.0.0.1:{port}/ws", timeout=GUARD)
        await session.send("tls")
        assert (await asyncio.wait_for(session.recv(), GUARD)).data == "echo tls"
        await session.close()
        assert tiny.connects == [f"127.0.0.1:{port}", f"127.0.0.1:{port}"]
        assert tiny.forwards == []
    finally:
        await transport.close()


async def test_tls_is_verified_by_default(tls_origin, proxy) -> None:
    port, _ = tls_origin
    _, pport = proxy
    url = f"http://127.0.0.1:{pport}"
    transport = LiveTransport(rest_proxy=url, ws_proxy=url)  # default trust store: the test CA is unknown
    try:
        with pytest.raises(TransportError, match="(?i)certificate"):
            await RestClient(transport, f"https://127.0.0.1:{port}", retries=0).status()
        with pytest.raises(TransportError, match="(?i)certificate"):
            await transport.connect(f"wss://127.0.0.1:{port}/ws", timeout=GUARD)
    finally:
        await transport.close()
