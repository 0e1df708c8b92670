"""A private session at DEBUG leaks no key material: in no record, JSON line, exception or metric label.

Both paths run private channels against the loopback server with every logger at DEBUG (ours, websockets'
with its frame logging widened so it would print whole SUBSCRIBE frames, ccxt's, aiohttp's), through a
refused private subscription, a reconnect (a second signature) and a failing signed REST call. The needles
are the seed in every spelling, every signature the server received, and the API key (which only the
config's own repr may show, once verified against the seed, in the raw records; JSON lines scrub even that).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import re
from typing import Any

import pytest
from websockets.frames import Frame

from backpack import ccxt_feed, compat
from backpack.errors import BackpackError
from backpack.logs import install_json_logging
from backpack.redaction import MARKER
from harness.pytest_plugin import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET, running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until

pytestmark = pytest.mark.e2e

SYM, NAT = "BTC-USDC-PERP", "BTC_USDC_PERP"


def seed_spellings() -> list[str]:
    raw = base64.b64decode(TEST_ACCOUNT_SECRET)
    return [
        TEST_ACCOUNT_SECRET,
        TEST_ACCOUNT_SECRET.rstrip("="),
        base64.urlsafe_b64encode(raw).decode(),
        raw.hex(),
    ]


def signatures(server: Any) -> set[str]:
    out = set()
    for conn in server.connections.values():
        for text in conn.received:
            msg = json.loads(text)
            if isinstance(msg, dict) and msg.get("signature"):
                out.add(msg["signature"][1])
    return out


def record_texts(records: list[logging.LogRecord]) -> list[str]:
    """Every record as any handler could render it: message, exception and stack, and every attribute."""
    formatter = logging.Formatter()
    out = []
    for record in records:
        parts = [record.getMessage(), repr(record.args)]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        parts += [_text(v) for k, v in record.__dict__.items() if k not in ("msg", "args", "exc_info")]
        out.append("\n".join(parts))
    return out


def _text(value: Any) -> str:
    try:
        return str(value)
    except ReferenceError:  # a weak proxy whose object is gone (aiohttp keeps some on records)
        return ""


def config_repr_only(text: str) -> bool:
    return text.startswith("backpack config loaded: BackpackConfig(")


@pytest.mark.parametrize("path", ["native", "ccxt"])
async def test_private_session_at_debug_leaks_no_key_material(
    path: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ccxt_feed, "BACKOFF_BASE", 0.01)
    monkeypatch.setattr(Frame, "MAX_LOG_SIZE", 100_000)  # websockets would print whole frames
    caplog.set_level(logging.DEBUG)
    lines = io.StringIO()
    installed = install_json_logging(logging.DEBUG, lines)
    exceptions: list[BaseException] = []
    channels = [compat.TRADES, compat.L2_BOOK, compat.ORDER_INFO, compat.POSITIONS]
    try:
        async with running_server(seed=3, rate=0, ping_interval=0.2, pong_timeout=1.0) as server:
            server.faults.reject_private(count=1)
            section = backpack_section(
                server, private=True, native_enabled=path == "native", health={"port": 0}
            )
            async with running_handler(
                symbols=[SYM],
                channels=channels,
                callbacks=Collector().callbacks(channels),
                handler_config={"log": {"disabled": True}, "backpack": section},
            ) as fh:
                feed = fh.feeds[0]
                await server.wait_subscribed(f"depth.{NAT}")
                await drive(server, 100)
                server.faults.close_socket(abrupt=True)
                await until(lambda: len(server.connections) >= 2, "a reconnect")
                await until(lambda: len(signatures(server)) >= 2, "a second signed subscribe")
                await drive(server, 100)
                if path == "native":
                    with pytest.raises(BackpackError) as info:  # a signed call the exchange refuses
                        await feed.rest.signed("GET", "/api/v1/nonexistent", "balanceQuery")
                    exceptions.append(info.value)
                exported = [feed.registry.render()[0].decode(), json.dumps(feed.registry.snapshot())]
                sigs = signatures(server)
            await asyncio.sleep(0)
    finally:
        installed.remove()

    assert len(sigs) >= 2 and any("private subscription rejected" in r.getMessage() for r in caplog.records)
    raw = record_texts(caplog.records)
    json_lines = lines.getvalue().splitlines()
    assert json_lines and all(json.loads(line)["level"] for line in json_lines)  # one object per line
    secret_needles = seed_spellings() + sorted(sigs)
    texts = raw + json_lines + exported + [f"{e}\n{e!r}" for e in exceptions]
    for needle in secret_needles:
        leaks = [t[:200] for t in texts if needle in t]
        assert not leaks, f"key material in: {leaks[:3]}"
    # the API key is public: only the verified config repr shows it, and never in a JSON line or a label
    assert not [t for t in raw if TEST_ACCOUNT_API_KEY in t and not config_repr_only(t)]
    assert not [t for t in json_lines + exported if TEST_ACCOUNT_API_KEY in t]


async def test_ccxt_signed_rest_at_debug_logs_no_headers_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """ccxt logs each request with its headers at DEBUG; the feed's ccxt instance logs them scrubbed."""
    caplog.set_level(logging.DEBUG)
    async with running_server(seed=3, rate=0) as server:
        feed = ccxt_feed.BackpackCcxtFeed(
            backpack_config=backpack_section(server, private=True),
            symbols=[SYM],
            channels=[compat.TRADES],
        )
        exchange = feed._make_exchange()
        try:
            with pytest.raises(Exception) as info:  # noqa: B017 - whatever ccxt makes of the answer
                await exchange.fetch_balance()
        finally:
            await exchange.close()
    requests = [r for r in caplog.records if r.name == "ccxt.base.exchange" and "Request" in r.getMessage()]
    assert requests, "ccxt logged no request at DEBUG: the test would prove nothing"
    texts = record_texts(caplog.records) + [f"{info.value}\n{info.value!r}"]
    for needle in [*seed_spellings(), TEST_ACCOUNT_API_KEY]:
        assert not [t[:200] for t in texts if needle in t and not config_repr_only(t)]
    # the headers are there, their values are not
    shown = [m for r in requests for m in re.findall(r"'X-(?:Signature|API-Key)': '([^']*)'", r.getMessage())]
    assert shown and set(shown) == {MARKER}
