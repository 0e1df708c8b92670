"""The protocol state for one feed: frames and snapshots in, events and actions out.

This is the object the live shell, the replay harness and the property tests all drive. It owns the
decoder, the per-symbol book machines and the de-duplication of trades and fills across reconnects,
so that whichever shell runs it, the same input gives the same output.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from . import subscriptions as sub
from .book import DEFAULT_MAX_OLD_DELTAS, SYNCED, BookManager
from .events import (
    BalanceUpdate,
    BookTicker,
    BookUpdate,
    Candle,
    DepthDelta,
    ErrorEvent,
    Event,
    FetchSnapshot,
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
from .messages import _UNPARSED, Decoder, _loads, _Slow, decode_depth_snapshot
from .speedups import compiled_for
from .wire import WS_ERROR_CODES

LOG = logging.getLogger("backpack.router")

Output = Any  # events.Event | BookUpdate | ResyncNeeded | FetchSnapshot

# Words of a refused private subscription. The exchange documents no code for that refusal, so the
# text decides, but only for codes it does not document; see docs/decisions.md.
_AUTH_WORDS = ("signature", "auth", "expired", "window", "timestamp", "verifying key", "api key")


def is_auth_error(event: ErrorEvent) -> bool:
    """Whether an error frame refuses a private subscription: by code first, by text only as a fallback.

    The documented WS codes (``wire.WS_ERROR_CODES``: parse error, invalid stream, invalid depth
    window) are about the request, never about authentication, whatever their text says; counting
    them would let a few ``4008 Invalid depth window`` frames stop private channels for good. Local
    decode failures (no code) and REST errors (text codes) are not subscription answers at all.
    """
    code = event.code
    if type(code) is not int or code in WS_ERROR_CODES:
        return False
    text = event.message.lower().replace("depth window", "")  # a stream's window, not the signature's
    return any(word in text for word in _AUTH_WORDS)


class _SeenIds:
    """A bounded memory of recent ids: enough to catch a replay of the last frames after a reconnect.

    Two generations of sets instead of a set plus an eviction deque: an id is looked up in both, added
    to the current one, and when the current one holds ``size`` ids it becomes the old one. So at least
    the last ``size`` new ids (and at most ``2 * size``) are remembered, for two set lookups and an add
    per id, with no per-id eviction.
    """

    __slots__ = ("_size", "_new", "_old")

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._new: set[str] = set()
        self._old: set[str] = set()

    def add(self, key: str) -> bool:
        """True when ``key`` is new."""
        new = self._new
        if key in new or key in self._old:
            return False
        if len(new) >= self._size:
            self._old = new
            new = self._new = set()
        new.add(key)
        return True

    def __len__(self) -> int:
        return len(self._new) + len(self._old)


# channel -> the event type its frames decode to
CHANNEL_EVENTS: dict[str, type] = {
    sub.TRADES: Trade,
    sub.L2_BOOK: DepthDelta,
    sub.TICKER: BookTicker,
    sub.TICKER_24H: Ticker,
    sub.CANDLES: Candle,
    sub.FUNDING: MarkPrice,
    sub.OPEN_INTEREST: OpenInterest,
    sub.LIQUIDATIONS: Liquidation,
    sub.ORDER_INFO: OrderUpdate,
    sub.FILLS: OrderUpdate,
    sub.POSITIONS: PositionUpdate,
    sub.BALANCES: BalanceUpdate,
    sub.RFQ: RfqUpdate,
}

Accept = Mapping[type, frozenset[str] | None]


def accepted(subscription: Mapping[str, Iterable[str] | None]) -> dict[type, frozenset[str] | None]:
    """Which native symbols each event type may carry, from a ``{channel: [native symbols]}`` map.

    An empty symbol list means every symbol (private channels subscribed without a symbol). Market-wide
    streams (``liquidation``) are narrowed to the symbols asked for here, so a subscriber to one
    symbol's liquidations gets that symbol's only.
    """
    out: dict[type, frozenset[str] | None] = {}
    for channel, symbols in subscription.items():
        kind = CHANNEL_EVENTS.get(channel)
        if kind is None:
            raise ValueError(f"unknown channel {channel!r}; valid: {', '.join(CHANNEL_EVENTS)}")
        wanted = frozenset(symbols or ())
        if kind is BalanceUpdate or not wanted:
            out[kind] = None
        elif kind in out:
            previous = out[kind]
            out[kind] = None if previous is None else previous | wanted
        else:
            out[kind] = wanted
    return out


class Router:
    """``accept`` bounds per-symbol state by the subscription: events of a type or symbol nobody
    subscribed to (a server may send them) create no book, no snapshot fetch and no dedup memory, and
    are counted in ``stats["unsubscribed"]``. ``None`` accepts everything (tests, tools).

    ``implementation`` picks the core (``backpack.protocol.speedups``): None for the active one,
    ``"python"`` or ``"cython"``. With the compiled core, ``receive_frame`` is the compiled transcription
    of the method below, bound to this Router; ``implementation`` says which one runs."""

    def __init__(
        self,
        *,
        max_buffer: int = 10_000,
        dedup_window: int = 4096,
        max_old_deltas: int = DEFAULT_MAX_OLD_DELTAS,
        accept: Accept | None = None,
        implementation: str | None = None,
    ) -> None:
        compiled = compiled_for(implementation)
        self.decoder = Decoder("python" if compiled is None else "cython")
        self.implementation = self.decoder.implementation
        self.books = BookManager(max_buffer=max_buffer, max_old_deltas=max_old_deltas)
        self._syncs = self.books._books  # symbol -> BookSync, read directly on the depth hot path
        self._trades: dict[str, _SeenIds] = {}
        self._fills = _SeenIds(dedup_window)
        self._dedup_window = dedup_window
        self._accept = None if accept is None else dict(accept)
        self.stats = {"duplicate_trades": 0, "duplicate_fills": 0, "auth_errors": 0, "unsubscribed": 0}
        # An instance attribute: no Python frame between the caller and the core. Not when a subclass or a
        # patch (tests/test_bisect_diff.py injects regressions so) replaced the method: theirs runs.
        if compiled is not None and type(self).receive_frame is _RECEIVE_FRAME:
            self.receive_frame = compiled.Receiver(self, _UNPARSED, SYNCED).receive_frame

    def accepts(self, event: Any) -> bool:
        accept = self._accept
        if accept is None or type(event) is ErrorEvent:
            return True
        cls = type(event)
        if cls not in accept:
            return False
        symbols = accept[cls]
        return symbols is None or getattr(event, "symbol", None) in symbols

    def _unsubscribed(self) -> list[Output]:
        self.stats["unsubscribed"] += 1
        return []

    # --- inputs -------------------------------------------------------------------------------

    def receive_frame(self, data: str | bytes, receipt: int = 0) -> list[Output]:
        # The first half is Decoder.decode inlined (one call less per frame, and no one-element list to
        # iterate); tests/test_perf_equivalence.py pins it to the generic decode-then-route pipeline.
        decoder = self.decoder
        stats = decoder.stats
        stats["frames"] += 1
        msg: Any = _UNPARSED
        try:
            msg = _loads(data)
            if "error" in msg:  # as in Decoder.decode: the careful path reports it with the data
                raise _Slow
            event = decoder._fast[msg["stream"]](msg["data"], receipt)
        except Exception:
            return self._route(decoder._careful(data, msg, receipt))
        stats["events"] += 1
        cls = event.__class__
        if cls is DepthDelta:
            sync = self._syncs.get(event.symbol)
            if sync is not None:
                return sync.on_decoded_delta(event)
            return self.books.on_delta(event) if self.accepts(event) else self._unsubscribed()
        if cls is Trade:
            # _SeenIds.add inlined for the common case: a known symbol, a new id, room in the set.
            seen = self._trades.get(event.symbol)
            if seen is not None:
                key = event.id
                new = seen._new
                if key not in new and key not in seen._old and len(new) < seen._size:
                    new.add(key)
                    return [event]
            return self._trade(event)
        return self._route([event])

    def _trade(self, event: Trade) -> list[Output]:
        seen = self._trades.get(event.symbol)
        if seen is None:
            if not self.accepts(event):
                return self._unsubscribed()
            seen = self._trades[event.symbol] = _SeenIds(self._dedup_window)
        if seen.add(event.id):
            return [event]
        self.stats["duplicate_trades"] += 1
        return []

    def _route(self, events: list[Event]) -> list[Output]:
        out: list[Output] = []
        for event in events:
            cls = type(event)
            if cls is DepthDelta:
                sync = self._syncs.get(event.symbol)
                if sync is not None:
                    out.extend(sync.on_decoded_delta(event))
                elif self.accepts(event):
                    out.extend(self.books.on_delta(event))
                else:
                    self._unsubscribed()
            elif cls is Trade:
                out.extend(self._trade(event))
            elif not self.accepts(event):
                self._unsubscribed()
            elif cls is OrderUpdate and event.event == "orderFill" and event.trade_id is not None:
                if self._fills.add(f"{event.symbol}:{event.trade_id}:{event.order_id}"):
                    out.append(event)
                else:
                    self.stats["duplicate_fills"] += 1
            else:
                if cls is ErrorEvent and is_auth_error(event):
                    self.stats["auth_errors"] += 1
                out.append(event)
        return out

    def receive_snapshot(self, symbol: str, body: Any, receipt: int = 0) -> list[Output]:
        if symbol not in self.books:  # nobody asked for it: do not create a book for it
            self.books.ignored += 1
            return []
        snap = decode_depth_snapshot(symbol, body, receipt)
        if isinstance(snap, ErrorEvent):
            return [snap, *self.books.get(symbol).on_snapshot_failed()]
        return self.books.on_snapshot(snap)

    def snapshot_failed(self, symbol: str) -> list[Output]:
        return self.books.on_snapshot_failed(symbol)

    def connection_lost(self, symbols: Iterable[str] | None = None) -> list[Output]:
        """Every book fed by the lost connection is invalid until resynchronised."""
        if symbols is None:
            return self.books.reset(None, reason="reconnect")
        out: list[Output] = []
        for symbol in symbols:
            out.extend(self.books.reset(symbol, reason="reconnect"))
        return out


_RECEIVE_FRAME = Router.receive_frame  # the method the compiled Receiver transcribes

__all__ = ["CHANNEL_EVENTS", "BookUpdate", "FetchSnapshot", "ResyncNeeded", "Router", "accepted", "is_auth_error"]
