"""BackpackFeed under cryptofeed's FeedHandler, on the live transport, against the loopback server."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backpack import compat
from backpack.feed import BackpackFeed
from backpack.types import Rfq, Ticker24h
from harness.pytest_plugin import running_server

from .feed_helpers import (
    PRIVATE,
    PUBLIC,
    RFQ_SYMBOLS,
    Collector,
    backpack_section,
    drive,
    running_handler,
    sent_payloads,
    until,
)

SYMBOLS = ["SOL-USDC", "BTC-USDC-PERP", "kSHIB-USDC-PERP", "AAPL.US-USDC-PERP"]
NATIVE = {s: s.replace("-", "_") for s in SYMBOLS}


def book_of(server, native: str) -> dict[str, dict[Decimal, Decimal]]:
    book = server.book(native)
    return {"bids": dict(book["bids"]), "asks": dict(book["asks"])}


@pytest.mark.e2e
async def test_every_channel_end_to_end_and_book_matches_server() -> None:
    collector = Collector()
    channels = PUBLIC + PRIVATE + [compat.RFQ]
    subscription = {channel: SYMBOLS for channel in PUBLIC + PRIVATE} | {compat.RFQ: RFQ_SYMBOLS}
    async with running_server(seed=7, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        async with running_handler(
            subscription=subscription, callbacks=collector.callbacks(channels),
            handler_config={"log": {"disabled": True}, "backpack": backpack_section(server)},
        ) as fh:
            feed = fh.feeds[0]
            assert isinstance(feed, BackpackFeed)
            await server.wait_subscribed("depth.SOL_USDC")
            await server.wait_subscribed("account.orderUpdate.SOL_USDC")
            await server.wait_subscribed("account.rfqUpdate.SOL_USDC_RFQ")
            await drive(server, 1500)
            await until(lambda: all(
                collector.book_sequences.get(s) == server.market.sequence(NATIVE[s]) for s in SYMBOLS
            ))

            for prefix, channel in (("ticker.", compat.TICKER_24H), ("account.rfqUpdate", compat.RFQ),
                                    ("trade.", compat.TRADES)):
                await until(lambda p=prefix, c=channel: len(collector.items[c]) == len(sent_payloads(server, p)))
            for symbol in SYMBOLS:
                assert collector.books[symbol] == book_of(server, NATIVE[symbol]), symbol
            assert feed.metrics["resyncs"] == 0

    # every public and private channel delivered, with cryptofeed's types
    for channel in channels:
        assert collector.items[channel], f"no {channel} callback"
    trade = collector.items[compat.TRADES][0]
    assert isinstance(trade, compat.Trade) and isinstance(trade.price, Decimal)
    assert trade.symbol in SYMBOLS
    assert isinstance(collector.items[compat.FUNDING][0], compat.Funding)
    assert isinstance(collector.items[compat.ORDER_INFO][0], compat.OrderInfo)
    assert isinstance(collector.items[compat.FILLS][0], compat.Fill)
    assert isinstance(collector.items[compat.POSITIONS][0], compat.Position)
    assert isinstance(collector.items[compat.BALANCES][0], compat.Balance)
    assert all(c.closed for c in collector.items[compat.CANDLES])

    # 24h ticker and RFQ: the project's own types, values exactly as sent
    sent_24h = {(d["s"], d["E"]): d for d in sent_payloads(server, "ticker.")}
    assert len(collector.items[compat.TICKER_24H]) == len(sent_24h)
    for t in collector.items[compat.TICKER_24H]:
        assert isinstance(t, Ticker24h)
        d = sent_24h[(t.symbol.replace("-", "_"), round(t.timestamp * 1_000_000))]
        assert (t.open, t.high, t.low, t.close, t.volume, t.trades) == (
            Decimal(d["o"]), Decimal(d["h"]), Decimal(d["l"]), Decimal(d["c"]), Decimal(d["v"]), d["n"])
    # trigger orders keep their size (Y) while q is "0"
    placed = {d["i"]: d for d in sent_payloads(server, "account.orderUpdate.") if d["e"] == "triggerPlaced"}
    pending = [o for o in collector.items[compat.ORDER_INFO] if o.status == "TriggerPending"]
    assert placed and len(pending) == len(placed)
    assert all(o.amount == Decimal(placed[o.id]["Y"]) > 0 and placed[o.id]["q"] == "0" for o in pending)
    sent_rfq = sent_payloads(server, "account.rfqUpdate")
    rfqs = collector.items[compat.RFQ]
    assert rfqs and [(r.event, r.rfq_id) for r in rfqs] == [(d["e"], str(d["R"])) for d in sent_rfq]
    assert all(isinstance(r, Rfq) and r.symbol == "SOL-USDC-RFQ" for r in rfqs)
    fills = [r for r in rfqs if r.event == "rfqFilled"]
    assert fills and all(r.price is not None and r.status == "Filled" for r in fills)

    # trades: exactly what the server sent, once each, same values
    sent = {(d["s"], str(d["t"])): d for d in sent_payloads(server, "trade.")}
    got = [(t.symbol.replace("-", "_"), t.id) for t in collector.items[compat.TRADES]]
    assert len(got) == len(set(got))
    assert set(got) == set(sent)
    for t in collector.items[compat.TRADES]:
        d = sent[(t.symbol.replace("-", "_"), t.id)]
        assert t.price == Decimal(d["p"]) and t.amount == Decimal(d["q"])
        assert t.side == ("sell" if d["m"] else "buy")


@pytest.mark.e2e
async def test_public_only_feed_needs_no_credentials() -> None:
    collector = Collector()
    async with running_server(seed=3, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        async with running_handler(
            symbols=["SOL-USDC"], channels=[compat.TRADES, compat.L2_BOOK],
            callbacks=collector.callbacks([compat.TRADES, compat.L2_BOOK]),
            handler_config={"log": {"disabled": True}, "backpack": backpack_section(server, private=False)},
        ):
            await server.wait_subscribed("depth.SOL_USDC")
            await drive(server, 300)
            await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"))
            assert collector.books["SOL-USDC"] == book_of(server, "SOL_USDC")


def test_private_channels_without_credentials_fail_clearly() -> None:
    with pytest.raises(ValueError, match="need credentials"):
        BackpackFeed(symbols=["SOL-USDC"], channels=[compat.ORDER_INFO], config={"log": {"disabled": True}})
