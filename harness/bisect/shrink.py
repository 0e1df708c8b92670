"""Shrinking a failing recording to a minimal one that still fails, plus a pytest test that pins it.

Units of delta debugging (``harness.bisect.ddmin``) are the exchange's deliveries on the timeline: data
frames, pings and pongs. Everything else stays, so every candidate is a valid recording that the full feed
replays: the connection events (opens, the feed's SUBSCRIBE frames, closes, failed connects), the REST
exchanges other than depth snapshots (the market list the feed always asks for), ``end``. Depth snapshot
exchanges are kept exactly when the candidate's frames make the feed ask for them: a Router-only core
pass over the candidate (every recorded snapshot available) says which ones it took, the way vcrpy would
hand them out; the rest go, so a minimal recording holds no snapshot it does not use.

Cost is replays of candidates, so a candidate is judged by the core replay (``harness.bisect.core``) when
the check allows: an invariant (``--invariant``) is checked on the core's lines. ``--check CMD`` runs
a command on each candidate written to a file: as slow as the command. The result is confirmed once on
the full feed before it is written.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backpack.protocol.normalized import DEFAULT_DEPTH
from harness.recording.format import (
    Event,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    TransportErrorEvent,
    WsPing,
    WsPong,
    WsRecv,
)
from harness.recording.reader import Recording, RecordingReader, read_recording
from harness.recording.writer import RecordingWriter

from .core import DEPTH_PATH, CoreReplay, CoreUnsupported
from .ddmin import Oracle, ddmin
from .invariants import REGISTRY, Violation, first_violation

REGRESSIONS = Path(__file__).resolve().parents[2] / "recordings" / "regressions"
UNIT_KINDS = (WsRecv, WsPing, WsPong)


class ShrinkError(Exception):
    """The recording does not fail to begin with, or the check cannot be run; one line."""


class CheckError(ShrinkError):
    """``--check CMD`` cannot be run at all (empty, unbalanced quotes, no such program)."""


class OutputPathError(ShrinkError):
    """The regression cannot be written where ``--out`` says."""


def check_argv(command: str, path: str) -> list[str]:
    """CMD with ``{}`` replaced by the candidate's path (else the path appended), split as a shell would."""
    try:
        argv = (shlex.split(command.replace("{}", shlex.quote(path))) if "{}" in command
                else [*shlex.split(command), path])
    except ValueError as exc:
        raise CheckError(f"--check {command!r} cannot be split into words: {exc}") from None
    if not command.strip() or argv == [path]:
        raise CheckError("--check needs a command, e.g. 'backpack-harness bisect {} --golden out.jsonl'")
    program = argv[0]
    found = shutil.which(program)
    if found is None:
        what = "no such file" if os.sep in program else "no such command on PATH"
        if os.sep in program and os.path.exists(program):
            what = "not an executable file"
        raise CheckError(f"--check: cannot run {program!r}: {what}")
    return argv


