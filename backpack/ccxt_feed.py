"""``BackpackCcxtFeed``: the legacy cryptofeed feed that drives ccxt.pro's ``backpack`` class.

It exists so an operator can fall back to the behaviour users had before the native feed
(``backpack.native_enabled: false`` or ``CRYPTOFEED_BACKPACK_NATIVE=0``), and so the parity harness has
a second implementation to compare against. It emits the same cryptofeed types as ``BackpackFeed``
but inherits ccxt's view of the wire, including these limits:

* Precision: ccxt parses prices and sizes to ``float``. They are converted with ``Decimal(str(x))``,
  which gives back the wire text for values of up to 15 significant digits; longer numbers lose digits
  and trailing zeros are not preserved (``"86700.0"`` arrives as ``86700.0`` → ``Decimal("86700.0")``,
  ``"0.00010000"`` as ``Decimal("0.0001")``). Compare values numerically, never as text.
* Timestamps: ccxt keeps milliseconds, and takes trade/ticker times from ``E`` (event time) rather than
  ``T``; candles carry only their close time, so ``start`` is derived from the interval, ``trades`` is
  None and ``timestamp`` is the close time.
* Candle closedness is inferred: a candle is reported closed when the next one starts.
* TICKER is the best bid/offer (``bookTicker`` via ``watch_bids_asks``), as in the native feed;
  ccxt's ``watch_ticker`` carries 24h statistics with no bid or ask.
* Order books: ccxt never checks sequence gaps once synchronised; the book handed to callbacks is
  ccxt's, mirrored into a cryptofeed ``OrderBook`` with the delta computed by diffing.
* Trades: ccxt's ``watch_trades`` returns only when a trade frame arrives after the call, so trades
  that reach ccxt while our callbacks run would wait for the next frame. The feed therefore also
  delivers the end of ccxt's per-symbol cache (``exchange.trades[symbol]``) that it has not delivered,
  and suppresses a trade id it delivered recently (2 × ``tradesLimit`` ids, at least 2000, per
  symbol), so a frame repeated with the same id is delivered once. Remaining loss: that cache holds
  the last ``tradesLimit`` trades (ccxt's default 1000) per symbol; if more than that many arrive for
  one symbol while that symbol's callbacks are busy, ccxt evicts the oldest before the feed reads
  them and they are never delivered. Trades without an id are delivered only from ccxt's batches.
* Subscriptions: ccxt sends one SUBSCRIBE per stream, spaced by its rate limiter (``rateLimit``
  50 ms), so with several streams the last is subscribed a few hundred ms after the first. Trades
  published before a stream's subscription reaches the server are never sent to this connection;
  wait for every stream (not just the first) before comparing trade counts with another connection.
* Private data: updates that arrive between two ``watch_*`` returns are coalesced by ccxt's caches
  (orders by id, positions by symbol), so intermediate order states and fills can be missed. Fills
  are derived from ``orderFill`` order events (ccxt has no fills stream for Backpack). Order status
  uses ccxt's words (open/closed/canceled/rejected) and ``remaining`` ccxt's figure (it reads the last
  fill ``l`` as the filled amount); position entry price is ccxt's (break-even ``b``), size ``Q``.

Errors raised by ccxt are logged and the affected watch loop retries with capped, jittered backoff;
nothing a single stream does stops the feed.

Observability: the feed reports the same metrics as the native one (``path="ccxt"``) from what
``backpack.ccxt_observe`` sees of ccxt's frames, connections and REST calls. Sequence gaps are seen
and counted (``backpack_book_gaps_total``) but, as before, applied by ccxt; a book counts as resynced
when a watch on it fails and the feed hands the book to callbacks as a snapshot again.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
from ccxt.base.errors import BaseError as CcxtError

from . import compat
from .backoff import equal_jitter
from .ccxt_observe import CcxtObserver
from .clock import sleep_or_stop, to_us
from .config import PRODUCTION_REST_URL, PRODUCTION_WS_URL, BackpackConfig
from .feedbase import BackpackFeedBase
from .health import BookHealth, FeedHealth, StreamHealth
from .logs import context
from .metrics import CCXT, CounterView
from .protocol.subscriptions import parse_stream
from .protocol.wire import CANDLE_SECONDS
from .redaction import mask_url

LOG = logging.getLogger("backpack.ccxt_feed")

ExchangeFactory = Callable[[dict[str, Any]], Any]

BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
# Trade ids remembered per symbol are 2 x max(this, ccxt tradesLimit): more than its cache can hold.
_DELIVERED_IDS_MIN = 1000

# Candle lengths in seconds; "1month" is calendar based (see _candle_start).
_INTERVAL_SECONDS = CANDLE_SECONDS

# the old per-feed dict, now read from the registry
_LEGACY_METRICS = {
    "errors": (("backpack_errors_total", {"kind": "watch"}), ("backpack_errors_total", {"kind": "markets"})),
    "callbacks": (("backpack_callback_latency_seconds", {}),),
    "dropped": (("backpack_errors_total", {"kind": "conversion"}),),
}

# channels whose streams push continuously (see backpack.feed.FRESHNESS_CHANNELS)
_FRESHNESS_KINDS = ("book", "ticker")

_SUPPORTED = (
    compat.TRADES,
    compat.L2_BOOK,
    compat.TICKER,
    compat.CANDLES,
    compat.ORDER_INFO,
    compat.FILLS,
    compat.POSITIONS,
)


def to_decimal(value: Any) -> Decimal | None:
    """ccxt number → Decimal via its shortest text; None for absent or non-finite values."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            d = Decimal(value)
        except ArithmeticError:
            return None
        return d if d.is_finite() else None
    return None


