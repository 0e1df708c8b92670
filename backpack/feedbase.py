"""What the native and the ccxt-backed feeds share: config, symbol rules, the cryptofeed lifecycle and
the observability plumbing.

Both bypass cryptofeed's connection handling and run one coroutine of their own (``_run``), so the
lifecycle hooks of cryptofeed 2.4.1 (``start``/``stop``/``shutdown``) and 3.0.1 (``run(stop_event)``)
are adapted here once. Both report into a ``backpack.metrics.Registry`` (``feed.registry``) labelled with
their ``feed_path``, describe themselves to ``backpack.health`` with ``health_status``, and start the
health endpoint for as long as they run when ``backpack.health`` is configured.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from . import __version__, compat
from .backoff import equal_jitter
from .clock import Clock, WallClock, sleep_or_stop, to_us
from .config import BackpackConfig, HealthSettings, section_of, with_http_proxy
from .health import STATUS_VALUES, FeedHealth, HealthServer, verdict
from .logs import ContextLogger, context
from .metrics import NATIVE, RateMeter, RecentEvents, Registry, StreamActivity
from .protocol.subscriptions import BALANCES, FILLS, INTERVALS, ORDER_INFO, POSITIONS, RFQ
from .protocol.symbols import native_symbol, normalize_symbol
from .ratelog import RateLimitedLog

LOG = logging.getLogger("backpack.feed")

VALID_CANDLE_INTERVALS = set(INTERVALS)

_PRIVATE_SUBSCRIPTIONS = (ORDER_INFO, FILLS, POSITIONS, BALANCES, RFQ)
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
# Callback latencies wait as integer ns in their histogram's sink until a read (a scrape, /health) or
# until this many are pending: a list append per callback instead of an observe, in bounded memory.
_LATENCY_SINK_MAX = 4096


class BackpackFeedBase(compat.Feed):
    id = "BACKPACK"
    websocket_endpoints: list = []
    rest_endpoints: list = []
    valid_candle_intervals = VALID_CANDLE_INTERVALS
    feed_path = NATIVE  # the ``path`` label of every metric: native or ccxt
    log_name = "backpack.feed"

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
        self.log = ContextLogger(logging.getLogger(self.log_name), {"feed": self.id, "path": self.feed_path})
        self.ratelog = RateLimitedLog(self.log, self.clock.now_us)
        # observability: the registry, and the shell-side bookkeeping its collectors and health read
        self.registry = Registry({"path": self.feed_path})
        self.recent = RecentEvents()  # when resyncs, gaps, reconnects, errors, auth failures happened
        self.activity = StreamActivity()  # messages and last receipt per (stream kind, native symbol)
        self.frame_rate = RateMeter()
        self.health_server: HealthServer | None = None
        self._running = False
        self._connected_since: int | None = None
        self._last_frame_us: int | None = None
        self._callback_latency = self.registry.histogram("backpack_callback_latency_seconds")
        self._latency_by_channel: dict[str, list[int]] = {}  # channel -> its latency child's ns sink
        # Callback latency: live, the cheap monotonic counter; on any other clock (a replay) that clock,
        # so a replayed run reports the same latencies every time.
        if type(self.clock) is WallClock:
            self._timer_ns = time.perf_counter_ns
        else:
            self._timer_ns = lambda: self.clock.now_us() * 1000
        self._errors = self.registry.counter("backpack_errors_total")
        self.registry.add_collector(self._collect_base)
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
        callbacks = self.callbacks.get(data_type)
        if not callbacks:
            return
        sink = self._latency_by_channel.get(data_type)
        if sink is None:
            sink = self._latency_by_channel[data_type] = self._callback_latency.labels(data_type).ns_sink()
        timer = self._timer_ns
        for cb in callbacks:
            started = timer()
            try:
                await cb(obj, receipt_timestamp)
            except Exception as exc:  # noqa: BLE001 - whatever a consumer raises is the consumer's
                self._callback_failed(data_type, cb, exc)
            sink.append(timer() - started)
        if len(sink) > _LATENCY_SINK_MAX:
            self._callback_latency.labels(data_type).flush()

    def _callback_failed(self, data_type: str, cb: Any, exc: Exception) -> None:
        name = callback_name(cb)
        count = self.callback_errors.get(name, 0) + 1
        self.callback_errors[name] = count
        self.recent.mark("errors", self.clock.now_us())
        self.ratelog.log(
            logging.ERROR, f"callback {name}", "%s: %s callback %s raised %s (%d so far); the feed keeps delivering",
            self.id, data_type, name, type(exc).__name__, count, exc_info=exc if count == 1 else None,
            extra=context(cause=type(exc).__name__),
        )

    def _error(self, kind: str) -> None:
        """A contained failure of ``kind`` (a backpack_errors_total label): counted, and seen by health."""
        self._errors.inc(kind)
        self.recent.mark("errors", self.clock.now_us())

    # --- observability -------------------------------------------------------------------------

    def health_now(self) -> int:
        return self.clock.now_us()

    def health_status(self, now_us: int, window_us: int) -> FeedHealth:
        """What ``/health`` reports; each feed fills in what it knows."""
        raise NotImplementedError

    def _recent(self, now_us: int, window_us: int) -> dict[str, int]:
        since = now_us - window_us
        return {kind: self.recent.count(kind, since) for kind in ("resyncs", "gaps", "reconnects", "errors",
                                                                   "auth_failures")}

    def _collect_base(self) -> Any:
        now = self.clock.now_us()
        yield "backpack_feed_info", {"version": __version__, "cryptofeed": compat.CRYPTOFEED_VERSION}, 1
        yield "backpack_feed_running", {}, int(self._running)
        yield "backpack_feed_restarts_total", {}, self.restarts
        for name, count in self.callback_errors.items():
            yield "backpack_callback_errors_total", {"callback": name}, count
        yield "backpack_ws_frames_total", {}, self._frames_total()
        yield "backpack_ws_messages_per_second", {}, self.frame_rate.rate(now, self._frames_total())
        for (kind, native), count in self.activity.counts.items():
            yield "backpack_ws_messages_total", {"stream": kind, "symbol": self._std_or_blank(native)}, count
        for native, last in self.activity.last_for_symbol().items():
            age = (now - last) / 1e6
            yield "backpack_last_message_age_seconds", {"symbol": self._std_or_blank(native)}, age
        settings = self.bp_config.health or HealthSettings()
        try:
            report = self.health_status(now, int(settings.window_seconds * 1_000_000))
            status, _ = verdict(report, settings, now)
        except Exception as exc:  # noqa: BLE001 - a bug in the health report must not take /metrics with it
            self._error("internal")
            self.ratelog.log(logging.ERROR, "health status", "%s: health status failed (%s)", self.id,
                             type(exc).__name__, exc_info=exc, extra=context(cause=type(exc).__name__))
            status = "down"
        yield "backpack_health_status", {}, STATUS_VALUES[status]

    def _frames_total(self) -> int:
        raise NotImplementedError

    def _std_or_blank(self, native: str) -> str:
        return self.exchange_symbol_to_std_symbol(native) if native else ""

    async def _start_health(self) -> None:
        settings = self.bp_config.health
        if settings is None or self.health_server is not None:
            return
        server = HealthServer(self, settings, self.log)
        try:
            await server.start()
        except OSError as exc:
            # The data matters more than the probe: say so loudly and keep feeding.
            self.log.error(
                "%s: health endpoint could not listen on %s:%s (%s); the feed runs without it. Another "
                "process (or another feed of this process) may hold the port: set backpack.health.port",
                self.id, settings.host, settings.port, exc.strerror or type(exc).__name__,
                extra=context(cause=type(exc).__name__),
            )
            return
        self.health_server = server
        exposed = "" if settings.host in _LOOPBACK_HOSTS else " (reachable from other hosts)"
        self.log.info("%s: health endpoint at %s/health and %s/metrics%s", self.id, server.url, server.url,
                      exposed)

    async def _stop_health(self) -> None:
        server, self.health_server = self.health_server, None
        if server is not None:
            await server.stop()

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
        await self._start_health()
        try:
            while not stop.is_set():
                self._running = True
                try:
                    await self._run(stop)
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._running = False
                    self._connected_since = None
                    failures += 1
                    self.restarts += 1
                    delay = equal_jitter(1.0, failures - 1, 60.0, self.rng)
                    self.log.exception("%s: %s failed unexpectedly (restart %d in %.1f s)", self.id,
                                       type(self).__name__, failures, delay,
                                       extra=context(cause=type(exc).__name__))
                    await self._close_resources()
                    await sleep_or_stop(self.clock, to_us(delay), stop)
        finally:
            self._running = False
            self._connected_since = None
            await self._stop_health()

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
