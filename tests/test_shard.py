"""``--shard I/N`` slices the collected tests into N disjoint parts that together are all of them."""

from __future__ import annotations

import subprocess
import sys

from .scenario_helpers import ROOT


def _collected(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "tests/test_scenarios_program.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode in (0, 5), done.stdout + done.stderr
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_shards_are_disjoint_and_cover_the_suite() -> None:
    everything = _collected()
    parts = [_collected("--shard", f"{i}/3") for i in (1, 2, 3)]
    assert len(everything) > 20
    assert set().union(*parts) == everything
    assert sum(len(p) for p in parts) == len(everything)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_a_bad_shard_is_refused() -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "--shard", "4/3",
                           "tests/test_scenarios_program.py"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "I must be within 1..N" in done.stdout + done.stderr
