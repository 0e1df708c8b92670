"""Native Backpack Exchange feed for cryptofeed.

Importing this package registers ``BACKPACK`` with cryptofeed, so ``FeedHandler().add_feed('BACKPACK')``
and a YAML ``backpack:`` section work. The sans-I/O core in ``backpack.protocol`` does not need cryptofeed.
"""

from __future__ import annotations

from .registry import register

__version__ = "0.1.0"

register()

__all__ = ["__version__"]
