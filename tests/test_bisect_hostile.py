"""diff, bisect and shrink on inputs a hurried user gives them: one line on stderr, the documented code.

diff and shrink use the shared codes of ``harness.cli`` (64 usage, 65 damaged or wrong kind of input, 66
unreadable, 73 cannot write); bisect stops ``git bisect run`` with 128 on any input problem (every code
from 1 to 127 but 125 would count as bad) and skips (125) where this revision cannot replay.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import zstandard

from harness.bisect.synth import write_synthetic
from harness.cli import main
from harness.replay import replay_normalized


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("hostile")
    plain = Path(write_synthetic(tmp / "rec.jsonl", 400, seed=5))
    golden = tmp / "golden.jsonl"
    golden.write_text("".join(line + "\n" for line in replay_normalized(plain)))
    data = plain.read_bytes()
    half = tmp / "half.jsonl"
    half.write_bytes(data[: len(data) // 2])  # ends inside a line
    text = tmp / "notes.txt"
    text.write_text("these are my notes\nnot JSON lines\n")
    golden_half = tmp / "golden-half.jsonl"
    gold = golden.read_bytes()
    golden_half.write_bytes(gold[: len(gold) // 2 + 7])
    return {"rec": plain, "golden": golden, "half": half, "text": text, "golden_half": golden_half,
            "golden_cut_zst": _cut_inside_frame(golden, tmp / "golden-cut.jsonl.zst"),
            "rec_cut_zst": _cut_inside_frame(plain, tmp / "rec-cut.jsonl.zst", header_frame=True)}


def _cut_inside_frame(source: Path, out: Path, *, header_frame: bool = False) -> Path:
    """``source`` as zstd (the header line in a frame of its own, as the recorder writes it, when asked),
    cut after a block that ends exactly at a line's end: every line before the cut decodes, so only a
    reader that checks the frame's end can tell the file is short."""
    lines = source.read_bytes().splitlines(keepends=True)
    blob = b""
    if header_frame:
        blob, lines = zstandard.ZstdCompressor(write_checksum=True).compress(lines[0]), lines[1:]
    cobj = zstandard.ZstdCompressor(write_checksum=True).compressobj()
    cut = 0
    for i, line in enumerate(lines):
        blob += cobj.compress(line)
        if i == len(lines) * 2 // 3:
            blob += cobj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
            cut = len(blob)
    blob += cobj.flush()
    out.write_bytes(blob[:cut])
    return out


def _run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    return code, err


def _one_line(err: str, *words: str) -> None:
    assert "Traceback" not in err and "internal error" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


def test_diff_names_missing_cut_and_foreign_inputs(capsys: pytest.CaptureFixture[str], inputs: dict[str, Path],
                                                   tmp_path: Path) -> None:
    rec, golden = inputs["rec"], inputs["golden"]
    code, err = _run(capsys, "diff", tmp_path / "missing.jsonl", golden)
    assert code == 66
    _one_line(err, "missing.jsonl", "No such file")
    code, err = _run(capsys, "diff", rec, tmp_path)
    assert code == 66
    _one_line(err, "Is a directory")
    code, err = _run(capsys, "diff", inputs["half"], golden)
    assert code == 65
    _one_line(err, "half.jsonl", "cut short")
    code, err = _run(capsys, "diff", rec, inputs["text"])
    assert code == 65
    _one_line(err, "notes.txt", "neither a recording nor a normalized output")
    code, err = _run(capsys, "diff", golden, inputs["golden_half"])
    assert code == 65
    _one_line(err, "golden-half.jsonl", "cut short")
    code, err = _run(capsys, "diff", golden, inputs["golden_cut_zst"])
    assert code == 65
    _one_line(err, "golden-cut.jsonl.zst", "truncated zstd frame")
    code, err = _run(capsys, "diff", inputs["rec_cut_zst"], golden)
    assert code == 65
    _one_line(err, "rec-cut.jsonl.zst", "truncated zstd frame")


