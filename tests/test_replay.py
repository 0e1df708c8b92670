"""The replay driver: the real BackpackFeed on a ReplayTransport, normalized output, refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from harness.recording.format import HttpRequestEvent, HttpResponseEvent, TransportErrorEvent
from harness.recording.reader import read_recording
from harness.recording.writer import write_recording
from harness.replay import ReplaySetupError, feed_spec, replay_normalized, replay_stream
from harness.transports.replay import ReplayMismatch, ReplayRefused

FIXTURE = Path(__file__).parent / "fixtures" / "recordings" / "handwritten.jsonl"

# Typed by hand from the fixture: the snapshot (lastUpdateId 501) plus the buffered delta 501..502, the
# trade (m false: the taker bought), the delta 503 (20.00 removed, 19.95 added), the binary frame as an
# undecodable-frame error, and the close (1006) resynchronising the book. Receipts are the recorded r.
HANDWRITTEN = [
    '{"asks":[["20","2"],["20.1","4"]],"bids":[["19.9","1.5"],["19.8","3"]],"delta":null,"exchange":"BACKPACK",'
    '"kind":"snapshot","receipt":1741064767004000,"sequence":502,"symbol":"SOL-USDC","timestamp":1741064767002900,'
    '"type":"book"}',
    '{"amount":"0.25","exchange":"BACKPACK","id":"77","price":"20","receipt":1741064767006000,"side":"buy",'
    '"symbol":"SOL-USDC","timestamp":1741064767005900,"type":"trade"}',
    '{"asks":[["20.1","4"]],"bids":[["19.95","0.7"],["19.9","1.5"],["19.8","3"]],'
    '"delta":{"asks":[["20","0"]],"bids":[["19.95","0.7"]]},"exchange":"BACKPACK","kind":"delta",'
    '"receipt":1741064767007000,"sequence":503,"symbol":"SOL-USDC","timestamp":1741064767006900,"type":"book"}',
    None,  # the error line: its message is the JSON decoder's own words, checked field by field below
    '{"exchange":"BACKPACK","expected":null,"got":null,"reason":"reconnect","receipt":0,"symbol":"SOL-USDC",'
    '"timestamp":null,"type":"book_resync"}',
]


def test_the_handwritten_recording_replays_to_the_expected_events() -> None:
    lines = replay_normalized(FIXTURE)
    assert len(lines) == len(HANDWRITTEN)
    for got, expected in zip(lines, HANDWRITTEN, strict=True):
        if expected is not None:
            assert got == expected
    error = json.loads(lines[3])
    assert {k: error[k] for k in ("type", "code", "receipt", "symbol", "timestamp", "stream")} == {
        "type": "error", "code": None, "receipt": 1741064767007500, "symbol": None, "timestamp": None,
        "stream": None}
    assert "JSON" in error["message"] and error["raw"]


def test_depth_limits_the_book_levels_and_start_stop_select_the_window() -> None:
    top1 = replay_normalized(FIXTURE, depth=1)
    assert json.loads(top1[2])["bids"] == [["19.95", "0.7"]] and json.loads(top1[2])["asks"] == [["20.1", "4"]]
    # the feed still sees everything before --from (the book is built), only the printing starts there
    assert replay_normalized(FIXTURE, start=0.0055) == replay_normalized(FIXTURE)[1:]
    # the input ends before --to: nothing after the trade, and the feed is stopped cleanly there
    assert replay_normalized(FIXTURE, stop=0.0065) == replay_normalized(FIXTURE)[:2]


def _without(path: Path, out: Path, drop: Any) -> Path:
    rec = read_recording(path)
    write_recording(out, rec.header, [e for e in rec.events if not drop(e)])
    return out


def test_a_feed_that_asks_for_a_snapshot_the_recording_lacks_fails_with_the_refusal(tmp_path: Path) -> None:
    cut = _without(FIXTURE, tmp_path / "no-depth.jsonl",
                   lambda e: isinstance(e, HttpRequestEvent | HttpResponseEvent) and e.conn == "http-2")
    with pytest.raises(ReplayRefused) as err:
        replay_normalized(cut)
    text = str(err.value)
    assert text.startswith("replay refused GET http://127.0.0.1:9100/api/v1/depth?symbol=SOL_USDC&limit=1000")
    assert "mode 'none' does not dial out" in text and "\n" not in text


def test_a_feed_that_reconnects_beyond_the_recording_is_refused_at_the_transport(tmp_path: Path) -> None:
    rec = read_recording(FIXTURE)
    events = [e for e in rec.events if not (isinstance(e, TransportErrorEvent) and e.op == "connect")]
    end = events.pop()  # keep the timeline going past the close: a (never made) request answered at 20 s
    late = [HttpRequestEvent(19_000_000_000, "http-9", "GET", "http://127.0.0.1:9100/api/v1/ping"),
            HttpResponseEvent(20_000_000_000, "http-9", 200, {}, b"pong", 1741064787000000)]
    write_recording(tmp_path / "r.jsonl", rec.header, [*events, *late, dataclasses.replace(end, t=21_000_000_000)])
    with pytest.raises(ReplayRefused, match=r"connect #2 to ws://127\.0\.0\.1:9100/ws: the recording has 1 "):
        replay_normalized(tmp_path / "r.jsonl")


def test_a_feed_subscribing_otherwise_than_recorded_is_a_mismatch(tmp_path: Path) -> None:
    rec = read_recording(FIXTURE)
    header = dataclasses.replace(rec.header, channels=("trades", "order_info"))  # no l2_book: no depth stream
    write_recording(tmp_path / "r.jsonl", header, rec.events)
    with pytest.raises(ReplayMismatch, match=r'frame #1 sent on .a. differs .*"trade.SOL_USDC"\]}.*"depth.SOL_USDC"'):
        replay_normalized(tmp_path / "r.jsonl")


def test_a_header_without_symbols_or_with_unknown_channels_cannot_be_replayed(tmp_path: Path) -> None:
    rec = read_recording(FIXTURE)
    with pytest.raises(ReplaySetupError, match="no symbols"):
        feed_spec(dataclasses.replace(rec.header, symbols=()), rec.events)
    with pytest.raises(ReplaySetupError, match="does not know: trade_bars"):
        feed_spec(dataclasses.replace(rec.header, channels=("trade_bars",)), rec.events)


def test_the_subscription_options_come_from_the_recorded_subscribe_frames() -> None:
    rec = read_recording(FIXTURE)
    sends = [dataclasses.replace(e, data='{"method":"SUBSCRIBE","params":["kline.5m.SOL_USDC","depth.200ms.SOL_USDC"]}')
             if e.kind == "ws_send" else e for e in rec.events]
    spec = feed_spec(rec.header, sends)
    assert (spec.candle_interval, spec.depth_speed, spec.private) == ("5m", "200ms", True)
    assert spec.subscription == {"trades": ["SOL-USDC"], "l2_book": ["SOL-USDC"], "order_info": ["SOL-USDC"]}


async def test_the_streaming_variant_hands_lines_over_as_they_come() -> None:
    seen: list[tuple[str, int]] = []
    progress: list[int] = []

    def sink(line: str) -> None:
        seen.append((line, transport_events[-1] if transport_events else 0))

    transport_events: list[int] = []
    result = await replay_stream(FIXTURE, sink, progress=lambda t: transport_events.append(t.stats.events))
    assert [line for line, _ in seen][:3] == HANDWRITTEN[:3] and len(seen) == result.lines == 5
    assert result.damage is None and transport_events and transport_events[-1] >= 15
    assert result.stats.frames == 4 and result.stats.played == 2  # /markets and /depth; the POST never asked
    _ = progress


def test_the_feed_runs_on_the_transports_virtual_clock() -> None:
    from harness.clock import VirtualClock
    from harness.replay import build_feed, throwaway_keys
    from harness.transports.replay import ReplayTransport

    rec = read_recording(FIXTURE)
    transport = ReplayTransport(rec)
    keys = throwaway_keys()
    feed = build_feed(feed_spec(rec.header, rec.events), transport, lambda out: None, keys)
    assert isinstance(transport.clock, VirtualClock) and feed.clock is transport.clock
    assert transport.clock.now_us() == rec.header.start_us  # t = 0 of the recording
    assert feed.bp_config.api_key == keys[1] and feed.bp_config.ws_url == "ws://127.0.0.1:9100/ws"


@pytest.mark.parametrize(("edit", "words"), [
    # the frames name a connection the recording never opened
    (lambda e: dataclasses.replace(e, conn="z") if e.kind == "ws_open" else e, "connection 'a'"),
    # the recorded connection goes elsewhere than the header's endpoint
    (lambda e: dataclasses.replace(e, url="ws://127.0.0.1:9100/other") if e.kind == "ws_open" else e,
     "recording connects to ws://127.0.0.1:9100/other"),
])
def test_inconsistent_recordings_fail_with_one_line_naming_the_problem(tmp_path: Path, edit: Any,
                                                                        words: str) -> None:
    rec = read_recording(FIXTURE)
    write_recording(tmp_path / "r.jsonl", rec.header, [edit(e) for e in rec.events])
    with pytest.raises(ReplayMismatch) as err:
        replay_normalized(tmp_path / "r.jsonl")
    assert words in str(err.value) and "\n" not in str(err.value)
