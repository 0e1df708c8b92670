"""ReplayTransport on small recordings, driven by scripted clients: timing, matching, refusals, failures."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from backpack.clock import sleep_or_stop
from backpack.session import WsSessionManager
from backpack.transport import HttpRequest, HttpResponse, TransportError, TransportTimeout, WsClosed, WsFrame
from harness.recording.format import (
    REDACTED,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    TransportErrorEvent,
    WsClose,
    WsOpen,
    WsPing,
    WsPong,
    WsRecv,
    WsSend,
)
from harness.recording.reader import ReadStats, Recording
from harness.transports.replay import (
    ReplayEnded,
    ReplayMismatch,
    ReplayRefused,
    ReplayTransport,
    VirtualTimeout,
)

S = 1_000_000_000  # ns per second
START = 1_700_000_000_000_000
HEADER = Header(created_at="2025-01-01T00:00:00.000000Z", start_us=START, rest_url="http://h",
                ws_url="ws://h/ws", symbols=("SOL-USDC",), channels=("trades",))
WS = "ws://h/ws"
SUB = '{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}'


def recording(*events: Any) -> Recording:
    return Recording(HEADER, list(events), None, ReadStats())


def get(t: int, conn: str, path: str, params: tuple[tuple[str, str], ...] = (), **kw: Any) -> HttpRequestEvent:
    return HttpRequestEvent(t, conn, "GET", f"http://h{path}", params, **kw)


def ok(t: int, conn: str, body: bytes, receipt: int | None = None, status: int = 200) -> HttpResponseEvent:
    return HttpResponseEvent(t, conn, status, {"Content-Type": "application/json"}, body,
                             receipt if receipt is not None else START + t // 1000)


Client = Callable[[ReplayTransport, asyncio.Event], Awaitable[Any]]


async def play(transport: ReplayTransport, client: Client) -> Any:
    stop = asyncio.Event()
    task = asyncio.ensure_future(client(transport, stop))
    try:
        await transport.play(stop, task)
    finally:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: the test looks at the replay's failure instead
    return task.result()


async def reader(transport: ReplayTransport, stop: asyncio.Event, log: list[Any]) -> None:
    """connect, subscribe, read until closed or stopped (what the feed's session does, minus protocol)."""
    session = await transport.connect(WS)
    session.observe_control(lambda kind, payload, receipt: log.append((kind, payload, receipt)))
    await session.send(SUB)
    while not stop.is_set():
        recv = asyncio.ensure_future(session.recv())
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({recv, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if recv not in done:
            recv.cancel()
            break
        try:
            frame = recv.result()
        except WsClosed as exc:
            log.append(("closed", exc.code, exc.reason))
            await session.close()
            return
        log.append((frame.data, frame.receipt, transport.clock.now_us(), session.pings_received,
                    session.last_activity))
    await session.close()


# --- WebSocket ------------------------------------------------------------------------------------


async def test_frames_pings_and_close_arrive_in_order_with_recorded_receipts_and_times() -> None:
    rec = recording(
        WsOpen(1 * S, "a", WS), WsSend(1 * S, "a", SUB),
        WsRecv(2 * S, "a", '{"n":1}', 111), WsPing(3 * S, "a", b"hb", 222), WsPong(3 * S, "a", b"hb", 222),
        WsRecv(4 * S, "a", b"\x00\x01", 333), WsClose(5 * S, "a", 1001, "bye", "recv"),
        WsClose(5 * S, "a", 1000, "", "close"), RecordingEnd(6 * S),
    )
    transport = ReplayTransport(rec)
    log: list[Any] = []
    await play(transport, lambda t, stop: reader(t, stop, log))
    assert log == [
        ('{"n":1}', 111, START + 2_000_000, 0, 111),  # the receipt is the recorded one; time the event's
        ("ping", b"hb", 222), ("pong", b"hb", 222),
        (b"\x00\x01", 333, START + 4_000_000, 1, 333),  # a binary frame stays bytes; the ping was counted
        ("closed", 1001, "bye"),
    ]
    assert transport.failure is None and transport.ended.is_set()
    assert (transport.stats.frames, transport.stats.connects) == (2, 1)


async def test_a_different_frame_sent_is_a_mismatch_naming_both_texts_and_the_place() -> None:
    rec = recording(WsOpen(S, "a", WS), WsSend(S, "a", '{"method":"SUBSCRIBE","params":["depth.SOL_USDC"]}'),
                    WsRecv(2 * S, "a", "x", 1), RecordingEnd(3 * S))
    transport = ReplayTransport(rec)
    with pytest.raises(ReplayMismatch) as err:
        await play(transport, lambda t, stop: reader(t, stop, []))
    message = str(err.value)
    assert "trade.SOL_USDC" in message and "depth.SOL_USDC" in message  # both texts
    assert "event 2 (t=1.000000 s)" in message and "'a'" in message and "\n" not in message


async def test_the_signature_array_is_compared_redacted() -> None:
    marks = ",".join([json.dumps(REDACTED)] * 4)
    recorded = '{"method":"SUBSCRIBE","params":["account.orderUpdate"],"signature":[' + marks + "]}"
    sent = '{"method":"SUBSCRIBE","params":["account.orderUpdate"],"signature":["k","s","1","5000"]}'
    rec = recording(WsOpen(S, "a", WS), WsSend(S, "a", recorded), RecordingEnd(2 * S))

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        session = await t.connect(WS)
        await session.send(sent)
        await stop.wait()
        await session.close()

    await play(ReplayTransport(rec), client)  # no mismatch


async def test_an_extra_connect_is_refused_at_the_transport() -> None:
    rec = recording(WsOpen(S, "a", WS), WsSend(S, "a", SUB), WsRecv(2 * S, "a", "x", 1),
                    WsClose(3 * S, "a", 1006, "", "recv"), WsRecv(4 * S, "zz", "never", 2), RecordingEnd(5 * S))
    transport = ReplayTransport(rec)
    seen: list[BaseException] = []

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        await reader(t, stop, [])
        try:
            await t.connect(WS)  # a second connection the recording does not have
        except TransportError as exc:
            seen.append(exc)
        await stop.wait()

    with pytest.raises(ReplayRefused, match="connect #2 .* has 1 WebSocket connection attempt"):
        await play(transport, client)
    assert isinstance(seen[0], ReplayRefused) and seen[0] is transport.failure


async def test_a_connect_to_another_url_is_refused() -> None:
    rec = recording(WsOpen(S, "a", WS), RecordingEnd(2 * S))

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        with pytest.raises(ReplayMismatch, match="ws://elsewhere:1/ws.*recording connects to ws://h/ws"):
            await t.connect("ws://elsewhere:1/ws")
        await stop.wait()

    with pytest.raises(ReplayMismatch):
        await play(ReplayTransport(rec), client)


async def test_a_backoff_sleep_is_skipped_on_virtual_time_and_a_recorded_connect_error_is_raised() -> None:
    rec = recording(
        TransportErrorEvent(S, None, "connect", "TransportTimeout", "websocket connect timed out", WS),
        WsOpen(2 * S, "b", WS), WsSend(2 * S, "b", SUB), WsRecv(3 * S, "b", "x", 1), RecordingEnd(4 * S),
    )
    transport = ReplayTransport(rec)
    attempts: list[Any] = []

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        try:
            await t.connect(WS)
        except TransportTimeout as exc:
            attempts.append((str(exc), t.clock.now_us()))
        await sleep_or_stop(t.clock, 20_000_000, stop)  # a 20 s backoff, longer than the recorded gap
        attempts.append(t.clock.now_us())
        await reader(t, stop, attempts)

    await play(transport, client)
    assert attempts[0] == ("websocket connect timed out", START + 1_000_000)
    assert attempts[1] == START + 1_000_000 + 20_000_000  # time moved to the sleeper, not beyond
    assert attempts[2][0] == "x" and transport.failure is None


async def test_a_feed_that_never_does_what_the_recording_expects_times_out_virtually() -> None:
    rec = recording(WsOpen(S, "a", WS), WsSend(S, "a", SUB), RecordingEnd(2 * S))
    transport = ReplayTransport(rec, max_wait=60)

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        session = await t.connect(WS)
        while not stop.is_set():  # keeps sleeping 10 s at a time, never sends
            await sleep_or_stop(t.clock, 10_000_000, stop)
        await session.close()

    with pytest.raises(VirtualTimeout) as err:
        await play(transport, client)
    assert "send '{\"method\"" in str(err.value) and "60 s of virtual time" in str(err.value)
    assert START + 60_000_000 <= transport.clock.now_us() <= START + 1_000_000 + 70_000_000


async def test_a_client_that_waits_on_nothing_the_recording_will_give_fails_at_once() -> None:
    rec = recording(WsOpen(S, "a", WS), WsSend(S, "a", SUB), RecordingEnd(2 * S))

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        await stop.wait()  # never connects, never sleeps

    with pytest.raises(VirtualTimeout, match="connect to ws://h/ws"):
        await play(ReplayTransport(rec), client)


async def test_the_end_stops_the_client_and_a_late_connect_is_told_it_ended() -> None:
    rec = recording(WsOpen(S, "a", WS), WsSend(S, "a", SUB), WsRecv(2 * S, "a", "last", 9),
                    WsClose(3 * S, "a", 1000, "", "close"), RecordingEnd(4 * S))
    transport = ReplayTransport(rec)
    log: list[Any] = []

    async def client(t: ReplayTransport, stop: asyncio.Event) -> str:
        await reader(t, stop, log)
        assert stop.is_set()  # stopped by the end of the recording, not by a close
        with pytest.raises(ReplayEnded):
            await t.connect(WS)
        return "stopped"

    assert await play(transport, client) == "stopped"
    assert [entry[0] for entry in log] == ["last"] and transport.failure is None


# --- REST -----------------------------------------------------------------------------------------


async def test_an_answer_is_held_until_the_timeline_reaches_it() -> None:
    rec = recording(
        get(0, "http-1", "/api/v1/depth", (("symbol", "SOL_USDC"), ("limit", "1000"))),
        WsOpen(S, "a", WS), WsSend(S, "a", SUB), WsRecv(2 * S, "a", "f1", 1), WsRecv(3 * S, "a", "f2", 2),
        ok(4 * S, "http-1", b'{"lastUpdateId":"1"}', receipt=4444), WsRecv(5 * S, "a", "f3", 3),
        RecordingEnd(6 * S),
    )
    order: list[Any] = []

    async def rest(t: ReplayTransport) -> None:
        response = await t.request(HttpRequest("GET", "http://h/api/v1/depth",
                                               (("limit", "1000"), ("symbol", "SOL_USDC"))))  # other order
        order.append(("snapshot", response.receipt, response.body))

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        task = asyncio.ensure_future(rest(t))  # asked at once, like the feed's snapshot task
        log: list[Any] = []
        session = await t.connect(WS)
        await session.send(SUB)
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(session.recv(), None)
            except WsClosed:
                break
            order.append(frame.data)
            if frame.data == "f3":
                break
        await stop.wait()
        await task
        _ = log

    await play(ReplayTransport(rec), client)
    assert order == ["f1", "f2", ("snapshot", 4444, b'{"lastUpdateId":"1"}'), "f3"]


async def test_requests_match_on_canonical_query_and_json_body_and_errors_replay_as_their_kind() -> None:
    body = b'{"symbol":"SOL_USDC","side":"Bid","quantity":"1"}'
    rec = recording(
        HttpRequestEvent(0, "http-1", "POST", "http://h/api/v1/order", (), {"Content-Type": "application/json"},
                         body),
        ok(S, "http-1", b'{"id":"1"}'),
        get(S, "http-2", "/api/v1/trades", (("symbol", "A_B"), ("limit", "5"))),
        TransportErrorEvent(2 * S, "http-2", "request", "TransportTimeout", "GET h/api/v1/trades timed out", None),
        get(2 * S, "http-3", "/api/v1/time"),
        TransportErrorEvent(2 * S, "http-3", "request", "ConnectionResetError", "reset", None),
        RecordingEnd(3 * S),
    )
    results: list[Any] = []

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        answer = await t.request(HttpRequest("POST", "http://h/api/v1/order", (),
                                             {"Content-Type": "application/json", "X-Signature": "sig"},
                                             b'{"quantity":"1","side":"Bid","symbol":"SOL_USDC"}'))
        results.append((answer.status, answer.body))
        for path, params in (("/api/v1/trades", (("limit", "5"), ("symbol", "A_B"))), ("/api/v1/time", ())):
            try:
                await t.request(HttpRequest("GET", f"http://h{path}", params))
            except TransportError as exc:
                results.append((type(exc).__name__, str(exc)))
        await stop.wait()

    await play(ReplayTransport(rec), client)
    assert results == [(200, b'{"id":"1"}'), ("TransportTimeout", "GET h/api/v1/trades timed out"),
                       ("TransportError", "ConnectionResetError: reset")]


async def test_mode_none_refuses_an_unrecorded_request_naming_it_and_the_nearest_one() -> None:
    rec = recording(get(0, "http-1", "/api/v1/depth", (("symbol", "SOL_USDC"), ("limit", "1000"))),
                    ok(S, "http-1", b"{}"), RecordingEnd(2 * S))
    seen: list[BaseException] = []

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        try:
            await t.request(HttpRequest("GET", "http://h/api/v1/depth", (("symbol", "BTC_USDC"), ("limit", "1000"))))
        except ReplayRefused as exc:
            seen.append(exc)
        await stop.wait()

    with pytest.raises(ReplayRefused) as err:
        await play(ReplayTransport(rec), client)
    text = str(err.value)
    assert "GET http://h/api/v1/depth?symbol=BTC_USDC&limit=1000" in text
    assert "nearest recorded: GET http://h/api/v1/depth?symbol=SOL_USDC&limit=1000" in text and "query" in text
    assert seen and seen[0] is err.value


async def test_mode_none_refuses_a_second_use_of_a_recorded_answer() -> None:
    rec = recording(get(0, "http-1", "/api/v1/ping"), ok(S, "http-1", b"pong"), RecordingEnd(2 * S))

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        await t.request(HttpRequest("GET", "http://h/api/v1/ping"))
        with pytest.raises(ReplayRefused, match="answers it 1 time.*already used"):
            await t.request(HttpRequest("GET", "http://h/api/v1/ping"))
        await stop.wait()

    with pytest.raises(ReplayRefused):
        await play(ReplayTransport(rec), client)


class Inner:
    """A live transport stand-in for the record modes."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []

    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        self.requests.append(request)
        return HttpResponse(201, {"X-Api-Key": "secret-value-123"}, b"live " + request.url.encode(), 5)


@pytest.mark.parametrize(("mode", "live_paths"), [
    ("new_episodes", ["/api/v1/new"]),  # recorded answers replay, the new request goes live
    ("all", ["/api/v1/ping", "/api/v1/new"]),  # everything goes live
])
async def test_record_modes_send_what_they_must_to_the_inner_transport(mode: str, live_paths: list[str]) -> None:
    rec = recording(get(0, "http-1", "/api/v1/ping"), ok(S, "http-1", b"pong"), RecordingEnd(2 * S))
    inner = Inner()
    bodies: list[bytes] = []

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        for path in ("/api/v1/ping", "/api/v1/new"):
            bodies.append((await t.request(HttpRequest("GET", f"http://h{path}"))).body)
        await stop.wait()

    transport = ReplayTransport(rec, mode=mode, inner=inner)  # type: ignore[arg-type]
    await play(transport, client)
    assert [r.url.removeprefix("http://h") for r in inner.requests] == live_paths
    assert bodies[1] == b"live http://h/api/v1/new"
    assert (bodies[0] == b"pong") is (mode == "new_episodes")
    new = transport.cassette.responses[-1]
    assert new["headers"]["X-Api-Key"] == [REDACTED] and transport.stats.live == len(live_paths)


async def test_mode_once_replays_like_none_when_the_recording_has_rest_and_records_when_not() -> None:
    inner = Inner()
    with_rest = recording(get(0, "http-1", "/api/v1/ping"), ok(S, "http-1", b"pong"), RecordingEnd(2 * S))
    without = recording(RecordingEnd(2 * S))

    async def client(t: ReplayTransport, stop: asyncio.Event) -> None:
        await t.request(HttpRequest("GET", "http://h/api/v1/new"))
        await stop.wait()

    with pytest.raises(ReplayRefused, match="mode 'once'"):
        await play(ReplayTransport(with_rest, mode="once", inner=inner), client)  # type: ignore[arg-type]
    assert inner.requests == []
    await play(ReplayTransport(without, mode="once", inner=inner), client)  # type: ignore[arg-type]
    assert len(inner.requests) == 1


# --- the feed's session: a frame reaches the protocol in the step recv returned it ---------------------


async def test_the_session_hands_a_frame_over_before_another_task_that_woke_in_the_same_step() -> None:
    """The recorder writes a frame when recv() returns; the Router must see it before anything that
    completed after it (a snapshot answer in another task), or a replay could not reproduce the order."""
    order: list[str] = []
    frame_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    other_ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    class Session:
        id, url = "ws-1", WS
        served = False

        async def send(self, text: str) -> None:
            pass

        async def recv(self) -> WsFrame:
            if self.served:
                await asyncio.Event().wait()
            self.served = True
            await frame_ready
            order.append("recv returned")
            return WsFrame("{}", 1)

        async def close(self, code: int = 1000, reason: str = "") -> None:
            pass

    class Transport:
        clock = ReplayTransport(recording()).clock

        async def connect(self, url: str, **kw: Any) -> Session:
            return Session()

    async def on_frame(frame: WsFrame) -> None:
        order.append("on_frame")

    async def other() -> None:
        await other_ready
        order.append("other task")

    manager = WsSessionManager(Transport(), WS, ["trade.SOL_USDC"], on_frame)  # type: ignore[arg-type]
    stop = asyncio.Event()
    run = asyncio.ensure_future(manager.run(stop))
    competitor = asyncio.ensure_future(other())
    for _ in range(10):
        await asyncio.sleep(0)
    frame_ready.set_result(None)
    other_ready.set_result(None)  # completes in the same loop step, after the frame
    for _ in range(10):
        await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(run, 5)
    await competitor
    assert order == ["recv returned", "on_frame", "other task"]


async def test_pacing_replays_in_real_time_times_the_speed_and_the_default_does_not_wait() -> None:
    """A 2 s recording at speed 10 takes at least 0.2 s of real time; unpaced it needs no real wait at
    all (virtual time carries every gap), so it takes less than the paced run's lower bound."""
    def rec() -> Recording:
        return recording(WsOpen(0, "a", WS), WsSend(0, "a", SUB), WsRecv(1 * S, "a", "x", 1),
                         WsRecv(2 * S, "a", "y", 2), RecordingEnd(2 * S))

    loop = asyncio.get_running_loop()
    logs: list[list[Any]] = [[], []]
    began = loop.time()
    await play(ReplayTransport(rec(), pacing=10.0), lambda t, stop: reader(t, stop, logs[0]))
    paced = loop.time() - began
    assert paced >= 0.19
    began = loop.time()
    await play(ReplayTransport(rec()), lambda t, stop: reader(t, stop, logs[1]))
    assert loop.time() - began < 0.19 and logs[0] == logs[1]
