"""Generated fault programs through the real ``BackpackFeed`` on a ``ScenarioTransport``.

ci: 200 scenarios over the library (dev 40, nightly 2,000). Here the exchange reacts to the feed: its
reconnects, resubscribes, private signatures and snapshot retries are part of what is checked.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from harness.scenarios.program import Program
from harness.scenarios.strategies import programs

from .scenario_helpers import FEED_SPLIT, PROFILE, cases, ref, run_scenario, scenario_settings


@pytest.mark.parametrize(("name", "region", "examples"), cases(PROFILE.feed, FEED_SPLIT))
def test_the_feed_keeps_every_invariant_under_generated_faults(name: str, region: tuple[float, float],
                                                                examples: int) -> None:
    reference = ref(name)

    @scenario_settings(examples)
    @given(programs(reference, region=region, max_edits=4))
    def check(program: Program) -> None:
        """Under any fault program, the feed keeps (a)-(d) and resubscribes exactly, signing afresh (e)."""
        run_scenario(name, program, "feed")

    check()
