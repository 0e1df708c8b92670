"""Shared pytest helpers for tests that need the loopback Backpack server.

Import what you need in a conftest or test module::

    from harness.pytest_plugin import backpack_server, start_server  # noqa: F401

``backpack_server`` is frozen (``rate=0``: the test calls ``server.step(n)``, fully deterministic) with
fast keep-alive; ``live_backpack_server`` ticks on its own. For other settings call ``start_server``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest_asyncio

from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET, BackpackServer

__all__ = [
    "TEST_ACCOUNT_API_KEY",
    "TEST_ACCOUNT_SECRET",
    "BackpackServer",
    "backpack_server",
    "live_backpack_server",
    "running_server",
    "start_server",
]


async def start_server(**kwargs: Any) -> BackpackServer:
    """A started server on 127.0.0.1 and an ephemeral port; the caller must ``await server.stop()``.

    Keyword arguments go to ``BackpackServer`` (seed, rate, ping_interval, pong_timeout, ints_as_strings,
    market_config, account_keys, clock_ms, ...).
    """
    return await BackpackServer(**kwargs).start()


@asynccontextmanager
async def running_server(**kwargs: Any) -> AsyncIterator[BackpackServer]:
    server = await start_server(**kwargs)
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def backpack_server() -> AsyncIterator[BackpackServer]:
    async with running_server(seed=0, rate=0, ping_interval=0.5, pong_timeout=2.0) as server:
        yield server


@pytest_asyncio.fixture
async def live_backpack_server() -> AsyncIterator[BackpackServer]:
    async with running_server(seed=0, rate=100.0, ping_interval=0.5, pong_timeout=2.0) as server:
        yield server
