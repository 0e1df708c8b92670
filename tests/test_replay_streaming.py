"""Replaying a recording file streams its frames: memory does not grow with the file, output does not change."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
from pathlib import Path

import pytest

from harness.recording.format import WsRecv
from harness.recording.reader import read_recording
from harness.recording.writer import write_recording
from harness.replay import replay_normalized, replay_stream
from harness.transports.replay import ReplayError, ReplayTransport
from harness.transports.replay_timeline import WINDOW, ReplayTimeline, StreamedEvents

FIXTURE = Path(__file__).parent / "fixtures" / "recordings" / "handwritten.jsonl"
LIVE_FRAMES_BOUND = 4 * WINDOW  # frames alive at once, whatever the length of the file


def _long(tmp_path: Path, trades: int) -> Path:
    """The handwritten recording with ``trades`` more trade frames after its trade (t stays ordered)."""
    rec = read_recording(FIXTURE)
    at = next(i for i, e in enumerate(rec.events) if isinstance(e, WsRecv) and '"trade"' in str(e.data))
    first = rec.events[at]
    assert isinstance(first, WsRecv) and isinstance(first.data, str)
    extra = []
    for n in range(trades):
        data = json.loads(first.data)
        data["data"]["t"] = 1000 + n
        extra.append(dataclasses.replace(first, t=first.t + 40 * (n + 1), data=json.dumps(data)))
    out = tmp_path / f"long-{trades}.jsonl.zst"
    write_recording(out, rec.header, [*rec.events[:at + 1], *extra, *rec.events[at + 1:]])
    return out


def _live_frames() -> int:
    return sum(1 for o in gc.get_objects() if type(o) is WsRecv)


def _peak_live_frames(path: Path, trades: int) -> tuple[int, int]:
    """Most recorded frames alive at a few points of the replay of ``path``, and the lines it printed."""
    samples: list[int] = []
    due = {trades // 4, trades // 2, 3 * trades // 4}

    def probe(transport: ReplayTransport) -> None:
        if any(transport.stats.events >= d for d in due):
            due.difference_update({d for d in due if transport.stats.events >= d})
            samples.append(_live_frames())

    lines: list[str] = []
    asyncio.run(replay_stream(path, lines.append, progress=probe))
    assert len(samples) == 3  # the probe ran mid-replay, not only at the end
    return max(samples), len(lines)


@pytest.mark.parametrize("trades", [2_000, 8_000])
def test_replaying_a_file_holds_a_bounded_number_of_frames_whatever_its_length(tmp_path: Path, trades: int) -> None:
    """Invariant: while a file of N frames replays, at most a fixed number of its frames are in memory."""
    path = _long(tmp_path, trades)
    gc.collect()
    before = _live_frames()
    peak, lines = _peak_live_frames(path, trades)
    assert lines == 5 + trades  # every added trade became a line: the whole file was replayed
    assert peak - before <= LIVE_FRAMES_BOUND, f"{peak - before} frames alive replaying {trades}"


def test_a_streamed_replay_prints_what_the_in_memory_replay_prints(tmp_path: Path) -> None:
    """Invariant: the file streamed and the same recording read into memory replay to identical lines."""
    path = _long(tmp_path, 600)
    streamed = replay_normalized(path)
    assert streamed == replay_normalized(read_recording(path))
    assert replay_normalized(path, stop=0.0065) == replay_normalized(read_recording(path), stop=0.0065)
    later = replay_normalized(path, start=0.006006)  # the added trades are 40 ns apart: 149 come before it
    assert later == replay_normalized(read_recording(path), start=0.006006) == streamed[2 + 149:]


def test_the_window_never_holds_more_than_its_size_and_says_when_an_event_is_gone(tmp_path: Path) -> None:
    """Invariant: a streamed timeline holds at most WINDOW events; one behind the window is an IndexError."""
    path = _long(tmp_path, 300)
    timeline = ReplayTimeline.scan(path)
    try:
        events = timeline.events
        assert isinstance(events, StreamedEvents)
        walked = [events[i] for i in range(len(events))]
        assert walked == read_recording(path).events
        assert events.peak <= WINDOW
        with pytest.raises(IndexError, match="behind the replay's window"):
            events[len(events) - WINDOW - 1]
        assert events[2] == walked[2]  # the connect attempts (here ws_open) are kept by the index
    finally:
        timeline.close()


def test_a_file_rewritten_shorter_during_the_replay_is_named_not_a_crash(tmp_path: Path) -> None:
    """A file that lost events between the index pass and the walk ends the replay in one clear error."""
    path = _long(tmp_path, 50)
    indexed = ReplayTimeline.scan(path)
    indexed.close()
    rec = read_recording(path)
    write_recording(path, rec.header, rec.events[:20])  # and the end the writer adds
    stale = dataclasses.replace(indexed, events=StreamedEvents(path, indexed.index))
    lines: list[str] = []
    with pytest.raises(ReplayError, match="the file ended after 21 events, but it had 69"):
        asyncio.run(replay_stream(stale, lines.append))
    assert lines  # what was there was replayed first
