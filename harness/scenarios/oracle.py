"""The reference: what a clean recording says the truth was, frame by frame and sequence by sequence.

Fault scenarios need ground truth that does not come from the code under test, so this module reads
the recording itself with the harness's own parser and reference book (``harness.refbook``, never
``backpack.protocol``):

* **Frames.** Every received WebSocket frame of the recording, classified once (data, error, ack or
  invalid), with its stream, and for depth and trade frames the symbol, ``U``/``u`` and the trade id.
* **Books.** Per symbol, the order book at every sequence the recording lets us know: the depth
  deltas in recorded order, seeded by the recorded REST snapshots (``U - 1 <= lastUpdateId < u``),
  applied with absolute sizes (zero deletes); a gap makes the book unknown until a later snapshot
  bridges into the stream again. These are the *points* of the symbol; ``book(symbol, seq)`` gives the
  book at one of them (None where the recording cannot tell).
* **The snapshot rule.** During a faulted replay the exchange answers a depth request with the true
  book as of the latest sequence it had sent by then (``sent``: the highest ``u`` among the symbol's
  clean frames up to the replay's position, dropped frames included: the exchange did send them), so a
  correct client can always bridge; before the first known point it answers the first one (ahead of
  what the client saw). ``answer(symbol, position, shift)`` moves that many points back (stale) or
  forward (ahead) for the snapshot faults.

The books themselves are ``harness.refbook.Timeline``s (the shared reference book): rebuilt on demand
from checkpoints every ``CHECKPOINT`` points, with a forward cursor that makes the common query (the next
sequence) one delta's work, so one reference serves every scenario of a recording in a process without
holding a book per sequence.
"""

from __future__ import annotations

import bisect
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from harness.loopback.recorded.session import RecordedAnswer, RestKey, recorded_answer
from harness.recording.format import Event, Header, HttpRequestEvent, HttpResponseEvent, WsRecv
from harness.recording.reader import Recording, read_recording
from harness.refbook import CHECKPOINT, Delta, Levels, Side, Timeline, levels, seq, timestamp

Book = Side


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """One received frame of the clean recording, as the reference reads it."""

    index: int  # event index in the recording
    t: int  # ns from the recording's start
    receipt: int  # µs, as recorded
    conn: str
    data: str | bytes
    kind: str  # "data" | "error" | "ack" | "invalid"
    stream: str | None = None
    symbol: str | None = None  # native symbol of a depth or trade frame
    first: int | None = None  # U of a depth frame
    last: int | None = None  # u of a depth frame
    trade: str | None = None  # id of a trade frame
    levels_ok: bool = True  # a depth frame whose levels are [[price, size >= 0], ...] decimals

    @property
    def private(self) -> bool:
        return self.stream is not None and self.stream.startswith("account.")

    @property
    def depth(self) -> bool:
        return self.first is not None


@dataclass(frozen=True, slots=True)
class _Seed:
    last_update_id: int
    bids: Levels
    asks: Levels
    timestamp: int | None


class SymbolBook(Timeline):
    """The known states of one symbol's book (``harness.refbook.Timeline``, checkpointed for random access)."""


def _classify(index: int, event: WsRecv) -> tuple[FrameInfo, Delta | None]:
    base = {"index": index, "t": event.t, "receipt": event.receipt, "conn": event.conn, "data": event.data}
    if isinstance(event.data, bytes):
        return FrameInfo(kind="invalid", **base), None
    try:
        obj = json.loads(event.data)
    except (ValueError, RecursionError):
        return FrameInfo(kind="invalid", **base), None
    if not isinstance(obj, dict):
        return FrameInfo(kind="invalid", **base), None
    if "error" in obj:
        return FrameInfo(kind="error", **base), None
    stream, data = obj.get("stream"), obj.get("data")
    if not isinstance(stream, str) or not stream:
        return FrameInfo(kind="ack" if "id" in obj or "result" in obj else "invalid", **base), None
    if not isinstance(data, dict):
        return FrameInfo(kind="data", stream=stream, **base), None
    head = stream.split(".", 1)[0]
    symbol = data.get("s") if isinstance(data.get("s"), str) else None
    if head == "depth" and data.get("e") == "depth":
        first, last = seq(data.get("U")), seq(data.get("u"))
        if symbol is not None and first is not None and last is not None and first <= last:
            bids, asks = levels(data.get("b")), levels(data.get("a"))
            delta = Delta(first, last, bids, asks, timestamp(data.get("T")))
            ok = bids is not None and asks is not None
            return FrameInfo(kind="data", stream=stream, symbol=symbol, first=first, last=last,
                             levels_ok=ok, **base), delta
    if head == "trade" and symbol is not None:
        tid = data.get("t")
        trade = str(tid) if type(tid) is int else (tid if isinstance(tid, str) and tid else None)
        if trade is not None:
            return FrameInfo(kind="data", stream=stream, symbol=symbol, trade=trade, **base), None
    return FrameInfo(kind="data", stream=stream, symbol=symbol, **base), None


