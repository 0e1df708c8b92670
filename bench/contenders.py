"""The things being timed, each driven offline from the same frames.

Every contender has an untimed ``setup`` (fresh state: a synchronised book at ``SNAPSHOT_ID``) and a
timed ``run`` over a list of frames, plus ``check`` which says what is wrong with its state after a
run (None when it matches the reference model), so a number is only reported for work that was done
correctly. ``run`` is a coroutine for everyone so the timer wraps each the same way; the async
contenders await their handler per frame exactly as their own connection loop would.
"""

from __future__ import annotations

import importlib.util
from decimal import Decimal
from typing import Any

import orjson

from backpack.protocol.events import BookUpdate
from backpack.protocol.messages import Decoder
from backpack.protocol.router import Router

from .frames import BN_SYMBOL, BP_SYMBOL, CCXT_SYMBOL, SNAPSHOT_ID, START_US, STD_SYMBOL, Dataset

RECEIPT = START_US  # the native core takes receipt time as an argument; a constant is fine here

# A /api/v1/markets row for ccxt.parse_market (field set of a live spot market).
_CCXT_MARKET = {
    "symbol": BP_SYMBOL, "baseSymbol": "SOL", "quoteSymbol": "USDC", "marketType": "SPOT",
    "orderBookState": "Open", "visible": True, "createdAt": "2025-01-21T06:34:54.691858",
    "filters": {
        "price": {"minPrice": "0.01", "maxPrice": None, "tickSize": "0.01"},
        "quantity": {"minQuantity": "0.01", "maxQuantity": None, "stepSize": "0.01"},
    },
}  # fmt: skip


class NetworkRefused(RuntimeError):
    """A contender tried to reach the network: the frames must have made it want a snapshot."""


def _refuse_network(*args: Any, **kwargs: Any) -> Any:
    raise NetworkRefused("the benchmark is offline; a contender asked for a REST call (book out of sync?)")


async def _refuse_network_async(*args: Any, **kwargs: Any) -> Any:
    _refuse_network()


def _compare(kind: str, got_b: list, got_a: list, want: Dataset) -> str | None:
    want_b, want_a = want.final.top()
    if kind == "float":
        want_b = [(float(p), float(q)) for p, q in want_b]
        want_a = [(float(p), float(q)) for p, q in want_a]
    if got_b != want_b:
        return f"bids differ from the model ({len(got_b)} vs {len(want_b)} levels)"
    if got_a != want_a:
        return f"asks differ from the model ({len(got_a)} vs {len(want_a)} levels)"
    return None


class Contender:
    name = ""
    label = ""
    requires: tuple[str, ...] = ()  # importable modules it needs; absent -> skipped, not crashed

    @classmethod
    def available(cls) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    async def setup(self, data: Dataset) -> None:
        pass

    async def run(self, frames: list[str]) -> None:
        raise NotImplementedError

    def check(self, data: Dataset, frames: list[str], depth: bool) -> str | None:
        return None

    async def close(self) -> None:
        pass


# --- native ------------------------------------------------------------------------------------


class Native(Contender):
    """``Router.receive_frame``: decode + book sync + events, the whole sans-I/O core (the active one:
    compiled when built, see backpack/protocol/speedups.py)."""

    name = "native"
    label = "native Router.receive_frame"
    implementation: str | None = None  # Router(implementation=...): None is what a feed gets

    async def setup(self, data: Dataset) -> None:
        r = Router(implementation=self.implementation)
        pending = r.receive_frame(data.bp_primer, RECEIPT)  # buffered -> FetchSnapshot; warms the route
        assert any(type(e).__name__ == "FetchSnapshot" for e in pending), pending
        out = r.receive_snapshot(BP_SYMBOL, data.snapshot_body.encode(), RECEIPT)
        assert out and type(out[0]) is BookUpdate and out[0].sequence == SNAPSHOT_ID, out
        r.receive_frame(data.bp_trade_primer, RECEIPT)  # a trade id outside the run: warms the route
        self.router = r
        self.outputs = 0
        self.good = 0

    async def run(self, frames: list[str]) -> None:
        receive = self.router.receive_frame
        n = 0
        for f in frames:
            n += len(receive(f, RECEIPT))
        self.outputs = n

    def check(self, data: Dataset, frames: list[str], depth: bool) -> str | None:
        stats = self.router.decoder.stats
        if stats["errors"]:
            return f"decoder reported {stats['errors']} errors"
        if self.outputs != len(frames):
            return f"{self.outputs} outputs for {len(frames)} frames"
        if not depth:
            return None
        sync = self.router.books.get(BP_SYMBOL)
        if sync.state != "synced" or sync.last_update_id != SNAPSHOT_ID + len(frames):
            return f"book not synced at the last sequence: {sync!r}"
        bids, asks = sync.book.top()
        return _compare("decimal", bids, asks, data)


class NativePure(Native):
    """The same on the pure-Python core, measured in the same run as the compiled one."""

    name = "native_pure"
    label = "native Router.receive_frame, pure-Python core"
    implementation = "python"


class NativeDecode(Contender):
    """``Decoder.decode`` alone (no book): splits the native cost into decoding vs. book keeping."""

    name = "native_decode"
    label = "native Decoder.decode only"

    async def setup(self, data: Dataset) -> None:
        self.decoder = Decoder()
        self.decoder.decode(data.bp_primer, RECEIPT)
        self.decoder.decode(data.bp_trade_primer, RECEIPT)

    async def run(self, frames: list[str]) -> None:
        decode = self.decoder.decode
        for f in frames:
            decode(f, RECEIPT)

    def check(self, data: Dataset, frames: list[str], depth: bool) -> str | None:
        stats = self.decoder.stats
        return f"decoder reported {stats['errors']} errors" if stats["errors"] else None


