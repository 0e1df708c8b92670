"""Done-when of the observability issue, over real HTTP on 127.0.0.1, for both paths.

Each feed runs under cryptofeed's FeedHandler against the loopback server with ``backpack.health``
configured; the test scrapes ``/metrics`` and ``/health`` as Prometheus and a probe would, sees the
counters move, then injects a sequence gap and a disconnect and watches the verdict go to degraded
(HTTP 503) and come back to ok once the feed has recovered. The native feed and the ccxt-backed feed
run the same test and must expose the same metric names.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backpack import ccxt_feed, compat
from backpack.logs import json_logging
from backpack.metrics import CATALOGUE
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until

pytestmark = pytest.mark.e2e

SYM, NAT = "BTC-USDC-PERP", "BTC_USDC_PERP"
CHANNELS = [compat.TRADES, compat.L2_BOOK]
WINDOW = 1.5  # seconds a gap or reconnect keeps the verdict degraded in these tests


class Scraper:
    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.base + "/health") as resp:
            return resp.status, await resp.json()

    async def metrics(self) -> dict[str, list[Any]]:
        """Family name -> samples, parsed by prometheus_client's own parser."""
        async with self.http.get(self.base + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = await resp.text()
        return {f.name: f.samples for f in text_string_to_metric_families(text)}

    async def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called ``name`` whose labels include ``labels``."""
        families = await self.metrics()
        samples = families.get(name.removesuffix("_total"), [])
        return sum(
            s.value
            for s in samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    async def wait_status(self, status: str, what: str, timeout: float = 20.0) -> dict[str, Any]:
        seen: list[str] = []

        async def reached() -> dict[str, Any] | None:
            code, body = await self.health()
            seen.append(body["status"])
            assert code == (200 if body["status"] == "ok" else 503), (code, body)
            return body if body["status"] == status else None

        try:
            async with asyncio.timeout(timeout):
                while (body := await reached()) is None:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"/health never said {status} ({what}); saw {sorted(set(seen))}") from None
        return body


def in_step(collector: Collector, server: Any) -> bool:
    return collector.book_sequences.get(SYM) == server.market.sequence(NAT)


@pytest.mark.parametrize("path", ["native", "ccxt"])
async def test_metrics_and_health_follow_a_gap_and_a_disconnect(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ccxt_feed, "BACKOFF_BASE", 0.01)
    collector = Collector()
    logs = io.StringIO()
    health = {"port": 0, "window_seconds": WINDOW, "max_resyncs": 0, "max_gaps": 0, "max_reconnects": 0}
    with json_logging("INFO", logs):
        async with running_server(seed=11, rate=0, ping_interval=0.2, pong_timeout=1.0) as server:
            section = backpack_section(server, private=False, health=health, native_enabled=path == "native")
            async with (
                running_handler(
                    symbols=[SYM],
                    channels=CHANNELS,
                    callbacks=collector.callbacks(CHANNELS),
                    handler_config={"log": {"disabled": True}, "backpack": section},
                ) as fh,
                aiohttp.ClientSession() as http,
            ):
                feed = fh.feeds[0]
                assert feed.feed_path == path
                await until(lambda: feed.health_server is not None, "the health endpoint")
                assert feed.health_server.url.startswith("http://127.0.0.1:")
                scrape = Scraper(http, feed.health_server.url)

                await server.wait_subscribed(f"depth.{NAT}")
                await drive(server, 200)
                await until(lambda: in_step(collector, server), "the book")
                body = await scrape.wait_status("ok", "after the start")
                assert body["path"] == path and body["connection"]["connected"] is True
                assert body["symbols"][SYM]["book"]["state"] == "synced"
                assert body["streams"][f"depth.{NAT}"]["status"] == "receiving"

                # the counters move while the market does
                families = await scrape.metrics()
                assert set(families) == {
                    n.removesuffix("_total") for n, s in CATALOGUE.items() if path in s.paths
                }
                frames = await scrape.value("backpack_ws_frames_total")
                trades = await scrape.value("backpack_ws_messages_total", stream="trade", symbol=SYM)
                await drive(server, 100)
                await until(lambda: in_step(collector, server), "the book after 100 steps")
                assert await scrape.value("backpack_ws_frames_total") > frames > 0
                assert (
                    await scrape.value("backpack_ws_messages_total", stream="trade", symbol=SYM) > trades > 0
                )
                assert await scrape.value("backpack_book_synced", symbol=SYM) == 1
                assert (await scrape.health())[1]["connection"]["messages_per_second"] > 0
                assert (
                    await scrape.value("backpack_rest_requests_total", endpoint="/api/v1/depth", status="200")
                    >= 1
                )

                # a gap: counted, degraded (503) while it is recent, then ok again
                gaps = await scrape.value("backpack_book_gaps_total", symbol=SYM)
                resyncs = await scrape.value("backpack_book_resyncs_total", symbol=SYM)
                server.faults.skip_depth(NAT)
                await drive(server, 50)
                body = await scrape.wait_status("degraded", "after a gap")
                assert any("gaps in the last" in r for r in body["reasons"]), body["reasons"]
                assert await scrape.value("backpack_book_gaps_total", symbol=SYM) == gaps + 1
                if (
                    path == "native"
                ):  # the native feed resynchronises; ccxt applies the gap (known deviation 1)
                    assert (
                        await scrape.value("backpack_book_resyncs_total", symbol=SYM, reason="gap")
                        == resyncs + 1
                    )
                else:
                    assert body["symbols"][SYM]["book"]["gaps_since_snapshot"] == 1
                await drive(server, 50)
                await until(lambda: in_step(collector, server) or path == "ccxt", "the book after the gap")
                await scrape.wait_status("ok", "once the gap is no longer recent")

                # a disconnect: reconnect counted, the book resent, degraded until the feed has recovered
                reconnects = await scrape.value("backpack_ws_reconnects_total")
                resyncs = await scrape.value("backpack_book_resyncs_total", symbol=SYM)
                server.faults.close_socket(abrupt=True)
                await until(lambda: len(server.connections) >= 2, "a second connection")
                body = await scrape.wait_status("degraded", "after the reconnect")
                assert any("reconnects in the last" in r or "not synchronised" in r for r in body["reasons"])
                await server.wait_subscribed(f"depth.{NAT}", connection_id=max(server.connections))
                assert await scrape.value("backpack_ws_reconnects_total") == reconnects + 1
                assert await scrape.value("backpack_book_resyncs_total", symbol=SYM, reason="reconnect") >= 1
                assert await scrape.value("backpack_book_resyncs_total", symbol=SYM) > resyncs
                await drive(server, 200)
                await until(lambda: in_step(collector, server), "the book after the reconnect", timeout=15)
                body = await scrape.wait_status("ok", "after recovering from the disconnect")
                assert body["connection"]["reconnects"] == reconnects + 1
                assert (
                    collector.books[SYM] == {k: dict(v) for k, v in server.book(NAT).items()}
                    or path == "ccxt"
                )
                port = feed.health_server.port
            # stopped with the feed: nothing listens any more
            assert feed.health_server is None
            with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
                pass
    # the gap was logged once, as JSON, with the fields an operator filters on
    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    gaps = [d for d in lines if d["cause"] == "gap"]
    assert len(gaps) == 1, gaps
    assert (gaps[0]["path"], gaps[0]["feed"], gaps[0]["symbol"], gaps[0]["stream"]) == (
        path,
        "BACKPACK",
        SYM,
        f"depth.{NAT}",
    )
    # the reconnect: the book's resync with its cause, the lost connection by id (native) or stream (ccxt)
    assert [(d["level"], d["symbol"], d["stream"]) for d in lines if d["cause"] == "reconnect"] == [
        ("INFO", SYM, f"depth.{NAT}")
    ]
    if path == "native":
        lost = [d for d in lines if d["logger"] == "backpack.session" and "reconnecting" in d["message"]]
        assert lost and lost[0]["connection"] == "ws-1" and lost[0]["feed"] == "BACKPACK" and lost[0]["cause"]
    else:
        lost = [d for d in lines if d["stream"] == f"depth.{NAT}" and "retrying" in d["message"]]
        assert lost and lost[0]["cause"] == "NetworkError"
