"""RecordingTransport: behaviour passes through unchanged, the timeline is complete, secrets stay out."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from backpack import compat
from backpack.config import BackpackConfig
from backpack.live import LiveTransport
from backpack.protocol import events as ev
from backpack.transport import HttpRequest, HttpResponse, TransportError, TransportTimeout, WsClosed, WsFrame
from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET
from harness.pytest_plugin import running_server
from harness.recording.format import (
    REDACTED,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    TransportErrorEvent,
    WsClose,
    WsOpen,
    WsPing,
    WsPong,
    WsRecv,
    WsSend,
)
from harness.recording.reader import read_recording
from harness.recording.redaction import config_secrets
from harness.recording.writer import RecordingWriter
from harness.transports.recording import RecordingTransport, RecordingWsSession

from .feed_helpers import (
    PRIVATE,
    PUBLIC,
    Collector,
    OwnClock,
    backpack_section,
    drive,
    running_handler,
    until,
)
from .recording_helpers import HEADER, zstd_frames

# --- a scripted inner transport -------------------------------------------------------------------


class FakeSession:
    def __init__(self, sid: str, url: str, script: list[Any]) -> None:
        self.id = sid
        self.url = url
        self.script = script
        self.sent: list[str] = []
        self.send_error: BaseException | None = None
        self.close_calls: list[tuple[Any, ...]] = []
        self.pings = 0
        self.extensions = ["permessage-deflate"]

    async def send(self, text: str) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(text)

    async def recv(self) -> WsFrame:
        item = self.script.pop(0) if self.script else WsClosed(1000, "done")
        if isinstance(item, BaseException):
            if isinstance(item, WsClosed):
                self.script.insert(0, item)  # a closed socket keeps saying so
            raise item
        if isinstance(item, int):  # a ping arrives, then the next item
            self.pings += item
            return await self.recv()
        if item == "block":
            await asyncio.Event().wait()
        return item

    async def close(self, code: int = 4321, reason: str = "fake default") -> None:
        self.close_calls.append((code, reason))
        if code == 1006:
            raise ValueError("cannot close with code 1006")

    @property
    def pings_received(self) -> int:
        return self.pings

    @property
    def last_activity(self) -> int:
        return 777


class FakeTransport(OwnClock):
    def __init__(self) -> None:
        self.responses: list[Any] = []
        self.sessions: list[Any] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    async def request(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        self.calls.append(("request", kwargs))
        item = self.responses.pop(0)
        if isinstance(item, BaseException):
            raise item
        if item == "block":
            await asyncio.Event().wait()
        return item

    async def connect(self, url: str, **kwargs: Any) -> FakeSession:
        self.calls.append(("connect", kwargs))
        item = self.sessions.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def now_us(self) -> int:
        return 123_456

    async def sleep(self, seconds: float) -> None:
        self.calls.append(("sleep", {"seconds": seconds}))

    async def close(self) -> None:
        self.closed = True


def make(tmp_path: Path, name: str = "r.jsonl", **kwargs: Any) -> tuple[FakeTransport, RecordingTransport]:
    inner = FakeTransport()
    writer = RecordingWriter(tmp_path / name, HEADER, **kwargs)
    return inner, RecordingTransport(inner, writer, close_writer=True)


async def test_returns_and_raises_exactly_what_the_inner_transport_does(tmp_path: Path) -> None:
    inner, rec = make(tmp_path)
    response = HttpResponse(200, {"Content-Type": "application/json"}, b'{"ok":true}', 999)
    timeout = TransportTimeout("GET 127.0.0.1:1/api timed out after 1 s")
    inner.responses = [response, timeout]
    req = HttpRequest("GET", "http://127.0.0.1:1/api/v1/depth", (("symbol", "A_B"), ("symbol", "C_D")),
                      {"X-API-Key": "k" * 44, "X-Timestamp": "1"}, None)
    assert await rec.request(req) is response
    with pytest.raises(TransportTimeout) as err:
        await rec.request(req, timeout=1.0)
    assert err.value is timeout
    assert inner.calls == [("request", {}), ("request", {"timeout": 1.0})]  # inner defaults untouched

    frame = WsFrame('{"stream":"x"}', 555)
    closed = WsClosed(1001, "Server shutdown")
    session = FakeSession("ws-9", "ws://127.0.0.1:1/ws", [frame, closed])
    refused = TransportError("websocket connect to 127.0.0.1:1 failed: ConnectionRefusedError")
    inner.sessions = [refused, session]
    with pytest.raises(TransportError) as err2:
        await rec.connect("ws://127.0.0.1:1/ws")
    assert err2.value is refused
    ws = await rec.connect("ws://127.0.0.1:1/ws", timeout=3.0)
    assert isinstance(ws, RecordingWsSession) and ws.id == "ws-9" and ws.url == session.url
    assert ws.extensions == ["permessage-deflate"] and ws.last_activity == 777  # extras delegate
    await ws.send("hello")
    assert session.sent == ["hello"]
    assert await ws.recv() is frame
    for _ in range(2):
        with pytest.raises(WsClosed) as err3:
            await ws.recv()
        assert err3.value is closed
    await ws.close()
    assert session.close_calls == [(4321, "fake default")]  # the inner session's own defaults
    with pytest.raises(ValueError, match="1006"):
        await ws.close(1006, "x")
    assert rec.clock is inner.clock and rec.clock.now_us() == 123_456  # the inner transport's clock
    await rec.clock.sleep_us(500_000)
    assert ("sleep", {"seconds": 0.5}) in inner.calls
    await rec.close()
    assert inner.closed and rec.writer.closed

    events = read_recording(tmp_path / "r.jsonl").events
    assert [e.kind for e in events] == [
        "http_request", "http_response", "http_request", "transport_error", "transport_error", "ws_open",
        "ws_send", "ws_recv", "ws_close", "ws_close", "transport_error", "end",
    ]
    req_ev, resp_ev = events[0], events[1]
    assert isinstance(req_ev, HttpRequestEvent) and req_ev.params == (("symbol", "A_B"), ("symbol", "C_D"))
    assert req_ev.headers == {"X-API-Key": REDACTED, "X-Timestamp": "1"} and req_ev.conn == resp_ev.conn == "http-1"
    assert isinstance(resp_ev, HttpResponseEvent) and (resp_ev.status, resp_ev.body, resp_ev.receipt) == (
        200, b'{"ok":true}', 999)
    assert events[3] == TransportErrorEvent(events[3].t, "http-2", "request", "TransportTimeout", str(timeout),
                                            req.url)
    assert events[4].conn is None and events[4].op == "connect" and events[4].url == "ws://127.0.0.1:1/ws"
    assert events[5] == WsOpen(events[5].t, "ws-9", session.url)
    assert events[6] == WsSend(events[6].t, "ws-9", "hello")
    assert events[7] == WsRecv(events[7].t, "ws-9", '{"stream":"x"}', 555)
    assert events[8] == WsClose(events[8].t, "ws-9", 1001, "Server shutdown", "recv")  # once, not twice
    assert events[9] == WsClose(events[9].t, "ws-9", 1000, "", "close")
    assert events[10].op == "close" and events[10].error == "ValueError"
    assert [e.t for e in events] == sorted(e.t for e in events)


async def test_pings_are_written_before_the_frame_that_revealed_them(tmp_path: Path) -> None:
    inner, rec = make(tmp_path)
    session = FakeSession("ws-1", "ws://x", [WsFrame("a", 1), 2, WsFrame("b", 2), 1, WsClosed(None, "lost")])
    inner.sessions = [session]
    ws = await rec.connect("ws://x")
    await ws.recv()
    await ws.recv()
    with pytest.raises(WsClosed):
        await ws.recv()
    await rec.close()
    kinds = [(e.kind, getattr(e, "data", None)) for e in read_recording(tmp_path / "r.jsonl").events]
    assert kinds == [("ws_open", None), ("ws_recv", "a"), ("ws_ping", b""), ("ws_ping", b""), ("ws_recv", "b"),
                     ("ws_ping", b""), ("ws_close", None), ("end", None)]


async def test_send_failures_and_cancellation(tmp_path: Path) -> None:
    inner, rec = make(tmp_path)
    session = FakeSession("ws-1", "ws://x", ["block"])
    inner.sessions = [session]
    ws = await rec.connect("ws://x")
    session.send_error = WsClosed(1000, "bye")
    with pytest.raises(WsClosed):
        await ws.send("x")
    session.send_error = TransportError("reset")
    with pytest.raises(TransportError):
        await ws.send("y")
    reader = asyncio.ensure_future(ws.recv())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    inner.responses = ["block"]
    request = asyncio.ensure_future(rec.request(HttpRequest("GET", "http://x/y")))
    await asyncio.sleep(0)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    await rec.close()
    events = read_recording(tmp_path / "r.jsonl").events
    assert [(e.kind, getattr(e, "via", getattr(e, "op", None))) for e in events] == [
        ("ws_open", None), ("ws_close", "send"), ("transport_error", "send"), ("http_request", None), ("end", None),
    ]  # cancellations write nothing: nothing happened on the wire


async def test_a_broken_recorder_never_breaks_the_feed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    inner, rec = make(tmp_path)
    rec.writer.close()  # e.g. the owner closed the file early
    inner.responses = [HttpResponse(200, {}, b"", 1), HttpResponse(204, {}, b"", 2)]
    with caplog.at_level(logging.ERROR, logger="harness.transports.recording"):
        first = await rec.request(HttpRequest("GET", "http://x/a"))
        second = await rec.request(HttpRequest("GET", "http://x/b"))
    assert (first.status, second.status) == (200, 204)
    assert isinstance(rec.failure, ValueError)
    assert len([r for r in caplog.records if "recording to" in r.getMessage()]) == 1  # logged once
    await rec.close()


async def test_blocks_are_flushed_on_a_timer_while_idle(tmp_path: Path) -> None:
    inner, rec = make(tmp_path, "r.jsonl.zst", block_ms=20, block_events=1000)
    inner.responses = [HttpResponse(200, {}, b"x", 1)]
    await rec.request(HttpRequest("GET", "http://x/a"))
    assert rec.writer.pending == 2
    await until(lambda: rec.writer.pending == 0, "the timed flush")
    assert len(zstd_frames((tmp_path / "r.jsonl.zst").read_bytes())) == 2  # header + that block
    assert [e.kind for e in read_recording(tmp_path / "r.jsonl.zst").events] == ["http_request", "http_response"]
    await rec.close()


# --- live, end to end -----------------------------------------------------------------------------


def _decoded(path: Path) -> bytes:
    return b"".join(content for _, _, content in zstd_frames(path.read_bytes()))


def _wire_signatures(server: Any) -> list[str]:
    out = []
    for conn in server.connections.values():
        for text in conn.received:
            msg = json.loads(text)
            if "signature" in msg:
                out += msg["signature"]
    return out


@pytest.mark.e2e
async def test_live_feed_recorded_with_private_channels_and_no_secret_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl.zst"
    symbols = ["SOL-USDC", "BTC-USDC-PERP"]
    channels = PUBLIC + PRIVATE
    collector = Collector()
    outputs: list[Any] = []
    async with running_server(seed=11, rate=0, ping_interval=0.3, pong_timeout=5.0) as server:
        section = backpack_section(server)
        cfg = BackpackConfig.from_dict(section)
        header = Header.new(rest_url=server.rest_url, ws_url=server.ws_url, symbols=tuple(symbols),
                            channels=tuple(channels), meta={"seed": 11})
        writer = RecordingWriter(path, header, block_events=200, secrets=config_secrets(cfg))
        live = LiveTransport()
        transport = RecordingTransport(live, writer)
        async with running_handler(
            symbols=symbols, channels=channels, callbacks=collector.callbacks(channels), transport=transport,
            protocol_callback=outputs.append,
            handler_config={"log": {"disabled": True}, "backpack": section},
        ):
            await server.wait_subscribed("depth.SOL_USDC")
            await server.wait_subscribed("account.orderUpdate.SOL_USDC")
            await drive(server, 600)
            await until(lambda: collector.items[compat.TRADES] and collector.items[compat.ORDER_INFO]
                        and collector.items[compat.L2_BOOK], "trades, orders and books")
            await until(lambda: any(f.kind == "ping" for c in server.connections.values() for f in c.sent),
                        "a protocol ping from the server")
            await drive(server, 20)
            await until(lambda: any(isinstance(o, ev.Trade) for o in outputs[-50:]), "late trades")
        await transport.close()
        await live.close()
        writer.close()
        wire_signatures = _wire_signatures(server)
        server_conns = [server.connections[i] for i in sorted(server.connections)]

    rec = read_recording(path)
    assert rec.damage is None and rec.complete
    assert rec.header.symbols == tuple(symbols) and rec.header.meta == {"seed": 11}
    events = rec.events

    # every WebSocket frame the server sent reached the timeline, exact text, in order
    opens = [e for e in events if isinstance(e, WsOpen)]
    assert len(opens) == len(server_conns) >= 1
    for opened, conn in zip(opens, server_conns, strict=True):
        got = [e.data for e in events if isinstance(e, WsRecv) and e.conn == opened.conn]
        sent = [f.data for f in conn.sent if f.kind == "text"]
        assert len(got) > 100 and got == sent[: len(got)]
        pings = [e for e in events if isinstance(e, WsPing) and e.conn == opened.conn]
        pongs = [e for e in events if isinstance(e, WsPong) and e.conn == opened.conn]
        assert 1 <= len(pings) <= sum(1 for f in conn.sent if f.kind == "ping")
        # the live seam reports each Ping as it arrives: with its receipt, answered by a Pong
        assert all(p.receipt is not None for p in pings) and len(pongs) == len(pings)
        assert [p.receipt for p in pings] == [p.receipt for p in pongs]
        assert conn.pongs_received >= len(pings) - 1  # the last Pong may still be in flight
        sends = [e.data for e in events if isinstance(e, WsSend) and e.conn == opened.conn]
        assert sends == [writer.redactor.ws_text(t) for t in conn.received]
    private_sends = [json.loads(e.data) for e in events if isinstance(e, WsSend) and "signature" in e.data]
    assert private_sends and all(m["signature"] == [REDACTED] * 4 for m in private_sends)

    # the receipts the feed was handed are the recorded ones
    receipts = {}
    for e in events:
        if isinstance(e, WsRecv) and e.data.startswith('{"stream":"trade.'):
            data = json.loads(e.data)["data"]
            receipts[(data["s"], str(data["t"]))] = e.receipt
    trades = [o for o in outputs if isinstance(o, ev.Trade)]
    assert trades and all(receipts[(t.symbol, t.id)] == t.receipt for t in trades)
    snapshot_receipts = {e.receipt for e in events if isinstance(e, HttpResponseEvent)}
    books = [o for o in outputs if isinstance(o, ev.BookUpdate) and o.kind == "snapshot"]
    assert books and all(b.receipt in snapshot_receipts for b in books)
    requests = [e for e in events if isinstance(e, HttpRequestEvent)]
    assert {urlpath(e.url) for e in requests} >= {"/api/v1/markets", "/api/v1/depth"}
    answered = {e.conn for e in events if isinstance(e, HttpResponseEvent)}
    assert all(r.conn in answered for r in requests)

    # no secret, in any spelling, anywhere in the file (compressed or not)
    raw, text = path.read_bytes(), _decoded(path)
    secrets = [TEST_ACCOUNT_SECRET, TEST_ACCOUNT_API_KEY, *[s for s in wire_signatures if len(s) > 20]]
    assert len(secrets) >= 3
    for secret in secrets:
        for form in {secret, quote(secret, safe=""), secret.rstrip("="), secret.replace("/", "\\/")}:
            assert form.encode() not in text, form
            assert form.encode() not in raw, form


def urlpath(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


@pytest.mark.e2e
async def test_live_reconnect_and_connect_failure_are_on_the_timeline(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    async with running_server(seed=3, rate=0, ping_interval=5.0, pong_timeout=5.0) as server:
        writer = RecordingWriter(path, HEADER)
        live = LiveTransport(ws_open_timeout=2.0)
        transport = RecordingTransport(live, writer, close_writer=True)
        ws = await transport.connect(server.ws_url)
        await ws.send('{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}')
        await server.wait_subscribed("trade.SOL_USDC")
        server.faults.close_socket(1001, "going away")
        with pytest.raises(WsClosed) as err:
            while True:
                await ws.recv()
        assert err.value.code == 1001
        ws2 = await transport.connect(server.ws_url)
        await ws2.close()
        port = server.port
    with pytest.raises(TransportError):
        await transport.connect(f"ws://127.0.0.1:{port}/ws")  # the server is gone
    await transport.close()
    events = read_recording(path).events
    kinds = [e.kind for e in events]
    assert kinds.count("ws_open") == 2
    closes = [e for e in events if isinstance(e, WsClose)]
    assert [(c.code, c.reason, c.via) for c in closes] == [(1001, "going away", "recv"), (1000, "", "close")]
    assert closes[0].conn != closes[1].conn
    failure = [e for e in events if isinstance(e, TransportErrorEvent)]
    assert len(failure) == 1 and failure[0].op == "connect" and failure[0].conn is None
    assert kinds[-1] == "end"
