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
from .clock import Clock, to_us
from .errors import BackpackError
from .feedbase import BackpackFeedBase
from .protocol import events as ev
from .protocol.router import Router, accepted, is_auth_error
from .protocol.subscriptions import streams_for
from .protocol.symbols import SymbolCache, SymbolMap
from .protocol.wire import FEED_MARKET_TYPES
from .rest import RestClient
from .session import WsSessionManager
from .transport import Transport, TransportError, WsFrame

LOG = logging.getLogger("backpack.feed")

ProtocolCallback = Callable[[Any], Awaitable[None] | None]

# Without marketType the exchange lists only SPOT and PERP; ask for every type a feed may subscribe to.
MARKET_TYPES = FEED_MARKET_TYPES


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
        self.symbol_map: SymbolMap | None = None
        self.symbols = SymbolCache(to_us(self.bp_config.symbol_cache_ttl))
        self.session: WsSessionManager | None = None
        self.rest: RestClient | None = None
        self._books: dict[str, Any] = {}
        self._snapshot_tasks: dict[str, asyncio.Task] = {}
        self.metrics: dict[str, int] = {
            "resyncs": 0, "errors": 0, "callbacks": 0, "snapshots": 0, "snapshot_failures": 0, "internal_errors": 0,
        }

    def exchange_symbol_to_std_symbol(self, symbol: str) -> str:
        if self.symbol_map is not None and symbol in self.symbol_map:
            return self.symbol_map.to_normalized(symbol)
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
        self.rest = RestClient(
            transport, cfg.rest_url, signer=cfg.signer(), window_ms=cfg.window_ms, retries=cfg.rest_retries,
            breaker_threshold=cfg.breaker_threshold, breaker_reset=cfg.breaker_reset_seconds,
            timeout=cfg.rest_timeout, rng=self.rng,
        )
        streams = streams_for(self.subscription, interval=self.candle_interval, depth_speed=cfg.depth_speed)
        LOG.info("%s: native path active (%s), %d streams", self.id, "sandbox" if cfg.sandbox else "production", len(streams))
        self.session = WsSessionManager(
            transport, cfg.ws_url, streams, self._on_frame,
            on_disconnect=self._on_disconnect, signer=cfg.signer(), window_ms=cfg.window_ms,
            batch_size=cfg.subscribe_batch_size, private_retries=cfg.private_subscribe_retries, rng=self.rng,
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
            self.metrics["internal_errors"] += 1
            self.ratelog.log(logging.ERROR, f"task {what}", "%s: %s task failed", self.id, what,
                             exc_info=task.exception())

    async def _load_symbols(self) -> None:
        """Market metadata validates the subscription; names themselves convert by rule, so a failure is not fatal."""
        assert self.rest is not None and self._transport is not None
        try:
            payload = await self.rest.markets(MARKET_TYPES)
        except (BackpackError, TransportError) as exc:
            LOG.error("%s: could not load /api/v1/markets (%s); continuing with rule-based symbol names", self.id, exc)
            return
        self.symbol_map = self.symbols.update(payload, self.clock.now_us())
        for warning in self.symbols.warnings:
            LOG.warning("%s: %s", self.id, warning)
        # RFQ markets (<spot>_RFQ) are never listed by /markets: their absence says nothing.
        wanted = {s for symbols in self.subscription.values() for s in (symbols or ()) if not s.endswith("_RFQ")}
        for native in sorted(wanted - set(self.symbol_map.natives())):
            LOG.error("%s: %s is not listed by /api/v1/markets; the exchange sends nothing for unknown symbols",
                      self.id, native)

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
        try:
            await self._dispatch(self.router.receive_frame(frame.data, frame.receipt))
        except Exception as exc:  # noqa: BLE001 - a bug in the glue must cost one frame, not the feed
            self._internal_error("frame handling", exc)

    def _internal_error(self, where: str, exc: BaseException) -> None:
        self.metrics["internal_errors"] += 1
        self.ratelog.log(logging.ERROR, f"internal {where}", "%s: %s failed (%s); continuing", self.id, where,
                         type(exc).__name__, exc_info=exc)


    async def _on_disconnect(self, connection: int) -> None:
        await self._dispatch(self.router.connection_lost())

    async def _fetch_snapshot(self, symbol: str, attempt: int) -> None:
        assert self.rest is not None and self._transport is not None
        try:
            if attempt > 1:
                await self.clock.sleep_us(to_us(equal_jitter(0.25, attempt - 2, 30.0, self.rng)))
            data, receipt = await self.rest.depth_snapshot(symbol, self.bp_config.depth_limit)
        except (BackpackError, TransportError) as exc:
            self.metrics["snapshot_failures"] += 1
            self.ratelog.log(logging.WARNING, f"snapshot {symbol}", "%s: depth snapshot for %s failed: %s",
                             self.id, symbol, exc)
            outputs = self.router.snapshot_failed(symbol)
        except Exception as exc:  # noqa: BLE001 - anything else still must not leave the book buffering
            self.metrics["snapshot_failures"] += 1
            self._internal_error(f"depth snapshot for {symbol}", exc)
            outputs = self.router.snapshot_failed(symbol)
        else:
            self.metrics["snapshots"] += 1
            outputs = self.router.receive_snapshot(symbol, data, receipt)
        finally:
            self._snapshot_tasks.pop(symbol, None)
        await self._dispatch(outputs)

    # --- outputs -------------------------------------------------------------------------------

    async def _dispatch(self, outputs: list[Any]) -> None:
        for out in outputs:
            if self.protocol_callback is not None:
                try:
                    result = self.protocol_callback(out)
                    if result is not None:
                        await result
                except Exception as exc:  # noqa: BLE001 - a consumer's bug, isolated like any callback
                    self._callback_failed("protocol", self.protocol_callback, exc)
            handler = self._handlers.get(type(out))
            if handler is not None:
                await handler(self, out)

    def _std(self, native: str) -> str:
        return self.exchange_symbol_to_std_symbol(native)

    async def _emit(self, channel: str, obj: Any, receipt_us: int) -> None:
        if self.callbacks.get(channel):
            self.metrics["callbacks"] += 1
            await self.callback(channel, obj, receipt_us / 1_000_000)

    async def _on_fetch(self, out: ev.FetchSnapshot) -> None:
        if out.symbol not in self._snapshot_tasks:
            self._snapshot_tasks[out.symbol] = self._spawn(self._fetch_snapshot(out.symbol, out.attempt),
                                                           f"snapshot {out.symbol}")

    async def _on_book(self, out: ev.BookUpdate) -> None:
        symbol = self._std(out.symbol)
        if out.kind == "snapshot":
            proto = self.router.books.get(out.symbol).book
            book = compat.OrderBook(self.id, symbol, max_depth=self.max_depth)
            for price, size in proto.bid_dict().items():
                book.book.bids[price] = size
            for price, size in proto.ask_dict().items():
                book.book.asks[price] = size
            self._books[out.symbol] = book
            delta = None
        else:
            book = self._books.get(out.symbol)
            if book is None:
                return
            d = out.delta
            for side, levels in ((book.book.bids, d.bids), (book.book.asks, d.asks)):
                for price, size in levels:
                    if size == 0:
                        if price in side:
                            del side[price]
                    else:
                        side[price] = size
            delta = adapters.book_delta(d)
        if compat.L2_BOOK in self.callbacks and self.callbacks[compat.L2_BOOK]:
            await self.book_callback(
                compat.L2_BOOK, book, out.receipt / 1_000_000, timestamp=out.timestamp / 1_000_000 if out.timestamp else None,
                raw=None, sequence_number=out.sequence, delta=delta,
            )

    async def _on_resync(self, out: ev.ResyncNeeded) -> None:
        self.metrics["resyncs"] += 1
        self._books.pop(out.symbol, None)
        # The core reports resyncs as events and logs them at DEBUG only; the shell, which has a clock,
        # tells the operator once per symbol and cause per interval. A reconnect's resync is expected.
        level = logging.INFO if out.reason == "reconnect" else logging.WARNING
        self.ratelog.log(level, f"resync {out.symbol} {out.reason}", "%s: %s book resync (%s; expected %s, got %s)",
                         self.id, out.symbol, out.reason, out.expected, out.got)

    async def _on_error(self, out: ev.ErrorEvent) -> None:
        self.metrics["errors"] += 1
        if is_auth_error(out):
            LOG.error("%s: private subscription rejected by the exchange: %s (code %s)", self.id, out.message, out.code)
            if self.session is not None:
                self.session.private_rejected()
        else:
            kind = "undecodable frame" if out.code is None else "exchange error frame"
            self.ratelog.log(logging.WARNING, f"{kind} {out.code}", "%s: %s: %s (code %s)", self.id, kind,
                             out.message, out.code)

    async def _on_trade(self, out: ev.Trade) -> None:
        await self._emit(compat.TRADES, adapters.trade(out, self._std(out.symbol)), out.receipt)

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

    _handlers: dict[type, Callable[[BackpackFeed, Any], Awaitable[None]]] = {
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


