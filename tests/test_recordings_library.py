"""The bundled fixture library: each file is intact, matches its sidecar, covers what its plan promises, and
holds no secret of the keys it was recorded with."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import zstandard

from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET
from harness.recording.format import HttpResponseEvent, WsClose, WsOpen, WsPing, WsRecv, WsSend
from harness.recording.library import LIBRARY, PLANS, bundled, load_sidecar, sha256_file
from harness.recording.reader import read_recording

RECORDINGS = bundled()
SIGNATURE_SHAPE = re.compile(rb"[A-Za-z0-9+/]{86}==")  # a base64 ED25519 signature


def _decompressed(path: Path) -> bytes:
    with path.open("rb") as fh:
        return zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=True).read()


def _frames(path: Path) -> list[dict]:
    out = []
    for e in read_recording(path).events:
        if isinstance(e, WsRecv) and isinstance(e.data, str):
            try:
                doc = json.loads(e.data)
            except ValueError:
                doc = None
            out.append(doc if isinstance(doc, dict) else {"_malformed": e.data})
    return out


def test_every_plan_is_bundled_and_the_library_stays_small() -> None:
    assert [p.name.removesuffix(".jsonl.zst") for p in RECORDINGS] == sorted(PLANS)
    total = sum(p.stat().st_size for p in LIBRARY.rglob("*") if p.is_file())
    assert total < 10 * 2**20, total


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_file_is_intact_and_matches_its_sidecar(path: Path) -> None:
    sidecar = load_sidecar(path)
    assert sidecar["sha256"] == sha256_file(path) and sidecar["bytes"] == path.stat().st_size
    rec = read_recording(path)
    assert rec.damage is None and rec.complete
    assert sidecar["events"] == len(rec.events)
    assert sidecar["frames"] == sum(isinstance(e, WsRecv) for e in rec.events)
    assert rec.header.meta["fixture"] == sidecar["name"]
    assert {c: list(s) for c, s in rec.header.meta["subscription"].items()} == sidecar["subscription"]
    assert set(sidecar["provenance"]) >= {"made_by", "how", "created_at", "versions"}
    assert len(sidecar["expected"]["normalized_sha256"]) == 64


@pytest.mark.parametrize("path", sorted(p for p in LIBRARY.rglob("*") if p.is_file()), ids=lambda p: p.name)
def test_no_secret_of_the_recording_keys_in_any_file(path: Path) -> None:
    raw = path.read_bytes()
    texts = [raw, _decompressed(path)] if path.name.endswith(".zst") else [raw]
    for text in texts:
        for secret in (TEST_ACCOUNT_SECRET, TEST_ACCOUNT_API_KEY):
            for form in {secret, quote(secret, safe=""), secret.rstrip("="), secret.replace("/", "\\/")}:
                assert form.encode() not in text, (path.name, form[:6])
        assert not SIGNATURE_SHAPE.search(text), path.name


def test_private_subscribes_were_signed_and_redacted() -> None:
    for name in ("private", "edge"):
        sends = [json.loads(e.data) for e in read_recording(LIBRARY / f"{name}.jsonl.zst").events
                 if isinstance(e, WsSend)]
        signed = [s for s in sends if "signature" in s]
        assert signed and all(s["signature"] == ["<redacted>"] * 4 for s in signed), name


def test_public_session_covers_every_public_stream_ten_minutes_and_a_reconnect() -> None:
    path = LIBRARY / "public.jsonl.zst"
    events = read_recording(path).events
    frames = _frames(path)
    assert len(frames) >= 50_000
    kinds = Counter(f["stream"].split(".")[0] for f in frames if "stream" in f)
    assert set(kinds) >= {"depth", "trade", "bookTicker", "ticker", "kline", "markPrice", "openInterest", "liquidation"}
    symbols = {f["data"]["s"] for f in frames if f.get("stream", "").startswith("depth.")}
    assert symbols == {"SOL_USDC", "BTC_USDC", "SOL_USDC_PERP", "BTC_USDC_PERP"}
    times = [f["data"]["E"] for f in frames if isinstance(f.get("data"), dict) and "E" in f["data"]]
    assert max(times) - min(times) >= 5 * 60 * 1_000_000  # exchange time, µs
    assert sum(isinstance(e, WsOpen) for e in events) >= 2 and any(isinstance(e, WsClose) for e in events)
    assert any(isinstance(e, WsPing) and e.receipt is not None for e in events)


def test_private_session_has_fills_triggers_position_snapshot_balances_and_rfq() -> None:
    frames = [f for f in _frames(LIBRARY / "private.jsonl.zst") if "stream" in f]
    orders = [f["data"] for f in frames if f["stream"].startswith("account.orderUpdate")]
    fills = Counter(d["i"] for d in orders if d["e"] == "orderFill")
    assert max(fills.values()) >= 2  # an order filled several times
    assert any(d["e"] == "triggerPlaced" and d["q"] == "0" and float(d["Y"]) > 0 for d in orders)
    positions = [f["data"] for f in frames if f["stream"].startswith("account.positionUpdate")]
    snapshot = [d for p in positions for d in (p if isinstance(p, list) else [p]) if "e" not in d]
    assert snapshot and any("e" in p for p in positions if isinstance(p, dict))  # subscribe-time snapshot + updates
    assert any(f["stream"] == "account.balanceUpdate" for f in frames)
    rfq = {f["data"]["e"] for f in frames if f["stream"].startswith("account.rfqUpdate")}
    assert {"rfqFilled"} <= rfq and len(rfq) >= 3


def test_error_session_has_error_frames_garbage_a_5xx_snapshot_and_a_disconnect() -> None:
    path = LIBRARY / "errors.jsonl.zst"
    events = read_recording(path).events
    frames = _frames(path)
    codes = {f["error"]["code"] for f in frames if isinstance(f.get("error"), dict)}
    assert {4002, 4006, 4008} <= codes
    assert any("_malformed" in f for f in frames)
    depth_status = [e.status for e in events if isinstance(e, HttpResponseEvent) and e.status >= 500]
    assert depth_status.count(503) >= 2
    assert sum(isinstance(e, WsOpen) for e in events) >= 2


def test_edge_session_carries_every_payload_sample() -> None:
    samples = Path(__file__).parent / "fixtures" / "ws"
    frames = read_recording(LIBRARY / "edge.jsonl.zst").events
    sent = [json.loads(e.data) for e in frames if isinstance(e, WsRecv)]
    per_name: dict[str, int] = defaultdict(int)
    for sample in sorted(samples.glob("*.json")):
        doc = json.loads(sample.read_text())
        per_name[sample.name] = sum(1 for f in sent if f == doc)
    assert all(n >= 1 for n in per_name.values()), per_name


def test_sidecar_endpoints_were_loopback() -> None:
    for path in RECORDINGS:
        header = read_recording(path).header
        for url in (header.rest_url, header.ws_url):
            assert urlsplit(url).hostname == "127.0.0.1"


def _replay_in_subprocess(path: Path, hashseed: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    return subprocess.Popen([sys.executable, "-m", "harness", "replay", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_replay_twice_in_fresh_processes_gives_the_sidecar_hash(path: Path) -> None:
    """Two replays with different PYTHONHASHSEED print byte-identical output, equal to what the live feed
    delivered while recording (the sidecar's hash), on whichever cryptofeed line runs the suite."""
    procs = [_replay_in_subprocess(path, seed) for seed in ("1", "2")]  # in parallel: one per core
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-500:]
        outputs.append(out)
    assert outputs[0] == outputs[1]
    expected = load_sidecar(path)["expected"]
    assert hashlib.sha256(outputs[0]).hexdigest() == expected["normalized_sha256"]
    assert outputs[0].count(b"\n") == expected["lines"]
