"""``backpack.logs``: one JSON object per line, the context fields, and no secret in any part of a line."""

from __future__ import annotations

import base64
import io
import json
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backpack.logs import (
    CONTEXT_FIELDS,
    ContextLogger,
    JsonFormatter,
    ScrubbingLogger,
    install_json_logging,
    json_logging,
)
from backpack.ratelog import RateLimitedLog
from backpack.redaction import MARKER

SEED = base64.b64encode(bytes(range(32))).decode()
SIGNATURE = base64.b64encode(bytes(range(64))).decode()


def record(msg: str, *args: Any, exc: BaseException | None = None, **extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord(
        "backpack.feed",
        logging.WARNING,
        __file__,
        1,
        msg,
        args or None,
        (type(exc), exc, exc.__traceback__) if exc else None,
    )
    rec.__dict__.update(extra)
    return rec


def raised(message: str) -> BaseException:
    try:
        raise ValueError(message)
    except ValueError as exc:
        return exc


def test_a_record_is_one_json_object_with_the_context_fields() -> None:
    line = JsonFormatter().format(
        record(
            "%s: book resync\n(%s)",
            "BACKPACK",
            "gap",
            feed="BACKPACK",
            symbol="BTC-USDC",
            stream="depth.BTC_USDC",
            cause="gap",
            attempt=2,
        )
    )
    assert "\n" not in line
    doc = json.loads(line)
    assert list(doc)[:4] == ["time", "level", "logger", "message"]
    assert doc["time"].endswith("Z") and doc["level"] == "WARNING" and doc["logger"] == "backpack.feed"
    assert doc["message"] == "BACKPACK: book resync\n(gap)"
    assert {k: doc[k] for k in CONTEXT_FIELDS} == {
        "feed": "BACKPACK",
        "path": None,
        "connection": None,
        "symbol": "BTC-USDC",
        "stream": "depth.BTC_USDC",
        "cause": "gap",
    }
    assert doc["attempt"] == 2  # other extras are kept


def test_an_exception_is_data_not_a_traceback_banner() -> None:
    doc = json.loads(JsonFormatter().format(record("failed", exc=raised("boom"))))
    assert doc["exception"]["type"] == "ValueError" and doc["exception"]["message"] == "boom"
    assert doc["exception"]["stack"] and all(":" in frame for frame in doc["exception"]["stack"])
    assert "Traceback" not in json.dumps(doc)


def test_a_bad_format_string_still_gives_a_line() -> None:
    doc = json.loads(JsonFormatter().format(record("%d trades", "many")))
    assert "unformattable" in doc["message"]


@pytest.mark.parametrize("where", ["message", "args", "extra", "exception", "cause"])
def test_secrets_are_scrubbed_from_every_part_of_a_line(where: str) -> None:
    text = f"signed {SEED} sig {SIGNATURE} via socks5://user:Hunter2Hunter2@10.0.0.5:1080"
    rec = {
        "message": lambda: record(text),
        "args": lambda: record("got %s", text),
        "extra": lambda: record("x", detail=text),
        "exception": lambda: record("x", exc=raised(text)),
        "cause": lambda: record("x", cause=text),
    }[where]()
    line = JsonFormatter(secrets=["Hunter2Hunter2"]).format(rec)
    for secret in (SEED, SIGNATURE, "Hunter2Hunter2"):
        assert secret not in line
    assert MARKER in line and "user:***@10.0.0.5" in line


def test_url_passwords_are_masked_without_being_configured() -> None:
    line = JsonFormatter().format(record("connect to ws://bob:s3cr3t-pw@127.0.0.1:9/ws failed"))
    assert "s3cr3t-pw" not in line and "bob:***@127.0.0.1" in line


@settings(max_examples=100, deadline=None)
@given(
    raw=st.binary(min_size=32, max_size=32),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
    spelling=st.sampled_from(["std", "urlsafe", "hex", "unpadded"]),
)
def test_any_seed_anywhere_in_a_message_never_reaches_the_line(
    raw: bytes, before: str, after: str, spelling: str
) -> None:
    """Whatever text surrounds it, a 32-byte key in any common spelling is absent from the JSON line."""
    seed = {
        "std": base64.b64encode(raw).decode(),
        "urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "hex": raw.hex(),
        "unpadded": base64.b64encode(raw).decode().rstrip("="),
    }[spelling]
    line = JsonFormatter().format(record(f"{before} {seed} {after}"))
    assert seed not in line and seed not in json.loads(line)["message"]


def test_install_replaces_itself_lowers_levels_only_and_removes_cleanly() -> None:
    target = logging.getLogger("tests.logs.install")
    target.setLevel(logging.ERROR)
    first, second = io.StringIO(), io.StringIO()
    a = install_json_logging("INFO", first, logger=target)
    b = install_json_logging(logging.DEBUG, second, logger=target)
    assert [h for h in target.handlers if h is a.handler] == []  # the first was replaced
    target.debug("hello %s", "world")
    assert first.getvalue() == "" and json.loads(second.getvalue())["message"] == "hello world"
    b.remove()
    assert target.level == logging.INFO  # back to what it was when b was installed
    a.remove()
    target.handlers.clear()
    quiet = logging.getLogger("tests.logs.quiet")
    quiet.setLevel(logging.DEBUG)
    with json_logging("ERROR", io.StringIO(), logger=quiet):
        assert quiet.level == logging.DEBUG  # never raised: other handlers keep what they had
    assert quiet.handlers == []
    with pytest.raises(ValueError, match="unknown log level"):
        install_json_logging("LOUD", io.StringIO(), logger=quiet)


def test_default_stream_is_stderr_at_the_time_of_each_record(capsys: pytest.CaptureFixture[str]) -> None:
    target = logging.getLogger("tests.logs.stderr")
    with json_logging("INFO", logger=target):
        target.info("to stderr")
    assert json.loads(capsys.readouterr().err)["message"] == "to stderr"


def test_context_logger_merges_fixed_and_call_context() -> None:
    out = io.StringIO()
    base = logging.getLogger("tests.logs.context")
    with json_logging("INFO", out, logger=base):
        log = ContextLogger(base, {"feed": "BACKPACK", "path": "native"})
        RateLimitedLog(log, lambda: 0).log(
            logging.WARNING, "k", "resync %s", "gap", extra={"symbol": "SOL-USDC", "cause": "gap"}
        )
    doc = json.loads(out.getvalue())
    assert (doc["feed"], doc["path"], doc["symbol"], doc["cause"]) == (
        "BACKPACK",
        "native",
        "SOL-USDC",
        "gap",
    )


def test_scrubbing_logger_hides_secrets_from_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    """What a library logs through it is scrubbed before any record exists (caplog sees the raw record)."""
    caplog.set_level(logging.DEBUG, logger="tests.logs.lib")
    lib = ScrubbingLogger(logging.getLogger("tests.logs.lib"), secrets=["Hunter2Hunter2"])
    lib.debug("> TEXT %r", {"signature": [SEED, SIGNATURE]})
    lib.info("login Hunter2Hunter2 %s")  # a template without args is not formatted
    adapter = logging.LoggerAdapter(
        lib, {"websocket": object()}
    )  # how websockets wraps the logger it is given
    adapter.debug("< %s", SIGNATURE)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert len(caplog.records) == 3
    for secret in (SEED, SIGNATURE, "Hunter2Hunter2"):
        assert secret not in text
    assert lib.isEnabledFor(logging.DEBUG) and not ScrubbingLogger(
        logging.getLogger("tests.logs.off")
    ).isEnabledFor(logging.DEBUG)
