"""``BackpackCcxtFeed``, the ccxt-backed legacy feed: conversions, resilience, the flag, and end to end.

The end-to-end tests run the feed's own lifecycle (2.4.1: ``start(loop)``/``shutdown()``; 3.0.1:
``run(stop_event)``) against a frozen loopback server that the test steps, and compare every callback
with the frames the server wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest
from ccxt.async_support.base.ws.cache import ArrayCache

import backpack  # noqa: F401 - registers BACKPACK with cryptofeed
from backpack import ccxt_feed, compat
from backpack.ccxt_feed import BackpackCcxtFeed, _BookMirror, candle_start, ccxt_options, point_at, to_decimal
from backpack.config import NATIVE_ENV, PRODUCTION_REST_URL, PRODUCTION_WS_URL, BackpackConfig
from backpack.feed import BackpackFeed
from harness.pytest_plugin import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET, running_server

from .feed_helpers import until

TOP_N = 10


# --- helpers ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(feed: Any) -> AsyncIterator[None]:
    """Drive the feed through the lifecycle its cryptofeed line uses."""
    if compat.CRYPTOFEED_MAJOR >= 3:
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    else:
        feed.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await feed.shutdown()


def sent(server: Any, stream: str) -> list[dict[str, Any]]:
    return [f["data"] for f in map(json.loads, server.frames()) if f.get("stream") == stream]


def top(levels: dict[Decimal, Decimal], reverse: bool, n: int = TOP_N) -> list[tuple[Decimal, Decimal]]:
    return sorted(levels.items(), reverse=reverse)[:n]


class Recorder:
    def __init__(self) -> None:
        self.items: list[tuple[Any, float]] = []

    async def __call__(self, obj: Any, receipt: float) -> None:
        self.items.append((obj, receipt))

    def of(self, symbol: str) -> list[Any]:
        return [o for o, _ in self.items if o.symbol == symbol]


class BookRecorder:
    """Copies each book at callback time: cryptofeed hands the same mutable OrderBook every time."""

    def __init__(self) -> None:
        self.updates: dict[str, list[tuple[int | None, dict | None, dict, dict]]] = {}

    async def __call__(self, book: Any, receipt: float) -> None:
        assert isinstance(book, compat.OrderBook)
        self.updates.setdefault(book.symbol, []).append(
            (book.sequence_number, book.delta, book.book.bids.to_dict(), book.book.asks.to_dict())
        )


# --- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.1, Decimal("0.1")),
        (86700.0, Decimal("86700")),
        (1e-08, Decimal("0.00000001")),
        (123456.789012, Decimal("123456.789012")),
        (7, Decimal(7)),
        ("1.50", Decimal("1.50")),
        (Decimal("2.5"), Decimal("2.5")),
    ],
)
def test_to_decimal_recovers_the_shortest_text(value: Any, expected: Decimal) -> None:
    got = to_decimal(value)
    assert isinstance(got, Decimal) and got == expected


@pytest.mark.parametrize("value", [None, True, float("nan"), float("inf"), "abc", "NaN", [1]])
def test_to_decimal_refuses_non_numbers(value: Any) -> None:
    assert to_decimal(value) is None


def test_to_decimal_precision_limit_is_real() -> None:
    """The documented limit of the legacy path: more than ~15-17 significant digits do not survive a float."""
    wire = "0.123456789012345678"
    assert to_decimal(float(wire)) != Decimal(wire)


@pytest.mark.parametrize(
    ("stop", "interval", "start"),
    [
        (1_754_006_460, "1m", 1_754_006_400),
        (1_754_006_401, "1s", 1_754_006_400),
        (1_754_524_800, "1w", 1_753_920_000),
        (1_754_006_400, "1month", 1_751_328_000),  # 2025-08-01 closes July (starts 2025-07-01)
        (1_735_689_600, "1month", 1_733_011_200),  # 2025-01-01 closes December 2024
    ],
)
def test_candle_start_from_close_time(stop: int, interval: str, start: int) -> None:
    assert candle_start(float(stop), interval) == start


async def test_point_at_overrides_only_this_instance() -> None:
    ex = ccxtpro.backpack()
    other = ccxtpro.backpack()
    try:
        point_at(ex, "http://127.0.0.1:1234/", "ws://127.0.0.1:1234")
        assert ex.urls["api"]["public"] == ex.urls["api"]["private"] == "http://127.0.0.1:1234"
        assert ex.urls["api"]["ws"] == {"public": "ws://127.0.0.1:1234", "private": "ws://127.0.0.1:1234"}
        assert other.urls["api"]["public"] == PRODUCTION_REST_URL
        assert other.urls["api"]["ws"]["public"] == PRODUCTION_WS_URL
    finally:
        await ex.close()
        await other.close()


def test_ccxt_options_carry_credentials_window_and_proxies() -> None:
    cfg = BackpackConfig.from_dict(
        {
            "private_key": TEST_ACCOUNT_SECRET,
            "window_ms": 7000,
            "rest_proxy": "socks5://127.0.0.1:1080",
            "ws_proxy": "http://127.0.0.1:3128",
        }
    )
    options = ccxt_options(cfg)
    assert options["apiKey"] == TEST_ACCOUNT_API_KEY
    assert options["secret"] == TEST_ACCOUNT_SECRET
    assert options["options"]["recvWindow"] == "7000"
    assert options["socksProxy"] == "socks5://127.0.0.1:1080"
    assert options["wsProxy"] == "http://127.0.0.1:3128"
    bare = ccxt_options(BackpackConfig.from_dict({}))
    assert "apiKey" not in bare and "secret" not in bare


async def test_make_exchange_points_at_sandbox_only_when_configured() -> None:
    prod = BackpackCcxtFeed(
        symbols=["BTC-USDC"], channels=[compat.TRADES], callbacks={compat.TRADES: Recorder()}
    )
    sandbox = BackpackCcxtFeed(
        backpack_config={"rest_url": "http://127.0.0.1:9", "ws_url": "ws://127.0.0.1:9"},
        symbols=["BTC-USDC"],
        channels=[compat.TRADES],
        callbacks={compat.TRADES: Recorder()},
    )
    a, b = prod._make_exchange(), sandbox._make_exchange()
    try:
        assert a.urls["api"]["public"] == PRODUCTION_REST_URL
        assert a.urls["api"]["ws"]["public"] == PRODUCTION_WS_URL
        assert b.urls["api"]["public"] == "http://127.0.0.1:9"
        assert b.urls["api"]["ws"]["private"] == "ws://127.0.0.1:9"
    finally:
        await a.close()
        await b.close()


def test_book_mirror_snapshot_then_deltas_and_depth() -> None:
    mirror = _BookMirror("BACKPACK", "BTC-USDC", depth=2)
    changed, delta = mirror.update(
        {"bids": [[10.5, 1.0], [10.0, 2.0], [9.5, 3.0]], "asks": [[11.0, 1.5]], "nonce": 5}
    )
    assert changed and delta is None  # the first update is a snapshot
    assert mirror.book.book.bids.to_dict() == {Decimal("10.5"): Decimal("1"), Decimal("10"): Decimal("2")}
    assert mirror.sequence == 5

    changed, delta = mirror.update({"bids": [[10.0, 2.5], [9.5, 3.0]], "asks": [[11.0, 1.5]], "nonce": 6})
    assert changed
    assert sorted(delta[compat.BID]) == [(Decimal("9.5"), Decimal("3")), (Decimal("10"), Decimal("2.5")),
                                         (Decimal("10.5"), Decimal("0"))]  # fmt: skip
    assert delta[compat.ASK] == []
    assert mirror.book.book.bids.to_dict() == {Decimal("10"): Decimal("2.5"), Decimal("9.5"): Decimal("3")}

    changed, _ = mirror.update({"bids": [[10.0, 2.5], [9.5, 3.0]], "asks": [[11.0, 1.5]], "nonce": 6})
    assert not changed  # ccxt resolved again with nothing new

    mirror.reset()
    changed, delta = mirror.update({"bids": [[10.0, 2.5]], "asks": [], "nonce": 9})
    assert changed and delta is None
    assert mirror.book.book.asks.to_dict() == {}


# --- construction ---------------------------------------------------------------------------------


def test_unsupported_channel_names_the_native_flag() -> None:
    with pytest.raises(ValueError, match="native_enabled") as err:
        BackpackCcxtFeed(
            symbols=["BTC-USDC-PERP"], channels=[compat.FUNDING], callbacks={compat.FUNDING: Recorder()}
        )
    assert compat.FUNDING in str(err.value)


def test_private_channels_need_credentials() -> None:
    with pytest.raises(ValueError, match="need credentials"):
        BackpackCcxtFeed(
            symbols=["BTC-USDC"], channels=[compat.ORDER_INFO], callbacks={compat.ORDER_INFO: Recorder()}
        )
    feed = BackpackCcxtFeed(
        backpack_config={"private_key": TEST_ACCOUNT_SECRET},
        symbols=["BTC-USDC"],
        channels=[compat.ORDER_INFO],
        callbacks={compat.ORDER_INFO: Recorder()},
    )
    assert "order_info" in feed.subscription
    assert TEST_ACCOUNT_SECRET not in repr(vars(feed))


def test_symbols_convert_by_rule() -> None:
    feed = BackpackCcxtFeed(
        symbols=["AAPL.US-USDC-PERP", "kSHIB-USDC-PERP"],
        channels=[compat.TRADES],
        callbacks={compat.TRADES: Recorder()},
    )
    assert sorted(feed.subscription["trades"]) == ["AAPL.US_USDC_PERP", "kSHIB_USDC_PERP"]
    assert feed.exchange_symbol_to_std_symbol("kSHIB_USDC_PERP") == "kSHIB-USDC-PERP"


# --- resilience, with a scripted stand-in for ccxt ------------------------------------------------


class ScriptedExchange:
    """Answers like ccxt.pro.backpack: each ``watch_trades`` call takes the next scripted outcome."""

    def __init__(self, script: list[Any], market_failures: int = 0) -> None:
        self.script = list(script)
        self.market_failures = market_failures
        self.markets_by_id: dict[str, list[dict[str, Any]]] = {}
        self.closed = False
        self.options: dict[str, Any] | None = None

    async def load_markets(self) -> None:
        if self.market_failures:
            self.market_failures -= 1
            raise ccxt.NetworkError("backpack GET /api/v1/markets connection refused")
        self.markets_by_id = {"BTC_USDC": [{"symbol": "BTC/USDC", "id": "BTC_USDC"}]}

    async def watch_trades(self, symbol: str) -> list[dict[str, Any]]:
        assert symbol == "BTC/USDC"
        if not self.script:
            await asyncio.Event().wait()  # nothing more: block like a quiet stream
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def close(self) -> None:
        self.closed = True


def _trade(i: int, price: float, amount: float) -> dict[str, Any]:
    return {"id": str(i), "side": "buy", "price": price, "amount": amount, "timestamp": 1_754_006_400_123 + i}


async def test_ccxt_errors_are_retried_and_the_exchange_closed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ccxt_feed, "BACKOFF_BASE", 0.001)
    fake = ScriptedExchange(
        [
            ccxt.NetworkError(f"socket closed while signing with {TEST_ACCOUNT_SECRET}"),
            ccxt.ExchangeError("backpack Invalid stream"),
            [_trade(1, 0.1, 3.0)],
            [_trade(2, 86700.0, 0.0001), _trade(3, 1e-08, 2.5)],
        ],
        market_failures=2,
    )
    options: list[dict[str, Any]] = []
    trades = Recorder()
    feed = BackpackCcxtFeed(
        backpack_config={"private_key": TEST_ACCOUNT_SECRET},
        exchange_factory=lambda o: options.append(o) or fake,
        symbols=["BTC-USDC"],
        channels=[compat.TRADES],
        callbacks={compat.TRADES: trades},
    )
    with caplog.at_level(logging.INFO, logger="backpack.ccxt_feed"):
        async with running(feed):
            await until(lambda: len(trades.items) == 3, "three trades")
    assert fake.closed
    assert feed.metrics["errors"] == 4  # two market loads, two watch failures
    got = [(t.id, t.price, t.amount, t.side, t.timestamp) for t, _ in trades.items]
    assert got == [
        ("1", Decimal("0.1"), Decimal("3"), "buy", 1_754_006_400.124),
        ("2", Decimal("86700"), Decimal("0.0001"), "buy", 1_754_006_400.125),
        ("3", Decimal("0.00000001"), Decimal("2.5"), "buy", 1_754_006_400.126),
    ]
    assert all(isinstance(t, compat.Trade) and t.symbol == "BTC-USDC" for t, _ in trades.items)
    assert all(isinstance(r, float) for _, r in trades.items)
    assert options[0]["apiKey"] == TEST_ACCOUNT_API_KEY
    text = caplog.text
    assert "ccxt path active" in text
    assert text.count("retrying") == 4
    assert TEST_ACCOUNT_SECRET not in text and "<redacted>" in text


async def test_a_failing_callback_drops_one_update_not_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = ScriptedExchange([[_trade(1, 1.0, 1.0)], [_trade(2, 2.0, 1.0)]])
    seen: list[str] = []

    async def flaky(trade: Any, receipt: float) -> None:
        seen.append(trade.id)
        if trade.id == "1":
            raise RuntimeError("consumer bug")

    feed = BackpackCcxtFeed(
        exchange_factory=lambda o: fake,
        symbols=["BTC-USDC"],
        channels=[compat.TRADES],
        callbacks={compat.TRADES: flaky},
    )
    async with running(feed):
        await until(lambda: seen == ["1", "2"], "both trades")
    # a consumer's exception is the consumer's: counted against that callback, nothing dropped
    assert feed.callback_errors == {"test_a_failing_callback_drops_one_update_not_the_stream.<locals>.flaky": 1}
    assert feed.metrics["dropped"] == 0
    assert fake.closed


async def test_unknown_symbol_is_skipped_and_others_run() -> None:
    fake = ScriptedExchange([[_trade(1, 1.0, 1.0)]])
    trades = Recorder()
    feed = BackpackCcxtFeed(
        exchange_factory=lambda o: fake,
        symbols=["BTC-USDC", "NOPE-USDC"],
        channels=[compat.TRADES],
        callbacks={compat.TRADES: trades},
    )
    async with running(feed):
        await until(lambda: len(trades.items) == 1, "the BTC trade")
    assert trades.items[0][0].symbol == "BTC-USDC"


class HangingMarkets(ScriptedExchange):
    async def load_markets(self) -> None:
        self.loading = True
        await asyncio.Event().wait()


async def test_stop_interrupts_a_hanging_market_load() -> None:
    fake = HangingMarkets([])
    feed = BackpackCcxtFeed(
        exchange_factory=lambda o: fake,
        symbols=["BTC-USDC"],
        channels=[compat.TRADES],
        callbacks={compat.TRADES: Recorder()},
    )
    if compat.CRYPTOFEED_MAJOR >= 3:
        stop = asyncio.Event()
        task = asyncio.create_task(feed.run(stop))
        await until(lambda: getattr(fake, "loading", False), "the market load")
        stop.set()
        await asyncio.wait_for(task, 5)  # would hang here if stop were ignored
    else:
        feed.start(asyncio.get_running_loop())
        await until(lambda: getattr(fake, "loading", False), "the market load")
        feed.stop()
        await asyncio.wait_for(asyncio.shield(feed._task), 5)
        await feed.shutdown()
    assert fake.closed


# --- trades ccxt cached while a callback ran --------------------------------------------------------


class CachingExchange(ScriptedExchange):
    """ccxt's trade path in miniature, using ccxt's own ``ArrayCache`` and ``getLimit``.

    As in ``ccxt.pro.backpack``: a frame is appended to ``trades[symbol]`` and resolves the pending
    ``watch_trades`` if there is one; ``watch_trades`` waits for a frame that arrives after the call
    and returns the trades counted since its previous return (``newUpdates``).
    """

    def __init__(self, trades_limit: int = 1000) -> None:
        super().__init__([])
        self.options = {"tradesLimit": trades_limit}
        self.trades: dict[str, Any] = {}
        self.waiter: asyncio.Future[None] | None = None
        self.calls = 0

    def frame(self, i: int) -> None:
        cache = self.trades.setdefault("BTC/USDC", ArrayCache(self.options["tradesLimit"]))
        cache.append({**_trade(i, 1.0, 1.0), "symbol": "BTC/USDC"})
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def watch_trades(self, symbol: str) -> list[dict[str, Any]]:
        self.calls += 1
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter
        cache = self.trades[symbol]
        n = cache.getLimit(symbol, None)
        return list(cache)[-n:] if n else []


async def _blocked_first_trade(
    fake: CachingExchange, later: range
) -> tuple[BackpackCcxtFeed, list[str], Any]:
    """Run a feed whose callback blocks on trade 1 while ``later`` trades reach ccxt's cache."""
    seen: list[str] = []
    gate = asyncio.Event()

    async def slow(trade: Any, receipt: float) -> None:
        seen.append(trade.id)
        if trade.id == "1":
            await gate.wait()

    feed = BackpackCcxtFeed(
        exchange_factory=lambda o: fake,
        symbols=["BTC-USDC"],
        channels=[compat.TRADES],
        callbacks={compat.TRADES: slow},
    )
    cm = running(feed)
    await cm.__aenter__()
    await until(lambda: fake.calls == 1, "the first watch_trades")
    fake.frame(1)
    await until(lambda: seen == ["1"], "trade 1 in the callback")
    for i in later:
        fake.frame(i)  # no watch_trades is pending: ccxt only caches these
    gate.set()
    return feed, seen, cm


