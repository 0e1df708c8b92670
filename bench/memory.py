"""Peak and retained memory of loading one deep REST snapshot into each contender's book.

Measured with ``tracemalloc``, which sees every allocation made through Python's allocators
(objects, ``Decimal`` digits, dicts, lists). Memory a C extension takes straight from ``malloc``
is invisible to it; cryptofeed's ``order_book`` SortedDict may be undercounted for that reason,
which is why it is reported for information only.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson

from backpack.protocol import messages
from backpack.protocol.router import Router

from .contenders import _CCXT_MARKET, Ccxt, CryptofeedBinance, _binance_offline, _refuse_network_async
from .frames import BP_SYMBOL, CCXT_SYMBOL, SNAPSHOT_ID, START_US, STD_SYMBOL, deep_snapshot


def _traced(build: Callable[[], Any]) -> tuple[int, int, Any]:
    """(retained bytes, peak bytes, result) of ``build()``; the result is kept alive while measuring."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = build()
        gc.collect()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return current, peak, kept


def measure(levels: int = 1000) -> dict[str, dict[str, int]]:
    """Load a ``levels``-per-side snapshot body (bytes, as a REST response arrives) into each book."""
    body = deep_snapshot(levels).encode()
    primer = orjson.dumps({"stream": f"depth.{BP_SYMBOL}", "data": {
        "e": "depth", "E": START_US, "s": BP_SYMBOL, "a": [], "b": [], "U": SNAPSHOT_ID, "u": SNAPSHOT_ID, "T": START_US,
    }})  # fmt: skip
    results: dict[str, dict[str, int]] = {}

    router = Router()
    router.receive_frame(primer, START_US)  # the machine now waits for this snapshot
    cache = getattr(messages, "_DC", None)  # the decoder's text -> Decimal cache: start it cold
    if isinstance(cache, dict):
        cache.clear()

    def native() -> Any:
        out = router.receive_snapshot(BP_SYMBOL, body, START_US)
        assert len(router.books.get(BP_SYMBOL).book) == 2 * levels, out
        return out

    retained, peak, _ = _traced(native)
    results["native"] = {"retained": retained, "peak": peak, "levels": len(router.books.get(BP_SYMBOL).book)}

    if Ccxt.available():
        results["ccxt"] = _ccxt(body, levels)
    if CryptofeedBinance.available():
        results["cryptofeed_binance"] = _cryptofeed(body)
    return results


def _ccxt(body: bytes, levels: int) -> dict[str, int]:
    import ccxt.pro as ccxtpro

    ex = ccxtpro.backpack()
    ex.fetch = _refuse_network_async
    ex.set_markets([ex.parse_market(_CCXT_MARKET)])

    def ccxt_book() -> Any:
        raw = json.loads(body)  # what ccxt's fetch does with the response text
        book = ex.parse_order_book(raw, CCXT_SYMBOL, START_US // 1000)
        book["nonce"] = int(raw["lastUpdateId"])
        ob = ex.order_book(book)
        assert len(ob["bids"]) + len(ob["asks"]) == 2 * levels
        return ob

    retained, peak, ob = _traced(ccxt_book)
    return {"retained": retained, "peak": peak, "levels": len(ob["bids"]) + len(ob["asks"])}


def _cryptofeed(body: bytes) -> dict[str, int]:
    from cryptofeed.defines import BINANCE
    from cryptofeed.exchanges import binance as cf_binance
    from cryptofeed.types import OrderBook

    _binance_offline()

    def cryptofeed_book() -> Any:
        resp = cf_binance.json.loads(body, parse_float=Decimal)  # as Binance._snapshot parses it
        return OrderBook(
            BINANCE, STD_SYMBOL,
            bids={Decimal(p): Decimal(q) for p, q in resp["bids"]},
            asks={Decimal(p): Decimal(q) for p, q in resp["asks"]},
        )  # fmt: skip

    retained, peak, cf = _traced(cryptofeed_book)
    return {"retained": retained, "peak": peak, "levels": len(cf.book.bids) + len(cf.book.asks)}
