"""The benchmark harness still runs and every contender ends with the reference book (no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_check_only_agrees_on_the_final_book() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--frames", "200", "--check-only"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