def ms_to_seconds(ms: Any) -> float | None:
    return None if ms is None or isinstance(ms, bool) else ms / 1000


def candle_start(stop_s: float, interval: str) -> float:
    """Start of the candle closing at ``stop_s`` (ccxt only reports the close time)."""
    if interval == "1month":
        tm = time.gmtime(int(stop_s))
        year, month = (tm.tm_year - 1, 12) if tm.tm_mon == 1 else (tm.tm_year, tm.tm_mon - 1)
        return float(calendar.timegm((year, month, 1, 0, 0, 0)))
    return stop_s - _INTERVAL_SECONDS[interval]


def ccxt_options(cfg: BackpackConfig) -> dict[str, Any]:
    """Constructor options for ``ccxt.pro.backpack``: credentials, signing window, proxies."""
    options: dict[str, Any] = {"enableRateLimit": True, "options": {"recvWindow": str(cfg.window_ms)}}
    if cfg.has_credentials:
        options["apiKey"] = cfg.api_key
        options["secret"] = cfg.secret_seed()
    if cfg.rest_proxy:
        key = {"http": "httpProxy", "https": "httpsProxy"}.get(cfg.rest_proxy.split(":", 1)[0], "socksProxy")
        options[key] = cfg.rest_proxy
    if cfg.ws_proxy:
        key = {"http": "wsProxy", "https": "wssProxy"}.get(cfg.ws_proxy.split(":", 1)[0], "wsSocksProxy")
        options[key] = cfg.ws_proxy
    return options


def point_at(exchange: Any, rest_url: str, ws_url: str) -> None:
    """Send ccxt's REST and WS traffic to other base URLs (a sandbox or the loopback server)."""
    api = dict(exchange.urls["api"])
    api["public"] = api["private"] = rest_url.rstrip("/")
    api["ws"] = {**api.get("ws", {}), "public": ws_url, "private": ws_url}
    exchange.urls = {**exchange.urls, "api": api}


def default_exchange_factory(options: dict[str, Any]) -> Any:
    return ccxtpro.backpack(options)


