"""The seeded market behind the loopback server: public market data, the private test account, wire encoding."""

from harness.loopback.market.account import Account
from harness.loopback.market.generator import (
    DEFAULT_MARKETS,
    DEPTH_WINDOWS_US,
    INTERVALS,
    MarketConfig,
    MarketGenerator,
    MarketSpec,
)
from harness.loopback.market.wire import Emission, encode_frame

__all__ = [
    "Account",
    "DEFAULT_MARKETS",
    "DEPTH_WINDOWS_US",
    "INTERVALS",
    "Emission",
    "MarketConfig",
    "MarketGenerator",
    "MarketSpec",
    "encode_frame",
]