async def test_trades_cached_during_a_callback_are_delivered_without_another_frame() -> None:
    """Regression: 10 trades cached while the callback ran, then a quiet stream; before the fix 1 of 11 arrived."""
    fake = CachingExchange()
    _, seen, cm = await _blocked_first_trade(fake, range(2, 12))
    try:
        await until(lambda: len(seen) == 11, "the ten cached trades")
        assert fake.calls == 2  # delivered from the cache while ccxt still waits for a new frame
        fake.frame(12)  # ccxt's next batch repeats 2..11 (counted since its last return) plus 12
        await until(lambda: fake.calls == 3, "the next watch_trades")
    finally:
        await cm.__aexit__(None, None, None)
    assert seen == [str(i) for i in range(1, 13)]


async def test_trades_evicted_from_ccxts_cache_before_the_feed_reads_it_are_the_documented_loss() -> None:
    """The remaining limit: more than ``tradesLimit`` trades during one callback lose the oldest, nothing else."""
    fake = CachingExchange(trades_limit=4)
    _, seen, cm = await _blocked_first_trade(fake, range(2, 12))
    try:
        await until(lambda: len(seen) == 5, "the cached trades")
        fake.frame(12)
        await until(lambda: "12" in seen, "trade 12")
    finally:
        await cm.__aexit__(None, None, None)
    # 2..7 were pushed out of ccxt's 4-trade cache before the callback returned.
    assert seen == ["1", "8", "9", "10", "11", "12"]


