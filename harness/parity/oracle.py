"""The ccxt oracle: a recording's frames and REST answers through ccxt.pro's ``backpack`` class, offline.

What runs is ccxt's own code: ``client.handle_text_or_binary_message`` (ccxt's JSON decoding and its
``handle_message`` dispatch) for every recorded ``ws_recv`` frame, in recorded order, on one client in
one event loop, with ``exchange.fetch`` (the one place ccxt does HTTP) answering from the recording.
Nothing dials out. Markets come from the recorded ``/api/v1/markets`` answer through ccxt's own
``parse_market`` (``set_markets``, the documented shortcut: the recording need not hold ``/assets``).

Order-book snapshots: ccxt asks for one on its 11th cached delta (``snapshotDelay``), at a moment the
native feed never asked. It is answered with a recorded ``/api/v1/depth`` answer for that symbol: the
latest one the timeline had reached that was not served before, else the next one ahead (so a retry
after a stale snapshot moves forward, never back). A request the recording cannot answer raises
``ExchangeNotAvailable`` inside ccxt, which then handles it as it would live.

One client for the whole recording: ccxt keeps ``exchange.orderbooks`` across a reconnect (its
``on_close`` drops the client, not the books), so a recorded reconnect changes nothing in ccxt's state,
exactly as live.

Output: schema-v1 records (see ``backpack.protocol.normalized``) read from the structures ccxt built
(the parsed trade, order, position... and ccxt's order book after each change), converted with
``harness.parity.decimals`` (floats back to canonical decimals at the market's precision; ccxt's
milliseconds as µs). Each record carries ``receipt`` (the frame's recorded receipt, the same number the
native replay stamps on its records) and ``frame`` (the event's index in the recording), and book
records carry ``unchecked_gap``: the first ``U != previous u + 1`` ccxt applied since its last snapshot
(ccxt does not check; the oracle watches), the evidence for deviation 1.

Where ccxt has no structure of its own: fills (ccxt has no fills stream for Backpack) are read from the
order's ``info`` exactly as ``BackpackCcxtFeed`` does, so they are what users of the ccxt path get; an
order's ``event`` is copied from ``info.e`` (ccxt keeps no event name) so records can be told apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from backpack.protocol.normalized import DEFAULT_DEPTH, EXCHANGE
from backpack.protocol.symbols import normalize_symbol
from harness.recording.format import HttpRequestEvent, HttpResponseEvent, WsRecv
from harness.recording.reader import Recording, read_recording

from .decimals import from_ccxt, ms_to_us, places

LOG = logging.getLogger("harness.parity.oracle")
WS_URL = "wss://ws.backpack.exchange"
CCXT_TIME_RESOLUTION_US = 1000
"""ccxt keeps milliseconds: every oracle timestamp is a multiple of 1000 µs."""


@dataclass
class OracleResult:
    records: list[dict[str, Any]]
    frames: int = 0  # ws_recv frames handed to ccxt
    errors: list[dict[str, Any]] = field(default_factory=list)  # frames ccxt raised on: frame, error, message
    snapshots: list[dict[str, Any]] = field(default_factory=list)  # every snapshot request and its answer
    resets: list[dict[str, Any]] = field(default_factory=list)  # ccxt gave up a book sync (it resets the book)
    ccxt_version: str = ""


@dataclass
class _Snapshot:
    index: int  # event index of the recorded response
    t: int
    body: Any


def _recorded_snapshots(rec: Recording) -> tuple[dict[str, list[_Snapshot]], Any]:
    """Recorded 200 answers to /api/v1/depth by native symbol, in timeline order; and the markets answer."""
    requests: dict[str, HttpRequestEvent] = {}
    snapshots: dict[str, list[_Snapshot]] = {}
    markets: Any = None
    for i, event in enumerate(rec.events):
        if isinstance(event, HttpRequestEvent):
            requests[event.conn] = event
            continue
        if not isinstance(event, HttpResponseEvent) or event.status != 200:
            continue
        request = requests.get(event.conn)
        if request is None:
            continue
        try:
            body = json.loads(event.body)
        except (ValueError, UnicodeDecodeError):
            continue
        path = urlsplit(request.url).path
        if path.endswith("/api/v1/depth"):
            symbol = dict(request.params).get("symbol")
            if symbol:
                snapshots.setdefault(symbol, []).append(_Snapshot(i, event.t, body))
        elif path.endswith("/api/v1/markets") and markets is None and isinstance(body, list):
            markets = body
    return snapshots, markets


class CcxtOracle:
    """One pass of a recording through ccxt; ``await run()`` once."""

    def __init__(self, recording: Recording, *, depth: int | None = DEFAULT_DEPTH,
                 exchange_factory: Callable[[], Any] | None = None) -> None:
        self.rec = recording
        self.depth = depth
        self._factory = exchange_factory
        self._snapshots, self._markets = _recorded_snapshots(recording)
        self._cursor: dict[str, int] = {}
        self._now_t = 0
        self._frame: tuple[int, WsRecv] | None = None
        self._captured: list[tuple[str, Any]] = []
        self._applied: list[dict[str, Any]] = []  # live deltas ccxt applied during this frame
        self._syncing = 0
        self._last_u: dict[str, int] = {}
        self._gap: dict[str, dict[str, int] | None] = {}
        self._inflight: set[asyncio.Future[Any]] = set()
        self.result = OracleResult(records=[])

    # -- setup --------------------------------------------------------------------------------------

    def _exchange(self) -> Any:
        import ccxt
        import ccxt.pro as ccxtpro

        self.result.ccxt_version = ccxt.__version__
        ex = self._factory() if self._factory is not None else ccxtpro.backpack({"enableRateLimit": False})
        raw = self._markets or []
        ex.set_markets([m for m in map(ex.parse_market, raw) if m])
        ex.fetch = self._fetch
        self._wrap(ex)
        return ex

    def _wrap(self, ex: Any) -> None:
        """Instance-level wrappers: they see ccxt's parsed structures and book applications, nothing more."""
        for name, kind in (("parse_ws_trade", "trade"), ("parse_ws_bid_ask", "bbo"), ("parse_ws_ticker", "ticker"),
                           ("parse_ws_ohlcv", "candle"), ("parse_ws_order", "order"),
                           ("parse_ws_rfq_order", "rfq"), ("parse_ws_position", "position")):
            original = getattr(ex, name)

            def capture(*args: Any, _original: Any = original, _kind: str = kind, **kwargs: Any) -> Any:
                parsed = _original(*args, **kwargs)
                self._captured.append((_kind, parsed))
                return parsed

            setattr(ex, name, capture)

        handle_balance = ex.handle_balance

        def balance(client: Any, message: Any) -> Any:
            done = handle_balance(client, message)
            if done:
                self._captured.append(("balance", message.get("data") if isinstance(message, dict) else None))
            return done

        ex.handle_balance = balance
        handle_book_delta = ex.handle_book_delta

        def book_delta(orderbook: Any, delta: Any) -> None:
            handle_book_delta(orderbook, delta)
            if not self._syncing:
                self._applied.append(delta)

        ex.handle_book_delta = book_delta
        load_order_book = ex.load_order_book

        async def load(client: Any, message_hash: str, symbol: str, limit: Any = None, params: Any = None) -> None:
            frame = self._frame
            self._syncing += 1
            try:
                await load_order_book(client, message_hash, symbol, limit, params or {})
            finally:
                self._syncing -= 1
            self._after_sync(ex, symbol, frame)

        ex.load_order_book = load
        spawn = ex.spawn

        def tracked_spawn(method: Any, *args: Any) -> Any:
            future = spawn(method, *args)
            self._inflight.add(future)
            future.add_done_callback(self._inflight.discard)
            return future

        ex.spawn = tracked_spawn

    async def _fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        """ccxt's HTTP, answered from the recording (the snapshot rule is in the module docstring)."""
        from ccxt.base.errors import ExchangeNotAvailable, NotSupported

        parts = urlsplit(url)
        if not parts.path.endswith("/api/v1/depth"):
            raise NotSupported(f"the parity oracle answers only depth snapshots, not {method} {parts.path}")
        native = dict(parse_qsl(parts.query)).get("symbol", "")
        candidates = self._snapshots.get(native, [])
        cursor = self._cursor.get(native, -1)
        ahead = [i for i in range(cursor + 1, len(candidates))]
        reached = [i for i in ahead if candidates[i].t <= self._now_t]
        chosen = reached[-1] if reached else (ahead[0] if ahead else None)
        entry: dict[str, Any] = {"symbol": native, "frame": self._frame[0] if self._frame else None}
        self.result.snapshots.append(entry)
        if chosen is None:
            entry["answer"] = None
            raise ExchangeNotAvailable(f"the recording holds no further /api/v1/depth answer for {native}")
        self._cursor[native] = chosen
        snap = candidates[chosen]
        entry.update(answer=snap.index, last_update_id=str(snap.body.get("lastUpdateId"))
                     if isinstance(snap.body, dict) else None, ahead=snap.t > self._now_t)
        return json.loads(json.dumps(snap.body))  # a fresh copy: ccxt may mutate what it parses

    # -- the walk -----------------------------------------------------------------------------------

    async def run(self) -> OracleResult:
        ex = self._exchange()
        client = ex.client(WS_URL)
        try:
            for index, event in enumerate(self.rec.events):
                self._now_t = event.t
                if not isinstance(event, WsRecv):
                    continue
                if ex.clients.get(WS_URL) is not client:  # ccxt closed it after a failed sync
                    client = ex.client(WS_URL)
                self._frame = (index, event)
                self.result.frames += 1
                self._captured.clear()
                self._applied.clear()
                try:
                    client.handle_text_or_binary_message(event.data)
                except Exception as exc:  # noqa: BLE001 - ccxt's own reaction to the frame is the finding
                    self.result.errors.append({"frame": index, "error": type(exc).__name__,
                                               "message": str(exc)[:200]})
                    self._captured.clear()
                    self._applied.clear()
                else:
                    self._emit(ex, index, event)
                while self._inflight:  # a snapshot fetch ccxt spawned: let it finish before the next frame
                    await asyncio.wait(set(self._inflight))
                    await asyncio.sleep(0)
        finally:
            await asyncio.gather(*self._inflight, return_exceptions=True)
            try:
                await ex.close()
            except Exception:  # noqa: BLE001 - nothing was connected; closing must not hide the result
                LOG.debug("closing the offline ccxt exchange failed", exc_info=True)
        return self.result

    # -- ccxt structures -> schema v1 ----------------------------------------------------------------

    def _base(self, kind: str, symbol: str | None, timestamp: int | None, frame: int | None,
              receipt: int | None) -> dict[str, Any]:
        return {"type": kind, "exchange": EXCHANGE, "symbol": symbol, "timestamp": timestamp,
                "receipt": receipt, "frame": frame}

    @staticmethod
    def _market(ex: Any, ccxt_symbol: Any, market_id: Any = None) -> tuple[str | None, int | None, int | None]:
        """(schema symbol, price places, amount places) of a ccxt market (by symbol, else by id)."""
        market = ex.markets.get(ccxt_symbol) if isinstance(ccxt_symbol, str) and ex.markets else None
        if market is None and market_id is None and isinstance(ccxt_symbol, str) and "/" not in ccxt_symbol:
            market_id = ccxt_symbol  # ccxt's safe_symbol of a market it does not know is the exchange's id
        if market is None and isinstance(market_id, str):
            found = (ex.markets_by_id or {}).get(market_id)
            market = found[0] if isinstance(found, list) and found else found
        native = market.get("id") if isinstance(market, dict) else market_id
        precision = market.get("precision") or {} if isinstance(market, dict) else {}
        try:
            symbol = normalize_symbol(native) if isinstance(native, str) else None
        except ValueError:
            symbol = native
        return symbol, places(precision.get("price")), places(precision.get("amount"))

    def _emit(self, ex: Any, index: int, event: WsRecv) -> None:
        receipt = event.receipt
        data = _frame_data(event.data)
        for kind, parsed in self._captured:
            record = getattr(self, f"_r_{kind}")(ex, parsed, data, index, receipt)
            if record is not None:
                self.result.records.extend(record if isinstance(record, list) else [record])
        if self._applied:
            self._book_after_delta(ex, self._applied[-1], index, receipt)

    def _r_trade(self, ex: Any, t: Any, data: Any, index: int, receipt: int) -> dict[str, Any]:
        symbol, pp, ap = self._market(ex, t.get("symbol"), _s(data))
        r = self._base("trade", symbol, ms_to_us(t.get("timestamp")), index, receipt)
        r.update(id=None if t.get("id") is None else str(t["id"]), side=t.get("side"),
                 price=from_ccxt(t.get("price"), pp), amount=from_ccxt(t.get("amount"), ap))
        return r

    def _r_bbo(self, ex: Any, t: Any, data: Any, index: int, receipt: int) -> dict[str, Any]:
        symbol, pp, ap = self._market(ex, t.get("symbol"), _s(data))
        r = self._base("bbo", symbol, ms_to_us(t.get("timestamp")), index, receipt)
        r.update(bid=from_ccxt(t.get("bid"), pp), bid_size=from_ccxt(t.get("bidVolume"), ap),
                 ask=from_ccxt(t.get("ask"), pp), ask_size=from_ccxt(t.get("askVolume"), ap), sequence=None)
        return r

    def _r_ticker(self, ex: Any, t: Any, data: Any, index: int, receipt: int) -> dict[str, Any]:
        symbol, pp, ap = self._market(ex, t.get("symbol"), _s(data))
        r = self._base("ticker", symbol, ms_to_us(t.get("timestamp")), index, receipt)
        r.update(open=from_ccxt(t.get("open"), pp), high=from_ccxt(t.get("high"), pp),
                 low=from_ccxt(t.get("low"), pp), close=from_ccxt(t.get("close"), pp),
                 volume=from_ccxt(t.get("baseVolume"), ap), quote_volume=from_ccxt(t.get("quoteVolume")),
                 trades=None)
        return r

    def _r_candle(self, ex: Any, c: Any, data: Any, index: int, receipt: int) -> dict[str, Any] | None:
        if not isinstance(c, list) or len(c) < 6:
            return None
        stream = _frame_stream(self._frame[1].data) if self._frame else ""
        parts = stream.split(".")
        interval = parts[1] if len(parts) >= 3 else None  # ccxt's timeframe is read from the stream name too
        symbol, pp, ap = self._market(ex, None, data.get("s") if isinstance(data, dict) else None)
        ts = ms_to_us(c[0])
        r = self._base("candle", symbol, ts, index, receipt)
        r.update(interval=interval, start=ts, stop=None, open=from_ccxt(c[1], pp), high=from_ccxt(c[2], pp),
                 low=from_ccxt(c[3], pp), close=from_ccxt(c[4], pp), volume=from_ccxt(c[5], ap), trades=None,
                 closed=None)
        return r

    def _r_order(self, ex: Any, o: Any, data: Any, index: int, receipt: int) -> list[dict[str, Any]]:
        symbol, pp, ap = self._market(ex, o.get("symbol"), _s(data))
        info = o.get("info") or {}
        ts = ms_to_us(o.get("timestamp"))
        r = self._base("order", symbol, ts, index, receipt)
        r.update(event=info.get("e"), order_id=_str(o.get("id")), client_order_id=_str(o.get("clientOrderId")),
                 side=o.get("side"), order_type=o.get("type"), status=o.get("status"),
                 price=from_ccxt(o.get("price"), pp), amount=from_ccxt(o.get("amount"), ap),
                 filled=from_ccxt(o.get("filled"), ap), remaining=from_ccxt(o.get("remaining"), ap),
                 time_in_force=o.get("timeInForce"), post_only=o.get("postOnly"),
                 trigger_price=from_ccxt(o.get("triggerPrice"), pp), trigger_quantity=None)
        out = [r]
        if info.get("e") == "orderFill":  # as BackpackCcxtFeed reads a fill: from the order's info
            maker = info.get("m")
            fill = self._base("fill", symbol, ts, index, receipt)
            fill.update(order_id=_str(o.get("id")), trade_id=_str(info.get("t")), side=o.get("side"),
                        price=from_ccxt(info.get("L")), amount=from_ccxt(info.get("l")), fee=from_ccxt(info.get("n")),
                        fee_asset=_str(info.get("N")),
                        liquidity=None if not isinstance(maker, bool) else ("maker" if maker else "taker"))
            out.append(fill)
        return out

    def _r_rfq(self, ex: Any, o: Any, data: Any, index: int, receipt: int) -> dict[str, Any]:
        info = o.get("info") or {}
        symbol, pp, ap = self._market(ex, o.get("symbol"), info.get("s"))
        r = self._base("rfq", symbol, ms_to_us(o.get("timestamp")), index, receipt)
        quote = str(info.get("e", "")).startswith("quote")
        r.update(event=info.get("e"), rfq_id=None if quote else _str(o.get("id")),
                 quote_id=_str(o.get("id")) if quote else None, client_id=_str(o.get("clientOrderId")),
                 side=o.get("side"), quantity=from_ccxt(o.get("amount"), ap), quote_quantity=from_ccxt(o.get("cost")),
                 price=from_ccxt(o.get("price"), pp), status=o.get("status"), submit_time=None, expiry_time=None,
                 data={})
        return r

    def _r_position(self, ex: Any, p: Any, data: Any, index: int, receipt: int) -> dict[str, Any]:
        symbol, pp, ap = self._market(ex, p.get("symbol"), _s(data))
        quantity = from_ccxt(p.get("contracts"), ap)
        if quantity is not None and p.get("side") == "short":  # ccxt: unsigned contracts plus a side
            quantity = from_ccxt(-abs(Decimal(quantity)))
        info = p.get("info") or {}
        r = self._base("position", symbol, ms_to_us(p.get("timestamp")), index, receipt)
        r.update(entry_price=from_ccxt(p.get("entryPrice"), pp), break_even_price=None,
                 mark_price=from_ccxt(p.get("markPrice")), quantity=quantity,
                 notional=from_ccxt(p.get("notional")), liquidation_price=from_ccxt(p.get("liquidationPrice")),
                 realized_pnl=from_ccxt(p.get("realizedPnl")), unrealized_pnl=from_ccxt(p.get("unrealizedPnl")),
                 event=info.get("e"), position_id=_str(p.get("id")))
        return r

    def _r_balance(self, ex: Any, data: Any, _data: Any, index: int, receipt: int) -> dict[str, Any] | None:
        if not isinstance(data, dict):
            return None
        code = ex.safe_currency_code(data.get("a"))
        account = (ex.balance or {}).get(code) or {}
        r = self._base("balance", None, ms_to_us((ex.balance or {}).get("timestamp")), index, receipt)
        r.update(asset=code, available=from_ccxt(account.get("free")), locked=from_ccxt(account.get("used")),
                 staked=None, event="balanceUpdate")
        return r

    # -- books ----------------------------------------------------------------------------------------

    def _levels(self, side: Any, pp: int | None, ap: int | None) -> list[list[str | None]]:
        top = list(side[: self.depth]) if self.depth is not None else list(side)
        return [[from_ccxt(level[0], pp), from_ccxt(level[1], ap)] for level in top]

    def _book_record(self, ex: Any, ccxt_symbol: str, kind: str, index: int | None, receipt: int | None,
                     delta: Any) -> dict[str, Any] | None:
        book = ex.orderbooks.get(ccxt_symbol)
        if book is None or book.get("nonce") is None:
            return None
        symbol, pp, ap = self._market(ex, ccxt_symbol)
        r = self._base("book", symbol, ms_to_us(book.get("timestamp")), index, receipt)
        r.update(kind=kind, sequence=book.get("nonce"), bids=self._levels(book["bids"], pp, ap),
                 asks=self._levels(book["asks"], pp, ap),
                 delta=None if delta is None else {"bids": _raw_levels(delta.get("b")), "asks": _raw_levels(delta.get("a"))},
                 unchecked_gap=self._gap.get(ccxt_symbol))
        return r

    def _book_after_delta(self, ex: Any, delta: Any, index: int, receipt: int) -> None:
        ccxt_symbol = ex.safe_symbol(delta.get("s"))
        first, last = _int(delta.get("U")), _int(delta.get("u"))
        previous = self._last_u.get(ccxt_symbol)
        if previous is not None and first is not None and first > previous + 1 and self._gap.get(ccxt_symbol) is None:
            self._gap[ccxt_symbol] = {"expected": previous + 1, "got": first, "sequence": last}
        if last is not None:
            self._last_u[ccxt_symbol] = max(last, previous) if previous is not None else last
        record = self._book_record(ex, ccxt_symbol, "delta", index, receipt, delta)
        if record is not None:
            self.result.records.append(record)

    def _after_sync(self, ex: Any, ccxt_symbol: str, frame: tuple[int, WsRecv] | None) -> None:
        book = ex.orderbooks.get(ccxt_symbol)
        index, receipt = (frame[0], frame[1].receipt) if frame else (None, None)
        if book is None or book.get("nonce") is None:
            self.result.resets.append({"symbol": ccxt_symbol, "frame": index})
            self._last_u.pop(ccxt_symbol, None)
            self._gap[ccxt_symbol] = None
            return
        self._gap[ccxt_symbol] = None
        self._last_u[ccxt_symbol] = book["nonce"]
        record = self._book_record(ex, ccxt_symbol, "snapshot", index, receipt, None)
        if record is not None:
            self.result.records.append(record)


