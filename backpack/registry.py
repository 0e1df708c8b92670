"""Which implementation ``BACKPACK`` resolves to: the native feed or the ccxt-backed legacy path.

The choice is made when a feed is constructed, so flipping ``CRYPTOFEED_BACKPACK_NATIVE`` or
``backpack.native_enabled`` takes effect for the next ``add_feed('BACKPACK')`` without re-importing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from . import BACKPACK, compat
from .config import NATIVE_ENV, BackpackConfig, section_of

LOG = logging.getLogger("backpack")


def native_enabled(config: Any = None, environ: Mapping[str, str] | None = None) -> bool:
    """The flag as the feed will see it: the env variable wins over the config file."""
    env = os.environ if environ is None else environ
    return BackpackConfig.load(section_of(config), environ=env).native_enabled


def feed_class(config: Any = None, environ: Mapping[str, str] | None = None) -> type:
    if native_enabled(config, environ):
        from .feed import BackpackFeed

        return BackpackFeed
    from .ccxt_feed import BackpackCcxtFeed

    return BackpackCcxtFeed


class Backpack:
    """What ``EXCHANGE_MAP['BACKPACK']`` holds: constructing it builds the flagged implementation."""

    id = BACKPACK

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        impl = feed_class(kwargs.get("backpack_config") or kwargs.get("config"))
        LOG.info("BACKPACK: %s path active (%s)", "native" if impl.__name__ == "BackpackFeed" else "ccxt",
                 f"{NATIVE_ENV} / backpack.native_enabled")
        return impl(*args, **kwargs)


def register() -> None:
    compat.register(BACKPACK, Backpack)
