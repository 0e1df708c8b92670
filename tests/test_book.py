"""Unit tests for the order-book synchronisation state machine (backpack/protocol/book.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backpack.protocol.book import DEFAULT_MAX_OLD_DELTAS, BookManager, BookSync, OrderBook
from backpack.protocol.events import BookUpdate, DepthDelta, DepthSnapshot, FetchSnapshot, ResyncNeeded

SYM = "SOL_USDC"


def D(x: str | int) -> Decimal:
    return Decimal(str(x))


def lv(*pairs: tuple[str | int, str | int]) -> list[tuple[Decimal, Decimal]]:
    return [(D(p), D(s)) for p, s in pairs]


def delta(U: int, u: int | None = None, bids=(), asks=(), symbol: str = SYM) -> DepthDelta:
    u = U if u is None else u
    return DepthDelta(
        symbol, U, u, lv(*bids), lv(*asks), timestamp=u * 1000, event_time=u * 1000 + 1, receipt=u * 1000 + 7
    )


def snap(L: int, bids=(), asks=(), symbol: str = SYM) -> DepthSnapshot:
    return DepthSnapshot(symbol, L, lv(*bids), lv(*asks), timestamp=L * 1000 + 3, receipt=L * 1000 + 5)


# REST shape: both sides ascending, best bid last.
SNAP_BIDS = (("99", "1"), ("100", "2"), ("101", "3"))
SNAP_ASKS = (("102", "4"), ("103", "5"), ("104", "6"))


def updates(out: list) -> list[BookUpdate]:
    return [e for e in out if isinstance(e, BookUpdate)]


def synced(L: int = 100, **kw) -> BookSync:
    """A BookSync synced at L from a snapshot alone (bridge mode)."""
    b = BookSync(SYM, **kw)
    assert b.on_delta(delta(L - 5)) == [FetchSnapshot(SYM, 1)]
    out = b.on_snapshot(snap(L, SNAP_BIDS, SNAP_ASKS))
    assert out == [BookUpdate(SYM, "snapshot", L, None, L * 1000 + 3, L * 1000 + 5)]
    assert b.state == "synced" and b.last_update_id == L
    return b


def chained(L: int = 100) -> BookSync:
    """A BookSync synced at L whose last applied delta is (L, L) (strict chaining mode)."""
    b = BookSync(SYM)
    b.on_delta(delta(L - 1))
    b.on_delta(delta(L, bids=[("101", "3")]))
    b.on_snapshot(snap(L - 1, SNAP_BIDS, SNAP_ASKS))
    assert b.state == "synced" and b.last_update_id == L
    return b


# --- OrderBook ---------------------------------------------------------------------------------


class TestOrderBook:
    def test_snapshot_ascending_sides_give_best_first_top(self):
        ob = OrderBook()
        ob.apply_snapshot(lv(*SNAP_BIDS), lv(*SNAP_ASKS))
        bids, asks = ob.top()
        assert bids == lv(("101", "3"), ("100", "2"), ("99", "1"))
        assert asks == lv(("102", "4"), ("103", "5"), ("104", "6"))
        assert ob.best_bid() == (D("101"), D("3"))
        assert ob.best_ask() == (D("102"), D("4"))
        assert len(ob) == 6

    def test_snapshot_skips_zero_sizes_and_ignores_input_order(self):
        ob = OrderBook()
        ob.apply_snapshot(lv(("101", "3"), ("99", "0"), ("100", "2")), lv(("103", "0.000"), ("102", "1")))
        assert ob.top() == (lv(("101", "3"), ("100", "2")), lv(("102", "1")))

    def test_top_n_bounds(self):
        ob = OrderBook()
        ob.apply_snapshot(lv(*SNAP_BIDS), lv(*SNAP_ASKS))
        assert ob.top(2) == (lv(("101", "3"), ("100", "2")), lv(("102", "4"), ("103", "5")))
        assert ob.top(10) == ob.top()
        assert ob.top(0) == ([], [])
        assert ob.top(-3) == ([], [])

    def test_empty_book(self):
        ob = OrderBook()
        assert ob.best_bid() is None and ob.best_ask() is None
        assert ob.top() == ([], []) and ob.top(5) == ([], [])
        assert len(ob) == 0

    def test_levels_insert_update_delete(self):
        ob = OrderBook()
        ob.apply_snapshot(lv(*SNAP_BIDS), lv(*SNAP_ASKS))
        # deeper than the snapshot, inside the spread, update, delete, delete of an unknown level
        ob.apply_levels(
            lv(("50", "9"), ("101.5", "1"), ("100", "7"), ("99", "0")), lv(("103", "0"), ("200", "0"))
        )
        assert ob.top() == (
            lv(("101.5", "1"), ("101", "3"), ("100", "7"), ("50", "9")),
            lv(("102", "4"), ("104", "6")),
        )

    def test_price_keyed_by_decimal_value(self):
        ob = OrderBook()
        ob.apply_snapshot(lv(("86700", "1")), lv(("86800", "2")))
        ob.apply_levels(lv(("86700.0", "5")), lv(("86800.00", "0")))
        assert ob.bid_dict() == {D("86700"): D("5")}
        assert len(ob) == 1 and ob.best_ask() is None
        ob.apply_levels(lv(("86700.000", "0")), [])
        assert len(ob) == 0 and ob.top() == ([], [])

    def test_dict_copies_do_not_alias(self):
        ob = OrderBook()
        ob.apply_snapshot(lv(*SNAP_BIDS), lv(*SNAP_ASKS))
        bd, ad = ob.bid_dict(), ob.ask_dict()
        bd.clear()
        ad[D("1")] = D("1")
        assert len(ob.bid_dict()) == 3 and D("1") not in ob.ask_dict()

    def test_clear(self):
        ob = OrderBook()
        ob.apply_snapshot(lv(*SNAP_BIDS), lv(*SNAP_ASKS))
        ob.clear()
        assert len(ob) == 0 and ob.top() == ([], [])
        ob.apply_levels(lv(("1", "1")), [])
        assert ob.top() == (lv(("1", "1")), [])

    @pytest.mark.parametrize(
        "level",
        [
            (D("1"), D("-1")),
            (D("1"), D("NaN")),
            (D("1"), D("Infinity")),
            (D("Infinity"), D("1")),
            (D("1"), D("sNaN")),
            (D("NaN"), D("1")),
            (1, 2),
            ("1", "2"),
        ],
    )
    def test_public_mutators_reject_bad_levels(self, level):
        ob = OrderBook()
        ob.apply_snapshot(lv(*SNAP_BIDS), [])
        with pytest.raises(ValueError):
            ob.apply_snapshot([level], [])
        assert len(ob) == 3  # a rejected snapshot does not touch the book
        with pytest.raises(ValueError):
            ob.apply_levels([], [level])


# --- BookSync: start-up and snapshots ----------------------------------------------------------


class TestStartup:
    def test_first_delta_buffers_and_asks_for_snapshot(self):
        b = BookSync(SYM)
        assert b.state == "idle" and b.last_update_id is None
        assert b.on_delta(delta(10)) == [FetchSnapshot(SYM, 1)]
        assert b.state == "buffering" and b.buffer_size == 1
        assert b.on_delta(delta(11)) == []  # a fetch is already pending
        assert b.stats["buffered"] == 2 and b.last_update_id is None and len(b.book) == 0

    def test_snapshot_drops_old_and_replays_bridge_as_one_update(self):
        b = BookSync(SYM)
        b.on_delta(delta(98, bids=[("99", "50")]))
        b.on_delta(delta(99, 100, asks=[("102", "40")]))  # u <= L: already in the snapshot
        b.on_delta(delta(101, bids=[("101", "0")]))  # U == L+1: the bridge
        b.on_delta(delta(102, 104, asks=[("102.5", "1")]))
        out = b.on_snapshot(snap(100, SNAP_BIDS, SNAP_ASKS))
        # one update describing the book as it is now (sequence = last replayed u, its timestamp)
        assert out == [BookUpdate(SYM, "snapshot", 104, None, 104 * 1000, 100 * 1000 + 5)]
        assert b.state == "synced" and b.last_update_id == 104 and b.buffer_size == 0
        assert b.book.top() == (
            lv(("100", "2"), ("99", "1")),
            lv(("102", "4"), ("102.5", "1"), ("103", "5"), ("104", "6")),
        )
        assert b.stats["dropped_old"] == 2 and b.stats["applied"] == 2
        # strict chaining from here on
        out = b.on_delta(delta(105, bids=[("100", "9")]))
        assert out == [BookUpdate(SYM, "delta", 105, out[0].delta, 105 * 1000, 105 * 1000 + 7)]
        assert out[0].delta.first_update_id == 105
        assert b.book.best_bid() == (D("100"), D("9"))

    def test_bridge_with_aggregated_delta_spanning_L_plus_1(self):
        b = BookSync(SYM)
        b.on_delta(delta(95, 105, bids=[("101", "8")]))  # U <= L+1 <= u
        out = b.on_snapshot(snap(100, SNAP_BIDS, SNAP_ASKS))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 105)]
        assert b.book.best_bid() == (D("101"), D("8"))

    def test_stale_snapshot_asks_again_and_keeps_buffer(self):
        b = BookSync(SYM)
        b.on_delta(delta(100))
        b.on_delta(delta(101, bids=[("101", "7")]))
        out = b.on_snapshot(snap(95, SNAP_BIDS, SNAP_ASKS))
        assert out == [ResyncNeeded(SYM, "stale_snapshot", 96, 100, 95 * 1000 + 5), FetchSnapshot(SYM, 2)]
        assert b.state == "buffering" and b.buffer_size == 2 and len(b.book) == 0
        assert b.stats["stale_snapshots"] == 1
        out = b.on_snapshot(snap(96, SNAP_BIDS, SNAP_ASKS))
        assert out == [ResyncNeeded(SYM, "stale_snapshot", 97, 100, 96 * 1000 + 5), FetchSnapshot(SYM, 3)]
        out = b.on_snapshot(snap(100, SNAP_BIDS, SNAP_ASKS))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 101)]
        assert b.book.best_bid() == (D("101"), D("7"))

    def test_snapshot_ahead_of_socket_waits_for_bridge(self):
        b = BookSync(SYM)
        for i in range(100, 106):
            b.on_delta(delta(i, bids=[("1", i)]))
        out = b.on_snapshot(snap(110, SNAP_BIDS, SNAP_ASKS))
        assert out == [BookUpdate(SYM, "snapshot", 110, None, 110 * 1000 + 3, 110 * 1000 + 5)]
        assert b.stats["dropped_old"] == 6 and b.buffer_size == 0
        for i in range(106, 111):  # the socket catches up: all already contained in the snapshot
            assert b.on_delta(delta(i, bids=[("1", i)])) == []
        assert b.stats["dropped_old"] == 11
        assert D("1") not in b.book.bid_dict()
        out = b.on_delta(delta(111, bids=[("1", "111")]))
        assert [(e.kind, e.sequence) for e in out] == [("delta", 111)]
        assert b.book.bid_dict()[D("1")] == D("111")

    def test_snapshot_ahead_bridge_may_straddle(self):
        b = synced(100)
        out = b.on_delta(delta(99, 103, asks=[("102", "0")]))
        assert [(e.kind, e.sequence) for e in out] == [("delta", 103)]
        assert b.book.best_ask() == (D("103"), D("5"))

    @pytest.mark.parametrize("U", [102, 103])
    def test_snapshot_ahead_then_gap(self, U):
        b = synced(100)
        out = b.on_delta(delta(U, U + 1))
        assert out == [ResyncNeeded(SYM, "gap", 101, U, (U + 1) * 1000 + 7), FetchSnapshot(SYM, 1)]
        assert b.state == "buffering" and len(b.book) == 0 and b.buffer_size == 1

    def test_snapshot_when_idle_or_synced_is_ignored(self):
        b = BookSync(SYM)
        assert b.on_snapshot(snap(100, SNAP_BIDS, SNAP_ASKS)) == []
        assert b.state == "idle" and len(b.book) == 0
        b = chained(100)
        before = b.book.top()
        assert b.on_snapshot(snap(200, (("1", "1"),), ())) == []
        assert b.book.top() == before and b.last_update_id == 100
        assert b.stats["ignored_snapshots"] == 1

    def test_snapshot_failed_asks_again(self):
        b = BookSync(SYM)
        b.on_delta(delta(10))
        assert b.on_snapshot_failed() == [FetchSnapshot(SYM, 2)]
        assert b.on_snapshot_failed() == [FetchSnapshot(SYM, 3)]
        assert b.state == "buffering" and b.buffer_size == 1
        assert BookSync(SYM).on_snapshot_failed() == []
        assert chained().on_snapshot_failed() == []

    def test_max_snapshot_attempts_gives_up_then_restarts(self):
        b = BookSync(SYM, max_snapshot_attempts=2)
        b.on_delta(delta(10))
        assert b.on_snapshot_failed() == [FetchSnapshot(SYM, 2)]
        out = b.on_snapshot(snap(5))  # stale: would be attempt 3
        assert out == [
            ResyncNeeded(SYM, "stale_snapshot", 6, 10, 5005),
            ResyncNeeded(SYM, "snapshot_attempts_exhausted", None, 2, 5005),
        ]
        assert b.state == "idle" and b.buffer_size == 0
        assert b.on_delta(delta(11)) == [FetchSnapshot(SYM, 1)]

    def test_attempts_restart_after_success(self):
        b = BookSync(SYM, max_snapshot_attempts=2)
        b.on_delta(delta(10))
        b.on_snapshot_failed()
        b.on_snapshot(snap(9))
        assert b.state == "synced"
        assert b.on_delta(delta(12)) == [ResyncNeeded(SYM, "gap", 11, 12, 12007), FetchSnapshot(SYM, 1)]
        assert b.on_snapshot_failed() == [FetchSnapshot(SYM, 2)]

    @pytest.mark.parametrize(
        "bad",
        [
            DepthSnapshot(SYM, "100", [], [], 0),
            DepthSnapshot(SYM, -1, [], [], 0),
            DepthSnapshot(SYM, True, [], [], 0),
            DepthSnapshot(SYM, 100, [(D("1"), D("-1"))], [], 0),
            DepthSnapshot(SYM, 100, [], [(D("NaN"), D("1"))], 0),
            DepthSnapshot(SYM, 100, None, [], 0),  # type: ignore[arg-type]
            DepthSnapshot(SYM, 100, [(D("1"),)], [], 0),  # type: ignore[list-item]
        ],
    )
    def test_invalid_snapshot_counts_as_failed_fetch(self, bad):
        b = BookSync(SYM)
        b.on_delta(delta(10))
        assert b.on_snapshot(bad) == [FetchSnapshot(SYM, 2)]
        assert b.state == "buffering" and b.buffer_size == 1 and len(b.book) == 0
        assert b.stats["invalid_snapshots"] == 1

    def test_snapshot_for_another_symbol_is_ignored(self):
        b = BookSync(SYM)
        b.on_delta(delta(10))
        assert b.on_snapshot(snap(10, SNAP_BIDS, symbol="BTC_USDC")) == []
        assert b.state == "buffering" and b.stats["ignored_snapshots"] == 1
        assert b.on_snapshot_failed() == [FetchSnapshot(SYM, 2)]  # attempts were not consumed


# --- BookSync: after sync ----------------------------------------------------------------------


class TestSynced:
    def test_each_delta_emits_update_with_its_fields(self):
        b = chained(100)
        d = delta(101, 101, bids=[("100.5", "1")], asks=[("102", "0")])
        assert b.on_delta(d) == [BookUpdate(SYM, "delta", 101, d, d.timestamp, d.receipt)]
        assert b.book.top(1) == (lv(("101", "3")), lv(("103", "5")))
        assert b.stats["applied"] == 2

    def test_aggregated_deltas_chain_on_u(self):
        b = chained(100)
        assert [e.sequence for e in b.on_delta(delta(101, 110))] == [110]
        assert [e.sequence for e in b.on_delta(delta(111, 111))] == [111]

    def test_rest_and_ws_spellings_of_a_price_are_one_level(self):
        b = BookSync(SYM)
        b.on_delta(delta(10))
        b.on_snapshot(snap(10, (("86700", "1"), ("86699", "2")), (("86800", "3"),)))
        b.on_delta(delta(11, bids=[("86700.0", "5")]))
        assert b.book.top() == (lv(("86700", "5"), ("86699", "2")), lv(("86800", "3")))
        b.on_delta(delta(12, bids=[("86700.00", "0")], asks=[("86800.0", "0.00000")]))
        assert b.book.top() == (lv(("86699", "2")), [])

    def test_exact_repeat_of_last_delta_is_duplicate(self):
        b = chained(100)
        b.on_delta(delta(101, 103, bids=[("100", "5")]))
        before = b.book.top()
        assert b.on_delta(delta(101, 103, bids=[("100", "6")])) == []
        assert b.book.top() == before and b.stats["duplicates"] == 1 and b.state == "synced"
        assert [e.sequence for e in b.on_delta(delta(104))] == [104]

    def test_repeat_of_an_earlier_delta_is_dropped_and_counted(self):
        """Issue 6 changed this: any delta with u <= the book's sequence is already in the book."""
        b = chained(100)
        b.on_delta(delta(101, bids=[("100", "7")]))
        b.on_delta(delta(102))
        before = b.book.top()
        b.stats["dropped_old"] = 0  # the snapshot dropped one while syncing
        for old in (delta(101, bids=[("100", "1")]), delta(99, 101), delta(100, 102, asks=[("102", "0")]),
                    delta(50)):
            assert b.on_delta(old) == []
        assert b.state == "synced" and b.last_update_id == 102 and b.book.top() == before
        assert b.stats["dropped_old"] == 4 and b.stats["resyncs"] == 0 and b.stats["duplicates"] == 0
        assert [e.sequence for e in b.on_delta(delta(103))] == [103]

    def test_overlapping_delta_is_applied_like_the_bridge(self):
        """Issue 6 changed this: U <= seq < u satisfies the exchange's bridge rule (sizes are absolute),
        so the delta is applied, not treated as out of order."""
        b = chained(100)
        d = delta(100, 102, bids=[("101", "0"), ("100.5", "4")])  # U <= prev < u
        assert b.on_delta(d) == [BookUpdate(SYM, "delta", 102, d, d.timestamp, d.receipt)]
        assert b.book.top(2)[0] == lv(("100.5", "4"), ("100", "2"))
        assert b.stats["resyncs"] == 0 and b.stats["applied"] == 2
        assert [e.sequence for e in b.on_delta(delta(103))] == [103]

    def test_overlap_reaching_back_before_the_book_is_applied_too(self):
        b = synced(100)
        assert [e.sequence for e in b.on_delta(delta(101))] == [101]
        assert [e.sequence for e in b.on_delta(delta(60, 105, asks=[("102", "9")]))] == [105]
        assert b.book.best_ask() == (D("102"), D("9"))

    def test_gap_resyncs_and_keeps_offending_delta(self):
        b = chained(100)
        out = b.on_delta(delta(103, bids=[("101", "9")]))
        assert out == [ResyncNeeded(SYM, "gap", 101, 103, 103 * 1000 + 7), FetchSnapshot(SYM, 1)]
        assert b.state == "buffering" and len(b.book) == 0 and b.buffer_size == 1
        assert b.stats["resyncs"] == 1
        assert b.on_delta(delta(104)) == []
        out = b.on_snapshot(snap(102, SNAP_BIDS, SNAP_ASKS))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 104)]
        assert b.book.best_bid() == (D("101"), D("9"))

    def test_no_book_update_while_invalid(self):
        b = chained(100)
        b.on_delta(delta(105))
        for i in range(106, 120):
            assert updates(b.on_delta(delta(i))) == []
        assert len(b.book) == 0

    @pytest.mark.parametrize("size", ["-1", "NaN", "Infinity", "sNaN"])
    def test_invalid_level_resyncs(self, size):
        b = chained(100)
        d = DepthDelta(SYM, 101, 101, [(D("100"), D("1")), (D("99"), D(size))], [], 0, 0, 9)
        assert b.on_delta(d) == [ResyncNeeded(SYM, "invalid_level", None, None, 9), FetchSnapshot(SYM, 1)]
        assert b.state == "buffering" and len(b.book) == 0 and b.buffer_size == 0
        assert b.stats["invalid_deltas"] == 1

    @pytest.mark.parametrize(
        "ids",
        [(102, 101), ("101", 101), (101, "101"), (101.0, 101), (True, 101), (None, None), (101, 101.5)],
    )
    def test_invalid_ids_resync(self, ids):
        b = chained(100)
        d = DepthDelta(SYM, ids[0], ids[1], [], [], 0, 0, 3)  # type: ignore[arg-type]
        out = b.on_delta(d)
        assert [type(e) for e in out] == [ResyncNeeded, FetchSnapshot]
        assert out[0].reason == "invalid_delta" and out[0].expected == 101
        assert b.state == "buffering" and len(b.book) == 0 and b.buffer_size == 0

    def test_misrouted_delta_is_ignored(self):
        b = chained(100)
        assert b.on_delta(delta(101, symbol="BTC_USDC")) == []
        assert b.state == "synced" and b.last_update_id == 100 and b.stats["invalid_deltas"] == 1


