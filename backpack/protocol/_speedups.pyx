# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled hot path of the sans-I/O core: the depth and trade frames a live feed is made of.

Built by Cython into ``backpack.protocol._speedups``; ``backpack.protocol.speedups`` decides whether it is
used. Each function here is a transcription of a pure-Python function that stays the reference:

* ``fast_depth`` / ``fast_trade``: ``messages._fast_depth`` / ``messages._fast_trade`` (the Decoder's fast
  handlers), with the decimal text check as a C character loop and the events built without ``__init__``;
* ``Receiver.receive_frame``: ``Router.receive_frame`` with those two handlers and, for a depth delta on a
  synced book, ``BookSync.on_decoded_delta`` fused in (the book's dict and sorted price list updated here).

Anything these are not sure about goes where the pure code sends it: a frame to the Decoder's careful path,
a delta that is not the synced in-sequence case to ``BookSync.on_delta``. ``tests/test_perf_equivalence.py``,
``tests/test_messages_fuzz.py`` and ``tests/test_speedups*.py`` run every contract on both. Sans-I/O like the
rest of the core: no clock, no I/O, no event loop.
"""

import logging
from decimal import Decimal

import orjson

from .book import BookSync, OrderBook
from .events import BookUpdate, DepthDelta, Trade
from .numbers import to_int

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

cdef extern from "structmember.h":  # the 3.11 names; 3.12+ keep them as aliases of Py_T_OBJECT_EX, Py_READONLY
    int T_OBJECT_EX_ "T_OBJECT_EX"
    int READONLY_ "READONLY"

from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF


cdef class _Slots:
    """Where each slot of an event class lives in its objects: the hot events are built with ``__new__`` and
    one pointer store per field, instead of one attribute lookup and descriptor call per field."""

    cdef object cls
    cdef Py_ssize_t offsets[16]
    cdef Py_ssize_t n

    def __init__(self, cls, fields):
        self.cls = cls
        self.n = len(fields)
        if self.n > 16:
            raise ValueError("too many fields")
        for i, name in enumerate(fields):
            desc = cls.__dict__[name]
            if type(desc).__name__ != "member_descriptor":
                raise TypeError(f"{cls.__name__}.{name} is not a slot")
            member = (<PyMemberDescrObject*>desc).d_member
            if member.type != T_OBJECT_EX_ or member.flags & READONLY_:
                raise TypeError(f"{cls.__name__}.{name} is not a writable object slot")
            self.offsets[i] = member.offset

    cdef inline object get(self, object obj, Py_ssize_t i):
        cdef PyObject *value = (<PyObject **>((<char *><PyObject *>obj) + self.offsets[i]))[0]
        if value == NULL:
            raise AttributeError(f"{self.cls.__name__} slot {i} is not set")
        return <object>value

    cdef inline void put(self, object obj, Py_ssize_t i, object value):
        cdef PyObject **where = <PyObject **>((<char *><PyObject *>obj) + self.offsets[i])
        cdef PyObject *old = where[0]
        Py_INCREF(value)
        where[0] = <PyObject *>value
        Py_XDECREF(old)


cdef _Slots _DELTA = _Slots(DepthDelta, ("symbol", "first_update_id", "last_update_id", "bids", "asks",
                                         "timestamp", "event_time", "receipt"))
cdef _Slots _TRADE = _Slots(Trade, ("symbol", "id", "side", "price", "amount", "timestamp", "event_time",
                                    "buyer_order_id", "seller_order_id", "receipt"))
cdef _Slots _UPDATE = _Slots(BookUpdate, ("symbol", "kind", "sequence", "delta", "timestamp", "receipt"))
# Read and written on the synced fast path, only for objects of exactly these classes (checked there).
cdef _Slots _SYNC = _Slots(BookSync, ("state", "symbol", "last_update_id", "book", "stats", "_last_first"))
cdef _Slots _BOOK = _Slots(OrderBook, ("_bids", "_bid_keys", "_asks", "_ask_keys"))


cdef object _original(object fn, str qualname):
    """``fn`` if it is the method of book.py it claims to be, else None: this module may be imported while
    a test has the method patched (tests/bisect_bug.py), and must then keep deferring to the class."""
    if getattr(fn, "__module__", None) == "backpack.protocol.book" and getattr(fn, "__qualname__", None) == qualname:
        return fn
    return None


cdef object _ON_DECODED = _original(BookSync.on_decoded_delta, "BookSync.on_decoded_delta")

cdef object _loads = orjson.loads
cdef object _D = Decimal
cdef object _ZERO = Decimal(0)
cdef object _to_int = to_int
cdef object _book_log = logging.getLogger("backpack.protocol.book")  # book.py's logger: same records

cdef Py_ssize_t _DECIMAL_CACHE_MAX = 1 << 14
cdef dict _DC = {}  # validated price text -> Decimal; messages._DC's rules (bounded by clearing when full)

DECIMAL_CACHE_MAX = _DECIMAL_CACHE_MAX

SOURCE_DIGEST = BUILD_SOURCE_DIGEST
"""``_build_digest.source_digest`` of the pure sources this module was built from (set by setup.py);
``speedups`` refuses the module when the sources next to it differ."""


class _Slow(Exception):
    """The fast path gives up on this frame; the careful path decides and explains."""


cdef inline bint _plain(str text):
    """Only ``0-9 . -`` (what ``text.strip("0123456789.-")`` leaves empty); ``Decimal`` rejects the rest."""
    cdef Py_UCS4 ch
    for ch in text:
        if not ((ch >= u'0' and ch <= u'9') or ch == u'.' or ch == u'-'):
            return False
    return True


cdef object _price(object text):
    """Cached Decimal of plain decimal price text; raises for anything else (the careful path decides)."""
    cdef object value
    if type(text) is not str:
        raise _Slow
    value = _DC.get(text)
    if value is not None:
        return value
    if not _plain(<str>text):
        raise _Slow
    value = _D(text)  # InvalidOperation for "", "-", "1.2.3", ...
    if len(_DC) >= _DECIMAL_CACHE_MAX:
        _DC.clear()
    _DC[text] = value
    return value


cdef inline object _size(object text):
    if type(text) is not str or not _plain(<str>text):
        raise _Slow
    return _D(text)


cdef list _levels(list side):
    cdef list out = []
    cdef object level, price, size
    for level in side:
        if type(level) is not list or len(<list>level) != 2:
            raise _Slow
        price = (<list>level)[0]
        size = (<list>level)[1]
        if type(size) is not str or not _plain(<str>size):  # checked before the price, as messages does
            raise _Slow
        out.append((_price(price), _D(size)))
    return out


cdef object _depth(object d, object receipt):
    if type(d) is not dict:
        raise _Slow
    cdef dict m = <dict>d
    s = m["s"]
    first = m["U"]
    last = m["u"]
    ts = m["T"]
    et = m["E"]
    bid_side = m["b"]
    ask_side = m["a"]
    if type(s) is not str or not s or type(bid_side) is not list or type(ask_side) is not list:
        raise _Slow
    if type(first) is not int:
        first = _to_int(first)
    if type(last) is not int:
        last = _to_int(last)
    if type(ts) is not int:
        ts = _to_int(ts)
    if type(et) is not int:
        et = _to_int(et)
    bids = _levels(<list>bid_side)
    asks = _levels(<list>ask_side)
    delta = DepthDelta.__new__(DepthDelta)
    _DELTA.put(delta, 0, s)
    _DELTA.put(delta, 1, first)
    _DELTA.put(delta, 2, last)
    _DELTA.put(delta, 3, bids)
    _DELTA.put(delta, 4, asks)
    _DELTA.put(delta, 5, ts)
    _DELTA.put(delta, 6, et)
    _DELTA.put(delta, 7, receipt)
    return delta


cdef object _trade(object d, object receipt):
    if type(d) is not dict:
        raise _Slow
    cdef dict m = <dict>d
    s = m["s"]
    size = m["q"]
    tid = m["t"]
    maker = m["m"]
    buyer = m["b"]
    seller = m["a"]
    ts = m["T"]
    et = m["E"]
    if (
        type(s) is not str
        or not s
        or type(tid) is not int
        or type(maker) is not bool
        or type(buyer) is not str
        or type(seller) is not str
        or type(size) is not str
        or not _plain(<str>size)
    ):
        raise _Slow
    if type(ts) is not int:
        ts = _to_int(ts)
    if type(et) is not int:
        et = _to_int(et)
    p = _price(m["p"])
    amount = _D(size)
    trade = Trade.__new__(Trade)
    _TRADE.put(trade, 0, s)
    _TRADE.put(trade, 1, str(tid))
    _TRADE.put(trade, 2, "sell" if maker is True else "buy")
    _TRADE.put(trade, 3, p)
    _TRADE.put(trade, 4, amount)
    _TRADE.put(trade, 5, ts)
    _TRADE.put(trade, 6, et)
    _TRADE.put(trade, 7, buyer)
    _TRADE.put(trade, 8, seller)
    _TRADE.put(trade, 9, receipt)
    return trade


def fast_depth(d, receipt):
    """``messages._fast_depth``: a DepthDelta, or an exception that sends the frame to the careful path."""
    return _depth(d, receipt)


def fast_trade(d, receipt):
    """``messages._fast_trade``: a Trade, or an exception that sends the frame to the careful path."""
    return _trade(d, receipt)


def price_cache_size():
    return len(_DC)


cdef Py_ssize_t _bisect_left(list keys, object p) except -1:
    """``bisect.bisect_left``, comparison for comparison."""
    cdef Py_ssize_t lo = 0, hi = len(keys), mid
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < p:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef int _insort(list keys, object p) except -1:
    """``bisect.insort`` (insort_right), comparison for comparison."""
    cdef Py_ssize_t lo = 0, hi = len(keys), mid
    while lo < hi:
        mid = (lo + hi) // 2
        if p < keys[mid]:
            hi = mid
        else:
            lo = mid + 1
    keys.insert(lo, p)
    return 0


cdef int _apply(dict side, list keys, list levels) except -2:
    """One side of ``BookSync.on_decoded_delta``'s update: 1 applied, 0 at a negative size (earlier
    levels stay applied, as there)."""
    cdef object p, s
    for p, s in levels:
        if s > _ZERO:
            if p not in side:
                _insort(keys, p)
            side[p] = s
        elif s == _ZERO:
            if p in side:
                del side[p]
                del keys[_bisect_left(keys, p)]
        else:
            return 0
    return 1


cdef object _synced_delta(object sync, object d, object synced):
    """``BookSync.on_decoded_delta``: the synced, in-sequence delta applied here, the rest to ``on_delta``."""
    if type(sync) is not BookSync or type(d) is not DepthDelta or BookSync.on_decoded_delta is not _ON_DECODED:
        return sync.on_decoded_delta(d)  # a subclass or a patch (tests/bisect_bug.py) decides for itself
    try:
        symbol = _SYNC.get(sync, 1)
        if _SYNC.get(sync, 0) == synced and _DELTA.get(d, 0) == symbol:
            first = _DELTA.get(d, 1)
            u = _DELTA.get(d, 2)
            if first == _SYNC.get(sync, 2) + 1 and u >= first:
                book = _SYNC.get(sync, 3)
                if type(book) is not OrderBook:
                    return sync.on_decoded_delta(d)
                if not _apply(_BOOK.get(book, 0), _BOOK.get(book, 1), _DELTA.get(d, 3)):
                    return sync._invalid_level(d)
                if not _apply(_BOOK.get(book, 2), _BOOK.get(book, 3), _DELTA.get(d, 4)):
                    return sync._invalid_level(d)
                _SYNC.put(sync, 2, u)
                _SYNC.put(sync, 5, first)
                _SYNC.get(sync, 4)["applied"] += 1
                upd = BookUpdate.__new__(BookUpdate)
                _UPDATE.put(upd, 0, symbol)
                _UPDATE.put(upd, 1, "delta")
                _UPDATE.put(upd, 2, u)
                _UPDATE.put(upd, 3, d)
                _UPDATE.put(upd, 4, _DELTA.get(d, 5))
                _UPDATE.put(upd, 5, _DELTA.get(d, 7))
                return [upd]
    except Exception:
        _book_log.exception("%s: internal error on delta; resetting the book", sync.symbol)
        return sync._internal_error(getattr(d, "receipt", 0))
    return sync.on_delta(d)


def synced_delta(sync, d, synced):
    """``BookSync.on_decoded_delta(d)`` through the compiled book step (``synced`` is book.SYNCED)."""
    return _synced_delta(sync, d, synced)


cdef class Receiver:
    """``Router.receive_frame`` for one Router, compiled. Holds the Router's decoder tables, books and trade
    memories, which the Router creates once and never replaces."""

    cdef object router, books, unparsed, synced, careful, fast_depth, fast_trade
    cdef dict stats, fast, syncs, trades

    def __init__(self, router, unparsed, synced):
        decoder = router.decoder
        self.router = router
        self.books = router.books
        self.stats = decoder.stats
        self.fast = decoder._fast
        self.careful = decoder._careful
        self.syncs = router._syncs
        self.trades = router._trades
        self.unparsed = unparsed
        self.synced = synced
        self.fast_depth = fast_depth
        self.fast_trade = fast_trade

    def receive_frame(self, data, receipt=0):
        cdef dict stats = self.stats
        cdef int kind = 0
        stats["frames"] += 1
        msg = self.unparsed
        try:
            msg = _loads(data)
            if type(msg) is not dict or "error" in <dict>msg:  # the careful path reports an error
                raise _Slow
            handler = self.fast[(<dict>msg)["stream"]]
            d = (<dict>msg)["data"]
            if handler is self.fast_depth:
                event = _depth(d, receipt)
                kind = 1
            elif handler is self.fast_trade:
                event = _trade(d, receipt)
                kind = 2
            else:
                event = handler(d, receipt)
        except Exception:
            return self.router._route(self.careful(data, msg, receipt))
        stats["events"] += 1
        if kind == 0:
            cls = type(event)
            kind = 1 if cls is DepthDelta else (2 if cls is Trade else 0)
        router = self.router
        if kind == 1:
            sync = self.syncs.get(event.symbol)
            if sync is not None:
                return _synced_delta(sync, event, self.synced)
            return self.books.on_delta(event) if router.accepts(event) else router._unsubscribed()
        if kind == 2:
            seen = self.trades.get(event.symbol)
            if seen is not None:
                key = event.id
                new = seen._new
                if key not in new and key not in seen._old and len(new) < seen._size:
                    new.add(key)
                    return [event]
            return router._trade(event)
        return router._route([event])