def _seed_of(body: bytes) -> _Seed | None:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    last = seq(obj.get("lastUpdateId"))
    bids, asks = levels(obj.get("bids")), levels(obj.get("asks"))
    if last is None or bids is None or asks is None:
        return None
    return _Seed(last, bids, asks, timestamp(obj.get("timestamp")))


@dataclass
class Reference:
    """The clean recording's truth (see the module docstring); build with ``Reference.of``."""

    name: str
    header: Header
    events: list[Event]
    frames: list[FrameInfo]
    books: dict[str, SymbolBook]
    _sent: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)  # symbol -> (indices, max u)
    _rest: dict[RestKey, RecordedAnswer] | None = None
    _index: list[int] | None = None

    @classmethod
    def of(cls, recording: Recording, name: str = "recording") -> Reference:
        frames: list[FrameInfo] = []
        deltas: dict[str, list[Delta]] = {}
        indices: dict[str, list[int]] = {}  # symbol -> the event index of each of its deltas
        seeds: dict[str, list[_Seed]] = {}
        requests: dict[str, HttpRequestEvent] = {}
        for i, event in enumerate(recording.events):
            if isinstance(event, WsRecv):
                info, delta = _classify(i, event)
                frames.append(info)
                if delta is not None:
                    deltas.setdefault(info.symbol, []).append(delta)  # type: ignore[arg-type]
                    indices.setdefault(info.symbol, []).append(i)  # type: ignore[arg-type]
            elif isinstance(event, HttpRequestEvent):
                requests[event.conn] = event
            elif isinstance(event, HttpResponseEvent):
                request = requests.pop(event.conn, None)
                if request is None or event.status != 200 or not urlsplit(request.url).path.endswith("/depth"):
                    continue
                symbol = next((v for k, v in request.params if k == "symbol"), None)
                seed = _seed_of(event.body)
                if symbol is not None and seed is not None:
                    seeds.setdefault(symbol, []).append(seed)
        books = {s: SymbolBook(s, deltas.get(s, []), seeds.get(s, [])) for s in sorted(set(deltas) | set(seeds))}
        ref = cls(name, recording.header, list(recording.events), frames, books)
        for symbol, ds in deltas.items():
            top, marks = -1, []
            for d in ds:
                top = max(top, d.last)
                marks.append(top)
            ref._sent[symbol] = (indices[symbol], marks)
        return ref

    # -- the snapshot rule --------------------------------------------------------------------------

    def sent(self, symbol: str, position: int) -> int | None:
        """The highest ``u`` of ``symbol`` among the clean frames at event index <= ``position``."""
        table = self._sent.get(symbol)
        if table is None:
            return None
        k = bisect.bisect_right(table[0], position)
        return table[1][k - 1] if k else None

    def answer_point(self, symbol: str, position: int, shift: int = 0) -> int | None:
        """The point the exchange answers with at ``position``, moved ``shift`` points (stale < 0 < ahead)."""
        book = self.books.get(symbol)
        if book is None or not book.known:
            return None
        sent = self.sent(symbol, position)
        k = book.point_at_or_after(sent)
        if k is None:  # the stream ran past every point the recording knows: the last known book
            k = len(book.points) - 1
        return min(len(book.points) - 1, max(0, k + shift))

    def book(self, symbol: str, sequence: int) -> tuple[Book, Book] | None:
        book = self.books.get(symbol)
        return None if book is None else book.book(sequence)

    @functools.cached_property
    def has_private(self) -> bool:
        return any(f.private for f in self.frames)

    def _position(self, index: int) -> int:
        if self._index is None:
            self._index = [f.index for f in self.frames]
        return bisect.bisect_left(self._index, index)

    def frames_between(self, start: int, stop: int) -> list[FrameInfo]:
        """The received frames with event index in ``[start, stop)``."""
        return self.frames[self._position(start):self._position(stop)]

    def frames_after(self, start: int, n: int) -> list[FrameInfo]:
        """The first ``n`` received frames at or after event ``start``."""
        lo = self._position(start)
        return self.frames[lo:lo + n]

    def rest_answers(self) -> dict[RestKey, RecordedAnswer]:
        """The first recorded answer per (method, path from ``/api/``, query multiset): what the exchange
        says to any request but a depth one, whenever it comes."""
        if self._rest is None:
            answers: dict[RestKey, RecordedAnswer] = {}
            requests: dict[str, HttpRequestEvent] = {}
            for event in self.events:
                if isinstance(event, HttpRequestEvent):
                    requests[event.conn] = event
                elif isinstance(event, HttpResponseEvent):
                    request = requests.pop(event.conn, None)
                    if request is not None:
                        answers.setdefault(*recorded_answer(request, event))
            self._rest = answers
        return self._rest


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int) -> Reference:
    return Reference.of(read_recording(path), name=path)


def reference(path: str | os.PathLike[str]) -> Reference:
    """The reference of a recording file, read once per process (keyed by path and modification time)."""
    p = Path(path)
    return _load(str(p), p.stat().st_mtime_ns)


__all__ = ["CHECKPOINT", "FrameInfo", "Reference", "SymbolBook", "reference"]
