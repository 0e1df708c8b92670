"""The lines of a plain or zstd file for the fast paths, raising where the file is cut or corrupt.

zstandard's ``stream_reader`` ends quietly where a truncated file ends, so a golden output or a recording
cut inside a zstd frame would read as a complete, shorter one (and a shorter golden output moves the first
divergence). The recording reader's frame walker decompresses here too: a block at a time (bounded memory
whatever the file claims), every frame checked to its end and checksum.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from harness.recording.reader import ZSTD_MAGIC, ReadStats, _Damage, _zstd_pieces

_CHUNK = 1 << 20


class StreamDamaged(ValueError):
    """The bytes break off or do not decode; ``offset`` is where the broken zstd frame starts."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


def chunks(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """The decompressed bytes, in pieces of at most a MiB."""
    with open(os.fspath(path), "rb") as fh:
        magic = fh.read(4)
        fh.seek(0)
        if magic != ZSTD_MAGIC:
            while chunk := fh.read(_CHUNK):
                yield chunk
            return
        try:
            for chunk, _frame, _offset, _done in _zstd_pieces(fh, ReadStats()):
                if chunk:
                    yield chunk
        except _Damage as damage:
            raise StreamDamaged(damage.reason, damage.offset) from None


def lines(path: str | os.PathLike[str]) -> Iterator[tuple[bytes, bool]]:
    """``(line, terminated)`` for every line, blank ones included; only the last can be unterminated."""
    rest = b""
    for chunk in chunks(path):
        parts = (rest + chunk).split(b"\n") if rest else chunk.split(b"\n")
        rest = parts.pop()
        for part in parts:
            yield part, True
    if rest:
        yield rest, False


__all__ = ["StreamDamaged", "chunks", "lines"]
