"""``backpack-harness replay RECORDING --faults PROGRAM.json``: lines, a verdict, and one-line refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given

from harness.cli import main
from harness.scenarios.program import Edit, Program, Window, apply
from harness.scenarios.runner import deterministic, run_core, run_feed_scenario
from harness.scenarios.strategies import programs

from .scenario_helpers import PROFILE, ROOT, path, ref, scenario_settings

E = Edit.make
PRIVATE = str(path("private"))


def program_file(tmp_path: Path, program: Program | dict | str, name: str = "p.json") -> str:
    target = tmp_path / name
    text = program.dumps() if isinstance(program, Program) else program if isinstance(program, str) else json.dumps(
        program)
    target.write_text(text)
    return str(target)


SOME = Program((E("drop", at=30, count=2), E("duplicate", at=50), E("cut", at=120),
                E("snapshot", nth=3, answer="stale", by=20), E("corrupt", at=10, how="type")),
               Window(2000, 2400, 30))


@pytest.mark.parametrize("level", ["core", "feed"])
def test_a_program_replays_its_lines_and_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     level: str) -> None:
    code = main(["replay", PRIVATE, "--faults", program_file(tmp_path, SOME), "--level", level])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines and all(json.loads(line)["exchange"] == "BACKPACK" for line in lines)
    assert '"type":"book_resync"' in out and '"type":"error"' in out
    assert err.startswith(f"invariants held ({level} level, drop(at=30,count=2); duplicate(at=50); cut(at=120);")
    run = run_core(apply(SOME, ref("private"))) if level == "core" else run_feed_scenario(apply(SOME, ref("private")))
    assert run.lines == lines  # the command prints exactly what the runner produces


@pytest.mark.parametrize(("program", "code", "words"), [
    ("{", 65, "p.json: not JSON"),
    ({"edits": [{"kind": "drop", "at": "x"}]}, 65, "p.json: edit 0 (drop): 'at' must be an integer, got 'x'"),
    ({"edits": [{"kind": "drop", "at": 10 ** 6}]}, 65, "'at' is 1000000, but the window has 7096 frames"),
])
def test_a_bad_program_is_one_line_and_a_data_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    program: object, code: int, words: str) -> None:
    assert main(["replay", PRIVATE, "--faults", program_file(tmp_path, program)]) == code  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    assert out == "" and words in err and err.count("\n") == 1


def test_a_missing_program_file_and_conflicting_options_are_refused(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", PRIVATE, "--faults", str(tmp_path / "none.json")]) == 66
    assert "cannot read fault program" in capsys.readouterr().err
    good = program_file(tmp_path, Program())
    assert main(["replay", PRIVATE, "--faults", good, "--from", "1"]) == 64
    assert "--from cannot be combined with --faults" in capsys.readouterr().err
    assert main(["replay", PRIVATE, "--faults", good, "--mode", "all"]) == 64
    capsys.readouterr()


@pytest.mark.parametrize("name", ["private", "errors"])
def test_f_a_program_gives_byte_identical_output_on_every_run_core(name: str) -> None:
    reference = ref(name)

    @scenario_settings(PROFILE.determinism)
    @given(programs(reference))
    def check(program: Program) -> None:
        """Invariant (f): a recording and a program always give the same bytes (the core)."""
        deterministic(run_core(apply(program, reference)), run_core(apply(program, reference)))

    check()


def test_f_a_program_gives_byte_identical_output_on_every_run_feed() -> None:
    reference = ref("private")

    @scenario_settings(max(2, PROFILE.determinism // 4))
    @given(programs(reference, max_edits=4))
    def check(program: Program) -> None:
        """Invariant (f): a recording and a program always give the same bytes (the full feed)."""
        deterministic(run_feed_scenario(apply(program, reference)), run_feed_scenario(apply(program, reference)))

    check()


def test_f_the_command_prints_the_same_bytes_in_fresh_processes_whatever_the_hash_seed(tmp_path: Path) -> None:
    program = program_file(tmp_path, SOME)
    outputs = []
    for seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-m", "harness", "replay", PRIVATE, "--faults", program],
                              cwd=ROOT, env=env, capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] and outputs[0].count(b"\n") > 100
