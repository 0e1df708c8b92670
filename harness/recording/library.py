"""The fixture library in ``recordings/``: how each bundled recording is made, and its sidecar.

Every file is produced by the real record path (:func:`harness.recording.recorder.record_session`: the
live ``BackpackFeed`` on a ``RecordingTransport``) against the loopback server started here, which is
stepped deterministically and made to misbehave at planned moments. Rebuild one with
``backpack-harness fixtures build NAME``; the sidecar next to it says how and when it was made, with
which versions, its sha256, and the sha256 of the normalized (schema v1) events the live feed delivered
while recording — which a replay of the file must reproduce byte for byte.

When only the writer's encoding changes (its zstd level, its block size), ``recompress(NAME)`` (``python -m
harness.recording.library recompress NAME``) writes the same events again with the current writer and updates
the sidecar's ``sha256`` and ``bytes``; the events, and so the normalized hash, stay as recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backpack.config import BackpackConfig
from backpack.protocol.subscriptions import (
    BALANCES,
    CANDLES,
    FILLS,
    FUNDING,
    L2_BOOK,
    LIQUIDATIONS,
    OPEN_INTEREST,
    ORDER_INFO,
    POSITIONS,
    RFQ,
    TICKER,
    TICKER_24H,
    TRADES,
)

from .format import library_versions, utc_timestamp
from .recorder import RecordResult, Subscription, record_session
from .redaction import Redactor

LIBRARY = Path(__file__).resolve().parents[2] / "recordings"
SUFFIX = ".jsonl.zst"
PUBLIC_CHANNELS = (TRADES, L2_BOOK, TICKER, TICKER_24H, CANDLES, FUNDING, OPEN_INTEREST, LIQUIDATIONS)
PRIVATE_CHANNELS = (ORDER_INFO, FILLS, POSITIONS, BALANCES)
SAMPLES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "ws"


@dataclass(frozen=True)
class Plan:
    name: str
    description: str
    subscription: Subscription
    server: dict[str, Any]  # BackpackServer keyword arguments (seed, market_config, ...)
    drive: Callable[[Any, asyncio.Event], Awaitable[None]]  # (server, stop) -> steps, faults, then stop.set()
    private: bool = False
    depth: int = 10


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def normalized_sha256(lines: list[str]) -> str:
    """The hash a sidecar keeps: of the normalized lines, each followed by a newline (as ``replay`` prints)."""
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()


def sidecar_path(recording: Path) -> Path:
    return recording.with_name(recording.name.removesuffix(SUFFIX) + ".sidecar.json")


# --- driving the loopback server ------------------------------------------------------------------


async def _steps(server: Any, n: int, chunk: int = 40) -> None:
    """Advance the market ``n`` steps, letting every frame reach the feed between chunks."""
    done = 0
    while done < n:
        k = min(chunk, n - done)
        server.step(k)
        done += k
        await server.flush(timeout=30)
        await asyncio.sleep(0.002)


async def _settle(server: Any, seconds: float = 0.5) -> None:
    await server.flush(timeout=30)
    await asyncio.sleep(seconds)


async def _wait_resubscribed(server: Any, stream: str, after: int) -> None:
    await server.wait_connections(after + 1, timeout=30)
    await server.wait_subscribed(stream, timeout=30, connection_id=max(server.connections))


async def _drive_public(server: Any, stop: asyncio.Event) -> None:
    await server.wait_subscribed("depth.BTC_USDC_PERP", timeout=30)
    await _steps(server, 6_000)
    server.faults.close_socket(1001, "Going away (planned reconnect)")
    await _wait_resubscribed(server, "depth.BTC_USDC_PERP", 1)
    await _steps(server, 6_400)
    await _settle(server)
    stop.set()


async def _drive_private(server: Any, stop: asyncio.Event) -> None:
    await server.wait_subscribed("account.orderUpdate.SOL_USDC", timeout=30)
    await server.wait_subscribed("account.rfqUpdate.SOL_USDC_RFQ", timeout=30)
    await _steps(server, 2_500)
    await _settle(server)
    stop.set()


def _samples() -> list[str]:
    """The payload samples of ../shared/reference (copied to tests/fixtures/ws), exact text, in name order."""
    return [(SAMPLES / name).read_text().strip() for name in sorted(p.name for p in SAMPLES.glob("*.json"))]


async def _drive_edge(server: Any, stop: asyncio.Event) -> None:
    await server.wait_subscribed("account.rfqUpdate", timeout=30)
    for text in _samples():
        server.faults.send_raw(json.dumps(json.loads(text), separators=(",", ":")))  # one line, as on the wire
        await _steps(server, 2)
    for text in _samples():  # again, with E/T/U/u/t as strings as ccxt's samples show them
        doc = json.loads(text)
        data = doc.get("data")
        if isinstance(data, dict):
            doc["data"] = {k: str(v) if k in "ETUut" and type(v) is int else v for k, v in data.items()}
        server.faults.send_raw(json.dumps(doc, separators=(",", ":")))
        await _steps(server, 2)
    await _steps(server, 100)
    await _settle(server)
    stop.set()


async def _drive_errors(server: Any, stop: asyncio.Event) -> None:
    await server.wait_subscribed("depth.SOL_USDC", timeout=30)
    await _steps(server, 300)
    for code, message in ((4002, "Parse error"), (4006, "Invalid stream"), (4008, "Invalid depth window"), (4999, "")):
        server.faults.send_error(code, message)
    for text in ("not json", '{"stream":"depth.SOL_USDC"', "[]", '{"stream":"what.ever","data":{}}',
                 '{"stream":"trade.SOL_USDC","data":{"e":"trade","s":"SOL_USDC","p":"NaN"}}', '"\\ud800"'):
        server.faults.send_raw(text)
    await _steps(server, 200)
    server.faults.skip_depth("SOL_USDC")  # a gap: the book resyncs ...
    server.faults.fail_snapshots(count=2, status=503)  # ... and its first two snapshots fail
    await _steps(server, 400)
    server.faults.close_socket(abrupt=True)  # a disconnect without a Close frame
    await _wait_resubscribed(server, "depth.SOL_USDC", 1)
    await _steps(server, 400)
    await _settle(server)
    stop.set()


def _edge_market() -> Any:
    from harness.loopback.market import DEFAULT_MARKETS, MarketConfig

    # One market the samples never name, so every frame for the sample symbols is a sample.
    return MarketConfig(seed=4, markets=tuple(m for m in DEFAULT_MARKETS if m.symbol == "kSHIB_USDC_PERP"))


def _private_market() -> Any:
    from harness.loopback.market import MarketConfig

    return MarketConfig(seed=21, p_private=0.35, p_rfq=0.08, p_trigger=0.04)


_SAMPLE_SYMBOLS = ["ETH-USDC", "ETH-USDC-PERP", "BTC-USDC-PERP", "SOL-USDC", "SOL-USD", "SOL-USDC-PERP"]

PLANS: dict[str, Plan] = {
    "public": Plan(
        "public",
        "2 spot + 2 perp symbols, every public channel, 12,400 market steps (over 10 minutes of exchange time), "
        "a planned server-side close (1001) and reconnect half way",
        {c: ["SOL-USDC", "BTC-USDC", "SOL-USDC-PERP", "BTC-USDC-PERP"] for c in PUBLIC_CHANNELS},
        {"seed": 101},
        _drive_public,
    ),
    "private": Plan(
        "private",
        "the loopback test account: orders with several fills, trigger orders, positions (with the snapshot "
        "sent on subscribe), balances and RFQs, beside the public trades and book; keys redacted",
        {**{c: ["SOL-USDC", "SOL-USDC-PERP"] for c in (TRADES, L2_BOOK, *PRIVATE_CHANNELS)}, RFQ: ["SOL-USDC-RFQ"]},
        {"market_config": _private_market},
        _drive_private,
        private=True,
    ),
    "edge": Plan(
        "edge",
        "every WS payload sample of the official docs and ccxt (tests/fixtures/ws), pushed by the server as "
        "frames, once as given and once with E/T/U/u/t as strings; their symbols have no market, so depth "
        "snapshots are refused (400) and retried",
        {**{c: _SAMPLE_SYMBOLS for c in PUBLIC_CHANNELS}, **{c: [] for c in PRIVATE_CHANNELS}, RFQ: []},
        {"market_config": _edge_market},
        _drive_edge,
        private=True,
    ),
    "errors": Plan(
        "errors",
        "error frames (4002, 4006, 4008, an undocumented code), malformed frames, a sequence gap whose two "
        "first snapshots answer 503, and an abrupt disconnect with reconnect",
        {c: ["SOL-USDC", "BTC-USDC-PERP"] for c in (TRADES, L2_BOOK, TICKER)},
        {"seed": 33},
        _drive_errors,
    ),
}


async def build(name: str, directory: Path = LIBRARY) -> tuple[Path, dict[str, Any]]:
    """Record one plan into ``directory`` and write its sidecar; returns (recording, sidecar dict)."""
    from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET
    from harness.pytest_plugin import running_server

    plan = PLANS[name]
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{name}{SUFFIX}"
    kwargs = {k: (v() if callable(v) else v) for k, v in plan.server.items()}
    async with running_server(rate=0, ping_interval=2.0, pong_timeout=60.0, **kwargs) as server:
        section: dict[str, Any] = {"rest_url": server.rest_url, "ws_url": server.ws_url}
        if plan.private:
            section.update(api_key=TEST_ACCOUNT_API_KEY, private_key=TEST_ACCOUNT_SECRET)
        config = BackpackConfig.from_dict(section)
        stop = asyncio.Event()

        async def drive() -> None:
            try:
                await plan.drive(server, stop)
            finally:
                stop.set()  # a driver that fails or times out ends the recording (and the build fails)

        driver = asyncio.ensure_future(drive())
        try:
            result = await record_session(out, config, plan.subscription, stop=stop, depth=plan.depth,
                                          meta={"fixture": name})
        finally:
            if not driver.done():
                driver.cancel()
        driver.result()  # a driver failure is a failed build
    sidecar = _sidecar(plan, out, result)
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return out, sidecar


def _sidecar(plan: Plan, out: Path, result: RecordResult) -> dict[str, Any]:
    if result.failure is not None:
        raise RuntimeError(f"recording {out} failed: {result.failure!r}")
    kinds: dict[str, int] = {}
    for line in result.normalized:
        kind = json.loads(line)["type"]
        kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "name": plan.name,
        "description": plan.description,
        "file": out.name,
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "provenance": {
            "made_by": f"backpack-harness fixtures build {plan.name}",
            "how": "harness.recording.library: the live BackpackFeed recorded through RecordingTransport against "
                   "the loopback server (harness.loopback), stepped and faulted as the plan says",
            "created_at": utc_timestamp(),
            "versions": library_versions(),
            "server": {k: (repr(v) if not isinstance(v, int | str) else v) for k, v in plan.server.items()},
        },
        "subscription": {c: list(s) for c, s in plan.subscription.items()},
        "events": result.events,
        "frames": result.frames,
        "expected": {
            "depth": plan.depth,
            "lines": len(result.normalized),
            "types": dict(sorted(kinds.items())),
            "normalized_sha256": normalized_sha256(result.normalized),
        },
    }


def recompress(name: str, directory: Path = LIBRARY) -> dict[str, Any]:
    """Write a bundled recording's events again with the current writer defaults (same events, new bytes)
    and refresh the sidecar's file facts; refuses a file that does not read back identically."""
    from .format import RecordingEnd
    from .reader import read_recording
    from .writer import RecordingWriter

    out = directory / f"{name}{SUFFIX}"
    rec = read_recording(out)
    if not rec.complete:
        raise RuntimeError(f"{out} is damaged or unfinished; rebuild it with `backpack-harness fixtures build {name}`")
    tmp = out.with_name(f".{name}.rewrite{SUFFIX}")
    writer = RecordingWriter(tmp, rec.header, redactor=_Verbatim())
    try:
        for event in rec.events:
            writer.write(event)
    finally:
        writer.close(end=False)
    again = read_recording(tmp)
    if again.header != rec.header or again.events != rec.events or not isinstance(again.events[-1], RecordingEnd):
        tmp.unlink()
        raise RuntimeError(f"{out}: the rewritten file does not hold the same header and events")
    tmp.replace(out)
    sidecar = load_sidecar(out)
    sidecar.update(sha256=sha256_file(out), bytes=out.stat().st_size)
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return sidecar


class _Verbatim(Redactor):
    """The events were redacted when recorded; rewriting them must not redact them a second time."""

    def event(self, event: Any) -> Any:
        return event

    def header(self, header: Any) -> Any:
        return header


def load_sidecar(recording: Path) -> dict[str, Any]:
    return json.loads(sidecar_path(recording).read_text())


def bundled() -> list[Path]:
    return sorted(LIBRARY.glob(f"*{SUFFIX}"))


__all__ = ["LIBRARY", "PLANS", "build", "bundled", "load_sidecar", "normalized_sha256", "recompress", "sidecar_path"]


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 3 or sys.argv[1] != "recompress" or any(n not in PLANS for n in sys.argv[2:]):
        sys.exit(f"usage: python -m harness.recording.library recompress NAME... (known: {', '.join(PLANS)})")
    for fixture in sys.argv[2:]:
        facts = recompress(fixture)
        print(f"{fixture}: {facts['bytes']:,} bytes, sha256 {facts['sha256']}")
