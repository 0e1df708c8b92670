"""``backpack-harness replay | inspect | cassette`` as a user runs them: subprocesses, exit codes, stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zstandard

from harness.cli import EXIT_CONFORMANCE, EXIT_DATAERR, EXIT_NOINPUT, EXIT_UNSUPPORTED
from harness.recording.format import (
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    WsOpen,
    WsRecv,
    WsSend,
)
from harness.recording.reader import read_recording
from harness.recording.writer import write_recording
from harness.replay import replay_normalized

from .recording_helpers import zstd_frames
from .test_replay import FIXTURE, HANDWRITTEN
from .test_replay_roundtrip import record_session


def cli(*argv: str, hashseed: str = "0", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.run([sys.executable, "-m", "harness", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- replay -----------------------------------------------------------------------------------------


def test_replay_prints_one_schema_v1_line_per_event() -> None:
    proc = cli("replay", str(FIXTURE))
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert [line for line, want in zip(lines, HANDWRITTEN, strict=True) if want is not None] == [
        want for want in HANDWRITTEN if want is not None]
    proc = cli("replay", str(FIXTURE), "--depth", "1", "--from", "5.5ms", "--to", "0.0065")
    assert proc.stdout.splitlines() == [HANDWRITTEN[1]]  # the trade only: after the snapshot, before the delta


@pytest.mark.e2e
async def test_replays_in_processes_with_different_hash_seeds_are_byte_identical(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl.zst"
    live = await record_session(path, seed=21, steps=(250, 150))
    first = cli("replay", str(path), hashseed="1")
    second = cli("replay", str(path), hashseed="4242")
    assert first.returncode == second.returncode == 0
    assert first.stdout.encode() == second.stdout.encode()
    assert first.stdout.splitlines() == live  # and both are what the live feed delivered
    hand = [cli("replay", str(FIXTURE), hashseed=seed).stdout for seed in ("7", "random")]
    assert hand[0] == hand[1] != ""


def _zst(path: Path, block_events: int = 3) -> list[str]:
    rec = read_recording(FIXTURE)
    write_recording(path, rec.header, rec.events, block_events=block_events)
    return replay_normalized(path)


def test_a_truncated_recording_prints_what_came_before_the_damage_then_exits_65(tmp_path: Path) -> None:
    full = tmp_path / "full.jsonl.zst"
    expected = _zst(full)
    data = full.read_bytes()
    frames = zstd_frames(data)
    cut = tmp_path / "cut.jsonl.zst"
    cut.write_bytes(data[: frames[4][0] + 9])  # inside the fifth frame: events 1-9 survive
    proc = cli("replay", str(cut))
    assert proc.returncode == EXIT_DATAERR
    assert "truncated zstd frame" in one_line_error(proc) and "9 events read before it" in proc.stderr
    printed = proc.stdout.splitlines()
    assert printed and printed == expected[: len(printed)] and len(printed) < len(expected)
    assert printed == [HANDWRITTEN[0]]  # the snapshot was answered before the cut, the trade was after


def test_a_corrupt_recording_exits_65_after_the_intact_part(tmp_path: Path) -> None:
    full = tmp_path / "full.jsonl.zst"
    _zst(full)
    data = bytearray(full.read_bytes())
    frames = zstd_frames(bytes(data))
    data[frames[5][1] - 2] ^= 0xFF  # the checksum of the sixth frame
    bad = tmp_path / "bad.jsonl.zst"
    bad.write_bytes(bytes(data))
    proc = cli("replay", str(bad))
    assert proc.returncode == EXIT_DATAERR and "corrupt zstd frame" in one_line_error(proc)
    assert proc.stdout.splitlines()[:1] == [HANDWRITTEN[0]]


@pytest.mark.parametrize(("content", "code", "words"), [
    (b"", EXIT_NOINPUT, "empty recording"),
    (b"   \n\n", EXIT_NOINPUT, "empty recording"),
    (b'{"format":"backpack-recording","version":"2.0","created_at":"x"}\n', EXIT_UNSUPPORTED,
     "recording format version 2.0 is not supported (this reader reads 1.x"),
    (b"this is not json\n", EXIT_DATAERR, "no readable header"),
    (b'{"format":"something-else","version":"1.0"}\n', EXIT_DATAERR, "'format' must be 'backpack-recording'"),
])
@pytest.mark.parametrize("command", ["replay", "inspect"])
def test_unusable_recordings_give_one_line_and_their_exit_code(tmp_path: Path, content: bytes, code: int,
                                                               words: str, command: str) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(content)
    proc = cli(command, str(path))
    assert proc.returncode == code and words in one_line_error(proc) and proc.stdout == ""


def test_a_missing_file_and_a_zst_that_is_not_zstd(tmp_path: Path) -> None:
    proc = cli("replay", str(tmp_path / "nope.jsonl"))
    assert proc.returncode == EXIT_NOINPUT and "cannot read recording" in one_line_error(proc)
    fake = tmp_path / "fake.jsonl.zst"
    fake.write_bytes(FIXTURE.read_bytes())
    proc = cli("replay", str(fake))
    assert proc.returncode == EXIT_DATAERR and "not a zstd file" in one_line_error(proc)
    compressed = tmp_path / "real.jsonl.zst"
    compressed.write_bytes(zstandard.ZstdCompressor().compress(FIXTURE.read_bytes()))  # one frame: valid too
    assert cli("replay", str(compressed)).stdout == cli("replay", str(FIXTURE)).stdout


def test_a_conformance_failure_exits_5_with_the_refusal(tmp_path: Path) -> None:
    rec = read_recording(FIXTURE)
    path = tmp_path / "no-depth.jsonl"
    write_recording(path, rec.header, [e for e in rec.events if getattr(e, "conn", None) != "http-2"])
    proc = cli("replay", str(path))
    assert proc.returncode == EXIT_CONFORMANCE
    line = one_line_error(proc)
    assert "replay refused GET http://127.0.0.1:9100/api/v1/depth?symbol=SOL_USDC&limit=1000" in line


def test_a_header_without_symbols_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_recording(path, Header(created_at="2025-01-01T00:00:00.000000Z"), [RecordingEnd(1)])
    proc = cli("replay", str(path))
    assert proc.returncode == EXIT_DATAERR and "names no symbols" in one_line_error(proc)


def test_the_progress_bar_goes_to_stderr_only(tmp_path: Path) -> None:
    proc = cli("replay", str(FIXTURE), "--progress")
    assert proc.returncode == 0 and "frame" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == cli("replay", str(FIXTURE)).stdout  # stderr is not a terminal: no bar unasked


def test_bad_arguments_are_usage_errors() -> None:
    for argv in (["--depth", "0"], ["--from", "soon"], ["--speed", "-1"], ["--mode", "rewrite"],
                 ["--from", "2", "--to", "1"]):
        proc = cli("replay", str(FIXTURE), *argv)
        assert proc.returncode == 64 and "Traceback" not in proc.stderr, argv


# --- inspect ------------------------------------------------------------------------------------------


def _depth(t: int, first: int, last: int) -> WsRecv:
    text = json.dumps({"stream": "depth.SOL_USDC", "data": {"e": "depth", "s": "SOL_USDC", "a": [], "b": [],
                                                             "U": first, "u": last}}, separators=(",", ":"))
    return WsRecv(t, "a" if t < 100 else "b", text, t)


def test_inspect_reports_counts_span_reconnects_ratio_and_sequence_gaps(tmp_path: Path) -> None:
    events = [
        WsOpen(1, "a", "ws://x/ws"), WsSend(1, "a", "{}"),
        _depth(10, 5, 5), _depth(20, 6, 7), _depth(30, 9, 9), _depth(40, 10, 12), _depth(50, 20, 21),
        WsOpen(100, "b", "ws://x/ws"), _depth(110, 50, 50), _depth(120, 51, 51),  # new connection: starts over
        HttpRequestEvent(130, "http-1", "GET", "http://x/api/v1/depth"),
        HttpResponseEvent(140, "http-1", 200, {}, b"{}", 140), RecordingEnd(2_000_000_000),
    ]
    path = tmp_path / "r.jsonl.zst"
    write_recording(path, Header(created_at="2025-01-01T00:00:00.000000Z", symbols=("SOL-USDC",)), events,
                    block_events=4)
    proc = cli("inspect", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    gaps = info["sequence_gaps"]["depth.SOL_USDC"]
    assert (gaps["deltas"], gaps["gaps"]) == (7, 2)
    assert [(g["connection"], g["expected"], g["got"]) for g in gaps["at"]] == [("a", 8, 9), ("a", 13, 20)]
    assert info["streams"] == {"depth.SOL_USDC": 7} and info["reconnects"] == 1 and info["complete"] is True
    assert info["span_ns"] == 2_000_000_000 - 1 and info["compression"] == "zstd" and info["ratio"] > 1
    text = cli("inspect", str(path)).stdout
    assert "depth       depth.SOL_USDC" in text and "7 deltas, 2 gaps" in text
    assert "a t=0.000000 s: expected U=13, got U=20" in text and "connections 2 (1 reconnects)" in text


def test_inspect_of_a_damaged_recording_reports_the_damage_and_exits_65(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    path.write_bytes(FIXTURE.read_bytes()[:-40])
    proc = cli("inspect", str(path))
    assert proc.returncode == EXIT_DATAERR and "cut short" in one_line_error(proc)
    assert "damage      " in proc.stdout and "events      16" in proc.stdout


# --- cassette -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_cassette_export_then_import_gives_back_the_same_recording(tmp_path: Path, suffix: str) -> None:
    source = FIXTURE
    if suffix == ".json":  # vcrpy's JSON serializer holds text only: the fixture's 503 body is binary
        proc = cli("cassette", "export", str(FIXTURE), "--out", str(tmp_path / "binary.json"))
        assert proc.returncode == EXIT_DATAERR and "cannot hold a binary body" in one_line_error(proc)
        rec = read_recording(FIXTURE)
        source = tmp_path / "text-only.jsonl"
        write_recording(source, rec.header, [e for e in rec.events if getattr(e, "conn", None) != "http-3"])
    cassette = tmp_path / f"c{suffix}"
    proc = cli("cassette", "export", str(source), "--out", str(cassette))
    assert proc.returncode == 0 and f"{3 if suffix == '.yaml' else 2} REST exchanges" in proc.stderr
    new = tmp_path / "new.jsonl.zst"
    proc = cli("cassette", "import", str(cassette), "--into", str(source), "--out", str(new))
    assert proc.returncode == 0, proc.stderr
    assert read_recording(new).events == read_recording(source).events
    assert cli("replay", str(new)).stdout == cli("replay", str(source)).stdout


def test_a_foreign_cassette_answers_the_feed_whenever_it_asks(tmp_path: Path) -> None:
    """A cassette recorded elsewhere has no times: its answers are there from the start."""
    rec = read_recording(FIXTURE)
    markets, depth = (e for e in rec.events if isinstance(e, HttpResponseEvent) and e.status == 200)
    cassette = tmp_path / "foreign.yaml"
    cassette.write_text(
        "interactions:\n"
        + "".join(
            f"- request:\n    body: null\n    headers: {{}}\n    method: GET\n    uri: {uri}\n"
            f"  response:\n    body:\n      string: {json.dumps(body.decode())}\n"
            "    headers:\n      Content-Type:\n      - application/json\n    status:\n      code: 200\n"
            "      message: OK\n"
            for uri, body in (
                # query in another order than the feed sends it: vcrpy's query matcher is order-blind
                ("http://127.0.0.1:9100/api/v1/depth?limit=1000&symbol=SOL_USDC", depth.body),
                ("http://127.0.0.1:9100/api/v1/markets?marketType=SPOT&marketType=PERP&marketType=IPERP"
                 "&marketType=DATED&marketType=PREDICTION", markets.body),
            ))
        + "version: 1\n")
    new = tmp_path / "new.jsonl"
    proc = cli("cassette", "import", str(cassette), "--into", str(FIXTURE), "--out", str(new))
    assert proc.returncode == 0 and "2 exchanges" in proc.stderr and "in place of 6 REST events" in proc.stderr
    lines = cli("replay", str(new)).stdout.splitlines()
    assert json.loads(lines[0])["kind"] == "snapshot" and json.loads(lines[0])["sequence"] == 502
    assert json.loads(lines[0])["receipt"] == rec.header.start_us  # no recorded receipt: t = 0


def test_cassette_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("interactions: [\n")
    proc = cli("cassette", "import", str(bad), "--into", str(FIXTURE), "--out", str(tmp_path / "n.jsonl"))
    assert proc.returncode == EXIT_DATAERR and "not a vcrpy cassette" in one_line_error(proc)
    proc = cli("cassette", "export", str(FIXTURE), "--out", str(tmp_path / "c.txt"))
    assert proc.returncode == EXIT_DATAERR and "must end in .yaml" in one_line_error(proc)
    proc = cli("cassette", "import", str(tmp_path / "none.yaml"), "--into", str(FIXTURE), "--out",
               str(tmp_path / "n.jsonl"))
    assert proc.returncode == EXIT_DATAERR and "no such cassette" in one_line_error(proc)
    proc = cli("cassette", "import", str(bad), "--into", str(FIXTURE), "--out", str(FIXTURE))
    assert proc.returncode == EXIT_DATAERR and "--out must be a new file" in one_line_error(proc)
