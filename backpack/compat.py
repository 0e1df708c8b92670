"""Everything that differs between cryptofeed 2.4.1 (Python 3.11) and 3.0.1 (Python >= 3.13).

The rest of the package imports cryptofeed names from here so that version checks live in one place.
3.0.1 dropped private channels and their types; for those we deliver our own frozen dataclasses with
the same field names as 2.4.1's ``OrderInfo``, ``Fill``, ``Position`` and ``Balance``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from importlib.metadata import version
from typing import Any

from cryptofeed import defines as _defines
from cryptofeed import types as _types
from cryptofeed.exchanges import EXCHANGE_MAP
from cryptofeed.feed import Feed
from cryptofeed.symbols import Symbol, Symbols

from .protocol import subscriptions as _sub
from .types import as_dict

CRYPTOFEED_VERSION = version("cryptofeed")
CRYPTOFEED_MAJOR = int(CRYPTOFEED_VERSION.split(".")[0])
HAS_PRIVATE_TYPES = hasattr(_types, "OrderInfo")

TRADES = _defines.TRADES
L2_BOOK = _defines.L2_BOOK
TICKER = _defines.TICKER
CANDLES = _defines.CANDLES
FUNDING = _defines.FUNDING
OPEN_INTEREST = _defines.OPEN_INTEREST
LIQUIDATIONS = _defines.LIQUIDATIONS
BID = _defines.BID
ASK = _defines.ASK
BUY = _defines.BUY
SELL = _defines.SELL
SPOT = _defines.SPOT
PERPETUAL = _defines.PERPETUAL
FUTURES = _defines.FUTURES
# 3.0.1 no longer defines the private channel names; their string values are kept so that
# configurations written for 2.4.1 keep working.
ORDER_INFO = getattr(_defines, "ORDER_INFO", "order_info")
FILLS = getattr(_defines, "FILLS", "fills")
POSITIONS = getattr(_defines, "POSITIONS", "positions")
BALANCES = getattr(_defines, "BALANCES", "balances")
FILLED = getattr(_defines, "FILLED", "filled")
MAKER = getattr(_defines, "MAKER", "maker")
TAKER = getattr(_defines, "TAKER", "taker")

# Channels cryptofeed has no define for on either line; they deliver backpack.types objects.
TICKER_24H = _sub.TICKER_24H
RFQ = _sub.RFQ

PRIVATE_CHANNELS = (ORDER_INFO, FILLS, POSITIONS, BALANCES, RFQ)
PUBLIC_CHANNELS = (TRADES, L2_BOOK, TICKER, TICKER_24H, CANDLES, FUNDING, OPEN_INTEREST, LIQUIDATIONS)
OWN_CHANNELS = (TICKER_24H, RFQ)

Trade = _types.Trade
Ticker = _types.Ticker
OrderBook = _types.OrderBook
Candle = _types.Candle
Funding = _types.Funding
OpenInterest = _types.OpenInterest
Liquidation = _types.Liquidation


@dataclass(frozen=True, slots=True)
class _OrderInfo:
    exchange: str
    symbol: str
    id: str
    side: str
    status: str
    type: str
    price: Decimal | None
    amount: Decimal | None
    remaining: Decimal | None
    timestamp: float
    client_order_id: str | None = None
    account: str | None = None
    raw: Any = None

    to_dict = as_dict


@dataclass(frozen=True, slots=True)
class _Fill:
    exchange: str
    symbol: str
    side: str
    amount: Decimal
    price: Decimal
    fee: Decimal | None
    id: str
    order_id: str
    type: str | None
    liquidity: str | None
    timestamp: float
    account: str | None = None
    raw: Any = None

    to_dict = as_dict


@dataclass(frozen=True, slots=True)
class _Position:
    exchange: str
    symbol: str
    position: Decimal | None
    entry_price: Decimal | None
    side: str | None
    unrealised_pnl: Decimal | None
    timestamp: float
    raw: Any = None

    to_dict = as_dict


@dataclass(frozen=True, slots=True)
class _Balance:
    exchange: str
    currency: str
    balance: Decimal | None
    reserved: Decimal | None
    raw: Any = None

    to_dict = as_dict


OrderInfo = getattr(_types, "OrderInfo", _OrderInfo)
Fill = getattr(_types, "Fill", _Fill)
Position = getattr(_types, "Position", _Position)
Balance = getattr(_types, "Balance", _Balance)


def new_order_book(exchange: str, symbol: str, max_depth: int = 0) -> Any:
    return OrderBook(exchange, symbol, max_depth=max_depth)


def register(name: str, cls: type) -> None:
    """Make ``FeedHandler.add_feed(name)`` and a YAML section of that name resolve to ``cls``."""
    EXCHANGE_MAP[name] = cls


__all__ = [
    "CRYPTOFEED_MAJOR",
    "CRYPTOFEED_VERSION",
    "EXCHANGE_MAP",
    "Feed",
    "HAS_PRIVATE_TYPES",
    "Symbol",
    "Symbols",
    "register",
]


async def start_handler(handler: Any) -> Any:
    """Start a ``FeedHandler`` inside the running loop; returns what ``stop_handler`` needs.

    2.4.1 starts feeds on the current loop with ``run(start_loop=False)``; 3.0.1 runs ``run_async``
    as a task and stops through ``request_stop``.
    """
    if CRYPTOFEED_MAJOR >= 3:
        task = asyncio.ensure_future(handler.run_async(install_signal_handlers=False))
        await asyncio.sleep(0)
        return task
    handler.run(start_loop=False, install_signal_handlers=False)
    return None


async def stop_handler(handler: Any, token: Any) -> None:
    if CRYPTOFEED_MAJOR >= 3:
        handler.request_stop()
        await token
        return
    await handler.stop_async()
