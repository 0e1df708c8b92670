"""Recording reader: streams events from plain or multi-frame zstd JSON Lines, and says where damage is.

Why it walks zstd frames itself instead of using ``decompressobj`` or ``stream_reader``: a
``decompressobj`` stops at the end of the first frame (every later frame would silently vanish unless
the caller loops), and ``read_across_frames`` hides where one frame ends. Here each frame's block
headers are read (RFC 8878 §3.1), so the reader knows the byte offset of every frame and block, tells
a file that ends inside a frame (truncated) from one whose bytes do not decode (corrupt), and feeds the
decompressor one block at a time: a block regenerates at most 128 KiB, so a small hostile file cannot
make it allocate gigabytes.

The events of a frame are released only once the whole frame decoded and its checksum matched, so a
corrupt frame yields nothing and every event before it is still yielded. (A foreign frame bigger than
``verify_limit`` decompressed bytes is released as it decodes, unverified, to keep memory bounded.)

Every failure is a ``RecordingError`` with a one-line message; no zstd, JSON or Unicode exception, and
no traceback, reaches the caller.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import zstandard

from .format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAJOR_VERSION,
    Event,
    FormatError,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    WsOpen,
    WsRecv,
    event_from_json,
    parse_version,
)

DEFAULT_MAX_LINE_BYTES = 64 * 2**20
"""A longer line is damage: without a limit a file with no newline would be read into memory whole."""
DEFAULT_VERIFY_LIMIT = 64 * 2**20
MAX_WINDOW_SIZE = 2**27  # zstd's own default limit for decompression (128 MiB)

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_SKIPPABLE_FIRST, _SKIPPABLE_LAST = 0x184D2A50, 0x184D2A5F
_BLOCK_MAX = 128 * 1024
_RAW, _RLE, _COMPRESSED = 0, 1, 2
_RECV_PREFIX = b'{"k":"ws_recv",'  # how every writer of this format starts a frame's line


class RecordingError(Exception):
    """Base of every reader error. ``str()`` is one line that names the file and the problem."""

    def __init__(self, message: str) -> None:
        message = " ".join(message.split())  # one line, whatever got interpolated
        super().__init__(message)
        self.message = message


class RecordingOpenError(RecordingError):
    """The file cannot be opened or read at all (missing, a directory, no permission)."""


class RecordingHeaderError(RecordingError):
    """No usable header: empty file, not a recording, or a header that breaks the format."""


class RecordingEmpty(RecordingHeaderError):
    """The file holds no header line at all (empty, or whitespace only)."""


class RecordingVersionError(RecordingHeaderError):
    """The header's major version is not one this reader knows."""

    def __init__(self, message: str, version: str) -> None:
        super().__init__(message)
        self.version = version


class RecordingDamaged(RecordingError):
    """Truncated or corrupt data, or a line that breaks the format, after ``events`` good events.

    ``offset`` is the byte offset in the file where the damaged zstd frame (or plain line) starts;
    ``line`` the 1-based line number (header = 1) when the damage is within a line; ``frame`` the
    0-based zstd frame index (the header is frame 0 in files this project writes).
    """

    def __init__(self, path: str, reason: str, *, offset: int, line: int | None, frame: int | None,
                 events: int) -> None:
        where = f"byte {offset}"
        if line is not None:
            where += f", line {line}"
        if frame is not None:
            where += f", zstd frame {frame}"
        super().__init__(f"{path}: {reason} ({where}); {events} events read before it")
        self.reason = " ".join(reason.split())
        self.offset = offset
        self.line = line
        self.frame = frame
        self.events = events


# --- bytes → lines --------------------------------------------------------------------------------


