"""ReplayTransport: serves a recording to the real feed through the transport seam, on a virtual clock.

The feed is handed this transport instead of a live one and runs unchanged; the transport walks the
recording's timeline (``play``) and plays the exchange's part while checking the feed's.

How one step works. The timeline is walked event by event. Before an event, virtual time
(``harness.clock.VirtualClock``, ``start_us + t``) moves to the event's time, one sleeper deadline at a
time, letting the feed run after each wake. Then the event is handled, and the loop is *settled*: the
walker yields until no other callback is ready to run, i.e. the feed has done everything that event
made it do and waits on this transport or on the clock again (there is no real I/O in a replay, so an
idle loop means an idle feed). Only then comes the next event. So the feed sees every frame, response
and close in recorded order, each after it finished with the previous one, which is also the order the
live feed's protocol core saw them in (``backpack.session`` handles a frame in the step it arrives).

Two kinds of event:

* **Deliveries** (the exchange's part): ``ws_recv`` (a frame for ``recv()``, with its recorded receipt;
  queued when the feed is not reading), ``ws_close`` via ``recv`` (``recv()`` raises ``WsClosed`` with the
  recorded code), ``ws_ping``/``ws_pong`` (counted, ``last_activity`` and ``observe_control`` listeners),
  ``transport_error`` of ``recv``, and the answer of a REST exchange.
* **Feed actions** the recording says the feed performed, which each complete the feed's pending call at
  that point: ``ws_open`` or a ``connect`` error (the feed's ``connect()``; the URL must match),
  ``ws_send`` (the feed's ``send()``: its text, redacted like the recorder redacts, must equal the
  recorded text, else a ``ReplayMismatch`` naming both), ``ws_close`` via ``send``/``close``. When the
  feed has not made that call yet, it is waiting for something: if it sleeps (a reconnect backoff), time
  advances to the earliest sleeper and the feed runs again, until it acts; if it has not acted within
  ``max_wait`` of virtual time from the moment the replay began waiting (the event's time, or later when
  earlier waits ran ahead of the recording), or nothing sleeps, the replay ends in a ``VirtualTimeout``,
  never a hang.

REST goes through vcrpy: the recording's exchanges are loaded into a ``vcr.cassette.Cassette`` (see
``harness.recording.cassettes``), a request is matched with vcrpy's matchers (method, path, canonical
query and body) and the record modes mean what they mean in vcrpy and pytest-recording:
``none`` (default; an unmatched request is refused, naming it and the nearest recorded one), ``once``
(like ``none`` unless the recording has no REST exchanges, then like ``new_episodes``), ``new_episodes``
(unmatched requests go to the live ``inner`` transport and are added to the cassette), ``all`` (every
request goes live). A matched answer is held until the timeline reaches the recorded answer, so it
lands among the frames where it landed when recording; recorded transport errors raise the same
``TransportError`` kind. Recorded requests the feed never makes are not an error (vcrpy's rule too).

The end: the last event that is not an effect of the feed being stopped (its closing of the socket, an
unanswered request, ``end``) ends the input. The walker then sets the stop event it was given, answers
whatever the stopping feed asks (its ``close()`` returns at once, a ``connect`` is refused as ended) and
waits, still on virtual time, until the feed's task finishes. ``ended`` is set at that point too.

Dialing out: a ``connect`` beyond the recorded connections, or to another URL, raises ``ReplayRefused``
(a ``TransportError``) at this transport in every mode: WebSockets are always served from the recording.
Every conformance failure is also kept in ``failure``; ``play`` raises it once the feed has stopped.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from vcr.cassette import Cassette
from vcr.errors import CannotOverwriteExistingCassetteException
from vcr.matchers import requests_match
from vcr.record_mode import RecordMode

from backpack.redaction import mask_url
from backpack.transport import (
    ControlListener,
    HttpRequest,
    HttpResponse,
    Transport,
    TransportError,
    TransportTimeout,
    WsClosed,
    WsFrame,
)
from harness.clock import VirtualClock
from harness.recording.cassettes import (
    EXTENSION,
    MATCH_ON,
    RecordingPersister,
    indexed_interactions,
    vcr_request,
)
from harness.recording.format import (
    Event,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    TransportErrorEvent,
    UnknownEvent,
    WsClose,
    WsOpen,
    WsPing,
    WsPong,
    WsRecv,
    WsSend,
)
from harness.recording.reader import ReadStats, Recording, RecordingDamaged
from harness.recording.redaction import Redactor
from harness.transports.replay_timeline import ReplayTimeline, StreamedEvents, TimelineChanged

MODES = ("none", "once", "new_episodes", "all")
DEFAULT_MAX_WAIT_S = 300.0
"""Virtual seconds a replay waits past an event for the feed's action: above every backoff the feed uses
(30 s reconnect cap, 60 s supervision cap), below the hour of the symbol cache refresh."""
_MAX_SPINS = 100_000  # loop passes one settle may take before the feed counts as never idle
_FALLBACK_SPINS = 64  # without an inspectable ready queue (another loop implementation)
_TEXT_LIMIT = 240


class ReplayError(TransportError):
    """Base of the conformance failures a replay raises (to the feed, and from ``play``): one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ReplayRefused(ReplayError):
    """The feed tried to reach something the recording does not have (mode ``none``: no dialing out)."""


