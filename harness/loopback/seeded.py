"""SeededSource: the seeded ``MarketGenerator`` behind the ``MarketSource`` seam.

A thin adapter: the server steps it and broadcasts each step; the REST answers are the generator's
views, validated the way the exchange validates them. Its output is byte-identical to the server's
before the seam existed (``tests/test_loopback_source.py`` holds the digest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from backpack.protocol.wire import DEPTH_LIMITS, MARKET_TYPES
from harness.loopback.market import INTERVALS, Emission, MarketGenerator
from harness.loopback.source import (
    RestAnswer,
    RestClientError,
    RestNotFound,
    RestParseFailure,
    RestRequest,
    SourceHost,
    Subscriber,
    int_param,
)


class SeededSource:
    """``MarketSource`` over one ``MarketGenerator``; ``ints_as_strings`` quotes the REST integer fields that
    ccxt's samples show quoted (the server does the same to WS frames)."""

    def __init__(self, market: MarketGenerator, *, ints_as_strings: bool = False) -> None:
        self.market = market
        self.ints_as_strings = ints_as_strings
        self.label = f"seed {market.config.seed}"
        self._routes: dict[str, Callable[[Any], RestAnswer]] = {
            "markets": self._markets,
            "market": self._market,
            "assets": self._assets,
            "securities": self._securities,
            "depth": self._depth,
            "trades": self._trades,
            "klines": self._klines,
            "ticker": self._ticker,
            "tickers": self._tickers,
            "markPrices": self._mark_prices,
            "openInterest": self._open_interest,
            "fundingRates": self._funding_rates,
        }  # path segment under /api/v1/ -> handler

    @property
    def steps(self) -> int:
        return self.market.steps

    def bind(self, host: SourceHost) -> None:
        pass  # the server's ticker drives it: nothing to start

    async def close(self) -> None:
        pass

    def step(self) -> list[Emission]:
        return self.market.step()

    def subscribed(self, conn: Subscriber, streams: Sequence[str]) -> list[Emission]:
        """The positions snapshot the exchange sends on ``account.positionUpdate[.<symbol>]`` (each time)."""
        out = []
        for stream in streams:
            head, _, symbol = stream.partition(".positionUpdate")
            if head == "account":
                snapshot = self.market.positions_snapshot(symbol.lstrip(".") or None)
                out.extend(Emission(stream, data) for data in snapshot)
        return out

    def unsubscribed(self, conn: Subscriber, streams: Sequence[str]) -> None:
        pass

    def disconnected(self, conn: Subscriber) -> None:
        pass

    # -- REST -----------------------------------------------------------------------------------
    def rest(self, request: RestRequest) -> RestAnswer:
        handler = self._routes.get(request.name)
        if handler is None:
            raise RestNotFound("Not Found")
        return handler(request.query)

    def _symbol(self, query: Any, required: bool = True) -> str | None:
        symbol = query.get("symbol")
        if symbol is None:
            if required:
                raise RestParseFailure("missing field `symbol`")
            return None
        if not self.market.has_symbol(symbol):
            raise RestClientError("Market not found")
        return symbol

    def _stringify(self, rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
        if not self.ints_as_strings:
            return rows
        return [
            {k: str(v) if k in keys and isinstance(v, int) else v for k, v in row.items()} for row in rows
        ]

    def _markets(self, query: Any) -> RestAnswer:
        wanted = query.getall("marketType", [])
        for t in wanted:
            if t not in MARKET_TYPES:
                expected = ", ".join(f"`{m}`" for m in MARKET_TYPES)
                raise RestParseFailure(f"marketType: unknown variant `{t}`, expected one of {expected}")
        types = set(wanted) or {"SPOT", "PERP"}
        return RestAnswer.json([s.market_entry() for s in self.market.specs if s.market_type in types])

    def _market(self, query: Any) -> RestAnswer:
        symbol = self._symbol(query)
        assert symbol is not None
        return RestAnswer.json(self.market.spec(symbol).market_entry())

    def _assets(self, query: Any) -> RestAnswer:
        return RestAnswer.json(self.market.assets())

    def _securities(self, query: Any) -> RestAnswer:
        return RestAnswer.json(self.market.securities())

    def _depth(self, query: Any) -> RestAnswer:
        symbol = self._symbol(query)
        limit = int_param(query, "limit", 1000)
        if limit not in DEPTH_LIMITS:
            raise RestClientError("Invalid limit")
        assert symbol is not None
        return RestAnswer.json(self.market.depth_snapshot(symbol, limit))

    def _trades(self, query: Any) -> RestAnswer:
        symbol = self._symbol(query)
        limit = int_param(query, "limit", 100)
        if not 1 <= limit <= 1000:
            raise RestClientError("Limit must be between 1 and 1000")
        assert symbol is not None
        return RestAnswer.json(self._stringify(self.market.recent_trades(symbol, limit), ("id", "timestamp")))

    def _klines(self, query: Any) -> RestAnswer:
        if query.get("symbol") is None:
            raise RestParseFailure("missing field `symbol`")
        interval = query.get("interval")
        if interval is None:
            raise RestParseFailure("missing field `interval`")
        if interval not in INTERVALS:
            raise RestParseFailure(f"interval: unknown variant `{interval}`")
        if "startTime" not in query:
            raise RestParseFailure("missing field `startTime`")
        start = int_param(query, "startTime", 0)
        end = int_param(query, "endTime", None) if "endTime" in query else None
        symbol = self._symbol(query)
        assert symbol is not None
        return RestAnswer.json(self.market.klines(symbol, interval, start, end))

    def _ticker(self, query: Any) -> RestAnswer:
        interval = query.get("interval", "1d")
        if interval not in ("1d", "1w"):
            raise RestParseFailure(f"interval: unknown variant `{interval}`, expected `1d` or `1w`")
        symbol = self._symbol(query)
        assert symbol is not None
        data = self.market.ticker(symbol)
        if data is None:
            return RestAnswer(204, None, None)
        return RestAnswer.json(data)

    def _tickers(self, query: Any) -> RestAnswer:
        rows = [t for t in (self.market.ticker(s) for s in self.market.symbols) if t is not None]
        return RestAnswer.json(rows)

    def _mark_prices(self, query: Any) -> RestAnswer:
        symbol = self._symbol(query, required=False)
        return RestAnswer.json(self._stringify(self.market.mark_prices(symbol), ("nextFundingTimestamp",)))

    def _open_interest(self, query: Any) -> RestAnswer:
        symbol = self._symbol(query, required=False)
        return RestAnswer.json(self._stringify(self.market.open_interest(symbol), ("timestamp",)))

    def _funding_rates(self, query: Any) -> RestAnswer:
        symbol = self._symbol(query)
        limit = int_param(query, "limit", 100)
        if not 1 <= limit <= 10000:
            raise RestClientError("Invalid limit")
        assert symbol is not None
        return RestAnswer.json(self.market.funding_rates(symbol, limit))


__all__ = ["SeededSource"]
