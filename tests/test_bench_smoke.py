"""The benchmark harness still runs and every contender ends with the reference book (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_check_only_agrees_on_the_final_book() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--frames", "200", "--check-only"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


ISSUE_12_KEYS = (
    "depth.core_fps depth.core_pure_fps depth.feed_fps depth.ccxt_fps depth.ccxt_feed_fps "
    "depth.cryptofeed_binance_fps depth.decode_floor_fps trades.core_fps trades.core_pure_fps trades.feed_fps "
    "trades.ccxt_fps "
    "trades.cryptofeed_binance_fps ratios.depth_core_vs_ccxt ratios.depth_feed_vs_cryptofeed "
    "ratios.depth_feed_vs_ccxt_feed ratios.trades_core_vs_ccxt ratios.trades_feed_vs_cryptofeed replay.raw_fps "
    "replay.harness_overhead recording.compression_ratio recording.overhead memory.peak_rss_mb_1m_frames "
    "latency.feed_p50_us latency.feed_p99_us"
).split()


def test_bench_json_has_every_figure_issue_12_names(tmp_path: Path) -> None:
    """A tiny timed run (no timing asserted) writes a number for every key the issue lists."""
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--frames", "150", "--repeats", "1",
                           "--harness-frames", "150", "--memory-frames", "600", "--clock", "cpu",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(out.read_text())
    for key in ISSUE_12_KEYS:
        section, name = key.split(".")
        value = report[section][name]
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        assert value > 0 or name.endswith("overhead"), (key, value)  # an overhead may come out negative
    from backpack.protocol.speedups import IMPLEMENTATION

    assert report["compiled_decoder"] == IMPLEMENTATION  # the core a feed runs: "cython" in a normal run
    assert report["memory"]["replay_frames"] == 600
    assert report["replay"]["normalized_lines"] == report["replay"]["direct_normalized_lines"] > 0
