"""``backpack.health``: the verdict rules, the HTTP endpoints, and the ``backpack.health`` config section."""

from __future__ import annotations

import base64
import logging
import socket
import sys
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backpack import compat
from backpack.config import BackpackConfig, ConfigError, HealthSettings
from backpack.health import DEGRADED, DOWN, OK, BookHealth, FeedHealth, HealthServer, document, verdict
from backpack.metrics import NATIVE, Registry
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until
from .test_secrets_never_echoed import assert_absent, config_renderings

S = 1_000_000
NOW = 1_754_000_000 * S


def healthy(**changes: Any) -> FeedHealth:
    h = FeedHealth(
        feed="BACKPACK",
        path=NATIVE,
        running=True,
        connected=True,
        connected_since_us=NOW - 30 * S,
        last_frame_us=NOW - S // 10,
        books=[BookHealth("BTC-USDC", "synced", 42, NOW - S, NOW - 20 * S)],
        symbols_last_us={"BTC-USDC": NOW - S},
        recent={"resyncs": 0, "gaps": 0, "reconnects": 0, "errors": 0, "auth_failures": 0},
    )
    for key, value in changes.items():
        setattr(h, key, value)
    return h


# --- the verdict ------------------------------------------------------------------------------------


def test_a_healthy_feed_is_ok() -> None:
    assert verdict(healthy(), HealthSettings(), NOW) == (OK, [])


@pytest.mark.parametrize(
    ("changes", "status", "words"),
    [
        ({"running": False}, DOWN, "not running"),
        ({"connected": False}, DOWN, "no WebSocket connection"),
        ({"books": [BookHealth("BTC-USDC", "buffering")]}, DEGRADED, "BTC-USDC: order book is buffering"),
        (
            {"books": [BookHealth("BTC-USDC", "synced", 1, NOW - 61 * S, NOW - 90 * S)]},
            DEGRADED,
            "not updated for 61 s (max 60)",
        ),
        ({"symbols_last_us": {"BTC-USDC": NOW - 75 * S}}, DEGRADED, "no message for 75 s"),
        (
            {"symbols_last_us": {"SOL-USDC": None}, "connected_since_us": NOW - 61 * S},
            DEGRADED,
            "SOL-USDC: no message",
        ),
        ({"private_stopped": True}, DEGRADED, "private channels stopped"),
        ({"circuit": "open"}, DEGRADED, "circuit breaker is open"),
        ({"recent": {"gaps": 1}}, DEGRADED, "1 gaps in the last 60 s (max 0)"),
        ({"recent": {"resyncs": 4}}, DEGRADED, "4 resyncs in the last 60 s (max 3)"),
        ({"recent": {"reconnects": 1}}, DEGRADED, "1 reconnects"),
        ({"recent": {"errors": 11}}, DEGRADED, "11 errors"),
        ({"recent": {"auth_failures": 1}}, DEGRADED, "1 auth failures"),
    ],
)
def test_each_rule_names_its_reason(changes: dict[str, Any], status: str, words: str) -> None:
    got, reasons = verdict(healthy(**changes), HealthSettings(), NOW)
    assert got == status and any(words in r for r in reasons), reasons


def test_thresholds_are_the_operators() -> None:
    settings_ = HealthSettings(max_resyncs=5, stale_book_seconds=None, stale_message_seconds=None)
    stale = healthy(
        books=[BookHealth("BTC-USDC", "synced", 1, NOW - 3600 * S, None)],
        symbols_last_us={"BTC-USDC": NOW - 3600 * S},
        recent={"resyncs": 5},
    )
    assert verdict(stale, settings_, NOW) == (OK, [])
    assert verdict(stale, HealthSettings(), NOW)[0] == DEGRADED