class _BookMirror:
    """Keeps a cryptofeed OrderBook equal to ccxt's book (top ``depth`` levels) and yields deltas."""

    __slots__ = ("book", "depth", "levels", "sequence", "fresh", "updated_us", "snapshot_us")

    def __init__(self, exchange: str, symbol: str, depth: int) -> None:
        self.book = compat.OrderBook(exchange, symbol, max_depth=depth)
        self.depth = depth
        self.levels: tuple[dict[float, float], dict[float, float]] = ({}, {})
        self.sequence: int | None = None
        self.fresh = True
        self.updated_us: int | None = None  # when ccxt last handed over a changed book
        self.snapshot_us: int | None = None  # when it was last handed to callbacks as a snapshot

    def reset(self) -> None:
        self.fresh = True

    def update(self, ccxt_book: Any) -> tuple[bool, dict | None]:
        """Apply ccxt's current book; returns (changed, delta) with delta None for a snapshot."""
        limit = self.depth or None
        delta: dict[str, list[tuple[Decimal, Decimal]]] = {compat.BID: [], compat.ASK: []}
        sides = (
            (compat.BID, self.book.book.bids, ccxt_book["bids"]),
            (compat.ASK, self.book.book.asks, ccxt_book["asks"]),
        )
        for i, (key, side, levels) in enumerate(sides):
            old = self.levels[i]
            new = {level[0]: level[1] for level in levels[:limit]}
            changes = delta[key]
            for price in old.keys() - new.keys():
                dprice = to_decimal(price)
                if dprice in side:
                    del side[dprice]
                changes.append((dprice, Decimal(0)))
            for price, size in new.items():
                if old.get(price) != size:
                    dprice, dsize = to_decimal(price), to_decimal(size)
                    side[dprice] = dsize
                    changes.append((dprice, dsize))
            self.levels = (new, self.levels[1]) if i == 0 else (self.levels[0], new)
        sequence = ccxt_book.get("nonce")
        changed = self.fresh or bool(delta[compat.BID] or delta[compat.ASK]) or sequence != self.sequence
        self.sequence = sequence
        if self.fresh:
            self.fresh = False
            return changed, None
        return changed, delta


