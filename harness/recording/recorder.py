"""Record a live session: the real ``BackpackFeed`` on a ``RecordingTransport`` around the live transport.

This is the one record path: ``backpack-harness record``, the pytest plugin's record modes and the
fixture-library builder all call :func:`record_session`, so every bundled recording was made exactly
the way a user makes one. While recording, the feed's own outputs are normalized (schema v1) as they
happen, so a replay of the file can be checked against what the live feed delivered.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backpack.config import BackpackConfig
from backpack.protocol.normalized import DEFAULT_DEPTH, Normalizer

from .format import Header
from .redaction import config_secrets
from .writer import RecordingWriter

# ``{cryptofeed channel: [normalized symbols]}``: what the header's ``meta.subscription`` holds, so a replay
# rebuilds exactly this subscription (channels may take different symbols, e.g. RFQ markets).
Subscription = Mapping[str, Sequence[str]]


@dataclass
class Progress:
    """What a progress display needs; updated in place while recording."""

    frames: int = 0
    bytes: int = 0
    events: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started


@dataclass
class RecordResult:
    path: Path
    events: int
    frames: int
    normalized: list[str]
    seconds: float
    failure: BaseException | None  # the recorder could not write (the file is a clean prefix)


def subscription_of(symbols: Sequence[str], channels: Sequence[str]) -> dict[str, list[str]]:
    """Every channel for every symbol, as ``add_feed(symbols=..., channels=...)`` subscribes."""
    return {channel: list(symbols) for channel in channels}


def header_for(rest_url: str, ws_url: str, subscription: Subscription, meta: Mapping[str, Any] | None) -> Header:
    symbols = sorted({s for syms in subscription.values() for s in syms})
    return Header.new(rest_url=rest_url, ws_url=ws_url, symbols=tuple(symbols), channels=tuple(subscription),
                      meta={"subscription": {c: list(s) for c, s in subscription.items()}, **(meta or {})})


async def record_session(
    out: Path,
    config: BackpackConfig,
    subscription: Subscription,
    *,
    duration_s: float | None = None,
    max_frames: int | None = None,
    stop: asyncio.Event | None = None,
    depth: int | None = DEFAULT_DEPTH,
    meta: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    on_output: Callable[[Any], None] | None = None,
    candle_interval: str = "1m",
    block_events: int | None = None,
) -> RecordResult:
    """Run the feed live until ``duration_s`` (wall seconds), ``max_frames`` WS frames, or ``stop``.

    ``on_output`` sees every Router output as the feed does (tests use it to drive a server from inside
    the recording); it runs synchronously, before the next frame is handled.
    """
    from backpack.feed import BackpackFeed
    from backpack.live import LiveTransport
    from harness.transports.recording import RecordingTransport

    if duration_s is None and max_frames is None and stop is None:
        raise ValueError("give a duration, a frame count or a stop event: a recording must end")
    progress = progress if progress is not None else Progress()
    # The feed's random source (backoff jitter) is seeded and the seed recorded, so a replay waits the same
    # virtual durations the live feed waited and its retries fall where they fell.
    rng_seed = secrets.randbits(63)
    header = header_for(config.rest_url, config.ws_url, subscription, {"rng_seed": rng_seed, **(meta or {})})
    kwargs: dict[str, Any] = {} if block_events is None else {"block_events": block_events}
    writer = RecordingWriter(out, header, secrets=config_secrets(config), **kwargs)
    live = LiveTransport(rest_proxy=config.rest_proxy, ws_proxy=config.ws_proxy,
                         watchdog_seconds=config.ws_watchdog_seconds)
    transport = RecordingTransport(live, writer)
    stop = stop if stop is not None else asyncio.Event()
    normalized: list[str] = []
    feed: Any = None

    def collect(output: Any) -> None:
        normalized.extend(normalizer.lines([output]))
        if on_output is not None:
            on_output(output)

    try:
        feed = BackpackFeed(subscription=dict(subscription), transport=transport, protocol_callback=collect,
                            backpack_config=config, candle_interval=candle_interval, rng=random.Random(rng_seed),
                            config={"log": {"disabled": True}})
    except Exception:  # a subscription the feed refuses: leave no header-only file behind
        writer.close()
        out.unlink(missing_ok=True)
        await live.close()
        raise
    normalizer = Normalizer(feed.router.books, depth=depth)
    on_frame = feed._on_frame

    async def counted(frame: Any) -> None:  # progress: frames and bytes as they reach the feed
        progress.frames += 1
        progress.bytes += len(frame.data)
        progress.events = writer.events
        await on_frame(frame)
        if max_frames is not None and progress.frames >= max_frames:
            stop.set()

    feed._on_frame = counted  # type: ignore[method-assign]
    timer = asyncio.get_running_loop().call_later(duration_s, stop.set) if duration_s is not None else None
    started = time.monotonic()
    try:
        await feed.run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        await transport.close()
        await live.close()
        if not writer.closed:
            writer.close()
    return RecordResult(out, writer.events, progress.frames, normalized, time.monotonic() - started,
                        transport.failure)