async def _publish_trades(server: Any, stream: str, n: int) -> None:
    """Step the frozen market until it has published ``n`` more frames on ``stream``, then send them."""
    published = 0
    while published < n:
        published += sum(1 for em in server.step() if em.stream == stream)
    await server.flush()


async def test_every_trade_the_ccxt_connection_received_is_delivered_once_with_a_slow_callback() -> None:
    """Real ccxt over loopback: trades received while a callback blocks are delivered once, with no later frame."""
    async with running_server(seed=11, rate=0) as server:
        gate = asyncio.Event()
        seen: list[str] = []

        async def slow(trade: Any, receipt: float) -> None:
            seen.append(trade.id)
            if len(seen) == 1:
                await gate.wait()

        feed = BackpackCcxtFeed(
            backpack_config={"rest_url": server.rest_url, "ws_url": server.ws_url},
            symbols=["BTC-USDC"],
            channels=[compat.TRADES],
            callbacks={compat.TRADES: slow},
        )
        async with running(feed):
            await server.wait_subscribed("trade.BTC_USDC")
            await _publish_trades(server, "trade.BTC_USDC", 1)
            await until(lambda: len(seen) == 1, "the first trade in the callback")
            await _publish_trades(server, "trade.BTC_USDC", 10)
            want = [str(d["t"]) for d in sent(server, "trade.BTC_USDC")]
            cache = feed.exchange.trades["BTC/USDC"]
            await until(lambda: len(cache) == len(want), "ccxt caching every frame")
            gate.set()
            await until(lambda: len(seen) == len(want), "every received trade, without a later frame")
            await _publish_trades(server, "trade.BTC_USDC", 3)
            want = [str(d["t"]) for d in sent(server, "trade.BTC_USDC")]
            await until(lambda: len(seen) >= len(want), "the later trades")
    assert len(want) >= 14
    assert sorted(seen, key=int) == want and len(set(seen)) == len(seen)


