"""``/api/v1/markets`` payloads → the symbol data the feed needs.

Normalized form (cryptofeed style): every ``_`` of the native symbol becomes ``-``; nothing else
changes (case kept, dots kept)::

    SOL_USDC          -> SOL-USDC            (SPOT)
    SOL_USDC_PERP     -> SOL-USDC-PERP       (PERP)
    AAPL.US_USDC_PERP -> AAPL.US-USDC-PERP   (PERP, equity)
    MU.US_USDC        -> MU.US-USDC          (SPOT, rwaMarketType STOCK)
    kSHIB_USDC_PERP   -> kSHIB-USDC-PERP     (case-sensitive ``k`` per-1000 base)
    AAPL.US_USDC_RFQ  -> AAPL.US-USDC-RFQ    (RFQ)

Why this rule and not cryptofeed's ``BASE-QUOTE[-TYPE]`` rebuilt from base/quote: IPERP, DATED and
PREDICTION markets are listed in the API's ``marketType`` enum, but neither the official docs excerpt
nor ccxt 4.5.90 (whose ``parse_market`` drops every type except SPOT, PERP and RFQ, noting that the
exchange only returns SPOT and PERP) shows one of their native symbols. A transliteration needs no
guess about their suffixes (``_IPERP``, an expiry date, an outcome name...): whatever they are, they
survive verbatim. It is reversible because native symbols never contain ``-`` (a native symbol that
does is refused, loudly), and it is unambiguous because native symbols are unique on the exchange and
the rule is injective on ``-``-free strings.

``instrument_type`` mapping (wire ``marketType`` → stable lower-case name; the raw value is kept in
``market_type``): SPOT→spot, PERP→perpetual, IPERP→perpetual, DATED→dated, PREDICTION→prediction,
RFQ→rfq, anything else→unknown (kept, with a warning). An entry without ``marketType`` gets one
inferred from its suffix (``_PERP``→PERP, ``_RFQ``→RFQ, two parts→SPOT, else unknown), with a warning.

Time is an argument everywhere: the cache never reads a clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .wire import INSTRUMENT_TYPES

log = logging.getLogger("backpack.symbols")

UNKNOWN = "unknown"

# Suffixes that are known to mark a market type on the wire. Only these are checked for consistency;
# IPERP/DATED/PREDICTION suffixes are not documented anywhere we can verify.
_SUFFIX_TYPES = {"PERP": "PERP", "RFQ": "RFQ"}


@dataclass(frozen=True, slots=True)
class MarketInfo:
    native: str
    normalized: str
    base: str
    quote: str
    market_type: str  # the wire marketType (upper case), possibly inferred
    instrument_type: str  # "spot" | "perpetual" | "dated" | "prediction" | "rfq" | "unknown"
    tick_size: Decimal | None
    step_size: Decimal | None
    min_quantity: Decimal | None
    order_book_state: str | None
    visible: bool
    funding_interval_ms: int | None
    rwa_market_type: str | None


class UnknownSymbolError(KeyError):
    """A symbol not in the loaded markets. ``str()`` is the plain message (KeyError would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown symbol"


def _check_native(native: object) -> str:
    if not isinstance(native, str) or not native:
        raise ValueError(f"native symbol must be a non-empty string, got {type(native).__name__}")
    if native != native.strip() or any(c.isspace() for c in native):
        raise ValueError(f"native symbol {native!r} contains whitespace")
    if "-" in native:
        raise ValueError(
            f"native symbol {native!r} contains '-', which would make its normalized form ambiguous"
        )
    if any(not part for part in native.split("_")):
        raise ValueError(f"native symbol {native!r} has an empty '_'-separated part")
    return native


def _type_mismatch(native: str, market_type: str) -> str | None:
    """Why ``native``'s suffix contradicts ``market_type``, or None when it does not (or can't be told)."""
    parts = native.split("_")
    suffix_type = _SUFFIX_TYPES.get(parts[-1]) if len(parts) > 2 else None
    mt = market_type.upper()
    if mt in _SUFFIX_TYPES.values() and suffix_type != mt:
        return f"native symbol {native!r} has marketType {mt} but lacks the _{mt} suffix"
    if mt == "SPOT" and suffix_type is not None:
        return f"native symbol {native!r} has marketType SPOT but a _{parts[-1]} suffix"
    return None


def normalize_symbol(native: str, market_type: str | None = None) -> str:
    """Native → normalized (``_`` → ``-``). With ``market_type``, also refuse a contradicting suffix."""
    _check_native(native)
    if market_type is not None:
        why = _type_mismatch(native, market_type)
        if why:
            raise ValueError(why)
    return native.replace("_", "-")


def native_symbol(normalized: str) -> str:
    """The exact inverse of :func:`normalize_symbol` (``-`` → ``_``)."""
    if not isinstance(normalized, str) or not normalized:
        raise ValueError("normalized symbol must be a non-empty string")
    if "_" in normalized:
        raise ValueError(f"{normalized!r} contains '_': it looks like a native symbol, not a normalized one")
    native = normalized.replace("-", "_")
    _check_native(native)
    return native


def infer_market_type(native: str) -> str:
    parts = native.split("_")
    if len(parts) > 2 and parts[-1] in _SUFFIX_TYPES:
        return _SUFFIX_TYPES[parts[-1]]
    return "SPOT" if len(parts) == 2 else UNKNOWN.upper()


def _decimal(value: Any, what: str, native: str, warnings: list[str]) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        _warn(warnings, f"{native}: {what} is not a number ({type(value).__name__}); ignored")
        return None
    if isinstance(value, float):  # the exchange sends strings; a float can only come from a re-encoder
        if not math.isfinite(value):
            _warn(warnings, f"{native}: {what} is not finite; ignored")
            return None
        value = repr(value)
    try:
        d = Decimal(value)
    except InvalidOperation:
        _warn(warnings, f"{native}: {what} {value!r} is not a decimal; ignored")
        return None
    if not d.is_finite() or d < 0:
        _warn(warnings, f"{native}: {what} {value!r} is not a finite non-negative decimal; ignored")
        return None
    return d


def _int(value: Any, what: str, native: str, warnings: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    _warn(warnings, f"{native}: {what} {value!r} is not an integer; ignored")
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _warn(warnings: list[str], message: str) -> None:
    warnings.append(message)
    log.warning("%s", message)


def _parse_entry(i: int, entry: Any, warnings: list[str]) -> MarketInfo | None:
    if not isinstance(entry, Mapping):
        _warn(warnings, f"market entry #{i} is not an object ({type(entry).__name__}); skipped")
        return None
    native = entry.get("symbol")
    try:
        _check_native(native)
    except ValueError as exc:
        _warn(warnings, f"market entry #{i}: {exc}; skipped")
        return None
    parts = native.split("_")
    base = _opt_str(entry.get("baseSymbol")) or (parts[0] if len(parts) >= 2 else None)
    quote = _opt_str(entry.get("quoteSymbol")) or (parts[1] if len(parts) >= 2 else None)
    if base is None or quote is None:
        _warn(warnings, f"market entry #{i} ({native}): no base/quote symbol; skipped")
        return None

    raw_type = entry.get("marketType")
    inferred = not (isinstance(raw_type, str) and raw_type)
    market_type = infer_market_type(native) if inferred else raw_type.upper()
    instrument_type = INSTRUMENT_TYPES.get(market_type, UNKNOWN)
    if inferred:
        _warn(warnings, f"{native}: no marketType; inferred {market_type} from the symbol")
    elif instrument_type == UNKNOWN:
        _warn(warnings, f"{native}: unknown marketType {market_type!r}; kept as instrument type 'unknown'")
    else:
        why = _type_mismatch(native, market_type)
        if why:
            _warn(warnings, f"{why}; kept")

    filters = entry.get("filters")
    filters = filters if isinstance(filters, Mapping) else {}
    price = filters.get("price") if isinstance(filters.get("price"), Mapping) else {}
    qty = filters.get("quantity") if isinstance(filters.get("quantity"), Mapping) else {}

    visible = entry.get("visible", True)
    if not isinstance(visible, bool):
        _warn(warnings, f"{native}: visible {visible!r} is not a boolean; assumed true")
        visible = True

    return MarketInfo(
        native=native,
        normalized=native.replace("_", "-"),
        base=base,
        quote=quote,
        market_type=market_type,
        instrument_type=instrument_type,
        tick_size=_decimal(price.get("tickSize"), "tickSize", native, warnings),
        step_size=_decimal(qty.get("stepSize"), "stepSize", native, warnings),
        min_quantity=_decimal(qty.get("minQuantity"), "minQuantity", native, warnings),
        order_book_state=_opt_str(entry.get("orderBookState")),
        visible=visible,
        funding_interval_ms=_int(entry.get("fundingInterval"), "fundingInterval", native, warnings),
        rwa_market_type=_opt_str(entry.get("rwaMarketType")),
    )


def parse_markets(payload: Any) -> tuple[list[MarketInfo], list[str]]:
    """Parse a ``/api/v1/markets`` answer. Never raises: bad entries are skipped with a warning."""
    warnings: list[str] = []
    if not isinstance(payload, list):
        _warn(warnings, f"markets payload is not a list ({type(payload).__name__}); no markets loaded")
        return [], warnings
    markets: list[MarketInfo] = []
    seen: set[str] = set()
    for i, entry in enumerate(payload):
        try:
            info = _parse_entry(i, entry, warnings)
        except Exception as exc:  # noqa: BLE001 - one odd entry must not sink the whole list
            _warn(warnings, f"market entry #{i}: unexpected {type(exc).__name__}; skipped")
            continue
        if info is None:
            continue
        if info.native in seen:
            _warn(warnings, f"market entry #{i}: duplicate symbol {info.native!r}; skipped")
            continue
        seen.add(info.native)
        markets.append(info)
    return markets, warnings


class SymbolMap:
    """Both directions of the native ↔ normalized mapping for one set of markets."""

    __slots__ = ("_by_native", "_by_normalized")

    def __init__(self, markets: Iterable[MarketInfo] = ()) -> None:
        self._by_native: dict[str, MarketInfo] = {}
        self._by_normalized: dict[str, MarketInfo] = {}
        for m in markets:
            if m.native in self._by_native:
                raise ValueError(f"duplicate native symbol {m.native!r}")
            if m.normalized in self._by_normalized:
                raise ValueError(f"normalized symbol {m.normalized!r} maps to two native symbols")
            self._by_native[m.native] = m
            self._by_normalized[m.normalized] = m

    @classmethod
    def from_markets(cls, markets: Iterable[MarketInfo]) -> SymbolMap:
        return cls(markets)

    def _missing(self, symbol: object, kind: str) -> UnknownSymbolError:
        hint = ""
        if isinstance(symbol, str):
            if kind == "normalized" and symbol in self._by_native:
                hint = "; it is a native symbol, use to_normalized()"
            elif kind == "native" and symbol in self._by_normalized:
                hint = "; it is a normalized symbol, use to_native()"
        return UnknownSymbolError(
            f"unknown {kind} symbol {symbol!r}: not among the {len(self._by_native)} loaded Backpack markets{hint}"
        )

    def to_native(self, normalized: str) -> str:
        m = self._by_normalized.get(normalized)
        if m is None:
            raise self._missing(normalized, "normalized")
        return m.native

    def to_normalized(self, native: str) -> str:
        m = self._by_native.get(native)
        if m is None:
            raise self._missing(native, "native")
        return m.normalized

    def info(self, symbol: str) -> MarketInfo:
        """Look up by native or normalized symbol (the two never collide, see the module docstring)."""
        m = self._by_native.get(symbol) or self._by_normalized.get(symbol)
        if m is None:
            raise UnknownSymbolError(
                f"unknown symbol {symbol!r}: not among the {len(self._by_native)} loaded Backpack markets"
            )
        return m

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_native or symbol in self._by_normalized

    def __len__(self) -> int:
        return len(self._by_native)

    def __iter__(self) -> Iterator[MarketInfo]:
        return iter(sorted(self._by_native.values(), key=lambda m: m.native))

    def natives(self) -> list[str]:
        return sorted(self._by_native)

    def normalized(self) -> list[str]:
        return sorted(self._by_normalized)

    def __repr__(self) -> str:
        return f"SymbolMap({len(self)} markets)"


class SymbolCache:
    """The last good :class:`SymbolMap`, valid for ``ttl_us`` of the caller's clock (integer µs, like
    every time in the core).

    A refresh that yields no market keeps the previous map (an outage answer must not empty the
    symbol table); its warnings are still exposed in ``warnings``.
    """

    __slots__ = ("ttl_us", "_map", "_loaded_at", "warnings")

    def __init__(self, ttl_us: int) -> None:
        if type(ttl_us) is not int or ttl_us <= 0:
            raise ValueError(f"ttl_us must be a positive integer of microseconds, got {ttl_us!r}")
        self.ttl_us = ttl_us
        self._map: SymbolMap | None = None
        self._loaded_at: int | None = None
        self.warnings: list[str] = []

    def update(self, payload: Any, now_us: int) -> SymbolMap:
        markets, self.warnings = parse_markets(payload)
        if not markets:
            if self._map is not None:
                return self._map
            return SymbolMap()
        self._map = SymbolMap(markets)
        self._loaded_at = now_us
        return self._map

    def _fresh(self, now_us: int) -> bool:
        # A clock that went backwards counts as expired: refreshing is the safe answer.
        return self._loaded_at is not None and self._loaded_at <= now_us < self._loaded_at + self.ttl_us

    def get(self, now_us: int) -> SymbolMap | None:
        return self._map if self._fresh(now_us) else None

    def needs_refresh(self, now_us: int) -> bool:
        return not self._fresh(now_us)

    @property
    def loaded_at(self) -> int | None:
        """µs of the last load that yielded markets."""
        return self._loaded_at