def _frame_data(text: Any) -> Any:
    try:
        doc = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None
    return doc.get("data") if isinstance(doc, dict) else None


def _frame_stream(text: Any) -> str:
    try:
        doc = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return ""
    stream = doc.get("stream") if isinstance(doc, dict) else None
    return stream if isinstance(stream, str) else ""


def _s(data: Any) -> str | None:
    """The frame's market id: where ccxt does not know the market, its record is named by this."""
    value = data.get("s") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _raw_levels(levels: Any) -> list[list[str | None]]:
    out: list[list[str | None]] = []
    for level in levels if isinstance(levels, list) else ():
        if isinstance(level, list) and len(level) == 2:
            out.append([from_ccxt(level[0]), from_ccxt(level[1])])
    return out


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


async def run_oracle(recording: str | Any, *, depth: int | None = DEFAULT_DEPTH) -> OracleResult:
    rec = recording if isinstance(recording, Recording) else read_recording(recording)
    return await CcxtOracle(rec, depth=depth).run()


def oracle_records(recording: str | Any, *, depth: int | None = DEFAULT_DEPTH) -> OracleResult:
    """Blocking form of ``run_oracle`` (its own event loop)."""
    return asyncio.run(run_oracle(recording, depth=depth))


__all__ = ["CCXT_TIME_RESOLUTION_US", "CcxtOracle", "OracleResult", "oracle_records", "run_oracle"]
