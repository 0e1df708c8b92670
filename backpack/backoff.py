"""The one retry-delay rule shared by the REST client, the WS session, snapshot fetches and the ccxt path."""

from __future__ import annotations

import random


def equal_jitter(base: float, exponent: int, cap: float, rng: random.Random) -> float:
    """Exponential backoff with equal jitter: ``base * 2**exponent`` capped, half fixed (never zero), half random."""
    half = min(cap, base * 2 ** max(0, exponent)) / 2
    return half + half * rng.random()
