"""``git bisect run backpack-harness bisect ...`` finds the commit that broke the book, in a throwaway repository.

The repository holds the project's two packages at a few states: good, a commit without the bisect command,
harmless changes, one commit that breaks the book, more harmless changes. Each step imports the checked-out
packages (``PYTHONPATH`` is the repository), as an editable install in a real checkout would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.bisect.synth import write_synthetic
from harness.replay import replay_normalized

ROOT = Path(__file__).resolve().parents[1]
BOOK = "backpack/protocol/book.py"
HOT = "                    side = book._bids\n                    keys = book._bid_keys\n                    for p, s in d.bids:\n"

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, check=check, capture_output=True, text=True, env=env,
                          timeout=300)


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD").stdout.strip()


def _break_the_book(repo: Path) -> None:
    """A synced book ignores the delete of its best bid (the hot path's bid loop)."""
    path = repo / BOOK
    text = path.read_text()
    at = text.index(HOT) + len(HOT)
    end = text.index("if p in side:", at)
    path.write_text(text[:end] + "if p in side and p != keys[-1]:" + text[end + len("if p in side:"):])


def test_git_bisect_run_finds_the_commit_that_broke_the_book(tmp_path: Path) -> None:
    recording = tmp_path / "rec.jsonl.zst"
    write_synthetic(recording, 1500, seed=3)
    golden = tmp_path / "golden.jsonl"
    golden.write_text("".join(line + "\n" for line in replay_normalized(recording)))

    repo = tmp_path / "repo"
    repo.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "*.c")  # what a git checkout holds
    for package in ("backpack", "harness"):
        shutil.copytree(ROOT / package, repo / package, ignore=ignore)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "bisect@example.invalid")
    _git(repo, "config", "user.name", "bisect test")
    good = _commit(repo, "good")
    bisect_cli = (repo / "harness/cli/bisect.py").read_text()
    (repo / "harness/cli/bisect.py").unlink()
    too_old = _commit(repo, "the bisect command is not there yet")
    (repo / "harness/cli/bisect.py").write_text(bisect_cli)
    (repo / "NOTES").write_text("harmless 1\n")
    _commit(repo, "harmless 1")
    _break_the_book(repo)
    bad = _commit(repo, "book: a faster delete")
    for n in (2, 3, 4):
        (repo / "NOTES").write_text(f"harmless {n}\n")
        head = _commit(repo, f"harmless {n}")

    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    _git(repo, "bisect", "start", head, good)
    run = _git(repo, "bisect", "run", "backpack-harness", "bisect", str(recording), "--golden", str(golden),
               check=False, env=env)
    assert f"{bad} is the first bad commit" in run.stdout, run.stdout + run.stderr
    _git(repo, "bisect", "reset")

    # the step script skips a revision that has no bisect command instead of calling it bad
    step = tmp_path / "bisect-step.sh"
    shutil.copy(ROOT / "scripts" / "bisect-step.sh", step)
    _git(repo, "checkout", "-q", too_old)
    skipped = subprocess.run(["sh", str(step), str(recording), "--golden", str(golden)], cwd=repo, env=env,
                             capture_output=True, text=True, timeout=300)
    assert skipped.returncode == 125 and "skipped" in skipped.stderr
    _git(repo, "checkout", "-q", bad)
    judged = subprocess.run(["sh", str(step), str(recording), "--golden", str(golden)], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=300)
    assert judged.returncode == 1 and judged.stdout.startswith("bad: ")