class _Damage(Exception):
    """Internal: where and why the byte stream broke; becomes RecordingDamaged with the event count."""

    def __init__(self, reason: str, offset: int, frame: int | None = None, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.frame = frame
        self.line = line


@dataclass(slots=True)
class _Line:
    number: int  # 1-based
    offset: int  # file offset of the line (plain) or of the frame it ends in (zstd)
    frame: int | None
    data: bytes
    terminated: bool


@dataclass(slots=True)
class ReadStats:
    """What the reader has consumed so far (complete after a full read)."""

    compression: str = "plain"
    file_bytes: int = 0
    raw_bytes: int = 0  # decompressed bytes
    frames: int = 0  # complete zstd frames (skippable frames included)


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    return data if data is not None else b""


def _frame_header_length(descriptor: int) -> int:
    fcs_flag = descriptor >> 6
    single = (descriptor >> 5) & 1
    did_size = (0, 1, 2, 4)[descriptor & 3]
    fcs_size = ((1 if single else 0), 2, 4, 8)[fcs_flag]
    return 1 + (0 if single else 1) + did_size + fcs_size


def _zstd_pieces(f: IO[bytes], stats: ReadStats) -> Iterator[tuple[bytes, int, int, bool]]:
    """Decompressed data as ``(chunk, frame_index, frame_offset, frame_done)``, one zstd block at a time.

    A ``frame_done`` item (with an empty chunk) follows the last chunk of every frame that decoded
    completely and whose checksum matched. Raises ``_Damage`` at the first broken frame.
    """
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)
    offset = 0
    index = 0
    while True:
        start = offset
        magic = _read_exact(f, 4)
        if not magic:
            return
        offset += len(magic)
        if len(magic) < 4:
            raise _Damage("truncated zstd frame: the file ends inside a frame's magic number", start, index)
        number = int.from_bytes(magic, "little")
        if _SKIPPABLE_FIRST <= number <= _SKIPPABLE_LAST:
            size_bytes = _read_exact(f, 4)
            offset += len(size_bytes)
            if len(size_bytes) < 4:
                raise _Damage("truncated skippable zstd frame", start, index)
            size = int.from_bytes(size_bytes, "little")
            while size:
                skipped = len(_read_exact(f, min(size, 1 << 20)))
                if not skipped:
                    raise _Damage("truncated skippable zstd frame", start, index)
                size -= skipped
                offset += skipped
            stats.frames += 1
            stats.file_bytes = offset
            yield b"", index, start, True
            index += 1
            continue
        if magic != ZSTD_MAGIC:
            raise _Damage(f"not a zstd frame (magic {magic.hex()}, expected {ZSTD_MAGIC.hex()})", start, index)
        dobj = dctx.decompressobj()

        def feed(data: bytes, start: int = start, index: int = index, dobj: Any = dobj) -> bytes:
            try:
                return dobj.decompress(data)
            except zstandard.ZstdError as exc:
                raise _Damage(f"corrupt zstd frame: {exc}", start, index) from None

        descriptor = _read_exact(f, 1)
        if not descriptor:
            raise _Damage("truncated zstd frame: the file ends inside a frame header", start, index)
        if descriptor[0] & 0x08:
            raise _Damage("corrupt zstd frame: reserved bit set in the frame header", start, index)
        has_checksum = bool(descriptor[0] & 0x04)
        rest = _read_exact(f, _frame_header_length(descriptor[0]) - 1)
        header = magic + descriptor + rest
        offset += 1 + len(rest)
        if len(rest) < _frame_header_length(descriptor[0]) - 1:
            raise _Damage("truncated zstd frame: the file ends inside a frame header", start, index)
        out = feed(header)
        if out:
            stats.raw_bytes += len(out)
            yield out, index, start, False
        while True:
            block_header = _read_exact(f, 3)
            offset += len(block_header)
            if len(block_header) < 3:
                raise _Damage("truncated zstd frame: the file ends inside a block header", start, index)
            value = int.from_bytes(block_header, "little")
            last, block_type, size = value & 1, (value >> 1) & 3, value >> 3
            if block_type == 3:
                raise _Damage("corrupt zstd frame: reserved block type", start, index)
            if size > _BLOCK_MAX:
                raise _Damage(f"corrupt zstd frame: block of {size} bytes exceeds 128 KiB", start, index)
            content = _read_exact(f, 1 if block_type == _RLE else size)
            offset += len(content)
            if len(content) < (1 if block_type == _RLE else size):
                raise _Damage("truncated zstd frame: the file ends inside a block", start, index)
            out = feed(block_header + content)
            if out:
                stats.raw_bytes += len(out)
                yield out, index, start, False
            if last:
                break
        if has_checksum:
            checksum = _read_exact(f, 4)
            offset += len(checksum)
            if len(checksum) < 4:
                raise _Damage("truncated zstd frame: the file ends inside the checksum", start, index)
            out = feed(checksum)
            if out:
                stats.raw_bytes += len(out)
                yield out, index, start, False
        if not dobj.eof:
            raise _Damage("corrupt zstd frame: it does not end where its last block says", start, index)
        stats.frames += 1
        stats.file_bytes = offset
        yield b"", index, start, True
        index += 1


