"""ccxt structures -> schema-v1 records, shared by the two ccxt-based adapters."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backpack.protocol.normalized import EXCHANGE, canonical_decimal


def dec(value: Any) -> str | None:
    """A ccxt float as the shortest decimal that is the same double (what the wire said, up to 15 digits)."""
    if value is None:
        return None
    return canonical_decimal(Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value)))


def ms_us(value: Any) -> int | None:
    return None if value is None else int(value) * 1000


def trade(t: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {"type": "trade", "exchange": EXCHANGE, "symbol": symbol, "timestamp": ms_us(t.get("timestamp")),
            "id": None if t.get("id") is None else str(t["id"]), "side": t.get("side"),
            "price": dec(t.get("price")), "amount": dec(t.get("amount"))}


def book(ob: Any, symbol: str, depth: int) -> dict[str, Any]:
    return {"type": "book", "exchange": EXCHANGE, "symbol": symbol, "timestamp": ms_us(ob.get("timestamp")),
            "kind": "delta", "sequence": ob.get("nonce"),
            "bids": [[dec(p), dec(s)] for p, s, *_ in list(ob["bids"])[:depth]],
            "asks": [[dec(p), dec(s)] for p, s, *_ in list(ob["asks"])[:depth]], "delta": None}


def bbo(t: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {"type": "bbo", "exchange": EXCHANGE, "symbol": symbol, "timestamp": ms_us(t.get("timestamp")),
            "bid": dec(t.get("bid")), "bid_size": dec(t.get("bidVolume")), "ask": dec(t.get("ask")),
            "ask_size": dec(t.get("askVolume")), "sequence": None}


def error(exc: BaseException, where: str) -> dict[str, Any]:
    return {"type": "error", "exchange": EXCHANGE, "symbol": None, "timestamp": None, "code": None,
            "message": f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
