"""A ``RuleBasedStateMachine`` over the protocol core: faults decided one step at a time.

Where the property suites draw a whole program at once, the machine walks a window of a recording
with a cursor and at every step decides what happens next: let a few frames through, drop, repeat,
reorder, hold, corrupt or truncate the next one, inject an error frame, cut the connection, go silent,
or make the next snapshot answer stale, ahead, failed or malformed. Each decision is an edit at the
cursor, so the machine's history *is* a fault program; after every step the program so far (its
window ending at the cursor) runs through the core and every invariant is checked (``every_invariant``).

So a failure is reported exactly as the property suites report one, with the (shrunk) program and
the ``replay --faults --level core`` command that reproduces it: the run that failed was a run of that
very program. ``machine_for(reference, window)`` makes the test class for one recording window.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from harness.scenarios.failures import ScenarioFailure
from harness.scenarios.invariants import InvariantBroken
from harness.scenarios.oracle import Reference
from harness.scenarios.program import ANSWERS, CORRUPTIONS, MALFORMED, Edit, Program, Window, apply
from harness.scenarios.runner import run_core


class CoreMachine(RuleBasedStateMachine):
    """Set ``reference``, ``window`` and ``recording`` (a path, for the report) on a subclass."""

    reference: Reference
    window: Window
    recording: str | os.PathLike[str] = "recording"

    def __init__(self) -> None:
        super().__init__()
        stop = self.window.stop or len(self.reference.events)
        self.frames = self.reference.frames_between(self.window.start, stop)
        self.edits: list[Edit] = []
        self.cursor = 0  # frames of the window decided so far
        self.requests = 0  # depth requests the client made in the last run
        self.runs = 0

    # -- the program so far -----------------------------------------------------------------------

    def program(self) -> Program:
        """The edits so far over the frames decided so far (and any frame an edit names)."""
        end = max([self.cursor] + [e.at + 1 for e in self.edits if e.at is not None])
        stop = self.frames[end].index if end < len(self.frames) else (self.window.stop or len(self.reference.events))
        return Program(tuple(self.edits), Window(self.window.start, stop, self.window.stretch))

    def _edit(self, kind: str, advance: int = 1, **params: Any) -> None:
        self.edits.append(Edit.make(kind, at=self.cursor, **params))
        self.cursor = min(len(self.frames), self.cursor + advance)

    @property
    def open(self) -> bool:
        return self.cursor < len(self.frames)

    # -- rules ------------------------------------------------------------------------------------

    @precondition(lambda self: self.open)
    @rule(n=st.integers(1, 16))
    def advance(self, n: int) -> None:
        """Let the next ``n`` frames through untouched (first by name: what shrinking prefers)."""
        self.cursor = min(len(self.frames), self.cursor + n)

    @precondition(lambda self: self.open)
    @rule(count=st.integers(1, 3))
    def drop(self, count: int) -> None:
        self._edit("drop", advance=count, count=count)

    @precondition(lambda self: self.open)
    @rule(count=st.integers(1, 2))
    def duplicate(self, count: int) -> None:
        self._edit("duplicate", count=count)

    @precondition(lambda self: self.open)
    @rule(by=st.integers(1, 6))
    def reorder(self, by: int) -> None:
        self._edit("reorder", by=by)

    @precondition(lambda self: self.open)
    @rule(ms=st.integers(1, 2000))
    def hold(self, ms: int) -> None:
        self._edit("hold", seconds=ms / 1000)

    @precondition(lambda self: self.open)
    @rule(how=st.sampled_from(CORRUPTIONS))
    def corrupt(self, how: str) -> None:
        self._edit("corrupt", how=how)

    @precondition(lambda self: self.open)
    @rule(keep=st.integers(0, 120))
    def truncate(self, keep: int) -> None:
        self._edit("truncate", keep=keep)

    @precondition(lambda self: self.open)
    @rule(code=st.sampled_from((4002, 4006, 4008, 4010)))
    def error_frame(self, code: int) -> None:
        self._edit("error_frame", advance=0, code=code)

    @precondition(lambda self: self.open)
    @rule()
    def cut(self) -> None:
        self._edit("cut", advance=0)

    @precondition(lambda self: self.open)
    @rule(seconds=st.sampled_from((5.0, 140.0)))
    def silence(self, seconds: float) -> None:
        self._edit("silence", advance=0, seconds=seconds)

    @rule(answer=st.sampled_from(ANSWERS[1:]), by=st.integers(1, 30), how=st.sampled_from(MALFORMED))
    def next_snapshot(self, answer: str, by: int, how: str) -> None:
        nth = self.requests + 1 + sum(1 for e in self.edits if e.kind == "snapshot")
        self.edits.append(Edit.make("snapshot", nth=nth, answer=answer, by=by, how=how))

    # -- after every step -------------------------------------------------------------------------

    @invariant()
    def every_invariant(self) -> None:
        """After every step, the program so far keeps invariants (a)-(d) through the core."""
        if self.cursor == 0:
            return
        program = self.program()
        try:
            run = run_core(apply(program, self.reference), depth=1, keep_lines=False)
        except InvariantBroken as exc:
            raise ScenarioFailure(self.recording, program, "core", exc) from None
        self.runs += 1
        self.requests = run.exchange.get("depth_requests", 0)


def machine_for(reference: Reference, window: Window, recording: str | os.PathLike[str]) -> type[CoreMachine]:
    return type("CoreMachineOn", (CoreMachine,), {"reference": reference, "window": window, "recording": recording})


__all__ = ["CoreMachine", "machine_for"]
