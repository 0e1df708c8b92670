"""Deterministic frame sets for the benchmark: one seeded market, rendered for every contender.

The same sequence of book changes and trades is written once in Backpack's wire shape and once in
Binance's (combined-stream ``depthUpdate`` / ``aggTrade``), so every contender parses frames of the
same size and applies the same work. Prices are integer ticks and sizes integer lots internally, so
the model book that the correctness checks compare against is exact.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from decimal import Decimal

BP_SYMBOL = "SOL_USDC"  # Backpack market id
BN_SYMBOL = "SOLUSDC"  # Binance market id
STD_SYMBOL = "SOL-USDC"  # cryptofeed-normalized symbol
CCXT_SYMBOL = "SOL/USDC"

START_US = 1_754_006_400_000_000  # 2025-08-01T00:00:00Z, fixed for reproducibility
SNAPSHOT_ID = 1_000_000  # lastUpdateId of the synchronising snapshot
MID_TICKS = 15_000  # 150.00 with a 0.01 tick


def _dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))


def fmt2(units: int) -> str:
    """Integer hundredths -> plain decimal text with two places (the wire's style for this market)."""
    return f"{units // 100}.{units % 100:02d}"


@dataclass
class Model:
    """The reference book: ticks -> lots per side."""

    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)

    def top(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """All levels, best first, as Decimals."""
        bids = [(Decimal(fmt2(p)), Decimal(fmt2(q))) for p, q in sorted(self.bids.items(), reverse=True)]
        asks = [(Decimal(fmt2(p)), Decimal(fmt2(q))) for p, q in sorted(self.asks.items())]
        return bids, asks


@dataclass
class Dataset:
    """Everything one run needs; frames are ``str`` as a WebSocket text frame arrives."""

    levels: int
    snapshot_body: str  # Backpack REST /api/v1/depth answer (both sides ascending)
    snapshot_bids: list[tuple[str, str]]  # ascending, as in the REST body
    snapshot_asks: list[tuple[str, str]]
    bp_primer: str  # empty depth delta with u == snapshot id: warms routes, leaves the book alone
    bp_trade_primer: str  # a trade whose id is not in the run: warms routes, never a duplicate
    bp_depth: list[str]
    bn_depth: list[str]
    bp_trades: list[str]
    bn_trades: list[str]
    final: Model  # the book after every depth frame


def _initial_side(rng: random.Random, levels: int, bid: bool) -> dict[int, int]:
    span = (
        range(MID_TICKS - 3 * levels, MID_TICKS) if bid else range(MID_TICKS + 1, MID_TICKS + 1 + 3 * levels)
    )
    return {p: rng.randint(1, 100_000) for p in rng.sample(span, levels)}


def _change(
    rng: random.Random, book: dict[int, int], levels: int, bid: bool, used: set[int]
) -> tuple[int, int]:
    """One level change (price, new lots; 0 deletes), keeping the side near ``levels`` levels."""
    roll = rng.random()
    n = len(book)
    action = "update" if roll < 0.6 else ("delete" if roll < 0.8 else "insert")
    if action == "delete" and n <= levels - 10:
        action = "insert"
    elif action == "insert" and n >= levels + 10:
        action = "delete"
    if action == "insert":
        lo, hi = (MID_TICKS - 3 * levels, MID_TICKS - 1) if bid else (MID_TICKS + 1, MID_TICKS + 3 * levels)
        for _ in range(50):
            p = rng.randint(lo, hi)
            if p not in book and p not in used:
                return p, rng.randint(1, 100_000)
        action = "update"
    candidates = [p for p in book if p not in used]
    p = rng.choice(candidates)
    return p, (0 if action == "delete" else rng.randint(1, 100_000))


def build(frames: int, *, levels: int = 100, seed: int = 20_250_801) -> Dataset:
    """``frames`` depth frames (1-3 levels each, realtime: U == u, contiguous) and ``frames`` trades."""
    rng = random.Random(seed)
    model = Model(_initial_side(rng, levels, True), _initial_side(rng, levels, False))
    snap_bids = [(fmt2(p), fmt2(q)) for p, q in sorted(model.bids.items())]
    snap_asks = [(fmt2(p), fmt2(q)) for p, q in sorted(model.asks.items())]
    snapshot_body = _dumps(
        {"asks": snap_asks, "bids": snap_bids, "lastUpdateId": str(SNAPSHOT_ID), "timestamp": START_US}
    )
    primer = _dumps({"stream": f"depth.{BP_SYMBOL}", "data": {
        "e": "depth", "E": START_US, "s": BP_SYMBOL, "a": [], "b": [],
        "U": SNAPSHOT_ID, "u": SNAPSHOT_ID, "T": START_US,
    }})  # fmt: skip

    bp_depth: list[str] = []
    bn_depth: list[str] = []
    now = START_US
    for i in range(frames):
        seq = SNAPSHOT_ID + 1 + i
        now += rng.randint(100, 5_000)
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        used_b: set[int] = set()
        used_a: set[int] = set()
        for _ in range(rng.choice((1, 2, 3))):
            bid = rng.random() < 0.5
            book, out, used = (model.bids, bids, used_b) if bid else (model.asks, asks, used_a)
            p, q = _change(rng, book, levels, bid, used)
            used.add(p)
            if q:
                book[p] = q
                out.append([fmt2(p), fmt2(q)])
            else:
                book.pop(p, None)
                out.append([fmt2(p), "0"])
        engine = now - rng.randint(50, 900)
        bp_depth.append(_dumps({"stream": f"depth.{BP_SYMBOL}", "data": {
            "e": "depth", "E": now, "s": BP_SYMBOL, "a": asks, "b": bids, "U": seq, "u": seq, "T": engine,
        }}))  # fmt: skip
        bn_depth.append(_dumps({"stream": f"{BN_SYMBOL.lower()}@depth@100ms", "data": {
            "e": "depthUpdate", "E": now // 1000, "s": BN_SYMBOL, "U": seq, "u": seq, "b": bids, "a": asks,
        }}))  # fmt: skip

    order_id = 114_563_528_237_858_816
    trade_primer = _dumps({"stream": f"trade.{BP_SYMBOL}", "data": {
        "e": "trade", "E": START_US, "s": BP_SYMBOL, "p": fmt2(MID_TICKS), "q": "1.00", "b": str(order_id),
        "a": str(order_id + 1), "t": 0, "T": START_US, "m": False,
    }})  # fmt: skip
    bp_trades: list[str] = []
    bn_trades: list[str] = []
    for i in range(frames):
        now += rng.randint(100, 5_000)
        tid = 1 + i
        price = fmt2(MID_TICKS + rng.randint(-50, 50))
        qty = fmt2(rng.randint(1, 50_000))
        maker = rng.random() < 0.5
        buyer, seller = order_id + rng.randint(0, 10**6), order_id + rng.randint(0, 10**6)
        engine = now - rng.randint(50, 900)
        bp_trades.append(_dumps({"stream": f"trade.{BP_SYMBOL}", "data": {
            "e": "trade", "E": now, "s": BP_SYMBOL, "p": price, "q": qty, "b": str(buyer), "a": str(seller),
            "t": tid, "T": engine, "m": maker,
        }}))  # fmt: skip
        bn_trades.append(_dumps({"stream": f"{BN_SYMBOL.lower()}@aggTrade", "data": {
            "e": "aggTrade", "E": now // 1000, "s": BN_SYMBOL, "a": tid, "p": price, "q": qty,
            "f": tid, "l": tid, "T": engine // 1000, "m": maker, "M": True,
        }}))  # fmt: skip

    return Dataset(
        levels,
        snapshot_body,
        snap_bids,
        snap_asks,
        primer,
        trade_primer,
        bp_depth,
        bn_depth,
        bp_trades,
        bn_trades,
        model,
    )


def deep_snapshot(levels: int, *, seed: int = 7) -> str:
    """A Backpack REST depth body with ``levels`` levels per side (for the memory comparison)."""
    rng = random.Random(seed)
    bids = [(fmt2(MID_TICKS - 1 - k), fmt2(rng.randint(1, 100_000))) for k in range(levels)][::-1]
    asks = [(fmt2(MID_TICKS + 1 + k), fmt2(rng.randint(1, 100_000))) for k in range(levels)]
    return _dumps({"asks": asks, "bids": bids, "lastUpdateId": str(SNAPSHOT_ID), "timestamp": START_US})
