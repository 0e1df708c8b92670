"""``backpack-harness auth-check`` against a /api/v1/time server this test runs on 127.0.0.1.

The server runs on its own event loop in a thread so the CLI's blocking GET can be driven from plain
synchronous tests, in-process and as a subprocess.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from nacl.signing import SigningKey

from harness.cli import EXIT_DRIFT, EXIT_KEY, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main
from harness.cli.auth_check import parse_server_time

TEN_MINUTES_MS = 10 * 60 * 1000


class TimeServer:
    """Answers /api/v1/time according to ``mode``; counts the requests it served."""

    def __init__(self) -> None:
        self.mode = "now"
        self.hits = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _time(self, request: web.Request) -> web.Response:
        self.hits += 1
        now = time.time_ns() // 1_000_000
        if self.mode == "now":
            return web.Response(text=str(now), content_type="text/plain")
        if self.mode == "json":
            return web.json_response(now)
        if self.mode == "future":
            return web.Response(text=str(now + TEN_MINUTES_MS), content_type="text/plain")
        if self.mode == "past":
            return web.Response(text=str(now - TEN_MINUTES_MS), content_type="text/plain")
        if self.mode == "garbage":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if self.mode == "float":
            return web.Response(text=f"{now}.5", content_type="text/plain")
        if self.mode == "error":
            return web.Response(status=503, text="down")
        raise AssertionError(self.mode)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/time", self._time)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def server() -> Iterator[TimeServer]:
    srv = TimeServer()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def time_server(server: TimeServer) -> TimeServer:
    server.mode = "now"
    server.hits = 0
    return server


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    key = SigningKey.generate()
    seed = base64.b64encode(bytes(key)).decode()
    monkeypatch.setenv("BP_CHECK_SEED", seed)
    return seed, base64.b64encode(bytes(key.verify_key)).decode()


def check(argv: list[str], capsys: pytest.CaptureFixture[str], *secrets: str) -> tuple[int, str, str]:
    code = main(["auth-check", *argv])
    out, err = capsys.readouterr()
    for secret in secrets:
        assert secret not in out and secret not in err
    return code, out, err


def test_ok_reports_key_and_drift(time_server: TimeServer, keys: tuple[str, str], capsys) -> None:
    seed, pub = keys
    code, out, err = check(["--secret-env", "BP_CHECK_SEED", "--api-key", pub, "--rest", time_server.url], capsys, seed)
    assert code == EXIT_OK, err
    assert out.startswith("OK\n") and f"public key (X-API-Key): {pub}" in out
    assert "api key: matches the private key" in out and "clock drift: " in out and "window 5000 ms" in out
    assert err == "" and time_server.hits == 1


def test_ok_with_json_integer_and_derived_key(time_server: TimeServer, keys: tuple[str, str], capsys) -> None:
    seed, pub = keys
    time_server.mode = "json"
    code, out, _ = check(["--secret-env", "BP_CHECK_SEED", "--rest", time_server.url + "/"], capsys, seed)
    assert code == EXIT_OK and pub in out and "derived from the private key" in out


def test_secret_file(time_server: TimeServer, keys: tuple[str, str], tmp_path: Path, capsys) -> None:
    seed, pub = keys
    path = tmp_path / "seed"
    path.write_text(seed + "\n")
    code, out, _ = check(["--secret-file", str(path), "--rest", time_server.url], capsys, seed)
    assert code == EXIT_OK and pub in out


@pytest.mark.parametrize("mode", ["future", "past"])
def test_drift_beyond_window(time_server: TimeServer, keys: tuple[str, str], capsys, mode: str) -> None:
    seed, _ = keys
    time_server.mode = mode
    for window in ("5000", "60000"):
        code, out, err = check(
            ["--secret-env", "BP_CHECK_SEED", "--rest", time_server.url, "--window", window], capsys, seed
        )
        assert code == EXIT_DRIFT and out == ""
        assert f"exceeds the window {window} ms" in err
        assert "sync the system clock (NTP) or raise the window up to 60000 ms" in err
        drift = int(err.split("clock drift ")[1].split(" ms")[0])
        assert TEN_MINUTES_MS - 60_000 < drift < TEN_MINUTES_MS + 60_000


@pytest.mark.parametrize(("mode", "needle"), [("garbage", "expected an integer of milliseconds"),
                                              ("float", "expected an integer"), ("error", "answered HTTP 503")])  # fmt: skip
def test_bad_answer(time_server: TimeServer, keys: tuple[str, str], capsys, mode: str, needle: str) -> None:
    seed, _ = keys
    time_server.mode = mode
    code, out, err = check(["--secret-env", "BP_CHECK_SEED", "--rest", time_server.url], capsys, seed)
    assert code == EXIT_UNREACHABLE and out == "" and needle in err
    assert time_server.hits == 1


def test_unreachable(keys: tuple[str, str], capsys) -> None:
    seed, _ = keys
    with socket.socket() as sock:  # a port that was just free: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = check(
        ["--secret-env", "BP_CHECK_SEED", "--rest", f"http://127.0.0.1:{port}", "--timeout", "5"], capsys, seed
    )
    assert code == EXIT_UNREACHABLE and out == ""
    assert f"cannot reach http://127.0.0.1:{port}/api/v1/time" in err and "check --rest" in err


def test_key_checked_before_network(time_server: TimeServer, keys: tuple[str, str], monkeypatch, capsys) -> None:
    seed, pub = keys
    raw = base64.b64decode(seed)
    other_pub = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
    cases = {
        "not base64": ("!!not*base64!!", None, "private key is not valid base64"),
        "short": (base64.b64encode(raw[:31]).decode(), None, "private key must decode to 32 bytes, got 31"),
        "long": (base64.b64encode(raw + raw).decode(), None, "private key must decode to 32 bytes, got 64"),
        "mismatch": (seed, other_pub, "the API key does not belong to this private key"),
        "bad api key": (seed, pub[:-4], "API key must decode to 32 bytes"),
    }
    for name, (secret, api_key, needle) in cases.items():
        monkeypatch.setenv("BP_CASE_SEED", secret)
        argv = ["--secret-env", "BP_CASE_SEED", "--rest", time_server.url]
        if api_key:
            argv += ["--api-key", api_key]
        code, out, err = check(argv, capsys, secret, seed)
        assert code == EXIT_KEY, name
        assert out == "" and needle in err, (name, err)
        assert "regenerate the key pair" in err or "copy it exactly" in err, name
    assert time_server.hits == 0


def test_missing_secret_sources(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("BP_NOT_SET", raising=False)
    code, _, err = check(["--secret-env", "BP_NOT_SET", "--rest", "http://127.0.0.1:9"], capsys)
    assert code == EXIT_KEY and "environment variable BP_NOT_SET is not set" in err
    code, _, err = check(["--secret-file", str(tmp_path / "absent"), "--rest", "http://127.0.0.1:9"], capsys)
    assert code == EXIT_KEY and "does not exist" in err


@pytest.mark.parametrize("extra", [["--rest", "ftp://127.0.0.1"], ["--timeout", "0"], ["--window", "70000"]])
def test_usage(keys: tuple[str, str], capsys, extra: list[str]) -> None:
    seed, _ = keys
    code, out, _ = check(["--secret-env", "BP_CHECK_SEED", *extra], capsys, seed)
    assert code == EXIT_USAGE and out == ""


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b"1700000000000", 1700000000000), (b" 17\n", 17), (b"1700000000000\r\n", 1700000000000), (b"42", 42)],
)
def test_parse_server_time_ok(body: bytes, expected: int) -> None:
    assert parse_server_time(body) == expected


@pytest.mark.parametrize("body", [b"", b"-5", b"1.5", b"true", b'"17"', b"{}", b"\xff\xfe", b"\xd9\xa1\xd9\xa2"])
def test_parse_server_time_rejects(body: bytes) -> None:
    with pytest.raises(ValueError, match="expected an integer of milliseconds"):
        parse_server_time(body)


def _console() -> list[str]:
    beside = Path(sys.executable).with_name("backpack-harness")
    script = shutil.which("backpack-harness") or (str(beside) if beside.exists() else None)
    return [script] if script else [sys.executable, "-m", "harness"]


def test_console_script_subprocess(time_server: TimeServer, keys: tuple[str, str]) -> None:
    seed, pub = keys
    env = {**os.environ, "BP_CHECK_SEED": seed}
    argv = [*_console(), "auth-check", "--secret-env", "BP_CHECK_SEED", "--api-key", pub, "--rest", time_server.url]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert pub in proc.stdout and seed not in proc.stdout + proc.stderr
    time_server.mode = "future"
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == EXIT_DRIFT and "NTP" in proc.stderr and seed not in proc.stdout + proc.stderr
    assert time_server.hits == 2
    assert "Traceback" not in proc.stderr
