"""ccxt's backpack handling as a ``CoreClient``: the parity oracle (``harness.parity.oracle``) driven one
frame at a time by the core runner, so ccxt meets exactly the faulted timeline the native core meets.

What runs is ccxt's own code, as in the parity oracle: ``client.handle_text_or_binary_message`` for every
frame that reaches the client, ccxt's order-book caching, its snapshot fetch (spawned on the 11th cached
delta) and its cache bridging, and its error-frame handling. The oracle's conversion of ccxt's structures
to schema-v1 records is reused unchanged. What differs from the parity oracle is who answers the
snapshot: ``exchange.fetch`` parks until the runner's exchange answers by the scenario's snapshot rule
(with its faults), and the answer goes through ccxt's own ``parse_json``, ``handle_errors`` and
``handle_http_status_code``; a timed-out request raises ``RequestTimeout`` as ccxt's ``fetch`` does.

What ccxt tells its user becomes records the ``Checker`` reads:

* ``book_resync`` when ccxt gives a book up (its ``load_order_book`` failed and it reset the book: the
  user's ``watch_order_book`` raises and a new sync starts);
* ``error`` when ccxt rejects the user's futures (an error frame, a failed sync, a lost connection) or
  when ccxt's handler raises on a frame (live, that exception ends in the event loop's handler: counted
  as an error all the same, which can only lower ccxt's silent-divergence count).

A lost connection (``disconnected``) rejects the futures with ``NetworkError`` and drops ccxt's client, as
its ``on_close`` does; ``exchange.orderbooks`` stays, as live: a user calling ``watch_order_book`` again
resubscribes and ccxt keeps applying deltas to the book it has (ccxt.pro/backpack.py only creates a
book for a symbol it has none of). ccxt has no snapshot backoff: its retries are asked at once.
"""

from __future__ import annotations

import asyncio
import collections
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from backpack.protocol.normalized import EXCHANGE
from harness.parity.decimals import from_ccxt
from harness.parity.oracle import WS_URL, CcxtOracle
from harness.recording.format import HttpRequestEvent, HttpResponseEvent, WsRecv
from harness.scenarios.oracle import Reference
from harness.scenarios.program import Answer, Faulted

Record = dict[str, Any]
RESET_REASON = "ccxt reset the book (its snapshot sync failed)"


_MARKET_EVENTS: dict[int, tuple[Reference, list[Any]]] = {}
_SSL: list[Any] = []


def _market_events(ref: Reference) -> list[Any]:
    """The recording's markets request and answer: all the oracle needs of it here (read once per reference)."""
    cached = _MARKET_EVENTS.get(id(ref))
    if cached is None or cached[0] is not ref:
        requests: dict[str, HttpRequestEvent] = {}
        found: list[Any] = []
        for event in ref.events:
            if isinstance(event, HttpRequestEvent):
                requests[event.conn] = event
            elif isinstance(event, HttpResponseEvent) and event.status == 200:
                request = requests.get(event.conn)
                if request is not None and urlsplit(request.url).path.endswith("/api/v1/markets"):
                    found = [request, event]
                    break
        cached = _MARKET_EVENTS[id(ref)] = (ref, found)
    return cached[1]


def _exchange() -> Any:
    """ccxt.pro's backpack class as the parity oracle builds it, without the costs of a real session:
    one shared TLS context (nothing dials out) and no grace sleep on close."""
    import ssl

    import ccxt.pro as ccxtpro

    ex = ccxtpro.backpack({"enableRateLimit": False})
    if not _SSL:
        _SSL.append(ssl.create_default_context())
    ex.ssl_context = _SSL[0]
    ex.timeout_on_exit = 0
    return ex


class _Driven(CcxtOracle):
    """The parity oracle with its HTTP answered by the scenario runner instead of the recording."""

    def __init__(self, core: CcxtCore, faulted: Faulted, depth: int | None) -> None:
        ref = faulted.reference
        recording = SimpleNamespace(header=ref.header, events=_market_events(ref))
        super().__init__(recording, depth=depth, exchange_factory=_exchange)  # type: ignore[arg-type]
        self.core = core

    async def _fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        from ccxt.base.errors import NotSupported, RequestTimeout

        parts = urlsplit(url)
        if not parts.path.endswith("/api/v1/depth"):
            raise NotSupported(f"a scenario answers only depth snapshots, not {method} {parts.path}")
        symbol = dict(parse_qsl(parts.query)).get("symbol", "")
        answer: Answer = await self.core.ask(symbol)
        ex = self.core.ex
        if answer.timeout:
            raise RequestTimeout(" ".join([ex.id, method, url]))
        text = answer.body.decode("utf-8", "replace")
        reason = "OK" if answer.status == 200 else "Service Unavailable"
        response_headers = {"Content-Type": "application/json"}
        parsed = ex.parse_json(text)
        ex.handle_errors(answer.status, reason, url, method, response_headers, text, parsed, headers, body)
        ex.handle_http_status_code(answer.status, reason, url, method, text)
        return parsed if parsed is not None else text

    def _after_sync(self, ex: Any, ccxt_symbol: str, frame: tuple[int, WsRecv] | None) -> None:
        resets = len(self.result.resets)
        super()._after_sync(ex, ccxt_symbol, frame)
        if len(self.result.resets) > resets:
            symbol = self._market(ex, ccxt_symbol)[0]
            self.result.records.append({"type": "book_resync", "exchange": EXCHANGE, "symbol": symbol,
                                        "reason": RESET_REASON})


