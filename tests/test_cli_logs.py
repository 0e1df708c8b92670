"""The CLI installs the JSON log format around each command (``--log-level``), and removes it after."""

from __future__ import annotations

import json
import logging

import pytest

from harness.cli import main

pytestmark = pytest.mark.e2e


def test_demo_logs_json_lines_on_stderr_at_the_level_asked(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    code = main(
        [
            "--log-level",
            "INFO",
            "demo",
            "--steps",
            "200",
            "--symbols",
            "SOL-USDC",
            "--out",
            str(tmp_path),
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    # the command's own messages are plain text; every log record is one JSON object on its own line
    docs = [json.loads(line) for line in err if line.startswith("{")]
    assert [line for line in err if not line.startswith("{")] == [f"summary written to {tmp_path / 'r.json'}"]
    native = [d for d in docs if "native path active" in d["message"]]
    assert native and native[0]["logger"] == "backpack.feed" and native[0]["level"] == "INFO"
    assert native[0]["feed"] == "BACKPACK" and native[0]["path"] == "native"
    assert {d["level"] for d in docs} <= {"INFO", "WARNING", "ERROR"}  # nothing below the level asked
    assert root.handlers == handlers and root.level == level  # nothing left behind


def test_bad_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--log-level", "LOUD", "sign"]) == 64
    assert "log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL (got 'LOUD')" in capsys.readouterr().err


def test_a_seed_given_as_log_level_is_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    seed = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80="
    assert main(["--log-level", seed, "sign"]) == 64
    err = capsys.readouterr().err
    assert seed not in err and "looks like key material" in err