def _zstd_lines(f: IO[bytes], stats: ReadStats, max_line: int, verify_limit: int) -> Iterator[_Line]:
    buf = bytearray()
    pending: list[_Line] = []
    pending_bytes = 0
    number = 0
    frame: int | None = None
    frame_offset = 0
    try:
        for chunk, frame, frame_offset, done in _zstd_pieces(f, stats):
            if done:
                yield from pending
                pending = []
                pending_bytes = 0
                continue
            buf += chunk
            end = buf.rfind(b"\n")
            if end >= 0:  # every complete line at once: one copy, one C-level split
                complete = bytes(buf[:end])
                del buf[:end + 1]
                for data in complete.split(b"\n"):
                    number += 1
                    pending.append(_Line(number, frame_offset, frame, data, True))
                    pending_bytes += len(data)
            if len(buf) > max_line:
                raise _Damage(f"line longer than {max_line} bytes", frame_offset, frame, number + 1)
            if pending_bytes > verify_limit:  # a huge foreign frame: keep memory bounded, release early
                yield from pending
                pending = []
                pending_bytes = 0
    except _Damage:
        raise  # pending lines of the broken frame are dropped: they were never verified
    if buf:
        yield _Line(number + 1, frame_offset, frame, bytes(buf), False)


def _plain_lines(f: IO[bytes], stats: ReadStats, max_line: int) -> Iterator[_Line]:
    offset = 0
    number = 0
    while True:
        data = f.readline(max_line + 1)
        if not data:
            return
        number += 1
        terminated = data.endswith(b"\n")
        if not terminated and len(data) > max_line:
            raise _Damage(f"line longer than {max_line} bytes", offset, None, number)
        stats.file_bytes += len(data)
        stats.raw_bytes += len(data)
        yield _Line(number, offset, None, data[:-1] if terminated else data, terminated)
        offset += len(data)


# --- lines → header and events --------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decode(line: _Line) -> Any:
    """JSON of one line; ``_Damage`` with a one-line reason otherwise."""
    try:
        text = line.data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Damage(f"line {line.number} is not valid UTF-8 (byte {exc.start} of the line)",
                      line.offset, line.frame, line.number) from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        reason = "nested too deeply"
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg} at column {exc.colno}"
    except ValueError as exc:  # NaN/Infinity, integers beyond Python's digit limit
        reason = str(exc).split("\n")[0][:120]
    what = "is cut short" if not line.terminated else "is not JSON"
    raise _Damage(f"line {line.number} {what}: {reason}", line.offset, line.frame, line.number)


def _blank(line: _Line) -> bool:
    return not line.data.strip()


