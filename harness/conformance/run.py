"""One case through one client over real sockets: the loopback server plays the case's slice, its fault
program is armed, the client's adapter runs until the slice has been played to the end (or the case's
bound passes), and ``judge`` turns what both sides did into a verdict with evidence.

The server plays the slice as fast as the client reads it, and resumes a stream on a new connection
where the closed one stopped (``RecordingSource(resume=True)``), as the exchange's live stream goes on:
what was queued to a dead connection is lost to the client, and what the server never wrote is never
expected of it. Each run has its own server on an ephemeral port, so runs go in parallel.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.conformance.catalog import Case, Fault
from harness.conformance.clients import Target, adapter
from harness.conformance.slices import slice_of
from harness.scenarios.oracle import Reference

SETTLE_S = 0.3  # the client's output must stand still this long after the slice's end before the run stops
SETTLE_MAX_S = 3.0
# ... and for this many polls of the loop the client shares with the server: on a loaded machine the process
# can be off the CPU for longer than SETTLE_S, and wall time alone would stop a client that had frames left.
SETTLE_POLLS = 30
SETTLE_MAX_POLLS = 300
STOP_S = 10.0  # an adapter that does not stop within this after being told is cancelled
DEFAULT_PING_S = 1.0
DEFAULT_PONG_TIMEOUT_S = 5.0
DEFAULT_SPEED = 0.5
"""Recorded time x this (the bundled recordings were made against a stepped server, 6,000 frames in 0.8 s):
a 6,000-frame slice plays in about 1.6 s, slow enough that a client's snapshot request and its subscribes
land while the stream is still going, as live."""


@dataclass
class Observed:
    """Everything a run saw, for the judge: the client's records and the server's side of every connection."""

    case: Case
    client: str
    records: list[dict[str, Any]] = field(default_factory=list)
    # per record: (latest connection, the frames it had been sent, whether it was closed or closing by then)
    positions: list[tuple[int, int, bool]] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    rest: list[tuple[float, str, str, int]] = field(default_factory=list)  # (s since start, method, path, status)
    fired: list[dict[str, Any]] = field(default_factory=list)
    opened: dict[int, float] = field(default_factory=dict)  # connection -> s since start
    subscribed: dict[int, float] = field(default_factory=dict)  # connection -> s of its first subscribe
    closed: dict[int, float] = field(default_factory=dict)
    ended: bool = False  # the whole slice was played to a connection
    timed_out: bool = False
    crash: str | None = None
    client_output: str = ""
    seconds: float = 0.0
    armed: int = 0
    fired_at_frame: int = 0


class Settle:
    """When a client's output has stood still long enough after the slice's end, in wall time and in polls.

    A poll is one pass of the loop the server and the client share, so polls only advance while this process
    runs: the client's pending input is handled between two polls, and a process starved of CPU does not
    count as a client with nothing left to say.
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.records = -1
        self.since = started
        self.polls = 0  # polls since the output last changed
        self.total = 0  # polls since the slice ended

    def over(self, records: int, now: float) -> bool:
        self.total += 1
        if now - self.started >= SETTLE_MAX_S and self.total >= SETTLE_MAX_POLLS:
            return True
        if records != self.records:
            self.records, self.since, self.polls = records, now, 0
            return False
        self.polls += 1
        return now - self.since >= SETTLE_S and self.polls >= SETTLE_POLLS


@functools.lru_cache(maxsize=16)
def reference_of(recording: str, frames: int, transforms: tuple[str, ...]) -> Reference:
    return Reference.of(slice_of(recording, frames, transforms), name=f"{recording}[:{frames}]")


def _frame_text(case: Case, position: int) -> str:
    """The text of the ``position``-th frame the slice plays to a client subscribed as the case is."""
    from harness.recording.format import WsRecv

    wanted = streams_of(case)
    n = 0
    for event in slice_of(case.recording, case.frames, case.transforms).events:
        if isinstance(event, WsRecv):
            text = event.data if isinstance(event.data, str) else event.data.decode()
            stream = text[11:text.find('"', 11)] if text.startswith('{"stream":"') else ""
            if stream in wanted:
                n += 1
                if n == position:
                    return text
    raise ValueError(f"case {case.id}: the slice plays fewer than {position} frames")


def streams_of(case: Case, channels: Any = None) -> set[str]:
    """The public stream names of the case's symbols for ``channels`` (default: all the case's)."""
    out = set()
    for symbol in case.symbols:
        native = symbol.replace("-", "_")
        for c in case.channels if channels is None else channels:
            if c == "trades":
                out.add(f"trade.{native}")
            elif c == "l2_book":
                out.add(f"depth.200ms.{native}" if "aggregated_depth" in case.transforms else f"depth.{native}")
            elif c == "bbo":
                out.add(f"bookTicker.{native}")
            elif c == "ticker":
                out.add(f"ticker.{native}")
    return out