def prepare_output(out: str, directory: Path | None = None) -> tuple[Path, Path]:
    """The two paths of the regression, checked writable before minutes of shrinking go into it."""
    if out.endswith(os.sep) or Path(out).is_dir():
        raise OutputPathError(f"cannot write {out}: it is a directory (--out names the minimal recording's file)")
    recording, test = output_paths(out, directory)
    for path in (recording, test):
        if path.is_dir():
            raise OutputPathError(f"cannot write {path}: it is a directory (--out names a file)")
    blocker = next((p for p in recording.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise OutputPathError(f"cannot write into {recording.parent}: {blocker} is a file, not a directory")
    try:
        recording.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=recording.parent, prefix=".shrink-probe-"):
            pass
    except OSError as exc:
        raise OutputPathError(f"cannot write into {recording.parent}: {exc.strerror or exc}") from None
    return recording, test


@dataclass
class Plan:
    """Which events of the recording are units, which always stay, which are depth exchanges."""

    units: list[int]
    fixed: list[int]
    depth: dict[str, list[int]]  # REST exchange id -> its event indices (request, answer)


def plan(events: Sequence[Event]) -> Plan:
    units, fixed = [], []
    depth: dict[str, list[int]] = {}
    for i, event in enumerate(events):
        if isinstance(event, UNIT_KINDS):
            units.append(i)
        elif isinstance(event, HttpRequestEvent) and event.url.rstrip("/").endswith(DEPTH_PATH):
            depth.setdefault(event.conn, []).append(i)
        elif isinstance(event, HttpResponseEvent | TransportErrorEvent) and event.conn in depth:
            depth[event.conn].append(i)
        else:
            fixed.append(i)
    return Plan(units, fixed, depth)


@dataclass
class Candidate:
    indices: list[int]  # into the original events, sorted
    events: list[Event]


@dataclass
class ShrinkResult:
    original_events: int
    events: list[Event]
    kept_units: int
    tests: int
    seconds: float
    check: str
    violation: Violation | None = None
    confirmed_by: str = "feed"
    recording: Path | None = None
    test_file: Path | None = None
    notes: list[str] = field(default_factory=list)


class Shrinker:
    def __init__(self, rec: Recording, *, depth: int | None = DEFAULT_DEPTH,
                 on_test: Callable[[int, int], None] | None = None) -> None:
        self.rec = rec
        self.header: Header = rec.header
        self.events = list(rec.events)
        self.depth = depth
        self.plan = plan(self.events)
        self.on_test = on_test

    def candidate(self, units: Sequence[int]) -> Candidate:
        base = sorted({*self.plan.fixed, *units})
        every = sorted({*base, *(i for idx in self.plan.depth.values() for i in idx)})
        core = CoreReplay(self.header, depth=self.depth, lines=False)
        for _ in core.run(self.events[i] for i in every):
            pass
        used = {conn for conn in core.stats.used}
        indices = sorted({*base, *(i for conn in used for i in self.plan.depth.get(conn, ()))})
        return Candidate(indices, [self.events[i] for i in indices])

    # -- checks ------------------------------------------------------------------------------------

    def invariant_check(self, names: Sequence[str]) -> Callable[[Candidate], Violation | None]:
        def check(c: Candidate) -> Violation | None:
            core = CoreReplay(self.header, depth=self.depth)
            records = [(json.loads(line), frame) for line, frame in (*core.run(c.events), *core.finish())]
            return first_violation(records, c.events, names, self.depth)
        return check

    def feed_invariant(self, events: list[Event], names: Sequence[str]) -> Violation | None:
        """The same check on the full feed (what the generated test runs)."""
        import asyncio

        from harness.replay import replay_stream

        got: list[tuple[dict, int | None]] = []
        rec = Recording(self.header, events, None, self.rec.stats)
        asyncio.run(replay_stream(rec, lambda _l: None, depth=self.depth,
                                  provenance=lambda line, frame: got.append((json.loads(line), frame))))
        return first_violation(got, events, names, self.depth)

    # -- the run -----------------------------------------------------------------------------------

    def shrink_invariant(self, names: Sequence[str]) -> ShrinkResult:
        started = time.monotonic()
        check = self.invariant_check(names)
        everything = self.candidate(self.plan.units)
        try:
            first = check(everything)
        except CoreUnsupported as exc:
            raise CheckError(f"the core replay cannot judge this recording ({exc}); use --check with a command "
                              "that replays the full feed") from None
        if first is None:
            raise ShrinkError(f"the recording does not fail: {', '.join(names)} hold on it")
        units = self.plan.units
        if first.frame is not None:  # nothing after the first violation can be needed to reach it
            prefix = [u for u in units if u <= everything.indices[first.frame]]
            if check(self.candidate(prefix)) is not None:
                units = prefix

        def fails(subset: list[int]) -> bool:
            try:
                return check(self.candidate(subset)) is not None
            except CoreUnsupported:
                return False

        tester = Oracle(fails, self.on_test)
        kept = ddmin(units, tester)
        final = self.candidate(kept)
        violation = check(final)
        result = ShrinkResult(len(self.events), final.events, len(kept), tester.tests,
                              time.monotonic() - started, f"invariant {','.join(names)}", violation)
        confirmed = self.feed_invariant(final.events, names)
        if confirmed is None:
            result.confirmed_by = "core"
            result.notes.append("the full feed does not fail on the minimal recording (the core replay does): "
                                "the generated test replays the core")
        result.seconds = time.monotonic() - started
        return result

    def shrink_command(self, command: str) -> ShrinkResult:
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="shrink-") as tmp:
            path = Path(tmp) / "candidate.jsonl"

            argv = check_argv(command, str(path))

            def run(c: Candidate) -> int:
                save(path, self.header, c.events)
                try:
                    return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
                except OSError as exc:
                    raise CheckError(f"--check: cannot run {argv[0]!r}: {exc.strerror or exc}") from None

            everything = self.candidate(self.plan.units)
            code = run(everything)
            if code == 0:
                raise ShrinkError("the recording does not fail: the check exits 0 on it; nothing to shrink")
            if code == 125:
                raise ShrinkError("the check cannot judge the recording (exit 125, skip); nothing to shrink")
            tester = Oracle(lambda subset: run(self.candidate(subset)) == code, self.on_test)
            kept = ddmin(self.plan.units, tester)
            final = self.candidate(kept)
        return ShrinkResult(len(self.events), final.events, len(kept), tester.tests, time.monotonic() - started,
                            f"command {command} (exit {code} kept)")


# --- writing the regression -------------------------------------------------------------------------