@settings(max_examples=200, deadline=None)
@given(
    running=st.booleans(),
    connected=st.booleans(),
    state=st.sampled_from(["synced", "buffering", "idle"]),
    counts=st.dictionaries(
        st.sampled_from(["resyncs", "gaps", "reconnects", "errors", "auth_failures"]), st.integers(0, 20)
    ),
    book_age=st.integers(0, 200),
    circuit=st.sampled_from([None, "closed", "open", "half_open"]),
)
def test_the_verdict_is_ok_exactly_when_no_rule_fires(
    running: bool, connected: bool, state: str, counts: dict[str, int], book_age: int, circuit: Any
) -> None:
    """ok iff running, connected, every book synced and fresh, circuit not open and every recent count within
    its limit; down iff not running or not connected; and the document's status is the verdict's."""
    cfg = HealthSettings()
    h = healthy(
        running=running,
        connected=connected,
        circuit=circuit,
        recent=counts,
        books=[BookHealth("BTC-USDC", state, 1, NOW - book_age * S, NOW - book_age * S)],
    )
    status, reasons = verdict(h, cfg, NOW)
    limits = {
        "resyncs": cfg.max_resyncs,
        "gaps": cfg.max_gaps,
        "reconnects": cfg.max_reconnects,
        "errors": cfg.max_errors,
        "auth_failures": cfg.max_auth_failures,
    }
    fine = (
        state == "synced"
        and book_age <= 60
        and circuit != "open"
        and all(n <= limits[k] for k, n in counts.items())
    )
    assert status == (DOWN if not (running and connected) else OK if fine else DEGRADED)
    assert (status == OK) == (reasons == [])
    assert document(h, cfg, NOW)["status"] == status


def test_document_reports_ages_in_seconds_and_the_path() -> None:
    body = document(healthy(), HealthSettings(), NOW)
    assert body["path"] == "native" and body["time_us"] == NOW
    assert body["symbols"]["BTC-USDC"] == {
        "last_message_age_seconds": 1.0,
        "book": {
            "state": "synced",
            "sequence": 42,
            "age_seconds": 1.0,
            "snapshot_age_seconds": 20.0,
            "gaps_since_snapshot": 0,
        },
    }
    assert body["connection"]["connected_for_seconds"] == 30.0
    assert "host" not in body["thresholds"] and body["thresholds"]["max_gaps"] == 0


# --- the endpoints, with a stand-in source --------------------------------------------------------------


class Source:
    def __init__(self, health: FeedHealth | Exception) -> None:
        self.health = health
        self.registry = Registry({"path": NATIVE})
        self.registry.counter("backpack_feed_restarts_total").inc()

    def health_now(self) -> int:
        return NOW

    def health_status(self, now_us: int, window_us: int) -> FeedHealth:
        if isinstance(self.health, Exception):
            raise self.health
        return self.health


async def serve(source: Source, **cfg: Any) -> HealthServer:
    server = HealthServer(source, HealthSettings(port=0, **cfg))
    await server.start()
    return server


@pytest.mark.parametrize(
    ("health", "code"),
    [(healthy(), 200), (healthy(connected=False), 503), (healthy(recent={"gaps": 1}), 503)],
)
async def test_http_status_follows_the_verdict(health: FeedHealth, code: int) -> None:
    server = await serve(Source(health))
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as resp:
            assert resp.status == code
            body = await resp.json()
            assert body["status"] == {200: OK}.get(code, body["status"]) and (code == 200) == (
                body["status"] == OK
            )
            assert resp.headers["Cache-Control"] == "no-store"
    finally:
        await server.stop()


async def test_a_broken_health_source_answers_down_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    server = await serve(Source(RuntimeError("bug")))
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url + "/health") as resp:
            assert resp.status == 500
            assert await resp.json() == {"status": "down", "reasons": ["health check failed: RuntimeError"]}
    finally:
        await server.stop()
    assert "health check failed" in caplog.text


async def test_metrics_without_prometheus_client_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    server = await serve(Source(healthy()))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/metrics") as resp:
                assert resp.status == 200 and "backpack_feed_restarts_total" in await resp.text()
            monkeypatch.setitem(sys.modules, "prometheus_client", None)
            async with http.get(server.url + "/metrics") as resp:
                assert resp.status == 501
                assert "pip install 'cryptofeed-backpack[metrics]'" in await resp.text()
            async with http.get(server.url + "/health") as resp:
                assert resp.status == 200  # health does not need it
            async with http.get(server.url + "/admin") as resp:
                assert resp.status == 404
            async with http.post(server.url + "/health") as resp:
                assert resp.status == 405
    finally:
        await server.stop()


