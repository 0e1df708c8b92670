"""A recording read once into what ``serve --recording`` plays: data frames per stream, REST answers, depth.

Rules decided here (``docs/serve-recording.md`` is their user-facing twin):

* A data frame is a received text frame that is a JSON object with a string ``stream`` and an object
  ``data``. Anything else received (error frames, binary or non-JSON frames) answered something the
  recorded client did, not a subscription: it is counted in ``skipped`` and never replayed.
* Several WebSocket connections (a reconnect) make one continuous stream per stream name, in recorded
  order. A frame that is byte-identical to one the same stream already had on an *earlier* connection
  is the overlap of two connections open at once and is dropped (counted in ``overlap``); repeats
  within one connection are kept, they are what that connection saw.
* A stream's time zero (``origin``) is when the recorded client first subscribed to it (its first
  ``ws_send`` SUBSCRIBE naming it), never later than its first frame; a stream the recording never
  subscribed to starts at the recording's first SUBSCRIBE (or first connection).
* REST answers are indexed by method, path and the multiset of query parameters; the first recorded
  answer of each wins. Depth answers (``/api/v1/depth`` with status 200) are also parsed as snapshots
  for the book rebuild (``books.py``).

Damage: the tolerant reader keeps every event before it; ``damage`` says where it stopped.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.recording.format import (
    Event,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    WsOpen,
    WsRecv,
    WsSend,
)
from harness.recording.reader import RecordingDamaged, read_recording
from harness.refbook import Levels, levels, seq, timestamp

RestKey = tuple[str, str, tuple[tuple[str, str], ...]]


def rest_key(method: str, path: str, params: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> RestKey:
    """Order-insensitive: clients build the same query in different orders."""
    return method.upper(), path, tuple(sorted(params))


def recorded_answer(request: HttpRequestEvent, response: HttpResponseEvent) -> tuple[RestKey, RecordedAnswer]:
    """A recorded exchange as its key (the path from ``/api/``: a base URL with a prefix of its own still
    matches ``/api/v1/...``) and the answer a replaying server gives to it."""
    path = urlsplit(request.url).path or "/"
    if "/api/" in path:
        path = path[path.index("/api/") :]
    ctype = next((v for k, v in response.headers.items() if k.lower() == "content-type"), None)
    return rest_key(request.method, path, request.params), RecordedAnswer(response.status, ctype, response.body)


@dataclass(frozen=True, slots=True)
class Frame:
    t: int  # ns since the recording started
    order: int  # position among all data frames: breaks ties between streams
    text: str  # exactly as received
    depth: tuple[str, int, int] | None = None  # (symbol, U, u) of a depth frame


@dataclass(slots=True)
class StreamLog:
    name: str
    origin: int
    frames: list[Frame] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RecordedAnswer:
    status: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A recorded REST depth answer; levels keep their wire text (``Spelled``)."""

    t: int
    last_update_id: int
    bids: Levels
    asks: Levels
    timestamp: int | None


@dataclass(slots=True)
class RecordedSession:
    path: Path
    header: Header
    damage: RecordingDamaged | None
    complete: bool
    streams: dict[str, StreamLog]
    rest: dict[RestKey, RecordedAnswer]
    snapshots: dict[str, list[Snapshot]]  # native symbol -> depth answers in recorded order
    markets: list[dict[str, Any]] | None  # the first recorded /api/v1/markets list
    origin: int
    end_t: int
    connections: int
    overlap: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def frames(self) -> int:
        return sum(len(s.frames) for s in self.streams.values())

    def describe(self) -> str:
        """One line for ``serve`` to print."""
        rest = len(self.rest)
        span = self.end_t / 1e9
        parts = [
            f"{self.frames} data frames on {len(self.streams)} streams",
            f"{rest} REST answers",
            f"{span:.3f} s",
            f"{self.connections} connection{'s' if self.connections != 1 else ''}",
        ]
        if self.overlap:
            parts.append(f"{self.overlap} overlapping frames dropped")
        if self.skipped:
            parts.append(f"{sum(self.skipped.values())} non-data frames not replayed")
        return ", ".join(parts)


def load_session(path: str | os.PathLike[str]) -> RecordedSession:
    """Read and index a recording. Header, version and open errors raise ``RecordingError`` subclasses
    (one-line messages); damage later in the file is kept in ``damage`` with everything before it."""
    recording = read_recording(path)
    return index_events(Path(path), recording.header, recording.events, recording.damage, recording.complete)


