"""The order book cryptofeed's callbacks receive: a read-only view of the protocol book of record.

The Router applies each delta once, to ``backpack.protocol.book.OrderBook``. Keeping a second,
cryptofeed ``OrderBook`` in step cost a second application of every level; this view instead answers
cryptofeed's book API from the protocol book's dicts and sorted price lists. It is a subclass of
cryptofeed's ``OrderBook``, so ``isinstance`` checks and ``book_callback`` keep working, and it behaves
as cryptofeed's does for what callbacks and backends use (``tests/test_bookview.py`` pins it to the
installed cryptofeed over generated books): ``book.bids``/``asks`` (``len``, iteration, ``in``,
``[price]``, ``index``, ``keys``, ``to_list``, ``to_dict``, ``items``), ``book.to_dict``, ``max_depth``,
and ``to_dict(delta=, numeric_type=, none_to=)``, ``delta``, ``sequence_number``, ``timestamp``,
``checksum``, ``raw``, ``symbol``, ``exchange``.

Where the two order-book lines differ (``order_book`` 0.6 under cryptofeed 2.4.1 ignores ``max_depth``
in ``index`` and iteration, 1.x truncates them), the view does what the installed one does: the
behaviour is probed once at import.

``delta`` is built on first read: the feed hands the protocol ``DepthDelta`` to ``book_callback``, and
the ``{bid: [...], ask: [...]}`` lists exist only if a callback or backend asks for them.

The view refuses writes (``TypeError``): a callback that changed it would change the feed's own book.
"""

from __future__ import annotations

from decimal import Decimal
from operator import index as _as_index
from typing import Any

from . import compat
from .protocol.book import OrderBook as ProtocolBook
from .protocol.events import DepthDelta

BID = compat.BID
ASK = compat.ASK
_READ_ONLY = "the feed's order book is read-only: it is the book of record the feed keeps in sync"


def _probe() -> tuple[bool, str]:
    """(index and iteration honour max_depth, the IndexError text) of the installed order_book."""
    real = compat.OrderBook("probe", "P-Q", max_depth=1)
    real.book.bids[Decimal(1)] = Decimal(1)
    real.book.bids[Decimal(2)] = Decimal(1)
    truncates = len(list(real.book.bids)) == 1
    try:
        real.book.bids.index(5)
        message = "index out of range"
    except IndexError as exc:
        message = str(exc)
    return truncates, message


_INDEX_TRUNCATES, _INDEX_ERROR = _probe()


class BookSide:
    """One side of the view, best price first, like ``order_book.SortedDict``."""

    __slots__ = ("_book", "_bid", "_depth")

    def __init__(self, book: ProtocolBook, bid: bool, max_depth: int) -> None:
        self._book = book
        self._bid = bid
        self._depth = max_depth if max_depth and max_depth > 0 else 0

    def _sizes(self) -> dict[Decimal, Decimal]:
        return self._book._bids if self._bid else self._book._asks

    def _ordered(self, truncate: bool = True) -> list[Decimal]:
        """Prices best first, cut to max_depth when ``truncate``."""
        book = self._book
        depth = self._depth if truncate else 0
        if self._bid:
            keys = book._bid_keys
            return keys[: -depth - 1 : -1] if depth else keys[::-1]
        keys = book._ask_keys
        return keys[:depth] if depth else keys[:]

    def __len__(self) -> int:
        return self._limited(len(self._sizes()))

    def __iter__(self) -> Any:
        return iter(self._ordered(_INDEX_TRUNCATES))

    def __contains__(self, price: object) -> bool:
        try:
            return price in self._sizes()
        except TypeError:
            return False

    def __getitem__(self, price: Decimal) -> Decimal:
        try:
            return self._sizes()[price]
        except (KeyError, TypeError):
            raise KeyError("key does not exist") from None

    def __setitem__(self, price: Any, size: Any) -> None:
        raise TypeError(_READ_ONLY)

    def __delitem__(self, price: Any) -> None:
        raise TypeError(_READ_ONLY)

    def truncate(self) -> None:
        raise TypeError(_READ_ONLY)

    def index(self, i: int) -> tuple[Decimal, Decimal]:
        """The ``i``-th best level (negative counts from the worst)."""
        book = self._book
        return self._at(book._bid_keys if self._bid else book._ask_keys, self._sizes(), i, self._bid)

    def keys(self) -> tuple[Decimal, ...]:
        return tuple(self._ordered())

    def to_list(self) -> list[tuple[Decimal, Decimal]]:
        sizes = self._sizes()
        return [(p, sizes[p]) for p in self._ordered()]

    def items(self) -> Any:
        return iter(self.to_list())

    def to_dict(self, to_type: Any = None) -> dict[Any, Any]:
        sizes = self._sizes()
        if to_type is None:
            return {p: sizes[p] for p in self._ordered()}
        return {to_type(p): to_type(sizes[p]) for p in self._ordered()}

    def __repr__(self) -> str:
        return f"<BookSide {'bids' if self._bid else 'asks'} levels={len(self._sizes())} max_depth={self._depth}>"

    def _limited(self, n: int) -> int:
        """``n`` levels as a side of at most ``max_depth`` counts them."""
        depth = self._depth
        return n if not depth or n < depth else depth

    def _at(self, keys: Any, sizes: Any, i: Any, best_last: bool) -> tuple[Decimal, Decimal]:
        """The ``i``-th level from the best, ``keys`` sorted ascending (the best last for bids)."""
        if type(i) is not int:
            i = _as_index(i)
        n = len(keys)
        if _INDEX_TRUNCATES and self._depth and n > self._depth:
            n = self._depth
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(_INDEX_ERROR)
        price = keys[-1 - i] if best_last else keys[i]
        return price, sizes[price]


