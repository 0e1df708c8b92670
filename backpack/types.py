"""Objects the feed delivers for channels cryptofeed has no type for (on either line).

cryptofeed defines no 24h-statistics ticker (its ``Ticker`` is best bid/offer) and no RFQ type, so
the ``ticker_24h`` and ``rfq`` channels deliver these frozen dataclasses. They follow cryptofeed's
conventions so the same consumer code handles them: ``exchange``/``symbol`` first, Decimal prices and
sizes, float-second timestamps, a ``raw`` slot (always None: the feed never keeps frames) and
``to_dict(numeric_type=None, none_to=False)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any


def as_dict(obj: Any, numeric_type: Any = None, none_to: Any = False) -> dict:
    """cryptofeed's ``to_dict`` contract: no ``raw``, Decimals optionally converted, None optionally replaced."""
    data = asdict(obj)
    data.pop("raw", None)
    if numeric_type is not None:
        data = {k: numeric_type(v) if isinstance(v, Decimal) else v for k, v in data.items()}
    if none_to is not False:
        data = {k: none_to if v is None else v for k, v in data.items()}
    return data


@dataclass(frozen=True, slots=True)
class Ticker24h:
    """Rolling 24h statistics from the ``ticker.<symbol>`` stream (about one push a second)."""

    exchange: str
    symbol: str
    open: Decimal | None
    high: Decimal | None
    low: Decimal | None
    close: Decimal | None  # last price
    volume: Decimal | None  # base asset
    quote_volume: Decimal | None
    trades: int | None
    timestamp: float  # event time, seconds
    raw: Any = None

    to_dict = as_dict


@dataclass(frozen=True, slots=True)
class Rfq:
    """One RFQ or quote state change from ``account.rfqUpdate`` (``event``: rfqActive, rfqAccepted,
    rfqRefreshed, rfqCancelled, rfqCandidate, rfqFilled, quoteAccepted, quoteCancelled)."""

    exchange: str
    symbol: str
    event: str
    rfq_id: str | None
    quote_id: str | None
    client_id: str | None
    side: str | None  # "buy" | "sell"; None on broadcasts to makers
    quantity: Decimal | None  # base asset
    quote_quantity: Decimal | None
    price: Decimal | None
    status: str | None
    submit_time: float | None  # seconds: quotes must arrive before this
    expiry_time: float | None  # seconds
    timestamp: float  # engine time, seconds
    raw: Any = None

    to_dict = as_dict


__all__ = ["Rfq", "Ticker24h", "as_dict"]