async def test_it_binds_where_configured_only() -> None:
    server = await serve(Source(healthy()))
    try:
        assert server.addresses == [("127.0.0.1", server.port)]
        other = _non_loopback_address()
        if other is not None:  # nothing answers on the machine's other addresses
            with pytest.raises(OSError), socket.create_connection((other, server.port), timeout=2):
                pass
    finally:
        await server.stop()


def _non_loopback_address() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it only picks a source address
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


async def test_a_taken_port_is_reported_and_the_feed_runs_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="backpack")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        collector = Collector()
        async with running_server(seed=1, rate=0) as server:
            section = backpack_section(server, private=False, health={"port": port})
            async with running_handler(
                symbols=["SOL-USDC"],
                channels=[compat.TRADES],
                callbacks=collector.callbacks([compat.TRADES]),
                handler_config={"log": {"disabled": True}, "backpack": section},
            ) as fh:
                await server.wait_subscribed("trade.SOL_USDC")
                await drive(server, 200)
                await until(lambda: collector.items[compat.TRADES], "trades without the health endpoint")
                assert fh.feeds[0].health_server is None
    assert f"health endpoint could not listen on 127.0.0.1:{port}" in caplog.text
    assert "set backpack.health.port" in caplog.text


# --- the config section ---------------------------------------------------------------------------------


def test_health_is_off_unless_configured_and_loopback_by_default() -> None:
    assert BackpackConfig().health is None
    assert BackpackConfig.from_dict({"health": True}).health == HealthSettings()
    assert BackpackConfig.from_dict({"health": False}).health is None
    cfg = BackpackConfig.from_dict({"health": {"port": "9100", "stale_book_seconds": None, "host": " ::1 "}})
    assert (cfg.health.host, cfg.health.port, cfg.health.stale_book_seconds) == ("::1", 9100, None)
    assert HealthSettings().host == "127.0.0.1"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"prot": 1}, "backpack.health.prot: unknown setting (did you mean 'port'?)"),
        ({"port": 70000}, "backpack.health.port: must be between 0 and 65535 (got 70000)"),
        ({"port": True}, "backpack.health.port: must be a number, not a boolean"),
        ({"host": "http://0.0.0.0:9"}, "backpack.health.host: must be a host name or IP address to bind"),
        ({"host": ""}, "backpack.health.host: must be a host name or IP address"),
        ({"window_seconds": 0}, "backpack.health.window_seconds: must be > 0 (got 0)"),
        ({"max_gaps": -1}, "backpack.health.max_gaps: must be >= 0 (got -1)"),
        ({"stale_message_seconds": "soon"}, "backpack.health.stale_message_seconds: must be a number"),
        ("on", "backpack.health: must be a mapping of health endpoint settings"),
    ],
)
def test_bad_health_settings_are_named(section: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        BackpackConfig.from_dict({"health": section})
    assert message in str(info.value)


@settings(max_examples=20, deadline=None)
@given(
    raw=st.binary(min_size=32, max_size=32),
    key=st.sampled_from(["host", "port", "max_errors", "hots", "zzz"]),
)
def test_a_seed_pasted_into_the_health_section_is_never_echoed(raw: bytes, key: str) -> None:
    """Not in the ConfigError, nor in pydantic's own errors(), json() or message for the nested section."""
    seed = base64.b64encode(raw).decode()
    with pytest.raises(ConfigError):
        BackpackConfig.from_dict({"health": {key: seed}})
    assert_absent(seed, config_renderings({"health": {key: seed}}))


def test_a_broken_health_report_does_not_take_metrics_with_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from backpack.feed import BackpackFeed

    feed = BackpackFeed(symbols=["SOL-USDC"], channels=[compat.TRADES])
    assert feed.registry.value("backpack_health_status") == 2  # not running: down

    def broken(now_us: int, window_us: int) -> FeedHealth:
        raise KeyError("bug")

    monkeypatch.setattr(feed, "health_status", broken)
    text = feed.registry.render()[0].decode()
    assert 'backpack_health_status{path="native"} 2.0' in text and "backpack_ws_frames_total" in text
    assert feed.registry.value("backpack_errors_total", kind="internal") == 1
    assert "health status failed (KeyError)" in caplog.text
