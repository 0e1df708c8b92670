"""Socket-level faults: the unchanged feed on real loopback sockets, the server playing a recording.

Each fault is armed on the server at a frame position (or, for a missing pong, on wall time) and the
run goes on until the server has played the whole recording to a later connection: every book checked
against the reference, every trade of the recording emitted once, no exception, and every connection
subscribed like the first with a fresh signature (``harness/scenarios/sockets.py``).
"""

from __future__ import annotations

import pytest

from harness.recording.reader import read_recording
from harness.scenarios.sockets import SOCKET_FAULTS, SocketFault, run_socket_async

from .scenario_helpers import path

pytestmark = pytest.mark.e2e

LOSES_THE_CONNECTION = {"close": 1001, "abrupt_close": None, "stall": 4000, "no_pong": 1011}


@pytest.mark.parametrize("name", ["private", "errors"])
@pytest.mark.parametrize("kind", SOCKET_FAULTS)
async def test_the_feed_recovers_from_a_socket_fault_with_every_invariant_kept(name: str, kind: str) -> None:
    """Whatever the socket does, the feed's books equal the reference, each trade comes once and all come."""
    run = await run_socket_async(read_recording(path(name)), SocketFault(kind))
    assert run.stats["books_checked"] > 0 and run.stats["trades"] > 0
    closes = run.exchange["closes"]
    if kind in LOSES_THE_CONNECTION:
        assert run.exchange["connections"] >= 2  # it came back
        if kind in ("stall", "no_pong", "close"):
            assert closes[0] == LOSES_THE_CONNECTION[kind]  # and it was this fault that cut it
        assert run.exchange["frames_sent"][0] < 400  # the first connection never got to the end
    else:
        assert run.exchange["frames_sent"][0] == 400 and closes[0] == 1000  # nothing lost: played to the end
    if kind == "split":
        assert "split" in run.exchange["fired"]
