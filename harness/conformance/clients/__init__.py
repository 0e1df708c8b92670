"""Clients under test, each behind one small adapter (``docs/guides/conformance-adapter.md``).

An adapter connects its client to the URLs it is given, subscribes to the symbols and channels of a case,
and hands every event the client produces to ``emit`` as a schema-v1 record (the shapes
``backpack.protocol.normalized`` writes), until ``stop`` is set. It changes nothing in the client but
where it connects; how the client reconnects, resubscribes and keeps its book is what is judged.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

Record = dict[str, Any]
Emit = Callable[[Record], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Target:
    """What a case asks of a client: where to connect and what to subscribe to."""

    rest_url: str
    ws_url: str
    symbols: tuple[str, ...]  # cryptofeed spelling: SOL-USDC, SOL-USDC-PERP
    channels: tuple[str, ...]  # catalog names: trades, l2_book, bbo, ticker, orders
    depth: int = 10  # book levels per side in book records
    depth_speed: str | None = None  # "200ms": the aggregated depth stream
    api_key: str | None = None  # the loopback test account (private cases only)
    secret: str | None = None


class Adapter(Protocol):
    name: str
    description: str
    capabilities: frozenset[str]  # channels it can deliver, plus "private" and "aggregated_depth"

    def missing(self) -> str | None:
        """None when the client can run here, else why not (e.g. "not installed")."""
        ...

    async def run(self, target: Target, emit: Emit, stop: asyncio.Event) -> None:
        """Run the client until ``stop``; exceptions that escape it are a crash in the verdict."""
        ...


ADAPTERS: dict[str, str] = {
    "native": "harness.conformance.clients.native:NativeAdapter",
    "ccxt-feed": "harness.conformance.clients.ccxt_feed:CcxtFeedAdapter",
    "ccxt-pro": "harness.conformance.clients.ccxt_pro:CcxtProAdapter",
    "backpack-exchange-sdk": "harness.conformance.clients.sdk:SdkAdapter",
}
"""Column name -> ``module:class``; the modules import their client only when it runs."""


class UnknownClient(ValueError):
    pass


def adapter(name: str) -> Adapter:
    spec = ADAPTERS.get(name)
    if spec is None:
        raise UnknownClient(f"unknown client {name!r}; known: {', '.join(ADAPTERS)}")
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)()


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


__all__ = ["ADAPTERS", "Adapter", "Emit", "Record", "Target", "UnknownClient", "adapter", "importable"]
