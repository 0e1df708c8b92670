"""Each invariant fires on the violation it states and stays quiet on its lawful counterpart."""

from __future__ import annotations

from decimal import Decimal

import pytest

from harness.scenarios.invariants import INVARIANTS, Checker, InvariantBroken
from harness.scenarios.oracle import Reference
from harness.scenarios.program import Answer, Edit, Program, apply
from harness.scenarios.runner import Run, deterministic

from .scenario_helpers import synthetic

REF = Reference.of(synthetic(30, symbols=("SOL_USDC", "BTC_USDC")))


def checker(*edits: Edit) -> tuple[Checker, list]:
    faulted = apply(Program(tuple(edits)), REF)
    return Checker(faulted, depth=10), faulted.steps


def book(symbol: str, seq: int, kind: str = "delta", bids=None, asks=None) -> dict:
    truth = REF.book(symbol, seq)
    if bids is None:
        assert truth is not None
        bids = [[str(p), str(q)] for p, q in sorted(truth[0].items(), reverse=True)]
        asks = [[str(p), str(q)] for p, q in sorted(truth[1].items())]
    return {"type": "book", "symbol": symbol.replace("_", "-"), "sequence": seq, "kind": kind, "bids": bids,
            "asks": asks or []}


def depth_steps(steps: list, symbol: str) -> list[tuple[int, object]]:
    return [(i, s) for i, s in enumerate(steps) if s.frame is not None and s.frame.depth and s.frame.symbol == symbol]


def test_every_invariant_is_one_sentence_and_a_violation_names_it() -> None:
    assert sorted(INVARIANTS) == list("abcdef")
    for text in INVARIANTS.values():
        assert text.count(". ") == 0 and not text.endswith(".")
    error = InvariantBroken("c", "trade 7 emitted twice")
    assert str(error).startswith("invariant (c) broken: trade 7 emitted twice")
    assert INVARIANTS["c"] in str(error)


def test_a_a_book_that_differs_from_the_reference_breaks_a() -> None:
    c, steps = checker()
    for i, s in depth_steps(steps, "SOL_USDC"):
        c.step(i, s, True)
    c.record(book("SOL_USDC", 101, "snapshot"))  # the truth: fine
    good = REF.book("SOL_USDC", 102)
    c.record(book("SOL_USDC", 102), good)  # with the whole book: fine too
    assert c.counts["books_checked"] == 2
    with pytest.raises(InvariantBroken, match=r"invariant \(a\).*SOL_USDC book at 103: bids\[0\]"):
        c.record(book("SOL_USDC", 103, bids=[["10", "99"]]))
    c2, _ = checker()
    wrong = ({**good[0], Decimal("1"): Decimal("1")}, good[1])  # type: ignore[index]
    with pytest.raises(InvariantBroken, match=r"invariant \(a\)"):
        c2.record(book("SOL_USDC", 102, "snapshot"), wrong)


def test_a_a_sequence_the_recording_cannot_tell_is_counted_not_judged() -> None:
    c, _ = checker()
    c.record(book("SOL_USDC", 5000, "snapshot", bids=[["1", "1"]]))
    assert c.counts["books_unchecked"] == 1 and c.violation is None


def test_b_a_book_emitted_past_a_lost_delta_without_a_resync_breaks_b() -> None:
    c, steps = checker(Edit.make("drop", at=2))  # frame 2 of the window is a trade; drop a depth frame instead
    sol = depth_steps(steps, "SOL_USDC")
    (i0, s0), (i1, s1), (i2, s2) = sol[:3]
    c.step(i0, s0, True)
    c.record(book("SOL_USDC", s0.frame.last, "snapshot"))
    c.step(i1, s1, False)  # lost
    c.step(i2, s2, True)
    with pytest.raises(InvariantBroken, match=rf"invariant \(b\).*from book {s0.frame.last} to {s2.frame.last} "
                                              rf"without a book_resync, but delta {s1.frame.first}"):
        c.record(book("SOL_USDC", s2.frame.last))


def test_b_the_same_emission_after_a_resync_is_lawful() -> None:
    c, steps = checker()
    (i0, s0), (i1, s1), (i2, s2) = depth_steps(steps, "SOL_USDC")[:3]
    c.step(i0, s0, True)
    c.record(book("SOL_USDC", s0.frame.last, "snapshot"))
    c.step(i1, s1, False)
    c.record({"type": "book_resync", "symbol": "SOL-USDC", "reason": "gap"})
    c.step(i2, s2, True)
    c.record(book("SOL_USDC", s2.frame.last, "snapshot"))
    assert c.violation is None


