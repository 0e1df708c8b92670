"""The pytest plugin as a user meets it: record once, replay offline, refuse to dial out in mode none."""

from __future__ import annotations

import json

import pytest

from harness.recording.format import HttpRequestEvent, HttpResponseEvent
from harness.recording.reader import read_recording
from harness.recording.writer import write_recording

pytest_plugins = ["pytester"]

INNER = '''
import json
from pathlib import Path

import pytest


@pytest.mark.backpack_recording("session", seed=5)
async def test_book_and_trades(backpack_recording):
    feed = backpack_recording.feed(symbols=["SOL-USDC"], channels=["trades", "l2_book"])
    await backpack_recording.run(feed, steps=200)
    out = Path(__file__).with_name(f"normalized-{backpack_recording.mode}.jsonl")
    out.write_text("".join(line + "\\n" for line in backpack_recording.normalized))
    kinds = {json.loads(line)["type"] for line in backpack_recording.normalized}
    assert {"trade", "book"} <= kinds
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER)
    return pytester


def _run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "no:cacheprovider", "--recordings-dir", str(project.path / "rec"),
                                        *args, timeout=300)


def test_once_records_then_none_replays_the_same_events(project: pytest.Pytester) -> None:
    first = _run(project, "--record-mode=once")
    first.assert_outcomes(passed=1)
    recording = project.path / "rec" / "session.jsonl.zst"
    assert recording.exists() and read_recording(recording).complete
    second = _run(project)  # the default mode is none: offline replay
    second.assert_outcomes(passed=1)
    recorded = (project.path / "normalized-record.jsonl").read_text()
    replayed = (project.path / "normalized-replay.jsonl").read_text()
    assert recorded and replayed == recorded  # receipts included: the replay hands back recorded times
    made = read_recording(recording).header.created_at
    third = _run(project, "--record-mode=once")  # exists now: replayed, not recorded again
    third.assert_outcomes(passed=1)
    assert read_recording(recording).header.created_at == made


def test_none_without_the_recording_fails_and_says_how_to_make_it(project: pytest.Pytester) -> None:
    result = _run(project, "--record-mode=none")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*does not exist and --record-mode is none: run with --record-mode=once*"])


def test_none_refuses_at_the_transport_a_request_the_recording_lacks(project: pytest.Pytester) -> None:
    _run(project, "--record-mode=once").assert_outcomes(passed=1)
    path = project.path / "rec" / "session.jsonl.zst"
    rec = read_recording(path)
    depth = {e.conn for e in rec.events if isinstance(e, HttpRequestEvent) and "/depth" in e.url}
    assert depth
    kept = [e for e in rec.events if not (isinstance(e, HttpRequestEvent | HttpResponseEvent) and e.conn in depth)]
    write_recording(path, rec.header, [e for e in kept if type(e).__name__ != "RecordingEnd"])
    result = _run(project, "--record-mode=none")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replay refused GET http://127.0.0.1:*/api/v1/depth?symbol=SOL_USDC&limit=1000*"])


def test_rewrite_deletes_and_records_again(project: pytest.Pytester) -> None:
    _run(project, "--record-mode=once").assert_outcomes(passed=1)
    path = project.path / "rec" / "session.jsonl.zst"
    before = read_recording(path).header.created_at
    _run(project, "--record-mode=rewrite").assert_outcomes(passed=1)
    after = read_recording(path).header
    assert after.created_at != before and after.meta["recorded_by"] == "harness.pytest_plugin"
    assert json.loads(json.dumps(after.meta["subscription"])) == {"trades": ["SOL-USDC"], "l2_book": ["SOL-USDC"]}
