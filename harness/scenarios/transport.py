"""ScenarioTransport: a faulted timeline served to the real feed, the exchange reacting to what it does.

It is a ``ReplayTransport`` (same virtual clock, same walk of the timeline one step at a time with the
loop settled between steps, same ending), but where the plain replay holds the feed to the recorded
client's actions, this one plays an exchange: the feed may connect, subscribe, reconnect and ask for
snapshots whenever it decides to, and the faults decide what it gets.

* **Connections.** Any number of connects to the recorded WebSocket URL (up to ``MAX_CONNECTS``). A
  frame reaches the feed only on its current connection and only once that connection has subscribed
  to the frame's stream (frames without one, such as error frames, go to the current connection): what
  the exchange sends while the feed is away or before it resubscribes is lost, as it would be live.
* **Subscriptions.** Each SUBSCRIBE is read; a private one must carry a valid signature of the feed's
  key with a timestamp newer than the last one and within its window of the virtual clock (invariant
  (e)); the first ``reject_private`` of them are refused with an error frame. When a connection ends,
  the streams it named must be those of the first connection (less the private ones once the feed had
  every reason to give them up).
* **The link.** ``close`` steps close the current connection from the exchange's side; ``deaf`` makes
  it die ``PING_TIMEOUT_S`` later (code 1011, as the live transport's keepalive does); and a watchdog
  closes it (code 4000) when nothing at all arrived for ``watchdog_s``, as the live transport does.
* **REST.** Depth requests are answered by the snapshot rule (``Exchange``) after
  ``SNAPSHOT_LATENCY_S`` (a timed-out one raises ``TransportTimeout`` after the feed's timeout); other
  requests get the recording's first answer to the same path and query, else a 404.

Every step is reported to the ``Checker``, delivered or lost.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from backpack.protocol.auth import signing_string, verify
from backpack.redaction import mask_url
from backpack.transport import HttpRequest, HttpResponse, TransportTimeout, WsClosed, WsFrame
from harness.loopback.recorded.session import rest_key
from harness.recording.reader import ReadStats, Recording
from harness.scenarios.invariants import Checker
from harness.scenarios.program import (
    DEAF_CODE,
    PING_TIMEOUT_S,
    WATCHDOG_CODE,
    WATCHDOG_S,
    Faulted,
    Step,
    reject_frame,
)
from harness.transports.replay import (
    ReplayEnded,
    ReplayError,
    ReplayRefused,
    ReplayTransport,
    ReplayWsSession,
)

MAX_CONNECTS = 64
SNAPSHOT_LATENCY_S = 0.05  # the same as the core runner's


class ScenarioStopped(ReplayError):
    """An invariant broke: the walk stops early (the checker holds the violation)."""


class ScenarioSession(ReplayWsSession):
    """One connection the feed opened; the exchange's side of it is the ``ScenarioTransport``."""

    def __init__(self, owner: ScenarioTransport, number: int, url: str) -> None:
        super().__init__(owner, f"ws-{number}", url)
        self.number = number
        self.owner: ScenarioTransport = owner
        self.subscribed: set[str] = set()
        self.named: set[str] = set()
        self.active_at = owner.clock.now_us()
        self.ended = False
        self.verified = False
        self.tasks: list[asyncio.Task[None]] = []

    async def send(self, text: str) -> None:
        if self._closed is not None:
            raise WsClosed(self._closed.code, self._closed.reason)
        if self.closed_by_feed:
            raise WsClosed(None, "closed locally")
        self.sent += 1
        self.owner.on_send(self, text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed_by_feed:
            return
        self.closed_by_feed = True
        if self._recv is not None and not self._recv.done():
            self._recv.set_exception(WsClosed(None, "closed locally"))
        self.owner.session_over(self)

    def deliver(self, item: WsFrame | BaseException) -> None:
        self.active_at = self.owner.clock.now_us()
        super().deliver(item)

    def control(self, kind: str, payload: bytes, receipt: int) -> None:
        self.active_at = self.owner.clock.now_us()
        super().control(kind, payload, receipt)

    @property
    def alive(self) -> bool:
        return self._closed is None and not self.closed_by_feed

    def pending_close(self) -> bool:
        return False


class ScenarioTransport(ReplayTransport):
    """See the module docstring. ``checker`` watches the run; ``secrets`` are the feed's throwaway keys."""

    def __init__(self, faulted: Faulted, checker: Checker, *, secrets: tuple[str, ...] | list[str] = ()) -> None:
        ref = faulted.reference
        header = ref.header
        t0_us = ref.events[faulted.start].t // 1000 if ref.events else 0
        header = replace(header, start_us=(header.start_us or 0) + t0_us)
        super().__init__(Recording(header, list(faulted.steps), None, ReadStats()), secrets=secrets)
        self.faulted = faulted
        self.checker = checker
        self.exchange = faulted.exchange()
        self.position = faulted.start
        self.configure()
        self.ws_url = header.ws_url or next((e.url for e in ref.events if hasattr(e, "url") and
                                             getattr(e, "kind", "") == "ws_open"), None)
        self.current: ScenarioSession | None = None
        self.connections: list[ScenarioSession] = []
        self.last_private_ts: int | None = None
        self.rejections = 0
        self.closes: list[int | None] = []  # codes of the connections the exchange side ended
        self._rest = ref.rest_answers()

    def configure(self, *, watchdog_s: float = WATCHDOG_S, rest_timeout_s: float = 10.0, private_attempts: int = 4
                  ) -> None:
        """The feed's settings the exchange's behaviour depends on (watchdog 0: none)."""
        self.watchdog_us = round(watchdog_s * 1_000_000)
        self.rest_timeout_s = rest_timeout_s
        self.private_attempts = private_attempts

    # -- Transport ----------------------------------------------------------------------------------

    async def connect(self, url: str, *, timeout: float | None = 10.0) -> ScenarioSession:
        if self.ending:
            raise ReplayEnded(f"the recording has ended; no connection to {mask_url(url)}")
        self.stats.connects += 1
        if self.ws_url is not None and not _same(self.redactor.text(url), self.ws_url):
            raise self._fail(ReplayRefused(f"connect to {mask_url(url)} refused: the exchange is at {self.ws_url}"))
        if len(self.connections) >= MAX_CONNECTS:
            raise self._fail(ReplayRefused(f"connect #{len(self.connections) + 1} refused: a feed that reconnects "
                                           f"{MAX_CONNECTS} times in one scenario is looping"))
        session = ScenarioSession(self, len(self.connections) + 1, url)
        self.connections.append(session)
        self._sessions[session.id] = session
        self.current = session
        if self.watchdog_us > 0:
            session.tasks.append(asyncio.ensure_future(self._watchdog(session)))
        await asyncio.sleep(0)
        return session

    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        self.stats.requests += 1
        if self.ending:
            raise ReplayEnded(f"the recording has ended; {request.method} {mask_url(request.url)} not sent")
        path = urlsplit(request.url).path
        if path.endswith("/api/v1/depth"):
            return await self._depth(request, timeout)
        if "/api/" in path:
            path = path[path.index("/api/"):]
        recorded = self._rest.get(rest_key(request.method, path, list(request.params)))
        if recorded is None:
            return HttpResponse(404, {"Content-Type": "text/plain"}, b"Not in the recording",
                                self.clock.now_us())
        headers = {"Content-Type": recorded.content_type} if recorded.content_type else {}
        self.stats.played += 1
        return HttpResponse(recorded.status, headers, recorded.body, self.clock.now_us())

    async def _depth(self, request: HttpRequest, timeout: float) -> HttpResponse:
        params = dict(request.params)
        symbol = params.get("symbol", "")
        limit = int(params["limit"]) if params.get("limit", "").isdigit() else 1000
        edit = self.exchange.plan(symbol)
        if edit is not None and edit.get("answer") == "timeout":
            await self.clock.sleep_us(round(self.exchange.delay(edit, timeout) * 1_000_000))
            self.checker.snapshot(symbol, self.exchange.answer(symbol, self.position, edit))
            raise TransportTimeout(f"GET {mask_url(request.url)} timed out after {timeout:g} s")
        await self.clock.sleep_us(round(self.exchange.delay(edit, SNAPSHOT_LATENCY_S) * 1_000_000))
        if self.ending:
            raise ReplayEnded("the recording has ended")
        answer = self.exchange.answer(symbol, self.position, edit, limit)
        self.checker.snapshot(symbol, answer)
        ctype = "application/json" if answer.status == 200 else "text/plain"
        self.stats.played += 1
        return HttpResponse(answer.status, {"Content-Type": ctype}, answer.body, self.clock.now_us())

    # -- the exchange's side of a connection ---------------------------------------------------------

    def on_send(self, session: ScenarioSession, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("params"), list):
            return
        streams = [s for s in msg["params"] if isinstance(s, str)]
        private = [s for s in streams if s.startswith("account.")]
        public = [s for s in streams if s not in private]
        if msg.get("method") == "UNSUBSCRIBE":
            session.subscribed.difference_update(streams)
            return
        if msg.get("method") != "SUBSCRIBE":
            return
        session.named.update(streams)
        session.subscribed.update(public)
        if not private:
            return
        self._check_signature(msg.get("signature"))
        if self.exchange.reject_private():
            self.rejections += 1
            self.checker.expect_error(f"the refusal of private subscribe #{self.rejections}")
            session.deliver(WsFrame(reject_frame(), self.clock.now_us()))
            return
        session.subscribed.update(private)

    def _check_signature(self, signature: Any) -> None:
        now_ms = self.clock.now_us() // 1000
        if not (isinstance(signature, list) and len(signature) == 4 and all(isinstance(x, str) for x in signature)):
            self.checker.broken("e", f"a private SUBSCRIBE without a four-string signature ({type(signature).__name__})")
            return
        key, sig, ts_text, window_text = signature
        if not (ts_text.isdigit() and window_text.isdigit()):
            self.checker.broken("e", "a private SUBSCRIBE whose signature timestamp or window is not a number")
            return
        ts, window = int(ts_text), int(window_text)
        if not verify(key, signing_string("subscribe", None, ts, window), sig):
            self.checker.broken("e", f"a private SUBSCRIBE signed at {ts} does not verify")
        if abs(now_ms - ts) > window:
            self.checker.broken("e", f"a private SUBSCRIBE signed at {ts} ms is outside its {window} ms window of "
                                     f"now ({now_ms} ms): not freshly signed")
        elif self.last_private_ts is not None and ts <= self.last_private_ts:
            self.checker.broken("e", f"a private SUBSCRIBE reuses timestamp {ts} (the previous one was "
                                     f"{self.last_private_ts}): not freshly signed")
        self.last_private_ts = ts

    def session_over(self, session: ScenarioSession, why: str | None = None) -> None:
        """``session`` is over (either side): check what it subscribed to against the first connection."""
        if session.ended:
            return
        session.ended = True
        for task in session.tasks:
            task.cancel()
        if self.current is session:
            self.current = None
            if not self.ending:
                self.checker.disconnected(why or f"connection {session.number} closed")
        if not self.ending:
            self._verify(session)

    def _verify(self, session: ScenarioSession) -> None:
        """Invariant (e) for a connection after the first: it named the first connection's streams."""
        if session.number == 1 or session.verified:
            return
        session.verified = True
        expected = set(self.connections[0].named)
        private = {s for s in expected if s.startswith("account.")}
        if private and self.rejections >= self.private_attempts:
            expected -= private  # the feed was refused often enough to give them up
        if session.named != expected:
            missing = sorted(expected - session.named)
            extra = sorted(session.named - expected)
            self.checker.broken("e", f"connection {session.number} subscribed to other streams than connection 1: "
                                     f"missing {missing[:5]}, extra {extra[:5]}")

    def _remote_close(self, session: ScenarioSession, code: int | None, reason: str) -> None:
        if not session.alive:
            return
        self.closes.append(code)
        self.session_over(session, f"connection {session.number} closed ({code} {reason})")
        session.remote_close(WsClosed(code, reason))

    async def _watchdog(self, session: ScenarioSession) -> None:
        while session.alive:
            due = session.active_at + self.watchdog_us
            now = self.clock.now_us()
            if now >= due:
                self._remote_close(session, WATCHDOG_CODE, f"watchdog: no data or ping for {self.watchdog_us / 1e6:g} s")
                return
            await self.clock.sleep_us(due - now)

    async def _deaf(self, session: ScenarioSession) -> None:
        await self.clock.sleep_us(round(PING_TIMEOUT_S * 1_000_000))
        self._remote_close(session, DEAF_CODE, "keepalive ping timeout")

    # -- walking the faulted timeline ---------------------------------------------------------------

    async def _handle(self, index: int, event: Any) -> None:
        step: Step = event
        self.position = max(self.position, step.origin)
        session = self.current if self.current is not None and self.current.alive else None
        if step.kind == "frame":
            if step.edit == "reject_private":  # the static model's stand-in: refusals happen on subscribe here
                return
            stream = step.stream
            ok = (not step.lost and session is not None
                  and (stream is None or stream in session.subscribed))
            self.checker.step(index, step, ok)
            if ok:
                self.stats.frames += 1
                receipt = step.receipt if step.receipt is not None else self.clock.now_us()
                session.deliver(WsFrame(step.data, receipt))  # type: ignore[union-attr,arg-type]
        elif step.kind == "ping":
            if session is not None:
                session.control("ping", step.data if isinstance(step.data, bytes) else b"", self.clock.now_us())
        elif step.kind == "close":
            self.checker.step(index, step, False)
            if session is not None:
                self._remote_close(session, step.code, step.reason)
        elif step.kind == "deaf":
            if session is not None:
                session.tasks.append(asyncio.ensure_future(self._deaf(session)))
        if self.checker.violation is not None:
            raise ScenarioStopped(str(self.checker.violation))

    async def _drain(self, stop: asyncio.Event) -> None:
        self.checker.settle_error()
        if self.current is not None and self.current.alive and self.failure is None:
            self._verify(self.current)
        await super()._drain(stop)

    def _end_everything(self) -> None:
        for session in self.connections:
            for task in session.tasks:
                task.cancel()
        super()._end_everything()


def _same(a: str, b: str) -> bool:
    sa, sb = urlsplit(a), urlsplit(b)
    return sa._replace(path=sa.path or "/") == sb._replace(path=sb.path or "/")


__all__ = ["MAX_CONNECTS", "ScenarioSession", "ScenarioStopped", "ScenarioTransport"]
