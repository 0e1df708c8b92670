"""Full feed paths: what a cryptofeed user's callback waits for, frame by frame.

``NativeFeed`` times ``BackpackFeed._on_frame`` (the session's per-frame entry: Router, dispatch, the book
cryptofeed callbacks receive, ``book_callback``, the callback plumbing and its observability) with no-op
cryptofeed callbacks for ``L2_BOOK`` and ``TRADES``. ``CcxtFeed`` times what the ccxt-backed feed does per
frame: ccxt's ``handle_text_or_binary_message`` and then the feed's own handler on ccxt's book or trade
(the book mirror that diffs ccxt's book, ``book_callback``, the same callback plumbing). The watch-loop
future hand-off between the two is left out, which can only flatter ccxt. Both are compared with
cryptofeed's full Binance handler (``contenders.CryptofeedBinance``).
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from .contenders import (
    _CCXT_MARKET,
    RECEIPT,
    Contender,
    _compare,
    _noop,
    _refuse_network_async,
)
from .frames import BP_SYMBOL, CCXT_SYMBOL, SNAPSHOT_ID, START_US, STD_SYMBOL, Dataset


class _Counter:
    """A no-op async callback that counts its calls, so the check can prove every frame reached it."""

    __slots__ = ("calls", "last")

    def __init__(self) -> None:
        self.calls = 0
        self.last: Any = None

    async def __call__(self, obj: Any, receipt: float) -> None:
        self.calls += 1
        self.last = obj


async def native_feed(data: Dataset) -> tuple[Any, _Counter, _Counter]:
    """A ``BackpackFeed`` with a synchronised SOL_USDC book and warmed trade route, built offline."""
    import backpack  # noqa: F401  (registers BACKPACK)
    from backpack import compat
    from backpack.feed import BackpackFeed
    from backpack.transport import WsFrame

    books, trades = _Counter(), _Counter()
    feed = BackpackFeed(
        symbols=[STD_SYMBOL], channels=[compat.L2_BOOK, compat.TRADES],
        callbacks={compat.L2_BOOK: books, compat.TRADES: trades}, config={"log": {"disabled": True}},
    )  # fmt: skip
    # The benchmark syncs the book itself: a placeholder "fetch in flight" keeps the feed from starting one.
    feed._snapshot_tasks[BP_SYMBOL] = _NO_FETCH

    await feed._on_frame(WsFrame(data.bp_primer, RECEIPT))  # buffered; asks for the snapshot
    await feed._dispatch(feed.router.receive_snapshot(BP_SYMBOL, data.snapshot_body.encode(), RECEIPT))
    del feed._snapshot_tasks[BP_SYMBOL]
    await feed._on_frame(WsFrame(data.bp_trade_primer, RECEIPT))
    books.calls = trades.calls = 0
    return feed, books, trades


class _NoFetch:
    """Stands in for a snapshot task; a real fetch would mean the frames broke the sequence."""

    def cancel(self) -> None:
        pass


_NO_FETCH: Any = _NoFetch()


def _delivered(books: _Counter, trades: _Counter, data: Dataset, frames: list[str], depth: bool) -> str | None:
    """Both feed contenders end the same way: one callback per frame, and the last book equal to the data's."""
    calls = books.calls if depth else trades.calls
    if calls != len(frames):
        return f"{calls} callbacks for {len(frames)} frames"
    if not depth:
        return None
    book = books.last
    if book.sequence_number != SNAPSHOT_ID + len(frames):
        return f"sequence {book.sequence_number}"
    bids = sorted(book.book.bids.to_dict().items(), reverse=True)
    asks = sorted(book.book.asks.to_dict().items())
    return _compare("decimal", bids, asks, data)


class NativeFeed(Contender):
    name = "native_feed"
    requires = ("cryptofeed",)
    label = "native BackpackFeed (full path to a no-op callback)"

    async def setup(self, data: Dataset) -> None:
        from backpack.transport import WsFrame

        self.feed, self.books, self.trades = await native_feed(data)
        self.frame = WsFrame

    async def run(self, frames: list[str]) -> None:
        on_frame = self.feed._on_frame
        frame = self.frame
        for f in frames:
            await on_frame(frame(f, RECEIPT))

    def check(self, data: Dataset, frames: list[str], depth: bool) -> str | None:
        feed = self.feed
        if feed.metrics["internal_errors"] or feed.router.decoder.stats["errors"]:
            return "the feed reported errors"
        return _delivered(self.books, self.trades, data, frames, depth)


