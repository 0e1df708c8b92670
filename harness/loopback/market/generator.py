"""Seeded, deterministic Backpack market for the loopback server.

Pure on purpose: no sockets, no asyncio, no wall clock. Virtual time advances ``step_us`` per ``step()``,
and every random choice comes from RNGs derived from the seed (one per symbol, one for the private
account in ``account.py``, one for RFQs), so the same seed and the same number of steps give the same emissions byte for byte. That is
what lets tests and the parity runner compare whole sessions.

Internally prices are integer tick counts and sizes integer step units, so the book is exact and cheap;
Decimals appear only at the edges (``book()`` and the wire formats).
"""

from __future__ import annotations

import calendar
import hashlib
import random
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from backpack.protocol.wire import CANDLE_INTERVALS, CANDLE_SECONDS, DEPTH_SPEED_US
from harness.loopback.market.account import _MARK_Q, Account
from harness.loopback.market.wire import Emission, canon, iso_rest, iso_ws

# Kline intervals and their lengths in seconds ("1month" is calendar based: 0).
INTERVALS: dict[str, int] = {iv: CANDLE_SECONDS.get(iv, 0) for iv in CANDLE_INTERVALS}
DEPTH_WINDOWS_US = DEPTH_SPEED_US
DEFAULT_START_US = 1_754_006_400_000_000  # 2025-08-01T00:00:00Z: fixed so sessions are reproducible


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One listed market: enough to serve ``/markets`` and to shape its book."""

    symbol: str
    base: str
    quote: str
    market_type: str  # "SPOT" | "PERP"
    tick_size: Decimal
    step_size: Decimal
    start_price: Decimal
    max_units: int  # largest resting level, in step units
    rwa_market_type: str | None = None
    funding_interval_ms: int = 3_600_000

    @property
    def perp(self) -> bool:
        return self.market_type == "PERP"

    def market_entry(self) -> dict[str, Any]:
        """The ``/api/v1/markets`` row (field set as the exchange and ccxt's samples show it)."""
        return {
            "symbol": self.symbol,
            "baseSymbol": self.base,
            "quoteSymbol": self.quote,
            "marketType": self.market_type,
            "filters": {
                "price": {
                    "minPrice": canon(self.tick_size),
                    "maxPrice": None,
                    "tickSize": canon(self.tick_size),
                    "maxMultiplier": "1.25",
                    "minMultiplier": "0.75",
                    "maxImpactMultiplier": "1.03",
                    "minImpactMultiplier": "0.97",
                    "meanMarkPriceBand": {"maxMultiplier": "1.15", "minMultiplier": "0.9"},
                    "meanPremiumBand": {"tolerancePct": "0.05"} if self.perp else None,
                },
                "quantity": {
                    "minQuantity": canon(self.step_size),
                    "maxQuantity": None,
                    "stepSize": canon(self.step_size),
                },
            },
            "imfFunction": {"type": "sqrt", "base": "0.02", "factor": "0.0001275"} if self.perp else None,
            "mmfFunction": {"type": "sqrt", "base": "0.0125", "factor": "0.0000765"} if self.perp else None,
            "fundingInterval": self.funding_interval_ms if self.perp else None,
            "fundingRateUpperBound": "100" if self.perp else None,
            "fundingRateLowerBound": "-100" if self.perp else None,
            "openInterestLimit": "4000000" if self.perp else "0",
            "orderBookState": "Open",
            "createdAt": "2025-01-21T06:34:54.691858",
            "visible": True,
            "rwaMarketType": self.rwa_market_type,
        }


DEFAULT_MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec("SOL_USDC", "SOL", "USDC", "SPOT", Decimal("0.01"), Decimal("0.01"), Decimal("150"), 50_000),
    MarketSpec("BTC_USDC", "BTC", "USDC", "SPOT", Decimal("0.1"), Decimal("0.00001"), Decimal("100000"), 200_000),
    MarketSpec("SOL_USDC_PERP", "SOL", "USDC", "PERP", Decimal("0.01"), Decimal("0.01"), Decimal("150"), 50_000),
    MarketSpec("BTC_USDC_PERP", "BTC", "USDC", "PERP", Decimal("0.1"), Decimal("0.0001"), Decimal("100000"), 20_000),
    MarketSpec("kSHIB_USDC_PERP", "kSHIB", "USDC", "PERP", Decimal("0.000001"), Decimal("1"), Decimal("0.012"), 5_000_000),
    MarketSpec(
        "AAPL.US_USDC_PERP", "AAPL.US", "USDC", "PERP", Decimal("0.01"), Decimal("0.001"), Decimal("230"), 100_000,
        rwa_market_type="STOCK",
    ),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class MarketConfig:
    """Knobs of the generator; probabilities are per symbol per step, periods in virtual µs."""

    seed: int = 0
    markets: tuple[MarketSpec, ...] = DEFAULT_MARKETS
    start_us: int = DEFAULT_START_US
    step_us: int = 50_000
    book_levels: int = 25
    min_levels: int = 5
    max_levels: int = 60
    p_book: float = 0.7
    p_trade: float = 0.25
    p_aggregate: float = 0.05
    p_liquidation: float = 0.004
    p_private: float = 0.05
    p_rfq: float = 0.02  # per step: a new RFQ, or the next state of an open one
    p_trigger: float = 0.01  # per step: a new trigger order, or the next state of a pending one
    ticker_period_us: int = 1_000_000
    kline_period_us: int = 1_000_000
    mark_period_us: int = 1_000_000
    open_interest_period_us: int = 60_000_000
    kline_history: int = 1000
    trade_history: int = 1000


def _quantum(step: Decimal) -> Decimal:
    return Decimal(1).scaleb(step.as_tuple().exponent)


def interval_bounds(ts_s: int, interval: str) -> tuple[int, int]:
    """[start, end) in epoch seconds of the candle holding ``ts_s`` (weeks start Monday, months by calendar)."""
    if interval == "1month":
        tm = time.gmtime(ts_s)
        start = calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0))
        year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
        return start, calendar.timegm((year, month, 1, 0, 0, 0))
    length = INTERVALS[interval]
    offset = 4 * 86400 if interval == "1w" else 0  # the epoch was a Thursday
    start = ts_s - (ts_s - offset) % length
    return start, start + length