def _arm(server: Any, case: Case, fault: Fault) -> None:
    faults = server.faults
    if fault.hook == "resend_frame":
        text = _frame_text(case, int(fault.args["frame"]))

        def action() -> None:
            faults.send_raw(text, connection_id=fault.connection)
    else:
        method = getattr(faults, fault.hook)
        args = dict(fault.args)
        if fault.hook in ("send_error", "send_raw", "close_socket") and fault.at is not None:
            args.setdefault("connection_id", fault.connection)

        def action() -> None:
            method(**args)
    if fault.at is None:
        action()
    else:
        faults.at_frame(fault.at, action, connection=fault.connection)


def _conn_log(conn: Any) -> dict[str, Any]:
    return {"id": conn.id, "close_code": conn.close_code, "text_sent": conn.text_sent,
            "pings_received": conn.pings_received, "pongs_received": conn.pongs_received,
            "sent": [(f.kind, f.data) for f in conn.sent], "received": list(conn.received)}


async def run_case_async(case: Case, client: str, *, depth: int = 10) -> Observed:
    from harness.loopback.recorded.session import index_events
    from harness.loopback.recorded.source import END_REASON, RecordingSource
    from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET, BackpackServer

    impl = adapter(client)
    obs = Observed(case, client)
    sl = slice_of(case.recording, case.frames, case.transforms)
    session = index_events(Path(f"{case.recording}-{case.frames}"), sl.header, sl.events)
    source = RecordingSource(session, speed=case.server.get("speed", DEFAULT_SPEED), linger=0.2, resume=True)
    server_opts = {"compress": case.server.get("compress", True),
                   "ping_interval": case.server.get("ping_interval", DEFAULT_PING_S),
                   "pong_timeout": case.server.get("pong_timeout", DEFAULT_PONG_TIMEOUT_S)}
    t0 = time.monotonic()

    def now() -> float:
        return round(time.monotonic() - t0, 3)

    async with BackpackServer(source=source, rate=0, **server_opts) as server:
        for fault in case.faults:
            _arm(server, case, fault)
        obs.armed = sum(1 for f in case.faults if f.at is not None)
        private = "private" in case.needs
        target = Target(server.rest_url, server.ws_url, case.symbols,
                        tuple(c for c in case.channels if c in impl.capabilities), depth=depth,
                        depth_speed="200ms" if "aggregated_depth" in case.transforms else None,
                        api_key=TEST_ACCOUNT_API_KEY if private else None,
                        secret=TEST_ACCOUNT_SECRET if private else None)
        stop = asyncio.Event()

        async def emit(rec: dict[str, Any]) -> None:
            conns = server.connections
            last = max(conns) if conns else 0
            obs.records.append(rec)
            obs.positions.append((last, conns[last].text_sent if last else 0,
                                  bool(last) and conns[last].close_code is not None))
            if case.slow_consumer:
                await asyncio.sleep(0.002)

        task = asyncio.ensure_future(impl.run(target, emit, stop))
        seen_rest = 0
        settle: Settle | None = None
        deadline = t0 + case.timeout_s
        while True:
            await asyncio.sleep(0.01)
            log = list(server.rest_log)
            for method, path, status in log[seen_rest:]:
                obs.rest.append((now(), method, path, status))
            seen_rest = len(log)
            for cid, conn in server.connections.items():
                obs.opened.setdefault(cid, now())
                if cid not in obs.subscribed and any('"SUBSCRIBE"' in t for t in conn.received):
                    obs.subscribed[cid] = now()
                if not conn.open and cid not in obs.closed:
                    obs.closed[cid] = now()
            fired = server.faults.count("at_frame") >= obs.armed
            ended = any(any(f.kind == "close" and END_REASON in f.data for f in c.sent)
                        for c in server.connections.values())
            if task.done():
                break
            if fired and ended:
                if settle is None:
                    settle = Settle(time.monotonic())
                if settle.over(len(obs.records), time.monotonic()):
                    obs.ended = True
                    break
            if time.monotonic() >= deadline:
                obs.timed_out = True
                break
        stop.set()
        try:
            async with asyncio.timeout(STOP_S):
                await asyncio.wait({task})
        except TimeoutError:
            task.cancel()
            await asyncio.wait({task})
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            obs.crash = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        elif task.done() and not task.cancelled() and not obs.ended and not obs.timed_out:
            obs.crash = "the client returned before the case was over"
        obs.fired = [{"kind": f.kind, **{k: v for k, v in f.detail.items()}} for f in server.faults.fired]
        obs.fired_at_frame = server.faults.count("at_frame")
        obs.connections = [_conn_log(server.connections[k]) for k in sorted(server.connections)]
    output = getattr(impl, "output", None)
    if output is not None:
        obs.client_output = output.getvalue()[-4000:]
    obs.seconds = now()
    return obs


def run_case(case: Case, client: str, *, depth: int = 10) -> dict[str, Any]:
    """Run and judge one case x client in a fresh event loop; the result is plain data (results.json)."""
    from harness.conformance.judge import judge, unavailable

    early = unavailable(case, client)
    if early is not None:
        return early
    obs = asyncio.run(run_case_async(case, client, depth=depth))
    return judge(obs, reference_of(case.recording, case.frames, case.transforms), depth=depth)


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1, default=str)


__all__ = ["Observed", "reference_of", "run_case", "run_case_async"]
