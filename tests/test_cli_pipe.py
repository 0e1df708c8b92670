"""A reader that stops early (`backpack-harness ... | head`) is not an error worth a report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "recordings" / "public.jsonl.zst"
CLI = "import sys; from harness.cli import main; sys.exit(main(sys.argv[1:]))"


def _closed_early(*argv: str, lines: int) -> tuple[int, str, list[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", CLI, *argv], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    got = [proc.stdout.readline() for _ in range(lines)]
    proc.stdout.close()  # what `head` does once it has its lines
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err, got


def test_a_command_whose_reader_went_away_ends_quietly_with_the_sigpipe_status() -> None:
    code, err, _ = _closed_early("inspect", str(PUBLIC), lines=0)
    assert code == 141, err
    assert "internal error" not in err and "Traceback" not in err and "Exception ignored" not in err


def test_replay_into_a_closed_pipe_still_ends_with_its_verdict_and_no_traceback() -> None:
    code, err, first = _closed_early("replay", str(PUBLIC), lines=1)
    assert first[0].startswith(b"{")
    assert code == 0, err
    assert "Traceback" not in err and "Exception ignored" not in err