def test_bisect_stops_git_bisect_on_any_input_problem(capsys: pytest.CaptureFixture[str], inputs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    rec, golden = inputs["rec"], inputs["golden"]
    cases = [
        (["bisect", tmp_path / "missing.jsonl", "--golden", golden], ["missing.jsonl", "no such file"]),
        (["bisect", tmp_path, "--invariants"], ["a directory"]),
        (["bisect", rec, "--golden", tmp_path / "nope.jsonl"], ["nope.jsonl", "no such file"]),
        (["bisect", inputs["half"], "--golden", golden], ["half.jsonl", "cut short"]),
        (["bisect", inputs["rec_cut_zst"], "--invariants"], ["rec-cut.jsonl.zst", "truncated zstd frame"]),
        (["bisect", rec, "--golden", inputs["text"]], ["notes.txt", "neither a recording nor a normalized output"]),
        (["bisect", rec, "--golden", inputs["golden_half"]], ["golden-half.jsonl", "cut short"]),
        (["bisect", rec, "--golden", inputs["golden_cut_zst"]], ["golden-cut.jsonl.zst", "truncated zstd frame"]),
        (["bisect", rec, "--golden", rec], ["is a recording", "backpack-harness replay"]),
        (["bisect", golden, "--invariants"], ["golden.jsonl", "RECORDING must be a recording"]),
        (["bisect", inputs["text"], "--ccxt"], ["notes.txt", "RECORDING must be a recording"]),
        (["bisect", rec, "--ccxt", "--registry", tmp_path / "no-registry"], ["--registry", "deviation entries"]),
    ]
    for argv, words in cases:
        code, err = _run(capsys, *argv)
        assert code == 128, (argv, err)
        _one_line(err, *words)


def test_bisect_skips_a_recording_this_revision_cannot_replay(capsys: pytest.CaptureFixture[str],
                                                              inputs: dict[str, Path], tmp_path: Path) -> None:
    future = tmp_path / "future.jsonl"
    future.write_text(json.dumps({"format": "backpack-recording", "version": "9.0", "created_at": "x"}) + "\n")
    code = main(["bisect", str(future), "--golden", str(inputs["golden"])])
    out, err = capsys.readouterr()
    assert code == 125 and out.startswith("skip: this revision cannot replay the recording"), out
    assert "Traceback" not in err


def test_shrink_refuses_what_it_cannot_shrink_before_doing_any_work(capsys: pytest.CaptureFixture[str],
                                                                     inputs: dict[str, Path], tmp_path: Path) -> None:
    rec = inputs["rec"]
    ran = tmp_path / "ran"
    check = f"{sys.executable} -c \"open({str(ran)!r}, 'w')\""  # leaves a mark when the check runs
    out = tmp_path / "min.jsonl"
    cases = [
        (["shrink", tmp_path / "missing.jsonl", "--invariant", "book", "--out", out], 66, ["missing.jsonl"]),
        (["shrink", inputs["half"], "--invariant", "book", "--out", out], 65, ["half.jsonl", "cut short"]),
        (["shrink", inputs["text"], "--invariant", "book", "--out", out], 65, ["notes.txt", "header"]),
        (["shrink", rec, "--invariant", "nope", "--out", out], 64, ["unknown invariant", "nope"]),
        (["shrink", rec, "--check", "no-such-program-here {}", "--out", out], 64,
         ["no-such-program-here", "no such command"]),
        (["shrink", rec, "--check", str(inputs["text"]), "--out", out], 64, ["not an executable file"]),
        (["shrink", rec, "--check", "", "--out", out], 64, ["--check needs a command"]),
        (["shrink", rec, "--check", "'unbalanced", "--out", out], 64, ["cannot be split"]),
        (["shrink", rec, "--check", check, "--out", inputs["text"] / "min.jsonl"], 73, ["notes.txt", "not a directory"]),
        (["shrink", rec, "--check", check, "--out", tmp_path], 73, ["is a directory"]),
    ]
    for argv, expected, words in cases:
        code, err = _run(capsys, *argv, "--no-progress")
        assert code == expected, (argv, err)
        _one_line(err, *words)
    assert not ran.exists() and not out.exists()  # refused before a single candidate was replayed or written
    assert not (tmp_path.parent / f"{tmp_path.name}.jsonl").exists()


def test_shrink_of_a_recording_that_does_not_fail_writes_nothing(capsys: pytest.CaptureFixture[str],
                                                                  inputs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "min.jsonl"
    for check in (["--invariant", "book"], ["--check", f"{sys.executable} -c pass"],
                  ["--check", f"{sys.executable} -c 'raise SystemExit(125)'"]):
        code, err = _run(capsys, "shrink", inputs["rec"], *check, "--out", out, "--no-progress")
        assert code == 65, (check, err)
        _one_line(err, "not shrunk", "nothing to shrink" if "--check" in check else "does not fail")
    assert not out.exists() and not out.with_name("test_min.py").exists()