class ReplayMismatch(ReplayError):
    """The feed did something other than what the recording has (a different frame or URL)."""


class VirtualTimeout(ReplayError):
    """The feed did not do what the recording expects within the allowed span of virtual time."""


class ReplayEnded(TransportError):
    """The recording has ended: what the stopping feed gets for a late connect (not a failure)."""


_ERROR_KINDS: dict[str, type[TransportError]] = {
    "TransportError": TransportError,
    "TransportTimeout": TransportTimeout,
    "ReplayRefused": ReplayRefused,
}


def _recorded_error(name: str, message: str) -> TransportError:
    """The exception a recorded ``transport_error`` stands for: its own class when it is a seam error."""
    cls = _ERROR_KINDS.get(name)
    if cls is not None:
        return cls(message)
    return TransportError(f"{name}: {message}" if message else name)


def _shown(value: str | bytes) -> str:
    text = value if isinstance(value, str) else f"<{len(value)} bytes> {value[:60]!r}"
    return repr(text if len(text) <= _TEXT_LIMIT else text[:_TEXT_LIMIT] + "...")


@dataclass(slots=True)
class ReplayStats:
    events: int = 0  # timeline events handled
    frames: int = 0  # ws_recv frames handed to the feed
    bytes: int = 0  # payload bytes of those frames and of REST bodies handed over
    requests: int = 0  # requests the feed made
    played: int = 0  # ... answered from the recording
    live: int = 0  # ... sent to the inner transport (record modes)
    connects: int = 0


