"""Native Backpack Exchange feed for cryptofeed.

Importing this package registers ``BACKPACK`` with cryptofeed, so ``FeedHandler().add_feed(BACKPACK)``
and a YAML ``backpack:`` section work. The sans-I/O core in ``backpack.protocol`` needs none of
cryptofeed, aiohttp or websockets: where they are not installed, registration is skipped
(``registered`` is False) and the core imports and runs alone.
"""

from __future__ import annotations

__version__ = "0.1.0"

BACKPACK = "BACKPACK"
"""The exchange id under which the feed is registered (``add_feed(BACKPACK)``)."""

# The feed cannot run without these, so their absence only skips registration. Any other ImportError
# (a missing pydantic, a broken cryptofeed install, a fault in this package) is real and propagates.
_FEED_STACK = frozenset({"cryptofeed", "aiohttp", "websockets"})


def _register() -> bool:
    try:
        import cryptofeed  # noqa: F401  (first: its absence is seen before anything else is imported)

        from .registry import register
    except ModuleNotFoundError as exc:
        if exc.name not in _FEED_STACK:
            raise
        return False
    register()
    return True


registered: bool = _register()

__all__ = ["BACKPACK", "__version__", "registered"]
