"""Typed events and actions produced by the sans-I/O core.

Every event carries the exchange-native symbol (``SOL_USDC``); mapping to cryptofeed's normalized
names happens in the glue. Prices and sizes are ``Decimal``; sequences and timestamps are ``int``
(timestamps in microseconds). ``receipt`` is the transport's receipt time in microseconds, passed in
by the caller and never read from a clock here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

Level = tuple[Decimal, Decimal]


@dataclass(slots=True)
class Trade:
    symbol: str
    id: str
    side: str  # taker side: "sell" when the buyer is maker, else "buy"
    price: Decimal
    amount: Decimal
    timestamp: int  # engine time T, µs
    event_time: int  # E, µs
    buyer_order_id: str | None
    seller_order_id: str | None
    receipt: int = 0


@dataclass(slots=True)
class DepthDelta:
    symbol: str
    first_update_id: int  # U
    last_update_id: int  # u
    bids: list[Level]
    asks: list[Level]
    timestamp: int  # T, µs
    event_time: int  # E, µs
    receipt: int = 0


@dataclass(slots=True)
class DepthSnapshot:
    """A REST ``/api/v1/depth`` answer; sides as received (ascending)."""

    symbol: str
    last_update_id: int
    bids: list[Level]
    asks: list[Level]
    timestamp: int  # µs
    receipt: int = 0


@dataclass(slots=True)
class BookTicker:
    symbol: str
    bid: Decimal | None
    bid_size: Decimal | None
    ask: Decimal | None
    ask_size: Decimal | None
    sequence: int  # u: the depth sequence
    timestamp: int
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class Ticker:
    symbol: str
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal | None
    volume: Decimal | None
    quote_volume: Decimal | None
    trades: int | None
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class Candle:
    symbol: str
    interval: str
    start: int  # µs
    stop: int  # µs
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal | None
    volume: Decimal | None
    trades: int | None
    closed: bool
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class MarkPrice:
    symbol: str
    mark_price: Decimal | None
    index_price: Decimal | None
    funding_rate: Decimal | None
    next_funding_time: int | None  # µs (wire is ms); None on prediction markets
    timestamp: int
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class OpenInterest:
    symbol: str
    open_interest: Decimal | None  # contracts
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class Liquidation:
    symbol: str
    side: str  # "buy" | "sell"
    price: Decimal | None
    amount: Decimal | None
    timestamp: int
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class OrderUpdate:
    symbol: str
    event: str  # orderAccepted, orderFill, ...
    order_id: str
    client_order_id: str | None
    side: str  # "buy" | "sell"
    order_type: str | None
    status: str | None
    price: Decimal | None
    amount: Decimal | None  # q
    quote_amount: Decimal | None  # Q
    filled: Decimal | None  # z, cumulative
    filled_quote: Decimal | None  # Z
    last_fill_amount: Decimal | None  # l
    last_fill_price: Decimal | None  # L
    trade_id: str | None  # t
    fee: Decimal | None  # n
    fee_asset: str | None  # N
    maker: bool | None  # m
    time_in_force: str | None
    post_only: bool | None
    trigger_price: Decimal | None  # P
    trigger_quantity: Decimal | None  # Y: a trigger order's size (its q is "0" until it triggers)
    origin: str | None
    expiry_reason: str | None
    timestamp: int
    event_time: int
    receipt: int = 0

    @property
    def remaining(self) -> Decimal | None:
        if self.amount is None:
            return None
        return self.amount - (self.filled or Decimal(0))


@dataclass(slots=True)
class PositionUpdate:
    symbol: str
    event: str | None  # None for the snapshot sent on subscribe (no "e")
    position_id: str | None
    entry_price: Decimal | None  # B
    break_even_price: Decimal | None  # b
    mark_price: Decimal | None  # M
    quantity: Decimal | None  # q, signed net
    exposure_quantity: Decimal | None  # Q
    notional: Decimal | None  # n
    # REST estLiquidationPrice; None on the WS stream, whose "l" is a deprecated placeholder (always 0)
    liquidation_price: Decimal | None
    realized_pnl: Decimal | None  # p
    unrealized_pnl: Decimal | None  # P
    initial_margin_fraction: Decimal | None  # f
    maintenance_margin_fraction: Decimal | None  # m
    timestamp: int
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class BalanceUpdate:
    asset: str
    available: Decimal | None  # A
    locked: Decimal | None  # L
    staked: Decimal | None  # S
    event: str | None
    timestamp: int
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class RfqUpdate:
    """An RFQ or quote state change (rfqActive, rfqAccepted, ..., quoteAccepted, quoteCancelled)."""

    symbol: str
    event: str
    rfq_id: str | None  # R
    quote_id: str | None  # u (quote events, candidates, fills)
    client_id: str | None  # C: the client RFQ id or client quote id
    side: str | None  # S: "buy" | "sell"; absent on broadcasts
    quantity: Decimal | None  # q, base asset
    quote_quantity: Decimal | None  # Q, quote asset
    price: Decimal | None  # p
    status: str | None  # X
    submit_time: int | None  # w, µs (wire is ms): quotes must arrive before this
    expiry_time: int | None  # W, µs (wire is ms)
    data: dict  # fields not listed above, as received
    timestamp: int
    event_time: int
    receipt: int = 0


@dataclass(slots=True)
class ErrorEvent:
    """An exchange error frame or a frame that could not be decoded; never an exception."""

    # The exchange's code: an int on WS error frames (4002/4006/4008, see wire.WS_ERROR_CODES), a string
    # in REST error bodies ("INVALID_CLIENT_REQUEST"); None for local decode failures.
    code: int | str | None
    message: str
    raw: str  # truncated to RAW_LIMIT characters
    stream: str | None = None
    receipt: int = 0


RAW_LIMIT = 512


# --- book machine outputs -------------------------------------------------------------------


@dataclass(slots=True)
class BookUpdate:
    """The book changed. ``delta`` is None for a snapshot."""

    symbol: str
    kind: str  # "snapshot" | "delta"
    sequence: int
    delta: DepthDelta | None
    timestamp: int
    receipt: int = 0


@dataclass(slots=True)
class ResyncNeeded:
    """The book for ``symbol`` is invalid; consumers must discard it until the next snapshot."""

    symbol: str
    reason: str  # "gap" | "stale_snapshot" | "buffer_overflow" | "reconnect" | ...
    expected: int | None
    got: int | None
    receipt: int = 0


@dataclass(slots=True)
class FetchSnapshot:
    """Action: the I/O shell should fetch a REST depth snapshot for ``symbol``."""

    symbol: str
    attempt: int = 1


@dataclass(slots=True)
class Send:
    """Action: send this text frame on the WebSocket."""

    text: str
    streams: tuple[str, ...] = field(default_factory=tuple)


MarketEvent = (
    Trade | DepthDelta | BookTicker | Ticker | Candle | MarkPrice | OpenInterest | Liquidation
)
PrivateEvent = OrderUpdate | PositionUpdate | BalanceUpdate | RfqUpdate
Event = MarketEvent | PrivateEvent | ErrorEvent
