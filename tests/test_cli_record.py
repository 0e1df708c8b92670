"""``backpack-harness record`` in a subprocess against the loopback server: a readable recording, the live
normalized stream beside it, private channels redacted, and clear errors for bad arguments."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET
from harness.pytest_plugin import running_server
from harness.recording.format import WsRecv, WsSend
from harness.recording.reader import read_recording

pytestmark = pytest.mark.e2e


async def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "harness", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_record_a_public_and_private_session(tmp_path: Path) -> None:
    out, norm = tmp_path / "s.jsonl.zst", tmp_path / "s.normalized.jsonl"
    async with running_server(seed=3, rate=200.0, ping_interval=0.5, pong_timeout=5.0) as server:
        code, stdout, stderr = await _cli(
            "record", "--rest", server.rest_url, "--ws", server.ws_url, "--symbols", "SOL-USDC", "BTC-USDC-PERP",
            "--channels", "trades", "l2_book", "order_info", "balances", "--subscribe", "rfq=SOL-USDC-RFQ",
            "--frames", "1500", "--out", str(out), "--normalized", str(norm), "--secret-env", "BP_TEST_SEED",
            "--api-key", TEST_ACCOUNT_API_KEY, env={"BP_TEST_SEED": TEST_ACCOUNT_SECRET},
        )
    assert code == 0, stderr
    assert stdout == "" and "recorded" in stderr and TEST_ACCOUNT_SECRET not in stderr
    rec = read_recording(out)
    assert rec.damage is None and rec.complete
    assert rec.header.meta["subscription"]["rfq"] == ["SOL-USDC-RFQ"]
    assert rec.header.rest_url == server.rest_url
    frames = [e for e in rec.events if isinstance(e, WsRecv)]
    assert len(frames) >= 1500
    sends = [json.loads(e.data) for e in rec.events if isinstance(e, WsSend)]
    assert any("signature" in s for s in sends)
    raw = out.read_bytes() + b"".join(e.data.encode() for e in frames)
    assert TEST_ACCOUNT_SECRET.encode() not in raw and TEST_ACCOUNT_API_KEY.encode() not in raw
    lines = norm.read_text().splitlines()
    kinds = {json.loads(line)["type"] for line in lines}
    assert {"trade", "book", "order", "balance"} <= kinds
    assert all(line == json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")) for line in lines[:50])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.jsonl", "--symbols", "SOL-USDC", "--channels", "trades"], "give --duration"),
        (["--out", "x.jsonl", "--duration", "1"], "nothing to record"),
        (["--out", "x.jsonl", "--duration", "1", "--symbols", "S", "--channels", "tradez"], "unknown channel"),
        (["--out", "x.txt", "--duration", "1", "--symbols", "SOL-USDC", "--channels", "trades"], ".jsonl"),
        (["--out", "x.jsonl", "--duration", "1", "--symbols", "SOL-USDC", "--channels", "order_info"], "credentials"),
    ],
)
async def test_bad_record_arguments_are_one_line_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    code, stdout, stderr = await _cli("record", "--rest", "http://127.0.0.1:9", "--ws", "ws://127.0.0.1:9", *args)
    assert code == 64, stderr
    assert message in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []  # a refused recording leaves no file behind


async def test_an_output_that_cannot_be_created_is_one_line_and_exit_73(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "x.jsonl"
    code, stdout, stderr = await _cli("record", "--rest", "http://127.0.0.1:9", "--ws", "ws://127.0.0.1:9",
                                      "--symbols", "SOL-USDC", "--channels", "trades", "--duration", "1",
                                      "--out", str(out))
    assert code == 73 and "cannot write" in stderr and "Traceback" not in stderr and stderr.count("\n") == 1
