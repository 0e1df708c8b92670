"""Values the exchange's wire protocol defines, each written out once.

Config validation, the REST client, stream names, the decoders and the loopback server all check
against these, so a value the exchange adds or drops is changed here and nowhere else
(``tests/test_wire_constants.py`` fails if one of these lists is written out again elsewhere).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# Tables are read-only views: every importer shares these objects, so none may change them for the rest.
# ``kline.<interval>.<symbol>`` and REST ``/api/v1/klines?interval=``.
CANDLE_INTERVALS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1month",
)  # fmt: skip

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Fixed candle lengths, derived from the names. "1month" is calendar based, so it has no entry.
CANDLE_SECONDS: Mapping[str, int] = MappingProxyType(
    {iv: int(iv[:-1]) * _UNIT_SECONDS[iv[-1]] for iv in CANDLE_INTERVALS if iv != "1month"}
)

# REST ``/api/v1/depth?limit=``.
DEPTH_LIMITS: tuple[int, ...] = (5, 10, 20, 50, 100, 500, 1000)

# Aggregation windows of ``depth.<window>.<symbol>``; no window is the realtime stream.
DEPTH_SPEEDS: tuple[str, ...] = ("200ms", "600ms", "1000ms")
DEPTH_SPEED_US: Mapping[str, int] = MappingProxyType({w: int(w[:-2]) * 1000 for w in DEPTH_SPEEDS})

# ``marketType`` enum -> the stable lower-case instrument type ``SymbolMap`` reports.
INSTRUMENT_TYPES: Mapping[str, str] = MappingProxyType({
    "SPOT": "spot",
    "PERP": "perpetual",
    "IPERP": "perpetual",
    "DATED": "dated",
    "PREDICTION": "prediction",
    "RFQ": "rfq",
})
MARKET_TYPES: tuple[str, ...] = tuple(INSTRUMENT_TYPES)
# What a feed asks ``/api/v1/markets`` for: without ``marketType`` the exchange lists only SPOT and
# PERP. RFQ markets have no public book or stream, so they are left out.
FEED_MARKET_TYPES: tuple[str, ...] = tuple(t for t in MARKET_TYPES if t != "RFQ")

# WebSocket error frame codes the exchange documents. None of them is about authentication: the
# exchange documents no code for a refused private subscription (see router.is_auth_error).
PARSE_ERROR = 4002
INVALID_STREAM = 4006
INVALID_DEPTH_WINDOW = 4008
WS_ERROR_CODES: Mapping[int, str] = MappingProxyType({
    PARSE_ERROR: "Parse error",
    INVALID_STREAM: "Invalid stream",
    INVALID_DEPTH_WINDOW: "Invalid depth window",
})

__all__ = [
    "CANDLE_INTERVALS",
    "CANDLE_SECONDS",
    "DEPTH_LIMITS",
    "DEPTH_SPEEDS",
    "DEPTH_SPEED_US",
    "FEED_MARKET_TYPES",
    "INSTRUMENT_TYPES",
    "INVALID_DEPTH_WINDOW",
    "INVALID_STREAM",
    "MARKET_TYPES",
    "PARSE_ERROR",
    "WS_ERROR_CODES",
]
