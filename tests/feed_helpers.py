"""Helpers for tests that run ``BackpackFeed`` under cryptofeed's ``FeedHandler`` against the loopback server."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import backpack  # noqa: F401  (registers BACKPACK)
from backpack import compat
from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET, BackpackServer

PUBLIC = [compat.TRADES, compat.L2_BOOK, compat.TICKER, compat.TICKER_24H, compat.CANDLES, compat.FUNDING,
          compat.OPEN_INTEREST, compat.LIQUIDATIONS]
PRIVATE = [compat.ORDER_INFO, compat.FILLS, compat.POSITIONS, compat.BALANCES]  # symbol-keyed private channels
RFQ_SYMBOLS = ["SOL-USDC-RFQ"]  # the RFQ channel takes RFQ markets (<spot>_RFQ), not the spot symbols


class Collector:
    """Records every callback by channel; the L2 book is kept as plain dicts at each update."""

    def __init__(self) -> None:
        self.items: dict[str, list[Any]] = defaultdict(list)
        self.books: dict[str, dict[str, dict[Decimal, Decimal]]] = {}
        self.book_sequences: dict[str, int] = {}

    def callbacks(self, channels: list[str]) -> dict[str, Any]:
        out = {}
        for channel in channels:
            async def cb(obj: Any, receipt: float, _channel: str = channel) -> None:
                if _channel == compat.L2_BOOK:
                    self.books[obj.symbol] = {
                        "bids": dict(obj.book.bids.to_dict()), "asks": dict(obj.book.asks.to_dict())
                    }
                    self.book_sequences[obj.symbol] = obj.sequence_number
                self.items[_channel].append(obj)
            out[channel] = cb
        return out


def backpack_section(server: BackpackServer, private: bool = True, **extra: Any) -> dict[str, Any]:
    section: dict[str, Any] = {"rest_url": server.rest_url, "ws_url": server.ws_url, **extra}
    if private:
        section.update(api_key=TEST_ACCOUNT_API_KEY, private_key=TEST_ACCOUNT_SECRET)
    return section


@asynccontextmanager
async def running_handler(**feed_kwargs: Any) -> AsyncIterator[Any]:
    """A FeedHandler with one BACKPACK feed, started in this loop and stopped on exit."""
    from cryptofeed import FeedHandler

    config = feed_kwargs.pop("handler_config", {"log": {"disabled": True}})
    fh = FeedHandler(config=config)
    fh.add_feed("BACKPACK", **feed_kwargs)
    token = await compat.start_handler(fh)
    try:
        yield fh
    finally:
        await compat.stop_handler(fh, token)


async def drive(server: BackpackServer, steps: int, chunk: int = 25, pause: float = 0.01) -> None:
    """Advance the market in chunks, letting frames reach the feed between chunks."""
    done = 0
    while done < steps:
        n = min(chunk, steps - done)
        server.step(n)
        done += n
        await server.flush()
        await asyncio.sleep(pause)


async def until(predicate: Any, what: str = "the condition", timeout: float = 10.0) -> None:
    """Wait for a condition (a deadline for a hung test, not a timing assertion)."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def sent_payloads(server: BackpackServer, prefix: str) -> list[dict[str, Any]]:
    """Data of every frame the server sent on any connection whose stream starts with ``prefix``."""
    out = []
    for conn_id in sorted(server.connections):
        for text in server.frames(conn_id):
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if isinstance(msg, dict) and str(msg.get("stream", "")).startswith(prefix):
                out.append(msg["data"])
    return out


class OwnClock:
    """For fake transports that are their own clock: readings from their ``now_us``, waits through their
    ``sleep(seconds)`` (which the fakes record)."""

    @property
    def clock(self) -> Any:
        return self

    async def sleep_us(self, delay_us: int) -> None:
        await self.sleep(delay_us / 1_000_000)  # type: ignore[attr-defined]
