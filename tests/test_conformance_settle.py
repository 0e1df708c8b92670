"""When a conformance run stops waiting for a client: still output, counted in wall time and in polls."""

from __future__ import annotations

from harness.conformance.run import SETTLE_MAX_POLLS, SETTLE_MAX_S, SETTLE_POLLS, SETTLE_S, Settle


def _polls(settle: Settle, records: int, start: float, step: float, n: int) -> list[bool]:
    return [settle.over(records, start + i * step) for i in range(n)]


def test_a_starved_process_is_not_a_client_with_nothing_left() -> None:
    """One poll after a second off the CPU is not SETTLE_POLLS polls of still output: the wait goes on."""
    settle = Settle(0.0)
    assert settle.over(10, 0.0) is False
    assert settle.over(10, 1.0) is False  # the process was descheduled for a second: one poll only
    assert settle.over(11, 1.01) is False  # the client had frames left, and delivers them now
    verdicts = _polls(settle, 11, 1.02, 0.01, SETTLE_POLLS + 1)
    assert verdicts[-1] is True and verdicts.index(True) == SETTLE_POLLS - 1


def test_still_output_for_the_settle_time_ends_the_run() -> None:
    settle = Settle(0.0)
    step = SETTLE_S / SETTLE_POLLS
    verdicts = _polls(settle, 5, 0.0, step * 1.01, SETTLE_POLLS + 2)
    assert True in verdicts and verdicts.index(True) == SETTLE_POLLS


def test_a_client_that_never_stops_talking_is_cut_after_the_maximum() -> None:
    settle = Settle(0.0)
    step = SETTLE_MAX_S / SETTLE_MAX_POLLS * 1.01
    verdicts = [settle.over(i, i * step) for i in range(SETTLE_MAX_POLLS + 2)]
    assert verdicts.index(True) == SETTLE_MAX_POLLS - 1  # 300 polls and 3 s, whichever comes last
    fast = Settle(0.0)  # many polls in little wall time are not the maximum either
    assert not any(fast.over(i, i * 1e-5) for i in range(SETTLE_MAX_POLLS * 2))
