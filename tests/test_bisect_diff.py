"""diff and bisect report exactly the frame where a divergence was injected."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from backpack.protocol.router import Router
from harness.bisect.diff import first_divergence
from harness.bisect.sides import Item, Side
from harness.bisect.synth import write_synthetic
from harness.cli import main
from harness.recording.format import WsRecv
from harness.recording.reader import read_recording
from harness.recording.writer import RecordingWriter
from harness.replay import replay_normalized

FRAMES = 1200


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A recording, its golden output (full replay) and the index of a trade frame late in it."""
    tmp = tmp_path_factory.mktemp("bisect")
    path = tmp / "rec.jsonl.zst"
    write_synthetic(path, FRAMES, seed=11)
    golden = tmp / "golden.jsonl"
    golden.write_text("".join(line + "\n" for line in replay_normalized(path)))
    events = read_recording(path).events
    trades = [i for i, e in enumerate(events) if isinstance(e, WsRecv) and '"trade.' in e.data]
    return path, golden, trades[len(trades) * 3 // 4]


def _inject(monkeypatch: pytest.MonkeyPatch, receipt: int) -> None:
    """This revision gets the trade with that receipt wrong: a regression that touches one frame."""
    original = Router.receive_frame

    def wrong(self: Router, data: Any, rc: int = 0) -> list[Any]:
        out = original(self, data, rc)
        if rc == receipt:
            out = [dataclasses.replace(o, price=o.price + 1) if hasattr(o, "price") else o for o in out]
        return out

    monkeypatch.setattr(Router, "receive_frame", wrong)


def test_bisect_and_diff_name_the_frame_of_an_injected_regression(
        recorded: tuple[Path, Path, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path, golden, frame = recorded
    event = read_recording(path).events[frame]
    assert main(["bisect", str(path), "--golden", str(golden), "--json"]) == 0  # clean revision: good
    capsys.readouterr()
    _inject(monkeypatch, event.receipt)
    for mode in ("core", "feed"):
        assert main(["bisect", str(path), "--golden", str(golden), "--json", "--mode", mode]) == 1
        verdict = json.loads(capsys.readouterr().out)
        assert verdict["status"] == "bad" and verdict["frame"] == frame and verdict["event"] == frame + 1
        assert verdict["mode"] == mode
        assert [f["field"] for f in verdict["detail"]["fields"]] == ["price"]
    assert main(["diff", str(path), str(golden), "--context", "2"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith(f"input: event {frame + 1} (ws_recv on ws-1, t=")
    assert event.data in out  # the exact frame text
    assert "fields: price:" in out and out.count(f"[event {frame + 1}]") == 1


def test_diff_of_two_recordings_finds_the_frame_that_was_changed(recorded: tuple[Path, Path, int],
                                                                tmp_path: Path) -> None:
    path, golden, frame = recorded
    rec = read_recording(path)
    event = rec.events[frame]
    changed = dataclasses.replace(event, data=event.data.replace('"q":"', '"q":"9'))
    other = tmp_path / "other.jsonl"
    writer = RecordingWriter(other, rec.header)
    for e in rec.events:
        writer.write(changed if e is event else e)
    writer.close(end=False)
    found = first_divergence(Side(path).items(), Side(other).items())
    assert found is not None and found.frame == frame
    assert [f.field for f in found.fields] == ["amount"]
    assert main(["diff", str(path), str(path)]) == 0
    assert main(["diff", str(golden), str(path)]) == 0  # a golden file against its recording's replay


def test_equal_values_in_other_spellings_are_not_a_divergence_and_a_missing_tail_is() -> None:
    a = [Item('{"price":"86700.0","type":"trade"}'), Item('{"type":"trade","x":1}')]
    b = [Item('{"price":"86700","type":"trade"}'), Item('{"type":"trade","x":1}'), Item('{"type":"trade","x":2}')]
    assert first_divergence(a[:2], b[:2]) is None
    found = first_divergence(a, b)
    assert found is not None and found.index == 2 and found.a is None and found.b == b[2]
    assert [x.line for x, _ in found.before] == [a[0].line, a[1].line][-3:]
    odd = first_divergence([Item("not json")], [Item("not json either")])
    assert odd is not None and odd.fields[0].field == "line"


def test_inputs_that_cannot_be_read_exit_with_the_recording_codes(tmp_path: Path, recorded: tuple[Path, Path, int]
                                                                 ) -> None:
    path, golden, _ = recorded
    assert main(["diff", str(tmp_path / "missing.jsonl"), str(golden)]) == 66
    assert main(["bisect", str(tmp_path / "missing.jsonl"), "--golden", str(golden)]) == 128
    assert main(["bisect", str(path), "--golden", str(tmp_path / "missing.jsonl")]) == 128
    assert main(["bisect", str(path), "--invariants", "nonsense"]) == 128
    future = tmp_path / "future.jsonl"
    future.write_text(json.dumps({"format": "backpack-recording", "version": "9.0", "created_at": "x"}) + "\n")
    assert main(["diff", str(future), str(golden)]) == 76
    assert main(["bisect", str(future), "--golden", str(golden)]) == 125  # this revision cannot read it: skip


def test_bisect_by_ccxt_calls_a_book_bug_bad_at_a_depth_frame_and_the_clean_revision_good(
        recorded: tuple[Path, Path, int]) -> None:
    from harness.bisect.verdict import judge_ccxt, judge_invariants
    from tests import bisect_bug

    path, _, _ = recorded
    assert judge_ccxt(path).status == "good"
    bisect_bug.install()
    try:
        by_ccxt, by_invariant = judge_ccxt(path), judge_invariants(path, ["book"])
    finally:
        bisect_bug.remove()
    assert by_ccxt.status == by_invariant.status == "bad"
    events = read_recording(path).events
    assert '"stream":"depth.' in events[by_ccxt.frame].data and by_ccxt.detail["type"] == "book"
    # ccxt's book is comparable only once it has synchronised itself: never before the first wrong line
    assert by_ccxt.frame >= by_invariant.frame
