"""The main job (``backpack-harness demo``) end to end, shortened: live with a gap while recording, replay,
parity report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.demo import format_report, run_demo
from harness.recording.reader import read_recording

pytestmark = pytest.mark.e2e


async def test_demo_records_replays_and_reports_the_gap(tmp_path: Path) -> None:
    lines: list[str] = []
    report = await run_demo(seed=2, steps=400, symbols=("SOL-USDC", "BTC-USDC-PERP"), out=tmp_path,
                            say=lines.append)
    assert report["native_exact"] is True and report["replay_identical"] is True
    sol, btc = report["symbols"]["SOL-USDC"], report["symbols"]["BTC-USDC-PERP"]
    assert sol["native"]["top_equal"] and sol["native"]["resyncs"] == 1  # the injected gap, detected once
    assert btc["native"]["resyncs"] == 0  # other symbols untouched
    assert report["trades"]["native"]["missing"] == 0
    assert report["trades"]["server_sent"] == report["trades"]["native"]["unique"] > 0
    # the recording is complete and the parity report shows ccxt applying the gap under deviation 1
    assert read_recording(report["recording"]).complete
    assert sorted(Path(p).name for p in report["report"]) == ["report.html", "report.json", "report.md"]
    gaps = report["parity"]["ccxt_gaps_applied"]
    assert report["parity"]["passed"] and [g["symbol"] for g in gaps] == ["SOL-USDC"]
    assert report["parity"]["deviations"].get("ccxt-01-unchecked-gaps", 0) > 0
    assert any(line.startswith("4. replay of the recording: identical") for line in lines)
    assert "native path exact: yes; replay identical: yes; GA gate PASS" in format_report(report)


async def test_demo_without_fault_has_no_resync(tmp_path: Path) -> None:
    report = await run_demo(seed=3, steps=200, symbols=("SOL-USDC",), fault=False, out=tmp_path, parity=False,
                            say=lambda _m: None)
    assert report["fault"] is None and report["parity"] is None
    assert report["symbols"]["SOL-USDC"]["native"]["resyncs"] == 0
    assert report["native_exact"] is True and report["replay_identical"] is True


def test_demo_cli_writes_the_recording_report_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--steps", "200", "--symbols", "SOL-USDC", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "demo-report.json").read_text())
    assert data["native_exact"] is True and data["steps"] == 200
    assert (tmp_path / "report.html").is_file() and (tmp_path / "session.jsonl.zst").is_file()
    out = capsys.readouterr().out
    assert f"parity report: {tmp_path / 'report.html'}" in out and "native path exact: yes" in out