# --- the flag -------------------------------------------------------------------------------------


def _handler(tmp_path: Any, section: dict[str, Any] | None = None) -> Any:
    from cryptofeed import FeedHandler

    config: dict[str, Any] = {"log": {"filename": str(tmp_path / "fh.log"), "level": "WARNING"}}
    if section is not None:
        config["backpack"] = section
    return FeedHandler(config=config)


def _add(fh: Any) -> Any:
    fh.add_feed(
        "BACKPACK", symbols=["BTC-USDC"], channels=[compat.TRADES], callbacks={compat.TRADES: Recorder()}
    )
    return fh.feeds[-1]


@pytest.mark.parametrize(
    ("env", "section", "expected"),
    [
        ("0", None, BackpackCcxtFeed),
        ("false", None, BackpackCcxtFeed),
        ("1", None, BackpackFeed),
        (None, None, BackpackFeed),
        (None, {"native_enabled": False}, BackpackCcxtFeed),
        (None, {"native_enabled": True}, BackpackFeed),
        ("1", {"native_enabled": False}, BackpackFeed),  # the environment wins over the file
        ("0", {"native_enabled": True}, BackpackCcxtFeed),
    ],
)
def test_flag_selects_the_implementation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, env: str | None, section: dict | None, expected: type
) -> None:
    if env is None:
        monkeypatch.delenv(NATIVE_ENV, raising=False)
    else:
        monkeypatch.setenv(NATIVE_ENV, env)
    feed = _add(_handler(tmp_path, section))
    assert type(feed) is expected
    assert feed.id == "BACKPACK"


