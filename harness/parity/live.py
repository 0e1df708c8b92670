"""Live shadow parity: ``BackpackFeed`` and ``BackpackCcxtFeed`` side by side, compared the same way.

Both feeds run in one cryptofeed ``FeedHandler`` against a fresh loopback server (as ``harness.demo``
does), on the same streams; the market moves only once both are subscribed to every stream. The native
side is normalized by ``backpack.protocol.normalized`` straight from its Router (as the recorder does);
the ccxt side is what the legacy feed hands to cryptofeed callbacks (trades and L2 books), normalized
here. The legacy feed delivers a book once per ``watch_order_book`` return (coalesced), so native states
between two of its states are not comparable rather than missing. Both go through ``harness.parity.compare`` with the registry's rules; rules that need the frame
behind a record cannot fire live (there is no recording), so a live report is stricter than an offline
one. This is the migration runbook's shadow phase.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from backpack.protocol.normalized import EXCHANGE, canonical_decimal
from harness.demo import DEFAULT_SYMBOLS

from .compare import Stream, compare
from .deviations import Context, Deviation, alignments, classifier, load_registry
from .oracle import CCXT_TIME_RESOLUTION_US


def _us(seconds: Any) -> int | None:
    return None if seconds is None else int(Decimal(str(seconds)) * 1_000_000)


class _CcxtSide:
    """cryptofeed objects from the legacy feed -> schema-v1 records (trades and books)."""

    def __init__(self, depth: int) -> None:
        self.records: list[dict[str, Any]] = []
        self.depth = depth

    async def on_trade(self, t: Any, receipt: float) -> None:
        self.records.append({"type": "trade", "exchange": EXCHANGE, "symbol": t.symbol, "timestamp": _us(t.timestamp),
                             "receipt": _us(receipt), "id": None if t.id is None else str(t.id), "side": t.side,
                             "price": canonical_decimal(t.price), "amount": canonical_decimal(t.amount)})

    async def on_book(self, book: Any, receipt: float) -> None:
        bids = sorted(book.book.bids.to_dict().items(), reverse=True)[: self.depth]
        asks = sorted(book.book.asks.to_dict().items())[: self.depth]
        self.records.append({
            "type": "book", "exchange": EXCHANGE, "symbol": book.symbol, "timestamp": _us(book.timestamp),
            "receipt": _us(receipt), "kind": "delta", "sequence": book.sequence_number,
            "bids": [[canonical_decimal(p), canonical_decimal(s)] for p, s in bids],
            "asks": [[canonical_decimal(p), canonical_decimal(s)] for p, s in asks], "delta": None})


async def run_live(*, seed: int = 2, steps: int = 1200, symbols: list[str] | None = None, depth: int = 10,
                   gap: bool = False, entries: list[Deviation] | None = None, progress: bool | None = None
                   ) -> dict[str, Any]:
    from cryptofeed import FeedHandler

    import backpack  # noqa: F401  (registers BACKPACK)
    from backpack import compat
    from backpack.ccxt_feed import BackpackCcxtFeed
    from backpack.config import BackpackConfig
    from backpack.feed import BackpackFeed
    from backpack.protocol.normalized import Normalizer
    from harness.pytest_plugin import running_server

    from .run import NOT_COMPARED

    symbols = list(symbols or DEFAULT_SYMBOLS)
    natives = [s.replace("-", "_") for s in symbols]
    entries = entries if entries is not None else load_registry()
    native_lines: list[str] = []
    ccxt = _CcxtSide(depth)

    async def ignore(*_args: Any) -> None:
        return None

    async with running_server(seed=seed, rate=0, ping_interval=5.0, pong_timeout=30.0) as server:
        cfg = BackpackConfig.from_dict({"rest_url": server.rest_url, "ws_url": server.ws_url})
        channels = [compat.TRADES, compat.L2_BOOK]
        normalizer: Normalizer | None = None

        def collect(output: Any) -> None:
            if normalizer is not None:
                native_lines.extend(normalizer.lines((output,)))

        fh = FeedHandler(config={"log": {"disabled": True}})
        native_feed = BackpackFeed(symbols=symbols, channels=channels, backpack_config=cfg, protocol_callback=collect,
                                   callbacks={compat.TRADES: ignore, compat.L2_BOOK: ignore})
        normalizer = Normalizer(native_feed.router.books, depth=depth)
        ccxt_feed = BackpackCcxtFeed(symbols=symbols, channels=channels, backpack_config=cfg,
                                     callbacks={compat.TRADES: ccxt.on_trade, compat.L2_BOOK: ccxt.on_book})
        fh.add_feed(native_feed)
        fh.add_feed(ccxt_feed)
        token = await compat.start_handler(fh)
        try:
            wanted = {f"{kind}.{n}" for n in natives for kind in ("depth", "trade")}
            async with asyncio.timeout(30):
                while sum(1 for c in server.connections.values() if c.open and wanted <= c.subscriptions) < 2:
                    await asyncio.sleep(0.01)
            for i in range(0, steps, 20):
                if gap and i == (steps // 2) // 20 * 20:
                    server.faults.skip_depth(natives[0], count=5)
                server.step(20)
                await server.flush()
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)  # the last frames reach both feeds
        finally:
            await compat.stop_handler(fh, token)
    import json

    native = [json.loads(line) for line in native_lines]
    comparison = compare(Stream("native", native), Stream("ccxt", ccxt.records, CCXT_TIME_RESOLUTION_US),
                         depth=depth, types=["trade", "book"], alignments=alignments(entries),
                         classify=classifier(entries, Context()), book_holes=False)
    from .run import _summary_of

    summary = _summary_of(comparison, native, ccxt.records, name=f"live loopback (seed {seed}, {steps} steps"
                          + (", gap" if gap else "") + ")")
    summary["not_compared"] = {k: {"native_records": sum(1 for r in native if r.get("type") == k), "reason": v}
                               for k, v in NOT_COMPARED.items() if any(r.get("type") == k for r in native)}
    return summary