class CcxtCore:
    """``CoreClient`` over ccxt.pro's ``backpack`` class; one private event loop per run (``close()`` it)."""

    name = "ccxt"

    def __init__(self, faulted: Faulted, depth: int | None = 10) -> None:
        self.loop = asyncio.new_event_loop()
        self.oracle = _Driven(self, faulted, depth)
        self._asks: list[tuple[str, int]] = []
        self._waiting: dict[str, collections.deque[asyncio.Future[Answer]]] = {}
        self._index = 0
        self.ex: Any = None
        self.client: Any = None
        self.loop.run_until_complete(self._open())

    async def _open(self) -> None:
        self.ex = self.oracle._exchange()
        self._connect()

    def _connect(self) -> None:
        self.client = self.ex.client(WS_URL)
        reject = self.client.reject

        def rejected(result: Any, message_hash: Any = None, _reject: Any = reject) -> Any:
            self._error(f"ccxt rejected its watchers: {type(result).__name__}: {str(result)[:160]}")
            return _reject(result, message_hash)

        self.client.reject = rejected

    def _error(self, message: str) -> None:
        self.oracle.result.records.append({"type": "error", "exchange": EXCHANGE, "symbol": None,
                                           "message": message})

    # -- the runner's side ---------------------------------------------------------------------------

    async def ask(self, symbol: str) -> Answer:
        future: asyncio.Future[Answer] = self.loop.create_future()
        self._waiting.setdefault(symbol, collections.deque()).append(future)
        self._asks.append((symbol, 1))  # ccxt retries at once: no backoff
        return await future

    def _drive(self, step: Any) -> list[Record]:
        records = self.oracle.result.records
        start = len(records)
        try:
            self.loop.run_until_complete(step())
        finally:
            new = records[start:]
            del records[start:]  # what this call produced is handed over once, not kept
        return new

    async def _settle(self) -> None:
        """Let what ccxt spawned run until it waits for an answer (or is done)."""
        for _ in range(64):
            parked = sum(len(q) for q in self._waiting.values())
            if len(self.oracle._inflight) <= parked:
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    def frame(self, data: str | bytes, receipt: int) -> list[Record]:
        async def step() -> None:
            o = self.oracle
            if self.ex.clients.get(WS_URL) is not self.client:  # ccxt closed it after a failed sync
                self._connect()
            self._index += 1
            event = WsRecv(0, "ws", data, receipt)
            o._frame = (self._index, event)
            o._captured.clear()
            o._applied.clear()
            try:
                self.client.handle_text_or_binary_message(data)
            except Exception as exc:  # noqa: BLE001 - ccxt's reaction to the frame is the finding
                o._captured.clear()
                o._applied.clear()
                self._error(f"ccxt raised on a frame: {type(exc).__name__}: {str(exc)[:160]}")
            else:
                o._emit(self.ex, self._index, event)
            await self._settle()

        return self._drive(step)

    def _answer(self, symbol: str, answer: Answer) -> list[Record]:
        queue = self._waiting.get(symbol)
        if not queue:
            return []

        async def step() -> None:
            future = queue.popleft()
            if not future.done():
                future.set_result(answer)
            await self._settle()
            if queue:  # another request for it is still open: the runner takes one at a time
                self._asks.append((symbol, 1))

        return self._drive(step)

    def snapshot(self, symbol: str, answer: Answer, receipt: int) -> list[Record]:
        return self._answer(symbol, answer)

    def snapshot_failed(self, symbol: str, answer: Answer) -> list[Record]:
        return self._answer(symbol, answer)

    def disconnected(self) -> list[Record]:
        async def step() -> None:
            from ccxt.base.errors import NetworkError

            self.client.reject(NetworkError("connection closed by remote server, closing code 1006"))
            if self.ex.clients.get(WS_URL) is self.client:
                del self.ex.clients[WS_URL]
            await self._settle()

        return self._drive(step)

    def requests(self) -> list[tuple[str, int]]:
        asks, self._asks = self._asks, []
        return asks

    def books(self, symbol: str) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] | None:
        market = (self.ex.markets_by_id or {}).get(symbol)
        market = market[0] if isinstance(market, list) and market else market
        if not isinstance(market, dict):
            return None
        book = self.ex.orderbooks.get(market["symbol"])
        if book is None or book.get("nonce") is None:
            return None
        _, pp, ap = self.oracle._market(self.ex, market["symbol"])
        return _side(book["bids"], pp, ap), _side(book["asks"], pp, ap)

    def close(self) -> None:
        async def shut() -> None:
            for queue in self._waiting.values():
                for future in queue:
                    if not future.done():
                        future.cancel()
            await asyncio.gather(*self.oracle._inflight, return_exceptions=True)
            try:
                await self.ex.close()
            except Exception:  # noqa: BLE001, S110 - nothing was connected; closing must not hide the result
                pass

        try:
            self.loop.run_until_complete(shut())
        finally:
            self.loop.close()


def _side(levels: Any, pp: int | None, ap: int | None) -> dict[Decimal, Decimal]:
    out: dict[Decimal, Decimal] = {}
    for price, size in levels:
        p, s = from_ccxt(price, pp), from_ccxt(size, ap)
        if p is not None and s is not None:
            out[Decimal(p)] = Decimal(s)
    return out


__all__ = ["CcxtCore"]
