"""Replay and recording figures: what the harness costs on top of the feed, and how it scales.

One scripted transport (``ScriptTransport``) serves the same frames to the real ``BackpackFeed`` run loop
three ways, so the differences are the harness and nothing else:

* **direct**: the feed on the scripted transport (its own run loop, REST and WebSocket as live);
* **recorded**: the same, wrapped in ``RecordingTransport`` writing a zstd recording (the record path);
* **replayed**: that recording through ``harness.replay.replay_stream`` (``ReplayTransport``, virtual time,
  REST from the cassette), normalized lines discarded.

Both feed runs normalize every output (schema v1) as replay does, so ``harness_overhead`` compares like
with like. Raw replay is ``read_events`` alone (decompress + parse, no feed). Peak RSS of a 1M-frame
replay runs in a child process (``ru_maxrss`` is per process), on a recording made the same way.
All timings are this process's CPU time, best of the repeats, the variants interleaved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from .contenders import _CCXT_MARKET
from .frames import BP_SYMBOL, SNAPSHOT_ID, START_US, Dataset

REST_URL = "http://127.0.0.1:9"  # never dialled: the scripted transport answers
WS_URL = "ws://127.0.0.1:9/ws"
SUBSCRIPTION = {"l2_book": ["SOL-USDC"], "trades": ["SOL-USDC"]}
BUNDLED_PUBLIC = Path(__file__).resolve().parent.parent / "recordings" / "public.jsonl.zst"


def session_frames(data: Dataset, n: int, seed: int = 5) -> Iterator[str]:
    """``n`` frames as a depth-heavy session arrives: three depth deltas (one level each, a size change of a
    level in the snapshot, so the book stays valid however long the stream) to one trade. Streamed, so a
    1M-frame recording never sits in memory."""
    rng = random.Random(seed)
    bids = [p for p, _ in data.snapshot_bids]
    asks = [p for p, _ in data.snapshot_asks]
    seq, tid, now = SNAPSHOT_ID, 10**9, START_US
    yield data.bp_primer
    for i in range(n - 1):
        now += 700
        size = f"{rng.randint(1, 99_999)}.{rng.randint(0, 99):02d}"
        if i % 4 == 3:
            tid += 1
            yield (f'{{"stream":"trade.{BP_SYMBOL}","data":{{"e":"trade","E":{now},"s":"{BP_SYMBOL}",'
                   f'"p":"{rng.choice(asks)}","q":"{size}","b":"11{tid}","a":"12{tid}","t":{tid},'
                   f'"T":{now - 300},"m":{"true" if i & 8 else "false"}}}}}')
            continue
        seq += 1
        side, prices = ("b", bids) if i & 1 else ("a", asks)
        other = "a" if side == "b" else "b"
        yield (f'{{"stream":"depth.{BP_SYMBOL}","data":{{"e":"depth","E":{now},"s":"{BP_SYMBOL}",'
               f'"{side}":[["{rng.choice(prices)}","{size}"]],"{other}":[],"U":{seq},"u":{seq},'
               f'"T":{now - 300}}}}}')


# --- a scripted transport ----------------------------------------------------------------------------


class _Session:
    def __init__(self, owner: ScriptTransport, url: str) -> None:
        self.id = "ws-1"
        self.url = url
        self._owner = owner
        self._closed = asyncio.Event()

    async def send(self, text: str) -> None:
        pass

    async def recv(self) -> Any:
        from backpack.transport import WsClosed, WsFrame

        owner = self._owner
        if owner.delivered == 1 and not owner.snapshot_served.is_set():
            await owner.snapshot_served.wait()  # a live snapshot answers while frames queue up
        text = next(owner.frames, None)
        if text is None:
            owner.exhausted.set()
            await self._closed.wait()
            raise WsClosed(1000, "closed")
        owner.delivered += 1
        if not owner.delivered & 63:
            await asyncio.sleep(0)  # a socket read suspends now and then: the feed's other tasks run
        return WsFrame(text, owner.clock.now_us())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._closed.set()

    @property
    def pings_received(self) -> int:
        return 0

    @property
    def last_activity(self) -> int:
        return self._owner.clock.now_us()

    def observe_control(self, listener: Any) -> None:
        pass


class ScriptTransport:
    """Serves ``frames`` on one connection, /markets with SOL_USDC and /depth with ``snapshot``."""

    def __init__(self, frames: Iterable[str], snapshot: str) -> None:
        from backpack.clock import WallClock

        self.frames = iter(frames)
        self.snapshot = snapshot.encode()
        self.markets = orjson.dumps([_CCXT_MARKET])
        self.delivered = 0
        self.snapshot_served = asyncio.Event()
        self.exhausted = asyncio.Event()
        self._clock = WallClock()

    @property
    def clock(self) -> Any:
        return self._clock

    async def request(self, request: Any, *, timeout: float = 10.0) -> Any:
        from backpack.transport import HttpResponse

        body = self.markets if request.url.endswith("/markets") else self.snapshot
        response = HttpResponse(200, {"content-type": "application/json"}, body, self._clock.now_us())
        if not request.url.endswith("/markets"):
            self.snapshot_served.set()
        return response

    async def connect(self, url: str, *, timeout: float | None = 10.0) -> _Session:
        return _Session(self, url)

    async def close(self) -> None:
        pass


# --- the three runs ---------------------------------------------------------------------------------


def _header() -> Any:
    from harness.recording.recorder import header_for

    return header_for(REST_URL, WS_URL, SUBSCRIPTION, {"rng_seed": 7, "bench": True})


async def feed_run(frames: Iterable[str], data: Dataset, out: Path | None = None) -> tuple[float, int]:
    """(CPU seconds, normalized lines) of the feed's run loop over ``frames``; recorded to ``out`` if given."""
    from backpack.protocol.normalized import Normalizer
    from harness.recording.writer import RecordingWriter
    from harness.replay import build_feed, feed_spec, run_feed
    from harness.transports.recording import RecordingTransport

    script = ScriptTransport(frames, data.snapshot_body)
    transport: Any = script
    writer = None
    if out is not None:
        writer = RecordingWriter(out, _header())
        transport = RecordingTransport(script, writer)
    lines = 0
    normalizer: Any = None

    def on_output(output: Any) -> None:
        nonlocal lines
        lines += len(normalizer.lines((output,)))

    feed = build_feed(feed_spec(_header(), []), transport, on_output, None)
    normalizer = Normalizer.for_router(feed.router)
    stop = asyncio.Event()
    gc.collect()
    c0 = time.process_time()
    task = asyncio.ensure_future(run_feed(feed, stop))
    await script.exhausted.wait()
    stop.set()
    await task
    if writer is not None:
        await transport.close()
        writer.close()
    return time.process_time() - c0, lines


