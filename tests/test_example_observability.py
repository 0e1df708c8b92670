"""``examples/observability.py`` runs: JSON logs announce the health endpoint, which answers over HTTP."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
from pathlib import Path

import aiohttp
import pytest

from backpack.logs import json_logging
from harness.pytest_plugin import running_server

from .feed_helpers import drive, until

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "observability.py"


def load_example():
    spec = importlib.util.spec_from_file_location("example_observability", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


async def test_example_serves_health_and_metrics() -> None:
    example = load_example()
    out = io.StringIO()
    async with running_server(seed=4, rate=0) as server:
        args = example.parse(
            [
                "--rest",
                server.rest_url,
                "--ws",
                server.ws_url,
                "--health-port",
                "0",
                "--symbols",
                "SOL-USDC",
                "--seconds",
                "30",
            ]
        )
        with json_logging("INFO", out):
            task = asyncio.create_task(example.run(args))
            try:

                def announced() -> str | None:
                    for line in out.getvalue().splitlines():
                        message = json.loads(line)["message"]
                        if "health endpoint at " in message:
                            return message.split("health endpoint at ")[1].split("/health")[0]
                    return None

                await until(lambda: announced() is not None, "the health endpoint in the logs")
                await server.wait_subscribed("depth.SOL_USDC")
                await drive(server, 200)
                async with aiohttp.ClientSession() as http:

                    async def status() -> int:
                        async with http.get(announced() + "/health") as resp:
                            return resp.status

                    for _ in range(500):
                        if await status() == 200:
                            break
                        await asyncio.sleep(0.02)
                    assert await status() == 200
                    async with http.get(announced() + "/metrics") as resp:
                        assert (
                            resp.status == 200
                            and 'backpack_book_synced{path="native",symbol="SOL-USDC"} 1.0'
                            in (await resp.text())
                        )
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
