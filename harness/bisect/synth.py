"""Recordings made straight from the loopback market generator, without a server or a live feed.

The bench and the bisect tests need recordings of 10k and 1M frames; recording them through the
loopback server would take minutes. This writes what the record path would have written for a feed
subscribed to ``channels`` of ``symbols``: the ``/markets`` exchange, one connection with the SUBSCRIBE
frame the feed sends, the generator's frames for the subscribed streams, and a depth snapshot answered
right after the first delta of each symbol (the generator's book at that moment, so it bridges). The
result replays through the real feed (``harness.replay``) and through the core (``harness.bisect.core``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

from backpack.protocol.subscriptions import streams_for, subscribe_frames
from backpack.protocol.symbols import normalize_symbol
from backpack.protocol.wire import FEED_MARKET_TYPES
from harness.loopback.market import DEFAULT_MARKETS, MarketConfig, MarketGenerator, encode_frame
from harness.recording.format import (
    Event,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    WsClose,
    WsOpen,
    WsRecv,
    WsSend,
)
from harness.recording.writer import RecordingWriter

REST = "http://127.0.0.1:9"
WS = "ws://127.0.0.1:9/"
START_US = 1_754_006_400_000_000
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
DEFAULT_SYMBOLS = ("SOL_USDC", "BTC_USDC_PERP")
DEFAULT_CHANNELS = ("trades", "l2_book")
_STREAM_PREFIX = {"trades": "trade", "l2_book": "depth", "ticker": "bookTicker"}


def synthetic_events(frames: int, *, seed: int = 1, symbols: Sequence[str] = DEFAULT_SYMBOLS,
                     channels: Sequence[str] = DEFAULT_CHANNELS) -> tuple[Header, Iterator[Event]]:
    """The header and a lazy event stream of a recording with exactly ``frames`` ``ws_recv`` frames."""
    unknown = [c for c in channels if c not in _STREAM_PREFIX]
    if unknown:
        raise ValueError(f"synthetic recordings carry {', '.join(_STREAM_PREFIX)} only, not {', '.join(unknown)}")
    markets = tuple(m for m in DEFAULT_MARKETS if m.symbol in symbols)
    if len(markets) != len(set(symbols)):
        raise ValueError(f"unknown symbols: {sorted(set(symbols) - {m.symbol for m in markets})}")
    subscription = {c: [normalize_symbol(s) for s in symbols] for c in channels}
    header = Header.new(rest_url=REST, ws_url=WS, symbols=tuple(sorted(subscription[channels[0]])),
                        channels=tuple(channels), start_us=START_US,
                        meta={"subscription": subscription, "synthetic": {"seed": seed, "frames": frames}})
    return header, _events(frames, MarketConfig(seed=seed, markets=markets), symbols, channels)


def _events(frames: int, config: MarketConfig, symbols: Sequence[str], channels: Sequence[str]) -> Iterator[Event]:
    market = MarketGenerator(config)
    native = {c: list(symbols) for c in channels}
    wanted = {f"{_STREAM_PREFIX[c]}.{s}" for c in channels for s in symbols}
    types = [("marketType", t) for t in FEED_MARKET_TYPES]
    listing = json.dumps([s.market_entry() for s in market.specs], separators=(",", ":")).encode()
    t = 1_000_000
    yield HttpRequestEvent(t, "http-1", "GET", f"{REST}/api/v1/markets", tuple(types), {})
    yield WsOpen(t + 1_000_000, "ws-1", WS)
    for text in subscribe_frames(streams_for(native, interval="1m")):
        yield WsSend(t + 2_000_000, "ws-1", text)
    yield HttpResponseEvent(t + 3_000_000, "http-1", 200, dict(JSON_HEADERS), listing, START_US + t // 1000 + 3000)
    t += 4_000_000
    sent = 0
    exchanges = 1
    synced: set[str] = set()
    while sent < frames:
        emissions = market.step()
        for em in emissions:
            if em.stream not in wanted or sent >= frames:
                continue
            t += 1_000
            sent += 1
            yield WsRecv(t, "ws-1", encode_frame(em.stream, em.data), START_US + t // 1000)
            symbol = em.data.get("s")
            if em.stream.startswith("depth.") and symbol not in synced:
                synced.add(symbol)
                exchanges += 1
                conn = f"http-{exchanges}"
                body = json.dumps(market.depth_snapshot(symbol), separators=(",", ":")).encode()
                yield HttpRequestEvent(t + 100, conn, "GET", f"{REST}/api/v1/depth",
                                       (("symbol", symbol), ("limit", "1000")), {})
                t += 1_000
                yield HttpResponseEvent(t, conn, 200, dict(JSON_HEADERS), body, START_US + t // 1000)
        t = max(t, (market.now_us - START_US) * 1000)
    yield WsClose(t + 1_000, "ws-1", 1000, "", "close")
    yield RecordingEnd(t + 2_000)


def write_synthetic(path: str | os.PathLike[str], frames: int, **options: Any) -> str:
    """Write a synthetic recording (``.jsonl`` or ``.jsonl.zst``); returns its path."""
    header, events = synthetic_events(frames, **options)
    writer = RecordingWriter(path, header, block_events=5000)
    try:
        for event in events:
            writer.write(event)
    finally:
        writer.close(end=False)  # the stream ends with its own ``end``
    return os.fspath(path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m harness.bisect.synth OUT FRAMES [SEED]``: write a synthetic recording (bench, runbook)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (2, 3) or not args[1].isdigit() or (len(args) == 3 and not args[2].isdigit()):
        print("usage: python -m harness.bisect.synth OUT.jsonl[.zst] FRAMES [SEED]", file=sys.stderr)
        return 64
    os.makedirs(os.path.dirname(os.path.abspath(args[0])), exist_ok=True)
    print(write_synthetic(args[0], int(args[1]), seed=int(args[2]) if len(args) == 3 else 1))
    return 0


__all__ = ["main", "synthetic_events", "write_synthetic"]


if __name__ == "__main__":
    raise SystemExit(main())
