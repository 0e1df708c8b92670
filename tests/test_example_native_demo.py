"""``examples/backpack_native_demo.py``: public and private channels deliver on the loopback server, in its
default mode and with ``--live`` pointed at one; key and flag problems end in one line, never the secret."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import os
from pathlib import Path

import pytest

from backpack import compat
from backpack.config import NATIVE_ENV
from harness.pytest_plugin import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET, running_server

from .feed_helpers import drive

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "backpack_native_demo.py"
PUBLIC = {compat.TRADES, compat.L2_BOOK, compat.TICKER}
PRIVATE = {compat.ORDER_INFO, compat.FILLS, compat.POSITIONS, compat.BALANCES}


def load_example():
    spec = importlib.util.spec_from_file_location("backpack_native_demo", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture
def example(monkeypatch: pytest.MonkeyPatch):
    for var in (NATIVE_ENV, "BACKPACK_SECRET", "BACKPACK_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    return load_example()


def summary_of(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_default_run_starts_a_loopback_server_and_every_channel_delivers(
    example, capsys: pytest.CaptureFixture[str]
) -> None:
    code = example.main(["--steps", "600", "--seed", "1", "--log-level", "WARNING"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = summary_of(captured.out)
    assert summary["mode"] == "loopback" and summary["path"] == "native"
    assert set(summary["delivered"]) == PUBLIC | PRIVATE
    assert all(n > 0 for n in summary["delivered"].values()), summary["delivered"]
    assert summary["resyncs"] == 0 and summary["callback_errors"] == 0 and summary["decode_errors"] == 0
    assert TEST_ACCOUNT_SECRET not in captured.out + captured.err


def test_logs_are_json_lines_with_the_symbol_field(example, capsys: pytest.CaptureFixture[str]) -> None:
    assert example.main(["--steps", "200", "--symbols", "SOL-USDC"]) in (0, 1)  # few steps: a private channel may stay quiet
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    firsts = [r for r in lines if r["logger"] == "examples.backpack_native_demo" and r["message"].startswith("first ")]
    assert firsts and all(r["symbol"] in ("SOL-USDC", None) for r in firsts)
    assert any(r["message"].startswith("first trades update") and r["symbol"] == "SOL-USDC" for r in firsts)


def test_a_channel_that_stays_silent_fails_the_loopback_run(example, capsys: pytest.CaptureFixture[str]) -> None:
    assert example.main(["--steps", "0", "--log-level", "ERROR"]) == 1
    captured = capsys.readouterr()
    assert "error: no updates on" in captured.err and "trades" in captured.err
    assert summary_of(captured.out)["delivered"]["trades"] == 0


async def test_live_mode_reads_the_key_from_the_environment(example, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BACKPACK_SECRET", TEST_ACCOUNT_SECRET)
    monkeypatch.setenv("BACKPACK_API_KEY", TEST_ACCOUNT_API_KEY)
    async with running_server(seed=3, rate=0) as server:
        args = example.parse(["--live", "--rest", server.rest_url, "--ws", server.ws_url, "--seconds", "6",
                              "--log-level", "WARNING"])
        task = asyncio.ensure_future(example.run(args))
        await server.wait_subscribed("account.orderUpdate.SOL_USDC", timeout=10)
        await server.wait_subscribed("depth.SOL_USDC", timeout=10)
        await drive(server, 800)
        summary = await task
    assert summary["mode"] == "live" and summary["path"] == "native"
    assert set(summary["delivered"]) == PUBLIC | PRIVATE
    assert all(summary["delivered"][c] > 0 for c in PUBLIC | PRIVATE), summary["delivered"]


async def test_live_mode_without_a_key_runs_the_public_channels(example) -> None:
    async with running_server(seed=3, rate=0) as server:
        args = example.parse(["--live", "--rest", server.rest_url, "--ws", server.ws_url, "--seconds", "3",
                              "--log-level", "ERROR"])
        task = asyncio.ensure_future(example.run(args))
        await server.wait_subscribed("depth.SOL_USDC", timeout=10)
        await drive(server, 200)
        summary = await task
        assert not any(s.startswith("account.") for c in server.connections.values() for s in c.subscriptions)
    assert set(summary["delivered"]) == PUBLIC and summary["delivered"][compat.TRADES] > 0


@pytest.mark.parametrize("problem", ["garbage", "wrong pair", "seed as the api key"])
def test_a_key_problem_is_one_line_that_never_shows_the_secret(
    example, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    seed = base64.b64encode(os.urandom(32)).decode()
    secret, api_key = {"garbage": ("not-a-key", None), "wrong pair": (seed, TEST_ACCOUNT_API_KEY),
                       "seed as the api key": (seed, seed)}[problem]
    monkeypatch.setenv("BACKPACK_SECRET", secret)
    if api_key is not None:
        monkeypatch.setenv("BACKPACK_API_KEY", api_key)
    # nothing listens on port 9: the run must fail on the key before it dials anything
    code = example.main(["--live", "--rest", "http://127.0.0.1:9", "--ws", "ws://127.0.0.1:9/", "--log-level", "ERROR"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: backpack.") and len(err.strip().splitlines()) == 1, err
    assert seed not in err and "Traceback" not in err


def test_the_flag_forced_off_by_the_environment_is_named(
    example, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(NATIVE_ENV, "0")
    assert example.main(["--steps", "10", "--log-level", "ERROR"]) == 2
    err = capsys.readouterr().err
    assert f"{NATIVE_ENV}=0" in err and "ccxt" in err and "Traceback" not in err


def test_loopback_mode_refuses_endpoints(example, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        example.parse(["--rest", "http://127.0.0.1:1"])
    assert exc.value.code == 2 and "--live only" in capsys.readouterr().err
