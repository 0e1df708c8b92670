"""The core replay: a recording's frames through ``Router`` + ``Normalizer`` directly, no feed, no asyncio.

A full replay (``harness.replay``) runs the real ``BackpackFeed`` on virtual time and costs about 150 µs a
frame; bisecting a million frames or testing hundreds of shrink candidates needs the protocol core alone.
What the feed does around the core is small and modelled here, so the lines are the ones the full replay
prints, in the same order (tests/test_bisect_core.py pins that on the fixture library):

* a ``ws_recv`` frame goes to ``Router.receive_frame`` with its recorded receipt;
* a ``FetchSnapshot`` takes the next recorded depth exchange of that symbol, as vcrpy plays the first
  unplayed matching interaction, and its 2xx answer goes to ``Router.receive_snapshot`` when the timeline
  reaches the answer (at once if it already passed); one fetch per symbol at a time, as the feed's
  snapshot task allows; recorded exchanges nobody asks for are never used;
* an answer that is not 2xx (or a failed request) is retried on the next recorded exchange when the REST
  client would retry it (``backpack.errors.error_from_response``, ``rest_retries``), else the fetch fails
  (``Router.snapshot_failed``), as the feed's snapshot task does;
* a connection that breaks (closed by the exchange, or a failed recv/send) resets every book
  (``Router.connection_lost``) once the feed has closed it: at the recorded close, else at once.

What it does not model raises ``CoreUnsupported`` naming it (the REST circuit breaker opening on a run
of failed snapshots): the caller then replays the full feed.

Every line comes with its provenance: the index of the timeline event being handled when it was produced.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from backpack.errors import RateLimited, error_from_response
from backpack.feed import BackpackFeed
from backpack.protocol.events import FetchSnapshot
from backpack.protocol.normalized import DEFAULT_DEPTH, Normalizer
from backpack.protocol.router import Router, accepted
from harness.recording.format import (
    Event,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    TransportErrorEvent,
    WsClose,
    WsRecv,
)
from harness.recording.reader import Recording

DEPTH_PATH = "/api/v1/depth"
_LOOKAHEAD = 64  # events looked at past a broken connection for the feed's close of it


class CoreUnsupported(Exception):
    """The recording has something the core replay does not model; replay the full feed instead."""


@dataclass(slots=True)
class _Exchange:
    conn: str
    symbol: str
    request: int
    answer: HttpResponseEvent | TransportErrorEvent | None = None
    answer_index: int | None = None


@dataclass(slots=True)
class CoreStats:
    events: int = 0
    frames: int = 0
    lines: int = 0
    snapshots: int = 0
    used: set[str] = field(default_factory=set)  # conn ids of the depth exchanges the core asked for
    wanted_unanswered: int = 0  # fetches the recording had no exchange left for


def feed_for(header: Header) -> BackpackFeed:
    """The feed a full replay would build (never run): its subscription filter and REST settings."""
    from harness.replay import feed_spec, throwaway_keys

    spec = feed_spec(header, ())
    section: dict[str, Any] = {}
    if spec.private:
        section["private_key"], section["api_key"] = throwaway_keys()
    return BackpackFeed(subscription=spec.subscription, candle_interval=spec.candle_interval,
                        backpack_config=section, config={"log": {"disabled": True}})


def router_for(header: Header) -> Router:
    """A Router configured as the replayed feed's (its subscription filter, from the header)."""
    return Router(accept=accepted(feed_for(header).subscription))


def _depth_symbol(event: HttpRequestEvent) -> str | None:
    if event.method != "GET" or urlsplit(event.url).path.rstrip("/") != DEPTH_PATH:
        return None
    return next((v for k, v in event.params if k == "symbol"), None)


