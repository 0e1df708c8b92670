"""ccxt's backpack handling on the fault scenarios (issue 8, item 7): the ``CcxtCore`` client, the silent-
divergence tally, the native-vs-ccxt table and its command."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from harness.cli import build_parser, main
from harness.scenarios.ccxt_client import RESET_REASON, CcxtCore
from harness.scenarios.divergence import Tally
from harness.scenarios.program import Edit, Program, Window, apply, window_frames
from harness.scenarios.runner import Run, run_core
from harness.scenarios.strategies import stretch_for
from harness.scenarios.table import ROWS, build_table, scenarios

from . import mutants
from .scenario_helpers import ROOT, path, ref

E = Edit.make
LIBRARY = [path(n) for n in ("public", "private", "errors", "edge")]


def ccxt(faulted: object) -> CcxtCore:
    return CcxtCore(faulted, 10)  # type: ignore[arg-type]


def tally(run: Run) -> Tally:
    assert isinstance(run.checker, Tally)
    return run.checker


def drop_after_sync() -> Program:
    """One depth delta dropped long after both clients synced (the 31st delta of its symbol in the window)."""
    reference = ref("private")
    start, stop = reference.frames[1000].index, reference.frames[1200].index
    window = Window(start, stop, stretch_for(reference, start, 200, 10.0))
    frames = window_frames(reference, window)[2]
    symbol = Counter(f.symbol for f in frames if f.depth).most_common(1)[0][0]
    at = [n for n, f in enumerate(frames) if f.depth and f.symbol == symbol][30]
    return Program((E("drop", at=at),), window)


def test_ccxt_applies_a_gap_after_its_sync_silently_and_the_native_core_resyncs() -> None:
    """A delta lost after the book is synced: ccxt never checks U == previous u + 1 (its deviation 1), so it
    emits wrong books and tells its user nothing; the native core resyncs and never emits a wrong book."""
    faulted = apply(drop_after_sync(), ref("private"))
    theirs = run_core(faulted, ccxt, raise_at_once=False, checker=Tally)
    ours = run_core(faulted, raise_at_once=False, checker=Tally)
    assert tally(theirs).silent > 0 and tally(theirs).first_silent is not None
    assert tally(theirs).first_silent.invariant == "a"
    assert theirs.stats.get("resyncs", 0) == 0 and theirs.stats.get("errors", 0) == 0
    assert tally(ours).wrong == 0 and tally(ours).silent == 0 and ours.violation is None
    assert ours.stats["resyncs"] >= 1


def test_clean_windows_give_ccxt_only_correct_books() -> None:
    """With no fault ccxt's books all equal the reference (so every wrong one the table counts is a fault's)."""
    for name in ("private", "public"):
        reference = ref(name)
        start = reference.frames[2000].index
        program = Program((), Window(start, reference.frames[2200].index, stretch_for(reference, start, 200, 10.0)))
        run = run_core(apply(program, reference), ccxt, raise_at_once=False, checker=Tally)
        assert tally(run).wrong == 0 and run.stats["books_checked"] > 20, (name, run.stats)


class _Seen(Tally):
    """A tally that keeps every record it judged."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: list[dict] = []

    def record(self, rec: dict, book: object = None) -> None:
        self.seen.append(rec)
        super().record(rec, book)


def test_a_ccxt_sync_that_keeps_failing_is_a_book_resync_and_an_error() -> None:
    """Three depth requests of one symbol answered 503: ccxt's load_order_book gives up and resets the book,
    which reaches the checker as a book_resync of that symbol and an error (the rejected watcher)."""
    program = drop_after_sync()
    reference = ref("private")
    frames = window_frames(reference, program.window)[2]
    symbol = sorted({f.symbol for f in frames if f.depth})[0]
    edits = tuple(E("snapshot", nth=n, symbol=symbol, answer="5xx") for n in range(1, 4))
    faulted = apply(Program(edits, program.window), reference)
    clients: list[CcxtCore] = []

    def client(f: object) -> CcxtCore:
        clients.append(ccxt(f))
        return clients[-1]

    run = run_core(faulted, client, raise_at_once=False, checker=_Seen)
    records = run.checker.seen  # type: ignore[union-attr]
    resyncs = [r for r in records if r["type"] == "book_resync"]
    assert resyncs and {r["symbol"] for r in resyncs} == {symbol.replace("_", "-")}
    assert all(r["reason"] == RESET_REASON for r in resyncs)
    assert any(r["type"] == "error" and "ExchangeNotAvailable" in r["message"] for r in records)
    assert run.exchange["depth_requests"] >= 3
    assert clients[0].loop.is_closed()  # run_core closed the client


