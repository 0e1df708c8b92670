"""The timeline a replay walks: an index made in one pass, and the events, in memory or streamed again.

Why two passes over a file: before the first event the walker needs a few facts about the whole
recording (how many events, where the input ends, every connection attempt, which sockets break, the
REST half for the vcrpy cassette, what the feed subscribed), but a long recording is mostly WebSocket
frames, and those it needs one at a time. So a file is read once to build the index, keeping only the
events that are not frames, pings or pongs, and read again while the walker plays it, holding a short
window of events (``StreamedEvents``): memory no longer grows with the recording. A ``Recording`` (or
any event list, as fault scenarios build) is indexed the same way and walked from its list.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

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
)
from harness.recording.reader import Recording, RecordingDamaged, RecordingError, RecordingReader

WINDOW = 16
"""Events a streamed timeline keeps behind the one asked for last (error messages name recent events)."""


@dataclass(slots=True)
class TimelineIndex:
    """What the walker needs about the whole timeline up front; small next to the frames."""

    count: int = 0
    frames: int = 0  # ws_recv events
    stop_index: int = 0  # how many leading events are input (the rest shows the recorded feed being stopped)
    inferred_base_us: int | None = None  # µs of t = 0 from the first receipt (when the header has no start_us)
    connects: dict[int, Any] = field(default_factory=dict)  # index -> ws_open / connect error, in order
    closes: dict[str, list[int]] = field(default_factory=dict)  # conn -> indices of the feed's closes
    broken_at: dict[str, int] = field(default_factory=dict)  # conn -> first event where the exchange broke it
    rest: list[tuple[int, Event]] = field(default_factory=list)  # the REST half, with timeline indices
    structure: list[Event] = field(default_factory=list)  # every event but frames, pings and pongs


def index_events(events: Iterable[Any], until_t: int | None) -> TimelineIndex:
    """One pass over ``events`` (a stream is fine): the ``TimelineIndex``; ``until_t`` cuts the input."""
    index = TimelineIndex()
    answered: set[Any] = set()
    broken: set[Any] = set()
    requests: list[tuple[int, Any]] = []  # input requests: input only when their answer is recorded
    last = -1
    cut = False
    count = 0
    for i, e in enumerate(events):
        count = i + 1
        if index.inferred_base_us is None:
            receipt = getattr(e, "receipt", None)
            if type(receipt) is int:
                index.inferred_base_us = max(0, receipt - e.t // 1000)
        if type(e) is WsRecv:  # most events: what the branches below make of a frame, in short
            index.frames += 1
            if cut or (until_t is not None and e.t >= until_t):
                cut = True
            else:
                last = i
            continue
        if isinstance(e, WsRecv):
            index.frames += 1
        elif isinstance(e, WsPing | WsPong):
            pass
        else:
            index.structure.append(e)
            if isinstance(e, HttpRequestEvent | HttpResponseEvent | TransportErrorEvent):
                index.rest.append((i, e))
            if isinstance(e, HttpResponseEvent) or (isinstance(e, TransportErrorEvent) and e.op == "request"):
                answered.add(e.conn)
            if isinstance(e, WsOpen) or (isinstance(e, TransportErrorEvent) and e.op == "connect"):
                index.connects[i] = e
            if (isinstance(e, WsClose) and e.via == "close") or (
                    isinstance(e, TransportErrorEvent) and e.op == "close" and e.conn is not None):
                index.closes.setdefault(e.conn, []).append(i)  # type: ignore[arg-type]
            if ((isinstance(e, WsClose) and e.via in ("recv", "send")) or (
                    isinstance(e, TransportErrorEvent) and e.op in ("recv", "send"))) and e.conn is not None:
                index.broken_at.setdefault(e.conn, i)
        if cut or (until_t is not None and e.t >= until_t):
            cut = True
            continue
        conn = getattr(e, "conn", None)
        if (isinstance(e, WsClose) and e.via in ("recv", "send")) or (
                isinstance(e, TransportErrorEvent) and e.op in ("recv", "send")):
            broken.add(conn)
        if isinstance(e, RecordingEnd | UnknownEvent | WsPong):
            continue
        if ((isinstance(e, WsClose) and e.via == "close") or (
                isinstance(e, TransportErrorEvent) and e.op == "close")) and conn not in broken:
            continue  # the recorded feed closing a healthy socket: it was being stopped
        if isinstance(e, HttpRequestEvent):
            requests.append((i, e.conn))  # cancelled by the stop unless it was answered
            continue
        last = i
    for i, conn in requests:
        if conn in answered and i > last:
            last = i
    index.count = count
    index.stop_index = last + 1
    return index


class TimelineChanged(RecordingError):
    """The file no longer holds the events its index was made from (rewritten during the replay)."""


class StreamedEvents(Sequence[Event]):
    """``events[i]`` of a recording file, read again in order, holding a short window of events.

    The walker asks for events in order (and for the one after the current, to name it); indexed
    connection attempts are answered from the index at any time. An event older than the window is
    gone: asking for it raises ``IndexError``. ``peak`` is the most events this held at once.
    """

    def __init__(self, path: str | os.PathLike[str], index: TimelineIndex, *, window: int = WINDOW) -> None:
        self._path = os.fspath(path)
        self._reader = RecordingReader(path)
        self._stream: Iterator[Event] = self._reader.events(tolerant=True)
        self._count = index.count
        self._pinned = index.connects
        self._window: deque[Event] = deque()
        self._first = 0  # index of _window[0]
        self._keep = max(2, window)
        self.peak = 0

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, i: Any) -> Any:
        if not isinstance(i, int):
            raise TypeError("a streamed timeline is indexed by int, one event at a time")
        pinned = self._pinned.get(i)
        if pinned is not None:
            return pinned
        if not 0 <= i < self._count:
            raise IndexError(f"event {i} is outside the recording's {self._count} events")
        while self._first + len(self._window) <= i:
            event = next(self._stream, None)
            if event is None:
                raise TimelineChanged(f"{self._path}: the file ended after {self._first + len(self._window)} "
                                      f"events, but it had {self._count} when the replay began")
            self._window.append(event)
            if self._first + len(self._window) == self._count:
                self._reader.close()  # the last event: nothing more to read, whoever forgets close()
            if len(self._window) > self._keep:
                self._window.popleft()
                self._first += 1
            self.peak = max(self.peak, len(self._window))
        if i < self._first:
            raise IndexError(f"event {i} is behind the replay's window (events {self._first}..)")
        return self._window[i - self._first]

    def __iter__(self) -> Iterator[Event]:
        raise TypeError("a streamed timeline is walked by index (iterating would read the file again)")

    def close(self) -> None:
        self._reader.close()


@dataclass(slots=True)
class ReplayTimeline:
    """Header, events (a list, or ``StreamedEvents`` for a file), damage and index of one replay input."""

    name: str
    header: Header
    events: Sequence[Any]
    damage: RecordingDamaged | None
    index: TimelineIndex
    until_t: int | None

    @classmethod
    def scan(cls, path: str | os.PathLike[str], until_t: int | None = None) -> ReplayTimeline:
        """Index the file in one streaming pass; its events are streamed again as the replay walks them."""
        reader = RecordingReader(path)
        try:
            index = index_events(reader.events(tolerant=True), until_t)
        finally:
            reader.close()
        return cls(os.fspath(path), reader.header, StreamedEvents(path, index), reader.damage, index, until_t)

    @classmethod
    def of(cls, recording: Recording, until_t: int | None = None, name: str = "recording") -> ReplayTimeline:
        """A timeline walked from memory (what fault scenarios build: edited steps in a list)."""
        events = list(recording.events)
        return cls(name, recording.header, events, recording.damage, index_events(events, until_t), until_t)

    def close(self) -> None:
        if isinstance(self.events, StreamedEvents):
            self.events.close()


__all__ = ["WINDOW", "ReplayTimeline", "StreamedEvents", "TimelineChanged", "TimelineIndex", "index_events"]