class ReplayWsSession:
    """One recorded WebSocket connection as the feed sees it (``backpack.transport.WsSession``)."""

    def __init__(self, owner: ReplayTransport, session_id: str, url: str) -> None:
        self.id = session_id
        self.url = url
        self._owner = owner
        self._queue: deque[WsFrame | BaseException] = deque()
        self._recv: asyncio.Future[WsFrame] | None = None
        self._sends: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._close: asyncio.Future[None] | None = None
        self._closed: WsClosed | None = None  # the exchange's side is closed (recv/send raise this)
        self.closed_by_feed = False
        self.sent = 0
        self._pings = 0
        self._last_activity = owner.clock.now_us()
        self._listener: ControlListener | None = None

    def __repr__(self) -> str:
        return f"ReplayWsSession(id={self.id!r}, url={mask_url(self.url)!r})"

    # -- what the feed calls ----------------------------------------------------------------------

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise WsClosed(self._closed.code, self._closed.reason)
        if self.closed_by_feed:
            raise WsClosed(None, "closed locally")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sends.append((text, future))
        try:
            await future
        finally:
            if not future.done():
                self._sends = deque(item for item in self._sends if item[1] is not future)
        self.sent += 1

    async def recv(self) -> WsFrame:
        if self._queue:
            return self._take(self._queue.popleft())
        if self._closed is not None:
            raise WsClosed(self._closed.code, self._closed.reason)
        if self.closed_by_feed:
            raise WsClosed(None, "closed locally")
        future: asyncio.Future[WsFrame] = asyncio.get_running_loop().create_future()
        self._recv = future
        try:
            return await future
        finally:
            if self._recv is future:
                self._recv = None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed_by_feed:
            return
        self.closed_by_feed = True
        if self._recv is not None and not self._recv.done():
            self._recv.set_exception(WsClosed(None, "closed locally"))
        owner = self._owner
        if owner.ending or not owner.close_ahead(self.id):
            return  # nothing later in the recording waits for this close
        self._close = asyncio.get_running_loop().create_future()
        await self._close

    @property
    def pings_received(self) -> int:
        return self._pings

    @property
    def last_activity(self) -> int:
        return self._last_activity

    def observe_control(self, listener: ControlListener | None) -> None:
        self._listener = listener

    @staticmethod
    def _take(item: WsFrame | BaseException) -> WsFrame:
        if isinstance(item, BaseException):
            raise item
        return item

    # -- what the walker calls --------------------------------------------------------------------

    def deliver(self, item: WsFrame | BaseException) -> None:
        if isinstance(item, WsFrame):
            self._last_activity = item.receipt
        if self._recv is not None and not self._recv.done() and not self._queue:
            if isinstance(item, BaseException):
                self._recv.set_exception(item)
            else:
                self._recv.set_result(item)
            self._recv = None
        else:
            self._queue.append(item)

    def remote_close(self, error: WsClosed) -> None:
        self._closed = error
        self.deliver(WsClosed(error.code, error.reason))
        while self._sends:
            _, future = self._sends.popleft()
            if not future.done():
                future.set_exception(WsClosed(error.code, error.reason))

    def control(self, kind: str, payload: bytes, receipt: int) -> None:
        if kind == "ping":
            self._pings += 1
            self._last_activity = receipt
        if self._listener is not None:
            self._listener(kind, payload, receipt)

    def pending_send(self) -> bool:
        return any(not f.done() for _, f in self._sends)

    def pop_send(self) -> tuple[str, asyncio.Future[None]]:
        while True:
            text, future = self._sends.popleft()
            if not future.done():
                return text, future

    def pending_close(self) -> bool:
        return self._close is not None and not self._close.done()

    def finish_close(self, error: BaseException | None = None) -> None:
        if self._close is not None and not self._close.done():
            if error is None:
                self._close.set_result(None)
            else:
                self._close.set_exception(error)

    def waiting_on(self) -> list[str]:
        out = []
        if self._recv is not None and not self._recv.done():
            out.append(f"recv on {self.id}")
        if self.pending_send():
            out.append(f"send on {self.id}")
        if self.pending_close():
            out.append(f"close of {self.id}")
        return out

    def end(self) -> None:
        """The replay is over: nothing the feed still waits on here will ever come."""
        if self._recv is not None and not self._recv.done():
            self._recv.set_exception(WsClosed(1000, "the recording has ended"))
        while self._sends:
            _, future = self._sends.popleft()
            if not future.done():
                future.set_exception(WsClosed(1000, "the recording has ended"))
        self.finish_close()