class Orjson(Contender):
    """JSON decoding alone: the floor any Python-level handler sits on."""

    name = "orjson"
    label = "orjson.loads only"

    async def run(self, frames: list[str]) -> None:
        loads = orjson.loads
        for f in frames:
            loads(f)


# --- ccxt.pro backpack ---------------------------------------------------------------------------


class Ccxt(Contender):
    """ccxt.pro backpack: ``client.handle_text_or_binary_message`` on a seeded, synchronised book."""

    name = "ccxt"
    requires = ("ccxt",)
    label = "ccxt.pro backpack handle_text_or_binary_message"

    async def setup(self, data: Dataset) -> None:
        import ccxt.pro as ccxtpro

        ex = ccxtpro.backpack()
        ex.fetch = _refuse_network_async  # ccxt's single HTTP entry point: never dial out
        ex.set_markets([ex.parse_market(_CCXT_MARKET)])
        self.client = ex.client("wss://ws.backpack.exchange")  # no connection is made
        raw = orjson.loads(data.snapshot_body)
        book = ex.parse_order_book(raw, CCXT_SYMBOL, START_US // 1000)
        book["nonce"] = int(raw["lastUpdateId"])
        ex.orderbooks[CCXT_SYMBOL] = ex.order_book(book)
        self.client.handle_text_or_binary_message(data.bp_primer)  # u == nonce: applied, changes nothing
        self.client.handle_text_or_binary_message(data.bp_trade_primer)
        self.ex = ex

    async def run(self, frames: list[str]) -> None:
        handle = self.client.handle_text_or_binary_message
        for f in frames:
            handle(f)

    def check(self, data: Dataset, frames: list[str], depth: bool) -> str | None:
        if not depth:
            trades = self.ex.trades.get(CCXT_SYMBOL)
            last = trades[-1] if trades else None
            want = orjson.loads(frames[-1])["data"]["t"]
            return None if last and last["id"] == str(want) else "last trade missing"
        ob = self.ex.orderbooks[CCXT_SYMBOL]
        if ob["nonce"] != SNAPSHOT_ID + len(frames):
            return f"nonce {ob['nonce']}"
        return _compare("float", [tuple(x) for x in ob["bids"]], [tuple(x) for x in ob["asks"]], data)

    async def close(self) -> None:
        await self.ex.close()


# --- cryptofeed Binance ----------------------------------------------------------------------------


async def _noop(*_: Any) -> None:
    pass


def _binance_offline() -> Any:
    """Binance with its symbol table filled in by hand, so construction never reaches the network."""
    from cryptofeed.defines import BINANCE, SPOT
    from cryptofeed.symbols import Symbols

    Symbols.set(
        BINANCE,
        {STD_SYMBOL: BN_SYMBOL},
        {"tick_size": {STD_SYMBOL: "0.01"}, "instrument_type": {STD_SYMBOL: SPOT}},
    )
    from cryptofeed.exchanges.binance import Binance

    return Binance


class CryptofeedBinance(Contender):
    """cryptofeed's ``Binance.message_handler`` (→ ``_book`` / ``_trade``) with no-op async callbacks."""

    name = "cryptofeed_binance"
    requires = ("cryptofeed",)
    label = "cryptofeed Binance.message_handler"

    async def setup(self, data: Dataset) -> None:
        from cryptofeed.defines import L2_BOOK, TRADES
        from cryptofeed.types import OrderBook

        feed = _binance_offline()(
            symbols=[STD_SYMBOL], channels=[L2_BOOK, TRADES], callbacks={L2_BOOK: _noop, TRADES: _noop}
        )
        # What Binance._snapshot stores after its REST call: the book and lastUpdateId per pair.
        feed._l2_book[STD_SYMBOL] = OrderBook(
            feed.id, STD_SYMBOL, max_depth=feed.max_depth,
            bids={Decimal(p): Decimal(q) for p, q in data.snapshot_bids},
            asks={Decimal(p): Decimal(q) for p, q in data.snapshot_asks},
        )  # fmt: skip
        feed.last_update_id[STD_SYMBOL] = SNAPSHOT_ID
        feed._snapshot = _refuse_network_async  # after a detected gap it would fetch from Binance
        self.feed = feed

    async def run(self, frames: list[str]) -> None:
        handler = self.feed.message_handler
        ts = START_US / 1e6
        for f in frames:
            await handler(f, None, ts)

    def check(self, data: Dataset, frames: list[str], depth: bool) -> str | None:
        if not depth:
            return None
        if self.feed.last_update_id.get(STD_SYMBOL) != SNAPSHOT_ID + len(frames):
            return f"last_update_id {self.feed.last_update_id.get(STD_SYMBOL)}"
        book = self.feed._l2_book[STD_SYMBOL].book
        bids = sorted(book.bids.to_dict().items(), reverse=True)
        asks = sorted(book.asks.to_dict().items())
        return _compare("decimal", bids, asks, data)


ALL: tuple[type[Contender], ...] = (Native, NativePure, NativeDecode, Orjson, Ccxt, CryptofeedBinance)


def frames_for(contender: Contender, data: Dataset, depth: bool) -> list[str]:
    """Binance frames for cryptofeed's Binance handler, Backpack frames for everyone else."""
    if isinstance(contender, CryptofeedBinance):
        return data.bn_depth if depth else data.bn_trades
    return data.bp_depth if depth else data.bp_trades