# --- BookSync: a stream that stays behind the book ----------------------------------------------


class TestStaleStream:
    def test_default_bound_is_documented_and_passed_down(self):
        assert BookSync(SYM).max_old_deltas == DEFAULT_MAX_OLD_DELTAS == 1000
        assert BookManager(max_old_deltas=7).get("X").max_old_deltas == 7
        assert BookSync(SYM, max_old_deltas=0).max_old_deltas == 1

    def test_snapshot_far_ahead_of_the_stream_resyncs_after_the_bound(self):
        b = synced(100, max_old_deltas=5)
        b.stats["dropped_old"] = 0  # the snapshot dropped one while syncing
        for i in range(40, 44):
            assert b.on_delta(delta(i)) == []
        assert b.state == "synced" and b.stats["dropped_old"] == 4
        out = b.on_delta(delta(44, bids=[("1", "1")]))
        assert out == [ResyncNeeded(SYM, "stale_stream", 101, 44, 44 * 1000 + 7), FetchSnapshot(SYM, 1)]
        assert b.state == "buffering" and len(b.book) == 0 and b.buffer_size == 1  # the newest delta kept
        assert b.stats["dropped_old"] == 5 and b.stats["resyncs"] == 1
        b.on_delta(delta(45))
        out = b.on_snapshot(snap(43, SNAP_BIDS))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 45)]
        assert b.book.best_bid() == (D("101"), D("3")) and D("1") in b.book.bid_dict()

    def test_only_consecutive_old_deltas_count(self):
        b = chained(100)
        b.max_old_deltas = 3
        b.stats["dropped_old"] = 0  # the snapshot dropped one while syncing
        for _ in range(5):
            assert b.on_delta(delta(99)) == [] and b.on_delta(delta(98)) == []
            assert updates(b.on_delta(delta(b.last_update_id + 1)))  # progress restarts the run
        assert b.state == "synced" and b.stats["resyncs"] == 0 and b.stats["dropped_old"] == 10
        assert b.on_delta(delta(1)) == [] and b.on_delta(delta(2)) == []
        assert [type(e) for e in b.on_delta(delta(3))] == [ResyncNeeded, FetchSnapshot]

    def test_exact_repeats_of_the_last_delta_count_towards_the_bound(self):
        b = chained(100)
        b.max_old_deltas = 3
        assert b.on_delta(delta(100)) == [] and b.on_delta(delta(100)) == []
        assert b.stats["duplicates"] == 2
        out = b.on_delta(delta(100))
        assert out[0].reason == "stale_stream" and b.stats["duplicates"] == 3

    def test_sequence_restarted_lower_recovers(self):
        b = chained(5000)
        b.max_old_deltas = 3
        assert b.on_delta(delta(1)) == [] and b.on_delta(delta(2)) == []
        out = b.on_delta(delta(3, asks=[("200", "1")]))
        assert out[0] == ResyncNeeded(SYM, "stale_stream", 5001, 3, 3007)
        b.on_delta(delta(4, bids=[("90", "2")]))
        out = b.on_snapshot(snap(2, SNAP_BIDS, SNAP_ASKS))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 4)]
        assert b.book.best_bid() == (D("101"), D("3")) and b.book.ask_dict()[D("200")] == D("1")
        assert b.book.bid_dict()[D("90")] == D("2")

    def test_a_fresh_sync_starts_a_fresh_count(self):
        b = synced(100, max_old_deltas=3)
        assert b.on_delta(delta(90)) == [] and b.on_delta(delta(91)) == []
        b.reset()
        b.on_delta(delta(95))
        b.on_snapshot(snap(100))
        assert b.on_delta(delta(96)) == [] and b.on_delta(delta(97)) == []
        assert b.state == "synced" and b.stats["resyncs"] == 1  # the reset only