def rng_for(seed: int, name: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


@dataclass(slots=True)
class _Candle:
    start_s: int
    end_s: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    trades: int = 0
    dirty: bool = True


@dataclass(slots=True)
class _Stats:
    first: Decimal | None = None
    last: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    trades: int = 0


@dataclass(slots=True)
class _Aggregate:
    first: int | None = None
    last: int = 0
    t: int = 0
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)


class _Symbol:
    """Mutable state of one market."""

    def __init__(self, spec: MarketSpec, cfg: MarketConfig) -> None:
        self.spec = spec
        self.rng = rng_for(cfg.seed, spec.symbol)
        self.tick_q = _quantum(spec.tick_size)
        self.step_q = _quantum(spec.step_size)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.seq = self.rng.randint(1_000_000, 9_000_000)
        self.trade_id = self.rng.randint(100_000, 900_000)
        self.order_id = self.rng.randint(10**9, 2 * 10**9)
        self.trades: deque[dict[str, Any]] = deque(maxlen=cfg.trade_history)
        self.stats = _Stats()
        self.candles: dict[str, _Candle] = {}
        self.kline_hist: dict[str, deque[_Candle]] = {iv: deque(maxlen=cfg.kline_history) for iv in INTERVALS}
        self.aggregates: dict[str, _Aggregate] = {w: _Aggregate() for w in DEPTH_WINDOWS_US}
        self.funding_units = self.rng.randint(-100, 300)  # rate in units of 1e-7
        self.open_interest_units = self.rng.randint(spec.max_units, spec.max_units * 50)
        self.funding_history: deque[dict[str, Any]] = deque(maxlen=1000)
        self.clock = 0  # per-step event counter, keeps T strictly increasing within a step

    # -- formatting -----------------------------------------------------------------------------
    def price(self, ticks: int) -> Decimal:
        return (self.spec.tick_size * ticks).quantize(self.tick_q)

    def size(self, units: int) -> Decimal:
        return (self.spec.step_size * units).quantize(self.step_q)

    def wire_price(self, ticks: int) -> str:
        return str(self.price(ticks))

    def wire_size(self, units: int) -> str:
        return str(self.size(units))

    def mid(self) -> Decimal:
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        if bid is None and ask is None:
            return self.spec.start_price
        if bid is None or ask is None:
            return self.price(bid if ask is None else ask)  # type: ignore[arg-type]
        return (self.price(bid) + self.price(ask)) / 2

    def mid_ticks(self) -> int:
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        if bid is None or ask is None:
            return bid or ask or int(self.spec.start_price / self.spec.tick_size)
        return (bid + ask) // 2


