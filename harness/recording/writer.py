"""Recording writer: header + events as JSON Lines, plain or as a sequence of independent zstd frames.

Why frames: a recorder that is killed (or a machine that loses power) must leave a readable file. Each
block of events is compressed into its own complete zstd frame (with a content checksum) and written
at once, so the file is always "complete frames + possibly one partial frame", and the reader keeps
every complete one. The header is a frame of its own, written when the writer opens, so even a
recording killed before its first block names its format and version.

A block closes after ``block_events`` events, ``block_bytes`` of JSON, or ``block_ms`` since its first
event, whichever comes first; memory is bounded by one block. Time-based closing happens on the next
``write`` or when the owner calls ``flush_if_due`` (the RecordingTransport arms a timer for it), since
a synchronous writer cannot wake itself up.

Redaction happens here, in ``write``, so no caller can forget it: see ``redaction.py``.

Why a frame has its own path (``write_recv``, and ``write`` of a text ``WsRecv``): frames are nearly every
event of a session, and the general path (an event object, ``dataclasses.replace`` for redaction, a dict,
stdlib ``json``) cost a recorded feed 44% of its CPU (issue 12). A frame's line is built directly: the
redacted text (the same ``Redactor`` call the general path makes) JSON-escaped by ``orjson``, whose
escaping of a ``str`` is byte for byte ``json.dumps(ensure_ascii=False)``'s, between fixed bytes in the
general path's key order, so both paths write identical lines. Whole blocks are compressed at level 1:
on these JSON Lines it is both faster and tighter than level 3 (docs/decisions.md, "Harness speed").
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson
import zstandard

from .format import Event, Header, RecordingEnd, WsRecv
from .redaction import Redactor

DEFAULT_BLOCK_EVENTS = 1000
DEFAULT_BLOCK_MS = 1000
DEFAULT_BLOCK_BYTES = 4 * 2**20
DEFAULT_LEVEL = 1
_RECV_LINE = b'{"k":"ws_recv","t":%d,"c":%b,"r":%d,"d":%b}\n'  # WsRecv.to_json's keys, in its order


def compression_for(path: str | os.PathLike[str]) -> str:
    """``"zstd"`` for ``*.zst``, ``"plain"`` for ``*.jsonl``; anything else is refused (say what you want)."""
    name = os.fspath(path)
    if name.endswith(".zst"):
        return "zstd"
    if name.endswith(".jsonl"):
        return "plain"
    raise ValueError(f"recording file name must end in .jsonl (plain) or .jsonl.zst (zstd): {name!r}")


def dump_line(obj: dict[str, Any]) -> bytes:
    """One JSON Lines record. Non-ASCII stays readable; a lone surrogate (not UTF-8) falls back to escapes."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode() + b"\n"


def _wall_us() -> int:
    return time.time_ns() // 1000


