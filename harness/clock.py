"""VirtualClock: a ``backpack.clock.Clock`` whose time moves only when its owner says so.

The model, which the replay (``harness.transports.replay``) relies on:

* **Time is a number the owner sets.** ``now_us()`` returns it; only ``advance_to(us)`` changes it, and
  never backwards (an earlier target is ignored). Nothing reads the wall clock, so two runs that make
  the same calls see the same times.
* **A sleep is a registration, not a wait on real time.** ``sleep_us(d)`` with ``d > 0`` records the
  deadline ``now + d`` and suspends its caller until time reaches it. ``d <= 0`` yields to the event loop
  once and returns (the live clock does the same), so a zero sleep never depends on the owner.
* **Waking is ordered and never early.** ``advance_to(T)`` wakes every sleeper whose deadline is
  ``<= T``, in deadline order, ties in the order the sleeps were called (a sequence number breaks them),
  by completing their futures in that order; asyncio resumes the sleepers in that order too. When a
  sleeper resumes, ``now_us()`` is at least its deadline. A cancelled sleep (``sleep_or_stop`` cancels
  the sleeper it loses) simply leaves the queue.
* **The owner decides when time passes.** ``next_deadline()`` tells it when the earliest sleeper is due.
  A replay that needs the feed to act (connect, send) while the feed sleeps in a backoff advances to
  that deadline, lets the feed run, and looks again; a feed that never acts makes the replay give up
  after a bounded span of *virtual* time (a conformance failure), so nothing ever hangs on real time.
  To let each woken sleeper run before the next is due, advance one deadline at a time
  (``advance_to(next_deadline())``, let the loop run, repeat) rather than jumping straight to ``T``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualClock:
    """A deterministic clock in integer µs; see the module docstring for the model."""

    __slots__ = ("_now", "_heap", "_seq")

    def __init__(self, start_us: int = 0) -> None:
        if isinstance(start_us, bool) or not isinstance(start_us, int):
            raise TypeError(f"start_us must be an int of µs, got {type(start_us).__name__}")
        self._now = start_us
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __repr__(self) -> str:
        return f"VirtualClock(now_us={self._now}, sleepers={self.sleepers})"

    # -- Clock ------------------------------------------------------------------------------------

    def now_us(self) -> int:
        return self._now

    async def sleep_us(self, delay_us: int) -> None:
        if delay_us <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self._now + int(delay_us), next(self._seq), future))
        await future

    # -- the owner's side -------------------------------------------------------------------------

    def _prune(self) -> None:
        heap = self._heap
        while heap and heap[0][2].done():  # cancelled sleeps leave the queue here
            heapq.heappop(heap)

    def next_deadline(self) -> int | None:
        """µs at which the earliest pending sleeper is due; None when nobody sleeps."""
        self._prune()
        return self._heap[0][0] if self._heap else None

    @property
    def sleepers(self) -> int:
        """Pending (not cancelled, not yet woken) sleeps."""
        return sum(1 for _, _, f in self._heap if not f.done())

    def advance_to(self, us: int) -> int:
        """Set the time to ``us`` (never backwards) and wake every sleeper due by then, in deadline
        order, ties in call order; returns how many were woken."""
        if isinstance(us, bool) or not isinstance(us, int):
            raise TypeError(f"advance_to takes an int of µs, got {type(us).__name__}")
        if us > self._now:
            self._now = us
        woken = 0
        heap = self._heap
        while heap and heap[0][0] <= self._now:
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)
                woken += 1
        return woken

    def advance_by(self, delta_us: int) -> int:
        return self.advance_to(self._now + max(0, delta_us))


__all__ = ["VirtualClock"]
