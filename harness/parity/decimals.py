"""ccxt's floats back to canonical decimal text (schema v1), without changing the value ccxt holds.

ccxt parses the exchange's decimal strings to IEEE doubles. The rule used for the oracle's output:

1. ``None`` stays ``None``; ints and strings go through ``canonical_decimal`` unchanged.
2. A finite float ``x`` first becomes its shortest round-trip text (``repr``), never ``Decimal(x)``
   (which would print the binary expansion, ``0.1`` -> ``0.1000000000000000055...``).
3. When the market's precision for that field is known (price tick or amount step from ccxt's
   ``market["precision"]``) and ``x`` lies within ``NOISE_ULPS`` units in the last place of a value on
   that grid, the grid value is taken: the exchange only sends values on its grid, so the excess is
   noise from ccxt's float arithmetic (``0.1 + 0.2`` -> ``0.3`` at a 0.01 tick). A value off the grid by
   more than noise (``0.125`` at a 0.01 tick) keeps its own digits: the rule never hides a real value.
4. Then ``canonical_decimal`` (trailing zeros dropped, ``-0`` is ``0``).

Limits (why the comparator still compares what ccxt holds, not what the wire said): a double carries
15-17 significant digits, so a wire value with more (``"0.123456789012345678"``) cannot be recovered
and compares unequal to the native side, which keeps every digit; a value beyond 2**53 that should be
an integer loses its low digits. Fields without a known precision (funding rates, PnL, notional) get
rule 2 only.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from backpack.protocol.normalized import canonical_decimal

NOISE_ULPS = 4
"""How far (in units in the last place of the double) from the market's grid counts as float noise."""


def places(tick: Any) -> int | None:
    """Decimal places of a ccxt precision value (a tick like 0.01 -> 2); None when unusable."""
    if tick is None or isinstance(tick, bool):
        return None
    try:
        d = Decimal(repr(tick)) if isinstance(tick, float) else Decimal(str(tick))
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite() or d <= 0:
        return None
    exponent = d.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else None


def from_ccxt(value: Any, decimals: int | None = None) -> str | None:
    """Canonical decimal text of a number ccxt produced (see the module docstring for the rule)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        return _from_float(value, decimals)
    return canonical_decimal(value)


@lru_cache(maxsize=1 << 16)
def _from_float(value: float, decimals: int | None) -> str | None:
    """Book levels repeat the same few thousand numbers: cached, this is most of the oracle's output work."""
    if not math.isfinite(value):
        return canonical_decimal(repr(value))
    text = repr(value)
    if decimals is not None and ("e" in text or ("." in text and len(text) - text.index(".") - 1 > decimals)):
        rounded = Decimal(text).quantize(Decimal(1).scaleb(-decimals))
        if abs(float(rounded) - value) <= NOISE_ULPS * math.ulp(value):
            text = str(rounded)
    return canonical_decimal(text)


def ms_to_us(ms: Any) -> int | None:
    """ccxt keeps milliseconds; schema v1 wants µs. The last three digits are unknown (zero here)."""
    if ms is None or isinstance(ms, bool):
        return None
    try:
        return int(ms) * 1000
    except (TypeError, ValueError):
        return None