def _depth_data(
    st: _Symbol, bids: dict[int, int], asks: dict[int, int], first: int, last: int, t: int, e: int
) -> dict[str, Any]:
    """A depth payload in wire form: changed levels ascending, sizes absolute."""
    return {
        "e": "depth",
        "E": e,
        "s": st.spec.symbol,
        "a": [[st.wire_price(p), st.wire_size(asks[p])] for p in sorted(asks)],
        "b": [[st.wire_price(p), st.wire_size(bids[p])] for p in sorted(bids)],
        "U": first,
        "u": last,
        "T": t,
    }


class MarketGenerator:
    """Drive with ``step()``; read REST views and the exact book at any moment."""

    def __init__(self, config: MarketConfig | None = None) -> None:
        self.config = cfg = config or MarketConfig()
        if not cfg.markets:
            raise ValueError("at least one market is required")
        self.now_us = cfg.start_us
        self.steps = 0
        self._syms: dict[str, _Symbol] = {spec.symbol: _Symbol(spec, cfg) for spec in cfg.markets}
        for st in self._syms.values():
            self._seed_book(st)
            self._seed_funding(st)
        self.account = Account(self)

    # -- public views ----------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return list(self._syms)

    @property
    def specs(self) -> list[MarketSpec]:
        return [st.spec for st in self._syms.values()]

    def has_symbol(self, symbol: str) -> bool:
        return symbol in self._syms

    def spec(self, symbol: str) -> MarketSpec:
        return self._syms[symbol].spec

    def sequence(self, symbol: str) -> int:
        """The ``u`` of the last depth update generated for ``symbol``."""
        return self._syms[symbol].seq

    def book(self, symbol: str) -> dict[str, dict[Decimal, Decimal]]:
        st = self._syms[symbol]
        return {
            "bids": {st.price(p): st.size(q) for p, q in sorted(st.bids.items())},
            "asks": {st.price(p): st.size(q) for p, q in sorted(st.asks.items())},
        }

    def depth_snapshot(self, symbol: str, limit: int = 1000) -> dict[str, Any]:
        """REST depth: both sides ascending, best ``limit`` levels, canonical number text."""
        st = self._syms[symbol]
        bids = sorted(st.bids)[-limit:]
        asks = sorted(st.asks)[:limit]
        return {
            "asks": [[canon(st.price(p)), canon(st.size(st.asks[p]))] for p in asks],
            "bids": [[canon(st.price(p)), canon(st.size(st.bids[p]))] for p in bids],
            "lastUpdateId": str(st.seq),
            "timestamp": self.now_us,
        }

    def recent_trades(self, symbol: str, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first, as ccxt's recorded ``/trades`` answer is ordered."""
        trades = self._syms[symbol].trades
        return [trades[i] for i in range(len(trades) - 1, max(-1, len(trades) - 1 - limit), -1)]

    def ticker(self, symbol: str) -> dict[str, Any] | None:
        st = self._syms[symbol]
        s = st.stats
        if not s.trades or s.first is None or s.last is None:
            return None
        change = s.last - s.first
        pct = canon((change / s.first).quantize(Decimal("0.000001"))) if s.first else "N/A"
        return {
            "symbol": symbol,
            "firstPrice": canon(s.first),
            "lastPrice": canon(s.last),
            "priceChange": canon(change),
            "priceChangePercent": pct,
            "high": canon(s.high or s.last),
            "low": canon(s.low or s.last),
            "volume": canon(s.volume),
            "quoteVolume": canon(s.quote_volume),
            "trades": str(s.trades),
        }

    def klines(
        self, symbol: str, interval: str, start_s: int, end_s: int | None = None
    ) -> list[dict[str, Any]]:
        st = self._syms[symbol]
        candles = list(st.kline_hist[interval])
        if interval in st.candles:
            candles.append(st.candles[interval])
        out = []
        for c in candles:
            if c.start_s < start_s or (end_s is not None and c.start_s >= end_s):
                continue
            out.append(
                {
                    "start": iso_rest(c.start_s),
                    "end": iso_rest(c.end_s),
                    "open": canon(c.open),
                    "high": canon(c.high),
                    "low": canon(c.low),
                    "close": canon(c.close),
                    "volume": canon(c.volume),
                    "quoteVolume": canon(c.quote_volume),
                    "trades": str(c.trades),
                }
            )
        return out

    def mark_prices(self, symbol: str | None = None) -> list[dict[str, Any]]:
        out = []
        for st in self._selected(symbol):
            if not st.spec.perp:
                continue
            mark, index, rate, next_ms = self._mark(st)
            out.append(
                {
                    "fundingRate": canon(rate),
                    "indexPrice": str(index),
                    "markPrice": str(mark),
                    "nextFundingTimestamp": next_ms,
                    "symbol": st.spec.symbol,
                }
            )
        return out

    def open_interest(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return [
            {
                "symbol": st.spec.symbol,
                "openInterest": canon(st.size(st.open_interest_units)),
                "timestamp": self.now_us // 1000,
            }
            for st in self._selected(symbol)
            if st.spec.perp
        ]

    def funding_rates(self, symbol: str, limit: int = 100) -> list[dict[str, Any]]:
        hist = self._syms[symbol].funding_history
        return [hist[i] for i in range(len(hist) - 1, max(-1, len(hist) - 1 - limit), -1)]

    def assets(self) -> list[dict[str, Any]]:
        """``/api/v1/assets``: one row per base/quote asset (stock assets carry no tokens)."""
        names: list[str] = []
        for spec in self.specs:
            for a in (spec.base, spec.quote):
                if a not in names:
                    names.append(a)
        rows = []
        for a in names:
            stock = a.endswith(".US") or a.endswith(".HK")
            tokens = [] if stock else [
                {
                    "blockchain": "Solana",
                    "contractAddress": None,
                    "depositEnabled": True,
                    "displayName": a,
                    "maximumWithdrawal": None,
                    "minimumDeposit": "0.01",
                    "minimumWithdrawal": "0.01",
                    "withdrawEnabled": True,
                    "withdrawalFee": "0.01",
                }
            ]  # fmt: skip
            rows.append({"coingeckoId": None, "displayName": a, "symbol": a, "tokens": tokens})
        return rows

    def securities(self) -> list[dict[str, Any]]:
        """``/api/v1/securities``: tokenized stocks (ccxt derives ``<asset>_USDC_RFQ`` markets from it)."""
        rows = []
        for spec in self.specs:
            if spec.rwa_market_type == "STOCK" and all(r["asset"] != spec.base for r in rows):
                rows.append(
                    {
                        "asset": spec.base,
                        "cusip": None,
                        "name": f"{spec.base} (loopback test security)",
                        "sessions": [
                            {
                                "maxQuantity": "1000",
                                "minQuantity": "1",
                                "name": "US_EQUITIES_PRE_MARKET",
                                "stepSize": "1",
                            },
                            {
                                "maxQuantity": "10000",
                                "minQuantity": "0.01",
                                "name": "US_EQUITIES_REGULAR",
                                "stepSize": "0.01",
                            },
                        ],
                    }
                )
        return rows

    # -- the private test account (harness.loopback.market.account) ---------------------------
    @property
    def orders(self) -> dict[str, Any]:
        return self.account.orders

    @property
    def positions(self) -> dict[str, Any]:
        return self.account.positions

    @property
    def balances(self) -> dict[str, Decimal]:
        return self.account.balances

    def positions_snapshot(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return self.account.positions_snapshot(symbol)

    def rfq_symbols(self) -> list[str]:
        return self.account.rfq_symbols()

    # -- stepping -------------------------------------------------------------------------------
    def step(self) -> list[Emission]:
        """Advance virtual time one step and return everything the exchange would push."""
        cfg = self.config
        prev = self.now_us
        self.now_us = now = prev + cfg.step_us
        self.steps += 1
        out: list[Emission] = []
        for st in self._syms.values():
            st.clock = 0
            self._close_candles(st, out)
            self._funding_boundary(st, prev)
        for st in self._syms.values():
            self._activity(st, out)
        self.account.step(out)
        crossed = lambda period: period > 0 and now // period != prev // period  # noqa: E731
        for st in self._syms.values():
            if crossed(cfg.ticker_period_us):
                self._emit_ticker(st, out)
            if crossed(cfg.kline_period_us):
                self._emit_klines(st, out)
            if st.spec.perp and crossed(cfg.mark_period_us):
                self._emit_mark(st, out)
            if st.spec.perp and crossed(cfg.open_interest_period_us):
                self._emit_open_interest(st, out)
            for window, length in DEPTH_WINDOWS_US.items():
                if crossed(length):
                    self._flush_aggregate(st, window, out)
        return out

    def run(self, steps: int) -> list[Emission]:
        out: list[Emission] = []
        for _ in range(steps):
            out.extend(self.step())
        return out

    # -- internals: timing ----------------------------------------------------------------------
    def _times(self, st: _Symbol) -> tuple[int, int]:
        """(T, E): engine time strictly increasing within a step; E a little later."""
        st.clock += 1
        t = self.now_us + st.clock
        return t, t + 150 + (st.clock * 37) % 900

    def _selected(self, symbol: str | None) -> Iterable[_Symbol]:
        return self._syms.values() if symbol is None else [self._syms[symbol]]

    # -- internals: book ------------------------------------------------------------------------
    def _qty(self, st: _Symbol) -> int:
        return int(st.spec.max_units * st.rng.random() ** 3) + 1

    def _seed_book(self, st: _Symbol) -> None:
        rng = st.rng
        mid = int(st.spec.start_price / st.spec.tick_size)
        bid = mid - rng.randint(1, 2)
        ask = mid + rng.randint(1, 2)
        for _ in range(self.config.book_levels):
            st.bids[bid] = self._qty(st)
            st.asks[ask] = self._qty(st)
            bid -= rng.randint(1, 3)
            ask += rng.randint(1, 3)

    def _new_price(self, st: _Symbol, is_bid: bool) -> int | None:
        rng = st.rng
        best_bid = max(st.bids) if st.bids else None
        best_ask = min(st.asks) if st.asks else None
        if is_bid:
            top = best_bid if best_bid is not None else (best_ask or 2) - 1
            if (
                best_bid is not None
                and best_ask is not None
                and best_ask - best_bid > 1
                and rng.random() < 0.3
            ):
                return rng.randint(best_bid + 1, best_ask - 1)
            p = top - rng.randint(0, 3 * max(1, len(st.bids)))
            if best_ask is not None and p >= best_ask:
                p = best_ask - 1
            return p if p > 0 else None
        top = best_ask if best_ask is not None else (best_bid or 0) + 1
        if best_bid is not None and best_ask is not None and best_ask - best_bid > 1 and rng.random() < 0.3:
            return rng.randint(best_bid + 1, best_ask - 1)
        p = top + rng.randint(0, 3 * max(1, len(st.asks)))
        if best_bid is not None and p <= best_bid:
            p = best_bid + 1
        return p

    def _set(self, st: _Symbol, is_bid: bool, price: int, units: int, change: dict[int, int]) -> None:
        side = st.bids if is_bid else st.asks
        if units > 0:
            side[price] = units
        else:
            side.pop(price, None)
        change[price] = units
        if len(side) > self.config.max_levels:
            worst = min(side) if is_bid else max(side)
            side.pop(worst)
            change[worst] = 0

    def _random_update(self, st: _Symbol) -> tuple[dict[int, int], dict[int, int]]:
        rng, cfg = st.rng, self.config
        bids_ch: dict[int, int] = {}
        asks_ch: dict[int, int] = {}
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            is_bid = rng.random() < 0.5
            side = st.bids if is_bid else st.asks
            change = bids_ch if is_bid else asks_ch
            r = rng.random()
            ordered = sorted(side, reverse=is_bid)  # best first
            if ordered and r < 0.5:
                price = ordered[min(int(rng.expovariate(0.25)), len(ordered) - 1)]
                self._set(st, is_bid, price, self._qty(st), change)
            elif len(ordered) > cfg.min_levels and r < 0.7:
                price = ordered[min(int(rng.expovariate(0.25)), len(ordered) - 1)]
                self._set(st, is_bid, price, 0, change)
            else:
                new = self._new_price(st, is_bid)
                if new is not None:
                    self._set(st, is_bid, new, self._qty(st), change)
        return bids_ch, asks_ch

    def _replenish(self, st: _Symbol, is_bid: bool, change: dict[int, int]) -> None:
        side = st.bids if is_bid else st.asks
        while len(side) < self.config.min_levels:
            if side:
                price = (min(side) - st.rng.randint(1, 3)) if is_bid else (max(side) + st.rng.randint(1, 3))
            else:
                price = self._new_price(st, is_bid)
            if price is None or price <= 0:
                return
            self._set(st, is_bid, price, self._qty(st), change)

    # -- internals: public activity -------------------------------------------------------------
    def _activity(self, st: _Symbol, out: list[Emission]) -> None:
        rng, cfg = st.rng, self.config
        aggregate = rng.random() < cfg.p_aggregate
        actions = []
        if rng.random() < cfg.p_trade:
            actions.append("trade")
        if rng.random() < cfg.p_book:
            actions.append("book")
        while aggregate and len(actions) < 2:
            actions.append("book")
        liquidation = st.spec.perp and rng.random() < cfg.p_liquidation
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for action in actions:
            # Emit as we go so each bookTicker shows the book exactly as of its depth delta.
            b, a, trade = self._public_trade(st) if action == "trade" else (*self._random_update(st), None)
            if trade is not None:
                out.append(trade)
            if aggregate:
                bids.update(b)
                asks.update(a)
            else:
                self._emit_depth(st, b, a, 1, out)
        if aggregate:
            self._emit_depth(st, bids, asks, len(actions), out)
        if liquidation:
            self._liquidation(st, out)

    def _emit_depth(
        self, st: _Symbol, bids: dict[int, int], asks: dict[int, int], n: int, out: list[Emission]
    ) -> None:
        first = st.seq + 1
        st.seq += n
        t, e = self._times(st)
        sym = st.spec.symbol
        out.append(Emission(f"depth.{sym}", _depth_data(st, bids, asks, first, st.seq, t, e)))
        for agg in st.aggregates.values():
            if agg.first is None:
                agg.first = first
            agg.last, agg.t = st.seq, t
            agg.bids.update(bids)
            agg.asks.update(asks)
        bid = max(st.bids) if st.bids else None
        ask = min(st.asks) if st.asks else None
        t2, e2 = self._times(st)
        out.append(
            Emission(
                f"bookTicker.{sym}",
                {
                    "e": "bookTicker",
                    "E": e2,
                    "s": sym,
                    "a": None if ask is None else st.wire_price(ask),
                    "A": None if ask is None else st.wire_size(st.asks[ask]),
                    "b": None if bid is None else st.wire_price(bid),
                    "B": None if bid is None else st.wire_size(st.bids[bid]),
                    "u": st.seq,
                    "T": t2,
                },
            )
        )

    def _flush_aggregate(self, st: _Symbol, window: str, out: list[Emission]) -> None:
        agg = st.aggregates[window]
        if agg.first is None:
            return
        _, e = self._times(st)
        data = _depth_data(st, agg.bids, agg.asks, agg.first, agg.last, agg.t, e)
        out.append(Emission(f"depth.{window}.{st.spec.symbol}", data))
        st.aggregates[window] = _Aggregate()

    def _public_trade(self, st: _Symbol) -> tuple[dict[int, int], dict[int, int], Emission | None]:
        """A taker order hits the top of the book: a trade plus the depth change it causes."""
        rng = st.rng
        taker_buy = rng.random() < 0.5
        side = st.asks if taker_buy else st.bids
        bids_ch: dict[int, int] = {}
        asks_ch: dict[int, int] = {}
        if not side:
            return bids_ch, asks_ch, None
        price = min(side) if taker_buy else max(side)
        avail = side[price]
        units = avail if rng.random() < 0.3 else rng.randint(1, avail)
        change = asks_ch if taker_buy else bids_ch
        self._set(st, not taker_buy, price, avail - units, change)
        self._replenish(st, not taker_buy, change)
        taker_id, maker_id = self._order_ids(st)
        buyer, seller = (taker_id, maker_id) if taker_buy else (maker_id, taker_id)
        return bids_ch, asks_ch, self._trade(st, price, units, buyer, seller, buyer_maker=not taker_buy)

    def _order_ids(self, st: _Symbol) -> tuple[str, str]:
        st.order_id += st.rng.randint(1, 50)
        a = st.order_id
        st.order_id += st.rng.randint(1, 50)
        return str(a), str(st.order_id)

    def _trade(
        self, st: _Symbol, ticks: int, units: int, buyer: str, seller: str, buyer_maker: bool
    ) -> Emission:
        st.trade_id += 1
        t, e = self._times(st)
        price, qty = st.price(ticks), st.size(units)
        st.trades.append(
            {
                "id": st.trade_id,
                "price": canon(price),
                "quantity": canon(qty),
                "quoteQuantity": canon(price * qty),
                "timestamp": t // 1000,
                "isBuyerMaker": buyer_maker,
            }
        )
        s = st.stats
        if s.first is None:
            s.first = price
        s.last = price
        s.high = price if s.high is None else max(s.high, price)
        s.low = price if s.low is None else min(s.low, price)
        s.volume += qty
        s.quote_volume += price * qty
        s.trades += 1
        ts_s = t // 1_000_000
        for iv in INTERVALS:
            c = st.candles.get(iv)
            if c is None:
                start, end = interval_bounds(ts_s, iv)
                c = st.candles[iv] = _Candle(start, end, price, price, price, price)
            c.high, c.low, c.close = max(c.high, price), min(c.low, price), price
            c.volume += qty
            c.quote_volume += price * qty
            c.trades += 1
            c.dirty = True
        return Emission(
            f"trade.{st.spec.symbol}",
            {
                "e": "trade",
                "E": e,
                "s": st.spec.symbol,
                "p": st.wire_price(ticks),
                "q": st.wire_size(units),
                "b": buyer,
                "a": seller,
                "t": st.trade_id,
                "T": t,
                "m": buyer_maker,
            },
        )

    def _liquidation(self, st: _Symbol, out: list[Emission]) -> None:
        rng = st.rng
        t, e = self._times(st)
        ref = max(st.bids) if st.bids else (min(st.asks) if st.asks else 1)
        data = {
            "e": "liquidation",
            "E": e,
            "q": st.wire_size(self._qty(st)),
            "p": st.wire_price(max(1, ref + rng.randint(-5, 5))),
            "S": rng.choice(("Bid", "Ask")),
            "s": st.spec.symbol,
            "T": t,
        }
        out.append(Emission("liquidation", data))
        out.append(Emission(f"liquidation.{st.spec.symbol}", data))

    # -- internals: periodic streams ------------------------------------------------------------
    def _emit_ticker(self, st: _Symbol, out: list[Emission]) -> None:
        s = st.stats
        if not s.trades:
            return
        _, e = self._times(st)
        q = st.tick_q
        out.append(
            Emission(
                f"ticker.{st.spec.symbol}",
                {
                    "e": "ticker",
                    "E": e,
                    "s": st.spec.symbol,
                    "o": str(s.first.quantize(q)),  # type: ignore[union-attr]
                    "c": str(s.last.quantize(q)),  # type: ignore[union-attr]
                    "h": str(s.high.quantize(q)),  # type: ignore[union-attr]
                    "l": str(s.low.quantize(q)),  # type: ignore[union-attr]
                    "v": str(s.volume.quantize(st.step_q)),
                    "V": canon(s.quote_volume),
                    "n": s.trades,
                },
            )
        )

    def _kline(self, st: _Symbol, iv: str, c: _Candle, closed: bool) -> Emission:
        _, e = self._times(st)
        q = st.tick_q
        return Emission(
            f"kline.{iv}.{st.spec.symbol}",
            {
                "e": "kline",
                "E": e,
                "s": st.spec.symbol,
                "t": iso_ws(c.start_s),
                "T": iso_ws(c.end_s),
                "o": str(c.open.quantize(q)),
                "c": str(c.close.quantize(q)),
                "h": str(c.high.quantize(q)),
                "l": str(c.low.quantize(q)),
                "v": str(c.volume.quantize(st.step_q)),
                "n": c.trades,
                "X": closed,
            },
        )

    def _emit_klines(self, st: _Symbol, out: list[Emission]) -> None:
        for iv, c in st.candles.items():
            if c.dirty:
                c.dirty = False
                out.append(self._kline(st, iv, c, False))

    def _close_candles(self, st: _Symbol, out: list[Emission]) -> None:
        now_s = self.now_us // 1_000_000
        for iv in [iv for iv, c in st.candles.items() if c.end_s <= now_s]:
            c = st.candles.pop(iv)
            st.kline_hist[iv].append(c)
            out.append(self._kline(st, iv, c, True))

    def _mark(self, st: _Symbol) -> tuple[Decimal, Decimal, Decimal, int]:
        mark = st.mid().quantize(_MARK_Q)
        # Index sits a deterministic few bp from mark: a function of the sequence, not of the RNG,
        # so REST reads never disturb the random stream.
        bp = Decimal((st.seq * 7919) % 21 - 10) / Decimal(100_000)
        index = (mark * (1 + bp)).quantize(_MARK_Q)
        rate = Decimal(st.funding_units) / Decimal(10_000_000)
        interval = st.spec.funding_interval_ms
        next_ms = (self.now_us // 1000 // interval + 1) * interval
        return mark, index, rate, next_ms

    def _emit_mark(self, st: _Symbol, out: list[Emission]) -> None:
        st.funding_units = max(-1000, min(1000, st.funding_units + st.rng.randint(-5, 5)))
        mark, index, rate, next_ms = self._mark(st)
        t, e = self._times(st)
        out.append(
            Emission(
                f"markPrice.{st.spec.symbol}",
                {
                    "e": "markPrice",
                    "E": e,
                    "s": st.spec.symbol,
                    "p": str(mark),
                    "f": canon(rate),
                    "i": str(index),
                    "n": next_ms,
                    "T": t,
                },
            )
        )

    def _emit_open_interest(self, st: _Symbol, out: list[Emission]) -> None:
        st.open_interest_units = max(
            1, st.open_interest_units + st.rng.randint(-st.spec.max_units, st.spec.max_units)
        )
        _, e = self._times(st)
        out.append(
            Emission(
                f"openInterest.{st.spec.symbol}",
                {
                    "e": "openInterest",
                    "E": e,
                    "s": st.spec.symbol,
                    "o": canon(st.size(st.open_interest_units)),
                },
            )
        )

    def _seed_funding(self, st: _Symbol) -> None:
        if not st.spec.perp:
            return
        interval = st.spec.funding_interval_ms
        last = self.now_us // 1000 // interval * interval
        for k in range(3, 0, -1):
            self._record_funding(st, last - (k - 1) * interval, st.funding_units + st.rng.randint(-20, 20))

    def _record_funding(self, st: _Symbol, end_ms: int, units: int) -> None:
        st.funding_history.append(
            {
                "fundingRate": canon(Decimal(units) / Decimal(10_000_000)),
                "intervalEndTimestamp": iso_ws(end_ms // 1000),
                "symbol": st.spec.symbol,
            }
        )

    def _funding_boundary(self, st: _Symbol, prev_us: int) -> None:
        if not st.spec.perp:
            return
        interval = st.spec.funding_interval_ms
        if self.now_us // 1000 // interval != prev_us // 1000 // interval:
            self._record_funding(st, self.now_us // 1000 // interval * interval, st.funding_units)

    # -- internals: the private test account ----------------------------------------------------
