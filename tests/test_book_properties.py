"""Hypothesis properties of the order-book synchronisation state machine (backpack/protocol/book.py).

The exchange is simulated by a gap-free delta sequence over a reference book kept in plain dicts;
the REST snapshot for "after k deltas" is that reference state, sides ascending as the REST API sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backpack.protocol.book import BookManager, BookSync
from backpack.protocol.events import BookUpdate, DepthDelta, DepthSnapshot, FetchSnapshot, ResyncNeeded

SYM = "SOL_USDC"
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Same value, different spellings: the book must key by value ("86700" == "86700.0").
SPELLINGS = ("{}", "{}.0", "{}.00")
SIZES = st.one_of(
    st.sampled_from(["0", "0.00000"]),
    st.integers(1, 500).map(lambda n: str(Decimal(n) / 10)),
)


@dataclass
class Market:
    s0: int  # sequence of the initial book
    deltas: list[DepthDelta]
    states: list[tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]]  # states[k]: after k deltas

    def seq(self, k: int) -> int:
        """lastUpdateId of the state after k deltas."""
        return self.s0 if k == 0 else self.deltas[k - 1].last_update_id

    def snapshot(self, k: int) -> DepthSnapshot:
        bids, asks = self.states[k]
        return DepthSnapshot(
            SYM, self.seq(k), sorted(bids.items()), sorted(asks.items()), timestamp=k, receipt=k
        )

    def state_at(self, sequence: int) -> tuple[dict, dict]:
        k = 0 if sequence == self.s0 else 1 + [d.last_update_id for d in self.deltas].index(sequence)
        return self.states[k]


@st.composite
def levels(draw) -> list[tuple[Decimal, Decimal]]:
    out = []
    for _ in range(draw(st.integers(0, 3))):
        price = draw(st.integers(1, 25))
        out.append((Decimal(draw(st.sampled_from(SPELLINGS)).format(price)), Decimal(draw(SIZES))))
    return out


@st.composite
def markets(draw, min_deltas: int = 1, max_deltas: int = 20) -> Market:
    s0 = draw(st.integers(0, 10**9))
    book = (
        {
            Decimal(p): Decimal(s)
            for p, s in draw(st.dictionaries(st.integers(1, 25), SIZES, max_size=12)).items()
        },
        {
            Decimal(p): Decimal(s)
            for p, s in draw(st.dictionaries(st.integers(1, 25), SIZES, max_size=12)).items()
        },
    )
    book = tuple({p: s for p, s in side.items() if s} for side in book)
    states = [(dict(book[0]), dict(book[1]))]
    deltas = []
    prev = s0
    for _ in range(draw(st.integers(min_deltas, max_deltas))):
        U = prev + 1
        u = U + draw(st.sampled_from([0, 0, 0, 1, 3]))  # realtime U == u, aggregated U < u
        bids, asks = draw(levels()), draw(levels())
        deltas.append(DepthDelta(SYM, U, u, bids, asks, timestamp=u, event_time=u, receipt=u))
        b, a = dict(states[-1][0]), dict(states[-1][1])
        for side, lv in ((b, bids), (a, asks)):
            for p, s in lv:
                if s:
                    side[p] = s
                else:
                    side.pop(p, None)
        states.append((b, a))
        prev = u
    return Market(s0, deltas, states)


def assert_book_is(sync: BookSync, state: tuple[dict, dict]) -> None:
    bids, asks = state
    assert sync.book.bid_dict() == bids and sync.book.ask_dict() == asks
    assert sync.book.top() == (sorted(bids.items(), reverse=True), sorted(asks.items()))


def check_updates(sync: BookSync, market: Market, out: list) -> None:
    """Every BookUpdate describes the book as it is now, and that book is the reference at its sequence."""
    ups = [e for e in out if isinstance(e, BookUpdate)]
    assert len(ups) <= 1
    for up in ups:
        assert sync.state == "synced" and up.sequence == sync.last_update_id
        assert_book_is(sync, market.state_at(up.sequence))


@st.composite
def timings(draw, market: Market) -> dict:
    n = len(market.deltas)
    join = draw(st.integers(0, n - 1))  # index of the first delta the socket sees
    taken = draw(st.integers(join, n))  # state the fresh snapshot shows (may be ahead of the socket)
    delivered = draw(st.integers(join + 1, n))  # deltas seen before the fresh snapshot arrives
    plan = {"join": join, "taken": taken, "delivered": delivered, "stale": None, "failures": 0}
    if join > 0 and draw(st.booleans()):
        plan["stale"] = (draw(st.integers(0, join - 1)), draw(st.integers(join + 1, delivered)))
    plan["failures"] = draw(st.integers(0, 2))
    return plan


@PROPS
@given(data=st.data())
def test_synced_book_equals_reference_for_any_snapshot_timing(data):
    """For any gap-free delta sequence and any snapshot timing (stale first or not, behind or ahead of the socket), every BookUpdate and the final book equal the reference book built by applying all deltas in order."""
    market = data.draw(markets())
    plan = data.draw(timings(market))
    sync = BookSync(SYM)
    fetches = []
    n = len(market.deltas)
    for k in range(plan["join"], n + 1):
        seen = k - plan["join"]  # deltas delivered so far
        if plan["stale"] and plan["stale"][1] == k:
            out = sync.on_snapshot(market.snapshot(plan["stale"][0]))
            assert [type(e) for e in out] == [ResyncNeeded, FetchSnapshot]
            assert (
                out[0].reason == "stale_snapshot"
                and out[0].got == market.deltas[plan["join"]].first_update_id
            )
            fetches.append(out[1])
        if k == plan["delivered"]:
            for _ in range(plan["failures"]):
                out = sync.on_snapshot_failed()
                assert [type(e) for e in out] == [FetchSnapshot]
                fetches.append(out[0])
            out = sync.on_snapshot(market.snapshot(plan["taken"]))
            assert [type(e) for e in out] == [BookUpdate] and out[0].kind == "snapshot"
            check_updates(sync, market, out)
        if k < n:
            out = sync.on_delta(market.deltas[k])
            assert not any(isinstance(e, ResyncNeeded) for e in out)
            if seen == 0:
                assert out == [FetchSnapshot(SYM, 1)]
            else:
                assert not any(isinstance(e, FetchSnapshot) for e in out)
            check_updates(sync, market, out)
    assert [f.attempt for f in fetches] == list(range(2, 2 + len(fetches)))
    assert sync.state == "synced" and sync.last_update_id == market.seq(n)
    assert_book_is(sync, market.states[n])
    assert sync.stats["resyncs"] == (1 if plan["stale"] else 0)


@st.composite
def corruptions(draw, market: Market) -> tuple[str, list[int]]:
    """A delivery order (indices into market.deltas) with one drop, out-of-place duplicate or swap after index 0."""
    n = len(market.deltas)
    order = list(range(n))
    kind = draw(st.sampled_from(["drop", "duplicate", "swap"]))
    if kind == "drop":
        del order[draw(st.integers(1, n - 2))]  # something follows, so it is observable
    elif kind == "duplicate":
        i = draw(st.integers(0, n - 2))
        j = draw(st.integers(i + 1, n - 1))  # re-sent after at least one later delta
        order.insert(j + 1, i)
    else:
        i = draw(st.integers(1, n - 2))
        j = draw(st.integers(i + 1, n - 1))
        order[i], order[j] = order[j], order[i]
    return kind, order


@PROPS
@given(data=st.data())
def test_corrupted_stream_resyncs_before_any_wrong_book(data):
    """After sync, a dropped or reordered delta always produces a ResyncNeeded (gap), a re-sent one is dropped without any, and no BookUpdate ever describes a book that differs from the reference at its sequence."""
    market = data.draw(markets(min_deltas=3))
    kind, order = data.draw(corruptions(market))
    sync = BookSync(SYM)
    assert sync.on_delta(market.deltas[0]) == [FetchSnapshot(SYM, 1)]
    # snapshot 0 replays the buffered delta; snapshot 1 drops it and waits for a bridging delta
    check_updates(sync, market, sync.on_snapshot(market.snapshot(data.draw(st.integers(0, 1)))))
    assert sync.state == "synced"
    resyncs = []
    newest = 0  # the exchange's current state: the newest delta it has sent
    for idx in order[1:]:
        newest = max(newest, idx)
        out = sync.on_delta(market.deltas[idx])
        check_updates(sync, market, out)
        resyncs += [e for e in out if isinstance(e, ResyncNeeded)]
        if any(isinstance(e, FetchSnapshot) for e in out):  # the shell answers with the current REST book
            out = sync.on_snapshot(market.snapshot(newest + 1))
            check_updates(sync, market, out)
            resyncs += [e for e in out if isinstance(e, ResyncNeeded)]
    if kind == "duplicate":  # already in the book: dropped and counted (issue 6), no resync
        assert resyncs == [] and sync.stats["dropped_old"] + sync.stats["duplicates"] >= 1
    else:
        assert resyncs, f"{kind} not detected"
        assert resyncs[0].reason == "gap"
    assert sync.state == "synced"
    final = max(order)
    assert sync.last_update_id == market.seq(final + 1)
    assert_book_is(sync, market.states[final + 1])


# --- overlapping, old and repeated deltas ---------------------------------------------------------


@dataclass
class FineMarket:
    """One book change per sequence number; a delivered delta aggregates any range of them."""

    s0: int
    changes: list[tuple[int, Decimal, Decimal]]  # changes[k] happens at sequence s0 + 1 + k: (side, price, size)

    @property
    def last(self) -> int:
        return self.s0 + len(self.changes)

    def state(self, seq: int) -> tuple[dict, dict]:
        sides: tuple[dict, dict] = ({}, {})
        for side, price, size in self.changes[: seq - self.s0]:
            if size:
                sides[side][price] = size
            else:
                sides[side].pop(price, None)
        return sides

    def delta(self, first: int, last: int) -> DepthDelta:
        """What an aggregated stream sends for [first, last]: every level touched, at its value at ``last``."""
        touched: tuple[dict, dict] = ({}, {})
        for side, price, size in self.changes[first - self.s0 - 1 : last - self.s0]:
            touched[side][price] = size
        bids, asks = (list(t.items()) for t in touched)
        return DepthDelta(SYM, first, last, bids, asks, timestamp=last, event_time=last, receipt=last)

    def snapshot(self, seq: int) -> DepthSnapshot:
        bids, asks = self.state(seq)
        return DepthSnapshot(SYM, seq, sorted(bids.items()), sorted(asks.items()), timestamp=seq, receipt=seq)


@st.composite
def fine_markets(draw) -> FineMarket:
    change = st.tuples(st.integers(0, 1), st.integers(1, 8).map(Decimal), SIZES.map(Decimal))
    return FineMarket(draw(st.integers(0, 10**6)), draw(st.lists(change, min_size=2, max_size=30)))


@PROPS
@given(data=st.data())
def test_overlapping_old_and_repeated_deltas_never_give_a_wrong_book(data):
    """For any delivery of aggregated deltas over arbitrary, overlapping, repeated, older or gapped ranges, and snapshots taken at any point near the stream, every BookUpdate shows the reference book at its sequence, and a contiguous catch-up then always ends synced on the reference book."""
    market = data.draw(fine_markets())
    sync = BookSync(SYM)
    n = len(market.changes)
    newest = market.s0  # the newest sequence the exchange has sent
    pending = 0  # FetchSnapshot requests not answered yet

    def feed(out: list) -> None:
        nonlocal pending
        ups = [e for e in out if isinstance(e, BookUpdate)]
        assert len(ups) <= 1
        for up in ups:
            assert sync.state == "synced" and up.sequence == sync.last_update_id
            assert_book_is(sync, market.state(up.sequence))
        assert all(e.reason in ("gap", "stale_snapshot") for e in out if isinstance(e, ResyncNeeded))
        pending += sum(1 for e in out if isinstance(e, FetchSnapshot))

    def answer(seq: int) -> None:
        nonlocal pending
        pending -= 1
        feed(sync.on_snapshot(market.snapshot(seq)))

    # The script stays short of the last change, so the catch-up always sends something new: without it
    # a book that dropped a re-sent delta's newer neighbour would rightly wait for the next delta.
    for _ in range(data.draw(st.integers(1, 25))):
        first = data.draw(st.integers(market.s0 + 1, market.last - 1))
        last = data.draw(st.integers(first, min(market.last - 1, first + 4)))
        newest = max(newest, last)
        feed(sync.on_delta(market.delta(first, last)))
        if pending and data.draw(st.booleans()):  # the REST book may be a little behind or ahead
            seq = newest + data.draw(st.integers(-2, 2))
            answer(min(max(seq, market.s0), market.last))
    # catch-up: the exchange sends the rest contiguously, and the shell answers any pending request
    top = newest
    while top < market.last:
        step = data.draw(st.integers(1, 3))
        feed(sync.on_delta(market.delta(top + 1, min(market.last, top + step))))
        top = min(market.last, top + step)
    while pending:
        answer(market.last)
    assert n == market.last - market.s0
    assert sync.state == "synced" and sync.last_update_id == market.last
    assert_book_is(sync, market.state(market.last))


@PROPS
@given(market=markets(min_deltas=2, max_deltas=30), data=st.data())
def test_a_stream_behind_the_book_resyncs_exactly_at_the_bound(market, data):
    """With the book synced from a snapshot k deltas ahead of the socket and a bound of m old deltas, the book goes live on the reference book without any resync when k < m, and resyncs with reason stale_stream on the m-th old delta (never emitting a BookUpdate for one) when k >= m."""
    n = len(market.deltas)
    ahead = data.draw(st.integers(1, n - 1))  # the snapshot shows the state after `ahead` deltas
    bound = data.draw(st.integers(1, n))
    sync = BookSync(SYM, max_old_deltas=bound)
    assert sync.on_delta(market.deltas[0]) == [FetchSnapshot(SYM, 1)]
    out = sync.on_snapshot(market.snapshot(ahead))
    assert [(type(e), e.sequence) for e in out] == [(BookUpdate, market.seq(ahead))]
    old = ahead - 1  # deltas 1 .. ahead-1 are still to come from the socket, all already in the book
    for k in range(1, n):
        out = sync.on_delta(market.deltas[k])
        if k <= old and k < bound:
            assert out == [] and sync.state == "synced"
        elif k <= old:  # the bound-th old delta in a row
            assert old >= bound and k == bound
            assert [type(e) for e in out] == [ResyncNeeded, FetchSnapshot]
            assert (out[0].reason, out[0].expected, out[0].got) == (
                "stale_stream", market.seq(ahead) + 1, market.deltas[k].last_update_id)
            return
        else:
            check_updates(sync, market, out)
            assert [type(e) for e in out] == [BookUpdate]
    # dropped: the old deltas from the socket, plus the buffered first delta the snapshot already held
    assert old < bound and sync.stats["resyncs"] == 0 and sync.stats["dropped_old"] == old + 1
    assert_book_is(sync, market.states[n])


# --- never raise ----------------------------------------------------------------------------------

SMALL_IDS = st.integers(0, 12)
WEIRD_INTS = st.one_of(
    SMALL_IDS,  # repeated so that chains (and so the synced state) are common
    SMALL_IDS,
    SMALL_IDS,
    st.integers(),
    st.sampled_from([-1, True, False, None, 1.5, float("nan"), "7", 10**40]),
)
NICE_DECIMALS = st.integers(0, 30).map(Decimal)
WEIRD_DECIMALS = st.one_of(
    NICE_DECIMALS,
    NICE_DECIMALS,
    NICE_DECIMALS,
    # any finite value (st.decimals() is slow per draw; RAW below still uses it)
    st.tuples(st.integers(-(10**9), 10**9), st.integers(-40, 40)).map(lambda t: Decimal(t[0]).scaleb(t[1])),
    st.sampled_from(
        [
            Decimal("-0"),
            Decimal("-1"),
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            Decimal("1E+999999"),
            3,
            "1",
        ]
    ),
)
WEIRD_LEVELS = st.one_of(
    st.lists(st.tuples(WEIRD_DECIMALS, WEIRD_DECIMALS), max_size=3),
    st.lists(st.tuples(WEIRD_DECIMALS, WEIRD_DECIMALS), max_size=3),
    st.sampled_from([None, [()], [(Decimal(1),)], [(Decimal(1), Decimal(1), Decimal(1))], "ab", 5]),
)
SYMBOLS = st.sampled_from([SYM, SYM, "BTC_USDC", "", None, 7])

NICE_LEVELS = st.lists(st.tuples(NICE_DECIMALS, NICE_DECIMALS), max_size=3)


# Strategies are built once: hypothesis validates every new strategy object, which is slow per draw.
DELTA_WEIRD = {
    "symbol": SYMBOLS,
    "first_update_id": WEIRD_INTS,
    "last_update_id": WEIRD_INTS,
    "bids": WEIRD_LEVELS,
    "asks": WEIRD_LEVELS,
    "timestamp": WEIRD_INTS,
    "receipt": WEIRD_INTS,
}
SNAPSHOT_WEIRD = {"symbol": SYMBOLS, "last_update_id": WEIRD_INTS, "bids": WEIRD_LEVELS, "asks": WEIRD_LEVELS}
DELTA_WEIRD_NAMES = st.lists(st.sampled_from(sorted(DELTA_WEIRD)), max_size=2)
SNAPSHOT_WEIRD_NAMES = st.lists(st.sampled_from(sorted(SNAPSHOT_WEIRD)), max_size=2)
KINDS = st.sampled_from(["delta"] * 6 + ["snapshot", "snapshot", "failed", "reset"])
STEPS = st.sampled_from([1, 1, 1, 1, 0, 2, -3])
SPANS = st.sampled_from([0, 0, 1, 3])
SNAPSHOT_LAG = st.integers(-2, 6)
RAW = st.one_of(
    st.builds(DepthDelta), st.builds(DepthSnapshot)
)  # whatever hypothesis infers from annotations


def _weirden(draw, fields: dict, weird: dict, names: st.SearchStrategy) -> dict:
    for name in draw(names):
        fields[name] = draw(weird[name])
    return fields


@st.composite
def action_lists(draw) -> list:
    """Deltas that mostly chain on a running sequence (so every state is reached), snapshots near that
    sequence, failed fetches and resets; any field may be replaced by a weird value."""
    seq = draw(SMALL_IDS)
    out: list = []
    for _ in range(draw(st.integers(0, 20))):
        kind = draw(KINDS)
        if kind == "delta":
            U = seq + draw(STEPS)
            u = U + draw(SPANS)
            seq = max(seq, u)
            fields = {"symbol": SYM, "first_update_id": U, "last_update_id": u, "bids": draw(NICE_LEVELS)}
            fields |= {"asks": draw(NICE_LEVELS), "timestamp": 1, "event_time": 1, "receipt": 1}
            out.append(DepthDelta(**_weirden(draw, fields, DELTA_WEIRD, DELTA_WEIRD_NAMES)))
        elif kind == "snapshot":
            fields = {"symbol": SYM, "last_update_id": seq - draw(SNAPSHOT_LAG), "bids": draw(NICE_LEVELS)}
            fields |= {"asks": draw(NICE_LEVELS), "timestamp": 1, "receipt": 1}
            out.append(DepthSnapshot(**_weirden(draw, fields, SNAPSHOT_WEIRD, SNAPSHOT_WEIRD_NAMES)))
        else:
            out.append(kind)
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    actions=action_lists(),
    max_buffer=st.sampled_from([-1, 1, 3, 10_000, 10_000]),
    attempts=st.sampled_from([None, 1, 3]),
)
def test_never_raises_on_arbitrary_input(actions, max_buffer, attempts):
    """on_delta / on_snapshot / on_snapshot_failed / reset never raise on arbitrary values, only return outputs, and any BookUpdate matches the machine's current sequence."""
    sync = BookSync(SYM, max_buffer=max_buffer, max_snapshot_attempts=attempts)
    manager = BookManager(max_buffer=max_buffer)
    for a in actions:
        if a == "failed":
            outs = [sync.on_snapshot_failed(), manager.on_snapshot_failed(SYM)]
        elif a == "reset":
            outs = [sync.reset(), manager.reset()]
        elif isinstance(a, DepthDelta):
            outs = [sync.on_delta(a), manager.on_delta(a)]
        else:
            outs = [sync.on_snapshot(a), manager.on_snapshot(a)]
        for out in outs:
            assert all(isinstance(e, BookUpdate | ResyncNeeded | FetchSnapshot) for e in out)
        for e in outs[0]:
            if isinstance(e, BookUpdate):
                assert sync.state == "synced" and e.sequence == sync.last_update_id
        assert sync.state in ("idle", "buffering", "synced")
        assert sync.stats["internal_errors"] == 0  # every bad input is handled by explicit validation
        assert (sync.last_update_id is not None) == (sync.state == "synced")
        sync.book.top(5)
        assert all(v > 0 for v in sync.book.bid_dict().values())
        assert all(v > 0 for v in sync.book.ask_dict().values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(st.builds(DepthDelta), st.builds(DepthSnapshot)), min_size=1, max_size=4))
def test_never_raises_on_inferred_values(values):
    """Values hypothesis infers from the DepthDelta / DepthSnapshot annotations never make any state raise."""
    idle = BookSync(SYM)
    buffering = BookSync(SYM)
    buffering.on_delta(DepthDelta(SYM, 1, 1, [], [], 0, 0))
    synced = BookSync(SYM)
    synced.on_delta(DepthDelta(SYM, 1, 1, [], [], 0, 0))
    synced.on_snapshot(DepthSnapshot(SYM, 0, [], [], 0))
    assert (idle.state, buffering.state, synced.state) == ("idle", "buffering", "synced")
    manager = BookManager()
    for v in values:
        for machine in (idle, buffering, synced, manager):
            out = machine.on_delta(v) if isinstance(v, DepthDelta) else machine.on_snapshot(v)
            assert all(isinstance(e, BookUpdate | ResyncNeeded | FetchSnapshot) for e in out)
    assert all(m.stats["internal_errors"] == 0 for m in (idle, buffering, synced))
