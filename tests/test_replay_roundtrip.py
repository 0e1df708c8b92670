"""Record a live session against the loopback server, replay it: the same normalized events, exactly."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from backpack.config import BackpackConfig
from backpack.feed import BackpackFeed
from backpack.live import LiveTransport
from backpack.protocol.normalized import Normalizer
from harness.loopback.market.generator import MarketConfig
from harness.pytest_plugin import running_server
from harness.recording.format import Header, WsOpen, WsRecv
from harness.recording.reader import read_recording
from harness.recording.redaction import config_secrets
from harness.recording.writer import RecordingWriter
from harness.replay import replay_stream, run_feed
from harness.transports.recording import RecordingTransport

from .feed_helpers import PRIVATE, PUBLIC, backpack_section, drive, until

SYMBOLS = ["SOL-USDC", "BTC-USDC-PERP"]
CHANNELS = PUBLIC + PRIVATE


async def record_session(path: Path, *, seed: int = 7, steps: tuple[int, int] = (400, 300)) -> list[str]:
    """Run the real feed on a RecordingTransport over the loopback server, with a forced reconnect in
    the middle; returns the normalized lines the live feed delivered (Router outputs, as they came)."""
    live_lines: list[str] = []
    box: dict[str, Normalizer] = {}

    def on_output(output: Any) -> None:
        live_lines.extend(box["normalizer"].lines((output,)))

    market = MarketConfig(seed=seed, open_interest_period_us=5_000_000)  # OI within a short session
    async with running_server(market_config=market, rate=0, ping_interval=0.3, pong_timeout=5.0) as server:
        section = backpack_section(server)
        header = Header.new(rest_url=server.rest_url, ws_url=server.ws_url, symbols=tuple(SYMBOLS),
                            channels=tuple(CHANNELS), meta={"seed": seed})
        writer = RecordingWriter(path, header, block_events=250,
                                 secrets=config_secrets(BackpackConfig.from_dict(section)))
        live = LiveTransport()
        transport = RecordingTransport(live, writer)
        feed = BackpackFeed(transport=transport, protocol_callback=on_output, symbols=SYMBOLS, channels=CHANNELS,
                            backpack_config=section, config={"log": {"disabled": True}})
        box["normalizer"] = Normalizer.for_router(feed.router)
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_feed(feed, stop))
        try:
            await server.wait_subscribed("depth.SOL_USDC")
            await server.wait_subscribed("account.orderUpdate.SOL_USDC")
            await drive(server, steps[0])
            await until(lambda: sum('"kind":"snapshot"' in x for x in live_lines) >= 2, "both books synced")
            await until(lambda: any(f.kind == "ping" for c in server.connections.values() for f in c.sent),
                        "a protocol ping")
            before = len(server.connections)
            server.faults.close_socket(1001, "going away")
            await server.wait_connections(before + 1, timeout=10)
            await server.wait_subscribed("account.orderUpdate.SOL_USDC", connection_id=max(server.connections))
            await drive(server, steps[1])
            await until(lambda: sum('"kind":"snapshot"' in x for x in live_lines) >= 4, "books synced again")
            await drive(server, 20)
            await until(lambda: live_lines and '"type":"book"' in "".join(live_lines[-40:]), "late frames")
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
            await transport.close()
            await live.close()
            writer.close()
    return live_lines


async def replay_lines(path: Path, **options: Any) -> list[str]:
    out: list[str] = []
    await replay_stream(path, out.append, **options)
    return out


@pytest.mark.e2e
async def test_replay_reproduces_exactly_what_the_live_feed_delivered(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "session.jsonl.zst"
    live_lines = await record_session(path)
    caplog.clear()

    rec = read_recording(path)
    assert rec.complete and rec.damage is None
    assert len([e for e in rec.events if isinstance(e, WsOpen)]) == 2  # the forced reconnect
    types = Counter(json.loads(line)["type"] for line in live_lines)
    assert {"trade", "book", "bbo", "ticker", "candle", "funding", "open_interest", "liquidation", "order",
            "position", "balance", "book_resync"} <= set(types), types
    assert any(json.loads(x).get("reason") == "reconnect" for x in live_lines)

    with caplog.at_level(logging.INFO):
        replayed = await replay_lines(path)
    # the end of the recording stops the feed cleanly: the one recorded reconnect, nothing after it
    assert [r.getMessage() for r in caplog.records if "reconnecting" in r.getMessage()] == [
        "websocket ws-1 closed (code 1001 going away); reconnecting"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or "retrying" in r.getMessage()]
    assert len(replayed) == len(live_lines) > 500
    assert replayed == live_lines  # receipts included: the replay hands back the recorded ones

    # and the receipts really are the recorded ones, not the replay's clock
    receipts = {e.receipt for e in rec.events if isinstance(e, WsRecv)}
    trade_receipts = [json.loads(x)["receipt"] for x in replayed if '"type":"trade"' in x]
    assert trade_receipts and set(trade_receipts) <= receipts


@pytest.mark.e2e
async def test_new_episodes_go_to_the_live_transport_and_can_be_saved(tmp_path: Path) -> None:
    """A recording without the depth snapshot: mode none refuses it, new_episodes fetches it live from
    the (loopback) exchange and adds it to the cassette."""
    from harness.recording.cassettes import load_cassette, save_cassette
    from harness.recording.format import HttpRequestEvent, HttpResponseEvent
    from harness.recording.writer import write_recording
    from harness.transports.replay import ReplayRefused

    from .test_replay import FIXTURE

    async with running_server(seed=3, rate=0) as server:
        text = FIXTURE.read_text().replace("http://127.0.0.1:9100", server.rest_url).replace(
            "ws://127.0.0.1:9100/ws", server.ws_url)
        (tmp_path / "moved.jsonl").write_text(text)
        rec = read_recording(tmp_path / "moved.jsonl")
        path = tmp_path / "no-depth.jsonl"
        write_recording(path, rec.header, [e for e in rec.events if not (
            isinstance(e, HttpRequestEvent | HttpResponseEvent) and e.conn == "http-2")])
        with pytest.raises(ReplayRefused, match="api/v1/depth"):
            await replay_lines(path)
        live = LiveTransport()
        try:
            out: list[str] = []
            result = await replay_stream(path, out.append, mode="new_episodes", inner=live)
        finally:
            await live.close()
    assert result.stats.live >= 1 and result.stats.played >= 1  # /markets from the recording, /depth live
    cassette = tmp_path / "episodes.yaml"
    save_cassette(cassette, result.cassette.requests, result.cassette.responses)
    requests, responses = load_cassette(cassette)
    depth = [(q, r) for q, r in zip(requests, responses, strict=True) if q.path == "/api/v1/depth"]
    assert depth and json.loads(depth[0][1]["body"]["string"])["lastUpdateId"]
    assert any('"type":"trade"' in line for line in out)  # the recorded frames still replay