# --- BookSync: buffering -------------------------------------------------------------------------


class TestBuffering:
    def test_overflow_keeps_newest_and_asks_again(self):
        b = BookSync(SYM, max_buffer=3)
        b.on_delta(delta(1))
        b.on_delta(delta(2))
        b.on_delta(delta(3))
        out = b.on_delta(delta(4, bids=[("5", "5")]))
        assert out == [ResyncNeeded(SYM, "buffer_overflow", None, None, 4007), FetchSnapshot(SYM, 2)]
        assert b.buffer_size == 1 and b.stats["overflows"] == 1 and b.stats["discarded"] == 3
        b.on_delta(delta(5))
        out = b.on_snapshot(snap(3))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 5)]
        assert b.book.top() == (lv(("5", "5")), [])

    def test_duplicate_in_buffer_is_ignored(self):
        b = BookSync(SYM)
        b.on_delta(delta(1))
        b.on_delta(delta(2))
        assert b.on_delta(delta(2)) == []
        assert b.buffer_size == 2 and b.stats["duplicates"] == 1

    def test_gap_in_buffer_discards_older_entries(self):
        b = BookSync(SYM)
        b.on_delta(delta(1, bids=[("1", "1")]))
        b.on_delta(delta(2))
        assert b.on_delta(delta(5, bids=[("5", "5")])) == []
        assert b.buffer_size == 1 and b.stats["discarded"] == 2
        # A snapshot before the gap cannot be completed: stale.
        out = b.on_snapshot(snap(2))
        assert out == [ResyncNeeded(SYM, "stale_snapshot", 3, 5, 2005), FetchSnapshot(SYM, 2)]
        out = b.on_snapshot(snap(4))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 5)]
        assert b.book.top() == (lv(("5", "5")), [])

    def test_sequence_restart_in_buffer_starts_over(self):
        b = BookSync(SYM)
        b.on_delta(delta(1000))
        b.on_delta(delta(1001))
        b.on_delta(delta(1))  # the exchange restarted its counter
        b.on_delta(delta(2, asks=[("7", "7")]))
        out = b.on_snapshot(snap(1))
        assert [(e.kind, e.sequence) for e in updates(out)] == [("snapshot", 2)]
        assert b.book.top() == ([], lv(("7", "7")))

    def test_invalid_delta_while_buffering_discards_buffer(self):
        b = BookSync(SYM)
        b.on_delta(delta(1))
        b.on_delta(delta(2))
        bad = DepthDelta(SYM, 3, 3, [(D("1"), D("-2"))], [], 0, 0)
        assert b.on_delta(bad) == []
        assert b.buffer_size == 0 and b.state == "buffering" and b.stats["invalid_deltas"] == 1
        b.on_delta(delta(4))
        assert updates(b.on_snapshot(snap(2))) == []  # cannot bridge past the bad delta
        assert [(e.kind, e.sequence) for e in updates(b.on_snapshot(snap(3)))] == [("snapshot", 4)]

    def test_invalid_first_delta_stays_idle(self):
        b = BookSync(SYM)
        assert b.on_delta(DepthDelta(SYM, 5, 4, [], [], 0, 0)) == []
        assert b.state == "idle" and b.stats["invalid_deltas"] == 1

    def test_misrouted_delta_does_not_touch_buffer(self):
        b = BookSync(SYM)
        b.on_delta(delta(1))
        assert b.on_delta(delta(9, symbol="BTC_USDC")) == []
        assert b.buffer_size == 1