class RecordingWriter:
    """Append-only writer for one recording. Use as a context manager or call ``close()``.

    ``t`` of every event must be >= the previous one; ``now_ns()`` gives the offset on the writer's own
    monotonic clock, which is what a live recorder should use. ``secrets`` are extra strings (seed, API
    key) to redact everywhere; ``redactor`` replaces the whole redaction policy if given.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        header: Header,
        *,
        block_events: int = DEFAULT_BLOCK_EVENTS,
        block_ms: float = DEFAULT_BLOCK_MS,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        level: int = DEFAULT_LEVEL,
        secrets: Iterable[str | None] = (),
        redactor: Redactor | None = None,
        fsync: bool = False,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_us: Callable[[], int] = _wall_us,
    ) -> None:
        if isinstance(block_events, bool) or not isinstance(block_events, int) or block_events < 1:
            raise ValueError(f"block_events must be a positive integer, got {block_events!r}")
        if isinstance(block_bytes, bool) or not isinstance(block_bytes, int) or block_bytes < 1:
            raise ValueError(f"block_bytes must be a positive integer, got {block_bytes!r}")
        if isinstance(block_ms, bool) or not isinstance(block_ms, int | float) or not block_ms > 0:
            raise ValueError(f"block_ms must be a positive number, got {block_ms!r}")
        self.path = Path(path)
        self.compression = compression_for(path)
        self.block_events = block_events
        self.block_ns = int(block_ms * 1_000_000)
        self.block_bytes = block_bytes
        self.redactor = redactor if redactor is not None else Redactor(secrets)
        # A policy of the caller's (a subclass) is honoured by sending frames the general way too.
        self._fast = type(self.redactor) is Redactor
        self._conns: dict[str, bytes] = {}  # connection id -> its JSON string
        self._fsync = fsync
        self._clock = clock_ns
        self._cctx = zstandard.ZstdCompressor(level=level, write_checksum=True, write_content_size=True)
        self._lines: list[bytes] = []
        self._pending_bytes = 0
        self._block_started: int | None = None  # clock_ns() of the block's first event
        self._last_t = 0
        self._closed = False
        self.failure: BaseException | None = None  # set when a block could not be written; the writer stops
        # statistics, for the CLI's progress line and for tests
        self.events = 0
        self.frames = 0
        self.raw_bytes = 0
        self.file_bytes = 0

        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        try:
            self._start_ns = clock_ns()
            if header.start_us is None:
                header = _with_start(header, wall_us())
            self.header = self.redactor.header(header)
            self._write_block([dump_line(self.header.to_json())])
        except BaseException:
            self._file.close()
            raise

    # -- clock ----------------------------------------------------------------------------------

    def now_ns(self) -> int:
        """Nanoseconds since the recording started, never less than the last ``t`` written."""
        return max(self._clock() - self._start_ns, self._last_t)

    # -- writing --------------------------------------------------------------------------------

    def write(self, event: Event) -> None:
        """Redact, serialise and buffer one event; closes the block when it is full or old enough."""
        if self._closed:
            raise ValueError(f"recording {self.path.name} is closed")
        if self.failure is not None:
            raise ValueError(f"recording {self.path.name} stopped after a write error: {self.failure}")
        t = event.t
        if type(t) is not int or t < self._last_t:
            raise ValueError(f"event t={t!r} must be an integer >= the previous t={self._last_t}")
        if type(event) is WsRecv and self._fast:
            line = self._recv_line(t, event.conn, event.data, event.receipt)
        else:
            line = dump_line(self.redactor.event(event).to_json())
        self._buffer(t, line, None)

    def write_recv(self, conn: str, data: str | bytes, receipt: int) -> None:
        """``write(WsRecv(self.now_ns(), conn, data, receipt))``, without building the event: a recorder's
        per-frame call (everything inline: it runs once per frame received)."""
        if (self._closed or self.failure is not None or not self._fast or type(data) is not str
                or type(receipt) is not int or type(conn) is not str):
            self.write(WsRecv(self.now_ns(), conn, data, receipt))
            return
        now = self._clock()
        t = now - self._start_ns
        if t < self._last_t:
            t = self._last_t
        try:
            encoded = self._conns.get(conn) or self._conn_json(conn)
            line = _RECV_LINE % (t, encoded, receipt, orjson.dumps(self.redactor.ws_text(data)))
        except TypeError:  # a lone surrogate (not UTF-8): the general path escapes it
            line = dump_line(self.redactor.event(WsRecv(t, conn, data, receipt)).to_json())
        self._last_t = t
        if self._block_started is None:
            self._block_started = now
        lines = self._lines
        lines.append(line)
        self._pending_bytes += len(line)
        self.events += 1
        if (len(lines) >= self.block_events or self._pending_bytes >= self.block_bytes
                or now - self._block_started >= self.block_ns):
            self.flush()

    def _conn_json(self, conn: str) -> bytes:
        encoded = orjson.dumps(conn)
        if len(self._conns) < 1024:
            self._conns[conn] = encoded
        return encoded

    def _recv_line(self, t: int, conn: str, data: str | bytes, receipt: int) -> bytes:
        """The line ``dump_line(self.redactor.event(WsRecv(...)).to_json())`` gives, built directly."""
        if type(data) is str and type(receipt) is int and type(conn) is str:
            try:
                encoded = self._conns.get(conn) or self._conn_json(conn)
                return _RECV_LINE % (t, encoded, receipt, orjson.dumps(self.redactor.ws_text(data)))
            except TypeError:  # a lone surrogate (not UTF-8): the general path escapes it
                pass
        return dump_line(self.redactor.event(WsRecv(t, conn, data, receipt)).to_json())

    def _buffer(self, t: int, line: bytes, now: int | None) -> None:
        self._last_t = t
        if self._block_started is None:
            self._block_started = self._clock() if now is None else now
        lines = self._lines
        lines.append(line)
        self._pending_bytes += len(line)
        self.events += 1
        if len(lines) >= self.block_events or self._pending_bytes >= self.block_bytes or (
                (self._clock() if now is None else now) - self._block_started >= self.block_ns):
            self.flush()

    @property
    def pending(self) -> int:
        """Events buffered and not yet on disk."""
        return len(self._lines)

    def flush_due(self) -> bool:
        return self._block_started is not None and self._clock() - self._block_started >= self.block_ns

    def flush_if_due(self) -> None:
        if self.flush_due():
            self.flush()

    def flush(self) -> None:
        """Close the current block: one zstd frame (or the plain lines) written and flushed to the OS."""
        if self._lines:
            lines, self._lines = self._lines, []
            self._pending_bytes = 0
            self._block_started = None
            self._write_block(lines)

    def _write_block(self, lines: list[bytes]) -> None:
        raw = b"".join(lines)
        data = self._cctx.compress(raw) if self.compression == "zstd" else raw
        try:
            self._file.write(data)
            self._file.flush()
            if self._fsync:
                os.fsync(self._file.fileno())
        except BaseException as exc:
            # A partial block may be on disk; writing more after it would hide the damage from readers.
            self.failure = exc
            raise
        self.frames += 1
        self.raw_bytes += len(raw)
        self.file_bytes += len(data)

    def close(self, *, end: bool = True) -> None:
        """Flush, write the ``end`` event (marks a clean close) and close the file. Idempotent."""
        if self._closed:
            return
        try:
            if self.failure is None:
                if end:
                    self.write(RecordingEnd(self.now_ns()))
                self.flush()
        finally:
            self._closed = True
            self._file.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"RecordingWriter({self.path.name!r}, {self.compression}, events={self.events}, "
                f"frames={self.frames}, pending={self.pending})")


def _with_start(header: Header, start_us: int) -> Header:
    return dataclasses.replace(header, start_us=start_us)


def write_recording(path: str | os.PathLike[str], header: Header, events: Iterable[Event], **kwargs: Any) -> None:
    """Write a whole recording at once (tests, converters); ``kwargs`` go to ``RecordingWriter``."""
    with RecordingWriter(path, header, **kwargs) as writer:
        for event in events:
            writer.write(event)


__all__ = [
    "DEFAULT_BLOCK_BYTES", "DEFAULT_BLOCK_EVENTS", "DEFAULT_BLOCK_MS", "DEFAULT_LEVEL", "RecordingWriter",
    "compression_for", "dump_line", "write_recording",
]
