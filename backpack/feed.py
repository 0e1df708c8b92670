"""``BackpackFeed``: the native cryptofeed feed.

cryptofeed's own connection handling is bypassed on purpose: all bytes cross our transport seam so that
the same feed runs live, recording or on a replay, and all protocol decisions are made by the sans-I/O
``Router``. This class only wires callbacks and keeps cryptofeed's ``OrderBook`` objects in step with the
validated protocol book.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from . import adapters, compat
from .backoff import equal_jitter
from .bookview import OrderBookView
from .clock import Clock, to_us
from .errors import BackpackError
from .feedbase import BackpackFeedBase
from .health import BookHealth, FeedHealth, StreamHealth
from .logs import ContextLogger, context
from .metrics import CounterView
from .protocol import events as ev
from .protocol.book import SYNCED
from .protocol.router import Router, accepted, is_auth_error
from .protocol.subscriptions import is_private, parse_stream, streams_for
from .protocol.symbols import SymbolCache, SymbolMap
from .protocol.wire import FEED_MARKET_TYPES
from .rest import RestClient
from .session import WsSessionManager
from .transport import Transport, TransportError, WsFrame

LOG = logging.getLogger("backpack.feed")

ProtocolCallback = Callable[[Any], Awaitable[None] | None]

# Without marketType the exchange lists only SPOT and PERP; ask for every type a feed may subscribe to.
MARKET_TYPES = FEED_MARKET_TYPES

# protocol event -> the stream kind it arrives on (book updates are counted by _on_book)
_STREAM_OF: dict[type, str] = {
    ev.Trade: "trade",
    ev.BookTicker: "bookTicker",
    ev.Ticker: "ticker",
    ev.Candle: "kline",
    ev.MarkPrice: "markPrice",
    ev.OpenInterest: "openInterest",
    ev.Liquidation: "liquidation",
    ev.OrderUpdate: "account.orderUpdate",
    ev.PositionUpdate: "account.positionUpdate",
    ev.BalanceUpdate: "account.balanceUpdate",
    ev.RfqUpdate: "account.rfqUpdate",
}

# Channels whose streams push continuously (on every book change, or every second): a symbol subscribed
# to one of them and silent for stale_message_seconds is a problem. Trades, candles, liquidations and the
# private streams are quiet whenever nothing happens, so their silence says nothing.
FRESHNESS_CHANNELS = ("l2_book", "ticker", "ticker_24h", "funding")


class _BookState:
    """One symbol's book as cryptofeed's callbacks see it, with the records kept on every delta."""

    __slots__ = ("view", "times", "seen")

    def __init__(self, view: OrderBookView, times: list[int | None], seen: list[int] | None) -> None:
        self.view = view
        self.times = times  # [last change, last snapshot] receipts (µs), shared with _book_times
        self.seen = seen  # the activity entry of ("depth", symbol): [messages, last receipt]


_STD_NAMES_MAX = 4096  # native -> normalized names remembered (the subscription's symbols, with room to spare)
L2_BOOK = compat.L2_BOOK
TRADES = compat.TRADES

# the old per-feed dict, now read from the registry
_LEGACY_METRICS = {
    "resyncs": (("backpack_book_resyncs_total", {}),),
    "errors": (("backpack_decode_errors_total", {}), ("backpack_auth_failures_total", {})),
    "callbacks": (("backpack_callback_latency_seconds", {}),),
    "snapshots": (("backpack_book_snapshots_total", {"result": "ok"}),),
    "snapshot_failures": (("backpack_book_snapshots_total", {"result": "failed"}),),
    "internal_errors": (("backpack_errors_total", {"kind": "internal"}),),
}


class BackpackFeed(BackpackFeedBase):
    # cryptofeed channel → backpack.protocol.subscriptions channel name
    websocket_channels = {
        compat.L2_BOOK: "l2_book",
        compat.TRADES: "trades",
        compat.TICKER: "ticker",
        compat.TICKER_24H: "ticker_24h",
        compat.CANDLES: "candles",
        compat.FUNDING: "funding",
        compat.OPEN_INTEREST: "open_interest",
        compat.LIQUIDATIONS: "liquidations",
        compat.ORDER_INFO: "order_info",
        compat.FILLS: "fills",
        compat.POSITIONS: "positions",
        compat.BALANCES: "balances",
        compat.RFQ: "rfq",
    }

    def __init__(
        self,
        *,
        transport: Transport | None = None,
        protocol_callback: ProtocolCallback | None = None,
        clock: Clock | None = None,
        **kwargs: Any,
    ) -> None:
        if transport is not None:
            if clock is not None and clock is not transport.clock:
                raise ValueError("give a clock or a transport (which brings its own clock), not both")
            clock = transport.clock
        super().__init__(clock=clock, **kwargs)
        self._transport = transport
        self._owns_transport = transport is None
        self.protocol_callback = protocol_callback
        self.router = Router(accept=accepted(self.subscription))
        self._symbol_map: SymbolMap | None = None
        self._std_names: dict[str, str] = {}  # native -> normalized, cleared whenever the market list changes
        # native -> (normalized name, the activity entry of ("trade", native)): a trade's one lookup
        self._trade_routes: dict[str, tuple[str, list[int]]] = {}
        self.symbols = SymbolCache(to_us(self.bp_config.symbol_cache_ttl))
        self.session: WsSessionManager | None = None
        self.rest: RestClient | None = None
        self._books: dict[str, _BookState] = {}  # native -> the book cryptofeed's callbacks receive, and its records
        self._snapshot_tasks: dict[str, asyncio.Task] = {}
        # native symbol -> [last change, last snapshot] receipts (µs) of the cryptofeed book
        self._book_times: dict[str, list[int | None]] = {}
        # totals of the session and REST client of earlier runs (each run builds new ones)
        self._retired: dict[str, int] = {}
        self.metrics = CounterView(self.registry, _LEGACY_METRICS)
        r = self.registry
        self._resyncs = r.counter("backpack_book_resyncs_total")
        self._gaps = r.counter("backpack_book_gaps_total")
        self._snapshots = r.counter("backpack_book_snapshots_total")
        self._decode_errors = r.counter("backpack_decode_errors_total")
        r.add_collector(self._collect_native)

    @property
    def symbol_map(self) -> SymbolMap | None:
        return self._symbol_map

    @symbol_map.setter
    def symbol_map(self, value: SymbolMap | None) -> None:
        self._symbol_map = value
        self._std_names = {}  # a new market list may name a symbol differently
        self._trade_routes = {}

    def exchange_symbol_to_std_symbol(self, symbol: str) -> str:
        if self._symbol_map is not None and symbol in self._symbol_map:
            return self._symbol_map.to_normalized(symbol)
        return super().exchange_symbol_to_std_symbol(symbol)

    # --- the native run ------------------------------------------------------------------------

    def _make_transport(self) -> Transport:
        if self._transport is None:
            from .live import LiveTransport

            cfg = self.bp_config
            self._transport = LiveTransport(
                rest_proxy=cfg.rest_proxy, ws_proxy=cfg.ws_proxy, watchdog_seconds=cfg.ws_watchdog_seconds,
                clock=self.clock,
            )
        return self._transport

    async def _run(self, stop: asyncio.Event) -> None:
        cfg = self.bp_config
        transport = self._make_transport()
        self._retire()
        self.rest = RestClient(
            transport, cfg.rest_url, signer=cfg.signer(), window_ms=cfg.window_ms, retries=cfg.rest_retries,
            breaker_threshold=cfg.breaker_threshold, breaker_reset=cfg.breaker_reset_seconds,
            timeout=cfg.rest_timeout, rng=self.rng, registry=self.registry,
        )
        streams = streams_for(self.subscription, interval=self.candle_interval, depth_speed=cfg.depth_speed)
        where = "sandbox" if cfg.sandbox else "production"
        self.log.info("%s: native path active (%s), %d streams", self.id, where, len(streams))
        self.session = WsSessionManager(
            transport, cfg.ws_url, streams, self._on_frame, on_connect=self._on_connect,
            on_disconnect=self._on_disconnect, signer=cfg.signer(), window_ms=cfg.window_ms,
            batch_size=cfg.subscribe_batch_size, private_retries=cfg.private_subscribe_retries, rng=self.rng,
            log=ContextLogger(logging.getLogger("backpack.session"), self.log.extra),
        )
        # The market list only validates the subscription and refines names (which convert by rule
        # anyway), so it loads beside the stream: a slow or failing /markets must not hold data back.
        symbols_task = self._spawn(self._refresh_symbols(stop), "symbols")
        try:
            await self.session.run(stop)
        finally:
            symbols_task.cancel()
            for task in self._snapshot_tasks.values():
                task.cancel()

    def _spawn(self, coro: Awaitable[None], what: str) -> asyncio.Task:
        """A background task whose unexpected failure is logged (never an unretrieved exception)."""
        task = asyncio.ensure_future(coro)
        task.add_done_callback(lambda t: self._task_done(t, what))
        return task

    def _task_done(self, task: asyncio.Task, what: str) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._error("internal")
            self.ratelog.log(logging.ERROR, f"task {what}", "%s: %s task failed", self.id, what,
                             exc_info=task.exception(), extra=context(cause=type(task.exception()).__name__))

    async def _load_symbols(self) -> None:
        """Market metadata validates the subscription; names themselves convert by rule, so a failure is not fatal."""
        assert self.rest is not None and self._transport is not None
        try:
            payload = await self.rest.markets(MARKET_TYPES)
        except (BackpackError, TransportError) as exc:
            self._error("markets")
            self.log.error("%s: could not load /api/v1/markets (%s); continuing with rule-based symbol names",
                           self.id, exc, extra=context(cause=type(exc).__name__))
            return
        self.symbol_map = self.symbols.update(payload, self.clock.now_us())
        for warning in self.symbols.warnings:
            self.log.warning("%s: %s", self.id, warning)
        # RFQ markets (<spot>_RFQ) are never listed by /markets: their absence says nothing.
        wanted = {s for symbols in self.subscription.values() for s in (symbols or ()) if not s.endswith("_RFQ")}
        for native in sorted(wanted - set(self.symbol_map.natives())):
            self.log.error("%s: %s is not listed by /api/v1/markets; the exchange sends nothing for it",
                           self.id, native, extra=context(symbol=self._std(native), cause="unlisted symbol"))

    async def _refresh_symbols(self, stop: asyncio.Event) -> None:
        """Load the market list now, then again every ``symbol_cache_ttl`` seconds (new listings, tick sizes)."""
        assert self._transport is not None
        await self._load_symbols()
        while not stop.is_set():
            await self.clock.sleep_us(self.symbols.ttl_us)
            if self.symbols.needs_refresh(self.clock.now_us()):
                await self._load_symbols()

    async def _close_resources(self) -> None:
        for task in list(self._snapshot_tasks.values()):
            task.cancel()
        if self.session is not None:
            await self.session.close()
        if self._owns_transport and self._transport is not None:
            await self._transport.close()
            self._transport = None

    # --- inputs --------------------------------------------------------------------------------

    async def _on_frame(self, frame: WsFrame) -> None:
        receipt = frame.receipt
        self._last_frame_us = receipt
        try:
            outputs = self.router.receive_frame(frame.data, receipt)
            if self.protocol_callback is None:
                # _dispatch's loop, inlined for the one path every frame takes: a coroutine less per frame
                direct = self._direct
                for out in outputs:
                    handler = direct.get(type(out))
                    if handler is not None:
                        pending = handler(self, out)
                        if pending is not None:
                            await pending
            else:
                await self._dispatch(outputs)
        except Exception as exc:  # noqa: BLE001 - a bug in the glue must cost one frame, not the feed
            self._internal_error("frame handling", exc)

    def _internal_error(self, where: str, exc: BaseException) -> None:
        self._error("internal")
        self.ratelog.log(logging.ERROR, f"internal {where}", "%s: %s failed (%s); continuing", self.id, where,
                         type(exc).__name__, exc_info=exc, extra=context(cause=type(exc).__name__))

    async def _on_connect(self, connection: int) -> None:
        self._connected_since = self.clock.now_us()

    async def _on_disconnect(self, connection: int) -> None:
        self._connected_since = None
        self.recent.mark("reconnects", self.clock.now_us())
        await self._dispatch(self.router.connection_lost())

    async def _fetch_snapshot(self, symbol: str, attempt: int) -> None:
        assert self.rest is not None and self._transport is not None
        try:
            if attempt > 1:
                await self.clock.sleep_us(to_us(equal_jitter(0.25, attempt - 2, 30.0, self.rng)))
            data, receipt = await self.rest.depth_snapshot(symbol, self.bp_config.depth_limit)
        except (BackpackError, TransportError) as exc:
            self._snapshot_failed(symbol)
            self.ratelog.log(logging.WARNING, f"snapshot {symbol}", "%s: depth snapshot for %s failed: %s",
                             self.id, symbol, exc,
                             extra=context(symbol=self._std(symbol), stream=f"depth.{symbol}",
                                           cause=type(exc).__name__))
            outputs = self.router.snapshot_failed(symbol)
        except Exception as exc:  # noqa: BLE001 - anything else still must not leave the book buffering
            self._snapshot_failed(symbol)
            self._internal_error(f"depth snapshot for {symbol}", exc)
            outputs = self.router.snapshot_failed(symbol)
        else:
            self._snapshots.inc(self._std(symbol), "ok")
            outputs = self.router.receive_snapshot(symbol, data, receipt)
        finally:
            self._snapshot_tasks.pop(symbol, None)
        await self._dispatch(outputs)

    def _snapshot_failed(self, symbol: str) -> None:
        self._snapshots.inc(self._std(symbol), "failed")
        self.recent.mark("errors", self.clock.now_us())

    # --- outputs -------------------------------------------------------------------------------

    async def _dispatch(self, outputs: list[Any]) -> None:
        """Each output: its stream's activity record, the protocol callback, then its handler.

        A handler returns what is left to await (the callbacks' coroutine) or None: the hot ones are plain
        functions, so a delta or a trade costs no coroutine of its own. Frames without a protocol callback
        take ``_on_frame``'s loop over the ``_direct`` handlers instead, which fold the record in
        (``tests/test_feed_dispatch.py`` holds the two to the same deliveries and records).
        """
        seen = self.activity.seen
        for out in outputs:
            kind = _STREAM_OF.get(type(out))
            if kind is not None:
                seen(kind, getattr(out, "symbol", ""), out.receipt)
            if self.protocol_callback is not None:
                try:
                    result = self.protocol_callback(out)
                    if result is not None:
                        await result
                except Exception as exc:  # noqa: BLE001 - a consumer's bug, isolated like any callback
                    self._callback_failed("protocol", self.protocol_callback, exc)
            handler = self._handlers.get(type(out))
            if handler is not None:
                pending = handler(self, out)
                if pending is not None:
                    await pending

    def _std(self, native: str) -> str:
        """The normalized name, validated once per native name (and again after a market-list refresh)."""
        names = self._std_names
        std = names.get(native)
        if std is None:
            std = self.exchange_symbol_to_std_symbol(native)  # raises for a name that is not a symbol
            if len(names) >= _STD_NAMES_MAX:
                names.clear()
            names[native] = std
        return std

    async def _emit(self, channel: str, obj: Any, receipt_us: int) -> None:
        if self.callbacks.get(channel):
            await self.callback(channel, obj, receipt_us / 1_000_000)

    async def _on_fetch(self, out: ev.FetchSnapshot) -> None:
        if out.symbol not in self._snapshot_tasks:
            self._snapshot_tasks[out.symbol] = self._spawn(self._fetch_snapshot(out.symbol, out.attempt),
                                                           f"snapshot {out.symbol}")

    def _on_book(self, out: ev.BookUpdate) -> Awaitable[None] | None:
        """Hand cryptofeed's callbacks a view of the Router's book: the delta is already applied there.

        One lookup per delta finds the view and its bookkeeping (the freshness entry, the book's times);
        both are updated in place, as ``activity.seen`` and the ``_book_times`` store would. Returns
        ``book_callback``'s coroutine for the dispatcher to await (see ``_dispatch``).
        """
        native = out.symbol
        receipt = out.receipt
        if out.kind == "snapshot":
            # A new object per snapshot, as before: a book handed out before a resync is not the new one.
            times: list[int | None] = [receipt, receipt]
            self._book_times[native] = times
            state = self._books[native] = _BookState(
                OrderBookView(self.id, self._std(native), self.router.books.get(native).book, self.max_depth),
                times, self.activity.entry("depth", native))
            book = state.view
            delta = None
        else:
            state = self._books.get(native)
            seen = state.seen if state is not None else None
            if seen is None:
                self.activity.seen("depth", native, receipt)
                if state is None:
                    return None
                seen = state.seen = self.activity.entry("depth", native)
            else:
                seen[0] += 1
                if receipt > seen[1]:
                    seen[1] = receipt
            state.times[0] = receipt
            book = state.view
            delta = out.delta  # the view turns it into cryptofeed's {bid: [...], ask: [...]} when first read
        if self.callbacks.get(L2_BOOK):
            return self.book_callback(
                L2_BOOK, book, receipt / 1_000_000, timestamp=out.timestamp / 1_000_000 if out.timestamp else None,
                raw=None, sequence_number=out.sequence, delta=delta,
            )
        return None

    async def _on_resync(self, out: ev.ResyncNeeded) -> None:
        std = self._std(out.symbol)
        now = self.clock.now_us()
        self._resyncs.inc(std, out.reason)
        self.recent.mark("resyncs", now)
        if out.reason == "gap":
            self._gaps.inc(std)
            self.recent.mark("gaps", now)
        self._books.pop(out.symbol, None)
        self._book_times.pop(out.symbol, None)
        # The core reports resyncs as events and logs them at DEBUG only; the shell, which has a clock,
        # tells the operator once per symbol and cause per interval. A reconnect's resync is expected.
        level = logging.INFO if out.reason == "reconnect" else logging.WARNING
        self.ratelog.log(level, f"resync {out.symbol} {out.reason}", "%s: %s book resync (%s; expected %s, got %s)",
                         self.id, out.symbol, out.reason, out.expected, out.got,
                         extra=context(symbol=std, stream=f"depth.{out.symbol}", cause=out.reason,
                                       connection=self._connection_id()))

    async def _on_error(self, out: ev.ErrorEvent) -> None:
        now = self.clock.now_us()
        if is_auth_error(out):
            self.recent.mark("auth_failures", now)
            self.log.error("%s: private subscription rejected by the exchange: %s (code %s)", self.id,
                           out.message, out.code,
                           extra=context(stream=out.stream, cause=f"auth: code {out.code}",
                                         connection=self._connection_id()))
            if self.session is not None:
                self.session.private_rejected()
        else:
            reason = "undecodable" if out.code is None else "exchange_error"
            self._decode_errors.inc(reason)
            self.recent.mark("errors", now)
            kind = "undecodable frame" if out.code is None else "exchange error frame"
            self.ratelog.log(logging.WARNING, f"{kind} {out.code}", "%s: %s: %s (code %s)", self.id, kind,
                             out.message, out.code,
                             extra=context(stream=out.stream, cause=f"{reason}: {out.code}",
                                           connection=self._connection_id()))

    async def _on_trade(self, out: ev.Trade) -> None:
        await self._emit(TRADES, adapters.trade(out, self._std(out.symbol)), out.receipt)

    def _on_trade_direct(self, out: ev.Trade) -> Awaitable[None] | None:
        """``_dispatch``'s activity record and ``_on_trade`` in one call: one lookup finds the
        normalized name and the stream's activity entry, updated in place as ``activity.seen`` would.
        Returns the callbacks' coroutine for the dispatcher to await."""
        native = out.symbol
        receipt = out.receipt
        route = self._trade_routes.get(native)
        if route is None:
            self.activity.seen("trade", native, receipt)
            std = self._std(native)  # raises for a name that is not a symbol, as _on_trade would
            entry = self.activity.entry("trade", native)
            routes = self._trade_routes
            if len(routes) >= _STD_NAMES_MAX:
                routes.clear()
            if entry is not None:
                routes[native] = (std, entry)
        else:
            std, entry = route
            entry[0] += 1
            if receipt > entry[1]:
                entry[1] = receipt
        obj = adapters.trade(out, std)
        if self.callbacks.get(TRADES):
            return self.callback(TRADES, obj, receipt / 1_000_000)
        return None

    async def _on_ticker(self, out: ev.BookTicker) -> None:
        await self._emit(compat.TICKER, adapters.ticker(out, self._std(out.symbol)), out.receipt)

    async def _on_ticker_24h(self, out: ev.Ticker) -> None:
        await self._emit(compat.TICKER_24H, adapters.ticker_24h(out, self._std(out.symbol)), out.receipt)

    async def _on_rfq(self, out: ev.RfqUpdate) -> None:
        await self._emit(compat.RFQ, adapters.rfq(out, self._std(out.symbol)), out.receipt)

    async def _on_candle(self, out: ev.Candle) -> None:
        if out.closed or not self.candle_closed_only:
            await self._emit(compat.CANDLES, adapters.candle(out, self._std(out.symbol)), out.receipt)

    async def _on_funding(self, out: ev.MarkPrice) -> None:
        await self._emit(compat.FUNDING, adapters.funding(out, self._std(out.symbol)), out.receipt)

    async def _on_oi(self, out: ev.OpenInterest) -> None:
        await self._emit(compat.OPEN_INTEREST, adapters.open_interest(out, self._std(out.symbol)), out.receipt)

    async def _on_liquidation(self, out: ev.Liquidation) -> None:
        await self._emit(compat.LIQUIDATIONS, adapters.liquidation(out, self._std(out.symbol)), out.receipt)

    async def _on_order(self, out: ev.OrderUpdate) -> None:
        symbol = self._std(out.symbol)
        await self._emit(compat.ORDER_INFO, adapters.order_info(out, symbol), out.receipt)
        if out.event == "orderFill" and out.last_fill_amount is not None:
            await self._emit(compat.FILLS, adapters.fill(out, symbol), out.receipt)

    async def _on_position(self, out: ev.PositionUpdate) -> None:
        await self._emit(compat.POSITIONS, adapters.position(out, self._std(out.symbol)), out.receipt)

    async def _on_balance(self, out: ev.BalanceUpdate) -> None:
        await self._emit(compat.BALANCES, adapters.balance(out), out.receipt)

    # --- observability -------------------------------------------------------------------------

    def _retire(self) -> None:
        """Fold the counters of the previous run's session and REST client into the carried totals."""
        for key, value in self._live_totals().items():
            self._retired[key] = self._retired.get(key, 0) + value
        self.session = self.rest = None  # counted once, even if this run fails before replacing them

    def _live_totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        if self.session is not None:
            st = self.session.stats
            out.update(frames=st.frames, connects=st.connects, reconnects=st.reconnects)
        if self.rest is not None:
            m = self.rest.metrics
            out.update(retries=m["retries"], failures=m["failures"], breaker_opens=m["breaker_opens"],
                       breaker_rejections=m["breaker_rejections"])
        return out

    def _total(self, key: str) -> int:
        return self._retired.get(key, 0) + self._live_totals().get(key, 0)

    def _frames_total(self) -> int:
        return self._total("frames")

    def _collect_native(self) -> Any:
        """The core's and the shells' own counters, read now (the hot path never pays for them)."""
        now = self.clock.now_us()
        router = self.router
        yield "backpack_ws_connects_total", {}, self._total("connects")
        yield "backpack_ws_reconnects_total", {}, self._total("reconnects")
        yield "backpack_ws_connected", {}, int(self._connected())
        yield "backpack_auth_failures_total", {}, router.stats["auth_errors"]
        stopped = self.session is not None and self.session.stats.private_stopped
        yield "backpack_private_channels_stopped", {}, int(stopped)
        decoder = router.decoder.stats
        books = router.books.stats()
        dropped = {
            "unknown_stream": decoder["unknown_stream"],
            "malformed_envelope": decoder["dropped"],
            "unsubscribed": router.stats["unsubscribed"],
            "duplicate_trade": router.stats["duplicate_trades"],
            "duplicate_fill": router.stats["duplicate_fills"],
            "duplicate_delta": books["duplicates"],
            "old_delta": books["dropped_old"],
            "discarded_buffer": books["discarded"],
            "invalid_delta": books["invalid_deltas"],
            "unroutable": router.books.ignored,
        }
        for reason, count in dropped.items():
            yield "backpack_dropped_total", {"reason": reason}, count
        for key, name in (("retries", "backpack_rest_retries_total"),
                          ("failures", "backpack_rest_failures_total"),
                          ("breaker_opens", "backpack_rest_circuit_opens_total"),
                          ("breaker_rejections", "backpack_rest_circuit_rejections_total")):
            yield name, {}, self._total(key)
        state = self.rest.breaker.state.value if self.rest is not None else "closed"
        for candidate in ("closed", "open", "half_open"):
            yield "backpack_rest_circuit_state", {"state": candidate}, int(candidate == state)
        for native in self._book_symbols():
            sync = router.books._books.get(native)
            std = self._std(native)
            yield "backpack_book_synced", {"symbol": std}, int(sync is not None and sync.state == SYNCED)
            times = self._book_times.get(native)
            if times is not None and sync is not None and sync.state == SYNCED:
                yield "backpack_book_age_seconds", {"symbol": std}, (now - times[0]) / 1e6
                yield "backpack_book_snapshot_age_seconds", {"symbol": std}, (now - times[1]) / 1e6

    def _connection_id(self) -> str | None:
        ws = self.session.session if self.session is not None else None
        return getattr(ws, "id", None)

    def _connected(self) -> bool:
        session = self.session
        return session is not None and session.session is not None and self._connected_since is not None

    def _book_symbols(self) -> list[str]:
        return sorted(self.subscription.get("l2_book") or ())

    def health_status(self, now_us: int, window_us: int) -> FeedHealth:
        session = self.session
        books = []
        for native in self._book_symbols():
            sync = self.router.books._books.get(native)
            times = self._book_times.get(native) or [None, None]
            synced = sync is not None and sync.state == SYNCED
            books.append(BookHealth(
                self._std(native), sync.state if sync is not None else "idle",
                sync.last_update_id if synced else None,
                times[0] if synced else None, times[1] if synced else None,
            ))
        streams = []
        private_stopped = session is not None and session.stats.private_stopped
        connected = self._connected()
        since = self._connected_since
        for name in (session.public + session.private) if session is not None else ():
            kind, native, _ = parse_stream(name)
            last = self.activity.last_for(kind, native)
            count = self.activity.count_for(kind, native)
            if not connected:
                status = "disconnected"
            elif is_private(name) and private_stopped:
                status = "rejected"
            elif last is not None and since is not None and last >= since:
                status = "receiving"
            else:
                status = "subscribed"
            streams.append(StreamHealth(name, status, last, count))
        last_by_symbol = self.activity.last_for_symbol()
        symbols = {s for channel in FRESHNESS_CHANNELS for s in (self.subscription.get(channel) or ())}
        return FeedHealth(
            feed=self.id, path=self.feed_path, running=self._running, connected=connected,
            connects=self._total("connects"), reconnects=self._total("reconnects"), connected_since_us=since,
            last_frame_us=self._last_frame_us,
            messages_per_second=self.frame_rate.rate(now_us, self._frames_total()),
            books=books, streams=streams,
            symbols_last_us={self._std(s): last_by_symbol.get(s) for s in sorted(symbols)},
            private_stopped=private_stopped,
            circuit=self.rest.breaker.state.value if self.rest is not None else None,
            recent=self._recent(now_us, window_us),
        )

    # Each returns what is left to await, or None (see _dispatch).
    _handlers: dict[type, Callable[[BackpackFeed, Any], Awaitable[None] | None]] = {
        ev.FetchSnapshot: _on_fetch,
        ev.BookUpdate: _on_book,
        ev.ResyncNeeded: _on_resync,
        ev.ErrorEvent: _on_error,
        ev.Trade: _on_trade,
        ev.BookTicker: _on_ticker,
        ev.Ticker: _on_ticker_24h,
        ev.RfqUpdate: _on_rfq,
        ev.Candle: _on_candle,
        ev.MarkPrice: _on_funding,
        ev.OpenInterest: _on_oi,
        ev.Liquidation: _on_liquidation,
        ev.OrderUpdate: _on_order,
        ev.PositionUpdate: _on_position,
        ev.BalanceUpdate: _on_balance,
    }

    # Without a protocol callback: the same, each stream's activity record made by its handler.
    _direct: dict[type, Callable[[BackpackFeed, Any], Awaitable[None] | None]] = {}


def _counted(kind: str, handler: Callable[[BackpackFeed, Any], Awaitable[None] | None]) -> Any:
    """``handler`` preceded by the activity record ``_dispatch`` makes for its stream kind."""

    def counted(self: BackpackFeed, out: Any) -> Awaitable[None] | None:
        self.activity.seen(kind, getattr(out, "symbol", ""), out.receipt)
        return handler(self, out)

    return counted


BackpackFeed._direct = {
    t: _counted(_STREAM_OF[t], h) if t in _STREAM_OF else h for t, h in BackpackFeed._handlers.items()
}
BackpackFeed._direct[ev.Trade] = BackpackFeed._on_trade_direct