class CcxtFeed(Contender):
    name = "ccxt_feed"
    requires = ("ccxt", "cryptofeed")
    label = "ccxt-backed BackpackCcxtFeed (ccxt + book mirror + callback)"

    async def setup(self, data: Dataset) -> None:
        import ccxt.pro as ccxtpro

        from backpack import compat
        from backpack.ccxt_feed import BackpackCcxtFeed, _BookMirror

        self.books, self.trades = _Counter(), _Counter()
        feed = BackpackCcxtFeed(
            symbols=[STD_SYMBOL], channels=[compat.L2_BOOK, compat.TRADES],
            callbacks={compat.L2_BOOK: self.books, compat.TRADES: self.trades}, config={"log": {"disabled": True}},
        )  # fmt: skip
        ex = ccxtpro.backpack()
        ex.fetch = _refuse_network_async
        ex.set_markets([ex.parse_market(_CCXT_MARKET)])
        client = ex.client("wss://ws.backpack.exchange")
        raw = orjson.loads(data.snapshot_body)
        book = ex.parse_order_book(raw, CCXT_SYMBOL, START_US // 1000)
        book["nonce"] = int(raw["lastUpdateId"])
        ex.orderbooks[CCXT_SYMBOL] = ex.order_book(book)
        feed.exchange = ex
        mirror = feed._books[BP_SYMBOL] = _BookMirror(feed.id, STD_SYMBOL, feed.max_depth)
        self.book_handler = feed._book_handler(mirror)
        await self.book_handler(ex.orderbooks[CCXT_SYMBOL], RECEIPT / 1e6)  # the first hand-over: a snapshot
        client.handle_text_or_binary_message(data.bp_primer)
        client.handle_text_or_binary_message(data.bp_trade_primer)
        self.trade_handler = feed._trades_handler(STD_SYMBOL, CCXT_SYMBOL)
        await self.trade_handler(ex.trades[CCXT_SYMBOL][-1:], RECEIPT / 1e6)
        self.books.calls = self.trades.calls = 0
        self.ex, self.client, self.feed = ex, client, feed

    async def run(self, frames: list[str]) -> None:
        handle = self.client.handle_text_or_binary_message
        ex = self.ex
        receipt = RECEIPT / 1e6
        if '"depth' in frames[0][:30]:
            books = ex.orderbooks
            on_book = self.book_handler
            for f in frames:
                handle(f)
                await on_book(books[CCXT_SYMBOL], receipt)
        else:
            trades = ex.trades
            on_trades = self.trade_handler
            for f in frames:
                handle(f)
                await on_trades(trades[CCXT_SYMBOL][-1:], receipt)

    def check(self, data: Dataset, frames: list[str], depth: bool) -> str | None:
        return _delivered(self.books, self.trades, data, frames, depth)

    async def close(self) -> None:
        await self.ex.close()


def feed_latency(data: Dataset, repeats: int = 3) -> dict[str, float]:
    """Per-frame latency of the native feed path (frame in -> its callback returned), depth and trades
    interleaved as they arrive: msg/s, p50/p90/p99 µs, peak RSS and CPU, like ccxt's ``benchmarkWs``."""
    import asyncio
    import resource

    from backpack.transport import WsFrame

    frames = [f for pair in zip(data.bp_depth, data.bp_trades, strict=True) for f in pair]
    best: list[int] | None = None
    wall = cpu = 0.0
    clock = time.perf_counter_ns

    async def run() -> tuple[list[int], float, float]:
        feed, _books, _trades = await native_feed(data)
        on_frame = feed._on_frame
        samples = [0] * len(frames)
        c0, w0 = time.process_time(), time.perf_counter()
        for i, f in enumerate(frames):
            t0 = clock()
            await on_frame(WsFrame(f, RECEIPT))
            samples[i] = clock() - t0
        return samples, time.perf_counter() - w0, time.process_time() - c0

    for _ in range(repeats):
        samples, w, c = asyncio.run(run())
        samples.sort()
        if best is None or samples[len(samples) // 2] < best[len(best) // 2]:
            best, wall, cpu = samples, w, c
    assert best is not None
    n = len(best)

    def pct(q: float) -> float:
        return best[min(n - 1, int(q * n))] / 1000

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "frames": n, "msgs_per_s": n / wall, "feed_p50_us": pct(0.50), "feed_p90_us": pct(0.90),
        "feed_p99_us": pct(0.99), "cpu_percent": 100 * cpu / wall, "rss_mb": rss_mb,
    }  # fmt: skip


FEEDS: tuple[type[Contender], ...] = (NativeFeed, CcxtFeed)

__all__ = ["FEEDS", "CcxtFeed", "NativeFeed", "feed_latency", "native_feed", "_noop"]
