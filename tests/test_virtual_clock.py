"""VirtualClock: time moves only on advance_to; sleepers wake in deadline order, ties in call order."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backpack.clock import Clock, sleep_or_stop
from harness.clock import VirtualClock


def test_it_is_a_clock_and_stands_still_until_advanced() -> None:
    clock = VirtualClock(1_000)
    assert isinstance(clock, Clock)
    assert clock.now_us() == clock.now_us() == 1_000
    clock.advance_to(5_000)
    clock.advance_to(2_000)  # never backwards
    assert clock.now_us() == 5_000
    with pytest.raises(TypeError):
        clock.advance_to(1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VirtualClock(True)  # type: ignore[arg-type]


async def test_a_sleep_waits_for_the_owner_not_for_real_time() -> None:
    clock = VirtualClock(0)
    sleeper = asyncio.ensure_future(clock.sleep_us(3_600_000_000))  # an hour
    for _ in range(5):
        await asyncio.sleep(0)
    assert not sleeper.done() and clock.next_deadline() == 3_600_000_000 and clock.sleepers == 1
    assert clock.advance_to(3_599_999_999) == 0
    await asyncio.sleep(0)
    assert not sleeper.done()
    assert clock.advance_to(3_600_000_000) == 1
    await sleeper
    assert clock.next_deadline() is None


async def test_zero_and_negative_sleeps_return_without_the_owner() -> None:
    clock = VirtualClock(10)
    await asyncio.wait_for(clock.sleep_us(0), 1)
    await asyncio.wait_for(clock.sleep_us(-5), 1)
    assert clock.next_deadline() is None and clock.now_us() == 10


async def test_cancelled_sleepers_leave_the_queue() -> None:
    clock = VirtualClock(0)
    stop = asyncio.Event()
    stopped = asyncio.ensure_future(sleep_or_stop(clock, 500, stop))
    plain = asyncio.ensure_future(clock.sleep_us(900))
    for _ in range(3):
        await asyncio.sleep(0)
    assert clock.sleepers == 2
    stop.set()
    assert await stopped is True  # the stop won; its sleeper was cancelled
    await asyncio.sleep(0)
    assert clock.next_deadline() == 900 and clock.sleepers == 1
    clock.advance_to(900)
    await plain


@settings(max_examples=200, deadline=None)
@given(
    start=st.integers(0, 10**12),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("sleep"), st.integers(-5, 5_000)),
            st.tuples(st.just("advance"), st.integers(0, 6_000)),
            st.tuples(st.just("next"), st.integers(-1, 0)),  # to the next deadline, or 1 µs before it
        ),
        max_size=60,
    ),
)
def test_any_sleeps_and_advances_wake_in_deadline_order_and_never_early(start: int,
                                                                         ops: list[tuple[str, int]]) -> None:
    """For any interleaving of sleeps and advances, each advance wakes exactly the pending sleepers due
    by its target, in (deadline, call order) order, each seeing a time >= its deadline; zero or negative
    sleeps return without any advance."""

    async def scenario() -> None:
        clock = VirtualClock(start)
        woken: list[tuple[int, int, int]] = []  # (deadline, call number, time seen on waking)
        pending: list[tuple[int, int]] = []
        tasks = []

        async def sleeper(n: int, delay: int) -> None:
            await clock.sleep_us(delay)
            woken.append((clock.now_us() + delay if delay <= 0 else deadline_of[n], n, clock.now_us()))

        deadline_of: dict[int, int] = {}
        for n, (op, value) in enumerate(ops):
            if op == "sleep":
                deadline_of[n] = clock.now_us() + value
                before = len(woken)
                tasks.append(asyncio.ensure_future(sleeper(n, value)))
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                if value > 0:
                    pending.append((deadline_of[n], n))
                    assert len(woken) == before  # a real sleep waits for the owner
                else:
                    assert [k for _, k, _ in woken[before:]] == [n]  # returned by itself
                continue
            target = clock.now_us() + value if op == "advance" else (clock.next_deadline() or clock.now_us()) + value
            before = len(woken)
            clock.advance_to(target)
            for _ in range(3):
                await asyncio.sleep(0)
            due = sorted(p for p in pending if p[0] <= clock.now_us())
            assert [(d, k) for d, k, _ in woken[before:]] == due  # exactly these, in this order
            assert all(seen >= d for d, _, seen in woken[before:])  # never early
            pending = [p for p in pending if p[0] > clock.now_us()]
            assert clock.next_deadline() == (min(pending)[0] if pending else None)
        clock.advance_to(clock.now_us() + 10**7)
        for _ in range(3):
            await asyncio.sleep(0)
        assert all(t.done() for t in tasks) and clock.next_deadline() is None

    asyncio.run(scenario())
