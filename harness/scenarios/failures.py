"""What a failing scenario prints: the broken invariant, the (shrunk) program, the command that replays it.

The program is written to a file named by its content under ``BACKPACK_SCENARIOS_DIR`` (default: the
system temporary directory's ``backpack-scenarios``) and printed inline as well, so the report can be
replayed from a CI log alone: save the JSON line as a file and run the command.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import tempfile
from pathlib import Path

from harness.scenarios.invariants import InvariantBroken
from harness.scenarios.program import Program, describe


def failures_dir() -> Path:
    return Path(os.environ.get("BACKPACK_SCENARIOS_DIR") or Path(tempfile.gettempdir()) / "backpack-scenarios")


def save_program(program: Program, stem: str) -> Path:
    text = program.dumps()
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    folder = failures_dir()
    path = folder / f"{stem}-{digest}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)  # xdist workers may write the same program at once
    except OSError:
        pass  # the report still carries the program inline
    return path


def shown_path(recording: str | os.PathLike[str]) -> str:
    """The recording as a command line names it: relative to the working directory when inside it."""
    p = Path(recording)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def replay_command(recording: str | os.PathLike[str], program_file: str | os.PathLike[str], level: str) -> str:
    return shlex.join(["backpack-harness", "replay", shown_path(recording), "--faults", str(program_file),
                       "--level", level])


class ScenarioFailure(AssertionError):
    """A scenario broke an invariant: the message is the whole report (see the module docstring)."""

    def __init__(self, recording: str | os.PathLike[str], program: Program, level: str,
                 error: InvariantBroken) -> None:
        self.error = error
        self.program = program
        self.level = level
        self.recording = str(recording)
        stem = f"{Path(recording).name.split('.')[0]}-{level}"
        self.program_file = save_program(program, stem)
        self.command = replay_command(recording, self.program_file, level)
        n = len(program.edits)
        super().__init__(
            f"{error}\n"
            f"scenario: {level} level, {shown_path(recording)}, {n} edit{'s' if n != 1 else ''}: {describe(program)}\n"
            f"program:  {program.dumps()}\n"
            f"replay:   {self.command}")


__all__ = ["ScenarioFailure", "failures_dir", "replay_command", "save_program", "shown_path"]
