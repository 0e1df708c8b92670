"""The project's ccxt-backed feed (``backpack.ccxt_feed.BackpackCcxtFeed``) in a cryptofeed
``FeedHandler``; its cryptofeed objects are turned into schema-v1 records as the parity shadow does."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from . import Emit, Target, importable

CHANNELS = {"trades": "TRADES", "l2_book": "L2_BOOK", "bbo": "TICKER", "orders": "ORDER_INFO"}


def _us(seconds: Any) -> int | None:
    return None if seconds is None else int(Decimal(str(seconds)) * 1_000_000)


class CcxtFeedAdapter:
    name = "ccxt-feed"
    description = "backpack.ccxt_feed.BackpackCcxtFeed (the legacy path through ccxt.pro) in a FeedHandler"
    capabilities = frozenset({"trades", "l2_book", "bbo", "orders", "private"})

    def missing(self) -> str | None:
        return None if importable("ccxt.pro") else "not installed (pip install ccxt)"

    async def run(self, target: Target, emit: Emit, stop: asyncio.Event) -> None:
        from cryptofeed import FeedHandler

        from backpack import compat
        from backpack.ccxt_feed import BackpackCcxtFeed
        from backpack.protocol.normalized import EXCHANGE, canonical_decimal

        async def on_trade(t: Any, receipt: float) -> None:
            await emit({"type": "trade", "exchange": EXCHANGE, "symbol": t.symbol, "timestamp": _us(t.timestamp),
                        "id": None if t.id is None else str(t.id), "side": t.side,
                        "price": canonical_decimal(t.price), "amount": canonical_decimal(t.amount)})

        async def on_book(b: Any, receipt: float) -> None:
            bids = sorted(b.book.bids.to_dict().items(), reverse=True)[: target.depth]
            asks = sorted(b.book.asks.to_dict().items())[: target.depth]
            await emit({"type": "book", "exchange": EXCHANGE, "symbol": b.symbol, "timestamp": _us(b.timestamp),
                        "kind": "delta", "sequence": b.sequence_number,
                        "bids": [[canonical_decimal(p), canonical_decimal(s)] for p, s in bids],
                        "asks": [[canonical_decimal(p), canonical_decimal(s)] for p, s in asks], "delta": None})

        async def on_ticker(t: Any, receipt: float) -> None:
            await emit({"type": "bbo", "exchange": EXCHANGE, "symbol": t.symbol, "timestamp": _us(t.timestamp),
                        "bid": canonical_decimal(t.bid), "ask": canonical_decimal(t.ask)})

        async def ignore(*_args: Any) -> None:
            return None

        handlers = {"trades": on_trade, "l2_book": on_book, "bbo": on_ticker, "orders": ignore}
        section: dict[str, Any] = {"rest_url": target.rest_url, "ws_url": target.ws_url}
        if target.api_key:
            section.update(api_key=target.api_key, private_key=target.secret)
        callbacks = {getattr(compat, CHANNELS[c]): handlers[c] for c in target.channels}
        fh = FeedHandler(config={"log": {"disabled": True}})
        fh.add_feed(BackpackCcxtFeed(symbols=list(target.symbols), channels=list(callbacks),
                                     backpack_config=section, callbacks=callbacks))
        token = await compat.start_handler(fh)
        try:
            await stop.wait()
        finally:
            await compat.stop_handler(fh, token)


__all__ = ["CcxtFeedAdapter"]