def save(path: Path, header: Header, events: Sequence[Event]) -> None:
    """The events exactly as kept (the original ``end`` too, or none if the original had none)."""
    writer = RecordingWriter(path, header)
    try:
        for event in events:
            writer.write(event)
    finally:
        writer.close(end=False)


def output_paths(out: str, directory: Path | None = None) -> tuple[Path, Path]:
    """``--out NAME`` lands in recordings/regressions/; a path is used as given. Returns (recording, test)."""
    path = Path(out)
    if path.parent == Path(".") and not out.startswith("."):
        path = (directory or REGRESSIONS) / path
    if not (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.zst")):
        path = path.with_name(path.name + ".jsonl")
    stem = path.name.removesuffix(".zst").removesuffix(".jsonl")
    ident = "".join(ch if ch.isalnum() else "_" for ch in stem).strip("_") or "regression"
    return path, path.with_name(f"test_{ident}.py")


def _test_source(result: ShrinkResult, recording: Path, source: str, names: Sequence[str] | None,
                 command: str | None, depth: int | None) -> str:
    ident = recording.with_suffix("").name.removesuffix(".jsonl")
    ident = "".join(ch if ch.isalnum() else "_" for ch in ident).strip("_") or "regression"
    mode = "feed" if result.confirmed_by == "feed" else "core"
    what = result.violation.message if result.violation is not None else result.check
    head = [
        f'"""Regression: {what}',
        "",
        f"Generated by backpack-harness shrink from {source}: {len(result.events)} of {result.original_events}",
        f"events kept ({result.check}). Fails while the bug is there; passes once it is fixed.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    if command is None:
        body = [
            "from pathlib import Path",
            "",
            "from harness.bisect.verdict import judge_invariants",
            "",
            f"RECORDING = Path(__file__).with_name({recording.name!r})",
            "",
            "",
            f"def test_{ident}() -> None:",
            f"    verdict = judge_invariants(RECORDING, {list(names or [])!r}, mode={mode!r}, depth={depth!r})",
            '    assert verdict.status == "good", verdict.message',
            "",
        ]
    else:
        body = [
            "import shlex",
            "import subprocess",
            "from pathlib import Path",
            "",
            f"RECORDING = Path(__file__).with_name({recording.name!r})",
            f"COMMAND = {command!r}",
            "",
            "",
            f"def test_{ident}() -> None:",
            "    path = shlex.quote(str(RECORDING))",
            "    argv = shlex.split(COMMAND.replace('{}', path) if '{}' in COMMAND else COMMAND + ' ' + path)",
            "    assert subprocess.run(argv).returncode == 0, f'{COMMAND} still fails on {RECORDING.name}'",
            "",
        ]
    return "\n".join(head + body)


def write_regression(result: ShrinkResult, header: Header, out: str, *, source: str, names: Sequence[str] | None,
                     command: str | None, depth: int | None, directory: Path | None = None) -> ShrinkResult:
    recording, test = prepare_output(out, directory)
    meta = dict(header.meta)
    meta["shrunk"] = {"from": os.path.basename(source), "events": result.original_events,
                      "kept": len(result.events), "check": result.check}
    from dataclasses import replace

    try:
        save(recording, replace(header, meta=meta), result.events)
        test.write_text(_test_source(result, recording, source, names, command, depth))
    except OSError as exc:
        raise OutputPathError(f"cannot write {exc.filename or recording}: {exc.strerror or exc}") from None
    result.recording, result.test_file = recording, test
    return result


def shrink(path: str | os.PathLike[str], out: str, *, invariants: Sequence[str] | None = None,
           command: str | None = None, depth: int | None = DEFAULT_DEPTH, directory: Path | None = None,
           on_test: Callable[[int, int], None] | None = None) -> ShrinkResult:
    """Shrink ``path`` under an invariant or a command and write the regression (recording + test)."""
    names = list(invariants or REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if command is None and unknown:
        raise CheckError(f"unknown invariant(s) {', '.join(unknown)}; known: {', '.join(REGISTRY)}")
    if command is not None:
        check_argv(command, "candidate.jsonl")
    RecordingReader(path).close()  # a missing file or a broken header, before anything is created
    prepare_output(out, directory)
    rec = read_recording(path)
    if rec.damage is not None:
        raise rec.damage  # a regression cut from a damaged recording would pin the damage, not the bug
    shrinker = Shrinker(rec, depth=depth, on_test=on_test)
    result = shrinker.shrink_command(command) if command is not None else shrinker.shrink_invariant(names)
    return write_regression(result, rec.header, out, source=os.fspath(path), names=invariants or list(REGISTRY),
                            command=command, depth=depth, directory=directory)


__all__ = ["REGRESSIONS", "CheckError", "OutputPathError", "Plan", "ShrinkError", "check_argv", "prepare_output", "ShrinkResult", "Shrinker", "output_paths", "plan", "shrink",
           "write_regression"]