class CoreReplay:
    """Drive with ``run(events)``; it yields ``(line, event_index)`` as the full replay would print lines."""

    def __init__(self, header: Header, *, depth: int | None = DEFAULT_DEPTH, lines: bool = True) -> None:
        """``lines=False`` drives the Router alone (which snapshots get used, nothing printed): cheaper."""
        self.header = header
        self.lines = lines
        feed = feed_for(header)
        self.router = Router(accept=accepted(feed.subscription))
        self.retries = feed.bp_config.rest_retries
        self.breaker_threshold = feed.bp_config.breaker_threshold
        self.retry_after_max = 60.0  # backpack.rest.RestClient's default
        self.normalizer = Normalizer.for_router(self.router, depth=depth)
        self.stats = CoreStats()
        self._exchanges: dict[str, _Exchange] = {}  # by conn
        self._queue: dict[str, deque[_Exchange]] = {}  # per symbol, unplayed, in request order
        self._asked: dict[str, _Exchange | None] = {}  # symbol -> the exchange its fetch got (None: none yet)
        self._tries: dict[str, int] = {}  # symbol -> retries its running fetch has made
        self._failures = 0  # logical snapshot fetches failed in a row (the REST breaker counts them)
        self._broken: dict[str, int] = {}  # conn -> index of the event that broke it (reset pending)

    # -- driving -----------------------------------------------------------------------------------

    def run(self, events: Iterable[Event], start: int = 0) -> Iterator[tuple[str, int]]:
        pending: deque[Event] = deque()
        source = iter(events)
        index = start
        while True:
            if pending:
                event = pending.popleft()
            else:
                event = next(source, None)
                if event is None:
                    return
            if self._broken:
                # the feed resets its books only after its close() returns: find out whether the
                # recording has that close ahead (then the reset happens there) or not (now)
                while len(pending) < _LOOKAHEAD:
                    nxt = next(source, None)
                    if nxt is None:
                        break
                    pending.append(nxt)
                yield from self._resets(index, event, pending)
            yield from self.handle(index, event)
            index += 1

    def handle(self, index: int, event: Event) -> Iterator[tuple[str, int]]:
        self.stats.events += 1
        cls = type(event)
        if cls is WsRecv:
            self.stats.frames += 1
            yield from self._emit(self.router.receive_frame(event.data, event.receipt), index)  # type: ignore[union-attr]
        elif cls is HttpRequestEvent:
            symbol = _depth_symbol(event)  # type: ignore[arg-type]
            if symbol is not None:
                ex = self._exchanges[event.conn] = _Exchange(event.conn, symbol, index)  # type: ignore[union-attr]
                if symbol in self._asked and self._asked[symbol] is None:
                    self._asked[symbol] = ex  # a fetch was waiting for a recorded exchange of this symbol
                else:
                    self._queue.setdefault(symbol, deque()).append(ex)
        elif cls is HttpResponseEvent:
            ex = self._exchanges.get(event.conn)  # type: ignore[union-attr]
            if ex is not None:
                ex.answer, ex.answer_index = event, index  # type: ignore[assignment]
                if self._asked.get(ex.symbol) is ex:
                    yield from self._answer(ex, index)
        elif cls is TransportErrorEvent:
            ex = self._exchanges.get(event.conn) if event.op == "request" else None  # type: ignore[union-attr, arg-type]
            if ex is not None:
                ex.answer, ex.answer_index = event, index  # type: ignore[assignment]
                if self._asked.get(ex.symbol) is ex:
                    yield from self._answer(ex, index)
            elif event.op in ("recv", "send") and event.conn is not None:  # type: ignore[union-attr]
                self._broken.setdefault(event.conn, index)  # type: ignore[union-attr]
        elif cls is WsClose and event.via in ("recv", "send"):  # type: ignore[union-attr]
            self._broken.setdefault(event.conn, index)  # type: ignore[union-attr]

    def _resets(self, index: int, event: Event, ahead: Sequence[Event]) -> Iterator[tuple[str, int]]:
        """Reset books for broken connections whose feed-side close is this event or not ahead at all."""
        for conn, broke in list(self._broken.items()):
            if broke == index:
                continue  # broken by this very event: decided at the next one
            if _closes(event, conn) or not any(_closes(e, conn) for e in ahead):
                del self._broken[conn]
                at = index if _closes(event, conn) else broke
                yield from self._emit(self.router.connection_lost(), at)

    def finish(self) -> Iterator[tuple[str, int]]:
        """After the last event: resets still pending (the recording ends right after a break)."""
        for conn, broke in list(self._broken.items()):
            del self._broken[conn]
            yield from self._emit(self.router.connection_lost(), broke)

    # -- outputs -----------------------------------------------------------------------------------

    def _emit(self, outputs: list[Any], index: int) -> Iterator[tuple[str, int]]:
        if not outputs:
            return
        if self.lines:
            for line in self.normalizer.lines(outputs):
                self.stats.lines += 1
                yield line, index
        for out in outputs:
            if type(out) is FetchSnapshot:
                yield from self._fetch(out.symbol, index)

    def _fetch(self, symbol: str, index: int) -> Iterator[tuple[str, int]]:
        if symbol in self._asked:
            return  # the feed's snapshot task for this symbol is still running
        self._tries[symbol] = 0
        yield from self._try(symbol, index)

    def _try(self, symbol: str, index: int) -> Iterator[tuple[str, int]]:
        queue = self._queue.get(symbol)
        ex = queue.popleft() if queue else None
        self._asked[symbol] = ex
        if ex is None:
            self.stats.wanted_unanswered += 1
        elif ex.answer is not None:
            yield from self._answer(ex, index)

    def _answer(self, ex: _Exchange, index: int) -> Iterator[tuple[str, int]]:
        answer = ex.answer
        assert answer is not None
        symbol = ex.symbol
        del self._asked[symbol]
        self.stats.used.add(ex.conn)
        if isinstance(answer, HttpResponseEvent) and 200 <= answer.status < 300:
            data: Any = None
            if answer.body.strip():
                try:
                    data = orjson.loads(answer.body)
                except orjson.JSONDecodeError:
                    ctype = next((v for k, v in answer.headers.items() if k.lower() == "content-type"), "")
                    if "json" in ctype.lower():
                        yield from self._failed(symbol, index, retryable=False)  # the client's DecodeError
                        return
                    data = answer.body.decode("utf-8", "replace")
            self._failures = 0
            self.stats.snapshots += 1
            yield from self._emit(self.router.receive_snapshot(symbol, data, answer.receipt), index)
            return
        if isinstance(answer, HttpResponseEvent):
            err = error_from_response(answer.status, answer.headers, answer.body)
            retry = err.retryable and not (isinstance(err, RateLimited) and err.retry_after is not None
                                           and err.retry_after > self.retry_after_max)
        else:
            retry = True  # a TransportError on an idempotent GET is retried
        if retry and self._tries[symbol] < self.retries:
            self._tries[symbol] += 1
            yield from self._try(symbol, index)
            return
        yield from self._failed(symbol, index, retryable=retry)

    def _failed(self, symbol: str, index: int, *, retryable: bool) -> Iterator[tuple[str, int]]:
        """The feed's snapshot task failed: the book asks again (attempt + 1)."""
        if retryable:
            self._failures += 1
            if self._failures >= self.breaker_threshold:
                raise CoreUnsupported(f"{self._failures} snapshot fetches failed in a row by event {index + 1}: the "
                                      "REST circuit breaker that opens then is not modelled")
        else:
            self._failures = 0  # the exchange answered: the breaker counts it as a success
        yield from self._emit(self.router.snapshot_failed(symbol), index)


def _closes(event: Event, conn: str) -> bool:
    """The feed's own close of ``conn`` (what its ``close()`` waits for in a replay)."""
    if isinstance(event, WsClose):
        return event.via == "close" and event.conn == conn
    return isinstance(event, TransportErrorEvent) and event.op == "close" and event.conn == conn


def core_lines(recording: str | os.PathLike[str] | Recording, *, depth: int | None = DEFAULT_DEPTH
               ) -> Iterator[tuple[str, int]]:
    """Every ``(line, event_index)`` of a core replay; a path is streamed (``harness.bisect.timeline``)."""
    if isinstance(recording, Recording):
        header, events = recording.header, iter(recording.events)
    else:
        from .timeline import Timeline

        timeline = Timeline(recording)
        header, events = timeline.header, timeline.events()
    core = CoreReplay(header, depth=depth)
    yield from core.run(events)
    yield from core.finish()


__all__ = ["CoreReplay", "CoreStats", "CoreUnsupported", "core_lines", "router_for"]
