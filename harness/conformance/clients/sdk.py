"""``backpack-exchange-sdk`` (PyPI; optional extra ``conformance-clients``): its ``WebSocketClient``
(websocket-client in a thread) unchanged but for the URL it dials. It keeps no order book and hands
raw stream data to callbacks, so the adapter can judge it on trades and bookTicker only; what it prints
(its only log) is captured."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
from typing import Any

from backpack.protocol.normalized import EXCHANGE

from . import Emit, Target, importable

CONNECT_TIMEOUT_S = 10.0


def _trade(data: dict[str, Any], symbol: str) -> dict[str, Any]:
    t = data.get("T")
    return {"type": "trade", "exchange": EXCHANGE, "symbol": symbol,
            "timestamp": int(t) if str(t).isdigit() else None, "id": None if data.get("t") is None else str(data["t"]),
            "side": "sell" if data.get("m") else "buy", "price": data.get("p"), "amount": data.get("q")}


def _bbo(data: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {"type": "bbo", "exchange": EXCHANGE, "symbol": symbol, "timestamp": None, "bid": data.get("b"),
            "bid_size": data.get("B"), "ask": data.get("a"), "ask_size": data.get("A"), "sequence": None}


class SdkAdapter:
    name = "backpack-exchange-sdk"
    description = "backpack-exchange-sdk WebSocketClient (PyPI, optional extra conformance-clients)"
    capabilities = frozenset({"trades", "bbo"})

    def __init__(self) -> None:
        self.output = io.StringIO()  # what the client printed: evidence

    def missing(self) -> str | None:
        if importable("backpack_exchange_sdk.websocket"):
            return None
        return "not installed (pip install 'cryptofeed-backpack[conformance-clients]')"

    async def run(self, target: Target, emit: Emit, stop: asyncio.Event) -> None:
        from backpack_exchange_sdk.websocket import WebSocketClient

        class Client(WebSocketClient):  # type: ignore[misc]
            """The SDK's client, dialling ``url``: its __init__ with the URL changed, nothing else."""

            def __init__(self, url: str) -> None:
                self.ws = None
                self.api_key = self.secret_key = None
                self.base_url = url
                self.callbacks = {}
                self.connected = threading.Event()
                self.last_pong = time.time()
                self.stopped = False
                self._connect()
                if not self.connected.wait(timeout=CONNECT_TIMEOUT_S):
                    raise ConnectionError("WebSocket connection timeout")

            def _connect(self) -> None:
                if not self.stopped:  # its reconnect loop must end with the run
                    super()._connect()

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def sink(rec: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, rec)

        with contextlib.redirect_stdout(self.output):
            client = await asyncio.to_thread(Client, target.ws_url)
            try:
                for symbol in target.symbols:
                    native = symbol.replace("-", "_")
                    if "trades" in target.channels:
                        await asyncio.to_thread(client.subscribe, [f"trade.{native}"],
                                                lambda d, s=symbol: sink(_trade(d, s)))
                    if "bbo" in target.channels:
                        await asyncio.to_thread(client.subscribe, [f"bookTicker.{native}"],
                                                lambda d, s=symbol: sink(_bbo(d, s)))
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.05):
                            await emit(await queue.get())
                while not queue.empty():
                    await emit(queue.get_nowait())
            finally:
                client.stopped = True
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(client.close)


__all__ = ["SdkAdapter"]
