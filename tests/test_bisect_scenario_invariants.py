"""``bisect --invariants`` with the fault scenarios' invariants that apply to an unfaulted recording."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.bisect.core import core_lines
from harness.bisect.invariants import REGISTRY, Record, scenario_invariant
from harness.bisect.synth import write_synthetic
from harness.bisect.verdict import judge_invariants
from harness.cli import main
from harness.recording.reader import read_recording


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Record]]:
    path = tmp_path_factory.mktemp("scenario") / "rec.jsonl.zst"
    write_synthetic(path, 1200, seed=11)
    records = [(json.loads(line), frame) for line, frame in core_lines(read_recording(path))]
    return path, records


def test_the_scenario_invariants_are_registered_and_hold_on_a_clean_replay(
        recorded: tuple[Path, list[Record]], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = recorded
    assert {"scenario-a", "scenario-c"} <= set(REGISTRY)
    assert main(["bisect", str(path), "--invariants", "scenario-a,scenario-c"]) == 0
    assert "good: scenario-a, scenario-c: hold" in capsys.readouterr().out
    assert main(["bisect", str(path), "--invariants"]) == 0  # all of them, these included


def test_a_book_bug_is_bad_by_scenario_a_at_a_depth_frame(
        recorded: tuple[Path, list[Record]], capsys: pytest.CaptureFixture[str]) -> None:
    from tests import bisect_bug

    path, _ = recorded
    bisect_bug.install()
    try:
        verdict = judge_invariants(path, ["scenario-a"])
        code = main(["bisect", str(path), "--invariants", "scenario-a"])
    finally:
        bisect_bug.remove()
    assert verdict.status == "bad" and code == 1
    assert verdict.detail["invariant"] == "scenario-a" and verdict.detail["record"]["type"] == "book"
    assert '"stream":"depth.' in read_recording(path).events[verdict.frame].data
    assert "[(a) every book the client emits equals the reference book" in capsys.readouterr().out


def test_scenario_a_names_the_wrong_line_and_scenario_c_a_repeated_or_missing_trade(
        recorded: tuple[Path, list[Record]]) -> None:
    path, records = recorded
    events = read_recording(path).events
    book = next(i for i, (r, _) in enumerate(records) if r["type"] == "book" and r["kind"] == "delta" and r["bids"])
    broken = [(dict(r, bids=r["bids"][1:]) if i == book else r, f) for i, (r, f) in enumerate(records)]
    violation = scenario_invariant("a")(broken, events)
    assert violation is not None and (violation.index, violation.frame) == (book, records[book][1])
    assert "bids" in violation.message
    trade = next(i for i, (r, _) in enumerate(records) if r["type"] == "trade")
    violation = scenario_invariant("c")([*records[: trade + 1], *records[trade:]], events)
    assert violation is not None and violation.index == trade + 1 and "emitted twice" in violation.message
    violation = scenario_invariant("c")([*records[:trade], *records[trade + 1:]], events)
    assert violation is not None and (violation.index, violation.frame) == (len(records) - 1, None)
    assert f"trade {records[trade][0]['id']} " in violation.message and "never emitted" in violation.message
    assert scenario_invariant("a")([], []) is None and scenario_invariant("c")(records, events) is None
