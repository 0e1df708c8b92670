"""RecordingTransport: wraps any Transport and writes everything that crosses the seam to a recording.

The wrapped transport does the work; this one only watches. Every call returns what the inner call
returned (the same ``HttpResponse`` and ``WsFrame`` objects, so the same receipts) and raises what it
raised (the same exception object, re-raised), so a feed behaves identically with and without a
recorder. What it writes, in the order it happens on the event loop:

* ``http_request`` before the inner request starts, then ``http_response`` or ``transport_error``
  (a cancelled request writes nothing more: it never completed); requests are ``http-1``, ``http-2``...
* ``ws_open`` after a successful connect (a failed one: ``transport_error`` with ``c`` null), using the
  inner session's ``id``;
* ``ws_send`` after a send returned, ``ws_recv`` (with the inner receipt) when recv returns a frame;
* ``ws_close``: ``via="close"`` when the feed's close() returned, ``via="recv"``/``"send"`` the first time
  that call raised ``WsClosed`` on the connection (later repeats say nothing new and are not written);
* ``ws_ping`` (with payload and receipt) for each protocol Ping, and ``ws_pong`` for its answer, as the
  inner session reports them through ``observe_control``; an inner session without that hook only
  counts Pings (``pings_received``), and then each is written at the next send/recv/close, unreceipted;
* ``transport_error`` for any other exception from request/connect/send/recv/close.

A recorder that cannot write (disk full, writer closed under it) must not take the feed down: it logs
once, stops recording (so the file stays a clean prefix) and keeps ``failure`` for the owner to check.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from backpack.clock import Clock
from backpack.transport import (
    ControlListener,
    HttpRequest,
    HttpResponse,
    Transport,
    WsClosed,
    WsFrame,
    WsSession,
)
from harness.recording.format import (
    Event,
    HttpRequestEvent,
    HttpResponseEvent,
    TransportErrorEvent,
    WsClose,
    WsOpen,
    WsPing,
    WsPong,
    WsSend,
)
from harness.recording.writer import RecordingWriter

log = logging.getLogger(__name__)

_DEFAULT: Any = object()  # "argument not given": the inner transport's own default then applies


class RecordingTransport:
    """``Transport`` that records ``inner`` into ``writer``; ``close_writer`` closes the file on close()."""

    def __init__(self, inner: Transport, writer: RecordingWriter, *, close_writer: bool = False) -> None:
        self.inner = inner
        self.writer = writer
        self.close_writer = close_writer
        self.failure: BaseException | None = None
        self._http_ids = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"RecordingTransport({self.inner!r}, {self.writer!r})"

    # -- recording ------------------------------------------------------------------------------

    def _t(self) -> int:
        return self.writer.now_ns()

    def record(self, event: Event) -> None:
        """Write one event; never raises (see the module docstring)."""
        self._write(self.writer.write, event)

    def record_recv(self, conn: str, data: str | bytes, receipt: int) -> None:
        """``record(WsRecv(...))`` by the writer's per-frame path (no event object): one call per frame."""
        self._write(self.writer.write_recv, conn, data, receipt)

    def _write(self, write: Any, *args: Any) -> None:
        if self.failure is not None:
            return
        try:
            write(*args)
        except Exception as exc:  # noqa: BLE001 - the feed must keep running without its recorder
            self._stopped(exc)
            return
        if self._timer is None and self.writer.pending:
            self._arm()

    def _stopped(self, exc: Exception) -> None:
        self.failure = exc
        log.error("recording to %s stopped after %d events: %s: %s",
                  self.writer.path.name, self.writer.events, type(exc).__name__, exc)

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # recorded from outside a loop: the next write or close() flushes
            return
        self._timer = loop.call_later(self.writer.block_ns / 1e9, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        if self.failure is not None or self.writer.closed:
            return
        try:
            self.writer.flush()
        except Exception as exc:  # noqa: BLE001
            self.failure = exc
            log.error("recording to %s stopped: %s: %s", self.writer.path.name, type(exc).__name__, exc)

    def _error(self, conn: str | None, op: str, exc: BaseException, url: str | None = None) -> None:
        self.record(TransportErrorEvent(self._t(), conn, op, type(exc).__name__, str(exc), url))

    # -- Transport ------------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    async def request(self, request: HttpRequest, *, timeout: float = _DEFAULT) -> HttpResponse:
        conn = f"http-{next(self._http_ids)}"
        self.record(HttpRequestEvent(self._t(), conn, request.method, request.url, tuple(request.params),
                                     dict(request.headers), request.body))
        try:
            if timeout is _DEFAULT:
                response = await self.inner.request(request)
            else:
                response = await self.inner.request(request, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error(conn, "request", exc, request.url)
            raise
        self.record(HttpResponseEvent(self._t(), conn, response.status, dict(response.headers), response.body,
                                      response.receipt))
        return response

    async def connect(self, url: str, *, timeout: float | None = _DEFAULT) -> RecordingWsSession:
        try:
            if timeout is _DEFAULT:
                session = await self.inner.connect(url)
            else:
                session = await self.inner.connect(url, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._error(None, "connect", exc, url)
            raise
        self.record(WsOpen(self._t(), session.id, session.url))
        return RecordingWsSession(session, self)

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.failure is None and not self.writer.closed:
                try:
                    if self.close_writer:
                        self.writer.close()
                    else:
                        self.writer.flush()
                except Exception as exc:  # noqa: BLE001
                    self.failure = exc
                    log.error("recording to %s failed on close: %s: %s",
                              self.writer.path.name, type(exc).__name__, exc)


class RecordingWsSession:
    """A ``WsSession`` that records its inner session; anything else is looked up on the inner one."""

    def __init__(self, inner: WsSession, owner: RecordingTransport) -> None:
        self.inner = inner
        self.id = inner.id
        self.url = inner.url
        self._owner = owner
        self._pings_seen = inner.pings_received
        self._close_written = False  # a WsClosed from recv/send was written
        self._local_close_written = False
        self._listener: ControlListener | None = None
        observe = getattr(inner, "observe_control", None)
        self._observed = callable(observe)
        if self._observed:
            observe(self._on_control)

    def __repr__(self) -> str:
        return f"RecordingWsSession({self.inner!r})"

    def __getattr__(self, name: str) -> Any:  # extras such as ``extensions`` or ``wait_closed``
        if name == "inner":  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _on_control(self, kind: str, payload: bytes, receipt: int) -> None:
        owner = self._owner
        event = WsPing if kind == "ping" else WsPong
        owner.record(event(owner._t(), self.id, payload, receipt))
        if self._listener is not None:
            self._listener(kind, payload, receipt)

    def observe_control(self, listener: ControlListener | None) -> None:
        self._listener = listener

    def _pings(self) -> None:
        if self._observed:  # written as they happened
            return
        try:
            seen = self.inner.pings_received
        except Exception:  # noqa: BLE001 - a counter that cannot be read is no reason to fail the call
            return
        owner = self._owner
        while self._pings_seen < seen:
            self._pings_seen += 1
            owner.record(WsPing(owner._t(), self.id))

    def _closed(self, exc: WsClosed, via: str) -> None:
        if not self._close_written:
            self._close_written = True
            self._owner.record(WsClose(self._owner._t(), self.id, exc.code, exc.reason, via))

    async def send(self, text: str) -> None:
        self._pings()
        try:
            await self.inner.send(text)
        except asyncio.CancelledError:
            raise
        except WsClosed as exc:
            self._closed(exc, "send")
            raise
        except Exception as exc:
            self._owner._error(self.id, "send", exc)
            raise
        self._owner.record(WsSend(self._owner._t(), self.id, text))

    async def recv(self) -> WsFrame:
        try:
            frame = await self.inner.recv()
        except asyncio.CancelledError:
            self._pings()
            raise
        except WsClosed as exc:
            self._pings()
            self._closed(exc, "recv")
            raise
        except Exception as exc:
            self._pings()
            self._owner._error(self.id, "recv", exc)
            raise
        if not self._observed:
            self._pings()
        self._owner.record_recv(self.id, frame.data, frame.receipt)
        return frame

    async def close(self, code: int = _DEFAULT, reason: str = _DEFAULT) -> None:
        args: dict[str, Any] = {}
        if code is not _DEFAULT:
            args["code"] = code
        if reason is not _DEFAULT:
            args["reason"] = reason
        self._pings()
        try:
            await self.inner.close(**args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._owner._error(self.id, "close", exc)
            raise
        if not self._local_close_written:
            self._local_close_written = True
            self._owner.record(WsClose(self._owner._t(), self.id, args.get("code", 1000), args.get("reason", ""),
                                       "close"))

    @property
    def pings_received(self) -> int:
        return self.inner.pings_received

    @property
    def last_activity(self) -> int:
        return self.inner.last_activity


__all__ = ["RecordingTransport", "RecordingWsSession"]
