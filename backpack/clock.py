"""One clock for every timed decision the feed makes: readings in integer µs, sleeps a replay can run virtually.

The transport, the WS session (backoff, health), the REST client (backoff, circuit breaker, signing
timestamps), snapshot retries, the symbol cache and the ccxt-backed feed all read this one interface, so a
replay that hands them a virtual clock (``harness.clock.VirtualClock``) controls every wait: nothing in a
replay waits on real time unless its pacing asks for it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch on this clock; never decreases."""
        ...

    async def sleep_us(self, delay_us: int) -> None:
        """Return once ``delay_us`` has passed on this clock (at once for ``delay_us <= 0``)."""
        ...


def to_us(seconds: float) -> int:
    """Seconds (the unit of config values and backoff rules) to whole µs, never negative."""
    return max(0, round(seconds * 1_000_000))


class WallClock:
    """The live clock: wall-clock µs that never go backwards (an NTP step would otherwise reorder
    receipts), and real sleeps."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = 0

    def now_us(self) -> int:
        now = time.time_ns() // 1000
        if now < self._last:
            return self._last
        self._last = now
        return now

    async def sleep_us(self, delay_us: int) -> None:
        await asyncio.sleep(max(0, delay_us) / 1_000_000)

    def __repr__(self) -> str:
        return "WallClock()"


async def sleep_or_stop(clock: Clock, delay_us: int, stop: asyncio.Event) -> bool:
    """Sleep on ``clock`` unless ``stop`` is set first; True when stopped."""
    if stop.is_set():
        return True
    sleeper = asyncio.ensure_future(clock.sleep_us(delay_us))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        stopper.cancel()
    return stop.is_set()
