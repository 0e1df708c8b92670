"""Log lines that repeat are counted, not repeated: one line per key per interval, then a summary.

A feed that receives a thousand bad frames a second, or whose callback raises on every trade, must tell
the operator once, precisely, and then say how often it keeps happening, without flooding the log or
slowing the hot path. Time comes from the caller's clock (the transport's, so a replay is reproducible).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

Clock = Callable[[], int]  # integer µs

MAX_KEYS = 1024  # distinct keys remembered; older ones are forgotten (and may be logged again)


class RateLimitedLog:
    """``log(level, key, msg, *args)``: the first line of ``key`` goes out; repeats within
    ``interval_s`` are counted and reported with the next line of that key after the interval."""

    def __init__(
        self, logger: logging.Logger | logging.LoggerAdapter, clock: Clock, interval_s: float = 60.0
    ) -> None:
        self.logger = logger
        self.clock = clock
        self.interval_us = int(interval_s * 1_000_000)
        self._windows: dict[Any, list[int]] = {}  # key -> [window start µs, suppressed count]
        self.suppressed = 0  # lines not written, over the log's lifetime

    def log(self, level: int, key: Any, msg: str, *args: Any, exc_info: Any = None,
            extra: Mapping[str, Any] | None = None) -> bool:
        """True when the line was written, False when it was counted instead. ``extra`` becomes record
        attributes (the context fields of ``backpack.logs``)."""
        now = self.clock()
        window = self._windows.get(key)
        if window is not None and now - window[0] < self.interval_us:
            window[1] += 1
            self.suppressed += 1
            return False
        if window is not None and window[1]:
            msg = f"{msg} ({window[1]} more like this in the last {(now - window[0]) / 1e6:.0f} s)"
        if window is None and len(self._windows) >= MAX_KEYS:
            self._windows.pop(next(iter(self._windows)))
        self._windows[key] = [now, 0]
        self.logger.log(level, msg, *args, exc_info=exc_info, extra=extra)
        return True

    def flush(self) -> None:
        """Report what is still counted (at shutdown), so no repeat goes unmentioned."""
        for key, (_start, count) in self._windows.items():
            if count:
                self.logger.warning("%s: %d more like this since the last report", key, count)
        self._windows.clear()
