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

from .feed_helpers import OwnClock, until


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


class FakeTransport(OwnClock):
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


class ClosingTransport(FakeTransport):
    """Every connection is accepted and then closed by the server at once; sleeps advance virtual time."""

    def __init__(self, frames_per_connection: int = 0, lifetime_s: float = 0.0) -> None:
        super().__init__()
        self.frames_per_connection = frames_per_connection
        self.lifetime_us = int(lifetime_s * 1_000_000)

    async def connect(self, url: str, *, timeout: float = 10.0) -> FakeSession:
        session = await super().connect(url, timeout=timeout)
        for i in range(self.frames_per_connection):
            session.inbox.put_nowait(WsFrame('{"stream":"x","data":{}}', self.clock_us + i))
        session.inbox.put_nowait(WsClosed(1000, "bye"))
        recv = session.recv

        async def recv_then_age() -> WsFrame:
            if session.inbox.qsize() == 1:  # the close is next: the connection lived this long
                self.clock_us += self.lifetime_us
            return await recv()

        session.recv = recv_then_age  # type: ignore[method-assign]
        return session

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock_us += int(seconds * 1_000_000)
        await asyncio.sleep(0)


async def _backoffs(transport: ClosingTransport, n: int) -> list[float]:
    async def on_frame(frame: WsFrame) -> None:
        pass

    manager = WsSessionManager(transport, "ws://fake", ["trade.SOL_USDC"], on_frame, backoff_base=0.5,
                               backoff_max=30.0)
    stop, task = await start(manager)
    await until(lambda: len(transport.sleeps) >= n)
    await finish(stop, task)
    return transport.sleeps[:n]


async def test_backoff_grows_when_the_server_accepts_and_closes_at_once() -> None:
    """Equal jitter keeps every wait within [cap/2, cap] of its attempt: the lower bounds must double."""
    sleeps = await _backoffs(ClosingTransport(frames_per_connection=3), 7)
    for attempt, delay in enumerate(sleeps, start=1):
        cap = min(30.0, 0.5 * 2 ** (attempt - 1))
        assert cap / 2 <= delay <= cap, (attempt, sleeps)
    assert sleeps[-1] >= 15.0  # capped at 30 s, never back to the first step


async def test_backoff_starts_over_after_a_connection_stayed_healthy() -> None:
    sleeps = await _backoffs(ClosingTransport(frames_per_connection=3, lifetime_s=31.0), 5)
    assert all(0.25 <= d <= 0.5 for d in sleeps), sleeps  # each healthy connection resets to attempt 1


async def test_a_long_but_silent_connection_is_not_healthy() -> None:
    sleeps = await _backoffs(ClosingTransport(frames_per_connection=0, lifetime_s=31.0), 5)
    assert sleeps[-1] >= 4.0, sleeps  # no data ever arrived: the backoff keeps growing
