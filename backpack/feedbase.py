"""What the native and the ccxt-backed feeds share: config, symbol rules and the cryptofeed lifecycle.

Both bypass cryptofeed's connection handling and run one coroutine of their own (``_run``), so the
lifecycle hooks of cryptofeed 2.4.1 (``start``/``stop``/``shutdown``) and 3.0.1 (``run(stop_event)``)
are adapted here once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from . import compat
from .backoff import equal_jitter
from .clock import Clock, WallClock, sleep_or_stop, to_us
from .config import BackpackConfig, section_of, with_http_proxy
from .protocol.subscriptions import BALANCES, FILLS, INTERVALS, ORDER_INFO, POSITIONS, RFQ
from .protocol.symbols import native_symbol, normalize_symbol
from .ratelog import RateLimitedLog

LOG = logging.getLogger("backpack.feed")

VALID_CANDLE_INTERVALS = set(INTERVALS)

_PRIVATE_SUBSCRIPTIONS = (ORDER_INFO, FILLS, POSITIONS, BALANCES, RFQ)


class BackpackFeedBase(compat.Feed):
    id = "BACKPACK"
    websocket_endpoints: list = []
    rest_endpoints: list = []
    valid_candle_intervals = VALID_CANDLE_INTERVALS

    def __init__(
        self,
        *,
        backpack_config: BackpackConfig | dict | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> None:
        self.clock: Clock = clock if clock is not None else WallClock()
        config = BackpackConfig.load(
            backpack_config if backpack_config is not None else section_of(kwargs.get("config"))
        )
        # cryptofeed's own http_proxy= argument fills the proxies the backpack config leaves unset
        self.bp_config = with_http_proxy(config, kwargs.get("http_proxy"))
        if not compat.Symbols.populated(self.id):
            # Backpack symbols normalise by rule (see protocol.symbols), so subscription building needs no
            # market list and cryptofeed never performs its own symbol HTTP.
            compat.Symbols.set(self.id, {}, {})
        super().__init__(**kwargs)
        for channel in (*compat.PRIVATE_CHANNELS, *compat.OWN_CHANNELS):  # cryptofeed has no slots for these
            self.callbacks.setdefault(channel, [])
        self.rng = rng or random.Random()
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
        self.callback_errors: dict[str, int] = {}  # callback name -> exceptions it raised
        self.restarts = 0  # runs that ended on an unexpected error and were started again
        self.ratelog = RateLimitedLog(LOG, self.clock.now_us)
        private = [c for c in self.subscription if c in _PRIVATE_SUBSCRIPTIONS]
        if private and not self.bp_config.has_credentials:
            raise ValueError(
                f"{self.id}: private channels {sorted(private)} need credentials: set api_key and private_key "
                "(or private_key_env / private_key_file) in the backpack config"
            )

    # --- symbols -------------------------------------------------------------------------------

    @classmethod
    def is_authenticated_channel(cls, channel: str) -> bool:
        # Credentials come from BackpackConfig, checked in __init__; cryptofeed's key_id check is bypassed.
        return False

    def std_symbol_to_exchange_symbol(self, symbol: Any) -> str:
        if isinstance(symbol, compat.Symbol):
            symbol = symbol.normalized
        return native_symbol(symbol)

    def exchange_symbol_to_std_symbol(self, symbol: str) -> str:
        return normalize_symbol(symbol)

    # --- callbacks -----------------------------------------------------------------------------

    async def callback(self, data_type: str, obj: Any, receipt_timestamp: float) -> None:
        """Each user callback is isolated: one that raises is logged and counted, the others still run.

        cryptofeed's own ``callback`` (which ``book_callback`` also uses) lets the first exception end
        the feed; a production feed must not be stopped by a consumer's bug.
        """
        for cb in self.callbacks.get(data_type) or ():
            try:
                await cb(obj, receipt_timestamp)
            except Exception as exc:  # noqa: BLE001 - whatever a consumer raises is the consumer's
                self._callback_failed(data_type, cb, exc)

    def _callback_failed(self, data_type: str, cb: Any, exc: Exception) -> None:
        name = callback_name(cb)
        count = self.callback_errors.get(name, 0) + 1
        self.callback_errors[name] = count
        self.ratelog.log(
            logging.ERROR, f"callback {name}", "%s: %s callback %s raised %s (%d so far); the feed keeps delivering",
            self.id, data_type, name, type(exc).__name__, count, exc_info=exc if count == 1 else None,
        )

    # --- what subclasses provide ---------------------------------------------------------------

    async def _run(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    async def _close_resources(self) -> None:
        """Release sockets and clients; called once the run has ended, however it ended."""

    # --- lifecycle: cryptofeed 2.4.1 ----------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop = asyncio.Event()
        self._task = loop.create_task(self._supervised(self._stop), name=f"{self.id}.{type(self).__name__}")
        for callback in self._all_callbacks():
            if hasattr(callback, "start"):
                callback.start(loop, multiprocess=getattr(self.config, "backend_multiprocessing", False))

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def shutdown(self) -> Any:
        self.stop()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
            except TimeoutError:
                self._task.cancel()
        await self._close_resources()
        return [cb for cb in self._all_callbacks() if hasattr(cb, "stop") and await cb.stop()]

    async def _supervised(self, stop: asyncio.Event) -> None:
        """Run until stopped; a run that ends on an unexpected error is logged and started again after
        a growing pause, so one feed's bug neither stops it for good nor escapes into the FeedHandler
        (where, on cryptofeed 3.0.1, it would end every other feed)."""
        failures = 0
        while not stop.is_set():
            try:
                await self._run(stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                self.restarts += 1
                delay = equal_jitter(1.0, failures - 1, 60.0, self.rng)
                LOG.exception("%s: %s failed unexpectedly (restart %d in %.1f s)", self.id,
                              type(self).__name__, failures, delay)
                await self._close_resources()
                await sleep_or_stop(self.clock, to_us(delay), stop)

    # --- lifecycle: cryptofeed 3.0.1 ----------------------------------------------------------

    async def run(self, stop_event: asyncio.Event) -> None:
        """3.0.1 backends (``BackendQueue``) run writer tasks that this method owns and flushes at the end."""
        self._stop = stop_event
        async with asyncio.TaskGroup() as tg:
            writers = []
            for callback in self._all_callbacks():
                if hasattr(callback, "start_writer"):
                    task = callback.start_writer(tg, name=f"feed.{self.id}.backend.{type(callback).__name__}", owner=self)
                    if task is not None:
                        writers.append((callback, task))
            try:
                await self._supervised(stop_event)
            finally:
                await self._close_resources()
                await self._flush_backends(writers)

    def _all_callbacks(self) -> list[Any]:
        return [cb for callbacks in self.callbacks.values() for cb in callbacks]

    async def _flush_backends(self, writers: list[tuple[Any, asyncio.Task]]) -> None:
        for callback in self._all_callbacks():
            if hasattr(callback, "begin_shutdown"):
                callback.begin_shutdown()
        released = [cb for cb in self._all_callbacks() if hasattr(cb, "stop") and await cb.stop()]
        waiting = [task for cb, task in writers if any(cb is r for r in released)]
        if waiting:
            _, late = await asyncio.wait(waiting, timeout=getattr(self, "shutdown_timeout", 10.0))
            for task in late:
                LOG.warning("%s: backend writer did not flush in time; cancelling it", self.id)
                task.cancel()


def callback_name(cb: Any) -> str:
    """A readable name for a user callback: a function's qualified name, else its class name."""
    name = getattr(cb, "__qualname__", None) or getattr(cb, "__name__", None)
    return str(name) if name else type(cb).__name__
