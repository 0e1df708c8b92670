"""shrink: a 10,000-frame failing recording down to a handful of events, with a test that pins the bug."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bisect.ddmin import Oracle, ddmin
from harness.bisect.invariants import book_invariant, trades_invariant
from harness.bisect.synth import write_synthetic
from harness.bisect.verdict import judge_invariants
from harness.cli import main
from harness.recording.format import HttpRequestEvent, WsOpen, WsRecv, WsSend
from harness.recording.reader import read_recording
from tests import bisect_bug

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def bug() -> object:
    bisect_bug.install()
    yield bisect_bug
    bisect_bug.remove()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shrink") / "big.jsonl.zst"
    write_synthetic(path, 10_000, seed=3)
    return path


def _pytest(test: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(test)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_shrink_reduces_ten_thousand_frames_to_a_minimal_recording_whose_test_catches_the_bug(
        big: Path, tmp_path: Path, bug: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert sum(isinstance(e, WsRecv) for e in read_recording(big).events) == 10_000
    out = tmp_path / "regressions" / "best_bid_delete.jsonl"
    assert main(["shrink", str(big), "--invariant", "book", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "fails with: " in printed and "bids" in printed
    small = read_recording(out)
    assert len(small.events) <= 20
    kinds = [type(e) for e in small.events]
    assert WsOpen in kinds and WsSend in kinds and HttpRequestEvent in kinds  # still a valid session
    assert judge_invariants(out, ["book"], mode="feed").status == "bad"  # the full feed fails on it too
    test = out.with_name("test_best_bid_delete.py")
    assert test.exists()
    bisect_bug.remove()
    assert judge_invariants(out, ["book"], mode="feed").status == "good"
    passed = _pytest(test)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    failed = _pytest(test, "-p", "tests.bisect_bug")
    assert failed.returncode == 1 and "invariant book broken" in failed.stdout


def test_shrink_with_a_command_keeps_what_makes_the_command_fail(tmp_path: Path) -> None:
    source = tmp_path / "small.jsonl"
    write_synthetic(source, 120, seed=4)
    events = read_recording(source).events
    marker = next(e for e in events if isinstance(e, WsRecv) and '"trade.' in e.data and e.t > events[60].t)
    trade_id = json.loads(marker.data)["data"]["t"]
    script = tmp_path / "check.py"
    script.write_text("import json, sys\nfrom harness.recording.reader import read_events\n"
                      f"ids = [json.loads(e.data)['data'].get('t') for e in read_events(sys.argv[1]) if e.kind == 'ws_recv']\n"
                      f"sys.exit(3 if {trade_id} in ids else 0)\n")
    check = f"{sys.executable} {script}"
    out = tmp_path / "min.jsonl"
    assert main(["shrink", str(source), "--check", check, "--out", str(out), "--no-progress"]) == 0
    frames = [e for e in read_recording(out).events if isinstance(e, WsRecv)]
    assert [e.data for e in frames] == [marker.data]
    assert main(["shrink", str(source), "--check", f"{sys.executable} -c pass", "--out", str(out),
                 "--no-progress"]) == 65  # it does not fail: nothing to shrink


def test_invariants_see_the_bug_and_hold_without_it(big: Path, bug: object) -> None:
    verdict = judge_invariants(big, ["book"])
    assert verdict.status == "bad" and verdict.frame is not None
    event = read_recording(big).events[verdict.frame]
    data = json.loads(event.data)["data"]
    assert any(size.strip("0.") == "" for _price, size in data["b"])  # the frame deletes a bid level
    bisect_bug.remove()
    assert judge_invariants(big, ["book", "trades"]).status == "good"


def test_the_book_invariant_compares_book_lines_and_the_trade_invariant_catches_a_repeat() -> None:
    rec = read_recording(ROOT / "recordings" / "public.jsonl.zst")
    from harness.bisect.core import core_lines

    records = [(json.loads(line), frame) for line, frame in core_lines(rec)][:4000]
    assert book_invariant()(records, rec.events) is None
    book = next(i for i, (r, _) in enumerate(records) if r["type"] == "book" and r["kind"] == "delta" and r["bids"])
    broken = [(dict(r, bids=r["bids"][1:]) if i == book else r, f) for i, (r, f) in enumerate(records)]
    violation = book_invariant()(broken, rec.events)
    assert violation is not None and violation.index == book and violation.frame == records[book][1]
    trade = next(i for i, (r, _) in enumerate(records) if r["type"] == "trade")
    repeated = [*records[: trade + 1], records[trade], *records[trade + 1:]]
    violation = trades_invariant()(repeated, rec.events)
    assert violation is not None and violation.index == trade + 1


@given(st.sets(st.integers(0, 199), min_size=1, max_size=6))
def test_ddmin_finds_exactly_the_units_a_failure_needs(needed: set[int]) -> None:
    """When a subset fails exactly when it holds every needed unit, ddmin returns the needed units."""
    tester = Oracle(lambda subset: needed <= set(subset))
    assert sorted(ddmin(list(range(200)), tester)) == sorted(needed)
    assert tester.tests < 60 * len(needed) + 20
