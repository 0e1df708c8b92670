"""One side of a comparison: a normalized output file, or a recording replayed by this revision.

Both stream ``Item``s (a line and, for a replay, the index of the recording event that produced it), so
two sides of any size can be compared in one pass. A recording is replayed by the core
(``harness.bisect.core``) where it can be, else by the full feed (``harness.replay``); ``mode`` forces one.
The last few events of a replayed recording are kept, so the frame behind a line can be shown.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import Iterator
from typing import Any, NamedTuple

from backpack.protocol.normalized import DEFAULT_DEPTH
from harness.recording.format import FORMAT_NAME, Event
from harness.recording.reader import (
    Recording,
    RecordingError,
    RecordingHeaderError,
    RecordingOpenError,
    RecordingReader,
    read_recording,
)

from .streams import StreamDamaged, chunks

MODES = ("auto", "core", "feed")
_KEEP = 512  # events kept behind the replay, to show the frame behind a line


class Item(NamedTuple):
    """A tuple, not a dataclass: a million of them are built per side, and a tuple is the cheapest."""

    line: str
    frame: int | None = None  # index of the recording event behind the line (None: not a replay)


def is_recording(path: str | os.PathLike[str]) -> bool:
    """A recording (its header names the format) rather than a file of normalized lines."""
    path = os.fspath(path)
    try:
        open(path, "rb").close()
    except OSError as exc:
        raise RecordingOpenError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        RecordingReader(path).close()
    except RecordingHeaderError:
        try:
            first = next(_file_items(path), None)
        except OutputError as exc:
            raise OutputError(f"{path} is neither a recording nor a normalized output: "
                              f"{str(exc).removeprefix(path + ': ').split(': not a normalized')[0]}") from None
        try:
            obj = json.loads(first.line) if first is not None else None
        except ValueError:
            return False
        if isinstance(obj, dict) and obj.get("format") == FORMAT_NAME:
            raise  # a recording with a broken header or an unknown version: say so
        return False
    return True


class Side:
    """``items()`` once; then ``event(i)`` for an event near the last items, ``mode_used`` says which replay."""

    def __init__(self, path: str | os.PathLike[str], *, mode: str = "auto", depth: int | None = DEFAULT_DEPTH,
                 name: str | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.path = os.fspath(path)
        self.name = name or os.path.basename(self.path)
        self.mode = mode
        self.depth = depth
        self.recording = is_recording(self.path)
        self.mode_used: str | None = None if self.recording else "file"
        self.fallback: str | None = None  # why the core could not replay it
        self._kept: deque[tuple[int, Event]] = deque(maxlen=_KEEP)
        self._all: Recording | None = None
        self.damage: Any = None

    def items(self) -> Iterator[Item]:
        if not self.recording:
            yield from _file_items(self.path)
            return
        if self.mode == "feed":
            yield from self._feed(0)
            return
        from .core import CoreUnsupported

        done = 0
        try:
            for line, frame in self._core():
                done += 1
                yield Item(line, frame)
        except CoreUnsupported as exc:
            if self.mode == "core":
                raise
            self.fallback = str(exc)
            yield from self._feed(done)
            return

    def _core(self) -> Iterator[tuple[str, int]]:
        from .core import CoreReplay
        from .timeline import Timeline

        timeline = Timeline(self.path)
        kept = self._kept

        def tap() -> Iterator[Event]:
            for i, event in enumerate(timeline.events()):
                kept.append((i, event))
                yield event

        core = CoreReplay(timeline.header, depth=self.depth)
        self.mode_used = "core"
        yield from core.run(tap())
        yield from core.finish()

    def _feed(self, skip: int) -> Iterator[Item]:
        from harness.replay import replay_stream

        rec = self._all = read_recording(self.path)
        self.damage = rec.damage
        self.mode_used = "feed"
        items: list[Item] = []
        asyncio.run(replay_stream(rec, lambda _line: None, depth=self.depth,
                                  provenance=lambda line, frame: items.append(Item(line, frame))))
        yield from items[skip:]

    def event(self, index: int | None) -> Event | None:
        if index is None:
            return None
        if self._all is not None:
            return self._all.events[index] if 0 <= index < len(self._all.events) else None
        for i, event in self._kept:
            if i == index:
                return event
        return None


class OutputError(RecordingError):
    """A file given as a normalized output that is not one (not JSON Lines of objects, cut short, not text)."""


def _file_items(path: str) -> Iterator[Item]:
    """The lines of a normalized output; each must look like a JSON object (checked by its first and last
    character, so a million-line file costs nearly nothing more: the comparison parses the lines that
    differ). Decoded a block of whole lines at a time, which is what keeps it at about 1 µs a line."""
    number = 0
    rest = b""
    try:
        for chunk in chunks(path):
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n") + 1
            if not cut:
                rest = data
                continue
            block, rest = data[:cut], data[cut:]
            try:
                text = block.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_text(path, number, block) from None
            lines = text.split("\n")
            lines.pop()
            for line in lines:
                number += 1
                if line[:1] == "{" and line[-1:] == "}":
                    yield Item(line)
                elif line.strip():
                    yield _odd_line(path, number, line, terminated=True)
        if rest.strip():
            number += 1
            try:
                line = rest.decode("utf-8")
            except UnicodeDecodeError:
                raise _not_text(path, number - 1, rest) from None
            yield _odd_line(path, number, line, terminated=False)
    except StreamDamaged as exc:
        raise OutputError(f"{path}: {exc.reason} (the zstd frame at byte {exc.offset}) after {number} lines") from None
    except OSError as exc:
        raise RecordingOpenError(f"cannot read {path}: {exc.strerror or exc}") from None


def _odd_line(path: str, number: int, line: str, *, terminated: bool) -> Item:
    """A line with a CR or blanks around its object is still one; anything else is not a normalized output."""
    text = line.rstrip("\r")
    if text[:1] == "{" and text.rstrip()[-1:] == "}":
        return Item(text)
    if not terminated:
        raise OutputError(f"{path}: line {number} is cut short: the file ends inside it")
    raise OutputError(f"{path}: line {number} is not a JSON object: not a normalized output (the JSON Lines "
                      "`backpack-harness replay` prints)")


def _not_text(path: str, before: int, block: bytes) -> OutputError:
    for number, raw in enumerate(block.split(b"\n"), start=before + 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return OutputError(f"{path}: line {number} is not UTF-8 text (byte {exc.start + 1}): not a "
                               "normalized output")
    return OutputError(f"{path}: not UTF-8 text: not a normalized output")


__all__ = ["MODES", "Item", "OutputError", "Side", "is_recording"]
