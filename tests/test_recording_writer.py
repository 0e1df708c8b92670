"""The writer: independent zstd frames per block, bounded buffering, and redaction before disk."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from harness.recording.format import (
    REDACTED,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    TransportErrorEvent,
    UnknownEvent,
    WsClose,
    WsOpen,
    WsRecv,
    WsSend,
)
from harness.recording.reader import read_recording
from harness.recording.redaction import Redactor, config_secrets
from harness.recording.writer import RecordingWriter, compression_for, write_recording

from .recording_helpers import HEADER, sample_events, zstd_frames

SEED = base64.b64encode(bytes(range(32))).decode()  # has '+' and '/' and '=' in it
API_KEY = base64.b64encode(bytes(range(100, 132))).decode()


class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def file_text(path: Path) -> str:
    """Everything the file holds, decompressed, as text (for "is the secret in there" checks)."""
    data = path.read_bytes()
    if path.name.endswith(".zst"):
        data = b"".join(content for _, _, content in zstd_frames(data))
    return data.decode("utf-8")


# --- framing --------------------------------------------------------------------------------------


def test_header_is_its_own_frame_written_at_open(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    writer = RecordingWriter(path, HEADER)
    frames = zstd_frames(path.read_bytes())
    assert len(frames) == 1 and frames[0][2].count(b"\n") == 1
    assert json.loads(frames[0][2])["format"] == "backpack-recording"
    writer.close()


def test_a_new_frame_every_n_events(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    events = sample_events()  # 13 events, + end = 14
    write_recording(path, HEADER, events, block_events=4)
    frames = zstd_frames(path.read_bytes())
    assert [c.count(b"\n") for _, _, c in frames] == [1, 4, 4, 4, 2]


def test_a_new_frame_after_block_bytes(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    with RecordingWriter(path, HEADER, block_events=10_000, block_bytes=300) as writer:
        for i in range(20):
            writer.write(WsRecv(i, "ws-1", "x" * 100, i))
            assert writer._pending_bytes < 300  # memory stays bounded by one block
    frames = zstd_frames(path.read_bytes())
    assert len(frames) > 5
    assert all(len(c) < 300 + 200 for _, _, c in frames)


def test_a_new_frame_after_block_ms_on_the_writer_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "r.jsonl.zst"
    writer = RecordingWriter(path, HEADER, block_events=1000, block_ms=50, clock_ns=clock)
    writer.write(WsRecv(writer.now_ns(), "ws-1", "a", 1))
    clock.ns += 49_000_000
    assert not writer.flush_due()
    writer.write(WsRecv(writer.now_ns(), "ws-1", "b", 2))
    assert writer.pending == 2
    clock.ns += 1_000_000
    assert writer.flush_due()
    writer.flush_if_due()
    assert writer.pending == 0 and len(zstd_frames(path.read_bytes())) == 2
    writer.write(WsRecv(writer.now_ns(), "ws-1", "c", 3))
    clock.ns += 60_000_000
    writer.write(WsRecv(writer.now_ns(), "ws-1", "d", 4))  # the block is old: this write closes it
    assert writer.pending == 0 and len(zstd_frames(path.read_bytes())) == 3
    writer.close()


def test_killed_recorder_loses_at_most_the_open_block(tmp_path: Path) -> None:
    """No close(), no end event: every flushed block is readable, the open block is simply absent."""
    for name in ("k.jsonl.zst", "k.jsonl"):
        path = tmp_path / name
        writer = RecordingWriter(path, HEADER, block_events=5)
        events = [WsRecv(i, "ws-1", f"frame {i}", i) for i in range(13)]
        for event in events:
            writer.write(event)
        # simulate the kill: the process dies with the buffer in memory (no close, no flush)
        rec = read_recording(path)
        assert rec.events == events[:10] and rec.damage is None and not rec.complete
        writer._file.close()


def test_close_writes_end_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = RecordingWriter(path, HEADER)
    writer.write(WsOpen(5, "ws-1", "ws://x"))
    writer.close()
    writer.close()
    rec = read_recording(path)
    assert rec.complete and isinstance(rec.events[-1], RecordingEnd) and rec.events[-1].t >= 5
    with pytest.raises(ValueError, match="closed"):
        writer.write(WsOpen(6, "ws-2", "ws://x"))


def test_t_must_not_decrease(tmp_path: Path) -> None:
    with RecordingWriter(tmp_path / "r.jsonl", HEADER) as writer:
        writer.write(WsOpen(10, "ws-1", "ws://x"))
        with pytest.raises(ValueError, match="t=9"):
            writer.write(WsOpen(9, "ws-2", "ws://x"))
        with pytest.raises(ValueError):
            writer.write(WsOpen(True, "ws-2", "ws://x"))  # type: ignore[arg-type]
        assert writer.now_ns() >= 10


def test_file_names_decide_compression() -> None:
    assert compression_for("a.jsonl.zst") == "zstd"
    assert compression_for("a.jsonl") == "plain"
    with pytest.raises(ValueError, match=r"\.jsonl"):
        compression_for("a.json")


@pytest.mark.parametrize("kwargs", [{"block_events": 0}, {"block_ms": 0}, {"block_bytes": -1},
                                    {"block_events": True}])
def test_bad_block_settings_are_refused(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RecordingWriter(tmp_path / "r.jsonl", HEADER, **kwargs)


def test_header_new_has_versions_and_start(tmp_path: Path) -> None:
    header = Header.new(rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1", symbols=("SOL-USDC",),
                        channels=("trades",))
    assert set(header.versions) == {"python", "backpack", "cryptofeed", "websockets", "aiohttp"}
    assert header.created_at.endswith("Z") and header.tool == "cryptofeed-backpack"
    path = tmp_path / "r.jsonl"
    RecordingWriter(path, header, wall_us=lambda: 123).close()
    assert read_recording(path).header.start_us == 123


def test_write_failure_stops_the_writer_and_keeps_a_clean_prefix(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    writer = RecordingWriter(path, HEADER, block_events=2)
    writer.write(WsOpen(1, "ws-1", "ws://x"))
    writer.write(WsOpen(2, "ws-2", "ws://x"))
    real = writer._file

    class Full:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        def flush(self) -> None: ...

        def close(self) -> None:
            real.close()

    writer._file = Full()  # type: ignore[assignment]
    writer.write(WsOpen(3, "ws-3", "ws://x"))
    with pytest.raises(OSError):
        writer.write(WsOpen(4, "ws-4", "ws://x"))
    assert isinstance(writer.failure, OSError)
    with pytest.raises(ValueError, match="stopped after a write error"):
        writer.write(WsOpen(5, "ws-5", "ws://x"))
    writer.close()  # no end event on top of a failed block
    rec = read_recording(path)
    assert [e.conn for e in rec.events] == ["ws-1", "ws-2"] and not rec.complete


def test_lone_surrogates_and_non_ascii_survive(tmp_path: Path) -> None:
    events = [WsRecv(1, "a", "caf\u00e9 \U0001f600", 1), WsRecv(2, "a", "bad \ud800 half", 2)]
    for name in ("s.jsonl", "s.jsonl.zst"):
        write_recording(tmp_path / name, HEADER, events)
        assert read_recording(tmp_path / name).events[:2] == events


# --- redaction ------------------------------------------------------------------------------------


def secret_events() -> list:
    sub = json.dumps({"method": "SUBSCRIBE", "params": ["account.orderUpdate"],
                      "signature": [API_KEY, "c2lnbmF0dXJlLXNlY3JldA==", "1700000000000", "5000"]},
                     separators=(",", ":"))
    return [
        WsOpen(1, "ws-1", "wss://user:hunter2pass@127.0.0.1:1/ws"),
        WsSend(2, "ws-1", sub),
        WsRecv(3, "ws-1", f'{{"echo":"{API_KEY}"}}', 3),
        WsRecv(4, "ws-1", f"key={API_KEY}".encode() + b"\xff", 4),
        HttpRequestEvent(5, "http-1", "GET", "http://127.0.0.1:1/api/v1/capital",
                         (("seed", quote(SEED, safe="")), ("a", "b")),
                         {"X-API-Key": API_KEY, "x-signature": "sig-value-secret", "X-Timestamp": "1", "X-Window": "5000"},
                         json.dumps({"k": SEED}).encode()),
        HttpResponseEvent(6, "http-1", 200, {"Set-Cookie": "session=abcdefgh"},
                          ('{"escaped":"' + SEED.replace("/", "\\/") + '"}').encode(), 6),
        TransportErrorEvent(7, None, "connect", "TransportError",
                            f"proxy http://me:proxypassword@127.0.0.1:3128 refused {SEED.rstrip('=')}",
                            "http://me:proxypassword@127.0.0.1:3128"),
        WsClose(8, "ws-1", 1000, f"bye {API_KEY}", "close"),
        UnknownEvent(9, "future_kind", {"nested": {"list": [SEED]}}),
    ]


@pytest.mark.parametrize("name", ["s.jsonl", "s.jsonl.zst"])
def test_no_secret_reaches_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    header = Header(created_at="x", rest_url="https://u:restpassword@127.0.0.1:1", meta={"note": SEED})
    write_recording(path, header, secret_events(), secrets=[SEED, API_KEY])
    text = file_text(path)
    raw = path.read_bytes()
    for secret in (SEED, API_KEY, quote(SEED, safe=""), SEED.rstrip("="), SEED.replace("/", "\\/"),
                   "c2lnbmF0dXJlLXNlY3JldA==", "sig-value-secret", "hunter2pass", "proxypassword",
                   "restpassword", "session=abcdefgh"):
        assert secret not in text, secret
        assert secret.encode() not in raw, secret
    rec = read_recording(path)
    assert rec.damage is None
    sub = json.loads(rec.events[1].data)
    assert sub == {"method": "SUBSCRIBE", "params": ["account.orderUpdate"], "signature": [REDACTED] * 4}
    req = rec.events[4]
    assert req.headers == {"X-API-Key": REDACTED, "x-signature": REDACTED, "X-Timestamp": "1", "X-Window": "5000"}
    assert rec.events[0].url == f"wss://user:{REDACTED}@127.0.0.1:1/ws"
    assert rec.events[3].data == f"key={REDACTED}".encode() + b"\xff"  # bytes stay bytes
    assert rec.header.rest_url == f"https://u:{REDACTED}@127.0.0.1:1" and rec.header.redaction == REDACTED


def test_signature_redaction_keeps_the_frame_layout() -> None:
    """Only the array entries change: spacing, key order and the other values stay byte for byte."""
    r = Redactor()
    frame = '{"params": ["account.orderUpdate"],  "signature" : ["k", "s", "1", "2"], "method":"SUBSCRIBE"}'
    assert r.ws_text(frame) == (
        '{"params": ["account.orderUpdate"],  "signature" : ["<redacted>","<redacted>","<redacted>",'
        '"<redacted>"], "method":"SUBSCRIBE"}'
    )
    # a "]" inside an entry defeats the textual pass: the frame is re-encoded rather than leak
    tricky = json.dumps({"method": "SUBSCRIBE", "signature": ["a]b", "secret-sig-value", "1", "2"]})
    out = r.ws_text(tricky)
    assert "secret-sig-value" not in out and json.loads(out)["signature"] == [REDACTED] * 4
    # frames without a signature are untouched, even odd ones
    for text in ('{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}', "not json", "", '"signature"'):
        assert r.ws_text(text) == text
    # a signature given as a string is redacted too; hostile shapes finish (no regex blow-up)
    assert json.loads(r.ws_text('{"signature":"abc"}')) == {"signature": REDACTED}
    hostile = '{"signature":[' + "a" * 200_000 + '"' + ', "signature": [ ' * 2000
    assert r.ws_text(hostile) == hostile


def test_redactor_refuses_short_secrets_and_ignores_empty_ones() -> None:
    with pytest.raises(ValueError, match="too short"):
        Redactor(["abc"])
    with pytest.raises(TypeError):
        Redactor([123])  # type: ignore[list-item]
    assert Redactor([None, ""]).text("nothing to hide") == "nothing to hide"


def test_redaction_is_deterministic_for_replay_comparison() -> None:
    a, b = Redactor([SEED, API_KEY]), Redactor([API_KEY, SEED])
    for event in secret_events():
        assert a.event(event) == b.event(event)


def test_config_secrets_reads_seed_and_api_key() -> None:
    from backpack.config import BackpackConfig
    from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET

    cfg = BackpackConfig.from_dict({"api_key": TEST_ACCOUNT_API_KEY, "private_key": TEST_ACCOUNT_SECRET})
    assert config_secrets(cfg) == [TEST_ACCOUNT_SECRET, TEST_ACCOUNT_API_KEY]
    assert config_secrets(BackpackConfig.from_dict({})) == []
    assert config_secrets(object()) == []
