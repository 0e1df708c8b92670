"""The per-delta bookkeeping the book path keeps in place (freshness entry, book times) says what
``StreamActivity.seen`` and the book-time store would have said, across snapshots and resyncs."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from backpack import compat
from backpack.feed import BackpackFeed
from backpack.transport import WsFrame

NATIVE = "SOL_USDC"


def _delta(seq: int, price: str = "10", size: str = "1") -> str:
    return json.dumps({"stream": f"depth.{NATIVE}", "data": {
        "e": "depth", "E": 1, "s": NATIVE, "a": [], "b": [[price, size]], "U": seq, "u": seq, "T": 1}})


def _snapshot(last: int) -> bytes:
    return json.dumps({"asks": [["11", "1"]], "bids": [["9", "1"]], "lastUpdateId": str(last),
                       "timestamp": 1}).encode()


class _Books:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def __call__(self, book: Any, receipt: float) -> None:
        self.seen.append(book)


class _NoFetch:
    def cancel(self) -> None:
        pass


async def _sync(feed: BackpackFeed, last: int, receipt: int) -> None:
    """Bring the book to ``last`` the way the feed does, without a REST fetch."""
    feed._snapshot_tasks[NATIVE] = _NoFetch()  # type: ignore[assignment]
    await feed._on_frame(WsFrame(_delta(last), receipt))  # buffered; asks for a snapshot
    await feed._dispatch(feed.router.receive_snapshot(NATIVE, _snapshot(last), receipt))
    feed._snapshot_tasks.pop(NATIVE, None)


def _feed(books: _Books) -> BackpackFeed:
    return BackpackFeed(symbols=["SOL-USDC"], channels=[compat.L2_BOOK], callbacks={compat.L2_BOOK: books},
                        config={"log": {"disabled": True}})


async def _run(first: list[int], second: list[int]) -> tuple[BackpackFeed, _Books, int, int]:
    books = _Books()
    feed = _feed(books)
    await _sync(feed, 100, 5)
    seq = 100
    for receipt in first:
        seq += 1
        await feed._on_frame(WsFrame(_delta(seq, size=str(1 + seq % 7)), receipt))
    # a gap: the book resyncs, a new snapshot arrives, and the records go on
    feed._snapshot_tasks[NATIVE] = _NoFetch()  # type: ignore[assignment]
    await feed._on_frame(WsFrame(_delta(seq + 5), 7))
    await _sync(feed, 500, 9)
    seq = 500
    for receipt in second:
        seq += 1
        await feed._on_frame(WsFrame(_delta(seq, size=str(1 + seq % 5)), receipt))
    return feed, books, seq, 9


@settings(max_examples=40, deadline=None)
@given(first=st.lists(st.integers(10, 10**6), max_size=8), second=st.lists(st.integers(10, 10**6), max_size=8))
def test_freshness_and_book_times_count_every_delta_across_a_resync(first: list[int], second: list[int]) -> None:
    """For any receipts before and after a resync, the depth stream's message count is the number of
    deltas the book path handled, its last receipt their largest, and the book's change time the last one's."""
    feed, books, _, snapshot_receipt = asyncio.run(_run(first, second))
    deltas = first + second
    counted = feed.activity.count_for("depth", NATIVE)
    assert counted == len(deltas)  # the delta that broke the sequence is a resync, not a book update
    assert feed.activity.last_for("depth", NATIVE) == (max(deltas) if deltas else None)
    change, snapshot = feed._book_times[NATIVE]
    assert snapshot == snapshot_receipt
    assert change == (second[-1] if second else snapshot_receipt)
    assert books.seen[-1].book.bids.index(0)[0] == Decimal(10 if second else 9)  # the new snapshot's book


def test_a_book_handed_out_before_a_resync_is_not_the_new_one() -> None:
    feed, books, seq, _ = asyncio.run(_run([20, 30], [40]))
    old, new = books.seen[0], books.seen[-1]
    assert old is not new and new.sequence_number == seq
    assert feed._books[NATIVE].view is new