class BackpackCcxtFeed(BackpackFeedBase):
    feed_path = CCXT
    log_name = "backpack.ccxt_feed"
    websocket_channels = {
        compat.L2_BOOK: "l2_book",
        compat.TRADES: "trades",
        compat.TICKER: "ticker",
        compat.CANDLES: "candles",
        compat.ORDER_INFO: "order_info",
        compat.FILLS: "fills",
        compat.POSITIONS: "positions",
    }

    def __init__(self, *, exchange_factory: ExchangeFactory | None = None, **kwargs: Any) -> None:
        _check_channels(kwargs)
        super().__init__(**kwargs)
        self.exchange_factory = exchange_factory or default_exchange_factory
        self.exchange: Any = None
        self.metrics = CounterView(self.registry, _LEGACY_METRICS)
        self._books: dict[str, _BookMirror] = {}
        self._watchers: list[asyncio.Task] = []
        self._ccxt_symbols: dict[str, str] = {}  # native -> ccxt symbol
        self._streams: dict[str, tuple[str, str, str]] = {}  # watcher name -> (kind, native, Backpack stream)
        self._watch_failures: dict[str, int] = {}  # watcher name -> consecutive failures now
        self.observer = CcxtObserver(self)
        self._resyncs = self.registry.counter("backpack_book_resyncs_total")
        self._dropped = self.registry.counter("backpack_dropped_total")
        self.registry.add_collector(self._collect_ccxt)

    async def _run(self, stop: asyncio.Event) -> None:
        await self._run_ccxt(stop)

    async def _close_resources(self) -> None:
        await self._close_exchange()

    def _make_exchange(self) -> Any:
        cfg = self.bp_config
        exchange = self.exchange_factory(ccxt_options(cfg))
        if cfg.rest_url != PRODUCTION_REST_URL or cfg.ws_url != PRODUCTION_WS_URL:
            point_at(exchange, cfg.rest_url, cfg.ws_url)
        self.observer.install(exchange)
        return exchange

    async def _run_ccxt(self, stop: asyncio.Event) -> None:
        cfg = self.bp_config
        self.log.info(
            "%s: ccxt path active (ccxt %s; %s)",
            self.id,
            ccxt.__version__,
            f"sandbox endpoints {mask_url(cfg.rest_url)} {mask_url(cfg.ws_url)}"
            if cfg.sandbox
            else "production",
        )
        self.exchange = self._make_exchange()
        try:
            if not await self._load_markets(stop):
                return
            self._watchers = self._spawn_watchers(stop)
            await stop.wait()
        finally:
            for task in self._watchers:
                task.cancel()
            if self._watchers:
                await asyncio.gather(*self._watchers, return_exceptions=True)
            self._watchers = []
            await self._close_exchange()

    async def _close_exchange(self) -> None:
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            try:
                await exchange.close()
            except Exception as exc:  # noqa: BLE001 - closing must not mask the reason for stopping
                self.log.warning("%s: closing the ccxt exchange failed: %s", self.id, self._safe(exc))

    async def _load_markets(self, stop: asyncio.Event) -> bool:
        failures = 0
        while not stop.is_set():
            try:
                return await _unless_stopped(self.exchange.load_markets(), stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - ccxt or transport failure: retry
                failures += 1
                self._error("markets")
                delay = self._backoff(failures)
                self.log.warning(
                    "%s: ccxt load_markets failed (%s); retrying in %.1fs", self.id, self._safe(exc), delay,
                    extra=context(cause=type(exc).__name__),
                )
                if await sleep_or_stop(self.clock, to_us(delay), stop):
                    return False
        return False

    def _ccxt_symbol(self, native: str) -> str | None:
        markets = self.exchange.markets_by_id or {}
        found = markets.get(native)
        if isinstance(found, list):
            found = found[0] if found else None
        return found["symbol"] if found else None

    def _spawn_watchers(self, stop: asyncio.Event) -> list[asyncio.Task]:
        ex = self.exchange
        tasks: list[asyncio.Task] = []
        seen: set[tuple[str, str]] = set()

        def spawn(
            kind: str,
            native: str,
            fetch: Callable[[], Awaitable[Any]],
            handle: Callable[[Any, float], Awaitable[None]],
            on_error: Callable[[BaseException], None] | None = None,
        ) -> None:
            if (kind, native) in seen:
                return
            seen.add((kind, native))
            name = f"{self.id}.ccxt.{kind}.{native}"
            self._streams[name] = (kind, native, _stream_name(kind, native, self.candle_interval))
            tasks.append(asyncio.create_task(self._watch(name, stop, fetch, handle, on_error), name=name))

        for channel, natives in self.subscription.items():
            for native in natives or ():
                sym = self._ccxt_symbol(native)
                if sym is None:
                    self.log.error(
                        "%s: %s is not among ccxt's Backpack markets; no %s for it", self.id, native, channel,
                        extra=context(symbol=self.exchange_symbol_to_std_symbol(native),
                                      cause="unlisted symbol"),
                    )
                    continue
                self._ccxt_symbols[native] = sym
                std = self.exchange_symbol_to_std_symbol(native)
                if channel == "trades":
                    spawn("trades", native, lambda s=sym: ex.watch_trades(s), self._trades_handler(std, sym))
                elif channel == "l2_book":
                    self._books[native] = mirror = _BookMirror(self.id, std, self.max_depth)
                    spawn(
                        "book",
                        native,
                        lambda s=sym: ex.watch_order_book(s),
                        self._book_handler(mirror),
                        lambda exc, n=native, m=mirror: self._book_failed(n, m, exc),
                    )
                elif channel == "ticker":
                    spawn(
                        "ticker",
                        native,
                        lambda s=sym: ex.watch_bids_asks([s]),
                        self._ticker_handler(std, sym),
                    )
                elif channel == "candles":
                    interval = self.candle_interval
                    spawn(
                        "candles",
                        native,
                        lambda s=sym, i=interval: ex.watch_ohlcv(s, i),
                        self._candle_handler(std, interval),
                    )
                elif channel in ("order_info", "fills"):
                    spawn("orders", native, lambda s=sym: ex.watch_orders(s), self._order_handler(std))
                elif channel == "positions":
                    spawn(
                        "positions",
                        native,
                        lambda s=sym: ex.watch_positions([s]),
                        self._position_handler(std),
                    )
        return tasks

    async def _watch(
        self,
        name: str,
        stop: asyncio.Event,
        fetch: Callable[[], Awaitable[Any]],
        handle: Callable[[Any, float], Awaitable[None]],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """One ccxt ``watch_*`` loop: every failure is logged, backed off and retried until stop."""
        failures = 0
        stream = self._streams[name][2] if name in self._streams else None
        while not stop.is_set():
            try:
                result = await fetch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - ccxt errors (NetworkError, ExchangeError...) and bugs alike
                failures += 1
                self._watch_failures[name] = failures
                self._error("watch")
                if isinstance(exc, ccxt.AuthenticationError):
                    self.observer.auth_failures += 1
                    self.recent.mark("auth_failures", self.clock.now_us())
                if on_error is not None:
                    on_error(exc)
                delay = self._backoff(failures)
                level = logging.WARNING if isinstance(exc, CcxtError) else logging.ERROR
                self.log.log(level, "%s: %s failed (%s); retrying in %.1fs", self.id, name, self._safe(exc),
                             delay, extra=context(stream=stream, cause=type(exc).__name__))
                if await sleep_or_stop(self.clock, to_us(delay), stop):
                    return
                continue
            failures = 0
            self._watch_failures[name] = 0
            try:
                await handle(result, self.clock.now_us() / 1_000_000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._error("conversion")
                self.log.exception("%s: %s: update dropped (conversion failed)", self.id, name,
                                   extra=context(stream=stream, cause=type(exc).__name__))

    def _backoff(self, failures: int) -> float:
        return equal_jitter(BACKOFF_BASE, failures - 1, BACKOFF_CAP, self.rng)

    def _book_failed(self, native: str, mirror: _BookMirror, exc: BaseException) -> None:
        """The book's watch failed: the next book goes to callbacks as a snapshot, which is a resync."""
        if not mirror.fresh:
            reason = "reconnect" if isinstance(exc, ccxt.NetworkError) else "error"
            std = self.exchange_symbol_to_std_symbol(native)
            self._resyncs.inc(std, reason)
            self.recent.mark("resyncs", self.clock.now_us())
            level = logging.INFO if reason == "reconnect" else logging.WARNING
            self.ratelog.log(level, f"resync {native} {reason}", "%s: %s book resync (%s)", self.id, native,
                             reason, extra=context(symbol=std, stream=f"depth.{native}", cause=reason))
        mirror.reset()

    def _internal_error(self, where: str, exc: BaseException) -> None:
        self._error("internal")
        self.ratelog.log(logging.ERROR, f"internal {where}", "%s: %s failed (%s); continuing", self.id, where,
                         type(exc).__name__, exc_info=exc, extra=context(cause=type(exc).__name__))

    def _safe(self, exc: BaseException) -> str:
        return self.bp_config.redact(f"{type(exc).__name__}: {exc}")

    # --- observability -------------------------------------------------------------------------

    def _frames_total(self) -> int:
        return self.observer.frames

    def _book_state(self, native: str) -> tuple[str, int | None]:
        book = self.observer._ccxt_book(native)
        if book is None:
            return "idle", None
        nonce = book.get("nonce")
        return ("buffering", None) if nonce is None else ("synced", nonce)

    def _collect_ccxt(self) -> Any:
        now = self.clock.now_us()
        obs = self.observer
        yield "backpack_ws_connects_total", {}, obs.connects
        yield "backpack_ws_reconnects_total", {}, obs.reconnects
        yield "backpack_ws_connected", {}, int(bool(obs.open))
        yield "backpack_auth_failures_total", {}, obs.auth_failures
        yield "backpack_rest_failures_total", {}, obs.rest_failures
        for native, mirror in sorted(self._books.items()):
            std = self.exchange_symbol_to_std_symbol(native)
            state, _ = self._book_state(native)
            yield "backpack_book_synced", {"symbol": std}, int(state == "synced")
            if state == "synced" and mirror.updated_us is not None:
                yield "backpack_book_age_seconds", {"symbol": std}, (now - mirror.updated_us) / 1e6
            if state == "synced" and mirror.snapshot_us is not None:
                yield "backpack_book_snapshot_age_seconds", {"symbol": std}, (now - mirror.snapshot_us) / 1e6

    def health_status(self, now_us: int, window_us: int) -> FeedHealth:
        obs = self.observer
        connected = bool(obs.open) and self.exchange is not None
        since = self._connected_since
        books = []
        for native, mirror in sorted(self._books.items()):
            state, nonce = self._book_state(native)
            synced = state == "synced"
            books.append(BookHealth(
                self.exchange_symbol_to_std_symbol(native), state, nonce,
                mirror.updated_us if synced else None, mirror.snapshot_us if synced else None,
                obs.gaps_since_build.get(native, 0),
            ))
        streams = []
        fresh: set[str] = set()
        for name, (kind, native, stream) in sorted(self._streams.items()):
            if kind in _FRESHNESS_KINDS:
                fresh.add(native)
            stream_kind = parse_stream(stream)[0]
            last = self.activity.last_for(stream_kind, native)
            if not connected:
                status = "disconnected"
            elif self._watch_failures.get(name):
                status = "retrying"
            elif last is not None and since is not None and last >= since:
                status = "receiving"
            else:
                status = "subscribed"
            streams.append(StreamHealth(stream, status, last, self.activity.count_for(stream_kind, native)))
        last_by_symbol = self.activity.last_for_symbol()
        return FeedHealth(
            feed=self.id, path=self.feed_path, running=self._running, connected=connected,
            connects=obs.connects, reconnects=obs.reconnects, connected_since_us=since,
            last_frame_us=self._last_frame_us,
            messages_per_second=self.frame_rate.rate(now_us, self._frames_total()),
            books=books, streams=streams,
            symbols_last_us={
                self.exchange_symbol_to_std_symbol(n): last_by_symbol.get(n) for n in sorted(fresh)
            },
            recent=self._recent(now_us, window_us),
        )

    # --- conversions ---------------------------------------------------------------------------

    async def _emit(self, channel: str, obj: Any, receipt: float) -> None:
        if self.callbacks.get(channel):
            await self.callback(channel, obj, receipt)

    def _trades_handler(self, std: str, sym: str) -> Callable[[Any, float], Awaitable[None]]:
        """Deliver ccxt's batch, then whatever reached ccxt's cache meanwhile, each trade id once.

        ccxt's ``watch_trades`` returns only when a trade frame arrives *after* the call; trades cached
        while our callbacks ran would otherwise wait for the next frame (for ever if the stream goes
        quiet). Reading the cache makes ccxt's next batch overlap what we delivered, hence the id set.
        """
        delivered: dict[str, None] = {}  # insertion-ordered set of recent trade ids
        limit = 2 * max(_DELIVERED_IDS_MIN, _trades_limit(self.exchange))

        async def emit(t: Any, receipt: float) -> None:
            tid = t.get("id")
            if tid is not None:
                key = str(tid)
                if key in delivered:
                    self._dropped.inc("duplicate_trade")
                    return
                delivered[key] = None
                if len(delivered) > limit:
                    del delivered[next(iter(delivered))]
            trade = compat.Trade(
                self.id,
                std,
                t["side"],
                to_decimal(t["amount"]),
                to_decimal(t["price"]),
                ms_to_seconds(t["timestamp"]),
                id=None if tid is None else str(tid),
                raw=t.get("info"),
            )
            await self._emit(compat.TRADES, trade, receipt)

        async def handle(trades: Any, receipt: float) -> None:
            batch = trades
            while batch:
                for t in batch:
                    await emit(t, receipt)
                batch = _undelivered_tail(self.exchange, sym, delivered)
                receipt = self.clock.now_us() / 1_000_000

        return handle

    def _book_handler(self, mirror: _BookMirror) -> Callable[[Any, float], Awaitable[None]]:
        async def handle(book: Any, receipt: float) -> None:
            changed, delta = mirror.update(book)
            if changed:
                now = self.clock.now_us()
                mirror.updated_us = now
                if delta is None:
                    mirror.snapshot_us = now
            if changed and self.callbacks.get(compat.L2_BOOK):
                await self.book_callback(
                    compat.L2_BOOK,
                    mirror.book,
                    receipt,
                    timestamp=ms_to_seconds(book.get("timestamp")),
                    raw=None,
                    sequence_number=mirror.sequence,
                    delta=delta,
                )

        return handle

    def _ticker_handler(self, std: str, sym: str) -> Callable[[Any, float], Awaitable[None]]:
        async def handle(tickers: Any, receipt: float) -> None:
            t = tickers.get(sym) if isinstance(tickers, dict) else None
            if t is None:
                return
            ticker = compat.Ticker(
                self.id,
                std,
                to_decimal(t.get("bid")),
                to_decimal(t.get("ask")),
                ms_to_seconds(t.get("timestamp")),
                raw=t.get("info"),
            )
            await self._emit(compat.TICKER, ticker, receipt)

        return handle

    def _candle_handler(self, std: str, interval: str) -> Callable[[Any, float], Awaitable[None]]:
        last: list[Any] = []  # the newest candle seen, as ccxt last reported it

        def make(c: list[Any], closed: bool) -> Any:
            stop_s = c[0] / 1000
            return compat.Candle(
                self.id,
                std,
                candle_start(stop_s, interval),
                stop_s,
                interval,
                None,
                to_decimal(c[1]),
                to_decimal(c[4]),
                to_decimal(c[2]),
                to_decimal(c[3]),
                to_decimal(c[5]),
                closed,
                stop_s,
                raw=None,
            )

        async def handle(candles: Any, receipt: float) -> None:
            for c in sorted(candles, key=lambda c: c[0]):
                if last and c[0] < last[0][0]:
                    continue  # a late update of a candle already reported closed
                if last and c[0] > last[0][0]:
                    await self._emit(compat.CANDLES, make(last[0], True), receipt)
                last[:] = [list(c)]
                if not self.candle_closed_only:
                    await self._emit(compat.CANDLES, make(c, False), receipt)

        return handle

    def _order_handler(self, std: str) -> Callable[[Any, float], Awaitable[None]]:
        async def handle(orders: Any, receipt: float) -> None:
            for o in orders:
                ts = ms_to_seconds(o.get("timestamp"))
                info = o.get("info") or {}
                await self._emit(
                    compat.ORDER_INFO,
                    compat.OrderInfo(
                        self.id,
                        std,
                        str(o.get("id")),
                        o.get("side"),
                        o.get("status"),
                        o.get("type"),
                        to_decimal(o.get("price")),
                        to_decimal(o.get("amount")),
                        to_decimal(o.get("remaining")),
                        ts,
                        client_order_id=o.get("clientOrderId"),
                        raw=info,
                    ),
                    receipt,
                )
                if info.get("e") == "orderFill" and self.callbacks.get(compat.FILLS):
                    maker = info.get("m")
                    await self._emit(
                        compat.FILLS,
                        compat.Fill(
                            self.id,
                            std,
                            o.get("side"),
                            to_decimal(info.get("l")),
                            to_decimal(info.get("L")),
                            to_decimal(info.get("n")),
                            str(info.get("t")),
                            str(o.get("id")),
                            o.get("type"),
                            None if maker is None else (compat.MAKER if maker else compat.TAKER),
                            ts,
                            raw=info,
                        ),
                        receipt,
                    )

        return handle

    def _position_handler(self, std: str) -> Callable[[Any, float], Awaitable[None]]:
        async def handle(positions: Any, receipt: float) -> None:
            for p in positions:
                contracts = to_decimal(p.get("contracts"))
                side = p.get("side")
                if contracts is not None and side == "short":
                    contracts = -abs(contracts)
                await self._emit(
                    compat.POSITIONS,
                    compat.Position(
                        self.id,
                        std,
                        contracts,
                        to_decimal(p.get("entryPrice")),
                        side,
                        to_decimal(p.get("unrealizedPnl")),
                        ms_to_seconds(p.get("timestamp")),
                        raw=p.get("info"),
                    ),
                    receipt,
                )

        return handle


def _stream_name(kind: str, native: str, interval: str) -> str:
    """The Backpack stream a ccxt watcher reads (health reports streams by the exchange's names)."""
    return {
        "trades": f"trade.{native}", "book": f"depth.{native}", "ticker": f"bookTicker.{native}",
        "candles": f"kline.{interval}.{native}", "orders": f"account.orderUpdate.{native}",
        "positions": f"account.positionUpdate.{native}",
    }.get(kind, f"{kind}.{native}")


def _trades_limit(exchange: Any) -> int:
    """Size of ccxt's per-symbol trade cache (its ``tradesLimit`` option, 1000 unless configured)."""
    options = getattr(exchange, "options", None)
    value = options.get("tradesLimit") if isinstance(options, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1000


def _undelivered_tail(exchange: Any, sym: str, delivered: dict[str, None]) -> list[Any]:
    """Trades at the end of ccxt's cache for ``sym`` newer than the newest delivered one, oldest first.

    ccxt appends in arrival order and every batch we deliver is a suffix of the cache, so walking back
    from the end until a delivered id finds exactly the trades cached since. Trades without an id
    cannot be told apart and are left to ccxt's own batches.
    """
    caches = getattr(exchange, "trades", None)
    cache = caches.get(sym) if isinstance(caches, dict) else None
    if not cache:
        return []
    tail: list[Any] = []
    for t in reversed(cache):
        tid = t.get("id") if isinstance(t, dict) else None
        if tid is None:
            continue
        if str(tid) in delivered:
            break
        tail.append(t)
    tail.reverse()
    return tail


def _check_channels(kwargs: dict[str, Any]) -> None:
    """Refuse channels ccxt cannot deliver for Backpack with a message that names the way out."""
    channels = list(kwargs.get("channels") or ()) + list((kwargs.get("subscription") or {}).keys())
    missing = sorted({c for c in channels if c not in _SUPPORTED})
    if missing:
        raise ValueError(
            f"BACKPACK ccxt path does not support {missing}; supported: {sorted(_SUPPORTED)}. Enable the native "
            "feed (backpack.native_enabled: true, or CRYPTOFEED_BACKPACK_NATIVE=1) for these channels"
        )


async def _unless_stopped(work: Awaitable[Any], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first (then it is cancelled); True when the work finished."""
    job = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not job.done():
            job.cancel()
            await asyncio.gather(job, return_exceptions=True)
    if job.cancelled():
        return False
    job.result()  # re-raise the work's own error
    return True
