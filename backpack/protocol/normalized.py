"""The canonical normalized event stream, schema v1: Router outputs (+ the book) -> JSON lines.

Every consumer that compares feeds (tests, the replay CLI, parity, bisect, conformance) reads this one
stream, so its bytes are the contract: one JSON object per line, keys sorted, no whitespace, ASCII
only; prices and sizes as canonical decimal strings; timestamps as integer microseconds. The field
names per type are those of the architecture notes ("Normalized event schema, version 1"), listed in
``SCHEMA`` below.

Canonical decimals are ``format(Decimal(x).normalize(), "f")``, so ``"86700.0"``, ``"86700"`` and
``"8.67E+4"`` all print ``86700``; two deliberate refinements: normalisation runs in an unbounded
context (the default 28-digit context would round a long value), and negative zero prints ``0``: it is
the same quantity, and a canonical form must not depend on the sign of nothing.

Pure and deterministic: nothing here reads a clock or iterates an unordered container into the output,
so the same outputs give byte-identical lines under every ``PYTHONHASHSEED``.

Timing matters for ``book`` records: the top levels are read from the Router's book when the output is
normalized, so feed each Router call's outputs to ``Normalizer.lines`` before the next call changes the
book (the Router emits at most one ``BookUpdate`` per call and it describes the book as the call left it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, InvalidOperation
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from .book import BookManager, OrderBook
from .events import (
    RAW_LIMIT,
    BalanceUpdate,
    BookTicker,
    BookUpdate,
    Candle,
    ErrorEvent,
    Liquidation,
    MarkPrice,
    OpenInterest,
    OrderUpdate,
    PositionUpdate,
    ResyncNeeded,
    RfqUpdate,
    Ticker,
    Trade,
)
from .symbols import normalize_symbol

SCHEMA_VERSION = 1
EXCHANGE = "BACKPACK"
DEFAULT_DEPTH = 10

COMMON_FIELDS = ("type", "exchange", "symbol", "timestamp", "receipt")
SCHEMA: dict[str, tuple[str, ...]] = {
    "trade": ("id", "side", "price", "amount"),
    "book": ("kind", "sequence", "bids", "asks", "delta"),
    "book_resync": ("reason", "expected", "got"),
    "bbo": ("bid", "bid_size", "ask", "ask_size", "sequence"),
    "ticker": ("open", "high", "low", "close", "volume", "quote_volume", "trades"),
    "candle": ("interval", "start", "stop", "open", "high", "low", "close", "volume", "trades", "closed"),
    "funding": ("mark_price", "index_price", "rate", "next_funding_time"),
    "open_interest": ("open_interest",),
    "liquidation": ("side", "price", "amount"),
    "order": ("event", "order_id", "client_order_id", "side", "order_type", "status", "price", "amount",
              "filled", "remaining", "time_in_force", "post_only"),
    "fill": ("order_id", "trade_id", "side", "price", "amount", "fee", "fee_asset", "liquidity"),
    "position": ("entry_price", "break_even_price", "mark_price", "quantity", "notional",
                 "liquidation_price", "realized_pnl", "unrealized_pnl"),
    "balance": ("asset", "available", "locked", "staked"),
    "error": ("code", "message", "raw"),
    "rfq": ("event", "rfq_id", "quote_id", "client_id", "side", "quantity", "quote_quantity", "price", "status",
            "submit_time", "expiry_time", "data"),  # an extra type beyond schema v1's list
}
"""The fixed fields per type (every record also has ``COMMON_FIELDS``; extra fields are allowed)."""

_UNBOUNDED = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


_TEXT: dict[Decimal, str] = {}  # finite Decimal -> its canonical text: book levels repeat frame after frame
_TEXT_MAX = 1 << 16  # entries kept before the cache starts over
_TEXT_LONGEST = 64  # longer texts are computed every time, so the cache stays a few MB at most


def canonical_decimal(value: Any) -> str | None:
    """Canonical text of a decimal value; ``None`` stays ``None``. Never raises.

    Non-finite values print as ``NaN`` / ``Infinity`` / ``-Infinity``; a value that is not a number at
    all (a foreign extra field) prints as its ``str``, so nothing is silently lost.

    The text is a function of the numeric value alone (``1.10`` and ``1.1`` print alike), so it is kept
    per finite ``Decimal``: the replayed book's top levels are the same values on most frames, and their
    conversion was most of a replay's time (docs/benchmarks.md).
    """
    if type(value) is Decimal:
        try:
            text = _TEXT.get(value)
        except TypeError:  # a signalling NaN cannot be hashed
            text = None
        if text is not None:
            return text
        text = _canonical(value)
        if len(text) <= _TEXT_LONGEST and value.is_finite():  # a hostile 1E+100000 is not kept
            if len(_TEXT) >= _TEXT_MAX:
                _TEXT.clear()
            _TEXT[value] = text
        return text
    return _canonical(value)


def _canonical(value: Any) -> str | None:
    """``canonical_decimal`` computed afresh (the reference the cache is tested against)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        value = repr(value)  # the shortest text that round-trips the double, never Decimal(float)
    try:
        d = value if isinstance(value, Decimal) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    if not d.is_finite():
        return "NaN" if d.is_nan() else ("-Infinity" if d.is_signed() else "Infinity")
    if not d:
        return "0"  # 0, -0, 0E-8, 0.00000
    return format(d.normalize(_UNBOUNDED), "f")


