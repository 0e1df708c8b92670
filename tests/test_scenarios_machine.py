"""The stateful test of the core: faults decided step by step, every invariant checked after each step."""

from __future__ import annotations

from harness.scenarios.machine import machine_for
from harness.scenarios.program import Window
from harness.scenarios.strategies import stretch_for

from .scenario_helpers import PROFILE, path, ref, scenario_settings


def _window(name: str, first: int, frames: int) -> Window:
    reference = ref(name)
    start = reference.frames[first].index
    stop = reference.frames[first + frames].index
    return Window(start, stop, stretch_for(reference, start, frames, 10.0))


def _case(name: str, first: int, frames: int = 200):
    machine = machine_for(ref(name), _window(name, first, frames), path(name))
    machine.TestCase.settings = scenario_settings(max(1, PROFILE.machine // 2),
                                                  stateful_step_count=PROFILE.machine_steps)
    return machine.TestCase


TestTheCoreStepByStepOnPrivate = _case("private", 3000)
TestTheCoreStepByStepOnErrors = _case("errors", 2000)
