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
from .config import BackpackConfig, section_of, with_http_proxy
from .protocol.subscriptions import BALANCES, FILLS, INTERVALS, ORDER_INFO, POSITIONS
from .protocol.symbols import native_symbol, normalize_symbol

LOG = logging.getLogger("backpack.feed")

VALID_CANDLE_INTERVALS = set(INTERVALS)

_PRIVATE_SUBSCRIPTIONS = (ORDER_INFO, FILLS, POSITIONS, BALANCES)


class BackpackFeedBase(compat.Feed):
    id = "BACKPACK"
    websocket_endpoints: list = []
    rest_endpoints: list = []
    valid_candle_intervals = VALID_CANDLE_INTERVALS

    def __init__(
        self, *, backpack_config: BackpackConfig | dict | None = None, rng: random.Random | None = None, **kwargs: Any
    ) -> None:
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
        for channel in compat.PRIVATE_CHANNELS:  # 3.0.1 has no slots for these
            self.callbacks.setdefault(channel, [])
        self.rng = rng or random.Random()
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None
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
        try:
            await self._run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("%s: %s stopped on an unexpected error", self.id, type(self).__name__)

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
                await self._run(stop_event)
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
