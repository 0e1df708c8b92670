"""WsSessionManager on a scripted in-memory transport: batching, resubscribe, private handshake and its retries."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from nacl.signing import SigningKey

from backpack.protocol.auth import Signer, signing_string, verify
from backpack.session import WsSessionManager
from backpack.transport import TransportError, WsClosed, WsFrame

from .feed_helpers import until


class FakeSession:
    def __init__(self, n: int) -> None:
        self.id, self.url = f"fake-{n}", "ws://fake"
        self.sent: list[str] = []
        self.inbox: asyncio.Queue[WsFrame | WsClosed] = asyncio.Queue()
        self.closed = False

    async def send(self, text: str) -> None:
        self.sent.append(text)

    async def recv(self) -> WsFrame:
        item = await self.inbox.get()
        if isinstance(item, WsClosed):
            self.closed = True
            raise item
        return item

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True
        self.inbox.put_nowait(WsClosed(code, reason))

    pings_received = 0
    last_activity = 0


class FakeTransport:
    """Connections are scripted; sleeps are recorded and return at once (virtual time)."""

    def __init__(self, refuse: int = 0) -> None:
        self.sessions: list[FakeSession] = []
        self.sleeps: list[float] = []
        self.refuse = refuse
        self.clock_us = 1_700_000_000_000_000

    async def connect(self, url: str, *, timeout: float = 10.0) -> FakeSession:
        if self.refuse:
            self.refuse -= 1
            raise TransportError("connection refused (scripted)")
        session = FakeSession(len(self.sessions) + 1)
        self.sessions.append(session)
        return session

    def now_us(self) -> int:
        return self.clock_us

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    async def request(self, *a, **k):  # pragma: no cover - not used here
        raise AssertionError("no REST in these tests")

    async def close(self) -> None:
        pass


def signer() -> Signer:
    return Signer(base64.b64encode(bytes(SigningKey.generate())).decode())


async def start(manager: WsSessionManager) -> tuple[asyncio.Event, asyncio.Task]:
    stop = asyncio.Event()
    task = asyncio.ensure_future(manager.run(stop))
    return stop, task


async def finish(stop: asyncio.Event, task: asyncio.Task) -> None:
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_public_streams_are_batched_and_frames_reach_the_handler() -> None:
    transport, seen = FakeTransport(), []

    async def on_frame(frame: WsFrame) -> None:
        seen.append(frame.data)

    streams = [f"trade.S{i}_USDC" for i in range(7)]
    manager = WsSessionManager(transport, "ws://fake", streams, on_frame, batch_size=3)
    stop, task = await start(manager)
    await until(lambda: transport.sessions and len(transport.sessions[0].sent) == 3)
    sent = [json.loads(t) for t in transport.sessions[0].sent]
    assert [len(f["params"]) for f in sent] == [3, 3, 1]
    assert sorted(s for f in sent for s in f["params"]) == sorted(streams)
    transport.sessions[0].inbox.put_nowait(WsFrame('{"stream":"x","data":{}}', 5))
    await until(lambda: seen)
    await finish(stop, task)
    assert seen == ['{"stream":"x","data":{}}']


async def test_reconnect_resubscribes_everything_and_reports_disconnects() -> None:
    transport, disconnects = FakeTransport(refuse=2), []

    async def on_frame(frame: WsFrame) -> None:
        pass

    async def on_disconnect(n: int) -> None:
        disconnects.append(n)

    key = signer()
    streams = ["depth.SOL_USDC", "trade.SOL_USDC", "account.orderUpdate"]
    manager = WsSessionManager(transport, "ws://fake", streams, on_frame, on_disconnect=on_disconnect, signer=key)
    stop, task = await start(manager)
    await until(lambda: len(transport.sessions) == 1 and len(transport.sessions[0].sent) == 2)
    assert len(transport.sleeps) == 2  # two refused connects, each followed by a backoff wait
    transport.sessions[0].inbox.put_nowait(WsClosed(1001, "going away"))
    await until(lambda: len(transport.sessions) == 2 and len(transport.sessions[1].sent) == 2)
    first, second = ([json.loads(t) for t in s.sent] for s in transport.sessions)
    assert [f["params"] for f in first] == [f["params"] for f in second]
    assert disconnects == [1]
    assert manager.stats.reconnects == 1 and manager.stats.closes == [1001]
    private = second[1]
    api_key, sig, ts, window = private["signature"]
    assert api_key == key.api_key and verify(api_key, signing_string("subscribe", None, int(ts), int(window)), sig)
    await finish(stop, task)


async def test_rejected_private_subscribe_is_retried_then_private_channels_stop() -> None:
    transport = FakeTransport()

    async def on_frame(frame: WsFrame) -> None:
        pass

    manager = WsSessionManager(transport, "ws://fake", ["trade.SOL_USDC", "account.balanceUpdate"], on_frame,
                               signer=signer(), private_retries=2)
    stop, task = await start(manager)
    await until(lambda: transport.sessions and len(transport.sessions[0].sent) == 2)
    session = transport.sessions[0]
    for expected_frames in (3, 4):
        manager.private_rejected()
        await until(lambda n=expected_frames: len(session.sent) == n)
    manager.private_rejected()
    assert manager.stats.private_stopped
    assert manager.stats.private_rejections == 3
    await asyncio.sleep(0.01)
    assert len(session.sent) == 4  # no further private subscribe once stopped
    # a reconnect resubscribes only the public streams
    session.inbox.put_nowait(WsClosed(1006, "drop"))
    await until(lambda: len(transport.sessions) == 2 and transport.sessions[1].sent)
    await asyncio.sleep(0.01)
    assert [json.loads(t)["params"] for t in transport.sessions[1].sent] == [["trade.SOL_USDC"]]
    await finish(stop, task)


def test_private_streams_without_signer_are_refused() -> None:
    async def on_frame(frame: WsFrame) -> None:
        pass

    with pytest.raises(ValueError, match="need credentials"):
        WsSessionManager(FakeTransport(), "ws://fake", ["account.orderUpdate"], on_frame)


async def test_gives_up_after_max_reconnects() -> None:
    async def on_frame(frame: WsFrame) -> None:
        pass

    manager = WsSessionManager(FakeTransport(refuse=10), "ws://fake", ["trade.SOL_USDC"], on_frame, max_reconnects=3)
    with pytest.raises(TransportError):
        await asyncio.wait_for(manager.run(asyncio.Event()), 5)
