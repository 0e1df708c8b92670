"""The exchange a faulted full-feed replay talks to: it reacts to the real feed, and checks what only it sees."""

from __future__ import annotations

import json

import pytest

from harness.scenarios.invariants import InvariantBroken
from harness.scenarios.oracle import Reference
from harness.scenarios.program import PING_TIMEOUT_S, WATCHDOG_S, Edit, Program, Window, apply
from harness.scenarios.runner import run_core, run_feed_scenario

from .scenario_helpers import synthetic

E = Edit.make
PUBLIC = Reference.of(synthetic(60))
PRIVATE = Reference.of(synthetic(60, private=True))


def feed(reference: Reference, *edits: Edit, stretch: int = 100):
    """60 frames 1 s apart (stretch 100), so reconnects and retries happen inside the window."""
    return run_feed_scenario(apply(Program(tuple(edits), Window(0, None, stretch)), reference))


def test_a_clean_window_is_delivered_whole_and_matches_the_core() -> None:
    run = feed(PUBLIC)
    assert run.stats.get("lost", 0) == 0 and run.stats["delivered"] == len(PUBLIC.frames)
    assert run.exchange["connections"] == 1 and run.exchange["closes"] == []
    assert run.stats["books_checked"] == run.stats["books"] > 0
    core = run_core(apply(Program((), Window(0, None, 100)), PUBLIC))
    trades = sorted(line for line in run.lines if '"type":"trade"' in line)
    assert trades == sorted(line for line in core.lines if '"type":"trade"' in line)


def test_after_a_cut_the_feed_reconnects_frames_meanwhile_are_lost_and_it_resubscribes_the_same() -> None:
    run = feed(PUBLIC, E("cut", at=20))
    assert run.exchange["closes"] == [1006]
    assert run.exchange["connections"] == 2
    streams = run.exchange["streams"]
    assert streams[0] == streams[1] and streams[0]
    assert 0 < run.stats["lost"] < 10  # frames 1 s apart: the feed's backoff (at most 0.5 s) costs one or so
    assert '"reason":"reconnect"' in "".join(run.lines)


def test_the_watchdog_closes_a_silent_link_and_the_feed_comes_back() -> None:
    run = feed(PUBLIC, E("silence", at=20, seconds=WATCHDOG_S + 10))
    assert run.exchange["closes"] == [4000]
    assert run.exchange["connections"] == 2
    assert run.stats.get("lost", 0) == 0  # the stream resumes after the feed is back: nothing missed
    short = feed(PUBLIC, E("silence", at=20, seconds=WATCHDOG_S - 10))
    assert short.exchange["closes"] == [] and short.exchange["connections"] == 1


def test_an_unanswered_ping_kills_the_link_after_the_ping_timeout() -> None:
    run = feed(PUBLIC, E("unanswered_ping", at=5))
    assert run.exchange["closes"] == [1011]
    assert run.stats["lost"] >= 1  # frames 1 s apart: the ones between the death and the resubscribe
    assert run.exchange["connections"] == 2
    assert PING_TIMEOUT_S < 60  # the window (60 s) holds the death


def test_refused_private_subscribes_are_retried_and_given_up_after_the_feeds_limit() -> None:
    run = feed(PRIVATE, E("reject_private", count=2))
    assert run.exchange["rejections"] == 2
    assert run.stats["errors"] >= 2  # each refusal reached the feed as an error event
    assert any('"type":"order"' in line for line in run.lines)  # the third try got through
    gave_up = feed(PRIVATE, E("reject_private", count=10), E("cut", at=40))
    assert gave_up.exchange["rejections"] == 4  # private_subscribe_retries (3) + 1, then it stops asking
    assert not any(s.startswith("account.") for s in gave_up.exchange["streams"][1])
    assert not any('"type":"order"' in line for line in gave_up.lines)


def test_depth_requests_are_answered_by_the_snapshot_rule_with_the_programs_faults() -> None:
    run = feed(PUBLIC, E("snapshot", nth=1, answer="5xx"), E("snapshot", nth=2, answer="stale", by=30))
    assert run.exchange["depth_requests"] >= 3  # the 5xx one was asked again
    assert run.stats["books_checked"] > 0


def test_a_private_subscribe_that_reuses_its_timestamp_breaks_e(monkeypatch: pytest.MonkeyPatch) -> None:
    from backpack import session

    original = session.subscribe_frames
    first: dict[str, int] = {}

    def pinned(streams, **kwargs):  # signs every subscribe with the first one's timestamp
        if kwargs.get("timestamp_ms") is not None:
            kwargs["timestamp_ms"] = first.setdefault("ms", kwargs["timestamp_ms"])
        return original(streams, **kwargs)

    monkeypatch.setattr(session, "subscribe_frames", pinned)
    with pytest.raises(InvariantBroken, match=r"invariant \(e\).*not freshly signed"):
        feed(PRIVATE, E("cut", at=20))


def test_an_exception_that_restarts_the_feed_breaks_d(monkeypatch: pytest.MonkeyPatch) -> None:
    from backpack import session

    async def broken(self, ws) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(session.WsSessionManager, "_subscribe", broken)
    with pytest.raises(InvariantBroken, match=r"invariant \(d\).*exception\(s\) escaped"):
        feed(PUBLIC)


def test_a_feed_that_subscribes_otherwise_after_a_reconnect_breaks_e(monkeypatch: pytest.MonkeyPatch) -> None:
    from backpack import session

    original = session.WsSessionManager._subscribe

    async def fewer(self, ws) -> None:
        if self.stats.connects > 1:
            self.public = self.public[:1]
        await original(self, ws)

    monkeypatch.setattr(session.WsSessionManager, "_subscribe", fewer)
    with pytest.raises(InvariantBroken, match=r"invariant \(e\).*connection 2 subscribed to other streams.*missing"):
        feed(PUBLIC, E("cut", at=20))


def test_other_rest_calls_get_the_recordings_first_answer_or_a_404() -> None:
    import asyncio

    from backpack.transport import HttpRequest
    from harness.scenarios.invariants import Checker
    from harness.scenarios.transport import ScenarioTransport

    reference = Reference.of(synthetic(6))
    faulted = apply(Program(), reference)

    async def ask(url: str, params: tuple = ()) -> tuple[int, bytes]:
        transport = ScenarioTransport(faulted, Checker(faulted))
        task = asyncio.ensure_future(transport.request(HttpRequest("GET", url, params)))
        for _ in range(5):  # the answer comes after a latency of virtual time
            await asyncio.sleep(0)
            transport.clock.advance_by(1_000_000)
        answer = await task
        return answer.status, answer.body

    status, body = asyncio.run(ask("http://127.0.0.1:1/api/v1/markets"))
    assert status == 404 and body == b"Not in the recording"
    status, body = asyncio.run(ask("http://127.0.0.1:1/api/v1/depth", (("symbol", "SOL_USDC"), ("limit", "5"))))
    assert status == 200 and json.loads(body)["lastUpdateId"] == "100"  # nothing sent yet: the first known book