def test_b_a_reset_of_a_symbol_nothing_happened_to_breaks_b() -> None:
    c, steps = checker()
    (i0, s0), (i1, s1) = depth_steps(steps, "SOL_USDC")[:2]
    c.step(i0, s0, True)
    c.step(i1, s1, False)  # SOL lost a delta: SOL may be reset, BTC may not
    c.record({"type": "book_resync", "symbol": "SOL-USDC", "reason": "gap"})
    with pytest.raises(InvariantBroken, match=r"invariant \(b\).*BTC_USDC was reset \(gap\) though nothing"):
        c.record({"type": "book_resync", "symbol": "BTC-USDC", "reason": "gap"})


def test_b_one_disturbance_justifies_one_reset_and_a_lost_connection_justifies_all() -> None:
    c, steps = checker()
    c.snapshot("SOL_USDC", Answer("stale", 200, b"{}"))
    c.record({"type": "book_resync", "symbol": "SOL-USDC", "reason": "stale_snapshot"})
    with pytest.raises(InvariantBroken, match=r"invariant \(b\)"):
        c.record({"type": "book_resync", "symbol": "SOL-USDC", "reason": "stale_snapshot"})
    c2, _ = checker()
    c2.disconnected()
    c2.record({"type": "book_resync", "symbol": "SOL-USDC", "reason": "reconnect"})
    c2.record({"type": "book_resync", "symbol": "BTC-USDC", "reason": "reconnect"})
    assert c2.violation is None


def test_c_a_trade_emitted_twice_breaks_c() -> None:
    c, _ = checker()
    trade = {"type": "trade", "symbol": "SOL-USDC", "id": "1002"}
    c.record(trade)
    with pytest.raises(InvariantBroken, match=r"invariant \(c\) broken.*trade 1002 of SOL_USDC emitted twice"):
        c.record(dict(trade))


def test_c_a_trade_that_arrived_intact_must_be_emitted_and_a_lost_one_may_be_missing() -> None:
    c, steps = checker()
    trades = [(i, s) for i, s in enumerate(steps) if s.frame is not None and s.frame.trade]
    (i0, s0), (i1, s1) = trades[:2]
    c.step(i0, s0, True)
    c.step(i1, s1, False)
    c.record({"type": "trade", "symbol": s0.frame.symbol.replace("_", "-"), "id": s0.frame.trade})
    c.finish()
    assert c.violation is None
    c2, _ = checker()
    c2.step(i0, s0, True)
    with pytest.raises(InvariantBroken, match=rf"invariant \(c\).*trade {s0.frame.trade} .* never emitted"):
        c2.finish()


def test_d_a_bad_frame_without_an_error_event_breaks_d() -> None:
    c, steps = checker(Edit.make("corrupt", at=0))
    c.step(0, steps[0], True)
    with pytest.raises(InvariantBroken, match=r"invariant \(d\).*the bad frame at step 0 .* produced no error event"):
        c.step(1, steps[1], True)
    c2, _ = checker(Edit.make("corrupt", at=0))
    c2.step(0, steps[0], True)
    c2.record({"type": "error", "code": None, "message": "invalid JSON"})
    c2.step(1, steps[1], True)
    c2.finish()
    assert c2.violation is None


def test_d_an_escaping_exception_and_internal_errors_break_d() -> None:
    c, _ = checker()
    with pytest.raises(InvariantBroken, match=r"invariant \(d\).*KeyError escaped the client while handling step 3"):
        c.exception("step 3", KeyError("x"))
    c2, _ = checker()
    with pytest.raises(InvariantBroken, match=r"invariant \(d\).*2 exception\(s\)"):
        c2.finish(internal_errors=2)


def test_collecting_keeps_the_first_violation_and_check_raises_it() -> None:
    faulted = apply(Program(), REF)
    c = Checker(faulted, raise_at_once=False)
    c.record({"type": "book_resync", "symbol": "SOL-USDC", "reason": "gap"})
    c.record({"type": "book_resync", "symbol": "BTC-USDC", "reason": "gap"})
    assert c.violation is not None and "SOL_USDC" in str(c.violation)
    with pytest.raises(InvariantBroken, match="SOL_USDC"):
        c.check()


def test_f_two_runs_must_print_the_same_bytes() -> None:
    a, b = Run("core", "x", lines=["1", "2"]), Run("core", "x", lines=["1", "3"])
    deterministic(a, Run("core", "x", lines=["1", "2"]))
    with pytest.raises(InvariantBroken, match=r"invariant \(f\) broken: two runs differ at line 2: 2 vs 3"):
        deterministic(a, b)
