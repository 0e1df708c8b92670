"""The main job (``backpack-harness demo``) end to end, shortened."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.demo import format_report, run_demo

pytestmark = pytest.mark.e2e


async def test_demo_native_path_is_exact_and_detects_the_gap() -> None:
    lines: list[str] = []
    report = await run_demo(seed=2, steps=400, symbols=("SOL-USDC", "BTC-USDC-PERP"), say=lines.append)
    assert report["native_exact"] is True
    sol = report["symbols"]["SOL-USDC"]
    assert sol["native"]["book_equal"] and sol["native"]["resyncs"] == 1  # the injected gap, detected once
    assert report["symbols"]["BTC-USDC-PERP"]["native"]["resyncs"] == 0  # other symbols untouched
    assert report["trades"]["native"]["missing"] == 0
    assert report["trades"]["server_sent"] == report["trades"]["native"]["unique"] > 0
    assert any("subscribed" in line for line in lines)
    assert "native path exact: yes" in format_report(report)


async def test_demo_without_fault_has_no_resync() -> None:
    report = await run_demo(seed=3, steps=200, symbols=("SOL-USDC",), fault=False, say=lambda _m: None)
    assert report["fault"] is None
    assert report["symbols"]["SOL-USDC"]["native"]["resyncs"] == 0
    assert report["native_exact"] is True


def test_demo_cli_writes_the_report(tmp_path, capsys) -> None:
    out = tmp_path / "report.json"
    code = main(["demo", "--steps", "200", "--symbols", "SOL-USDC", "--report", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["native_exact"] is True and data["steps"] == 200
    assert "native path exact: yes" in capsys.readouterr().out
