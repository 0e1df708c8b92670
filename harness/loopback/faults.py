"""Fault hooks for the loopback server, armed by tests while it runs.

Each hook is one-shot or counted (``count=None`` means "until cleared") and is consumed by the server
at the moment it applies, so a test arms a fault, drives traffic, and observes exactly that many
occurrences. Every fault that actually fires is appended to ``fired`` so a test can tell "the fault
happened and the client coped" from "the fault never happened".

Pure bookkeeping: no asyncio here. Immediate actions (close a socket, send an error frame) are queued
and the server is poked through ``set_listener``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FOREVER = None


class _Counter:
    """Remaining uses; ``None`` means unlimited until cleared."""

    __slots__ = ("armed", "remaining")

    def __init__(self) -> None:
        self.armed = False
        self.remaining: int | None = 0

    def arm(self, count: int | None) -> None:
        if count is not None and count < 0:
            raise ValueError("count must be >= 0 or None")
        self.armed = count is None or count > 0
        self.remaining = count

    def clear(self) -> None:
        self.armed, self.remaining = False, 0

    def take(self) -> bool:
        if not self.armed:
            return False
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.armed = False
        return True


@dataclass(frozen=True, slots=True)
class CloseRequest:
    code: int = 1000
    message: str = ""
    abrupt: bool = False  # drop the TCP connection without a Close frame
    connection_id: int | None = None  # None: every open WebSocket


@dataclass(frozen=True, slots=True)
class SendRequest:
    text: str
    connection_id: int | None = None  # None: every open WebSocket


@dataclass(frozen=True, slots=True)
class Fired:
    """One fault that actually took effect."""

    kind: str
    detail: dict[str, Any]


class Faults:
    """Settable from tests while the server runs; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._skip: dict[str | None, _Counter] = {}
        self._dup: dict[str | None, _Counter] = {}
        self._delay = _Counter()
        self._delay_seconds = 0.0
        self._snapshot_fail = _Counter()
        self._snapshot_status = 503
        self._rate_limit = _Counter()
        self._retry_after: float | None = None
        self._reject_private = _Counter()
        self._no_pongs = _Counter()
        self._no_pings = _Counter()
        self._close_after: tuple[int, CloseRequest] | None = None
        self._stall_after: tuple[int, float] | None = None
        self._split = _Counter()
        self._split_chunk, self._split_pause = 7, 0.0
        self._at_frame: list[tuple[int, int, Callable[[], None]]] = []
        self._snapshot_shift = _Counter()
        self._snapshot_shift_by = 0
        self._reorder: dict[str | None, _Counter] = {}
        self._empty_snapshot = _Counter()
        self._actions: list[CloseRequest | SendRequest] = []
        self._listener: Callable[[], None] | None = None
        self.fired: list[Fired] = []

    # -- arming (called by tests) -----------------------------------------------------------------
    def close_socket(
        self, code: int = 1000, message: str = "", *, abrupt: bool = False, connection_id: int | None = None
    ) -> None:
        """Close open WebSockets now (all, or one by id); ``abrupt`` drops TCP without a Close frame."""
        self._actions.append(CloseRequest(code, message, abrupt, connection_id))
        self._poke()

    def send_error(self, code: int, message: str, *, connection_id: int | None = None) -> None:
        """Push an exchange-style error frame ``{"id":null,"error":{...}}`` now."""
        text = json.dumps({"id": None, "error": {"code": code, "message": message}}, separators=(",", ":"))
        self.send_raw(text, connection_id=connection_id)

    def send_raw(self, text: str, *, connection_id: int | None = None) -> None:
        """Push an arbitrary text frame now (malformed JSON is allowed: that is the point)."""
        self._actions.append(SendRequest(text, connection_id))
        self._poke()

    def skip_depth(self, symbol: str | None = None, count: int | None = 1) -> None:
        """Generate the next realtime depth deltas for ``symbol`` (None: any) but never send them.

        Only deltas that have at least one subscriber count, so arming before the client subscribes is
        safe; a skipped delta is withheld from every connection (it is a gap in the exchange's stream).
        """
        self._skip.setdefault(symbol, _Counter()).arm(count)

    def duplicate_depth(self, symbol: str | None = None, count: int | None = 1) -> None:
        """Send the next realtime depth deltas for ``symbol`` (None: any) twice (same counting as skip)."""
        self._dup.setdefault(symbol, _Counter()).arm(count)

    def delay_frames(self, seconds: float, count: int | None = 1) -> None:
        """Hold each of the next ``count`` outgoing text frames for ``seconds`` before writing it."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._delay_seconds = seconds
        self._delay.arm(count)

    def fail_snapshots(self, count: int | None = 1, status: int = 503) -> None:
        """Answer the next ``count`` ``/api/v1/depth`` requests with a 5xx."""
        if not 500 <= status <= 599:
            raise ValueError("status must be a 5xx code")
        self._snapshot_status = status
        self._snapshot_fail.arm(count)

    def rate_limit(self, count: int | None = 1, retry_after: float | None = None) -> None:
        """Answer the next ``count`` REST requests (any ``/api`` path) with 429."""
        self._retry_after = retry_after
        self._rate_limit.arm(count)

    def reject_private(self, count: int | None = 1) -> None:
        """Refuse the next ``count`` private subscribes even when the signature is valid."""
        self._reject_private.arm(count)

    def stop_pongs(self, count: int | None = FOREVER) -> None:
        """Ignore the client's protocol Pings (the client's watchdog should notice)."""
        self._no_pongs.arm(count)

    def resume_pongs(self) -> None:
        self._no_pongs.clear()

    def stop_pings(self, count: int | None = FOREVER) -> None:
        """Skip the server's own heartbeat Pings (tests the client's "server went quiet" path)."""
        self._no_pings.arm(count)

    def resume_pings(self) -> None:
        self._no_pings.clear()

    def close_after(self, frames: int, code: int = 1000, message: str = "", *, abrupt: bool = False) -> None:
        """Close the first connection to have been sent ``frames`` text frames, right after that frame (once).

        A fault placed by position in the stream rather than by wall time, so a test puts it exactly."""
        if frames < 0:
            raise ValueError("frames must be >= 0")
        self._close_after = (frames, CloseRequest(code, message, abrupt))

    def stall_after(self, frames: int, seconds: float) -> None:
        """After the first connection's ``frames``-th text frame, write nothing to it for ``seconds`` (once)."""
        if frames < 0 or seconds < 0:
            raise ValueError("frames and seconds must be >= 0")
        self._stall_after = (frames, seconds)

    def split_frames(self, chunk: int = 7, count: int | None = FOREVER, pause: float = 0.0) -> None:
        """Write each of the next ``count`` text frames to TCP in ``chunk``-byte pieces, ``pause`` seconds apart
        (each piece its own write, so a client reads WebSocket frames cut at any byte)."""
        if chunk < 1 or pause < 0:
            raise ValueError("chunk must be >= 1 and pause >= 0")
        self._split_chunk, self._split_pause = chunk, pause
        self._split.arm(count)

    def at_frame(self, frames: int, action: Callable[[], None], *, connection: int = 1) -> None:
        """Call ``action`` (arm another fault, push a frame) right after connection number ``connection`` (the
        server counts from 1) was sent its ``frames``-th text frame: any fault placed by stream position."""
        if frames < 0 or connection < 1:
            raise ValueError("frames must be >= 0 and connection >= 1")
        self._at_frame.append((connection, frames, action))

    def shift_snapshots(self, by: int, count: int | None = 1) -> None:
        """Answer the next ``count`` depth snapshots ``by`` known book states behind (< 0: stale) or ahead (> 0)
        of the one the stream has reached (sources that know their book's states: a recording)."""
        if by == 0:
            raise ValueError("by must not be 0")
        self._snapshot_shift_by = by
        self._snapshot_shift.arm(count)

    def empty_snapshots(self, count: int | None = 1) -> None:
        """Answer the next ``count`` ``/api/v1/depth`` requests with ``204 No Content`` (no body at all)."""
        self._empty_snapshot.arm(count)

    def reorder_depth(self, symbol: str | None = None, count: int | None = 1) -> None:
        """Hold the next realtime depth delta of ``symbol`` (None: any) back and send it right after the one
        that follows it on the same connection (two deltas swapped on the wire)."""
        self._reorder.setdefault(symbol, _Counter()).arm(count)

    def clear(self) -> None:
        """Disarm everything; ``fired`` and the listener are kept."""
        fired, listener = self.fired, self._listener
        self.__init__()
        self.fired, self._listener = fired, listener

    # -- consumption (called by the server) ------------------------------------------------------
    def set_listener(self, listener: Callable[[], None] | None) -> None:
        self._listener = listener

    def _poke(self) -> None:
        if self._listener is not None:
            self._listener()

    def _fire(self, kind: str, **detail: Any) -> None:
        self.fired.append(Fired(kind, detail))

    def _take_keyed(self, table: dict[str | None, _Counter], symbol: str | None) -> bool:
        for key in (symbol, None):
            counter = table.get(key)
            if counter is not None and counter.take():
                return True
        return False

    def take_skip_depth(self, symbol: str | None, sequence: int | None = None) -> bool:
        if self._take_keyed(self._skip, symbol):
            self._fire("skip_depth", symbol=symbol, u=sequence)
            return True
        return False

    def take_duplicate_depth(self, symbol: str | None, sequence: int | None = None) -> bool:
        if self._take_keyed(self._dup, symbol):
            self._fire("duplicate_depth", symbol=symbol, u=sequence)
            return True
        return False

    def take_delay(self) -> float:
        if self._delay.take():
            self._fire("delay", seconds=self._delay_seconds)
            return self._delay_seconds
        return 0.0

    def take_snapshot_failure(self) -> int | None:
        if self._snapshot_fail.take():
            self._fire("fail_snapshot", status=self._snapshot_status)
            return self._snapshot_status
        return None

    def take_rate_limit(self) -> tuple[bool, float | None]:
        if self._rate_limit.take():
            self._fire("rate_limit", retry_after=self._retry_after)
            return True, self._retry_after
        return False, None

    def take_private_reject(self) -> bool:
        if self._reject_private.take():
            self._fire("reject_private")
            return True
        return False

    def take_pong_suppression(self) -> bool:
        if self._no_pongs.take():
            self._fire("no_pong")
            return True
        return False

    def take_ping_suppression(self) -> bool:
        if self._no_pings.take():
            self._fire("no_ping")
            return True
        return False

    def take_close_after(self, sent: int) -> CloseRequest | None:
        armed = self._close_after
        if armed is not None and sent >= armed[0]:
            self._close_after = None
            self._fire("close_after", frames=sent, code=armed[1].code, abrupt=armed[1].abrupt)
            return armed[1]
        return None

    def take_stall_after(self, sent: int) -> float:
        armed = self._stall_after
        if armed is not None and sent >= armed[0]:
            self._stall_after = None
            self._fire("stall", frames=sent, seconds=armed[1])
            return armed[1]
        return 0.0

    def take_split(self) -> tuple[int, float] | None:
        if self._split.take():
            self._fire("split", chunk=self._split_chunk)
            return self._split_chunk, self._split_pause
        return None

    def take_at_frame(self, connection: int, sent: int) -> list[Callable[[], None]]:
        due = [a for a in self._at_frame if a[0] == connection and sent >= a[1]]
        if not due:
            return []
        self._at_frame = [a for a in self._at_frame if a not in due]
        for conn, frames, _action in due:
            self._fire("at_frame", connection=conn, frames=frames)
        return [a[2] for a in due]

    def take_snapshot_shift(self) -> int:
        if self._snapshot_shift.take():
            self._fire("shift_snapshot", by=self._snapshot_shift_by)
            return self._snapshot_shift_by
        return 0

    def take_empty_snapshot(self) -> bool:
        if self._empty_snapshot.take():
            self._fire("empty_snapshot")
            return True
        return False

    def take_reorder_depth(self, symbol: str | None, sequence: int | None = None) -> bool:
        if self._take_keyed(self._reorder, symbol):
            self._fire("reorder_depth", symbol=symbol, u=sequence)
            return True
        return False

    def drain_actions(self) -> list[CloseRequest | SendRequest]:
        actions, self._actions = self._actions, []
        return actions

    def count(self, kind: str) -> int:
        """How many times a fault of ``kind`` fired (e.g. ``"skip_depth"``)."""
        return sum(1 for f in self.fired if f.kind == kind)