class ReplayTransport:
    """``Transport`` that serves ``recording`` (a path, a read ``Recording`` or a ``ReplayTimeline``); see the
    module docstring. A path is streamed (``harness.transports.replay_timeline``): indexed in one pass, then
    walked holding a short window of events, so memory does not grow with the file.

    ``mode``: REST record mode (vcrpy's). ``pacing``: None replays as fast as possible, a number X
    replays in real time × X. ``inner``: the live transport new episodes go to. ``secrets``: strings
    the feed holds (its throwaway key pair) to redact from its frames before comparing. ``until_t``:
    stop the input at the first event with ``t >= until_t`` (ns). ``progress``: called every
    ``progress_every`` events and at the end.
    """

    def __init__(
        self,
        recording: str | os.PathLike[str] | Recording,
        *,
        mode: str = "none",
        pacing: float | None = None,
        inner: Transport | None = None,
        secrets: Sequence[str] = (),
        max_wait: float = DEFAULT_MAX_WAIT_S,
        until_t: int | None = None,
        progress: Callable[[ReplayTransport], None] | None = None,
        progress_every: int = 256,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if pacing is not None and not pacing > 0:
            raise ValueError(f"pacing (a speed factor) must be positive, got {pacing!r}")
        if isinstance(recording, ReplayTimeline):
            timeline = recording
            if timeline.until_t != until_t:
                if isinstance(timeline.events, StreamedEvents):
                    raise ValueError(f"the timeline was indexed for until_t={timeline.until_t!r}, not {until_t!r}")
                timeline = ReplayTimeline.of(Recording(timeline.header, list(timeline.events), timeline.damage,
                                                       ReadStats()), until_t, timeline.name)
        elif isinstance(recording, Recording):
            timeline = ReplayTimeline.of(recording, until_t)
        else:
            timeline = ReplayTimeline.scan(recording, until_t)  # streamed: a long file is never held whole
        self.timeline = timeline
        self.name = timeline.name
        self.header: Header = timeline.header
        self.events: Sequence[Event] = timeline.events
        self.damage: RecordingDamaged | None = timeline.damage
        self.mode = mode
        self.pacing = pacing
        self.inner = inner
        self.max_wait_us = int(max_wait * 1_000_000)
        self.redactor = Redactor(secrets, marker=self.header.redaction)
        index = timeline.index
        self.base_us = self.header.start_us if self.header.start_us is not None else (index.inferred_base_us or 0)
        self._clock = VirtualClock(self.base_us)
        self.stats = ReplayStats()
        self.failure: ReplayError | None = None
        self.ended = asyncio.Event()
        self.ending = False
        self.cursor = 0  # events[:cursor] are handled
        self.position_t = 0  # t (ns) of the event being handled
        self.current_event: int | None = None  # index of the event handed over last: what the feed is reacting to
        self._progress = progress
        self._progress_every = max(1, progress_every)
        self._stop_index = index.stop_index
        self._sessions: dict[str, ReplayWsSession] = {}
        self._connect_slots = list(index.connects)
        self._slot_set = frozenset(self._connect_slots)
        self._next_slot = 0
        self._broken_at: dict[str, int] = index.broken_at  # conn -> first event where the exchange closed/failed it
        self._connects: dict[int, tuple[str, asyncio.Future[ReplayWsSession]]] = {}
        self._closes: dict[str, list[int]] = index.closes
        self._gates: dict[int, asyncio.Future[None]] = {}
        self._forever: list[asyncio.Future[Any]] = []
        self._live_calls = 0
        self._live_idle = asyncio.Event()
        self._live_idle.set()
        self._paced_us: int | None = None
        self._pace_started: float | None = None
        self._feed: asyncio.Future[Any] | None = None
        persister = RecordingPersister.of_pairs(index.rest)
        self._unanswered = [vcr_request(r.method, r.url, r.params, r.headers, r.body)
                            for _, r in indexed_interactions(index.rest)[1]]
        self.cassette = Cassette.load(path=self.name, persister=persister, record_mode=RecordMode(mode),
                                      match_on=MATCH_ON, allow_playback_repeats=False)

    def __repr__(self) -> str:
        return (f"ReplayTransport({os.path.basename(self.name)!r}, mode={self.mode!r}, "
                f"events={len(self.events)}, cursor={self.cursor})")

    # -- Transport ----------------------------------------------------------------------------------

    @property
    def clock(self) -> VirtualClock:
        return self._clock

    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        self.stats.requests += 1
        described = f"{request.method} {_query_url(request)}"
        if self.ending:
            raise ReplayEnded(f"the recording has ended; {described} not sent")
        vreq = vcr_request(request.method, request.url, request.params, request.headers, request.body)
        cassette = self.cassette
        if cassette.can_play_response_for(vreq):
            response = cassette.play_response(vreq)
            self.stats.played += 1
            index = _answer_index(response)
            if index is not None and index >= self.cursor:
                gate = self._gates[index] = asyncio.get_running_loop().create_future()
                await gate
            return self._response(response)
        if cassette.write_protected:
            if any(requests_match(vreq, r, MATCH_ON) for r in self._unanswered):
                # recorded, but it never got an answer (the recorder's feed was stopped meanwhile)
                forever = asyncio.get_running_loop().create_future()
                self._forever.append(forever)
                await forever
            raise self._fail(ReplayRefused(f"replay refused {described}: {self._nearest(cassette, vreq)}"))
        if self.inner is None:
            raise self._fail(ReplayRefused(
                f"replay refused {described}: mode {self.mode!r} sends requests the recording lacks to a "
                "live transport, and this replay has none"))
        self._live_calls += 1
        self._live_idle.clear()
        try:
            live = await self.inner.request(request, timeout=timeout)
        finally:
            self._live_calls -= 1
            if not self._live_calls:
                self._live_idle.set()
        self.stats.live += 1
        receipt = self._clock.now_us()
        cassette.append(vreq, {
            "status": {"code": live.status, "message": ""},
            "headers": {k: [v] for k, v in self.redactor.headers(live.headers).items()},
            "body": {"string": live.body}, EXTENSION: {"receipt": receipt},
        })
        return HttpResponse(live.status, dict(live.headers), live.body, receipt)

    async def connect(self, url: str, *, timeout: float | None = 10.0) -> ReplayWsSession:
        if self.ending:
            raise ReplayEnded(f"the recording has ended; no connection to {mask_url(url)}")
        self.stats.connects += 1
        if self._next_slot >= len(self._connect_slots):
            raise self._fail(ReplayRefused(
                f"replay refused connect #{self.stats.connects} to {mask_url(url)}: the recording has "
                f"{len(self._connect_slots)} WebSocket connection attempt(s) and no more (dialing out is "
                "never allowed)"))
        slot = self._connect_slots[self._next_slot]
        self._next_slot += 1
        recorded = self.events[slot]
        recorded_url = recorded.url
        if recorded_url is not None and not _same_url(self.redactor.text(url), recorded_url):
            raise self._fail(ReplayMismatch(
                f"connect #{self.stats.connects} goes to {mask_url(url)} but the recording connects to "
                f"{recorded_url} ({self._where(slot)})"))
        future: asyncio.Future[ReplayWsSession] = asyncio.get_running_loop().create_future()
        self._connects[slot] = (url, future)
        try:
            return await future
        finally:
            self._connects.pop(slot, None)

    async def close(self) -> None:
        """Release what still waits (the feed owns nothing here); the inner transport is the caller's."""
        self._end_everything()
        self.timeline.close()

    # -- walking the timeline -------------------------------------------------------------------------

    async def play(self, stop: asyncio.Event, feed: asyncio.Future[Any] | None = None) -> None:
        """Serve the recording to the feed, then stop it (``stop``) and wait for ``feed`` to finish.

        Raises the first conformance failure (after the feed stopped), if there was one.
        """
        self._feed = feed
        try:
            await self._settle()
            events, clock, stats, paced = self.events, self._clock, self.stats, self.pacing is not None
            for index in range(self._stop_index):
                if self.failure is not None or self._feed_gone():
                    break
                event = events[index]
                self.position_t = event.t
                target = self.base_us + event.t // 1000
                deadline = clock.next_deadline()
                if paced or (deadline is not None and deadline <= target):
                    await self._time_to(target)
                    if self.failure is not None:
                        break
                else:  # nobody sleeps until then: what _time_to would do, without its coroutine
                    clock.advance_to(target)
                self.current_event = index
                if type(event) is WsRecv:  # most events: _handle's first branch, inline
                    session = self._sessions.get(event.conn)
                    if session is None or session.closed_by_feed:
                        session = self._session_for(index, event.conn, "a frame")  # raises, naming why
                    data = event.data
                    stats.frames += 1
                    stats.bytes += len(data) if type(data) is bytes or data.isascii() else len(data.encode())
                    session.deliver(WsFrame(data, event.receipt))
                else:
                    await self._handle(index, event)
                self.cursor = index + 1
                self.stats.events += 1
                await self._settle()
                if self._progress is not None and self.stats.events % self._progress_every == 0:
                    self._progress(self)
            else:
                self.cursor = max(self.cursor, self._stop_index)
            if self.failure is None and self._feed_gone() and self.cursor < self._stop_index:
                self._fail(ReplayMismatch(
                    f"the feed stopped by itself at {self._where(self.cursor)}, before the recording ended"))
        except ReplayError as exc:
            self._fail(exc)
        except TimelineChanged as exc:
            self._fail(ReplayError(str(exc)))
        finally:
            await self._drain(stop)
            if self._progress is not None:
                self._progress(self)
        if self.failure is not None:
            raise self.failure

    def _feed_gone(self) -> bool:
        return self._feed is not None and self._feed.done()

    async def _handle(self, index: int, event: Event) -> None:
        if isinstance(event, WsRecv):
            session = self._session_for(index, event.conn, "a frame")
            self.stats.frames += 1
            data = event.data
            self.stats.bytes += len(data) if type(data) is bytes or data.isascii() else len(data.encode())
            session.deliver(WsFrame(event.data, event.receipt))
        elif isinstance(event, WsSend):
            await self._expect_send(index, event)
        elif isinstance(event, WsOpen | TransportErrorEvent) and index in self._slot_set:
            await self._expect_connect(index, event)
        elif isinstance(event, WsPing | WsPong):
            session = self._sessions.get(event.conn)
            if session is not None and not session.closed_by_feed:
                receipt = event.receipt if event.receipt is not None else self._clock.now_us()
                session.control("ping" if isinstance(event, WsPing) else "pong", event.data, receipt)
        elif isinstance(event, WsClose):
            await self._on_close(index, event)
        elif isinstance(event, HttpResponseEvent):
            self.stats.bytes += len(event.body)
            self._open_gate(index)
        elif isinstance(event, TransportErrorEvent):
            await self._on_error(index, event)
        elif isinstance(event, HttpRequestEvent | RecordingEnd | UnknownEvent):
            pass  # a request is answered when its answer's turn comes; end/unknown kinds carry nothing

    def _open_gate(self, index: int) -> None:
        gate = self._gates.pop(index, None)
        if gate is not None and not gate.done():
            gate.set_result(None)

    def _session_for(self, index: int, conn: str, what: str) -> ReplayWsSession:
        session = self._sessions.get(conn)
        if session is None:
            raise ReplayMismatch(f"the recording hands {what} to connection {conn!r} at {self._where(index)}, "
                                 "but the feed never opened it")
        if session.closed_by_feed:
            raise ReplayMismatch(f"the recording hands {what} to connection {conn!r} at {self._where(index)}, "
                                 "but the feed had already closed it")
        return session

    async def _expect_connect(self, index: int, event: WsOpen | TransportErrorEvent) -> None:
        url = event.url or "?"
        await self._wait_for(index, lambda: index in self._connects, f"connect to {url}")
        _, future = self._connects[index]
        if future.done():
            return
        if isinstance(event, WsOpen):
            session = ReplayWsSession(self, event.conn, event.url)
            self._sessions[event.conn] = session
            future.set_result(session)
        else:
            future.set_exception(_recorded_error(event.error, event.message))

    async def _expect_send(self, index: int, event: WsSend) -> None:
        session = self._sessions.get(event.conn)
        if session is None:
            raise ReplayMismatch(f"the recording has the feed send on connection {event.conn!r} at "
                                 f"{self._where(index)}, but the feed never opened it")
        await self._wait_for(index, session.pending_send, f"send {_shown(event.data)} on {event.conn!r}")
        text, future = session.pop_send()
        sent = self.redactor.ws_text(text)
        if sent != event.data:
            error = ReplayMismatch(
                f"frame #{session.sent + 1} sent on {event.conn!r} differs from the recording at "
                f"{self._where(index)}: the feed sent {_shown(sent)}, the recording has {_shown(event.data)}")
            future.set_exception(error)
            raise error
        future.set_result(None)

    async def _on_close(self, index: int, event: WsClose) -> None:
        if event.via == "recv":
            session = self._sessions.get(event.conn)
            if session is not None and not session.closed_by_feed:
                session.remote_close(WsClosed(event.code, event.reason))
            return
        session = self._sessions.get(event.conn)
        if session is None:
            return
        if event.via == "send":
            await self._wait_for(index, session.pending_send, f"send on {event.conn!r} (which fails: closed)")
            session.remote_close(WsClosed(event.code, event.reason))
            return
        if session.pending_close() or not self._must_close(index, event.conn):
            session.finish_close()
            return
        await self._wait_for(index, lambda: session.pending_close() or session.closed_by_feed,
                             f"close connection {event.conn!r}")
        session.finish_close()

    async def _on_error(self, index: int, event: TransportErrorEvent) -> None:
        error = _recorded_error(event.error, event.message)
        if event.op == "request":
            self._open_gate(index)  # its gate raises nothing: the cassette answer carries the error
        elif event.op == "recv" and event.conn is not None:
            session = self._sessions.get(event.conn)
            if session is not None and not session.closed_by_feed:
                session.deliver(error)
        elif event.op == "send" and event.conn is not None:
            session = self._sessions.get(event.conn)
            if session is not None:
                await self._wait_for(index, session.pending_send, f"send on {event.conn!r} (which fails)")
                _, future = session.pop_send()
                future.set_exception(error)
        elif event.op == "close" and event.conn is not None:
            session = self._sessions.get(event.conn)
            if session is not None:
                await self._wait_for(index, lambda: session.pending_close() or session.closed_by_feed,
                                     f"close connection {event.conn!r} (which fails)")
                session.finish_close(error)

    def _must_close(self, index: int, conn: str) -> bool:
        """A feed close the recording waits for: one after the exchange closed or failed that socket."""
        return self._broken_at.get(conn, len(self.events)) < index

    def close_ahead(self, conn: str) -> bool:
        """Whether the recording still has the feed's close of ``conn`` ahead (so close() waits for it)."""
        return any(i >= self.cursor for i in self._closes.get(conn, ()))

    async def _wait_for(self, index: int, done: Callable[[], bool], what: str) -> None:
        """Until the feed does ``what``: settle, and while it sleeps instead, advance to its next wake."""
        # from the event's time, or from now when earlier waits (longer backoffs than recorded) ran ahead
        limit = max(self._virtual(self.events[index]), self._clock.now_us()) + self.max_wait_us
        while True:
            await self._settle()
            if self.failure is not None:
                raise self.failure
            if done():
                return
            if self._feed_gone():
                raise ReplayMismatch(f"the feed stopped, but the recording has it {what} at {self._where(index)}")
            deadline = self._clock.next_deadline()
            if deadline is None or deadline > limit:
                waiting = self._waiting_on()
                raise VirtualTimeout(
                    f"virtual timeout: the recording has the feed {what} at {self._where(index)}, but it did "
                    f"not within {self.max_wait_us / 1e6:g} s of virtual time"
                    f"{' (it waits on ' + ', '.join(waiting) + ')' if waiting else ''}")
            await self._pace(deadline)
            self._clock.advance_to(deadline)

    async def _time_to(self, target: int) -> None:
        while self.failure is None:
            deadline = self._clock.next_deadline()
            if deadline is None or deadline > target:
                break
            await self._pace(deadline)
            self._clock.advance_to(deadline)
            await self._settle()
        await self._pace(target)
        self._clock.advance_to(target)

    async def _pace(self, target: int) -> None:
        if self.pacing is None:
            return
        loop = asyncio.get_running_loop()
        if self._paced_us is None or self._pace_started is None:
            self._paced_us, self._pace_started = self._clock.now_us(), loop.time()
        due = self._pace_started + (target - self._paced_us) / 1e6 / self.pacing
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _settle(self) -> None:
        """Yield until nothing else is ready to run: the feed is idle, waiting on us or on the clock."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        scheduled = getattr(loop, "_scheduled", None)
        for spin in range(_MAX_SPINS):
            await asyncio.sleep(0)
            if self._live_calls:
                await self._live_idle.wait()  # a new episode on a real socket: wait for its answer
                continue
            if ready is None:
                if spin >= _FALLBACK_SPINS:
                    return
                continue
            if not ready and not (scheduled and scheduled[0].when() <= loop.time()):
                return
        raise self._fail(ReplayError(f"the feed never went idle (still busy after {_MAX_SPINS} loop passes "
                                     f"at {self._where(self.cursor)})"))

    async def _drain(self, stop: asyncio.Event) -> None:
        """The input is over: stop the feed, answer its shutdown, and wait for it on virtual time."""
        self.ending = True
        self.ended.set()
        stop.set()
        feed = self._feed
        for _ in range(1000):
            for session in self._sessions.values():
                session.finish_close()
            for _, future in list(self._connects.values()):
                if not future.done():
                    future.set_exception(ReplayEnded("the recording has ended"))
            try:
                await self._settle()
            except ReplayError:
                break
            if feed is None or feed.done():
                break
            if any(s.pending_close() for s in self._sessions.values()) or any(
                    not f.done() for _, f in self._connects.values()):
                continue
            deadline = self._clock.next_deadline()
            if deadline is None:
                break
            self._clock.advance_to(deadline)
        if feed is not None and not feed.done():
            self._fail(ReplayError(f"the feed did not stop after the recording ended ({self._where(self.cursor)}"
                                   f"{'; it waits on ' + ', '.join(self._waiting_on()) if self._waiting_on() else ''})"))
            feed.cancel()
            await asyncio.wait({feed}, timeout=5)
        self._end_everything()

    def _end_everything(self) -> None:
        self.ending = True
        for session in self._sessions.values():
            session.end()
        for future in [*self._gates.values(), *self._forever]:
            future.cancel()
        self._gates.clear()
        self._forever.clear()
        for _, future in self._connects.values():
            if not future.done():
                future.set_exception(ReplayEnded("the recording has ended"))

    # -- helpers ------------------------------------------------------------------------------------

    def _fail(self, error: ReplayError) -> ReplayError:
        if self.failure is None:
            self.failure = error
        return error

    def _virtual(self, event: Event) -> int:
        return self.base_us + event.t // 1000

    def _where(self, index: int) -> str:
        if index >= len(self.events):
            return f"the end of the recording (after event {len(self.events)})"
        try:
            event = self.events[index]
        except IndexError:  # a streamed timeline no longer holds it
            return f"event {index + 1}"
        return f"event {index + 1} (t={event.t / 1e9:.6f} s)"

    def _waiting_on(self) -> list[str]:
        out = [f"connect to {mask_url(url)}" for url, f in self._connects.values() if not f.done()]
        for session in self._sessions.values():
            out += session.waiting_on()
        if self._gates:
            out.append(f"{len(self._gates)} REST answer(s) due later")
        if self._clock.next_deadline() is not None:
            out.append(f"{self._clock.sleepers} clock sleeper(s), next at +"
                       f"{(self._clock.next_deadline() - self._clock.now_us()) / 1e6:g} s")  # type: ignore[operator]
        return out

    def _response(self, response: dict[str, Any]) -> HttpResponse:
        extra = response.get(EXTENSION) if isinstance(response.get(EXTENSION), dict) else {}
        error = extra.get("transport_error")
        if isinstance(error, dict):
            raise _recorded_error(str(error.get("e") or "TransportError"), str(error.get("msg") or ""))
        status = response["status"]["code"]
        headers = {str(k): ", ".join(map(str, v)) if isinstance(v, list) else str(v)
                   for k, v in (response.get("headers") or {}).items()}
        body = (response.get("body") or {}).get("string") or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        receipt = extra.get("receipt")
        if type(receipt) is not int:
            receipt = self._clock.now_us()
        return HttpResponse(int(status), headers, bytes(body), receipt)

    def _nearest(self, cassette: Cassette, vreq: Any) -> str:
        error = CannotOverwriteExistingCassetteException(cassette=cassette, failed_request=vreq)
        mode = f"mode {self.mode!r} does not dial out"
        if error.reason == "cassette_not_found":
            return f"the recording has no REST exchanges ({mode})"
        if not error.similar_requests:
            return f"the recording has nothing like it ({mode})"
        request, _ok, failed = error.similar_requests[0]
        if error.reason == "already_played":
            count = sum(1 for _r, _s, f in error.similar_requests if not f)
            return (f"the recording answers it {count} time(s) and the feed already used them ({mode}); "
                    f"nearest recorded: {request.method} {request.uri}")
        differs = "; ".join(f"{name} differs: {' '.join(str(msg or '').split())[:160]}" for name, msg in failed)
        return f"not in the recording ({mode}); nearest recorded: {request.method} {request.uri} ({differs})"


def _same_url(a: str, b: str) -> bool:
    """Equal URLs, where an empty path is "/" (RFC 3986 6.2.3): ``ws://h:1`` is ``ws://h:1/``."""
    if a == b:
        return True
    sa, sb = urlsplit(a), urlsplit(b)
    return sa._replace(path=sa.path or "/") == sb._replace(path=sb.path or "/")


def _answer_index(response: Any) -> int | None:
    extra = response.get(EXTENSION) if isinstance(response, dict) else None
    index = extra.get("index") if isinstance(extra, dict) else None
    return index if type(index) is int else None


def _query_url(request: HttpRequest) -> str:
    return mask_url(request.url + ("?" + urlencode(list(request.params)) if request.params else ""))


__all__ = [
    "DEFAULT_MAX_WAIT_S", "MODES", "ReplayEnded", "ReplayError", "ReplayMismatch", "ReplayRefused",
    "ReplayStats", "ReplayTransport", "ReplayWsSession", "VirtualTimeout",
]