def test_the_scenario_set_is_a_function_of_count_and_seed() -> None:
    """The same (recordings, count, seed) is the same programs; another seed is another set; each row's
    programs hold edits of that row's kind only."""
    one = [(s.row, s.recording, s.program.dumps()) for s in scenarios(LIBRARY, 2, 7)]
    assert one == [(s.row, s.recording, s.program.dumps()) for s in scenarios(LIBRARY, 2, 7)]
    assert one != [(s.row, s.recording, s.program.dumps()) for s in scenarios(LIBRARY, 2, 8)]
    assert {row for row, _, _ in one} == set(ROWS)
    for row, recording, text in one:
        kinds = {e["kind"] for e in json.loads(text)["edits"]}
        assert kinds == {row.split(":")[0]}
        if row.startswith("snapshot:"):
            assert {e["answer"] for e in json.loads(text)["edits"]} == {row.split(":")[1]}
        if row == "reject_private":
            assert ref(recording.name.split(".")[0]).has_private


def test_the_tables_claims_on_a_small_set() -> None:
    """What follows from the protocol: ccxt applies a post-sync gap silently, so its drop row has silent
    divergences; the native core checks U == previous u + 1 and resyncs, so it has none in any row."""
    table = build_table(LIBRARY, ["native", "ccxt"], count=2, seed=0)
    assert table.rows == list(ROWS)
    for row in ROWS:
        native = table.cell(row, "native")
        assert native.scenarios == 2 and native.silent == 0 and native.wrong == 0, (row, native)
    assert table.cell("drop", "ccxt").silent > 0
    assert table.cell("drop", "ccxt").example is not None
    text = table.markdown()
    assert text.splitlines()[0] == "| fault | scenarios | native silent | native wrong | ccxt silent | ccxt wrong |"
    assert "| `drop` | 2 | 0 | 0 |" in text


def test_the_tally_counts_native_books_once_the_gap_check_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The native zeros are not a blind spot: without the U == previous u + 1 check (tests/mutants.py) the
    native core's drop row has silent divergences too."""
    from backpack.protocol.book import BookSync

    monkeypatch.setattr(BookSync, "_synced_slow", BookSync._synced_slow)  # restored after the test
    mutants.apply("u_chain")
    table = build_table(LIBRARY, ["native"], count=2, seed=0, rows=["drop"])
    assert table.cell("drop", "native").silent > 0


def test_the_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["scenarios", "table", str(path("private")), "--count", "1", "--seed", "0", "--kind", "drop",
                 "--kind", "cut", "--examples"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("| fault | scenarios | native silent | native wrong | ccxt silent | ccxt wrong |")
    assert [line.split("|")[1].strip() for line in lines[2:5]] == ["`drop`", "`cut`", "**all**"]
    assert "2 scenarios x 2 clients over private.jsonl.zst" in err


@pytest.mark.parametrize(("argv", "code", "words"), [
    (["scenarios", "table", "--client", "hummingbot"], 64, "invalid choice: 'hummingbot'"),
    (["scenarios", "table", "--count", "0"], 64, "must be between 1 and 100000"),
    (["scenarios", "table", "/nonexistent.jsonl.zst"], 66, "/nonexistent.jsonl.zst: no such recording"),
])
def test_the_command_refuses_bad_arguments_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                       code: int, words: str) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_a_file_that_is_no_recording_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.jsonl"
    junk.write_text("this is not a recording\n")
    assert main(["scenarios", "table", str(junk), "--count", "1"]) == 65
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_replay_faults_runs_ccxt_and_names_the_silent_divergence(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    program = tmp_path / "p.json"
    program.write_text(drop_after_sync().dumps())
    code = main(["replay", str(path("private")), "--faults", str(program), "--level", "core", "--client", "ccxt"])
    out, err = capsys.readouterr()
    assert code == 5
    assert re.search(r"^\d+ wrong book\(s\), \d+ of them silent .*; the first silent one: invariant \(a\) broken",
                     err, re.M), err
    assert err.strip().splitlines()[-1].startswith("invariant (")  # the verdict stays the last line
    assert out and all(json.loads(line)["exchange"] == "BACKPACK" for line in out.splitlines())
    assert main(["replay", str(path("private")), "--faults", str(program), "--level", "core"]) == 0
    assert main(["replay", str(path("private")), "--faults", str(program), "--client", "ccxt"]) == 64
    assert "--client ccxt runs only with --level core" in capsys.readouterr().err


def test_docs_conformance_holds_the_table_and_its_command() -> None:
    """The section exists, its command parses as given, and its native columns are all zero."""
    text = (ROOT / "docs" / "conformance.md").read_text()
    section = text.split("## Fault scenarios: native vs ccxt", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"^backpack-harness (scenarios table .*)$", section, re.M)
    assert command is not None, "the section gives the exact command"
    args = build_parser().parse_args(command.group(1).split())
    assert args.clients == ["native", "ccxt"] and args.count >= 50
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| `")]
    assert [r[0].strip().strip("`") for r in rows] == list(ROWS)
    assert all(int(r[1]) == args.count or r[0].strip() == "`reject_private`" for r in rows)
    assert all(r[2].strip() == "0" and r[3].strip() == "0" for r in rows)  # native: silent, wrong
    assert int(rows[0][4]) > 0  # ccxt's drop row
