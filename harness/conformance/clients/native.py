"""The project's ``BackpackFeed`` on a ``LiveTransport``, normalized by its own ``Normalizer``."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from . import Emit, Target

WATCHDOG_S = 4.0  # keep-alive settings for the suite's short cases (the defaults are 130 s and 20 s), with
PING_INTERVAL_S = 1.0  # room for a loaded machine: a starved event loop must not look like a dead link
PING_TIMEOUT_S = 2.0
CHANNELS = {"trades": "TRADES", "l2_book": "L2_BOOK", "bbo": "TICKER", "ticker": "TICKER_24H",
            "orders": "ORDER_INFO"}


class NativeAdapter:
    name = "native"
    description = "backpack.feed.BackpackFeed (this project), watchdog 4 s, client pings every 1 s (2 s timeout)"
    capabilities = frozenset({"trades", "l2_book", "bbo", "ticker", "orders", "private", "aggregated_depth"})

    def missing(self) -> str | None:
        return None

    async def run(self, target: Target, emit: Emit, stop: asyncio.Event) -> None:
        from backpack import compat
        from backpack.feed import BackpackFeed
        from backpack.live import LiveTransport
        from backpack.protocol.normalized import Normalizer
        from harness.replay import run_feed

        subscription = {getattr(compat, CHANNELS[c]): list(target.symbols) for c in target.channels}
        section: dict[str, Any] = {"rest_url": target.rest_url, "ws_url": target.ws_url,
                                   "ws_watchdog_seconds": WATCHDOG_S}
        if target.depth_speed:
            section["depth_speed"] = target.depth_speed
        if target.api_key:
            section.update(api_key=target.api_key, private_key=target.secret)
        normalizer: Normalizer | None = None

        async def on_output(output: Any) -> None:
            if normalizer is not None:
                for rec in normalizer.records((output,)):
                    await emit(rec)

        transport = LiveTransport(watchdog_seconds=WATCHDOG_S, ws_ping_interval=PING_INTERVAL_S,
                                  ws_ping_timeout=PING_TIMEOUT_S)
        feed = BackpackFeed(transport=transport, protocol_callback=on_output, subscription=subscription,
                            backpack_config=section, rng=random.Random(7), config={"log": {"disabled": True}})
        normalizer = Normalizer.for_router(feed.router, depth=target.depth)
        try:
            await run_feed(feed, stop)
        finally:
            await transport.close()
        internal = feed.metrics.get("internal_errors", 0) + feed.router.books.stats().get("internal_errors", 0)
        if internal or getattr(feed, "restarts", 0):
            raise RuntimeError(f"{internal} internal error(s) and {getattr(feed, 'restarts', 0)} restart(s) "
                               "inside the feed")
