"""Wire encoding of the loopback market: frame JSON, decimal text and timestamps as the exchange writes them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# Fields the live wire sends as JSON integers that docs/ccxt samples sometimes show as strings.
WIRE_INT_KEYS = frozenset({"E", "T", "U", "u", "t"})


def canon(d: Decimal) -> str:
    """Canonical decimal text ("86700", never "8.67E+4" or "-0"): how REST prints numbers here."""
    return "0" if not d else format(d.normalize(), "f")


def encode_frame(stream: str, data: dict[str, Any], ints_as_strings: bool = False) -> str:
    """Compact, key-order-preserving JSON; optionally quote E/T/U/u/t like ccxt's samples."""
    if ints_as_strings:
        data = {
            k: str(v) if k in WIRE_INT_KEYS and isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in data.items()
        }
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def iso_ws(ts_s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_s))


def iso_rest(ts_s: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts_s))


@dataclass(frozen=True, slots=True)
class Emission:
    """One frame-to-be: the server wraps it as ``{"stream": ..., "data": ...}``."""

    stream: str
    data: dict[str, Any]
    private: bool = False

    @property
    def symbol(self) -> str | None:
        return self.data.get("s")
