"""Deliberately broken copies of three protections, to prove the scenario invariants catch their loss.

Each mutant replaces one precise method with a copy that lacks one check. ``apply(name)`` installs it
in this process; ``BACKPACK_MUTANT=name`` with ``-p tests.mutants`` installs it in a pytest run, so a
test can run the scenario suite in a subprocess against a mutant and see it fail.

* ``u_chain``: a synced book applies any newer delta, without ``U == previous u + 1``.
* ``trade_dedup``: the Router's memory of trade ids never says "seen" (every copy is emitted).
* ``resubscribe``: after a reconnect the session subscribes to nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


def _u_chain() -> None:
    from backpack.protocol import book
    from backpack.protocol.events import BookUpdate

    def synced_slow(self: Any, d: Any) -> list[Any]:
        prev = self.last_update_id
        if d.last_update_id <= prev:
            return self._old(d, prev)
        self.book._apply(d.bids, d.asks)  # no U check: a gap is applied as if nothing were missing
        self.last_update_id = d.last_update_id
        self._last_first = d.first_update_id
        return [BookUpdate(self.symbol, "delta", d.last_update_id, d, d.timestamp, d.receipt)]

    book.BookSync._synced_slow = synced_slow


def _trade_dedup() -> None:
    from backpack.protocol import router

    router._SeenIds.add = lambda self, key: True


def _resubscribe() -> None:
    from backpack import session

    original = session.WsSessionManager._subscribe

    async def subscribe(self: Any, ws: Any) -> None:
        if self.stats.connects > 1:
            return
        await original(self, ws)

    session.WsSessionManager._subscribe = subscribe


MUTANTS: dict[str, Callable[[], None]] = {"u_chain": _u_chain, "trade_dedup": _trade_dedup,
                                          "resubscribe": _resubscribe}


def apply(name: str) -> None:
    MUTANTS[name]()


def pytest_configure(config: Any) -> None:
    name = os.environ.get("BACKPACK_MUTANT")
    if name:
        apply(name)