def dumps(record: dict[str, Any]) -> str:
    """One canonical line (no newline): sorted keys, compact separators, ASCII, no NaN."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


_CANON: dict[Decimal, str] = {}
_CANON_LIMIT = 1 << 16


def _level_text(value: Any) -> str | None:
    """``canonical_decimal`` memoised for Decimals: a book line prints 4N of them, mostly the same values
    again (canonical text depends on the value alone, and equal values hash equal)."""
    if type(value) is not Decimal:
        return canonical_decimal(value)
    try:
        return _CANON[value]
    except KeyError:
        pass
    except TypeError:  # a signalling NaN is unhashable
        return canonical_decimal(value)
    text = canonical_decimal(value)
    if len(_CANON) >= _CANON_LIMIT:
        _CANON.clear()
    _CANON[value] = text  # type: ignore[assignment]
    return text


def _levels(levels: Any) -> list[list[str | None]]:
    out: list[list[str | None]] = []
    text = _level_text
    for level in levels or ():
        try:
            price, size = level
        except (TypeError, ValueError):
            continue  # the book machine refuses such a delta anyway; the output must not crash
        out.append([text(price), text(size)])
    return out


_FRAGMENT: dict[tuple[Any, Any], str] = {}  # (price, size) -> '["p","s"]': top levels repeat line after line
_FRAGMENT_LIMIT = 1 << 16


def _json_text(text: Any) -> str:
    """``json.dumps`` of one scalar as ``dumps`` writes it (a text, None, or whatever a ``symbol`` map gave)."""
    if type(text) is str:
        return _quote(text)
    return "null" if text is None else dumps(text)


def _side_text(levels: Any) -> str:
    """``dumps(_levels(levels))``, from the text of each level kept per (price, size) of Decimals (equal
    Decimals print alike, and a Decimal never equals a value of another type that prints otherwise here)."""
    out: list[str] = []
    cache = _FRAGMENT
    for level in levels or ():
        try:
            price, size = level
        except (TypeError, ValueError):
            continue  # as _levels: skipped
        if type(price) is Decimal and type(size) is Decimal:
            try:
                fragment = cache.get((price, size))
            except TypeError:  # a signalling NaN is unhashable
                fragment = None
            else:
                if fragment is None:
                    fragment = f"[{_json_text(_level_text(price))},{_json_text(_level_text(size))}]"
                    if len(cache) >= _FRAGMENT_LIMIT:
                        cache.clear()
                    cache[(price, size)] = fragment
                out.append(fragment)
                continue
        out.append(f"[{_json_text(_level_text(price))},{_json_text(_level_text(size))}]")
    return f"[{','.join(out)}]"


def _json_int(value: Any) -> str:
    return int.__repr__(value) if type(value) is int else "null"


def _plain(value: Any) -> Any:
    """Free-form data (RFQ ``data``) made canonical: Decimals and floats become decimal strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | Decimal):
        return canonical_decimal(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)


def _time(event: Any) -> int | None:
    """Exchange time: ``T`` where the frame has it (``timestamp``), else ``E`` (``event_time``)."""
    ts = _int(getattr(event, "timestamp", None))
    if ts:
        return ts
    return _int(getattr(event, "event_time", None))


def _remaining(event: OrderUpdate) -> str | None:
    amount = getattr(event, "amount", None)
    if amount is None:
        return None
    filled = getattr(event, "filled", None)
    try:
        return canonical_decimal(amount - (filled if filled is not None else Decimal(0)))
    except (TypeError, ArithmeticError):
        return None


