"""Channel + native symbol → Backpack stream names and SUBSCRIBE/UNSUBSCRIBE frame texts.

Channel names are plain strings equal to the define values of cryptofeed, so this module needs
none of its code. Symbols here are **native** (``SOL_USDC``): a ``-`` in a symbol is refused because
it means a normalized symbol was passed by mistake.

Private streams (``account.*``) go in frames of their own carrying the four-string ``signature``
array. UNSUBSCRIBE of a private stream is signed exactly like SUBSCRIBE, i.e. the signed instruction
is ``subscribe`` too: the docs define only that one stream instruction (``instruction=subscribe``;
there is no ``unsubscribe`` instruction in the documented list) and ccxt's unwatch path signs
``subscribe`` for UNSUBSCRIBE as well. The server acknowledges neither, so the choice cannot be
observed on the wire; it is kept in one constant, ``WS_INSTRUCTION``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

from .auth import MAX_WINDOW_MS, MIN_WINDOW_MS, Signer
from .wire import CANDLE_INTERVALS, DEPTH_SPEEDS

# cryptofeed define values (checked against cryptofeed in the tests).
TRADES = "trades"
L2_BOOK = "l2_book"
TICKER = "ticker"  # cryptofeed's TICKER is best bid/offer → bookTicker
TICKER_24H = "ticker_24h"  # 24h rolling statistics → ticker
CANDLES = "candles"
FUNDING = "funding"
OPEN_INTEREST = "open_interest"
LIQUIDATIONS = "liquidations"
ORDER_INFO = "order_info"
FILLS = "fills"
POSITIONS = "positions"
BALANCES = "balances"
RFQ = "rfq"

WS_INSTRUCTION = "subscribe"

INTERVALS = CANDLE_INTERVALS  # the name callers of stream_name know

# channel → (stream kind, symbol use): "required", "optional" (omitted = all markets) or "none".
_CHANNELS: dict[str, tuple[str, str]] = {
    TRADES: ("trade", "required"),
    L2_BOOK: ("depth", "required"),
    TICKER: ("bookTicker", "required"),
    TICKER_24H: ("ticker", "required"),
    CANDLES: ("kline", "required"),
    FUNDING: ("markPrice", "required"),
    OPEN_INTEREST: ("openInterest", "required"),
    LIQUIDATIONS: ("liquidation", "none"),  # the docs name one market-wide stream
    ORDER_INFO: ("account.orderUpdate", "optional"),
    FILLS: ("account.orderUpdate", "optional"),  # fills are the orderFill events of the order stream
    POSITIONS: ("account.positionUpdate", "optional"),
    BALANCES: ("account.balanceUpdate", "none"),
    RFQ: ("account.rfqUpdate", "optional"),
}
CHANNELS = tuple(_CHANNELS)

# stream kind → symbol use, for parsing. ``liquidation.<s>`` has been reported, so it parses.
_KINDS: dict[str, str] = {kind: use for kind, use in _CHANNELS.values()}
_KINDS["liquidation"] = "optional"

_SYMBOL_RE = re.compile(r"[A-Za-z0-9]+(?:[._][A-Za-z0-9]+)*")


def _check_symbol(symbol: object) -> str:
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    if "-" in symbol:
        raise ValueError(f"symbol {symbol!r} looks normalized; streams take the native form (e.g. SOL_USDC)")
    if not _SYMBOL_RE.fullmatch(symbol):
        raise ValueError(f"symbol {symbol!r} has characters a Backpack symbol never has")
    if symbol.partition(".")[0] in DEPTH_SPEEDS and "." in symbol:
        raise ValueError(f"symbol {symbol!r} would read as a depth window in a stream name")
    return symbol


def _check_interval(interval: object) -> str:
    if interval not in INTERVALS:
        raise ValueError(f"unknown candle interval {interval!r}; valid: {', '.join(INTERVALS)}")
    return interval  # type: ignore[return-value]


def _check_speed(depth_speed: object) -> str | None:
    if depth_speed is not None and depth_speed not in DEPTH_SPEEDS:
        raise ValueError(
            f"unknown depth speed {depth_speed!r}; valid: None (realtime), {', '.join(DEPTH_SPEEDS)}"
        )
    return depth_speed  # type: ignore[return-value]


def stream_name(
    channel: str, symbol: str | None = None, *, interval: str = "1m", depth_speed: str | None = None
) -> str:
    """One stream name. ``interval`` and ``depth_speed`` are validated always, used where they apply."""
    if channel not in _CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; valid: {', '.join(CHANNELS)}")
    _check_interval(interval)
    _check_speed(depth_speed)
    kind, use = _CHANNELS[channel]
    if use == "none" or (use == "optional" and symbol is None):
        return kind
    if symbol is None:
        raise ValueError(f"channel {channel!r} needs a symbol")
    _check_symbol(symbol)
    if kind == "kline":
        return f"kline.{interval}.{symbol}"
    if kind == "depth" and depth_speed is not None:
        return f"depth.{depth_speed}.{symbol}"
    return f"{kind}.{symbol}"


def streams_for(subscription: Mapping[str, Iterable[str] | None], **opts: str | None) -> list[str]:
    """All stream names of a cryptofeed-style ``{channel: [symbols]}``: de-duplicated and sorted.

    An empty symbol list means "all markets" for channels with an optional symbol and is an error
    for channels that need one.
    """
    streams: set[str] = set()
    for channel, symbols in subscription.items():
        symbols = list(symbols or ())
        if not symbols:
            if channel in _CHANNELS and _CHANNELS[channel][1] == "required":
                raise ValueError(f"channel {channel!r} needs at least one symbol")
            streams.add(stream_name(channel, None, **opts))  # type: ignore[arg-type]
        for symbol in symbols:
            streams.add(stream_name(channel, symbol, **opts))  # type: ignore[arg-type]
    return sorted(streams)


def is_private(stream: str) -> bool:
    return stream.startswith("account.")


def parse_stream(stream: str) -> tuple[str, str | None, str | None]:
    """``(kind, symbol, interval)``; ``interval`` is the kline interval or the depth aggregation window."""
    if not isinstance(stream, str) or not stream:
        raise ValueError(f"stream name must be a non-empty string, got {stream!r}")
    if stream.startswith("account."):
        kind, _, rest = stream.partition(".")[2].partition(".")
        kind = "account." + kind
    else:
        kind, _, rest = stream.partition(".")
    use = _KINDS.get(kind)
    if use is None:
        raise ValueError(f"unknown stream kind in {stream!r}")
    interval: str | None = None
    if kind == "kline":
        interval, _, rest = rest.partition(".")
        try:
            _check_interval(interval)
        except ValueError as exc:
            raise ValueError(f"stream {stream!r}: {exc}") from None
    elif kind == "depth":
        head, _, tail = rest.partition(".")
        if head in DEPTH_SPEEDS and tail:
            interval, rest = head, tail
    if not rest:
        if use == "required":
            raise ValueError(f"stream {stream!r} lacks its symbol")
        return kind, None, interval
    if use == "none":
        raise ValueError(f"stream {stream!r}: {kind} takes no symbol")
    try:
        _check_symbol(rest)
    except ValueError as exc:
        raise ValueError(f"stream {stream!r}: {exc}") from None
    return kind, rest, interval


def _dedupe(streams: Iterable[str]) -> list[str]:
    if isinstance(streams, str):
        raise ValueError("streams must be an iterable of stream names, not one string")
    out: list[str] = []
    seen: set[str] = set()
    for s in streams:
        parse_stream(s)  # refuse garbage before it reaches the socket
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


def _frames(
    method: str,
    streams: Iterable[str],
    signer: Signer | None,
    timestamp_ms: int | None,
    window_ms: int,
    batch_size: int,
) -> list[str]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if (
        isinstance(window_ms, bool)
        or not isinstance(window_ms, int)
        or not MIN_WINDOW_MS <= window_ms <= MAX_WINDOW_MS
    ):
        raise ValueError(
            f"window_ms must be an integer in [{MIN_WINDOW_MS}, {MAX_WINDOW_MS}], got {window_ms!r}"
        )
    names = _dedupe(streams)
    public = [s for s in names if not is_private(s)]
    private = [s for s in names if is_private(s)]

    def dump(obj: dict) -> str:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)

    frames = [
        dump({"method": method, "params": public[i : i + batch_size]})
        for i in range(0, len(public), batch_size)
    ]
    if private:
        if signer is None:
            raise ValueError(f"private streams need a signer: {', '.join(private)}")
        if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, int) or timestamp_ms <= 0:
            raise ValueError("private streams need timestamp_ms (a positive int, from the caller's clock)")
        signature = signer.ws_signature(timestamp_ms, window_ms, instruction=WS_INSTRUCTION)
        frames += [
            dump({"method": method, "params": private[i : i + batch_size], "signature": signature})
            for i in range(0, len(private), batch_size)
        ]
    return frames


def subscribe_frames(
    streams: Iterable[str],
    *,
    signer: Signer | None = None,
    timestamp_ms: int | None = None,
    window_ms: int = 5000,
    batch_size: int = 50,
) -> list[str]:
    """Compact JSON SUBSCRIBE texts: public streams batched first, then signed private frames."""
    return _frames("SUBSCRIBE", streams, signer, timestamp_ms, window_ms, batch_size)


def unsubscribe_frames(
    streams: Iterable[str],
    *,
    signer: Signer | None = None,
    timestamp_ms: int | None = None,
    window_ms: int = 5000,
    batch_size: int = 50,
) -> list[str]:
    """Like :func:`subscribe_frames` with UNSUBSCRIBE; private frames are signed with ``subscribe``."""
    return _frames("UNSUBSCRIBE", streams, signer, timestamp_ms, window_ms, batch_size)
