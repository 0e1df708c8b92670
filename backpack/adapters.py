"""Protocol events → cryptofeed objects.

Pure functions: one per channel, no I/O. cryptofeed wants float seconds for timestamps; prices and
sizes stay Decimal all the way through.
"""

from __future__ import annotations

from decimal import Decimal

from . import compat
from .protocol import events as ev
from .types import Rfq, Ticker24h

EXCHANGE = "BACKPACK"
_US = 1_000_000


def seconds(us: int | None) -> float | None:
    return None if us is None else us / _US


def trade(e: ev.Trade, symbol: str):
    # positional (id is the seventh; type and raw default to None): half the cost of keywords on 3.0.1
    return compat.Trade(EXCHANGE, symbol, e.side, e.amount, e.price, e.timestamp / _US, e.id)


def ticker(e: ev.BookTicker, symbol: str):
    return compat.Ticker(EXCHANGE, symbol, e.bid, e.ask, (e.timestamp or e.event_time) / _US, raw=None)


def ticker_24h(e: ev.Ticker, symbol: str) -> Ticker24h:
    return Ticker24h(
        EXCHANGE, symbol, e.open, e.high, e.low, e.close, e.volume, e.quote_volume, e.trades, e.event_time / _US,
    )


def rfq(e: ev.RfqUpdate, symbol: str) -> Rfq:
    return Rfq(
        EXCHANGE, symbol, e.event, e.rfq_id, e.quote_id, e.client_id, e.side, e.quantity, e.quote_quantity,
        e.price, e.status, seconds(e.submit_time), seconds(e.expiry_time), (e.timestamp or e.event_time) / _US,
    )


def candle(e: ev.Candle, symbol: str):
    return compat.Candle(
        EXCHANGE, symbol, e.start / _US, e.stop / _US, e.interval, e.trades, e.open, e.close, e.high, e.low,
        e.volume, e.closed, e.event_time / _US, raw=None,
    )


def funding(e: ev.MarkPrice, symbol: str):
    return compat.Funding(
        EXCHANGE, symbol, e.mark_price, e.funding_rate, seconds(e.next_funding_time),
        (e.timestamp or e.event_time) / _US, raw=None,
    )


def open_interest(e: ev.OpenInterest, symbol: str):
    return compat.OpenInterest(EXCHANGE, symbol, e.open_interest, e.event_time / _US, raw=None)


def liquidation(e: ev.Liquidation, symbol: str):
    return compat.Liquidation(
        EXCHANGE, symbol, e.side, e.amount, e.price, None, compat.FILLED,
        (e.timestamp or e.event_time) / _US, raw=None,
    )


def order_size(e: ev.OrderUpdate) -> Decimal | None:
    """A trigger order carries its size in ``Y`` while ``q`` is 0 until it triggers: report that size."""
    if e.trigger_quantity is not None and not e.amount:
        return e.trigger_quantity
    return e.amount


def order_info(e: ev.OrderUpdate, symbol: str):
    amount = order_size(e)
    remaining = None if amount is None else amount - (e.filled or Decimal(0))
    return compat.OrderInfo(
        EXCHANGE, symbol, e.order_id, e.side, e.status or e.event, e.order_type, e.price, amount,
        remaining, (e.timestamp or e.event_time) / _US, client_order_id=e.client_order_id, raw=None,
    )


def fill(e: ev.OrderUpdate, symbol: str):
    liquidity = None if e.maker is None else (compat.MAKER if e.maker else compat.TAKER)
    return compat.Fill(
        EXCHANGE, symbol, e.side, e.last_fill_amount, e.last_fill_price, e.fee, e.trade_id, e.order_id,
        e.order_type, liquidity, (e.timestamp or e.event_time) / _US, raw=None,
    )


def position(e: ev.PositionUpdate, symbol: str):
    qty = e.quantity
    side = None if qty is None else ("long" if qty > 0 else "short" if qty < 0 else "flat")
    return compat.Position(
        EXCHANGE, symbol, qty, e.entry_price, side, e.unrealized_pnl, (e.timestamp or e.event_time) / _US, raw=None,
    )


def balance(e: ev.BalanceUpdate):
    total = None
    if e.available is not None or e.locked is not None:
        total = (e.available or Decimal(0)) + (e.locked or Decimal(0))
    return compat.Balance(EXCHANGE, e.asset, total, e.locked, raw=None)


def book_delta(d: ev.DepthDelta) -> dict:
    return {compat.BID: list(d.bids), compat.ASK: list(d.asks)}