class Normalizer:
    """Turns Router outputs into schema-v1 records; give it the Router's ``BookManager`` (``router.books``).

    ``depth`` is N, the levels per side in ``book`` records (None: the whole book). ``symbol`` maps a
    native symbol to the cryptofeed name; the default is the exchange's rule (``normalize_symbol``), and a
    symbol that breaks the rule is passed through as it is rather than dropped.
    """

    def __init__(self, books: BookManager | None = None, *, depth: int | None = DEFAULT_DEPTH,
                 symbol: Callable[[str], str] | None = None) -> None:
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
            raise ValueError(f"depth must be a positive integer or None, got {depth!r}")
        self.books = books
        self.depth = depth
        self._symbol = symbol
        self.ignored = 0  # outputs that are not events (FetchSnapshot, Send) or of an unknown type
        self._names: dict[str, str | None] = {}  # native -> cryptofeed name, by the rule (no ``symbol``)
        # symbol -> (top bids, their text, top asks, their text) of its last book line: most deltas leave
        # one side's top N as it was, and an OrderBook holds only Decimals, whose text is their value's
        self._sides: dict[Any, tuple[list[Any], str, list[Any], str]] = {}

    @classmethod
    def for_router(cls, router: Any, **kwargs: Any) -> Normalizer:
        return cls(router.books, **kwargs)

    # -- public -------------------------------------------------------------------------------------

    def lines(self, outputs: Iterable[Any]) -> list[str]:
        """Canonical lines (no newlines) for one Router call's outputs, in order."""
        out: list[str] = []
        for output in outputs:
            if type(output) is BookUpdate:
                out.append(self._book_line(output))
            else:
                out.extend(dumps(r) for r in self.record(output))
        return out

    def records(self, outputs: Iterable[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for output in outputs:
            out.extend(self.record(output))
        return out

    def record(self, output: Any) -> list[dict[str, Any]]:
        """0, 1 or 2 records for one output (an ``orderFill`` gives an ``order`` and a ``fill``)."""
        handler = self._handler(type(output))
        if handler is None:
            self.ignored += 1
            return []
        return handler(self, output)

    def _handler(self, cls: type) -> Callable[[Normalizer, Any], list[dict[str, Any]]] | None:
        handler = self._handlers.get(cls)
        if handler is None:
            # A subclass (e.g. an event type another branch extends) is normalized as its base.
            handler = next((self._handlers[base] for base in cls.__mro__[1:] if base in self._handlers), None)
        return handler

    # -- helpers ------------------------------------------------------------------------------------

    def _sym(self, native: Any) -> str | None:
        if native is None:
            return None
        if not isinstance(native, str):
            return str(native)
        if self._symbol is None:
            name = self._names.get(native)
            if name is None:
                try:
                    name = normalize_symbol(native)
                except ValueError:
                    name = native
                if len(self._names) < 4096:
                    self._names[native] = name
            return name
        if self._symbol is not None:
            try:
                return self._symbol(native)
            except (KeyError, ValueError):
                pass
        try:
            return normalize_symbol(native)
        except ValueError:
            return native

    def _base(self, kind: str, event: Any, symbol: Any, timestamp: int | None) -> dict[str, Any]:
        return {
            "type": kind,
            "exchange": EXCHANGE,
            "symbol": self._sym(symbol),
            "timestamp": timestamp,
            "receipt": _int(getattr(event, "receipt", None)),
        }

    # -- per type -----------------------------------------------------------------------------------

    def _trade(self, e: Trade) -> list[dict[str, Any]]:
        r = self._base("trade", e, e.symbol, _time(e))
        r.update(id=_str(e.id), side=_str(e.side), price=canonical_decimal(e.price), amount=canonical_decimal(e.amount))
        return [r]

    def _book(self, e: BookUpdate) -> list[dict[str, Any]]:
        r = self._base("book", e, e.symbol, _int(e.timestamp) or None)
        bids: list[list[str | None]] = []
        asks: list[list[str | None]] = []
        books = self.books
        if books is not None and e.symbol in books:
            top_bids, top_asks = books.get(e.symbol).book.top(self.depth)
            bids, asks = _levels(top_bids), _levels(top_asks)
        delta = e.delta
        r.update(
            kind=_str(e.kind), sequence=_int(e.sequence), bids=bids, asks=asks,
            delta=None if delta is None else {"bids": _levels(delta.bids), "asks": _levels(delta.asks)},
        )
        return [r]

    def _book_line(self, e: BookUpdate) -> str:
        """``dumps(self._book(e)[0])`` written directly: the book line is most of a replay's output, and the
        generic encoder walked 4N nested lists per line (issue 12). Keys in sorted order, as ``dumps``."""
        books = self.books
        bids = asks = "[]"
        if books is not None and e.symbol in books:
            book = books.get(e.symbol).book
            top_bids, top_asks = book.top(self.depth)
            last = self._sides.get(e.symbol)
            if last is None or type(book) is not OrderBook:
                bids, asks = _side_text(top_bids), _side_text(top_asks)
            else:
                bids = last[1] if top_bids == last[0] else _side_text(top_bids)
                asks = last[3] if top_asks == last[2] else _side_text(top_asks)
            if type(book) is OrderBook and (last is not None or len(self._sides) < 4096):
                self._sides[e.symbol] = (top_bids, bids, top_asks, asks)
        delta = e.delta
        delta_text = "null" if delta is None else (
            f'{{"asks":{_side_text(delta.asks) if delta.asks else "[]"},'
            f'"bids":{_side_text(delta.bids) if delta.bids else "[]"}}}')
        symbol = self._sym(e.symbol)
        return (f'{{"asks":{asks},"bids":{bids},"delta":{delta_text},"exchange":"{EXCHANGE}",'
                f'"kind":{_json_text(_str(e.kind))},"receipt":{_json_int(getattr(e, "receipt", None))},'
                f'"sequence":{_json_int(e.sequence)},"symbol":{_json_text(symbol)},'
                f'"timestamp":{_json_int(_int(e.timestamp) or None)},"type":"book"}}')

    def _resync(self, e: ResyncNeeded) -> list[dict[str, Any]]:
        r = self._base("book_resync", e, e.symbol, None)
        r.update(reason=_str(e.reason), expected=_int(e.expected), got=_int(e.got))
        return [r]

    def _bbo(self, e: BookTicker) -> list[dict[str, Any]]:
        r = self._base("bbo", e, e.symbol, _time(e))
        r.update(bid=canonical_decimal(e.bid), bid_size=canonical_decimal(e.bid_size),
                 ask=canonical_decimal(e.ask), ask_size=canonical_decimal(e.ask_size), sequence=_int(e.sequence))
        return [r]

    def _ticker(self, e: Ticker) -> list[dict[str, Any]]:
        r = self._base("ticker", e, e.symbol, _time(e))
        d = canonical_decimal
        r.update(open=d(e.open), high=d(e.high), low=d(e.low), close=d(e.close), volume=d(e.volume),
                 quote_volume=d(e.quote_volume), trades=_int(e.trades))
        return [r]

    def _candle(self, e: Candle) -> list[dict[str, Any]]:
        r = self._base("candle", e, e.symbol, _time(e))
        d = canonical_decimal
        r.update(interval=_str(e.interval), start=_int(e.start), stop=_int(e.stop), open=d(e.open), high=d(e.high),
                 low=d(e.low), close=d(e.close), volume=d(e.volume), trades=_int(e.trades),
                 closed=_bool(e.closed))
        return [r]

    def _funding(self, e: MarkPrice) -> list[dict[str, Any]]:
        r = self._base("funding", e, e.symbol, _time(e))
        r.update(mark_price=canonical_decimal(e.mark_price), index_price=canonical_decimal(e.index_price),
                 rate=canonical_decimal(e.funding_rate), next_funding_time=_int(e.next_funding_time))
        return [r]

    def _open_interest(self, e: OpenInterest) -> list[dict[str, Any]]:
        r = self._base("open_interest", e, e.symbol, _time(e))
        r.update(open_interest=canonical_decimal(e.open_interest))
        return [r]

    def _liquidation(self, e: Liquidation) -> list[dict[str, Any]]:
        r = self._base("liquidation", e, e.symbol, _time(e))
        r.update(side=_str(e.side), price=canonical_decimal(e.price), amount=canonical_decimal(e.amount))
        return [r]

    def _order(self, e: OrderUpdate) -> list[dict[str, Any]]:
        d = canonical_decimal
        g = getattr  # fields other engineers are adding or retyping are read defensively
        ts = _time(e)
        order = self._base("order", e, e.symbol, ts)
        order.update(
            event=_str(e.event), order_id=_str(e.order_id), client_order_id=_str(e.client_order_id),
            side=_str(e.side), order_type=_str(e.order_type), status=_str(e.status), price=d(e.price),
            amount=d(e.amount), filled=d(e.filled), remaining=_remaining(e),
            time_in_force=_str(e.time_in_force), post_only=_bool(e.post_only),
            # extras
            trigger_price=d(g(e, "trigger_price", None)), trigger_quantity=d(g(e, "trigger_quantity", None)),
        )
        out = [order]
        # The same condition as the feed's FILLS callback, so both count the same fills.
        if e.event == "orderFill" and g(e, "last_fill_amount", None) is not None:
            maker = g(e, "maker", None)
            fill = self._base("fill", e, e.symbol, ts)
            fill.update(
                order_id=_str(e.order_id), trade_id=_str(g(e, "trade_id", None)), side=_str(e.side),
                price=d(g(e, "last_fill_price", None)), amount=d(e.last_fill_amount), fee=d(g(e, "fee", None)),
                fee_asset=_str(g(e, "fee_asset", None)),
                liquidity=None if not isinstance(maker, bool) else ("maker" if maker else "taker"),
            )
            out.append(fill)
        return out

    def _position(self, e: PositionUpdate) -> list[dict[str, Any]]:
        d = canonical_decimal
        r = self._base("position", e, e.symbol, _time(e))
        r.update(
            entry_price=d(e.entry_price), break_even_price=d(e.break_even_price), mark_price=d(e.mark_price),
            quantity=d(e.quantity), notional=d(e.notional), liquidation_price=d(e.liquidation_price),
            realized_pnl=d(e.realized_pnl), unrealized_pnl=d(e.unrealized_pnl),
            # extras
            event=_str(e.event), position_id=_str(e.position_id),
        )
        return [r]

    def _balance(self, e: BalanceUpdate) -> list[dict[str, Any]]:
        # A balance belongs to an asset, not a market: ``symbol`` is null and the asset is in ``asset``.
        r = self._base("balance", e, None, _time(e))
        d = canonical_decimal
        r.update(asset=_str(e.asset), available=d(e.available), locked=d(e.locked), staked=d(e.staked),
                 event=_str(e.event))
        return [r]

    def _rfq(self, e: RfqUpdate) -> list[dict[str, Any]]:
        r = self._base("rfq", e, e.symbol, _time(e))
        d = canonical_decimal
        r.update(event=_str(e.event), rfq_id=_str(e.rfq_id), quote_id=_str(e.quote_id),
                 client_id=_str(e.client_id), side=_str(e.side), quantity=d(e.quantity),
                 quote_quantity=d(e.quote_quantity), price=d(e.price), status=_str(e.status),
                 submit_time=_int(e.submit_time), expiry_time=_int(e.expiry_time),
                 data=_plain(e.data if e.data is not None else {}))
        return [r]

    def _error(self, e: ErrorEvent) -> list[dict[str, Any]]:
        r = self._base("error", e, None, None)
        code = e.code
        if code is not None and not (type(code) is int or isinstance(code, str)):
            code = str(code)
        raw = e.raw if isinstance(e.raw, str) else _str(e.raw)
        r.update(code=code, message=_str(e.message), raw=None if raw is None else raw[:RAW_LIMIT],
                 stream=_str(getattr(e, "stream", None)))
        return [r]

    _handlers: dict[type, Callable[[Normalizer, Any], list[dict[str, Any]]]] = {
        Trade: _trade,
        BookUpdate: _book,
        ResyncNeeded: _resync,
        BookTicker: _bbo,
        Ticker: _ticker,
        Candle: _candle,
        MarkPrice: _funding,
        OpenInterest: _open_interest,
        Liquidation: _liquidation,
        OrderUpdate: _order,
        PositionUpdate: _position,
        BalanceUpdate: _balance,
        RfqUpdate: _rfq,
        ErrorEvent: _error,
    }


def normalize(outputs: Iterable[Any], books: BookManager | None = None, *, depth: int | None = DEFAULT_DEPTH
              ) -> list[str]:
    """One-shot form of ``Normalizer(books, depth=depth).lines(outputs)``."""
    return Normalizer(books, depth=depth).lines(outputs)


__all__ = [
    "COMMON_FIELDS", "DEFAULT_DEPTH", "EXCHANGE", "SCHEMA", "SCHEMA_VERSION", "Normalizer", "canonical_decimal",
    "dumps", "normalize",
]
