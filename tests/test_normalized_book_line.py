"""The book line written directly (per-level texts, a side's text kept while its top N stands) is the line the
straightforward rendering gives: ``dumps`` of the record, for any sequence of books."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from backpack.protocol import normalized
from backpack.protocol.book import OrderBook
from backpack.protocol.events import BookUpdate, DepthDelta, Trade
from backpack.protocol.normalized import Normalizer, dumps

PRICES = st.builds(lambda units, exp: Decimal(units).scaleb(exp), st.integers(1, 400), st.integers(-3, 1))
SIZES = st.builds(lambda units, exp: Decimal(units).scaleb(exp), st.integers(0, 50), st.integers(-2, 2))
LEVEL_VALUES = PRICES | st.sampled_from([Decimal("sNaN"), Decimal("NaN"), Decimal("-0.00"), Decimal("1E+40")]) | (
    st.integers(-5, 5) | st.booleans() | st.text(max_size=3) | st.none() | st.floats(allow_nan=False))
ODD_LEVELS = st.lists(st.one_of(st.tuples(LEVEL_VALUES, LEVEL_VALUES), st.tuples(PRICES, SIZES),
                                st.just(("1",)), st.just("ab"), st.just(7)), max_size=4)


class _Sync:
    def __init__(self, book: Any) -> None:
        self.book = book


class _Books:
    """The two methods the Normalizer reads from a BookManager, over books the test mutates itself."""

    def __init__(self) -> None:
        self.syncs: dict[str, _Sync] = {}

    def __contains__(self, symbol: object) -> bool:
        return symbol in self.syncs

    def get(self, symbol: str) -> _Sync:
        return self.syncs[symbol]


class _LooseBook:
    """A book of another type, holding whatever it is given (the Normalizer must not assume Decimals)."""

    def __init__(self, bids: list[Any], asks: list[Any]) -> None:
        self.bids, self.asks = bids, asks

    def top(self, n: int | None) -> tuple[list[Any], list[Any]]:
        return (self.bids[:n], self.asks[:n]) if n is not None else (list(self.bids), list(self.asks))


steps = st.lists(st.tuples(
    st.sampled_from(["SOL_USDC", "BTC_USDC_PERP", "odd"]),
    st.sampled_from(["levels", "levels", "levels", "snapshot", "loose", "drop", "trade"]),
    st.lists(st.tuples(PRICES, SIZES), max_size=5), st.lists(st.tuples(PRICES, SIZES), max_size=5),
    ODD_LEVELS, st.sampled_from(["delta", "snapshot", "other"]), st.integers(-1, 2**64) | st.none(),
    st.integers(0, 2**53) | st.none() | st.just("x"),
), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(steps=steps, depth=st.sampled_from([1, 3, 10, None]))
def test_book_lines_equal_the_straightforward_rendering(steps: list[tuple[Any, ...]], depth: int | None) -> None:
    """After every change of any book (deltas, snapshots, a book of another type, a book that disappears), the
    book line ``lines`` writes is ``dumps`` of the record ``records`` builds for the same output."""
    normalized._FRAGMENT.clear()
    books = _Books()
    n = Normalizer(books, depth=depth)  # type: ignore[arg-type]
    for symbol, op, bids, asks, odd, kind, sequence, stamp in steps:
        sync = books.syncs.get(symbol)
        if op == "snapshot" or (sync is None and op == "levels"):
            book = OrderBook()
            book.apply_snapshot(bids, asks)
            books.syncs[symbol] = _Sync(book)
        elif op == "levels" and isinstance(sync.book, OrderBook):  # type: ignore[union-attr]
            sync.book.apply_levels(bids, asks)  # type: ignore[union-attr]
        elif op == "loose":
            books.syncs[symbol] = _Sync(_LooseBook(odd + bids, asks + odd))
        elif op == "drop":
            books.syncs.pop(symbol, None)
        delta = None if kind == "snapshot" else DepthDelta(symbol, 1, 2, odd + bids, asks, 5, 6, 7)
        if op == "trade":
            output: Any = Trade(symbol, "1", "buy", Decimal("1.50"), Decimal("2"), 5, 6, None, None, receipt=7)
        else:
            output = BookUpdate(symbol, kind, sequence, delta, stamp, stamp)  # type: ignore[arg-type]
        assert n.lines([output]) == [dumps(r) for r in n.records([output])]


def test_a_side_whose_top_stands_is_not_rendered_again(monkeypatch) -> None:
    """The kept text is used while a side's top N is unchanged, and dropped when it changes."""
    book = OrderBook()
    book.apply_snapshot([(Decimal(p), Decimal(1)) for p in range(1, 30)], [(Decimal(p), Decimal(1)) for p in
                                                                           range(31, 60)])
    books = _Books()
    books.syncs["SOL_USDC"] = _Sync(book)
    n = Normalizer(books, depth=5)  # type: ignore[arg-type]
    rendered: list[int] = []
    side_text = normalized._side_text

    def counting(levels: Any) -> str:
        rendered.append(len(levels))
        return side_text(levels)

    monkeypatch.setattr(normalized, "_side_text", counting)
    update = BookUpdate("SOL_USDC", "delta", 1, None, 5, 6)
    first = n.lines([update])
    book.apply_levels([(Decimal(2), Decimal(3))], [])  # below the top 5 bids: nothing shown changes
    assert n.lines([update]) == first and rendered == [5, 5]
    book.apply_levels([(Decimal(29), Decimal(4))], [])  # the best bid's size
    assert n.lines([update]) == [dumps(r) for r in n.records([update])] != first
    assert rendered == [5, 5, 5]
