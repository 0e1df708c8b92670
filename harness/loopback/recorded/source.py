"""RecordingSource: a recording behind the ``MarketSource`` seam, played to each connection on its own.

What a client sees (``docs/serve-recording.md`` says it for users):

* **Per connection, from the start.** Each connection gets the recorded data frames of the streams it
  subscribed to, in recorded order, starting when its SUBSCRIBE for that stream arrives, however late:
  every client sees the same frames (what a conformance harness compares). A frame is due at
  ``subscribe time + (recorded t - stream origin) / speed``; ``speed`` None plays as fast as the
  client reads (a bounded queue, never the slow-consumer close). A second SUBSCRIBE of a playing stream
  changes nothing; UNSUBSCRIBE stops it, and a later SUBSCRIBE starts it again from its start.
* **Private streams** reach the source only after the server accepted a signed subscribe, as always.
* **End of recording**: once the recording's end (its last event) has passed for every stream the
  connection subscribed to and its frames are written, the connection is held ``linger`` seconds (a
  SUBSCRIBE then still starts a stream and postpones the end), then closed with ``1000 End of
  recording``. With ``loop`` it starts again from the start at once instead (sequences repeat: to a
  client, a sequence reset); a lap that sent nothing is not repeated, the connection stays silent.
* **REST**: see ``rest()``; the depth rule is in ``books.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backpack.protocol.wire import DEPTH_LIMITS, MARKET_TYPES
from harness.loopback.market.wire import Emission
from harness.loopback.recorded.books import BookTimeline, Delta, delta_of
from harness.loopback.recorded.session import Frame, RecordedSession, load_session, rest_key
from harness.loopback.source import (
    RestAnswer,
    RestClientError,
    RestNotFound,
    RestParseFailure,
    RestRequest,
    SourceHost,
    Subscriber,
    int_param,
)

log = logging.getLogger(__name__)

END_CODE = 1000
END_REASON = "End of recording"
FAILED_CODE = 1011
DRAIN_EVERY = 64  # frames queued between waits for the socket: bounded memory at any speed
ANSWER_HEADER = "X-Recording-Answer"  # "recorded", "derived" or "rebuilt": where a REST answer came from


@dataclass(slots=True)
class _Cursor:
    name: str
    frames: list[Frame]
    origin: int  # recorded ns of the stream's time zero
    offset: int  # connection time (played ns) at which this subscription started
    end: int  # recorded ns of the recording's end
    index: int = 0

    @property
    def done(self) -> bool:
        return self.index >= len(self.frames)

    @property
    def key(self) -> int:
        return self.frames[self.index].t - self.origin + self.offset

    @property
    def end_key(self) -> int:
        return self.end - self.origin + self.offset


class _Player:
    """The replay on one connection: its subscriptions, its played time, the depth it has been sent."""

    def __init__(self, source: RecordingSource, conn: Any) -> None:
        self.source = source
        self.conn = conn
        self.cursors: dict[str, _Cursor] = {}
        self.played = 0  # recorded ns played on this connection
        self.wall0: float | None = None  # loop.time() when played == 0 (paced replay)
        self.changed = asyncio.Event()
        self.last_u: dict[str, int] = dict(source.resumed_u)  # native symbol -> u of the last depth frame queued
        self.lap = 1
        self.frames_sent = 0
        self.lap_start = 0  # frames_sent when this lap began
        self.ending = False
        self.task: asyncio.Task[None] | None = None

    def now(self) -> int:
        speed = self.source.speed
        if speed is None or self.wall0 is None:
            return self.played
        return max(self.played, int((asyncio.get_running_loop().time() - self.wall0) * 1e9 * speed))

    def add(self, streams: Sequence[str]) -> None:
        new = [s for s in dict.fromkeys(streams) if s not in self.cursors]
        if not new:
            return
        if self.wall0 is None:
            self.wall0 = asyncio.get_running_loop().time()
        at = self.now()
        session = self.source.session
        for stream in new:
            log_ = session.streams.get(stream)
            frames = log_.frames if log_ is not None else []
            origin = log_.origin if log_ is not None else session.origin
            index = self.source.resumed.get(stream, 0)
            offset = at  # from the start: the stream's time zero is now
            if index and index < len(frames):  # resumed: its next frame is due now
                offset = at - (frames[index].t - origin)
            self.cursors[stream] = _Cursor(stream, frames, origin, offset, session.end_t, index)
        self.changed.set()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(
                self._run(), name=f"replay-conn-{self.conn.id}"
            )

    def remove(self, streams: Sequence[str]) -> None:
        for stream in streams:
            self.cursors.pop(stream, None)
        self.changed.set()

    def cancel(self) -> None:
        if self.task is not None and not self.ending:
            self.task.cancel()

    async def _run(self) -> None:
        try:
            await self._play()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must close the connection, not leave the client waiting forever
            log.exception("replay on connection %s failed", self.conn.id)
            self.ending = True
            await self._host.end(self.conn, FAILED_CODE, "Replay failed")

    @property
    def _host(self) -> SourceHost:
        host = self.source.host
        assert host is not None, "a RecordingSource is bound to its server when the server starts"
        return host

    async def _play(self) -> None:
        host, conn = self._host, self.conn
        while conn.open:
            self.changed.clear()
            cursor = self._next()
            if cursor is None:
                if not self.cursors:
                    await self.changed.wait()
                    continue
                end = max(c.end_key for c in self.cursors.values())
                if not await self._until(end):
                    continue
                self.played = max(self.played, end)
                await host.drain(conn)
                if self.source.loop:
                    if self.frames_sent == self.lap_start:  # nothing to repeat: stay silent, do not spin
                        await self.changed.wait()
                        continue
                    self._new_lap()
                    continue
                if not await self._hold():
                    continue
                self.ending = True
                log.info("connection %s: end of recording after %d frames", conn.id, self.frames_sent)
                await host.end(conn, END_CODE, END_REASON)
                return
            key = cursor.key
            if not await self._until(key):
                continue
            frame = cursor.frames[cursor.index]
            cursor.index += 1
            self.played = max(self.played, key)
            depth = None
            if frame.depth is not None:
                symbol, _first, last = frame.depth
                self.last_u[symbol] = last
                depth = (symbol, last)
            host.deliver(conn, cursor.name, frame.text, depth)
            self.frames_sent += 1
            if self.frames_sent % DRAIN_EVERY == 0:
                await host.drain(conn)

    def _next(self) -> _Cursor | None:
        best: _Cursor | None = None
        best_key: tuple[int, int] | None = None
        for cursor in self.cursors.values():
            if cursor.done:
                continue
            k = (cursor.key, cursor.frames[cursor.index].order)
            if best_key is None or k < best_key:
                best, best_key = cursor, k
        return best

    async def _until(self, key: int) -> bool:
        """Wait until played time ``key`` is due; False if the subscriptions changed first (plan again)."""
        speed = self.source.speed
        if speed is None or self.wall0 is None:
            return True
        delay = self.wall0 + key / (1e9 * speed) - asyncio.get_running_loop().time()
        return delay <= 0 or not await self._changed_within(delay)

    async def _hold(self) -> bool:
        linger = self.source.linger
        return linger <= 0 or not await self._changed_within(linger)

    async def _changed_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self.changed.wait()
        except TimeoutError:
            return False
        return True

    def _new_lap(self) -> None:
        self.lap += 1
        self.lap_start = self.frames_sent
        at = self.now()
        for cursor in self.cursors.values():
            cursor.index = 0
            cursor.offset = at
        self.last_u.clear()
        log.info("connection %s: recording lap %d", self.conn.id, self.lap)


class RecordingSource:
    """``MarketSource`` that plays a ``RecordedSession``. ``speed``: recorded time × speed (None, 0 or
    infinity: as fast as the client reads); ``loop``: start again at the end instead of closing;
    ``linger``: seconds a finished connection is held open before its Close; ``resume``: a new connection
    goes on where the last one that closed stopped (what it had been queued counts as sent), as a live
    exchange's stream does, instead of from the start."""

    def __init__(
        self, session: RecordedSession, *, speed: float | None = 1.0, loop: bool = False, linger: float = 1.0,
        resume: bool = False,
    ) -> None:
        if speed is not None and (math.isnan(speed) or speed < 0):
            raise ValueError(f"speed must be a positive number, 0 or None (as fast as possible), not {speed}")
        if not linger >= 0:
            raise ValueError(f"linger must be >= 0 seconds, not {linger}")
        self.session = session
        self.speed = None if speed is None or speed == 0 or math.isinf(speed) else float(speed)
        self.loop = loop
        self.linger = linger
        self.label = f"recording {session.path.name}"
        self.host: SourceHost | None = None
        self._players: dict[int, _Player] = {}
        self.books = _books(session)
        self.resume = resume
        self.resumed: dict[str, int] = {}  # stream -> index of its next frame (resume)
        self.resumed_u: dict[str, int] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str], **kwargs: Any) -> RecordingSource:
        """Load a recording; raises the reader's one-line ``RecordingError`` for what cannot be served."""
        return cls(load_session(path), **kwargs)

    # -- MarketSource ---------------------------------------------------------------------------
    @property
    def steps(self) -> int:
        return 0

    def bind(self, host: SourceHost) -> None:
        self.host = host

    async def close(self) -> None:
        players, self._players = list(self._players.values()), {}
        for player in players:
            if player.task is not None:
                player.task.cancel()
        for player in players:
            if player.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await player.task

    def step(self) -> list[Emission]:
        return []  # paced by the recording, per connection, not by the server's ticker

    def subscribed(self, conn: Subscriber, streams: Sequence[str]) -> list[Emission]:
        player = self._players.get(conn.id)
        if player is None:
            player = self._players[conn.id] = _Player(self, conn)
        player.add(streams)
        return []

    def unsubscribed(self, conn: Subscriber, streams: Sequence[str]) -> None:
        player = self._players.get(conn.id)
        if player is not None:
            player.remove(streams)

    def disconnected(self, conn: Subscriber) -> None:
        player = self._players.pop(conn.id, None)
        if player is not None:
            player.cancel()
            if self.resume:
                self.resumed.update({name: c.index for name, c in player.cursors.items()})
                self.resumed_u.update(player.last_u)

    # -- REST -----------------------------------------------------------------------------------
    def rest(self, request: RestRequest) -> RestAnswer:
        """``depth``: rebuilt (``books.py``). Anything else: the first recorded answer to the same path and
        query parameters, exactly (status, Content-Type, body). Not recorded with that query: ``markets``,
        ``market`` and ``assets`` are derived from the recorded markets list and ``securities`` is empty.
        Otherwise 404 ``Not in the recording: ...``."""
        if request.name == "depth":
            return self._depth(request)
        recorded = self.session.rest.get(
            rest_key("GET", f"/api/v1/{request.name}", list(request.query.items()))
        )
        if recorded is not None:
            return RestAnswer(
                recorded.status, recorded.body, recorded.content_type, {ANSWER_HEADER: "recorded"}
            )
        derived = self._derived(request)
        if derived is not None:
            return derived
        raise RestNotFound(f"Not in the recording: GET {request.path_qs}")

    def high_water(self, symbol: str) -> int | None:
        """The highest ``u`` of ``symbol`` queued to any open connection (None: none yet)."""
        marks = [p.last_u[symbol] for p in self._players.values() if p.conn.open and symbol in p.last_u]
        if not marks and symbol in self.resumed_u:  # between two connections of a resumed stream
            return self.resumed_u[symbol]
        return max(marks) if marks else None

    def _depth(self, request: RestRequest) -> RestAnswer:
        query = request.query
        symbol = query.get("symbol")
        if symbol is None:
            raise RestParseFailure("missing field `symbol`")
        limit = int_param(query, "limit", 1000)
        if limit not in DEPTH_LIMITS:
            raise RestClientError("Invalid limit")
        timeline = self.books.get(symbol)
        if timeline is None:
            recorded = self.session.rest.get(rest_key("GET", "/api/v1/depth", list(query.items())))
            if recorded is not None:
                return RestAnswer(
                    recorded.status, recorded.body, recorded.content_type, {ANSWER_HEADER: "recorded"}
                )
            if self.session.markets is not None and all(
                r.get("symbol") != symbol for r in self.session.markets
            ):
                raise RestClientError("Market not found")
            raise RestNotFound(f"Not in the recording: GET {request.path_qs}")
        mark = self.high_water(symbol)
        point = timeline.at_or_after(mark)
        faults = getattr(self.host, "faults", None)
        shift = faults.take_snapshot_shift() if point is not None and faults is not None else 0
        if shift and point is not None:
            k = timeline.points.index(point)
            point = timeline.points[min(len(timeline.points) - 1, max(0, k + shift))]
        if point is None:
            where = "at all" if not timeline.known else f"at or after sequence {mark}"
            return RestAnswer(
                503,
                f"Service Unavailable: the recording holds no {symbol} order book {where}",
                "text/plain",
                {ANSWER_HEADER: "rebuilt"},
            )
        body = RestAnswer.json(timeline.answer(point, limit))
        return RestAnswer(body.status, body.body, body.content_type, {ANSWER_HEADER: "rebuilt"})

    def _derived(self, request: RestRequest) -> RestAnswer | None:
        rows = self.session.markets
        if rows is None:
            return None
        query = request.query
        if request.name == "markets":
            wanted = query.getall("marketType", [])
            for t in wanted:
                if t not in MARKET_TYPES:
                    expected = ", ".join(f"`{m}`" for m in MARKET_TYPES)
                    raise RestParseFailure(f"marketType: unknown variant `{t}`, expected one of {expected}")
            types = set(wanted) or {"SPOT", "PERP"}
            data: Any = [r for r in rows if r.get("marketType") in types]
        elif request.name == "market":
            symbol = query.get("symbol")
            if symbol is None:
                raise RestParseFailure("missing field `symbol`")
            data = next((r for r in rows if r.get("symbol") == symbol), None)
            if data is None:
                raise RestClientError("Market not found")
        elif request.name == "assets":
            names = [
                a for r in rows for a in (r.get("baseSymbol"), r.get("quoteSymbol")) if isinstance(a, str)
            ]
            data = [
                {"coingeckoId": None, "displayName": a, "symbol": a, "tokens": []}
                for a in dict.fromkeys(names)
            ]
        elif request.name == "securities":
            data = []
        else:
            return None
        return RestAnswer(
            200, json.dumps(data, separators=(",", ":")), "application/json", {ANSWER_HEADER: "derived"}
        )


def _books(session: RecordedSession) -> dict[str, BookTimeline]:
    """One timeline per symbol, from its realtime depth stream (else its first aggregated one)."""
    by_symbol: dict[str, list[str]] = {}
    for name, log_ in session.streams.items():
        for frame in log_.frames:
            if frame.depth is not None:
                by_symbol.setdefault(frame.depth[0], []).append(name)
                break
    out: dict[str, BookTimeline] = {}
    for symbol in sorted(set(by_symbol) | set(session.snapshots)):
        names = sorted(set(by_symbol.get(symbol, [])))
        name = f"depth.{symbol}" if f"depth.{symbol}" in names else (names[0] if names else None)
        deltas: list[Delta] = []
        if name is not None:
            for frame in session.streams[name].frames:
                if frame.depth is not None and frame.depth[0] == symbol:
                    data = json.loads(frame.text)["data"]  # parsed once already: valid JSON object
                    deltas.append(delta_of(data, frame.depth[1], frame.depth[2]))
        out[symbol] = BookTimeline(symbol, deltas, session.snapshots.get(symbol, []))
    return out


__all__ = ["ANSWER_HEADER", "END_CODE", "END_REASON", "RecordingSource"]
