"""Careful number and time coercion for Backpack payloads.

The wire mixes JSON numbers and numeric strings for the same field (live captures, the docs and
ccxt's samples disagree), so every converter here accepts both and says precisely what was wrong
when it refuses. These are the *slow-path* rules; the decoder's fast path accepts only a subset of
them and falls back here for anything else, so both paths always agree.

Decimal fields that arrive as JSON numbers are converted through ``repr(float)`` (the shortest text
that round-trips the double orjson produced, e.g. ``0.5`` -> ``"0.5"``, ``0.01`` -> ``"0.01"``), never
through ``Decimal(float)``, which would expose binary noise. JSON integers convert exactly. Either
way the caller is told the value was coerced so it can be counted.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

MISSING_DECIMALS = frozenset({"", "N/A"})
"""String values that mean "no value" for a decimal field (``priceChangePercent`` can be ``"N/A"``)."""

MAX_EXPONENT = 100
"""Largest |exponent| accepted in exponent notation: a 6-byte ``"1e9999"`` must not become a number
whose plain rendering is gigabytes long. Plain notation is already bounded by the frame's size."""

_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:([eE])[+-]?[0-9]+)?")
_INT_MAX_CHARS = 40

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class NumberError(ValueError):
    """A value that cannot be read as the number or time the field needs; the text says why."""


def describe(value: object) -> str:
    """Short, safe description of an offending value for error messages (bounded length)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    if isinstance(value, list):
        return f"an array of {len(value)}"
    if isinstance(value, dict):
        return f"an object of {len(value)} keys"
    return type(value).__name__


def to_int(value: object) -> int:
    """JSON integer or a string of ASCII digits (optional leading ``-``); nothing else (no floats, bools)."""
    if type(value) is int:
        return value
    if type(value) is str and 0 < len(value) <= _INT_MAX_CHARS:
        body = value[1:] if value[0] == "-" else value
        if body.isascii() and body.isdigit():
            return int(value)
    if type(value) is float:
        raise NumberError(
            f"expected an integer, got the non-integer number {describe(value)} "
            "(JSON integers beyond 64 bits also arrive as floats)"
        )
    raise NumberError(f"expected an integer or a string of digits, got {describe(value)}")


def to_decimal(value: object) -> tuple[Decimal | None, bool]:
    """Return ``(decimal or None, coerced)``; null, ``""`` and ``"N/A"`` mean no value.

    Strings must be plain decimal or exponent notation (no whitespace, underscores, non-ASCII digits,
    NaN or Infinity). ``coerced`` is true when the value was a JSON number instead of a string.
    """
    if value is None:
        return None, False
    kind = type(value)
    if kind is str:
        if value in MISSING_DECIMALS:
            return None, False
        return _parse_decimal_text(value), False
    if kind is int:
        return Decimal(value), True
    if kind is float:
        if not math.isfinite(value):
            raise NumberError(f"expected a finite number, got {describe(value)}")
        return _parse_decimal_text(repr(value)), True
    raise NumberError(f"expected a decimal string or number, got {describe(value)}")


def _parse_decimal_text(text: str) -> Decimal:
    match = _DECIMAL_RE.fullmatch(text)
    if match is None:
        lowered = text.lower()
        if "nan" in lowered or "inf" in lowered:
            raise NumberError(f"NaN and Infinity are not accepted, got {describe(text)}")
        raise NumberError(f"expected a decimal string, got {describe(text)}")
    try:
        result = Decimal(text)
    except (InvalidOperation, ValueError) as exc:  # pragma: no cover - the regex admits only valid text
        raise NumberError(f"expected a decimal string, got {describe(text)}") from exc
    if match.group(1) is not None:
        exponent = result.adjusted()
        if not -MAX_EXPONENT <= exponent <= MAX_EXPONENT:
            raise NumberError(f"decimal exponent out of range (|e| > {MAX_EXPONENT}): {describe(text)}")
    return result


def to_bool(value: object) -> bool:
    """JSON ``true``/``false`` only."""
    if type(value) is bool:
        return value
    raise NumberError(f"expected true or false, got {describe(value)}")


def ms_to_us(value: object) -> int:
    """Millisecond integer (JSON number or digit string) -> microseconds."""
    return to_int(value) * 1000


_ISO_CACHE: dict[str, int] = {}
_ISO_CACHE_MAX = 512


def iso_to_us(value: object) -> int:
    """ISO-8601 text -> int µs since the epoch; text without a zone is UTC (Backpack kline times).

    Accepts ``T`` or space between date and time (WS ``2025-08-06T22:00:00``, REST
    ``2025-09-11 15:33:00``). A candle's start repeats on every push, so results are cached.
    """
    if type(value) is not str:
        raise NumberError(f"expected an ISO-8601 time string, got {describe(value)}")
    cached = _ISO_CACHE.get(value)
    if cached is not None:
        return cached
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise NumberError(f"expected an ISO-8601 time string, got {describe(value)}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        result = (moment - _EPOCH) // _MICROSECOND
    except OverflowError as exc:  # pragma: no cover - datetime bounds keep this in range
        raise NumberError(f"time out of range: {describe(value)}") from exc
    if len(_ISO_CACHE) >= _ISO_CACHE_MAX:
        _ISO_CACHE.clear()
    _ISO_CACHE[value] = result
    return result
