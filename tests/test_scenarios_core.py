"""Generated fault programs over every bundled recording, through the protocol core (the static model).

The profile decides the count (``BACKPACK_SCENARIOS_PROFILE``: ci 10,000 over the library, dev 800,
nightly 100,000); each recording is split into regions, one test each, so ``-n auto`` spreads them.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from harness.scenarios.program import Program
from harness.scenarios.strategies import programs

from .scenario_helpers import CORE_SPLIT, PROFILE, cases, ref, run_scenario, scenario_settings


@pytest.mark.parametrize(("name", "region", "examples"), cases(PROFILE.core, CORE_SPLIT))
def test_the_core_keeps_every_invariant_under_generated_faults(name: str, region: tuple[float, float],
                                                                examples: int) -> None:
    reference = ref(name)

    @scenario_settings(examples)
    @given(programs(reference, region=region))
    def check(program: Program) -> None:
        """Under any fault program, the core never emits a wrong book, resyncs exactly where information was
        lost, emits each trade once and every trade it got, and answers every bad frame with an error."""
        run_scenario(name, program, "core", depth=1, keep_lines=False)

    check()
