"""The book cryptofeed callbacks receive (a view of the protocol book) answers as cryptofeed's own OrderBook.

Both are driven with the same generated snapshots and deltas on the installed cryptofeed (2.4.1 with
order_book 0.6 on py3.11, 3.0.1 with order_book 1.x on py3.13) and every read a callback or backend makes is
compared: the sides' len, iteration, membership, lookup, index (in and out of range), keys, to_list,
to_dict, items, the book's to_dict, max_depth, and the top-level to_dict with and without delta,
numeric_type and none_to. max_depth truncation is part of every example.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backpack import compat
from backpack.bookview import OrderBookView
from backpack.protocol.book import OrderBook as ProtocolBook
from backpack.protocol.events import DepthDelta

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PRICES = st.integers(1, 60).map(lambda n: Decimal(n) / 4)
SIZES = st.sampled_from([Decimal("0"), Decimal("1"), Decimal("2.5"), Decimal("0.001"), Decimal("10")])
LEVELS = st.lists(st.tuples(PRICES, SIZES), max_size=12)


def _outcome(call: Any, *args: Any) -> Any:
    try:
        return ("ok", call(*args))
    except Exception as exc:  # the exception type is part of the behaviour
        return ("raises", type(exc))


def _sides(view: Any, real: Any) -> None:
    for mine, theirs in ((view.book.bids, real.book.bids), (view.book.asks, real.book.asks)):
        assert len(mine) == len(theirs)
        assert list(mine) == list(theirs)
        assert mine.keys() == theirs.keys()
        assert mine.to_list() == theirs.to_list()
        assert mine.to_dict() == theirs.to_dict() and list(mine.to_dict()) == list(theirs.to_dict())
        assert mine.to_dict(to_type=str) == theirs.to_dict(to_type=str)
        if hasattr(theirs, "items"):
            assert list(mine.items()) == list(theirs.items())
        n = len(list(theirs)) + 2
        for i in range(-n, n):
            assert _outcome(mine.index, i) == _outcome(theirs.index, i), i
        assert _outcome(mine.index, "x") == _outcome(theirs.index, "x")
        for price in [*map(Decimal, range(0, 16)), "1", None]:
            assert (price in mine) == (price in theirs)
            assert _outcome(mine.__getitem__, price) == _outcome(theirs.__getitem__, price)
    assert view.book.to_dict() == real.book.to_dict()
    assert view.book.max_depth == real.book.max_depth


def _top(view: Any, real: Any) -> None:
    for delta in (False, True):
        for numeric_type in (None, str, float):
            for none_to in (False, "none"):
                got = view.to_dict(delta=delta, numeric_type=numeric_type, none_to=none_to)
                want = real.to_dict(delta=delta, numeric_type=numeric_type, none_to=none_to)
                assert got == want, (delta, numeric_type, none_to)
    for name in ("exchange", "symbol", "delta", "sequence_number", "timestamp", "checksum", "raw"):
        assert getattr(view, name) == getattr(real, name), name


@SETTINGS
@given(bids=LEVELS, asks=LEVELS, deltas=st.lists(st.tuples(LEVELS, LEVELS), max_size=6),
       max_depth=st.sampled_from([0, 1, 2, 3, 5, 100]))
def test_view_reads_like_cryptofeeds_order_book(bids: list, asks: list, deltas: list, max_depth: int) -> None:
    """For any snapshot, any deltas and any max_depth, every read of the view equals the same read of a
    cryptofeed OrderBook kept in step the way the feed used to keep it."""
    proto = ProtocolBook()
    proto.apply_snapshot(bids, asks)
    real = compat.OrderBook("BACKPACK", "SOL-USDC", max_depth=max_depth)
    for price, size in proto.bid_dict().items():
        real.book.bids[price] = size
    for price, size in proto.ask_dict().items():
        real.book.asks[price] = size
    view = OrderBookView("BACKPACK", "SOL-USDC", proto, max_depth)
    _sides(view, real)
    _top(view, real)
    for seq, (d_bids, d_asks) in enumerate(deltas, start=1):
        d_bids, d_asks = dict(d_bids), dict(d_asks)  # one size per price, as on the wire
        event = DepthDelta("SOL_USDC", seq, seq, list(d_bids.items()), list(d_asks.items()), 0, 0)
        proto.apply_levels(event.bids, event.asks)
        for side, levels in ((real.book.bids, event.bids), (real.book.asks, event.asks)):
            for price, size in levels:
                if size == 0:
                    if price in side:
                        del side[price]
                else:
                    side[price] = size
        for book, delta in ((view, event), (real, {compat.BID: list(event.bids), compat.ASK: list(event.asks)})):
            book.delta = delta
            book.sequence_number = seq
            book.timestamp = seq / 10
        _sides(view, real)
        _top(view, real)


def test_the_delta_is_built_only_when_read() -> None:
    """The feed hands over the protocol delta; cryptofeed's dict form exists once something reads it."""
    view = OrderBookView("BACKPACK", "SOL-USDC", ProtocolBook())
    event = DepthDelta("SOL_USDC", 1, 1, [(Decimal(1), Decimal(2))], [], 0, 0)
    view.delta = event
    assert view._delta_dict is None
    assert view.delta == {compat.BID: [(Decimal(1), Decimal(2))], compat.ASK: []}
    assert view.delta is view.delta  # built once
    view.delta = None
    assert view.delta is None
    with pytest.raises(TypeError):
        view.delta = [1]  # cryptofeed's slot takes a dict or None, and so does the view


def test_the_view_is_the_book_of_record_and_read_only() -> None:
    proto = ProtocolBook()
    proto.apply_snapshot([(Decimal(1), Decimal(1))], [(Decimal(2), Decimal(1))])
    view = OrderBookView("BACKPACK", "SOL-USDC", proto)
    assert isinstance(view, compat.OrderBook)
    proto.apply_levels([(Decimal("1.5"), Decimal(3))], [])
    assert view.book.bids.index(0) == (Decimal("1.5"), Decimal(3))  # no copy to keep in step
    proto.clear()  # a resync empties the book of record in place; the view follows it
    assert len(view.book.bids) == 0
    for write in (lambda: view.book.bids.__setitem__(Decimal(1), Decimal(1)),
                  lambda: view.book.asks.__delitem__(Decimal(2)), view.book.bids.truncate):
        with pytest.raises(TypeError, match="read-only"):
            write()