def index_events(
    path: Path,
    header: Header,
    events: list[Event],
    damage: RecordingDamaged | None = None,
    complete: bool = True,
) -> RecordedSession:
    streams: dict[str, StreamLog] = {}
    first_conn: dict[tuple[str, str], str] = {}  # (stream, text) -> the connection that first had it
    subscribed_at: dict[str, int] = {}
    requests: dict[str, HttpRequestEvent] = {}
    rest: dict[RestKey, RecordedAnswer] = {}
    snapshots: dict[str, list[Snapshot]] = {}
    markets: list[dict[str, Any]] | None = None
    skipped: Counter[str] = Counter()
    overlap = 0
    order = 0
    first_open: int | None = None
    first_subscribe: int | None = None
    connections = 0
    for event in events:
        if isinstance(event, WsRecv):
            parsed = _data_frame(event.data)
            if isinstance(parsed, str):
                skipped[parsed] += 1
                continue
            stream, data = parsed
            text = event.data
            assert isinstance(text, str)
            seen = first_conn.setdefault((stream, text), event.conn)
            if seen != event.conn:
                overlap += 1
                continue
            log = streams.get(stream)
            if log is None:
                log = streams[stream] = StreamLog(stream, -1)
            log.frames.append(Frame(event.t, order, text, _depth_ids(stream, data)))
            order += 1
        elif isinstance(event, WsSend):
            for stream in _subscribed(event.data):
                subscribed_at.setdefault(stream, event.t)
                if first_subscribe is None:
                    first_subscribe = event.t
        elif isinstance(event, WsOpen):
            connections += 1
            if first_open is None:
                first_open = event.t
        elif isinstance(event, HttpRequestEvent):
            requests[event.conn] = event
        elif isinstance(event, HttpResponseEvent):
            request = requests.pop(event.conn, None)
            if request is None:
                continue
            key, answer = recorded_answer(request, event)
            url_path = key[1]
            rest.setdefault(key, answer)
            if event.status == 200 and url_path.endswith("/api/v1/depth"):
                symbol = next((v for k, v in request.params if k == "symbol"), None)
                snapshot = _snapshot(event.t, event.body)
                if symbol is not None and snapshot is not None:
                    snapshots.setdefault(symbol, []).append(snapshot)
            elif markets is None and event.status == 200 and url_path.endswith("/api/v1/markets"):
                markets = _market_rows(event.body)
    origin = first_subscribe if first_subscribe is not None else (first_open if first_open is not None else 0)
    for log in streams.values():
        start = subscribed_at.get(log.name, origin)
        log.origin = min(start, log.frames[0].t) if log.frames else start
    end_t = events[-1].t if events else 0
    return RecordedSession(
        path,
        header,
        damage,
        complete,
        streams,
        rest,
        snapshots,
        markets,
        min(origin, end_t),
        end_t,
        connections,
        overlap,
        skipped,
    )


def stream_origin(session: RecordedSession, stream: str) -> int:
    log = session.streams.get(stream)
    return log.origin if log is not None else session.origin


def _data_frame(data: str | bytes) -> tuple[str, dict[str, Any]] | str:
    """``(stream, data)`` of a data frame, or the reason it is not one (a ``skipped`` key)."""
    if isinstance(data, bytes):
        return "binary"
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return "not json"
    if not isinstance(obj, dict):
        return "not an object"
    stream, payload = obj.get("stream"), obj.get("data")
    if not isinstance(stream, str) or not stream or not isinstance(payload, dict):
        return "error" if "error" in obj else "no stream"
    return stream, payload


def _depth_ids(stream: str, data: dict[str, Any]) -> tuple[str, int, int] | None:
    if not stream.startswith("depth.") or data.get("e") != "depth":
        return None
    symbol, first, last = data.get("s"), seq(data.get("U")), seq(data.get("u"))
    if not isinstance(symbol, str) or first is None or last is None or first > last:
        return None
    return symbol, first, last


def _subscribed(data: str | bytes) -> list[str]:
    if isinstance(data, bytes):
        return []
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return []
    if (
        not isinstance(obj, dict)
        or obj.get("method") != "SUBSCRIBE"
        or not isinstance(obj.get("params"), list)
    ):
        return []
    return [p for p in obj["params"] if isinstance(p, str)]


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _snapshot(t: int, body: bytes) -> Snapshot | None:
    obj = _json_body(body)
    if not isinstance(obj, dict):
        return None
    last = seq(obj.get("lastUpdateId"))
    bids, asks = levels(obj.get("bids"), spelled=True), levels(obj.get("asks"), spelled=True)
    if last is None or bids is None or asks is None:
        return None
    return Snapshot(t, last, bids, asks, timestamp(obj.get("timestamp")))


def _market_rows(body: bytes) -> list[dict[str, Any]] | None:
    rows = _json_body(body)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return None
    return rows


__all__ = [
    "Frame",
    "RecordedAnswer",
    "RecordedSession",
    "Snapshot",
    "StreamLog",
    "index_events",
    "load_session",
    "recorded_answer",
    "rest_key",
    "stream_origin",
]
