"""A deliberate book bug for the bisect tests: a synced book ignores a delta's delete of its best bid.

``install()`` puts it in and ``remove()`` takes it out again; loaded as a pytest plugin
(``python -m pytest -p tests.bisect_bug ...``) it is installed for the whole run. Importing it does nothing. The live hot path (``BookSync.on_decoded_delta``) is where it
sits, so the snapshot's replay of buffered deltas stays right and only later deltas go wrong.
"""

from __future__ import annotations

import dataclasses

from backpack.protocol.book import SYNCED, BookSync

_ORIGINAL = BookSync.on_decoded_delta


def _buggy(self: BookSync, d):  # type: ignore[no-untyped-def]
    keys = self.book._bid_keys
    if self.state == SYNCED and keys:
        best = keys[-1]
        if any(p == best and not s for p, s in d.bids):
            d = dataclasses.replace(d, bids=[(p, s) for p, s in d.bids if not (p == best and not s)])
    return _ORIGINAL(self, d)


def install() -> None:
    BookSync.on_decoded_delta = _buggy  # type: ignore[method-assign]


def remove() -> None:
    BookSync.on_decoded_delta = _ORIGINAL  # type: ignore[method-assign]


def pytest_configure(config: object) -> None:
    """``-p tests.bisect_bug``: the run under test has the bug."""
    install()