def replay_run(path: Path) -> tuple[float, int, int]:
    """(CPU seconds, events replayed, normalized lines) of ``replay_stream`` over ``path``."""
    from harness.recording.reader import read_recording
    from harness.replay import replay_stream

    rec = read_recording(path)  # read outside the timing: raw_fps measures reading
    lines = 0

    def sink(_line: str) -> None:
        nonlocal lines
        lines += 1

    gc.collect()
    c0 = time.process_time()
    result = asyncio.run(replay_stream(rec, sink))
    return time.process_time() - c0, result.stats.events, lines


def raw_read(path: Path) -> tuple[float, int]:
    """(CPU seconds, events) of streaming every event of a recording: decompress + parse, no feed."""
    from harness.recording.reader import read_events

    gc.collect()
    c0 = time.process_time()
    n = 0
    for _ in read_events(path):
        n += 1
    return time.process_time() - c0, n


def compression_ratio(path: Path) -> float:
    """Decompressed JSON Lines bytes over file bytes."""
    import zstandard

    raw = 0
    with path.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True) as r:
        while chunk := r.read(1 << 20):
            raw += len(chunk)
    return raw / path.stat().st_size


_CHILD = """
import asyncio, json, sys
sys.path.insert(0, {root!r})
from harness.replay import replay_stream
n = 0
def sink(line):
    global n
    n += 1
result = asyncio.run(replay_stream({path!r}, sink))
# VmHWM, not ru_maxrss: after fork + exec ru_maxrss still holds the parent's (the forked copy's) peak
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"events": result.stats.events, "frames": result.stats.frames, "lines": n,
                  "peak_rss_mb": hwm / 1024}}))
"""


