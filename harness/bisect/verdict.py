"""Is this revision good on a recording? The first frame where its output goes wrong, by one of three judges.

* ``golden``: its output differs from a normalized output recorded as right (``harness.bisect.diff``);
* ``ccxt``: its output differs from ccxt.pro's on the same frames, after the registered deviations
  (``harness.parity``: the oracle, the comparator, the deviation registry);
* ``invariants``: its output breaks an invariant (``harness.bisect.invariants``).

``Verdict.status`` maps onto ``git bisect run``'s exit codes: good 0, bad 1, skip 125 when this revision
cannot replay the recording at all (a format version it does not read, a feed that does not do what the
recording has, a header it cannot build a feed from). That is what makes one command usable on every
commit of a range.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from backpack.protocol.normalized import DEFAULT_DEPTH

GOOD, BAD, SKIP = "good", "bad", "skip"
EXIT = {GOOD: 0, BAD: 1, SKIP: 125}
JUDGES = ("golden", "ccxt", "invariants")


@dataclass
class Verdict:
    status: str
    judge: str
    message: str
    frame: int | None = None  # index of the first recording event where it went wrong
    line: int | None = None  # index of the first wrong line of this revision's output
    detail: dict[str, Any] = field(default_factory=dict)
    mode: str | None = None  # how the recording was replayed (core / feed)

    @property
    def exit_code(self) -> int:
        return EXIT[self.status]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "judge": self.judge, "message": self.message, "frame": self.frame,
                "event": None if self.frame is None else self.frame + 1, "line": self.line, "mode": self.mode,
                "detail": self.detail}


def _skip(judge: str, exc: BaseException) -> Verdict:
    return Verdict(SKIP, judge, f"this revision cannot replay the recording: {' '.join(str(exc).split())}")


def judge_golden(recording: str | os.PathLike[str], golden: str | os.PathLike[str], *, mode: str = "auto",
                 depth: int | None = DEFAULT_DEPTH) -> Verdict:
    from .diff import first_divergence
    from .render import describe_event, divergence_json
    from .sides import Side

    ours = Side(recording, mode=mode, depth=depth, name="this revision")
    if not ours.recording:
        raise ValueError(f"{recording} is not a recording")
    expected = Side(golden, name=os.path.basename(os.fspath(golden)))
    found = first_divergence(ours.items(), expected.items())
    if found is None:
        return Verdict(GOOD, "golden", "the output equals the golden output", mode=ours.mode_used)
    frame = found.frame
    if frame is None and found.b is not None:
        frame = _locate(recording, found.b.line)
    event = ours.event(frame)
    return Verdict(BAD, "golden", f"the output differs from the golden output at line {found.index + 1}; "
                   f"input {describe_event(frame, event)}", frame, found.index,
                   divergence_json(found, "this revision", expected.name, event), ours.mode_used)


def _locate(recording: str | os.PathLike[str], line: str) -> int | None:
    """The event behind a golden line this revision did not produce (by its receipt)."""
    from harness.parity.provenance import Frames
    from harness.recording.reader import read_recording

    try:
        record = json.loads(line)
    except ValueError:
        return None
    return Frames(read_recording(recording)).locate(record) if isinstance(record, dict) else None


def judge_ccxt(recording: str | os.PathLike[str], *, mode: str = "auto", depth: int | None = DEFAULT_DEPTH,
               registry: str | None = None) -> Verdict:
    from pathlib import Path

    from harness.parity.deviations import load_registry
    from harness.parity.oracle import oracle_records
    from harness.parity.provenance import Frames
    from harness.parity.run import compare_streams
    from harness.recording.reader import read_recording

    from .sides import Side

    ours = Side(recording, mode=mode, depth=depth)
    native = []
    for index, item in enumerate(ours.items()):
        record = json.loads(item.line)
        record["frame"] = item.frame
        record["_line"] = index
        native.append(record)
    rec = read_recording(recording)
    oracle = oracle_records(rec, depth=depth)
    frames = Frames(rec)
    frames.annotate(oracle.records)
    entries = load_registry(Path(registry)) if registry else load_registry()
    comparison = compare_streams(native, oracle, frames, entries, depth)
    unexplained = [d for d in comparison.differences if not d.explained]
    if not unexplained:
        explained = sum(1 for d in comparison.differences if d.explained)
        return Verdict(GOOD, "ccxt", f"no unexplained difference from ccxt ({explained} explained by registered "
                       "deviations)", mode=ours.mode_used)

    def frame_of(d: Any) -> int:
        frames_seen = [r.get("frame") for r in (d.a, d.b) if r is not None and type(r.get("frame")) is int]
        return min(frames_seen) if frames_seen else 1 << 62

    first = min(unexplained, key=frame_of)
    frame = frame_of(first)
    frame_index = None if frame == 1 << 62 else frame
    what = ", ".join(f"{f.field}: {f.a!r} != ccxt {f.b!r}" for f in first.fields) or first.kind.replace("_", " ")
    detail = {"type": first.type, "symbol": first.symbol, "kind": first.kind, "key": list(first.key),
              "native": first.a, "ccxt": first.b, "unexplained": len(unexplained)}
    line = first.a.get("_line") if first.a is not None else None
    return Verdict(BAD, "ccxt", f"{len(unexplained)} unexplained difference(s) from ccxt; the first is at "
                   f"{_event_text(rec, frame_index)}: {first.type} {first.symbol} {what}", frame_index, line,
                   _jsonable(detail), ours.mode_used)


def _event_text(rec: Any, frame: int | None) -> str:
    from .render import describe_event

    event = rec.events[frame] if frame is not None and 0 <= frame < len(rec.events) else None
    return describe_event(frame, event)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def judge_invariants(recording: str | os.PathLike[str], names: Sequence[str] | None = None, *, mode: str = "auto",
                     depth: int | None = DEFAULT_DEPTH) -> Verdict:
    from harness.recording.reader import read_recording

    from .invariants import REGISTRY, first_violation
    from .sides import Side

    names = list(names or REGISTRY)
    ours = Side(recording, mode=mode, depth=depth)
    records = [(json.loads(item.line), item.frame) for item in ours.items()]
    rec = read_recording(recording)
    violation = first_violation(records, rec.events, names, depth)
    if violation is None:
        return Verdict(GOOD, "invariants", f"{', '.join(names)}: hold on {len(records)} lines", mode=ours.mode_used)
    return Verdict(BAD, "invariants", f"invariant {violation.invariant} broken at line {violation.index + 1}, input "
                   f"{_event_text(rec, violation.frame)}: {violation.message}", violation.frame, violation.index,
                   {"invariant": violation.invariant, "record": violation.record}, ours.mode_used)


def judge(recording: str | os.PathLike[str], *, golden: str | None = None, ccxt: bool = False,
          invariants: Sequence[str] | None = None, mode: str = "auto", depth: int | None = DEFAULT_DEPTH,
          registry: str | None = None) -> Verdict:
    """One verdict; a recording this revision cannot replay is a ``skip``, not an error."""
    from harness.recording.reader import RecordingOpenError, RecordingVersionError
    from harness.replay import ReplaySetupError
    from harness.transports.replay import ReplayError

    name = "golden" if golden is not None else "ccxt" if ccxt else "invariants"
    try:
        if golden is not None:
            return judge_golden(recording, golden, mode=mode, depth=depth)
        if ccxt:
            return judge_ccxt(recording, mode=mode, depth=depth, registry=registry)
        return judge_invariants(recording, invariants, mode=mode, depth=depth)
    except RecordingOpenError:
        raise  # a missing input is the caller's problem, on every revision alike
    except (RecordingVersionError, ReplaySetupError, ReplayError) as exc:
        return _skip(name, exc)


__all__ = ["BAD", "EXIT", "GOOD", "JUDGES", "SKIP", "Verdict", "judge", "judge_ccxt", "judge_golden",
           "judge_invariants"]
