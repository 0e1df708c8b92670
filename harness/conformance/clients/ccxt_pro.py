"""Raw ccxt.pro ``backpack``, unchanged but for its URLs, driven the way its users drive it: one
``watch_*`` loop per symbol and channel, each retrying after an exception (ccxt reconnects inside the
next ``watch_*`` call)."""

from __future__ import annotations

import asyncio
import contextlib

from . import Emit, Target, importable
from ._ccxt import bbo, book, error, trade

RETRY_S = 0.25  # a user's loop pauses this long after a watch raised


class CcxtProAdapter:
    name = "ccxt-pro"
    description = "ccxt.pro backpack (unchanged, URLs pointed at the server), a watch loop per stream"
    capabilities = frozenset({"trades", "l2_book", "bbo"})

    def missing(self) -> str | None:
        return None if importable("ccxt.pro") else "not installed (pip install ccxt)"

    async def run(self, target: Target, emit: Emit, stop: asyncio.Event) -> None:
        import ccxt.pro as ccxtpro

        ex = ccxtpro.backpack()
        api = dict(ex.urls["api"])
        api["public"] = api["private"] = target.rest_url
        api["ws"] = {"public": target.ws_url, "private": target.ws_url}
        ex.urls = {**ex.urls, "api": api}

        async def loop(what: str, symbol: str, ccxt_symbol: str) -> None:
            while not stop.is_set():
                try:
                    if what == "trades":
                        for t in await ex.watch_trades(ccxt_symbol):
                            await emit(trade(t, symbol))
                    elif what == "l2_book":
                        ob = await ex.watch_order_book(ccxt_symbol)
                        await emit(book(ob, symbol, target.depth))
                    else:
                        for t in (await ex.watch_bids_asks([ccxt_symbol])).values():
                            await emit(bbo(t, symbol))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - what a user's loop does: note it, wait, watch again
                    await emit(error(exc, f"watch {what} {symbol}"))
                    await asyncio.sleep(RETRY_S)

        tasks: list[asyncio.Task[None]] = []
        try:
            while True:  # the same loop around the market list as around every watch
                try:
                    await ex.load_markets()
                    break
                except Exception as exc:  # noqa: BLE001
                    await emit(error(exc, "load_markets"))
                    await asyncio.sleep(RETRY_S)
            for symbol in target.symbols:
                ccxt_symbol = ex.markets_by_id[symbol.replace("-", "_")][0]["symbol"]
                for what in target.channels:
                    tasks.append(asyncio.ensure_future(loop(what, symbol, ccxt_symbol)))
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ex.close()


__all__ = ["CcxtProAdapter"]


