"""Replay a recording through the real ``BackpackFeed`` and collect the schema-v1 normalized stream.

The one driver behind ``backpack-harness replay`` and the tests: it builds the feed the header
describes (symbols and channels as cryptofeed spells them; a throwaway key pair when private channels
are in it, since the recorded signatures are redacted and the replay compares redacted frames), runs it
under its own lifecycle on a ``ReplayTransport`` (``feed.run(stop)`` on cryptofeed 3.x,
``_supervised(stop)`` + ``_close_resources()`` on 2.4.1: no FeedHandler), and turns every Router output
into canonical lines with ``backpack.protocol.normalized.Normalizer`` as it happens, so ``book`` lines
show the book as that output left it.

``start`` / ``stop`` (seconds from the recording's start) select what is printed and where the input
ends: lines are kept while the timeline is at or past ``start``; the input ends before the first event
at or after ``stop`` (the feed still sees everything before ``start``, so books are built as recorded).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from backpack import compat
from backpack.feed import BackpackFeed
from backpack.protocol.normalized import DEFAULT_DEPTH, Normalizer
from backpack.protocol.subscriptions import CHANNELS
from backpack.protocol.wire import CANDLE_INTERVALS, DEPTH_SPEEDS
from harness.recording.format import Header, HttpRequestEvent, WsOpen, WsSend
from harness.recording.reader import Recording, RecordingDamaged
from harness.transports.replay import ReplayStats, ReplayTransport
from harness.transports.replay_timeline import ReplayTimeline

LOG = logging.getLogger("harness.replay")

PRIVATE_CHANNELS = frozenset(compat.PRIVATE_CHANNELS)
REPLAY_SEED = 0
"""The feed's random source (backoff jitter) is seeded, so two replays of one recording are identical: with
the seed the recorder used (header ``meta.rng_seed``) when it is known, so the replayed feed waits the
durations the live one waited, else with this one."""


class ReplaySetupError(ValueError):
    """The recording does not say enough to build a feed (no symbols, unknown channel); one line."""


@dataclass(slots=True)
class ReplayResult:
    lines: int = 0  # normalized lines handed to the sink
    outputs: int = 0  # Router outputs seen (lines or not)
    damage: RecordingDamaged | None = None  # the input ended early at this damage
    stats: ReplayStats = field(default_factory=ReplayStats)
    cassette: Any = None  # the vcrpy Cassette the REST exchanges were played from (new episodes too)


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """What the feed is built from: derived from the header, refined by the recorded SUBSCRIBE frames."""

    subscription: dict[str, list[str]]
    rest_url: str | None
    ws_url: str | None
    candle_interval: str
    depth_speed: str | None
    private: bool
    rng_seed: int = REPLAY_SEED


def feed_spec(header: Header, events: Sequence[Any]) -> FeedSpec:
    symbols = list(header.symbols)
    channels = list(header.channels)
    if not symbols or not channels:
        raise ReplaySetupError("the recording's header names no symbols or no channels, so no feed can be "
                               "built to replay it (give the header 'symbols' and 'channels')")
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        raise ReplaySetupError(f"the recording's header has channels this feed does not know: {', '.join(unknown)} "
                               f"(known: {', '.join(CHANNELS)})")
    recorded = header.meta.get("subscription") if isinstance(header.meta, dict) else None
    if _is_subscription(recorded, channels):
        # written by the record path: exactly what the live feed subscribed (channels may differ in symbols)
        subscription = {c: list(recorded[c]) for c in channels}
    else:
        rfq = [s for s in symbols if s.endswith("-RFQ")]
        other = [s for s in symbols if not s.endswith("-RFQ")]
        subscription = {c: list((rfq if c == compat.RFQ else other) or symbols) for c in channels}
    interval, speed = "1m", None
    rest_url, ws_url = header.rest_url, header.ws_url
    for event in events:
        if isinstance(event, WsSend) and isinstance(event.data, str) and '"params"' in event.data:
            interval, speed = _stream_options(event.data, interval, speed)
        elif ws_url is None and isinstance(event, WsOpen):
            ws_url = event.url
        elif rest_url is None and isinstance(event, HttpRequestEvent):
            parts = urlsplit(event.url)
            rest_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    seed = header.meta.get("rng_seed") if isinstance(header.meta, dict) else None
    return FeedSpec(subscription, rest_url, ws_url, interval, speed, bool(PRIVATE_CHANNELS & set(channels)),
                    seed if type(seed) is int else REPLAY_SEED)


def _is_subscription(value: Any, channels: Sequence[str]) -> bool:
    return (isinstance(value, dict) and set(value) == set(channels)
            and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()))


def _stream_options(text: str, interval: str, speed: str | None) -> tuple[str, str | None]:
    """The candle interval and depth window the recorded feed subscribed with (the header has neither)."""
    try:
        params = json.loads(text).get("params") or []
    except (ValueError, AttributeError, RecursionError):
        return interval, speed
    for stream in params if isinstance(params, list) else ():
        if not isinstance(stream, str):
            continue
        parts = stream.split(".")
        if parts[0] == "kline" and len(parts) >= 3 and parts[1] in CANDLE_INTERVALS:
            interval = parts[1]
        elif parts[0] == "depth" and len(parts) >= 3 and parts[1] in DEPTH_SPEEDS:
            speed = parts[1]
    return interval, speed


def throwaway_keys() -> tuple[str, str]:
    """A fresh ED25519 pair (seed, verifying key), base64: signs the private SUBSCRIBE, then is dropped."""
    from nacl.signing import SigningKey

    key = SigningKey.generate()
    return base64.b64encode(bytes(key)).decode(), base64.b64encode(bytes(key.verify_key)).decode()


def build_feed(spec: FeedSpec, transport: ReplayTransport, on_output: Callable[[Any], None],
               keys: tuple[str, str] | None) -> BackpackFeed:
    section: dict[str, Any] = {}
    if spec.rest_url:
        section["rest_url"] = spec.rest_url
    if spec.ws_url:
        section["ws_url"] = spec.ws_url
    if spec.depth_speed:
        section["depth_speed"] = spec.depth_speed
    if keys is not None:
        section["private_key"], section["api_key"] = keys
    return BackpackFeed(
        transport=transport, protocol_callback=on_output, subscription=spec.subscription,
        candle_interval=spec.candle_interval, backpack_config=section, rng=random.Random(spec.rng_seed),
        config={"log": {"disabled": True}},
    )


async def run_feed(feed: BackpackFeed, stop: asyncio.Event) -> None:
    """Run a feed under its own lifecycle until ``stop`` (no FeedHandler), on either cryptofeed line."""
    if compat.CRYPTOFEED_MAJOR >= 3:
        await feed.run(stop)
        return
    try:
        await feed._supervised(stop)
    finally:
        await feed._close_resources()


def stop_ns(seconds: float | None) -> int | None:
    """``start`` / ``stop`` (seconds) as a ``t`` (ns): ``stop_ns(stop)`` is the ``until_t`` the input ends at."""
    return None if seconds is None else max(0, round(seconds * 1_000_000_000))


async def replay_stream(
    recording: str | os.PathLike[str] | Recording | ReplayTimeline,
    sink: Callable[[str], None],
    *,
    depth: int | None = DEFAULT_DEPTH,
    start: float | None = None,
    stop: float | None = None,
    mode: str = "none",
    speed: float | None = None,
    inner: Any = None,
    progress: Callable[[ReplayTransport], None] | None = None,
    provenance: Callable[[str, int | None], None] | None = None,
) -> ReplayResult:
    """Replay, handing each normalized line to ``sink`` as the feed produces it.

    A path is streamed (indexed in one pass, its frames read again as they play: memory does not grow with
    the file); a ``ReplayTimeline`` must have been scanned with ``stop`` as its ``until_t``.

    ``provenance(line, index)``, when given, is called with each line before ``sink`` and the index (in
    the recording's events) of the event the feed was reacting to when it produced the line: the frame,
    REST answer or close handed over last (None before the first one).

    Raises ``RecordingError`` (unreadable file or header), ``ReplaySetupError`` and, after the sink got
    every line before it, the replay's conformance failure (``ReplayError``). Damage after the header is
    not raised: everything before it is replayed and ``result.damage`` says where the input ended.
    """
    until_t = stop_ns(stop)
    if isinstance(recording, ReplayTimeline):
        timeline = recording
    elif isinstance(recording, Recording):
        timeline = ReplayTimeline.of(recording, until_t)
    else:  # streamed: the index holds every event but the frames, which are read again as they play
        timeline = ReplayTimeline.scan(recording, until_t)
    try:
        spec = feed_spec(timeline.header, timeline.index.structure)
        keys = throwaway_keys() if spec.private else None
        transport = ReplayTransport(timeline, mode=mode, pacing=speed, inner=inner, secrets=keys or (),
                                    until_t=until_t, progress=progress)
    except BaseException:
        timeline.close()
        raise
    start_t = stop_ns(start)
    result = ReplayResult(damage=timeline.damage, stats=transport.stats, cassette=transport.cassette)
    normalizer: Normalizer | None = None

    def on_output(output: Any) -> None:
        result.outputs += 1
        if normalizer is None:
            return
        lines = normalizer.lines((output,))
        if start_t is not None and transport.position_t < start_t:
            return
        for line in lines:
            result.lines += 1
            if provenance is not None:
                provenance(line, transport.current_event)
            sink(line)

    feed = build_feed(spec, transport, on_output, keys)
    normalizer = Normalizer.for_router(feed.router, depth=depth)
    stopper = asyncio.Event()
    task = asyncio.ensure_future(run_feed(feed, stopper))
    try:
        await transport.play(stopper, task)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        await transport.close()
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return result


def replay_normalized(
    path: str | os.PathLike[str] | Recording,
    depth: int | None = DEFAULT_DEPTH,
    start: float | None = None,
    stop: float | None = None,
    **options: Any,
) -> list[str]:
    """Every normalized line of a replay, in order. A damaged recording raises its ``RecordingDamaged``
    once the intact part has been replayed (use ``replay_stream`` to keep that part)."""
    lines: list[str] = []
    result = asyncio.run(replay_stream(path, lines.append, depth=depth, start=start, stop=stop, **options))
    if result.damage is not None:
        raise result.damage
    return lines


__all__ = [
    "FeedSpec", "ReplayResult", "ReplaySetupError", "build_feed", "feed_spec", "replay_normalized",
    "replay_stream", "run_feed", "stop_ns", "throwaway_keys",
]
