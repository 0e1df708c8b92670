"""Proof that the invariants bite: with one protection removed, the scenario suite fails and names it.

Each test runs part of the scenario suite in a fresh pytest process with a mutant installed
(``tests/mutants.py``: the ``U == previous u + 1`` check, trade de-duplication, resubscribing after a
reconnect), on the dev profile, derandomized. The shrunk program a failure prints is then replayed with
``backpack-harness replay --faults`` against the same mutant (the same failure, word for word) and
against the real code (clean).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .scenario_helpers import ROOT

pytestmark = pytest.mark.e2e

_CLI = "import sys, tests.mutants as m; m.apply(sys.argv[1]); from harness.cli import main; sys.exit(main(sys.argv[2:]))"


def _env(tmp_path: Path, mutant: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "BACKPACK_MUTANT"))}
    env.update(BACKPACK_SCENARIOS_PROFILE="dev", HYPOTHESIS_PROFILE="ci", PYTHONPATH=str(ROOT),
               BACKPACK_SCENARIOS_DIR=str(tmp_path / "programs"))
    if mutant is not None:
        env["BACKPACK_MUTANT"] = mutant
    return env


def suite(tmp_path: Path, mutant: str, *selection: str) -> str:
    """Run the selected scenario tests against ``mutant``; they must fail. Returns their output."""
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.mutants", "-x", "-q", "-p", "no:cacheprovider",
           "--basetemp", str(tmp_path / "basetemp"), *selection]
    done = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path, mutant), capture_output=True, text=True, timeout=900)
    assert done.returncode == 1, f"the suite did not fail against {mutant}:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    return done.stdout


def violation(output: str) -> str:
    match = re.search(r"^E\s+harness\.scenarios\.failures\.ScenarioFailure: (invariant \(.\) broken.*)$", output,
                      re.MULTILINE)
    assert match, output[-3000:]
    return match.group(1)


def replay(tmp_path: Path, output: str, mutant: str | None) -> subprocess.CompletedProcess[str]:
    command = re.search(r"^E\s+replay:\s+(backpack-harness replay .*)$", output, re.MULTILINE)
    assert command, output[-3000:]
    args = shlex.split(command.group(1))[1:]
    cmd = [sys.executable, "-c", _CLI, mutant, *args] if mutant else [sys.executable, "-m", "harness", *args]
    return subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path, None), capture_output=True, text=True, timeout=300)


def test_without_the_u_chain_check_books_go_wrong_and_the_printed_program_replays_the_failure(tmp_path: Path) -> None:
    output = suite(tmp_path, "u_chain", "tests/test_scenarios_core.py", "-k", "private-1of2")
    broken = violation(output)
    assert broken.startswith(("invariant (a) broken", "invariant (b) broken")), broken
    again = replay(tmp_path, output, "u_chain")
    assert again.returncode == 5, again.stderr
    assert again.stderr.strip().splitlines()[-1] == broken  # the same failure, word for word
    clean = replay(tmp_path, output, None)
    assert clean.returncode == 0, clean.stderr  # the real code keeps every invariant on that program
    assert clean.stderr.startswith("invariants held (core level")


def test_without_trade_deduplication_a_trade_is_emitted_twice(tmp_path: Path) -> None:
    output = suite(tmp_path, "trade_dedup", "tests/test_scenarios_core.py", "-k", "private-1of2")
    broken = violation(output)
    assert broken.startswith("invariant (c) broken") and "emitted twice" in broken, broken
    assert "duplicate(" in output


def test_without_resubscribing_after_a_reconnect_the_feed_suite_fails_on_e(tmp_path: Path) -> None:
    output = suite(tmp_path, "resubscribe", "tests/test_scenarios_feed.py", "-k", "private-1of2")
    broken = violation(output)
    assert broken.startswith("invariant (e) broken") and "subscribed to other streams" in broken, broken
    again = replay(tmp_path, output, "resubscribe")
    assert again.returncode == 5 and again.stderr.strip().splitlines()[-1] == broken, again.stderr
