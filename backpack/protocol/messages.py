"""Backpack WebSocket frames and REST bodies -> typed events. Sans-I/O; never raises.

Two paths, one contract. The *fast path* handles the frames the exchange actually sends (numbers
as the live wire types them, every field present) with no per-field ``try``: a stream-name dict
lookup picks a handler, which reads fields directly and builds the event. Anything it is not sure
about raises, and the whole frame is handed to the *careful path*, which re-reads it field by field
with the lenient rules in :mod:`backpack.protocol.numbers` (strings or JSON numbers, ``"N/A"``,
nulls, absent optional fields, the position snapshot) and either builds the same event or explains
precisely what is wrong in an :class:`ErrorEvent`. The fast path accepts a strict subset of what
the careful path accepts and builds identical events for it (a property test checks this), so the
split is invisible to callers. A frame with an ``error`` member always takes the careful path, which
reports the error after the envelope's events when the frame also carries ``stream`` and ``data``.

Decimal fields that arrive as JSON numbers are accepted via ``repr(float)`` (see ``numbers``) and
counted in ``Decoder.stats["coerced"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

import orjson

from .events import (
    RAW_LIMIT,
    BalanceUpdate,
    BookTicker,
    Candle,
    DepthDelta,
    DepthSnapshot,
    ErrorEvent,
    Event,
    Level,
    Liquidation,
    MarkPrice,
    OpenInterest,
    OrderUpdate,
    PositionUpdate,
    RfqUpdate,
    Ticker,
    Trade,
)
from .numbers import NumberError, describe, iso_to_us, ms_to_us, to_bool, to_decimal, to_int
from .speedups import compiled_for

__all__ = ["Decoder", "decode_depth_snapshot", "decode_rest_klines", "decode_rest_trades"]

_loads = orjson.loads
_D = Decimal
_new = object.__new__
# Characters of a plain decimal the fast path trusts; anything else (exponents, NaN, Infinity,
# whitespace, "N/A") goes to the careful path.
_NUM = "0123456789.-"
_UNPARSED = object()
_MAX_ROUTES = 4096

STATS_KEYS = ("frames", "events", "errors", "unknown_stream", "coerced", "dropped", "stream_mismatch")


class _Slow(Exception):
    """The fast path gives up on this frame; the careful path decides and explains."""


# --------------------------------------------------------------------------------------------
# fast path: one handler per hot stream, positional dataclass construction, no per-field try
# --------------------------------------------------------------------------------------------


_DECIMAL_CACHE_MAX = 1 << 14
_DC: dict[str, Decimal] = {}
"""Validated price text -> Decimal. Book and trade prices repeat from frame to frame (a book has a few
hundred live levels), and a dict hit costs a fraction of ``Decimal(text)``. Sizes, 24h stats and mark
prices rarely repeat, so they are converted directly: caching them measured slower. A plain dict read
with ``.get`` (a miss calls ``_price``): subscripting a dict subclass with ``__missing__`` is not
specialised by the interpreter and measured about 30 ns slower per hit. Bounded by clearing when full;
Decimals are immutable, so sharing them is safe."""


def _price(text: str) -> Decimal:
    """Cache miss: admit only plain decimal text (digits, ``.``, ``-``); anything else, including
    non-strings, raises so the frame goes to the careful path."""
    if text.strip(_NUM):  # AttributeError for non-strings, non-empty for any other character
        raise _Slow
    value = _D(text)  # InvalidOperation for "", "-", "1.2.3", ...
    if len(_DC) >= _DECIMAL_CACHE_MAX:
        _DC.clear()
    _DC[text] = value
    return value


def _fast_levels(side: Any) -> list[Level]:
    """Levels without the price cache (a REST book's thousands of prices would only churn it)."""
    if side.__class__ is not list:
        raise _Slow
    out = []
    append = out.append
    for level in side:
        if level.__class__ is not list:  # a 2-char string or a 2-key object would unpack too
            raise _Slow
        price, size = level
        if (price + size).strip(_NUM):  # TypeError unless both are str; non-empty for any other char
            raise _Slow
        append((_D(price), _D(size)))
    return out


def _fast_depth(d: Any, receipt: int) -> DepthDelta:
    s = d["s"]
    first = d["U"]
    last = d["u"]
    ts = d["T"]
    et = d["E"]
    bid_side = d["b"]
    ask_side = d["a"]
    if s.__class__ is not str or not s or bid_side.__class__ is not list or ask_side.__class__ is not list:
        raise _Slow
    if first.__class__ is not int:
        first = to_int(first)
    if last.__class__ is not int:
        last = to_int(last)
    if ts.__class__ is not int:
        ts = to_int(ts)
    if et.__class__ is not int:
        et = to_int(et)
    # Both loops are inlined: a depth frame carries 1-3 levels, so a helper call costs as much as a level.
    cached = _DC.get  # TypeError for an unhashable price -> careful path
    bids = []
    for level in bid_side:
        if level.__class__ is not list:  # a 2-char string or a 2-key object would unpack too
            raise _Slow
        price, size = level
        if size.strip(_NUM):
            raise _Slow
        p = cached(price)
        if p is None:
            p = _price(price)
        bids.append((p, _D(size)))
    asks = []
    for level in ask_side:
        if level.__class__ is not list:
            raise _Slow
        price, size = level
        if size.strip(_NUM):
            raise _Slow
        p = cached(price)
        if p is None:
            p = _price(price)
        asks.append((p, _D(size)))
    # DepthDelta(s, first, last, bids, asks, ts, et, receipt) without the Python __init__ frame (one
    # per depth frame); tests/test_perf_equivalence.py fails if DepthDelta's fields change.
    delta = _new(DepthDelta)
    delta.symbol = s
    delta.first_update_id = first
    delta.last_update_id = last
    delta.bids = bids
    delta.asks = asks
    delta.timestamp = ts
    delta.event_time = et
    delta.receipt = receipt
    return delta


def _fast_trade(d: Any, receipt: int) -> Trade:
    s = d["s"]
    size = d["q"]
    tid = d["t"]
    maker = d["m"]
    buyer = d["b"]
    seller = d["a"]
    ts = d["T"]
    et = d["E"]
    if (
        s.__class__ is not str
        or not s
        or tid.__class__ is not int
        or maker.__class__ is not bool
        or buyer.__class__ is not str
        or seller.__class__ is not str
        or size.strip(_NUM)
    ):
        raise _Slow
    if ts.__class__ is not int:
        ts = to_int(ts)
    if et.__class__ is not int:
        et = to_int(et)
    price = d["p"]
    p = _DC.get(price)
    if p is None:
        p = _price(price)
    # Trade(s, str(tid), side, p, _D(size), ts, et, buyer, seller, receipt) without the Python __init__
    # frame; tests/test_perf_equivalence.py fails if Trade's fields change.
    trade = _new(Trade)
    trade.symbol = s
    trade.id = str(tid)
    trade.side = "sell" if maker else "buy"
    trade.price = p
    trade.amount = _D(size)
    trade.timestamp = ts
    trade.event_time = et
    trade.buyer_order_id = buyer
    trade.seller_order_id = seller
    trade.receipt = receipt
    return trade


def _fast_book_ticker(d: Any, receipt: int) -> BookTicker:
    s = d["s"]
    ask_size = d["A"]
    bid_size = d["B"]
    seq = d["u"]
    ts = d["T"]
    et = d["E"]
    if s.__class__ is not str or not s or (ask_size + bid_size).strip(_NUM):
        raise _Slow
    if seq.__class__ is not int:
        seq = to_int(seq)
    if ts.__class__ is not int:
        ts = to_int(ts)
    if et.__class__ is not int:
        et = to_int(et)
    bid = d["b"]
    ask = d["a"]
    cached = _DC.get
    b = cached(bid)
    if b is None:
        b = _price(bid)
    a = cached(ask)
    if a is None:
        a = _price(ask)
    return BookTicker(s, b, _D(bid_size), a, _D(ask_size), seq, ts, et, receipt)


def _fast_ticker(d: Any, receipt: int) -> Ticker:
    s = d["s"]
    o = d["o"]
    c = d["c"]
    h = d["h"]
    lo = d["l"]
    v = d["v"]
    qv = d["V"]
    n = d["n"]
    et = d["E"]
    if s.__class__ is not str or not s or n.__class__ is not int or (o + c + h + lo + v + qv).strip(_NUM):
        raise _Slow
    if et.__class__ is not int:
        et = to_int(et)
    return Ticker(s, _D(o), _D(h), _D(lo), _D(c), _D(v), _D(qv), n, et, receipt)


def _fast_kline(interval: str, d: Any, receipt: int) -> Candle:
    s = d["s"]
    o = d["o"]
    c = d["c"]
    h = d["h"]
    lo = d["l"]
    v = d["v"]
    n = d["n"]
    closed = d["X"]
    et = d["E"]
    if (
        s.__class__ is not str
        or not s
        or n.__class__ is not int
        or closed.__class__ is not bool
        or (o + c + h + lo + v).strip(_NUM)
    ):
        raise _Slow
    if et.__class__ is not int:
        et = to_int(et)
    return Candle(
        s, interval, iso_to_us(d["t"]), iso_to_us(d["T"]),
        _D(o), _D(h), _D(lo), _D(c), _D(v), n, closed, et, receipt,
    )  # fmt: skip


def _fast_mark_price(d: Any, receipt: int) -> MarkPrice:
    s = d["s"]
    mark = d["p"]
    rate = d["f"]
    index = d["i"]
    nxt = d["n"]
    ts = d["T"]
    et = d["E"]
    if s.__class__ is not str or not s or nxt.__class__ is not int or (mark + rate + index).strip(_NUM):
        raise _Slow
    if ts.__class__ is not int:
        ts = to_int(ts)
    if et.__class__ is not int:
        et = to_int(et)
    return MarkPrice(s, _D(mark), _D(index), _D(rate), nxt * 1000, ts, et, receipt)


# --------------------------------------------------------------------------------------------
# careful path: field-by-field with precise messages
# --------------------------------------------------------------------------------------------


class _FieldError(Exception):
    """A payload the careful path refuses; ``str()`` is the user-facing reason."""


_SIDES = {"Bid": "buy", "Ask": "sell"}


class _Reader:
    """Reads one payload object; every refusal names the field and the offending value."""

    __slots__ = ("d", "coerced")

    def __init__(self, d: dict) -> None:
        self.d = d
        self.coerced = 0

    def _fail(self, key: str, reason: str) -> _FieldError:
        return _FieldError(f"field {key!r}: {reason}")

    def _get(self, key: str) -> Any:
        try:
            return self.d[key]
        except KeyError:
            raise _FieldError(f"missing field {key!r}") from None

    def req_int(self, key: str) -> int:
        try:
            return to_int(self._get(key))
        except NumberError as exc:
            raise self._fail(key, str(exc)) from None

    def opt_int(self, key: str) -> int | None:
        value = self.d.get(key)
        if value is None:
            return None
        try:
            return to_int(value)
        except NumberError as exc:
            raise self._fail(key, str(exc)) from None

    def opt_dec(self, key: str) -> Decimal | None:
        try:
            value, coerced = to_decimal(self.d.get(key))
        except NumberError as exc:
            raise self._fail(key, str(exc)) from None
        if coerced:
            self.coerced += 1
        return value

    def req_dec(self, key: str) -> Decimal:
        self._get(key)
        value = self.opt_dec(key)
        if value is None:
            raise self._fail(key, f"expected a decimal, got {describe(self.d[key])}")
        return value

    def req_str(self, key: str) -> str:
        value = self._get(key)
        if type(value) is not str or not value:
            raise self._fail(key, f"expected a non-empty string, got {describe(value)}")
        return value

    def opt_str(self, key: str) -> str | None:
        value = self.d.get(key)
        if value is None or type(value) is str:
            return value
        raise self._fail(key, f"expected a string, got {describe(value)}")

    def opt_id(self, key: str) -> str | None:
        """Identifiers arrive as strings or JSON integers; both become strings."""
        value = self.d.get(key)
        if value is None or type(value) is str:
            return value
        if type(value) is int:
            return str(value)
        raise self._fail(key, f"expected an id (string or integer), got {describe(value)}")

    def req_id(self, key: str) -> str:
        value = self.opt_id(key)
        if not value:
            raise self._fail(key, f"expected an id (string or integer), got {describe(self.d.get(key))}")
        return value

    def req_bool(self, key: str) -> bool:
        try:
            return to_bool(self._get(key))
        except NumberError as exc:
            raise self._fail(key, str(exc)) from None

    def opt_bool(self, key: str) -> bool | None:
        value = self.d.get(key)
        if value is None:
            return None
        try:
            return to_bool(value)
        except NumberError as exc:
            raise self._fail(key, str(exc)) from None

    def side(self, key: str) -> str:
        value = self._get(key)
        side = _SIDES.get(value) if type(value) is str else None
        if side is None:
            raise self._fail(key, f'expected "Bid" or "Ask", got {describe(value)}')
        return side

    def ms_us(self, key: str) -> int:
        try:
            return ms_to_us(self._get(key))
        except NumberError as exc:
            raise self._fail(key, str(exc)) from None

    def iso_us(self, key: str) -> int:
        try:
            return iso_to_us(self._get(key))
        except NumberError as exc:
            raise self._fail(key, str(exc)) from None

    def levels(self, key: str) -> list[Level]:
        return _careful_levels(self._get(key), key, self)

    def symbol(self, route: _Route) -> str:
        if "s" in self.d or route.symbol is None:
            return self.req_str("s")
        return route.symbol

    def times(self, receipt: int, snapshot: bool) -> tuple[int, int]:
        """(T, E) with each standing in for the other when absent; snapshots may carry neither."""
        ts = self.opt_int("T")
        et = self.opt_int("E")
        if ts is None and et is None:
            if not snapshot:
                raise _FieldError("missing fields 'T' and 'E'")
            return receipt, receipt
        return (et if ts is None else ts), (ts if et is None else et)


def _careful_levels(side: Any, key: str, reader: _Reader | None = None) -> list[Level]:
    if type(side) is not list:
        raise _FieldError(f"field {key!r}: expected an array of [price, size], got {describe(side)}")
    out = []
    for i, level in enumerate(side):
        if type(level) is not list or len(level) != 2:
            raise _FieldError(f"field {key!r}[{i}]: expected [price, size], got {describe(level)}")
        pair = []
        for j, item in enumerate(level):
            try:
                value, coerced = to_decimal(item)
            except NumberError as exc:
                raise _FieldError(f"field {key!r}[{i}][{j}]: {exc}") from None
            if value is None:  # a level without a price or size is meaningless, unlike "N/A" stats
                raise _FieldError(f"field {key!r}[{i}][{j}]: expected a decimal, got {describe(item)}")
            if coerced and reader is not None:
                reader.coerced += 1
            pair.append(value)
        out.append((pair[0], pair[1]))
    return out


@dataclass(slots=True, frozen=True)
class _Route:
    kind: str
    symbol: str | None
    interval: str | None


def _c_depth(r: _Reader, route: _Route, receipt: int) -> DepthDelta:
    return DepthDelta(
        r.symbol(route),
        r.req_int("U"),
        r.req_int("u"),
        r.levels("b"),
        r.levels("a"),
        r.req_int("T"),
        r.req_int("E"),
        receipt,
    )


def _c_trade(r: _Reader, route: _Route, receipt: int) -> Trade:
    return Trade(
        r.symbol(route), r.req_id("t"), "sell" if r.req_bool("m") else "buy", r.req_dec("p"), r.req_dec("q"),
        r.req_int("T"), r.req_int("E"), r.opt_id("b"), r.opt_id("a"), receipt,
    )  # fmt: skip


def _c_book_ticker(r: _Reader, route: _Route, receipt: int) -> BookTicker:
    return BookTicker(
        r.symbol(route), r.opt_dec("b"), r.opt_dec("B"), r.opt_dec("a"), r.opt_dec("A"),
        r.req_int("u"), r.req_int("T"), r.req_int("E"), receipt,
    )  # fmt: skip


def _c_ticker(r: _Reader, route: _Route, receipt: int) -> Ticker:
    return Ticker(
        r.symbol(route), r.opt_dec("o"), r.opt_dec("h"), r.opt_dec("l"), r.opt_dec("c"),
        r.opt_dec("v"), r.opt_dec("V"), r.opt_int("n"), r.req_int("E"), receipt,
    )  # fmt: skip


def _c_kline(r: _Reader, route: _Route, receipt: int) -> Candle:
    if route.interval is None:
        raise _FieldError("a kline payload needs a kline.<interval>.<symbol> stream")
    return Candle(
        r.symbol(route), route.interval, r.iso_us("t"), r.iso_us("T"),
        r.opt_dec("o"), r.opt_dec("h"), r.opt_dec("l"), r.opt_dec("c"), r.opt_dec("v"),
        r.opt_int("n"), r.req_bool("X"), r.req_int("E"), receipt,
    )  # fmt: skip


def _c_mark_price(r: _Reader, route: _Route, receipt: int) -> MarkPrice:
    nxt = r.opt_int("n")
    return MarkPrice(
        r.symbol(route), r.opt_dec("p"), r.opt_dec("i"), r.opt_dec("f"),
        None if nxt is None else nxt * 1000, r.req_int("T"), r.req_int("E"), receipt,
    )  # fmt: skip


def _c_open_interest(r: _Reader, route: _Route, receipt: int) -> OpenInterest:
    return OpenInterest(r.symbol(route), r.opt_dec("o"), r.req_int("E"), receipt)


def _c_liquidation(r: _Reader, route: _Route, receipt: int) -> Liquidation:
    return Liquidation(
        r.symbol(route), r.side("S"), r.opt_dec("p"), r.opt_dec("q"), r.req_int("T"), r.req_int("E"), receipt
    )


def _c_order(r: _Reader, route: _Route, receipt: int) -> OrderUpdate:
    ts, et = r.times(receipt, snapshot=False)
    return OrderUpdate(
        symbol=r.symbol(route),
        event=r.req_str("e"),
        order_id=r.req_id("i"),
        client_order_id=r.opt_id("c"),
        side=r.side("S"),
        order_type=r.opt_str("o"),
        status=r.opt_str("X"),
        price=r.opt_dec("p"),
        amount=r.opt_dec("q"),
        quote_amount=r.opt_dec("Q"),
        filled=r.opt_dec("z"),  # cumulative; "l" is only the last fill
        filled_quote=r.opt_dec("Z"),
        last_fill_amount=r.opt_dec("l"),
        last_fill_price=r.opt_dec("L"),
        trade_id=r.opt_id("t"),
        fee=r.opt_dec("n"),
        fee_asset=r.opt_str("N"),
        maker=r.opt_bool("m"),
        time_in_force=r.opt_str("f"),
        post_only=r.opt_bool("y"),
        trigger_price=r.opt_dec("P"),
        trigger_quantity=r.opt_dec("Y"),
        origin=r.opt_str("O"),
        expiry_reason=r.opt_str("R"),
        timestamp=ts,
        event_time=et,
        receipt=receipt,
    )


# REST /api/v1/position keys, in case the snapshot sent on subscribe uses the REST shape.
# estLiquidationPrice is read apart: it has no WS counterpart (see _c_position).
_POSITION_LONG_KEYS = {
    "symbol": "s", "breakEvenPrice": "b", "entryPrice": "B", "markPrice": "M", "netQuantity": "q",
    "netExposureQuantity": "Q", "netExposureNotional": "n", "pnlRealized": "p", "pnlUnrealized": "P",
    "positionId": "i", "imf": "f", "mmf": "m",
}  # fmt: skip


def _c_position(r: _Reader, route: _Route, receipt: int) -> PositionUpdate:
    # The WS stream's "l" is documented as a deprecated placeholder fixed at 0 since 2025-09-01, so it is
    # not read at all: a liquidation price of 0 would be a wrong value, not a missing one. The REST
    # shape's estLiquidationPrice is the exchange's real estimate and is kept.
    liquidation = None
    d = r.d
    if "s" not in d and "symbol" in d:
        liquidation = r.opt_dec("estLiquidationPrice")
        r.d = {short: d[long] for long, short in _POSITION_LONG_KEYS.items() if long in d}
    event = r.opt_str("e")
    ts, et = r.times(receipt, snapshot=event is None)
    return PositionUpdate(
        symbol=r.symbol(route),
        event=event,
        position_id=r.opt_id("i"),
        entry_price=r.opt_dec("B"),
        break_even_price=r.opt_dec("b"),
        mark_price=r.opt_dec("M"),
        quantity=r.opt_dec("q"),
        exposure_quantity=r.opt_dec("Q"),
        notional=r.opt_dec("n"),
        liquidation_price=liquidation,
        realized_pnl=r.opt_dec("p"),
        unrealized_pnl=r.opt_dec("P"),
        initial_margin_fraction=r.opt_dec("f"),
        maintenance_margin_fraction=r.opt_dec("m"),
        timestamp=ts,
        event_time=et,
        receipt=receipt,
    )


def _c_balance(r: _Reader, route: _Route, receipt: int) -> BalanceUpdate:
    event = r.opt_str("e")
    ts, et = r.times(receipt, snapshot=event is None)
    return BalanceUpdate(
        r.req_str("a"), r.opt_dec("A"), r.opt_dec("L"), r.opt_dec("S"), event, ts, et, receipt
    )


_RFQ_OWN_KEYS = frozenset({"e", "E", "s", "R", "u", "C", "S", "q", "Q", "p", "X", "w", "W", "T"})


def _c_rfq(r: _Reader, route: _Route, receipt: int) -> RfqUpdate:
    ts, et = r.times(receipt, snapshot=False)
    submit, expiry = r.opt_int("w"), r.opt_int("W")
    rest = {k: v for k, v in r.d.items() if k not in _RFQ_OWN_KEYS}
    return RfqUpdate(
        symbol=r.symbol(route),
        event=r.req_str("e"),
        rfq_id=r.opt_id("R"),
        quote_id=r.opt_id("u"),
        client_id=r.opt_id("C"),
        side=r.side("S") if r.d.get("S") is not None else None,
        quantity=r.opt_dec("q"),
        quote_quantity=r.opt_dec("Q"),
        price=r.opt_dec("p"),
        status=r.opt_str("X"),
        submit_time=None if submit is None else submit * 1000,
        expiry_time=None if expiry is None else expiry * 1000,
        data=rest,
        timestamp=ts,
        event_time=et,
        receipt=receipt,
    )


_Careful = Callable[[_Reader, _Route, int], Event]

# kind -> (careful handler, fast handler or None, event name in "e")
_KINDS: dict[str, tuple[_Careful, Callable[..., Event] | None, str | None]] = {
    "depth": (_c_depth, _fast_depth, "depth"),
    "bookTicker": (_c_book_ticker, _fast_book_ticker, "bookTicker"),
    "trade": (_c_trade, _fast_trade, "trade"),
    "ticker": (_c_ticker, _fast_ticker, "ticker"),
    "kline": (_c_kline, _fast_kline, "kline"),
    "markPrice": (_c_mark_price, _fast_mark_price, "markPrice"),
    "openInterest": (_c_open_interest, None, "openInterest"),
    "liquidation": (_c_liquidation, None, "liquidation"),
    "account.orderUpdate": (_c_order, None, None),
    "account.positionUpdate": (_c_position, None, None),
    "account.balanceUpdate": (_c_balance, None, None),
    "account.rfqUpdate": (_c_rfq, None, None),
}
_PUBLIC_BY_EVENT = {e: kind for kind, (_, _, e) in _KINDS.items() if e is not None}
_LIST_KINDS = frozenset({"account.positionUpdate", "account.balanceUpdate"})
_SYMBOL_OPTIONAL = frozenset({"liquidation", "account.orderUpdate", "account.positionUpdate",
                              "account.balanceUpdate", "account.rfqUpdate"})  # fmt: skip


def _is_depth_window(token: str) -> bool:
    return token.endswith("ms") and token[:-2].isascii() and token[:-2].isdigit()


def _resolve_stream(stream: str) -> _Route | None:
    """Stream name -> route, or None if it is not a Backpack stream this decoder knows."""
    head, _, rest = stream.partition(".")
    if head == "account":
        sub, _, rest = rest.partition(".")
        head = f"account.{sub}"
    if head not in _KINDS:
        return None
    interval = None
    if head == "kline":
        interval, _, rest = rest.partition(".")
        if not interval:
            return None
    elif head == "depth":
        window, dot, remainder = rest.partition(".")
        if dot and remainder and _is_depth_window(window):
            rest = remainder
    if not rest and head not in _SYMBOL_OPTIONAL:
        return None
    return _Route(head, rest or None, interval)


# --------------------------------------------------------------------------------------------
# the decoder
# --------------------------------------------------------------------------------------------


def _raw(frame: object) -> str:
    """Bounded, always-encodable text of a frame for ErrorEvent.raw."""
    try:
        if isinstance(frame, str):
            text = frame[:RAW_LIMIT]
        elif isinstance(frame, bytes | bytearray | memoryview):
            text = bytes(frame[: RAW_LIMIT * 4]).decode("utf-8", "replace")[:RAW_LIMIT]
        else:
            text = f"<{type(frame).__name__}>"
        if not text.isascii():
            text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates -> "?"
        return text
    except Exception:
        return "<unprintable frame>"


def _short(value: object, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, str) else value
    text = text if len(text) <= limit else text[: limit - 3] + "..."
    return text.encode("utf-8", "replace").decode("utf-8")


def _fast_handlers(implementation: str | None) -> tuple[str, dict[str, Callable[..., Event]]]:
    """kind -> fast handler: the compiled depth and trade handlers when that core is in use."""
    handlers = {kind: fast for kind, (_, fast, _) in _KINDS.items() if fast is not None}
    compiled = compiled_for(implementation)
    if compiled is None:
        return "python", handlers
    return "cython", {**handlers, "depth": compiled.fast_depth, "trade": compiled.fast_trade}


class Decoder:
    """Decodes Backpack WS text frames into events from backpack.protocol.events. Never raises.

    ``stats`` counts frames, events (non-error), errors (ErrorEvents emitted), unknown_stream,
    coerced (decimal fields that arrived as JSON numbers), dropped (valid frames that carry no event,
    e.g. a request acknowledgement or an empty position snapshot) and stream_mismatch (payloads whose
    ``e`` names another public stream than the envelope and were decoded by ``e``).

    ``implementation`` picks the fast handlers (``backpack.protocol.speedups``): None for the active
    core, ``"python"`` or ``"cython"``; both decode every frame identically.
    """

    __slots__ = ("stats", "_fast", "_handlers", "implementation")

    def __init__(self, implementation: str | None = None) -> None:
        self.stats: dict[str, int] = dict.fromkeys(STATS_KEYS, 0)
        self._fast: dict[str, Callable[[Any, int], Event]] = {}
        self.implementation, self._handlers = _fast_handlers(implementation)

    def decode(self, frame: str | bytes, receipt: int = 0) -> list[Event]:
        stats = self.stats
        stats["frames"] += 1
        msg: Any = _UNPARSED
        try:
            msg = _loads(frame)
            if "error" in msg:  # whatever else the frame carries, the careful path reports the error too
                raise _Slow
            event = self._fast[msg["stream"]](msg["data"], receipt)
        except Exception:
            return self._careful(frame, msg, receipt)
        stats["events"] += 1
        return [event]

    # -- careful path ---------------------------------------------------------------------------

    def _careful(self, frame: object, msg: Any, receipt: int) -> list[Event]:
        try:
            out = self._careful_frame(frame, msg, receipt)
        except Exception as exc:  # pragma: no cover - last-resort guard for the never-raises contract
            out = [
                ErrorEvent(None, f"internal decoder error ({type(exc).__name__})", _raw(frame), None, receipt)
            ]
        stats = self.stats
        errors = sum(1 for e in out if type(e) is ErrorEvent)
        stats["errors"] += errors
        stats["events"] += len(out) - errors
        return out

    def _error(self, message: str, frame: object, receipt: int, stream: str | None = None) -> ErrorEvent:
        return ErrorEvent(None, message, _raw(frame), stream, receipt)

    def _careful_frame(self, frame: object, msg: Any, receipt: int) -> list[Event]:
        if msg is _UNPARSED:
            if not isinstance(frame, str | bytes | bytearray | memoryview):
                return [
                    self._error(f"frame must be str or bytes, got {type(frame).__name__}", frame, receipt)
                ]
            try:
                msg = _loads(frame)
            except orjson.JSONDecodeError as exc:
                return [self._error(f"invalid JSON: {exc}", frame, receipt)]
        if type(msg) is not dict:
            return [self._error(f"frame is not a JSON object (got {describe(msg)})", frame, receipt)]
        if "error" in msg:
            # An error member is always reported. If the frame is also a complete envelope, its data is
            # decoded exactly as without the error and comes first: dropping it would lose market data
            # (a depth delta lost is a resync), and dropping the error would hide what the server said.
            error = self._exchange_error(msg["error"], frame, receipt)
            if "stream" in msg and "data" in msg:
                return [*self._envelope(frame, msg, receipt), error]
            return [error]
        return self._envelope(frame, msg, receipt)

    def _envelope(self, frame: object, msg: dict, receipt: int) -> list[Event]:
        if "stream" not in msg:
            if "result" in msg or "id" in msg:  # a request acknowledgement: nothing to emit
                self.stats["dropped"] += 1
                return []
            return [self._error("frame has no 'stream' (and is not an error frame)", frame, receipt)]
        stream = msg["stream"]
        if type(stream) is not str:
            return [self._error(f"'stream' must be a string, got {describe(stream)}", frame, receipt)]
        route = _resolve_stream(stream)
        if route is None:
            self.stats["unknown_stream"] += 1
            return [self._error(f"unknown stream {_short(stream)!r}", frame, receipt, _short(stream, 200))]
        careful = _KINDS[route.kind][0]
        fast = self._handlers.get(route.kind)
        if fast is not None and stream not in self._fast and len(self._fast) < _MAX_ROUTES:
            self._fast[stream] = partial(fast, route.interval) if route.kind == "kline" else fast
        if "data" not in msg:
            return [self._error(f"{stream}: frame has no 'data'", frame, receipt, stream)]
        data = msg["data"]
        if type(data) is list and route.kind in _LIST_KINDS:
            if not data:
                self.stats["dropped"] += 1
                return []
            return [self._one(careful, item, route, stream, frame, receipt, f"data[{i}]")
                    for i, item in enumerate(data)]  # fmt: skip
        return [self._one(careful, data, route, stream, frame, receipt, "data")]

    def _one(
        self,
        careful: _Careful,
        data: Any,
        route: _Route,
        stream: str,
        frame: object,
        receipt: int,
        where: str,
    ) -> Event:
        if type(data) is not dict:
            return self._error(
                f"{stream}: {where} is not a JSON object (got {describe(data)})", frame, receipt, stream
            )
        reader = _Reader(data)
        try:
            event = careful(reader, route, receipt)
        except _FieldError as exc:
            other = self._by_event_name(data, route, receipt)
            if other is not None:
                return other
            prefix = f"{stream}: " if where == "data" else f"{stream}: {where}: "
            return self._error(prefix + str(exc), frame, receipt, stream)
        self.stats["coerced"] += reader.coerced
        return event

    def _by_event_name(self, data: dict, route: _Route, receipt: int) -> Event | None:
        """A public payload that fails under its envelope's stream but whose ``e`` names another
        public stream (ccxt documents a ``ticker`` payload on a ``bookTicker`` stream) is decoded as
        what it says it is, and counted."""
        kind = _PUBLIC_BY_EVENT.get(data.get("e")) if type(data.get("e")) is str else None
        if kind is None or kind == route.kind or _KINDS[route.kind][2] is None or kind == "kline":
            return None
        reader = _Reader(data)
        try:
            event = _KINDS[kind][0](reader, _Route(kind, route.symbol, None), receipt)
        except _FieldError:
            return None
        self.stats["coerced"] += reader.coerced
        self.stats["stream_mismatch"] += 1
        return event

    def _exchange_error(self, error: Any, frame: object, receipt: int) -> ErrorEvent:
        code: int | None = None
        if type(error) is dict:
            try:
                code = to_int(error.get("code"))
            except NumberError:
                code = None
            message = error.get("message")
            if type(message) is not str or not message:
                message = f"exchange error without a message ({describe(error)})"
        elif type(error) is str and error:
            message = error
        else:
            message = f"exchange error of unexpected shape ({describe(error)})"
        return ErrorEvent(code, _short(message, 400), _raw(frame), None, receipt)


# --------------------------------------------------------------------------------------------
# REST bodies
# --------------------------------------------------------------------------------------------


def _rest_body(body: Any, what: str) -> tuple[Any, ErrorEvent | None]:
    """Parse a REST body (text, bytes or already-parsed JSON); an exchange error becomes an event."""
    if isinstance(body, str | bytes | bytearray | memoryview):
        try:
            parsed = _loads(body)
        except orjson.JSONDecodeError:
            # Parameter-parse failures come back as plain text, not JSON.
            return None, ErrorEvent(None, f"{what}: body is not JSON: {_short(_raw(body), 200)}", _raw(body))
    else:
        parsed = body
    if type(parsed) is dict and "code" in parsed and "message" in parsed:
        code, message = parsed["code"], parsed["message"]
        text = f"{what}: exchange error {_short(code, 60)}: {_short(message, 300)}"
        return None, ErrorEvent(_rest_code(code), text, _raw_of(body))
    return parsed, None


def _rest_code(code: Any) -> int | str | None:
    """The exchange's error code as the event's ``code`` (it documents text codes; ints are kept too)."""
    if type(code) is int:
        return code
    if type(code) is str and code:
        return _short(code, 60)
    return None


def _dump(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except Exception:
        return f"<{type(value).__name__}>"


def _raw_of(body: Any) -> str:
    return _raw(body if isinstance(body, str | bytes | bytearray | memoryview) else _dump(body))


def decode_depth_snapshot(
    symbol: str, body: str | bytes | dict, receipt: int = 0
) -> DepthSnapshot | ErrorEvent:
    """REST ``/api/v1/depth`` answer. Sides are kept ascending, as received (best bid is LAST).

    ``lastUpdateId`` is a JSON string on the wire (integers accepted too); ``timestamp`` is µs and,
    when absent (older API versions), the receipt time stands in.
    """
    try:
        parsed, error = _rest_body(body, "depth")
        if error is not None:
            return error
        if type(parsed) is not dict:
            return ErrorEvent(None, f"depth: expected a JSON object, got {describe(parsed)}", _raw_of(body))
        r = _Reader(parsed)
        ts = r.opt_int("timestamp")
        bids = _rest_levels(parsed, "bids")
        asks = _rest_levels(parsed, "asks")
        return DepthSnapshot(
            symbol, r.req_int("lastUpdateId"), bids, asks, receipt if ts is None else ts, receipt
        )
    except _FieldError as exc:
        return ErrorEvent(None, f"depth {_short(symbol)}: {exc}", _raw_of(body), None, receipt)
    except Exception as exc:  # pragma: no cover - never-raises guard
        return ErrorEvent(
            None, f"depth: internal decoder error ({type(exc).__name__})", _raw_of(body), None, receipt
        )


def _rest_levels(parsed: dict, key: str) -> list[Level]:
    if key not in parsed:
        raise _FieldError(f"missing field {key!r}")
    side = parsed[key]
    try:
        return _fast_levels(side)  # a 1000-level book: worth the fast loop
    except Exception:
        return _careful_levels(side, key)


def decode_rest_trades(symbol: str, body: Any) -> list[Trade] | ErrorEvent:
    """REST ``/api/v1/trades``: ``timestamp`` ms -> µs (also the event time); side from ``isBuyerMaker``."""
    try:
        parsed, error = _rest_body(body, "trades")
        if error is not None:
            return error
        if type(parsed) is not list:
            return ErrorEvent(None, f"trades: expected a JSON array, got {describe(parsed)}", _raw_of(body))
        out = []
        for i, item in enumerate(parsed):
            if type(item) is not dict:
                raise _FieldError(f"[{i}]: expected an object, got {describe(item)}")
            r = _Reader(item)
            try:
                ts = r.ms_us("timestamp")
                side = "sell" if r.req_bool("isBuyerMaker") else "buy"
                out.append(
                    Trade(
                        symbol,
                        r.req_id("id"),
                        side,
                        r.req_dec("price"),
                        r.req_dec("quantity"),
                        ts,
                        ts,
                        None,
                        None,
                    )
                )
            except _FieldError as exc:
                raise _FieldError(f"[{i}]: {exc}") from None
        return out
    except _FieldError as exc:
        return ErrorEvent(None, f"trades {_short(symbol)}: {exc}", _raw_of(body))
    except Exception as exc:  # pragma: no cover - never-raises guard
        return ErrorEvent(None, f"trades: internal decoder error ({type(exc).__name__})", _raw_of(body))


def decode_rest_klines(
    symbol: str, interval: str, body: Any, *, now_us: int | None = None
) -> list[Candle] | ErrorEvent:
    """REST ``/api/v1/klines``: ``start``/``end`` are UTC text without a zone.

    The answer does not say whether its last candle is still open; pass ``now_us`` (the caller's
    clock) to mark candles with ``end > now_us`` open. Without it every candle is ``closed``.
    ``event_time`` is the candle start (REST has no event time).
    """
    try:
        parsed, error = _rest_body(body, "klines")
        if error is not None:
            return error
        if type(parsed) is not list:
            return ErrorEvent(None, f"klines: expected a JSON array, got {describe(parsed)}", _raw_of(body))
        out = []
        for i, item in enumerate(parsed):
            if type(item) is not dict:
                raise _FieldError(f"[{i}]: expected an object, got {describe(item)}")
            r = _Reader(item)
            try:
                start, stop = r.iso_us("start"), r.iso_us("end")
                out.append(Candle(
                    symbol, interval, start, stop, r.opt_dec("open"), r.opt_dec("high"), r.opt_dec("low"),
                    r.opt_dec("close"), r.opt_dec("volume"), r.opt_int("trades"),
                    now_us is None or stop <= now_us, start,
                ))  # fmt: skip
            except _FieldError as exc:
                raise _FieldError(f"[{i}]: {exc}") from None
        return out
    except _FieldError as exc:
        return ErrorEvent(None, f"klines {_short(symbol)}: {exc}", _raw_of(body))
    except Exception as exc:  # pragma: no cover - never-raises guard
        return ErrorEvent(None, f"klines: internal decoder error ({type(exc).__name__})", _raw_of(body))
