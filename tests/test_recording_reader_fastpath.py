"""The reader's frame path (orjson, checks inline) reads exactly what the general path reads, damage included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.recording import reader as reader_module
from harness.recording.format import WsRecv
from harness.recording.reader import read_recording
from harness.recording.writer import dump_line

from .recording_helpers import HEADER

FRAME_LINES = st.sampled_from([
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":"{\\"a\\":1}"}',
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":"\\ud800"}',  # lone surrogate: json reads it, orjson not
    b'{"k":"ws_recv","t":123456789012345678901234567890,"c":"ws-1","r":7,"d":"x"}',  # orjson: a float
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":"x","b":"eA=="}',  # both payload keys
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"b":"eA=="}',  # binary frame
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":"x","extra":1}',  # a newer minor's key
    b'{"k":"ws_recv","t":5,"t":1,"c":"ws-1","r":7,"d":"x"}',  # duplicate key: the last one counts
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":"x","k":"ws_send"}',
    b'{"k":"ws_recv","t":-1,"c":"ws-1","r":7,"d":"x"}',
    b'{"k":"ws_recv","t":5,"c":1,"r":7,"d":"x"}',
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":true,"d":"x"}',
    b'{"k":"ws_recv","t":5.0,"c":"ws-1","r":7,"d":"x"}',
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":null}',
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":"x"',  # cut short
    b'{"k":"ws_recv","t":5,"c":"ws-1","r":7,"d":"\xff"}',  # not UTF-8
    b'{"k":"ws_recv","t":NaN,"c":"ws-1","r":7,"d":"x"}',
    b'{"k":"ws_send","t":9,"c":"ws-1","d":"y"}',
    b"   ",
])
TIMES = st.integers(0, 20)


def _line(t: int) -> bytes:
    return dump_line(WsRecv(t, "ws-1", '{"stream":"x","data":{"é":"\\u00e9\\n"}}', t * 10).to_json()).rstrip(b"\n")


LINES = st.lists(st.one_of(TIMES.map(_line), FRAME_LINES), max_size=12)


def _file(path: Path, lines: list[bytes], compressed: bool, per_frame: int) -> Path:
    body = [dump_line(HEADER.to_json()).rstrip(b"\n"), *lines]
    if not compressed:
        path.write_bytes(b"\n".join(body) + b"\n")
        return path
    c = zstandard.ZstdCompressor(write_checksum=True)
    path.write_bytes(b"".join(c.compress(b"\n".join(body[i:i + per_frame]) + b"\n")
                              for i in range(0, len(body), per_frame)))
    return path


def _read(path: Path) -> tuple[list, str | None, int]:
    rec = read_recording(path)
    return rec.events, None if rec.damage is None else rec.damage.message, rec.stats.raw_bytes


@settings(max_examples=200, deadline=None)
@given(lines=LINES, compressed=st.booleans(), per_frame=st.integers(1, 5))
def test_frames_read_as_the_general_path_reads_them(tmp_path_factory, lines: list[bytes], compressed: bool,
                                                    per_frame: int) -> None:
    """For any sequence of lines (writer-made frames, odd and broken frame lines, other kinds), plain or in
    zstd frames of any size, the fast path yields the events, damage message and byte counts the general path
    yields."""
    path = _file(tmp_path_factory.mktemp("fast") / ("r.jsonl.zst" if compressed else "r.jsonl"), lines,
                 compressed, per_frame)
    fast = _read(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reader_module, "_RECV_PREFIX", b"\x00never")  # every line the general way
        general = _read(path)
    assert fast == general


def test_writer_made_frames_never_reach_the_stdlib_parser(tmp_path: Path, monkeypatch) -> None:
    parsed: list[str] = []
    loads = json.loads

    def counting(text, **kwargs):  # type: ignore[no-untyped-def]
        parsed.append(text)
        return loads(text, **kwargs)

    monkeypatch.setattr(reader_module.json, "loads", counting)
    path = _file(tmp_path / "r.jsonl.zst", [_line(t) for t in range(100)], True, 30)
    events = read_recording(path).events
    assert len(events) == 100 and all(isinstance(e, WsRecv) for e in events)
    assert len(parsed) == 1  # the header