# --- end to end against the loopback server -------------------------------------------------------

SYMBOLS = {"BTC-USDC": "BTC_USDC", "SOL-USDC-PERP": "SOL_USDC_PERP"}


async def test_public_channels_match_the_server() -> None:
    async with running_server(seed=11, rate=0) as server:
        trades, tickers, books = Recorder(), Recorder(), BookRecorder()
        feed = BackpackCcxtFeed(
            backpack_config={"rest_url": server.rest_url, "ws_url": server.ws_url},
            symbols=list(SYMBOLS),
            channels=[compat.TRADES, compat.L2_BOOK, compat.TICKER],
            callbacks={compat.TRADES: trades, compat.L2_BOOK: books, compat.TICKER: tickers},
        )
        async with running(feed):
            for native in SYMBOLS.values():
                for kind in ("trade", "depth", "bookTicker"):
                    await server.wait_subscribed(f"{kind}.{native}")
            # ccxt asks for its REST snapshot after 11 cached deltas per symbol.
            counts = dict.fromkeys(SYMBOLS.values(), 0)
            while min(counts.values()) < 15:
                for em in server.step():
                    if em.stream.startswith("depth.") and em.symbol in counts and em.stream.count(".") == 1:
                        counts[em.symbol] += 1
            await server.flush()
            await until(lambda: all(s in books.updates for s in SYMBOLS), "first books")
            for _ in range(3):
                server.step(40)
                await server.flush()
                for std, native in SYMBOLS.items():
                    seq = server.market.sequence(native)
                    await until(
                        lambda std=std, seq=seq: books.updates[std][-1][0] == seq, f"{std} book at u={seq}"
                    )
                    _, _, bids, asks = books.updates[std][-1]
                    truth = server.book(native)
                    assert top(bids, reverse=True) == top(truth["bids"], reverse=True)
                    assert top(asks, reverse=False) == top(truth["asks"], reverse=False)
                    assert bids == truth["bids"] and asks == truth["asks"]
            want_trades = {std: sent(server, f"trade.{native}") for std, native in SYMBOLS.items()}
            await until(
                lambda: all(len(trades.of(s)) == len(w) for s, w in want_trades.items()), "all trades"
            )
            want_bbo = {std: sent(server, f"bookTicker.{native}") for std, native in SYMBOLS.items()}
            await until(
                lambda: all(
                    tickers.of(s) and tickers.of(s)[-1].bid == Decimal(w[-1]["b"])
                    for s, w in want_bbo.items()
                ),
                "last tickers",
            )

    for std in SYMBOLS:
        # Trades: every one the server sent, once, with Decimal values and float-second timestamps.
        want = want_trades[std]
        assert len(want) >= 5
        got = sorted((int(t.id), t.price, t.amount, t.side, t.timestamp) for t in trades.of(std))
        assert got == sorted(
            (
                d["t"],
                Decimal(d["p"]),
                Decimal(d["q"]),
                "sell" if d["m"] else "buy",
                (int(d["E"]) // 1000) / 1000,
            )
            for d in want
        )
        assert all(isinstance(t, compat.Trade) and isinstance(t.price, Decimal) for t in trades.of(std))

        # Books: a snapshot first, then deltas that rebuild exactly the books handed to callbacks.
        updates = books.updates[std]
        seq0, delta0, bids, asks = updates[0]
        assert delta0 is None
        rebuilt = {compat.BID: dict(bids), compat.ASK: dict(asks)}
        for seq, delta, want_bids, want_asks in updates[1:]:
            assert delta is not None and seq >= seq0
            for side in (compat.BID, compat.ASK):
                for price, size in delta[side]:
                    if size == 0:
                        rebuilt[side].pop(price, None)
                    else:
                        rebuilt[side][price] = size
            assert rebuilt[compat.BID] == want_bids and rebuilt[compat.ASK] == want_asks
            seq0 = seq

        # Ticker: best bid/offer, each one a frame the server sent (ccxt may coalesce, never invent).
        frames = {(Decimal(d["b"]), Decimal(d["a"]), (int(d["E"]) // 1000) / 1000) for d in want_bbo[std]}
        got_bbo = tickers.of(std)
        assert got_bbo and all(isinstance(t, compat.Ticker) for t in got_bbo)
        assert all((t.bid, t.ask, t.timestamp) in frames for t in got_bbo)
        last = want_bbo[std][-1]
        assert (got_bbo[-1].bid, got_bbo[-1].ask) == (Decimal(last["b"]), Decimal(last["a"]))


async def test_candles_are_reported_closed_when_the_next_starts() -> None:
    async with running_server(seed=5, rate=0) as server:
        candles = Recorder()
        feed = BackpackCcxtFeed(
            backpack_config={"rest_url": server.rest_url, "ws_url": server.ws_url},
            symbols=["BTC-USDC"],
            channels=[compat.CANDLES],
            candle_interval="1m",
            callbacks={compat.CANDLES: candles},
        )
        async with running(feed):
            await server.wait_subscribed("kline.1m.BTC_USDC")
            server.step(20 * 190)  # 3 min 10 s of virtual time: three candles close, a fourth is open
            await server.flush()
            await until(lambda: len(candles.items) >= 3, "closed candles")
            frames = sent(server, "kline.1m.BTC_USDC")

    last_push: dict[float, dict[str, Any]] = {}
    for d in frames:
        last_push[_iso_seconds(d["T"])] = d  # the final state of each candle, keyed by its close time
    closed_on_wire = sorted(stop for stop, d in last_push.items() if d["X"])
    assert len(closed_on_wire) == 3 and len(frames) > 3 * 50  # many pushes per candle
    got = [c for c, _ in candles.items]
    assert all(isinstance(c, compat.Candle) and c.closed and c.interval == "1m" for c in got)
    assert [c.stop for c in got] == closed_on_wire  # each closed candle once, in order; the open one not yet
    for c in got:
        d = last_push[c.stop]
        assert c.start == c.stop - 60 == _iso_seconds(d["t"])
        assert (c.open, c.high, c.low, c.close, c.volume) == tuple(Decimal(d[k]) for k in "ohlcv")


def _iso_seconds(text: str) -> float:
    import calendar
    import time

    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))


# ccxt's mapping of the wire order status ``X`` (kept by the legacy path).
CCXT_STATUS = {
    "New": "open",
    "Filled": "closed",
    "Cancelled": "canceled",
    "Expired": "canceled",
    "PartiallyFilled": "open",
    "TriggerPending": "open",
    "TriggerFailed": "rejected",
}
PRIVATE = {"SOL-USDC-PERP": "SOL_USDC_PERP", "kSHIB-USDC-PERP": "kSHIB_USDC_PERP"}


async def test_private_channels_match_the_server() -> None:
    async with running_server(seed=3, rate=0) as server:
        orders, fills, positions = Recorder(), Recorder(), Recorder()
        feed = BackpackCcxtFeed(
            backpack_config={
                "rest_url": server.rest_url,
                "ws_url": server.ws_url,
                "private_key": TEST_ACCOUNT_SECRET,
            },
            symbols=list(PRIVATE),
            channels=[compat.ORDER_INFO, compat.FILLS, compat.POSITIONS],
            callbacks={compat.ORDER_INFO: orders, compat.FILLS: fills, compat.POSITIONS: positions},
        )
        async with running(feed):
            for native in PRIVATE.values():
                await server.wait_subscribed(f"account.orderUpdate.{native}")
                await server.wait_subscribed(f"account.positionUpdate.{native}")
            for _ in range(10):
                server.step(40)
                await server.flush()
                await asyncio.sleep(0.05)  # let the feed drain between batches (fewer coalesced updates)
            wire_orders = {s: sent(server, f"account.orderUpdate.{n}") for s, n in PRIVATE.items()}
            wire_positions = {s: sent(server, f"account.positionUpdate.{n}") for s, n in PRIVATE.items()}

            def last_states_arrived() -> bool:
                for std, frames in wire_orders.items():
                    final = {d["i"]: CCXT_STATUS.get(d["X"], d["X"]) for d in frames}
                    seen = {o.id: o.status for o in orders.of(std)}
                    if seen != final:
                        return False
                return all(len(positions.of(s)) > 0 for s, w in wire_positions.items() if w)

            await until(last_states_arrived, "the final state of every order")

    assert sum(map(len, wire_orders.values())) >= 10 and sum(map(len, wire_positions.values())) >= 3
    for std, frames in wire_orders.items():
        by_id: dict[str, list[dict[str, Any]]] = {}
        for d in frames:
            by_id.setdefault(d["i"], []).append(d)
        for o in orders.of(std):
            assert isinstance(o, compat.OrderInfo)
            # Each report is one of the states the server sent for that order (ccxt may coalesce, never invent).
            assert any(
                o.status == CCXT_STATUS.get(d["X"], d["X"])
                and o.price == Decimal(d["p"])
                # ccxt reads only q: a trigger order's size (Y, while q is "0") is lost -> None
                and o.amount == (None if d.get("Y") and Decimal(d["q"]) == 0 else Decimal(d["q"]))
                and o.side == ("buy" if d["S"] == "Bid" else "sell")
                and o.timestamp == (int(d["E"]) // 1000) / 1000
                for d in by_id[o.id]
            ), o
        wire_fills = {str(d["t"]): d for d in frames if d["e"] == "orderFill"}
        for f in fills.of(std):
            assert isinstance(f, compat.Fill)
            d = wire_fills[f.id]
            assert (f.order_id, f.price, f.amount, f.fee) == (
                d["i"],
                Decimal(d["L"]),
                Decimal(d["l"]),
                Decimal(d["n"]),
            )
            assert f.liquidity == (compat.MAKER if d["m"] else compat.TAKER)
    assert sum(len(fills.of(s)) for s in PRIVATE) >= 1
    for std, frames in wire_positions.items():
        for p in positions.of(std):
            assert isinstance(p, compat.Position)
            # Known ccxt deviation: entry price is read from b (break-even), size from Q.
            assert any(
                p.entry_price == Decimal(d["b"]) and abs(p.position) == Decimal(d["Q"]) for d in frames
            ), p
        if frames:
            last, got = frames[-1], positions.of(std)[-1]
            assert got.entry_price == Decimal(last["b"])
            assert (got.position < 0) == (Decimal(last["q"]) < 0)


async def test_feed_recovers_after_the_socket_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ccxt_feed, "BACKOFF_BASE", 0.01)
    native, std = "BTC_USDC", "BTC-USDC"
    async with running_server(seed=21, rate=0) as server:
        trades, books = Recorder(), BookRecorder()
        feed = BackpackCcxtFeed(
            backpack_config={"rest_url": server.rest_url, "ws_url": server.ws_url},
            symbols=[std],
            channels=[compat.TRADES, compat.L2_BOOK],
            callbacks={compat.TRADES: trades, compat.L2_BOOK: books},
        )

        async def sync_and_check(connection_id: int) -> None:
            await server.wait_subscribed(f"depth.{native}", connection_id=connection_id)
            await server.wait_subscribed(f"trade.{native}", connection_id=connection_id)
            deltas = 0
            while deltas < 15:
                deltas += sum(1 for em in server.step() if em.stream == f"depth.{native}")
            await server.flush()
            server.step(40)
            await server.flush()
            seq = server.market.sequence(native)
            await until(lambda: std in books.updates and books.updates[std][-1][0] == seq, f"book at u={seq}")
            _, _, bids, asks = books.updates[std][-1]
            truth = server.book(native)
            assert bids == truth["bids"] and asks == truth["asks"]
            want = {d["t"] for d in sent(server, f"trade.{native}")}
            await until(lambda: want <= {int(t.id) for t in trades.of(std)}, "the trades of this connection")

        async with running(feed):
            first = (await server.wait_connections(1))[0].id
            await sync_and_check(first)
            snapshots_before = sum(1 for u in books.updates[std] if u[1] is None)
            server.faults.close_socket(1001, "going away")
            await until(lambda: len(server.connections) >= 2, "a reconnect")
            await sync_and_check(max(server.connections))
    assert feed.metrics["errors"] >= 1
    assert sum(1 for u in books.updates[std] if u[1] is None) == snapshots_before + 1  # re-sent as a snapshot
    ids = [int(t.id) for t in trades.of(std)]
    assert len(ids) == len(set(ids))  # nothing delivered twice across the reconnect


async def test_feedhandler_runs_the_ccxt_path_from_its_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """The whole operator path: flag in the env, endpoints in the FeedHandler config, cryptofeed's own run loop."""
    monkeypatch.setenv(NATIVE_ENV, "0")
    async with running_server(seed=2, rate=0) as server:
        fh = _handler(tmp_path, {"rest_url": server.rest_url, "ws_url": server.ws_url})
        trades = Recorder()
        fh.add_feed(
            "BACKPACK", symbols=["SOL-USDC"], channels=[compat.TRADES], callbacks={compat.TRADES: trades}
        )
        assert isinstance(fh.feeds[-1], BackpackCcxtFeed)
        if compat.CRYPTOFEED_MAJOR >= 3:
            task = asyncio.create_task(fh.run_async(install_signal_handlers=False))
        else:
            fh.run(start_loop=False, install_signal_handlers=False)
        try:
            await server.wait_subscribed("trade.SOL_USDC")
            while not any(em.stream == "trade.SOL_USDC" for em in server.step()):
                pass
            server.step(100)
            await server.flush()
            want = [d["t"] for d in sent(server, "trade.SOL_USDC")]
            await until(
                lambda: sorted(int(t.id) for t in trades.of("SOL-USDC")) == sorted(want), "the trades"
            )
        finally:
            if compat.CRYPTOFEED_MAJOR >= 3:
                fh.request_stop()
                await asyncio.wait_for(task, 10)
            else:
                await fh.stop_async()
    assert fh.feeds[-1].exchange is None  # closed on shutdown