# --- reset and robustness ----------------------------------------------------------------------


class TestReset:
    def test_reset_synced_goes_idle(self):
        b = chained(100)
        assert b.reset() == [ResyncNeeded(SYM, "reconnect", None, None, 0)]
        assert b.state == "idle" and len(b.book) == 0 and b.last_update_id is None and b.buffer_size == 0
        assert b.on_snapshot(snap(200, SNAP_BIDS)) == []  # a fetch from before the reset arriving late
        assert b.on_delta(delta(300)) == [FetchSnapshot(SYM, 1)]

    def test_reset_buffering_custom_reason(self):
        b = BookSync(SYM)
        b.on_delta(delta(1))
        b.on_snapshot_failed()
        assert b.reset("manual") == [ResyncNeeded(SYM, "manual", None, None, 0)]
        assert b.on_delta(delta(7)) == [FetchSnapshot(SYM, 1)]  # attempts start over

    def test_reset_idle_is_silent(self):
        assert BookSync(SYM).reset() == []


class _ExplodingBook(OrderBook):
    def _apply(self, bids, asks):
        raise RuntimeError("boom")


def test_internal_error_becomes_resync_not_exception():
    b = chained(100)
    b.book = _ExplodingBook()
    assert b.on_delta(delta(101, bids=[("1", "1")])) == [
        ResyncNeeded(SYM, "internal_error", None, None, 101007)
    ]
    assert b.state == "idle" and b.stats["internal_errors"] == 1


