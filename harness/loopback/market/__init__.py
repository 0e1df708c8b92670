"""The seeded market behind the loopback server: public market data, the private test account, wire encoding."""

from harness.loopback.market.generator import (
    DEFAULT_MARKETS,
    DEPTH_WINDOWS_US,
    INTERVALS,
    Emission,
    MarketConfig,
    MarketGenerator,
    MarketSpec,
    encode_frame,
)

__all__ = [
    "DEFAULT_MARKETS",
    "DEPTH_WINDOWS_US",
    "INTERVALS",
    "Emission",
    "MarketConfig",
    "MarketGenerator",
    "MarketSpec",
    "encode_frame",
]
