"""Socket-level scenarios: the real feed on real sockets, the loopback server playing a recording.

Some faults only exist below the transport seam: a socket closed with or without a Close frame, a
server that stops writing, pongs that never come, a consumer slower than the stream, WebSocket frames
cut across TCP segments. Here the unchanged ``BackpackFeed`` runs on a ``LiveTransport`` against the
loopback server (``harness.loopback``) driven by the first ``frames`` frames of a recording
(``RecordingSource``: every connection is played the recording from its start, depth snapshots rebuilt
from it), and the fault is armed on the server at a frame position (``SOCKET_FAULTS``).

What is checked is what a socket lets the harness see: every book against the reference (a), each
trade once and every trade of the recording emitted by the end (c), no exception escaping (d), and on
the server's side of every connection the same streams as on the first and a fresh signature (e).
Which frames reached the client is not observable here, so (b) is left to the two replay levels.
The run ends once the server has played the whole recording to a connection after the fault fired.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.recording.format import WsRecv
from harness.recording.reader import ReadStats, Recording
from harness.scenarios.invariants import Checker
from harness.scenarios.oracle import Reference
from harness.scenarios.program import Faulted, Program, apply
from harness.scenarios.runner import Run, checked_lines

SOCKET_FAULTS = ("close", "abrupt_close", "stall", "no_pong", "slow_consumer", "split")
WATCHDOG_S = 1.0  # the feed's watchdog under ``stall``: a stall longer than this must trip it
PING_INTERVAL_S = 0.3  # the client's keepalive under ``no_pong``: an unanswered ping is noticed this long after
PING_TIMEOUT_S = 0.3
RELAXED_S = 20.0
"""Every timer a fault does not test: only a dead link trips it, never a loaded machine holding a frame or a
pong back for a second (a split frame is hundreds of TCP writes)."""


def _timers(kind: str) -> tuple[float, float, float]:
    """(watchdog, ping interval, ping timeout) of the feed under fault ``kind``."""
    if kind == "stall":
        return WATCHDOG_S, RELAXED_S, RELAXED_S
    if kind == "no_pong":
        return RELAXED_S, PING_INTERVAL_S, PING_TIMEOUT_S
    return RELAXED_S, RELAXED_S, RELAXED_S


class SocketScenarioError(AssertionError):
    """The scenario did not happen as planned (the fault never fired, the run never ended)."""


@dataclass(frozen=True, slots=True)
class SocketFault:
    kind: str  # one of SOCKET_FAULTS
    at: int = 100  # text frames into the first connection
    seconds: float = 2.0  # stall length
    chunk: int = 7  # split: bytes per TCP write


def prefix(recording: Recording, frames: int) -> Recording:
    """The recording up to (and with) its ``frames``-th received frame."""
    out = []
    seen = 0
    for event in recording.events:
        out.append(event)
        if isinstance(event, WsRecv):
            seen += 1
            if seen >= frames:
                break
    return Recording(recording.header, out, None, ReadStats())


def _arm(server: Any, fault: SocketFault) -> str:
    """Arm the fault; returns the ``Faults.fired`` kind that proves it happened."""
    faults = server.faults
    if fault.kind == "close":
        faults.close_after(fault.at, 1001, "Going away")
        return "close_after"
    if fault.kind == "abrupt_close":
        faults.close_after(fault.at, abrupt=True)
        return "close_after"
    if fault.kind == "stall":
        faults.stall_after(fault.at, fault.seconds)
        return "stall"
    if fault.kind == "no_pong":
        faults.stop_pongs(count=1)
        return "no_pong"
    if fault.kind == "split":
        faults.split_frames(fault.chunk)
        return "split"
    if fault.kind == "slow_consumer":
        return ""
    raise ValueError(f"unknown socket fault {fault.kind!r}; known: {', '.join(SOCKET_FAULTS)}")


def _subscriptions(conn: Any) -> tuple[set[str], list[int]]:
    streams: set[str] = set()
    stamps: list[int] = []
    for text in conn.received:
        try:
            msg = json.loads(text)
        except ValueError:
            continue
        if not isinstance(msg, dict) or msg.get("method") != "SUBSCRIBE":
            continue
        streams.update(s for s in msg.get("params") or () if isinstance(s, str))
        signature = msg.get("signature")
        if isinstance(signature, list) and len(signature) == 4 and str(signature[2]).isdigit():
            stamps.append(int(signature[2]))
    return streams, stamps


PACED = {"no_pong": 0.1}
"""Recorded time x speed for faults that depend on wall time (a keepalive ping must fall inside the
recording); the others are placed by frame position and played as fast as the feed reads."""


async def run_socket_async(recording: Recording, fault: SocketFault, *, frames: int = 400,
                           timeout_s: float = 30.0, depth: int | None = 10) -> Run:
    """One socket-level scenario (see the module docstring); raises the first broken invariant."""
    from backpack.feed import BackpackFeed
    from backpack.live import LiveTransport
    from backpack.protocol.normalized import Normalizer
    from harness.loopback.recorded.session import index_events
    from harness.loopback.recorded.source import END_REASON, RecordingSource
    from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET
    from harness.pytest_plugin import running_server
    from harness.replay import feed_spec, run_feed

    clean = prefix(recording, frames)
    reference = Reference.of(clean, name="socket scenario")
    faulted: Faulted = apply(Program(), reference)
    checker = Checker(faulted, depth=depth, observed=False)
    run = Run("socket", "native feed", checker=checker)
    spec = feed_spec(clean.header, clean.events)
    session = index_events(Path("socket-scenario"), clean.header, clean.events)
    source = RecordingSource(session, speed=PACED.get(fault.kind), linger=0.1)
    slow = fault.kind == "slow_consumer"
    feed: Any = None
    normalizer: Normalizer | None = None

    async def on_output(output: Any) -> None:
        if normalizer is None:
            return
        run.lines.extend(checked_lines(normalizer, output, feed, checker))
        if slow:
            await asyncio.sleep(0.002)  # a consumer slower than the stream: the socket must hold the rest

    # server pings keep the feed's short watchdog quiet through the recording's own pauses (a stall stops them too)
    async with running_server(source=source, rate=0, ping_interval=0.2, pong_timeout=5.0) as server:
        proof = _arm(server, fault)
        watchdog, ping_interval, ping_timeout = _timers(fault.kind)
        section: dict[str, Any] = {"rest_url": server.rest_url, "ws_url": server.ws_url,
                                   "ws_watchdog_seconds": watchdog}
        if spec.depth_speed:
            section["depth_speed"] = spec.depth_speed
        if spec.private:
            section.update(api_key=TEST_ACCOUNT_API_KEY, private_key=TEST_ACCOUNT_SECRET)
        transport = LiveTransport(watchdog_seconds=watchdog, ws_ping_interval=ping_interval,
                                  ws_ping_timeout=ping_timeout)
        feed = BackpackFeed(transport=transport, protocol_callback=on_output, subscription=spec.subscription,
                            candle_interval=spec.candle_interval, backpack_config=section,
                            rng=random.Random(spec.rng_seed), config={"log": {"disabled": True}})
        normalizer = Normalizer.for_router(feed.router, depth=depth)
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_feed(feed, stop))

        def finished() -> bool:
            """The fault fired, a connection was then played the recording to its end, and the feed has read
            all of it: it has dialled again since (it read the Close, which comes after every frame)."""
            fired = not proof or server.faults.count(proof) > 0
            ended = [c.id for c in server.connections.values()
                     if any(f.kind == "close" and END_REASON in f.data for f in c.sent)]
            return fired and bool(ended) and max(server.connections) > min(ended)

        try:
            async with asyncio.timeout(timeout_s):
                while not finished():
                    if task.done():
                        break
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise SocketScenarioError(f"{fault.kind}: the server never played the whole recording after the fault "
                                      f"within {timeout_s:g} s (fired: {sorted({f.kind for f in server.faults.fired})})"
                                      ) from None
        finally:
            stop.set()
            try:
                async with asyncio.timeout(10):
                    await asyncio.wait({task})
            except TimeoutError:
                task.cancel()
            await transport.close()
        if proof and server.faults.count(proof) == 0:
            raise SocketScenarioError(f"{fault.kind}: the fault never fired")
        if task.done() and not task.cancelled() and task.exception() is not None:
            checker.exception("the feed's run", task.exception())  # type: ignore[arg-type]
        conns = [server.connections[k] for k in sorted(server.connections)]
        first, stamps = _subscriptions(conns[0])
        for conn in conns[1:]:
            streams, more = _subscriptions(conn)
            if streams and streams != first:
                checker.broken("e", f"connection {conn.id} subscribed to {sorted(streams ^ first)[:5]} unlike "
                                    "connection 1")
            if not streams and any(f.kind == "text" for f in conn.sent[:1]):
                checker.broken("e", f"connection {conn.id} got data but never subscribed")
            stamps += more
        if any(b <= a for a, b in zip(stamps, stamps[1:], strict=False)):
            checker.broken("e", f"private subscribes were not signed afresh: timestamps {stamps}")
        internal = (feed.metrics.get("internal_errors", 0) + feed.router.books.stats().get("internal_errors", 0)
                    + getattr(feed, "restarts", 0))
        checker.finish(internal_errors=internal)
        run.stats = dict(checker.counts)
        run.exchange = {"connections": len(conns), "closes": [c.close_code for c in conns],
                        "fired": sorted({f.kind for f in server.faults.fired}),
                        "frames_sent": [c.text_sent for c in conns]}
    checker.check()
    return run


def run_socket(recording: Recording, fault: SocketFault, **kwargs: Any) -> Run:
    return asyncio.run(run_socket_async(recording, fault, **kwargs))


__all__ = ["SOCKET_FAULTS", "SocketFault", "SocketScenarioError", "prefix", "run_socket", "run_socket_async"]
