"""ccxt.pro's own ``backpack`` class, unchanged except for its URLs, against the loopback server.

Why: the legacy feed and the parity harness both trust that ccxt reads our loopback server exactly as
it reads the real exchange. If these tests fail, a parity difference may be the server's fault rather
than either feed's. The server is frozen (``rate=0``) and stepped by the test, so the frames are the
same on every run.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import ccxt.pro as ccxtpro
import pytest

from harness.pytest_plugin import running_server

from .feed_helpers import until

NATIVE = "BTC_USDC"
TOP_N = 10


def _ccxt_at(rest_url: str, ws_url: str) -> Any:
    """A stock ccxt.pro backpack instance whose only change is where it connects."""
    ex = ccxtpro.backpack()
    api = dict(ex.urls["api"])
    api["public"] = api["private"] = rest_url
    api["ws"] = {"public": ws_url, "private": ws_url}
    ex.urls = {**ex.urls, "api": api}
    return ex




def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def _top(levels: dict[Decimal, Decimal], n: int, reverse: bool) -> list[tuple[Decimal, Decimal]]:
    return sorted(levels.items(), reverse=reverse)[:n]


def _sent(server: Any, stream: str) -> list[dict[str, Any]]:
    """The ``data`` of every frame on ``stream`` that the server wrote to its most recent connection."""
    out = []
    for text in server.frames():
        frame = json.loads(text)
        if frame.get("stream") == stream:
            out.append(frame["data"])
    return out


async def _pump(ex: Any, symbol: str) -> tuple[list[dict[str, Any]], list[Any], asyncio.Task, asyncio.Task]:
    trades: list[dict[str, Any]] = []
    books: list[Any] = []

    async def watch_trades() -> None:
        while True:
            trades.extend(await ex.watch_trades(symbol))

    async def watch_book() -> None:
        while True:
            books.append(await ex.watch_order_book(symbol))

    return trades, books, asyncio.create_task(watch_trades()), asyncio.create_task(watch_book())


@pytest.mark.parametrize("ints_as_strings", [False, True], ids=["int-fields", "string-fields"])
async def test_ccxt_pro_reads_trades_and_synchronised_book(ints_as_strings: bool) -> None:
    async with running_server(seed=7, rate=0, ints_as_strings=ints_as_strings) as server:
        ex = _ccxt_at(server.rest_url, server.ws_url)
        tasks: list[asyncio.Task] = []
        try:
            await ex.load_markets()
            symbol = ex.markets_by_id[NATIVE][0]["symbol"]
            assert symbol == "BTC/USDC"
            trades, books, *tasks = await _pump(ex, symbol)
            await server.wait_subscribed(f"trade.{NATIVE}")
            await server.wait_subscribed(f"depth.{NATIVE}")

            # Enough deltas for ccxt to ask for its REST snapshot (it waits for 11), then let it sync.
            deltas = 0
            while deltas < 15:
                deltas += sum(1 for em in server.step() if em.stream == f"depth.{NATIVE}")
            await server.flush()
            await until(lambda: ex.orderbooks[symbol]["nonce"] is not None, "ccxt's snapshot")

            for checkpoint in range(4):
                server.step(40)
                await server.flush()
                seq = server.market.sequence(NATIVE)
                await until(lambda seq=seq: bool(books) and books[-1]["nonce"] == seq, f"book at u={seq}")
                book = books[-1]
                truth = server.book(NATIVE)
                got_bids = [(_dec(p), _dec(q)) for p, q in book["bids"][:TOP_N]]
                got_asks = [(_dec(p), _dec(q)) for p, q in book["asks"][:TOP_N]]
                assert got_bids == _top(truth["bids"], TOP_N, reverse=True), (
                    f"bids differ at checkpoint {checkpoint}"
                )
                assert got_asks == _top(truth["asks"], TOP_N, reverse=False), (
                    f"asks differ at checkpoint {checkpoint}"
                )
                assert len(book["bids"]) == len(truth["bids"]) and len(book["asks"]) == len(truth["asks"])

            sent = _sent(server, f"trade.{NATIVE}")
            assert len(sent) >= 20, "the scenario should produce a meaningful number of trades"
            await until(lambda: len(trades) >= len(sent), f"{len(sent)} trades")
            got = sorted(
                (
                    (int(t["id"]), _dec(t["price"]), _dec(t["amount"]), t["side"], t["timestamp"])
                    for t in trades
                ),
            )
            want = sorted(
                (
                    int(d["t"]),
                    Decimal(d["p"]),
                    Decimal(d["q"]),
                    "sell" if d["m"] else "buy",
                    int(d["E"]) // 1000,  # known ccxt deviation: trade time is E (event), in ms
                )
                for d in sent
            )
            assert got == want
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ex.close()