def replay_peak_rss(path: Path) -> dict[str, Any]:
    """Peak RSS (MB) of a fresh interpreter replaying ``path`` from the file (as ``backpack-harness replay``)."""
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", _CHILD.format(root=root, path=str(path))],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def big_recording(data: Dataset, frames: int, out: Path, prologue_frames: int = 500) -> None:
    """A ``frames``-frame recording, written as the recorder would have written it, without running the feed
    for every frame: a real recorded run of the first ``prologue_frames`` (connect, subscribe, /markets,
    the snapshot) continued with the rest of the same frame stream, streamed to the writer."""
    from harness.recording.format import WsRecv
    from harness.recording.reader import read_recording
    from harness.recording.writer import RecordingWriter

    small = out.with_name(out.name + ".prologue.jsonl.zst")
    asyncio.run(feed_run(session_frames(data, prologue_frames), data, small))
    rec = read_recording(small)
    last = max(i for i, e in enumerate(rec.events) if isinstance(e, WsRecv))
    head, tail = rec.events[: last + 1], rec.events[last + 1:]
    conn, t, receipt = head[last].conn, head[last].t, head[last].receipt
    stream = session_frames(data, frames)
    with RecordingWriter(out, rec.header) as writer:
        for event in head:
            writer.write(event)
        for i, text in enumerate(stream):
            if i < prologue_frames:
                continue  # already in the prologue, identical (the stream is deterministic)
            t += 20_000
            receipt += 20
            writer.write(WsRecv(t, conn, text, receipt))
        for event in tail:
            if not hasattr(event, "t") or event.kind == "end":
                continue  # the writer ends the file itself
            t += 20_000
            writer.write(dataclasses.replace(event, t=t))
    small.unlink()


def measure(data: Dataset, frames: int, repeats: int, memory_frames: int) -> dict[str, Any]:
    """Every replay/recording figure; see the module docstring."""
    listed = list(session_frames(data, frames))
    with tempfile.TemporaryDirectory(prefix="bench-rec-") as tmp:
        rec = Path(tmp) / "session.jsonl.zst"
        direct = recorded = replayed = raw = float("inf")
        events = raw_events = 0
        direct_lines = replay_lines = 0
        for _ in range(repeats):  # interleaved: a noisy moment hits one round of all three
            d, direct_lines = asyncio.run(feed_run(listed, data))
            r, _ = asyncio.run(feed_run(listed, data, rec))
            p, events, replay_lines = replay_run(rec)
            w, raw_events = raw_read(rec)
            direct, recorded, replayed, raw = min(direct, d), min(recorded, r), min(replayed, p), min(raw, w)
        session_ratio = compression_ratio(rec)
        bundled_raw_s, bundled_events = raw_read(BUNDLED_PUBLIC)
        out: dict[str, Any] = {
            "frames": frames,
            "replay": {
                "raw_fps": raw_events / raw,
                "raw_fps_bundled_public": bundled_events / bundled_raw_s,
                "feed_fps": events / replayed,
                "direct_feed_fps": frames / direct,
                "harness_overhead": replayed / direct - 1,
                "events": events, "normalized_lines": replay_lines, "direct_normalized_lines": direct_lines,
            },
            "recording": {
                "compression_ratio": compression_ratio(BUNDLED_PUBLIC),
                "compression_ratio_bench_session": session_ratio,
                "overhead": recorded / direct - 1,
                "recorded_feed_fps": frames / recorded,
            },
        }  # fmt: skip
        if memory_frames:
            big = Path(tmp) / "big.jsonl.zst"
            big_recording(data, memory_frames, big)
            child = replay_peak_rss(big)
            out["memory"] = {"peak_rss_mb_1m_frames": child["peak_rss_mb"], "replay_frames": child["frames"],
                             "recording_mb": big.stat().st_size / 2**20}
            os.unlink(big)
        return out
