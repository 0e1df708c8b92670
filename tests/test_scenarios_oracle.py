"""The reference oracle: the book at every sequence the recording tells, and the snapshot rule."""

from __future__ import annotations

import ast
import json
from decimal import Decimal
from pathlib import Path

import pytest

import harness.scenarios.oracle as oracle_module
from harness.recording.format import HttpRequestEvent, HttpResponseEvent, WsRecv
from harness.recording.reader import ReadStats, Recording
from harness.scenarios.oracle import CHECKPOINT, Reference

from .scenario_helpers import RECORDINGS, START_US, depth_text, ref, synthetic


def test_the_book_follows_the_snapshot_and_each_delta() -> None:
    reference = Reference.of(synthetic(12, symbols=("SOL_USDC",)))
    bids, asks = reference.book("SOL_USDC", 100)  # type: ignore[misc]
    assert bids == {Decimal(9): Decimal(2), Decimal(10): Decimal(1)}
    assert asks == {Decimal(11): Decimal(1), Decimal(12): Decimal(2)}
    # frames 0, 1, 3, 4, ... are deltas (every third a trade); delta k sets bid 9.5 to its frame number + 1
    bids, _ = reference.book("SOL_USDC", 102)  # type: ignore[misc]
    assert bids[Decimal("9.5")] == Decimal(2)
    assert reference.book("SOL_USDC", 99) is None
    assert reference.book("SOL_USDC", 10_000) is None


def test_a_gap_makes_the_book_unknown_until_a_snapshot_bridges_again() -> None:
    rec = synthetic(12, symbols=("SOL_USDC",))
    events = [e for e in rec.events if not (isinstance(e, WsRecv) and '"u":104' in e.data)]  # lose delta 104
    late = b'{"asks":[["11","5"]],"bids":[["9","5"]],"lastUpdateId":"106","timestamp":7}'
    events += [HttpRequestEvent(events[-1].t + 1, "http-late", "GET", "http://127.0.0.1:1/api/v1/depth",
                                (("symbol", "SOL_USDC"), ("limit", "1000"))),
               HttpResponseEvent(events[-1].t + 2, "http-late", 200, {}, late, START_US)]
    events.sort(key=lambda e: e.t)
    reference = Reference.of(Recording(rec.header, events, None, ReadStats()))
    book = reference.books["SOL_USDC"]
    assert reference.book("SOL_USDC", 103) is not None
    assert reference.book("SOL_USDC", 105) is None  # after the gap, before the bridging snapshot
    assert reference.book("SOL_USDC", 106) == ({Decimal(9): Decimal(5)}, {Decimal(11): Decimal(5)})
    assert reference.book("SOL_USDC", 107) is not None  # the delta after the seed applies on it
    assert [s.last_update_id for s in book.seeds] == [100, 106]


@pytest.mark.parametrize("name", ["public", "errors", "private"])
def test_every_recorded_snapshot_on_a_known_point_equals_the_book_rebuilt_from_the_deltas(name: str) -> None:
    """The recorded REST snapshots are the exchange's own word: the chain from an earlier one must agree."""
    reference = ref(name)
    requests: dict[str, HttpRequestEvent] = {}
    compared = 0
    for event in reference.events:
        if isinstance(event, HttpRequestEvent):
            requests[event.conn] = event
        elif isinstance(event, HttpResponseEvent) and event.status == 200 and event.conn in requests:
            request = requests.pop(event.conn)
            if not request.url.endswith("/depth"):
                continue
            symbol = dict(request.params)["symbol"]
            body = json.loads(event.body)
            book = reference.books[symbol]
            if book.seeds and book.seeds[0].last_update_id == int(body["lastUpdateId"]):
                continue  # the seed itself proves nothing
            truth = reference.book(symbol, int(body["lastUpdateId"]))
            if truth is None:
                continue
            want = ({Decimal(p): Decimal(q) for p, q in body["bids"] if Decimal(q)},
                    {Decimal(p): Decimal(q) for p, q in body["asks"] if Decimal(q)})
            assert truth == want, (name, symbol, body["lastUpdateId"])
            compared += 1
    if name == "public":
        assert compared >= 4  # the four snapshots after the reconnect lie on the chain from the first ones


def test_random_access_agrees_with_a_forward_walk() -> None:
    book = ref("private").books["SOL_USDC"]
    forward = [(dict(b), dict(a)) for b, a in (book.state(k) for k in range(3 * CHECKPOINT + 5))]
    for k in (3 * CHECKPOINT + 4, 0, CHECKPOINT - 1, CHECKPOINT, 2 * CHECKPOINT + 7, 5):
        assert book.state(k) == forward[k]


def test_sent_is_the_highest_u_the_exchange_had_sent_up_to_a_position() -> None:
    reference = Reference.of(synthetic(12, symbols=("SOL_USDC",)))
    depth = [f for f in reference.frames if f.depth]
    assert reference.sent("SOL_USDC", 0) is None
    assert reference.sent("SOL_USDC", depth[0].index) == 101
    assert reference.sent("SOL_USDC", depth[3].index + 1) == 104
    assert reference.sent("OTHER", 10_000) is None


def test_the_answer_is_the_book_at_what_was_sent_and_moves_by_points() -> None:
    reference = Reference.of(synthetic(12, symbols=("SOL_USDC",)))
    book = reference.books["SOL_USDC"]
    depth = [f for f in reference.frames if f.depth]
    at = depth[3].index
    k = reference.answer_point("SOL_USDC", at)
    assert book.points[k].sequence == 104  # type: ignore[index]
    assert book.points[reference.answer_point("SOL_USDC", at, -2)].sequence == 102  # type: ignore[index]
    assert book.points[reference.answer_point("SOL_USDC", at, 3)].sequence == 107  # type: ignore[index]
    assert reference.answer_point("SOL_USDC", at, -100) == 0  # clamped to the first known book
    assert reference.answer_point("SOL_USDC", 0) == 0  # nothing sent yet: the first known book (ahead)
    body = book.body(k, limit=1)  # type: ignore[arg-type]
    assert body["lastUpdateId"] == "104" and len(body["bids"]) == 1 and body["bids"][0][0] == "10"


def test_frames_are_classified_without_the_protocol_code() -> None:
    rec = synthetic(3, symbols=("SOL_USDC",))
    extra = [WsRecv(1, "ws-1", "not json", START_US), WsRecv(2, "ws-1", '{"id":null,"error":{"code":4006}}', START_US),
             WsRecv(3, "ws-1", '{"id":1,"result":null}', START_US), WsRecv(4, "ws-1", b"\x00", START_US),
             WsRecv(5, "ws-1", depth_text("SOL_USDC", 7, "1", "-1"), START_US)]
    reference = Reference.of(Recording(rec.header, extra, None, ReadStats()))
    assert [f.kind for f in reference.frames] == ["invalid", "error", "ack", "invalid", "data"]
    assert reference.frames[-1].depth and not reference.frames[-1].levels_ok
    tree = ast.parse(Path(oracle_module.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(str(m).startswith("backpack") for m in imported)  # the truth is not the code under test


def test_the_reference_of_a_file_is_read_once() -> None:
    path = RECORDINGS / "edge.jsonl.zst"
    assert oracle_module.reference(path) is oracle_module.reference(path)
