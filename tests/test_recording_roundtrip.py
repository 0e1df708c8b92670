"""Property: what the writer writes, the reader reads back, for both encodings and any block size."""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.recording.format import (
    EVENT_TYPES,
    TRANSPORT_OPS,
    WS_CLOSE_VIA,
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
    WsSend,
)
from harness.recording.reader import read_recording
from harness.recording.writer import RecordingWriter

from .recording_helpers import HEADER

# Any code point, lone surrogates included: a str can hold them, so the format must carry them.
TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
CONN = st.text(st.characters(exclude_categories=()), min_size=1, max_size=6)
US = st.integers(0, 2**62)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)

# t is filled in afterwards (cumulative), so every strategy builds with t=0.
EVENTS = st.one_of(
    st.builds(WsOpen, st.just(0), CONN, TEXT),
    st.builds(WsClose, st.just(0), CONN, st.none() | st.integers(0, 4999), TEXT, st.sampled_from(WS_CLOSE_VIA)),
    st.builds(WsRecv, st.just(0), CONN, TEXT | st.binary(max_size=40), US),
    st.builds(WsSend, st.just(0), CONN, TEXT | st.binary(max_size=40)),
    st.builds(WsPing, st.just(0), CONN, st.binary(max_size=8), st.none() | US),
    st.builds(WsPong, st.just(0), CONN, st.binary(max_size=8), st.none() | US),
    st.builds(HttpRequestEvent, st.just(0), CONN, TEXT, TEXT,
              st.lists(st.tuples(TEXT, TEXT), max_size=4).map(tuple),
              st.dictionaries(TEXT, TEXT, max_size=4), st.none() | st.binary(max_size=40)),
    st.builds(HttpResponseEvent, st.just(0), CONN, st.integers(100, 599), st.dictionaries(TEXT, TEXT, max_size=4),
              st.binary(max_size=40) | TEXT.map(lambda s: s.encode("utf-8", "surrogatepass")), US),
    st.builds(TransportErrorEvent, st.just(0), st.none() | CONN, st.sampled_from(TRANSPORT_OPS), TEXT, TEXT,
              st.none() | TEXT),
    st.builds(UnknownEvent, st.just(0), TEXT.filter(lambda k: k and k not in EVENT_TYPES),
              st.dictionaries(TEXT.filter(lambda k: k not in ("k", "t")), JSON_VALUE, max_size=3)),
)


def timed(events: list, gaps: list[int]) -> list:
    out, t = [], 0
    for event, gap in zip(events, itertools.cycle(gaps or [0]), strict=False):
        t += gap
        out.append(dataclasses.replace(event, t=t))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(EVENTS, max_size=25),
    gaps=st.lists(st.integers(0, 10**12), max_size=5),
    compressed=st.booleans(),
    block_events=st.integers(1, 30),
    block_bytes=st.integers(1, 4000),
)
def test_write_then_read_gives_the_same_events(events, gaps, compressed, block_events, block_bytes) -> None:
    """Reading a recording yields exactly the (redacted) events written, in order, then the end event."""
    events = timed(events, gaps)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("r.jsonl.zst" if compressed else "r.jsonl")
        writer = RecordingWriter(path, HEADER, block_events=block_events, block_bytes=block_bytes)
        for event in events:
            writer.write(event)
        writer.close()
        rec = read_recording(path)
    expected = [writer.redactor.event(e) for e in events]
    assert rec.damage is None
    assert rec.header == writer.header
    assert rec.events[:-1] == expected
    assert isinstance(rec.events[-1], RecordingEnd) and rec.complete