@pytest.mark.parametrize("garbage", [None, 42, "depth", object()])
def test_garbage_objects_never_raise(garbage):
    for b in (BookSync(SYM), chained(100)):
        b.on_delta(garbage)  # type: ignore[arg-type]
        b.on_snapshot(garbage)  # type: ignore[arg-type]
    m = BookManager()
    assert m.on_delta(garbage) == [] and m.on_snapshot(garbage) == []  # type: ignore[arg-type]


def test_book_update_sequence_always_matches_book():
    b = BookSync(SYM)
    script = [
        delta(1),
        delta(2),
        snap(1),
        delta(3),
        delta(3),
        delta(5),
        delta(6),
        snap(5),
        delta(7),
        delta(8, 9),
    ]
    for item in script:
        out = b.on_delta(item) if isinstance(item, DepthDelta) else b.on_snapshot(item)
        ups = updates(out)
        assert len(ups) <= 1
        if ups:
            assert b.state == "synced" and ups[0].sequence == b.last_update_id
    assert b.last_update_id == 9


# --- BookManager ---------------------------------------------------------------------------------


class TestManager:
    def _two_synced(self) -> BookManager:
        m = BookManager()
        for sym in ("A", "B"):
            assert m.on_delta(delta(10, symbol=sym)) == [FetchSnapshot(sym, 1)]
            m.on_snapshot(snap(10, SNAP_BIDS, SNAP_ASKS, symbol=sym))
            assert m.get(sym).state == "synced"
        return m

    def test_problem_on_one_symbol_leaves_other_untouched(self):
        m = self._two_synced()
        b_book = m.get("B").book.top()
        out = m.on_delta(delta(15, symbol="A"))
        assert out == [ResyncNeeded("A", "gap", 11, 15, 15007), FetchSnapshot("A", 1)]
        assert m.get("A").state == "buffering" and len(m.get("A").book) == 0
        assert m.get("B").state == "synced" and m.get("B").book.top() == b_book
        assert [e.symbol for e in m.on_delta(delta(11, bids=[("1", "1")], symbol="B"))] == ["B"]
        # a stale snapshot for A does not disturb B either
        m.on_snapshot(snap(5, symbol="A"))
        assert m.get("B").state == "synced" and m.get("B").last_update_id == 11

    def test_routing_and_unknown_symbols(self):
        m = BookManager(max_buffer=5)
        assert m.on_snapshot(snap(1, symbol="X")) == [] and m.ignored == 1
        assert "X" not in m
        assert m.get("X").state == "idle" and m.get("X").max_buffer == 5
        assert "X" in m and len(m) == 1 and list(m) == ["X"]
        bad = DepthDelta(["unhashable"], 1, 1, [], [], 0, 0)  # type: ignore[arg-type]
        assert m.on_delta(bad) == [] and m.ignored == 2
        assert m.on_snapshot_failed("nope") == []

    def test_reset_one_or_all(self):
        m = self._two_synced()
        m.get("C")  # idle: nothing to invalidate
        assert m.reset("A") == [ResyncNeeded("A", "reconnect", None, None, 0)]
        assert m.get("B").state == "synced"
        m.on_delta(delta(20, symbol="A"))
        out = m.reset(reason="reconnect")
        assert sorted(e.symbol for e in out) == ["A", "B"]
        assert all(isinstance(e, ResyncNeeded) for e in out)
        assert all(m.get(s).state == "idle" for s in "ABC")
        assert m.reset("Z") == []

    def test_snapshot_failed_routed(self):
        m = BookManager()
        m.on_delta(delta(3, symbol="A"))
        assert m.on_snapshot_failed("A") == [FetchSnapshot("A", 2)]

    def test_stats_sum(self):
        m = self._two_synced()
        m.on_delta(delta(11, symbol="A"))
        m.on_delta(delta(11, symbol="A"))
        s = m.stats()
        assert s["applied"] == 1 and s["duplicates"] == 1 and s["buffered"] == 2
