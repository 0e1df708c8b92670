"""The index's shortcut for frames gives the index the general branches give."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from harness.recording.format import (
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    TransportErrorEvent,
    WsClose,
    WsOpen,
    WsPing,
    WsRecv,
    WsSend,
)
from harness.transports.replay_timeline import index_events


@dataclass(frozen=True, slots=True)
class _Frame(WsRecv):
    """A frame the shortcut does not take (``type(e) is WsRecv`` fails): it goes the general way."""


def _event(kind: str, t: int) -> object:
    return {
        "recv": WsRecv(t, "ws-1", "x", 5 + t),
        "send": WsSend(t, "ws-1", "y"),
        "open": WsOpen(t, "ws-1", "ws://h/"),
        "close_recv": WsClose(t, "ws-1", 1000, "", "recv"),
        "close": WsClose(t, "ws-1", 1000, "", "close"),
        "ping": WsPing(t, "ws-1"),
        "req": HttpRequestEvent(t, f"http-{t}", "GET", "http://h/x"),
        "resp": HttpResponseEvent(t, f"http-{t}", 200, {}, b"{}", 9),
        "err": TransportErrorEvent(t, "ws-1", "recv", "TransportError", "x"),
        "end": RecordingEnd(t),
    }[kind]


@settings(max_examples=300, deadline=None)
@given(kinds=st.lists(st.sampled_from(["recv"] * 6 + ["send", "open", "close_recv", "close", "ping", "req", "resp",
                                                        "err", "end"]), max_size=30),
       until=st.none() | st.integers(0, 32))
def test_frames_index_as_the_general_branches_index_them(kinds: list[str], until: int | None) -> None:
    """For any timeline and any cut, indexing with the frame shortcut gives the same index as without it."""
    events = [_event(k, t) for t, k in enumerate(kinds)]
    general = [_Frame(e.t, e.conn, e.data, e.receipt) if type(e) is WsRecv else e for e in events]
    fast, slow = index_events(events, until), index_events(general, until)
    assert (fast.count, fast.frames, fast.stop_index, fast.inferred_base_us, fast.connects, fast.closes,
            fast.broken_at, fast.rest, fast.structure) == (
        slow.count, slow.frames, slow.stop_index, slow.inferred_base_us, slow.connects, slow.closes,
        slow.broken_at, slow.rest, slow.structure)