class _Bids(BookSide):
    """The bid side. ``len`` and ``index`` read the book directly: cryptofeed 3.0.1's ``book_callback``
    calls both on each side of every book it delivers (its crossed-book check)."""

    __slots__ = ()

    def __init__(self, book: ProtocolBook, max_depth: int) -> None:
        super().__init__(book, True, max_depth)

    def __len__(self) -> int:
        return self._limited(len(self._book._bids))

    def index(self, i: int) -> tuple[Decimal, Decimal]:
        book = self._book
        return self._at(book._bid_keys, book._bids, i, True)


class _Asks(BookSide):
    """The ask side, as ``_Bids``."""

    __slots__ = ()

    def __init__(self, book: ProtocolBook, max_depth: int) -> None:
        super().__init__(book, False, max_depth)

    def __len__(self) -> int:
        return self._limited(len(self._book._asks))

    def index(self, i: int) -> tuple[Decimal, Decimal]:
        book = self._book
        return self._at(book._ask_keys, book._asks, i, False)


class BookSides:
    """What ``OrderBook.book`` is in cryptofeed (``order_book.OrderBook``): the two sides and ``max_depth``."""

    __slots__ = ("bids", "asks", "max_depth")

    def __init__(self, book: ProtocolBook, max_depth: int) -> None:
        self.bids: BookSide = _Bids(book, max_depth)
        self.asks: BookSide = _Asks(book, max_depth)
        self.max_depth = max_depth

    @property
    def bid(self) -> BookSide:
        return self.bids

    @property
    def ask(self) -> BookSide:
        return self.asks

    def to_dict(self, to_type: Any = None) -> dict[str, dict[Any, Any]]:
        return {BID: self.bids.to_dict(to_type), ASK: self.asks.to_dict(to_type)}

    def checksum(self) -> Any:
        raise ValueError("no checksum format specified")

    def __repr__(self) -> str:
        return f"<BookSides bids={len(self.bids)} asks={len(self.asks)} max_depth={self.max_depth}>"


def _delta(d: DepthDelta) -> dict[str, list[tuple[Decimal, Decimal]]]:
    return {BID: list(d.bids), ASK: list(d.asks)}


def _numeric(levels: list[Any], numeric_type: Any) -> list[tuple[Any, ...]]:
    return [tuple([numeric_type(v) if isinstance(v, Decimal) else v for v in level]) for level in levels]


class OrderBookView(compat.OrderBook):
    """cryptofeed's ``OrderBook`` API over the protocol book (see the module docstring)."""

    __slots__ = ("_sides", "_delta_event", "_delta_dict")

    def __init__(self, exchange: str, symbol: str, book: ProtocolBook, max_depth: int = 0) -> None:
        super().__init__(exchange, symbol)
        self._sides = BookSides(book, max_depth or 0)
        self._delta_event: DepthDelta | None = None
        self._delta_dict: dict | None = None

    @property
    def book(self) -> BookSides:  # type: ignore[override]
        return self._sides

    @property
    def delta(self) -> dict | None:  # type: ignore[override]
        if self._delta_event is not None:
            self._delta_dict = _delta(self._delta_event)
            self._delta_event = None
        return self._delta_dict

    @delta.setter
    def delta(self, value: DepthDelta | dict | None) -> None:
        """``book_callback`` stores what the feed passed: the protocol delta, converted when first read."""
        if type(value) is DepthDelta:
            self._delta_event = value
            self._delta_dict = None
            return
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"Expected dict, got {type(value).__name__}")
        self._delta_event = None
        self._delta_dict = value

    def to_dict(self, delta: bool = False, numeric_type: Any = None, none_to: Any = False) -> dict:
        book_delta = self.delta
        base = {"exchange": self.exchange, "symbol": self.symbol}
        if delta:
            if numeric_type is None or not book_delta:
                data = {**base, "delta": book_delta if numeric_type is None else None, "timestamp": self.timestamp}
            else:
                data = {**base, "delta": self._numeric_delta(book_delta, numeric_type), "timestamp": self.timestamp}
        elif numeric_type is None:
            data = {**base, "book": self._sides.to_dict(), "delta": book_delta, "timestamp": self.timestamp}
        else:

            def helper(x: Any) -> Any:
                return numeric_type(x)

            data = {**base, "book": self._sides.to_dict(helper),
                    "delta": self._numeric_delta(book_delta, numeric_type) if book_delta else None,
                    "timestamp": self.timestamp}  # fmt: skip
        if none_to:
            for key, value in data.items():
                if value is None:
                    data[key] = none_to
        return data

    @staticmethod
    def _numeric_delta(book_delta: dict, numeric_type: Any) -> dict:
        return {BID: _numeric(book_delta[BID], numeric_type), ASK: _numeric(book_delta[ASK], numeric_type)}

    def __repr__(self) -> str:
        return f"exchange: {self.exchange} symbol: {self.symbol} book: {self._sides!r} timestamp: {self.timestamp}"

    def __eq__(self, cmp: object) -> bool:
        try:
            return (
                self.exchange == cmp.exchange and self.symbol == cmp.symbol  # type: ignore[attr-defined]
                and self.delta == cmp.delta and self.timestamp == cmp.timestamp  # type: ignore[attr-defined]
                and self.sequence_number == cmp.sequence_number  # type: ignore[attr-defined]
                and self.checksum == cmp.checksum  # type: ignore[attr-defined]
                and self._sides.to_dict() == cmp.book.to_dict()  # type: ignore[attr-defined]
            )
        except AttributeError:
            return NotImplemented

    def __hash__(self) -> int:
        return hash(self.__repr__())


__all__ = ["BookSide", "BookSides", "OrderBookView"]