class RecordingReader:
    """One pass over one recording. The header is read when the reader opens.

    ``for event in reader`` raises ``RecordingDamaged`` at the damage, after every event before it;
    ``reader.events(tolerant=True)`` stops there instead and leaves the error in ``reader.damage``.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
                 verify_limit: int = DEFAULT_VERIFY_LIMIT) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.stats = ReadStats()
        self.damage: RecordingDamaged | None = None
        self.count = 0  # events yielded so far
        self._last_t = 0
        try:
            self._file: IO[bytes] = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise RecordingOpenError(f"cannot read recording {self.path}: {exc.strerror or exc}") from None
        try:
            self._lines = self._make_lines(max_line_bytes, verify_limit)
            self.header = self._read_header()
        except BaseException:
            self._file.close()
            raise

    def _make_lines(self, max_line: int, verify_limit: int) -> Iterator[_Line]:
        try:
            magic = self._file.read(4)
            self._file.seek(0)
        except OSError as exc:
            raise RecordingOpenError(f"cannot read recording {self.path}: {exc.strerror or exc}") from None
        if magic == ZSTD_MAGIC or (len(magic) == 4 and _SKIPPABLE_FIRST <= int.from_bytes(magic, "little")
                                   <= _SKIPPABLE_LAST):
            self.stats.compression = "zstd"
            return _zstd_lines(self._file, self.stats, max_line, verify_limit)
        if self.name.endswith(".zst") and magic:
            raise RecordingHeaderError(
                f"{self.name}: not a zstd file (first bytes {magic.hex()}, expected {ZSTD_MAGIC.hex()})"
            )
        return _plain_lines(self._file, self.stats, max_line)

    def _next_line(self) -> _Line | None:
        try:
            return next(self._lines, None)
        except OSError as exc:
            raise RecordingOpenError(f"cannot read recording {self.path}: {exc.strerror or exc}") from None

    def _read_header(self) -> Header:
        try:
            line = self._next_line()
            while line is not None and _blank(line):
                line = self._next_line()
            if line is None:
                raise RecordingEmpty(f"{self.name}: empty recording: no header line")
            obj = _decode(line)
        except _Damage as damage:
            raise RecordingHeaderError(f"{self.name}: no readable header: {damage.reason}") from None
        if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME:
            # The version decides how to read everything else, so it is checked before any other key.
            try:
                major, _minor = parse_version(obj.get("version"))
            except FormatError as exc:
                raise RecordingHeaderError(f"{self.name}: bad header: {exc}") from None
            if major != MAJOR_VERSION:
                version = obj["version"]
                raise RecordingVersionError(
                    f"{self.name}: recording format version {version} is not supported "
                    f"(this reader reads {MAJOR_VERSION}.x; it writes {FORMAT_VERSION})",
                    version,
                )
        try:
            header = Header.from_json(obj)
        except FormatError as exc:
            raise RecordingHeaderError(f"{self.name}: bad header: {exc}") from None
        return header

    # -- events ---------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return self.events()

    def events(self, *, tolerant: bool = False) -> Iterator[Event]:
        loads, prefix = orjson.loads, _RECV_PREFIX
        try:
            while True:
                try:
                    line = self._next_line()
                    if line is None:
                        return
                    data = line.data
                    if data.startswith(prefix):
                        # A frame as writers write it, checked as WsRecv.from_json checks it; anything else
                        # (or anything orjson reads otherwise than json: huge ints, lone surrogates) is
                        # read the general way below, errors and all.
                        try:
                            obj = loads(data)
                        except ValueError:
                            obj = None
                        if type(obj) is dict and len(obj) == 5:
                            t, c, r, d = obj.get("t"), obj.get("c"), obj.get("r"), obj.get("d")
                            if (type(t) is int and t >= self._last_t and type(c) is str and type(r) is int
                                    and type(d) is str and obj.get("k") == "ws_recv"):
                                self._last_t = t
                                self.count += 1
                                yield WsRecv(t, c, d, r)
                                continue
                    if _blank(line):
                        continue
                    event = self._event(line)
                except _Damage as d:
                    self.damage = RecordingDamaged(self.name, d.reason, offset=d.offset, line=d.line,
                                                   frame=d.frame, events=self.count)
                    if tolerant:
                        return
                    raise self.damage from None
                self.count += 1
                yield event
        finally:
            self.close()

    def _event(self, line: _Line) -> Event:
        obj = _decode(line)
        try:
            event = event_from_json(obj)
        except FormatError as exc:
            raise _Damage(f"line {line.number}: {exc}", line.offset, line.frame, line.number) from None
        if event.t < self._last_t:
            raise _Damage(f"line {line.number}: t={event.t} is before the previous event's t={self._last_t}",
                          line.offset, line.frame, line.number)
        self._last_t = event.t
        return event

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_recording(path: str | os.PathLike[str], **kwargs: Any) -> RecordingReader:
    """Open and read the header (raises header/version/open errors now); iterate it for the events."""
    return RecordingReader(path, **kwargs)


def read_header(path: str | os.PathLike[str]) -> Header:
    with RecordingReader(path) as reader:
        return reader.header


def read_events(path: str | os.PathLike[str], **kwargs: Any) -> Iterator[Event]:
    """Every event in order, streamed; raises ``RecordingDamaged`` at damage after all events before it.

    Header, version and open errors are raised on the first ``next()``.
    """
    reader = RecordingReader(path, **kwargs)
    yield from reader.events()


@dataclass(slots=True)
class Recording:
    """A whole recording in memory (tolerant read): what was readable, and what stopped the read."""

    header: Header
    events: list[Event]
    damage: RecordingDamaged | None
    stats: ReadStats

    @property
    def complete(self) -> bool:
        """The recorder closed cleanly (an ``end`` event) and nothing after the header is damaged."""
        return self.damage is None and bool(self.events) and isinstance(self.events[-1], RecordingEnd)


def read_recording(path: str | os.PathLike[str], **kwargs: Any) -> Recording:
    """Tolerant read into memory: every readable event plus the damage report (None when intact)."""
    reader = RecordingReader(path, **kwargs)
    events = list(reader.events(tolerant=True))
    return Recording(reader.header, events, reader.damage, reader.stats)


# --- summary --------------------------------------------------------------------------------------


def _stream_of(event: WsRecv) -> str:
    if isinstance(event.data, bytes):
        return "(binary)"
    text = event.data
    if text.startswith("{") and '"stream"' in text:
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return "(not json)"
        if isinstance(obj, dict) and isinstance(obj.get("stream"), str):
            return obj["stream"]
    return "(no stream)"


@dataclass(slots=True)
class Summary:
    """What ``inspect`` prints: counts, span and size of one recording (tolerant: damage is reported)."""

    path: str
    header: Header
    kinds: dict[str, int] = field(default_factory=dict)
    streams: dict[str, int] = field(default_factory=dict)  # ws_recv per "stream" of the frame
    requests: dict[str, int] = field(default_factory=dict)  # http_request per "METHOD path"
    statuses: dict[int, int] = field(default_factory=dict)
    connections: int = 0  # ws_open events
    first_t: int | None = None
    last_t: int | None = None
    first_receipt: int | None = None
    last_receipt: int | None = None
    compression: str = "plain"
    file_bytes: int = 0
    raw_bytes: int = 0
    frames: int = 0
    complete: bool = False
    damage: str | None = None

    @property
    def events(self) -> int:
        return sum(self.kinds.values())

    @property
    def span_ns(self) -> int:
        return 0 if self.first_t is None or self.last_t is None else self.last_t - self.first_t

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)

    @property
    def ratio(self) -> float | None:
        """Decompressed / on-disk bytes (1.0 for plain files); None for an empty body."""
        return self.raw_bytes / self.file_bytes if self.file_bytes else None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "format_version": self.header.version, "created_at": self.header.created_at,
            "symbols": list(self.header.symbols), "channels": list(self.header.channels),
            "events": self.events, "kinds": dict(sorted(self.kinds.items())),
            "streams": dict(sorted(self.streams.items())), "requests": dict(sorted(self.requests.items())),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "connections": self.connections, "reconnects": self.reconnects,
            "span_ns": self.span_ns, "first_receipt_us": self.first_receipt, "last_receipt_us": self.last_receipt,
            "compression": self.compression, "file_bytes": self.file_bytes, "raw_bytes": self.raw_bytes,
            "frames": self.frames, "ratio": None if self.ratio is None else round(self.ratio, 3),
            "complete": self.complete, "damage": self.damage,
        }

    def render(self) -> str:
        """Human-readable, one fact per line, stable order."""
        h = self.header
        ratio = "n/a" if self.ratio is None else f"{self.ratio:.2f}x"
        lines = [
            f"recording   {self.path}",
            f"format      {h.version}  created {h.created_at}  by {h.tool} {h.tool_version or '?'}",
            f"endpoints   rest {h.rest_url or '-'}  ws {h.ws_url or '-'}",
            f"symbols     {' '.join(h.symbols) or '-'}",
            f"channels    {' '.join(h.channels) or '-'}",
            f"events      {self.events}  over {self.span_ns / 1e9:.3f} s",
            f"connections {self.connections} ({self.reconnects} reconnects)",
            f"size        {self.file_bytes} bytes on disk, {self.raw_bytes} raw, {ratio}, "
            f"{self.compression}{f', {self.frames} frames' if self.compression == 'zstd' else ''}",
            f"complete    {'yes' if self.complete else 'no (no end event)' if self.damage is None else 'no'}",
        ]
        if self.damage:
            lines.append(f"damage      {self.damage}")
        lines += [f"kind        {k:<16} {v}" for k, v in sorted(self.kinds.items())]
        lines += [f"stream      {k:<40} {v}" for k, v in sorted(self.streams.items())]
        lines += [f"request     {k:<40} {v}" for k, v in sorted(self.requests.items())]
        return "\n".join(lines)


def summarize(path: str | os.PathLike[str], **kwargs: Any) -> Summary:
    """Stream the recording once and count; damage ends the count and is reported, not raised."""
    reader = RecordingReader(path, **kwargs)
    summary = Summary(str(path), reader.header)
    kinds: Counter[str] = Counter()
    streams: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    for event in reader.events(tolerant=True):
        kinds[event.kind] += 1
        if summary.first_t is None:
            summary.first_t = event.t
        summary.last_t = event.t
        receipt = getattr(event, "receipt", None)
        if isinstance(receipt, int):
            if summary.first_receipt is None:
                summary.first_receipt = receipt
            summary.last_receipt = receipt
        if isinstance(event, WsRecv):
            streams[_stream_of(event)] += 1
        elif isinstance(event, HttpRequestEvent):
            requests[f"{event.method} {_path_of(event.url)}"] += 1
        elif isinstance(event, HttpResponseEvent):
            statuses[event.status] += 1
        elif isinstance(event, WsOpen):
            summary.connections += 1
        elif isinstance(event, RecordingEnd):
            summary.complete = True
    summary.kinds, summary.streams, summary.requests, summary.statuses = (
        dict(kinds), dict(streams), dict(requests), dict(statuses)
    )
    summary.compression = reader.stats.compression
    summary.file_bytes = reader.stats.file_bytes
    summary.raw_bytes = reader.stats.raw_bytes
    summary.frames = reader.stats.frames
    if reader.damage is not None:
        summary.damage = reader.damage.message
        summary.complete = False
    return summary


def _path_of(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


__all__ = [
    "DEFAULT_MAX_LINE_BYTES", "DEFAULT_VERIFY_LIMIT", "ReadStats", "Recording", "RecordingDamaged", "RecordingEmpty",
    "RecordingError", "RecordingHeaderError", "RecordingOpenError", "RecordingReader", "RecordingVersionError",
    "Summary", "open_recording", "read_events", "read_header", "read_recording", "summarize",
]
