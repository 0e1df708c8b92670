"""``import backpack`` registers BACKPACK; a cryptofeed YAML ``backpack:`` section configures it; ``serve`` runs."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest
from cryptofeed import FeedHandler

from backpack import compat
from backpack.feed import BackpackFeed
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, drive, until


def test_import_registers_backpack() -> None:
    from cryptofeed.exchanges import EXCHANGE_MAP

    assert "BACKPACK" in EXCHANGE_MAP


@pytest.mark.e2e
async def test_yaml_backpack_section_configures_the_feed(tmp_path) -> None:
    collector = Collector()
    async with running_server(seed=6, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        path = tmp_path / "config.yaml"
        path.write_text(
            "log:\n  disabled: true\n"
            f"backpack:\n  rest_url: {server.rest_url}\n  ws_url: {server.ws_url}\n  window_ms: 7000\n  depth_limit: 500\n"
        )
        fh = FeedHandler(config=str(path))
        fh.add_feed("BACKPACK", symbols=["SOL-USDC"], channels=[compat.L2_BOOK],
                    callbacks=collector.callbacks([compat.L2_BOOK]))
        feed = fh.feeds[0]
        assert isinstance(feed, BackpackFeed)
        assert (feed.bp_config.rest_url, feed.bp_config.window_ms, feed.bp_config.depth_limit) == (server.rest_url, 7000, 500)
        token = await compat.start_handler(fh)
        try:
            await server.wait_subscribed("depth.SOL_USDC")
            await drive(server, 100)
            await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"))
        finally:
            await compat.stop_handler(fh, token)
        assert any(path.startswith("/api/v1/depth") and "limit=500" in path for _, path, _ in server.rest_log)


def test_serve_command_starts_a_loopback_server() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--seed", "3", "--rate", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        line = proc.stdout.readline()
        assert line.startswith("REST  http://127.0.0.1:"), line
        base = line.split()[1].split("/api/")[0]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        with opener.open(f"{base}/api/v1/status", timeout=5) as resp:
            assert resp.status == 200 and b"Ok" in resp.read()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
