"""The main job: the whole harness story on the loopback server, in about half a minute.

1. start the loopback Backpack server (a seeded market on 127.0.0.1);
2. run the native ``BackpackFeed`` live against it **while recording** the session, and withhold a few
   depth deltas half way (the gap ccxt is known to apply silently);
3. check the native books against the server's and every trade against what the server sent;
4. **replay** the recording offline and check it reproduces the live run byte for byte;
5. write the **parity report** (JSON, Markdown, HTML) of the native feed against ccxt.pro's Backpack code
   on that recording, where ccxt's divergence at the gap shows under deviation 1;
6. print where the recording and the report are, and the one-line verdict.

Exit 0 when the native path is exact and the replay reproduces it; 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

DEFAULT_SYMBOLS = ("SOL-USDC", "BTC-USDC-PERP", "kSHIB-USDC-PERP")
DEFAULT_OUT = Path("out/demo")


def _books_by_symbol(lines: list[str]) -> tuple[dict[str, dict[str, Any]], dict[str, int], list[tuple[str, str]]]:
    """The last book record, resync count and trade ids per symbol, from normalized lines."""
    books: dict[str, dict[str, Any]] = {}
    resyncs: dict[str, int] = defaultdict(int)
    trades: list[tuple[str, str]] = []
    for line in lines:
        r = json.loads(line)
        if r["type"] == "book":
            books[r["symbol"]] = r
        elif r["type"] == "book_resync":
            resyncs[r["symbol"]] += 1
        elif r["type"] == "trade":
            trades.append((r["symbol"], r["id"]))
    return books, resyncs, trades


def _server_top(server: Any, native: str, depth: int) -> dict[str, list[list[str]]]:
    from backpack.protocol.normalized import canonical_decimal

    book = server.book(native)
    bids = sorted(book["bids"].items(), reverse=True)[:depth]
    asks = sorted(book["asks"].items())[:depth]
    return {"bids": [[canonical_decimal(p), canonical_decimal(q)] for p, q in bids],
            "asks": [[canonical_decimal(p), canonical_decimal(q)] for p, q in asks]}


async def run_demo(
    *, seed: int = 2, steps: int = 1200, symbols: tuple[str, ...] = DEFAULT_SYMBOLS, fault: bool = True,
    depth: int = 10, out: Path = DEFAULT_OUT, parity: bool = True, say: Any = print,
) -> dict[str, Any]:
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    recording = out / "session.jsonl.zst"
    live, truth, frames = await _record_live(recording, seed, steps, symbols, fault, depth, say)
    report = _check_live(live, truth, symbols, fault)
    report.update(seed=seed, steps=steps, recording=str(recording))
    say(f"3. native feed: {'exact' if report['native_exact'] else 'NOT exact'} ({len(live):,} events, "
        f"{frames:,} frames recorded)")
    logging.disable(logging.WARNING)  # the replayed feeds would only repeat the live run's warnings
    try:
        report.update(await _offline(recording, live, depth, out, parity, say))
    finally:
        logging.disable(logging.NOTSET)
    report["seconds"] = round(time.monotonic() - started, 2)
    return report


async def _record_live(recording: Path, seed: int, steps: int, symbols: tuple[str, ...], fault: bool, depth: int,
                       say: Any) -> tuple[list[str], dict[str, Any], int]:
    """Steps 1-2: the server, and the native feed recorded live while the market runs (with the gap)."""
    from backpack.config import BackpackConfig
    from harness.pytest_plugin import running_server
    from harness.recording.recorder import record_session, subscription_of

    natives = {s: s.replace("-", "_") for s in symbols}
    first = natives[symbols[0]]
    truth: dict[str, Any] = {}
    async with running_server(seed=seed, rate=0, ping_interval=5.0, pong_timeout=30.0) as server:
        say(f"1. loopback Backpack server on {server.rest_url} (seed {seed})")
        config = BackpackConfig.from_dict({"rest_url": server.rest_url, "ws_url": server.ws_url})
        stop = asyncio.Event()

        async def drive() -> None:
            try:
                wanted = {f"{kind}.{n}" for n in natives.values() for kind in ("depth", "trade")}
                async with asyncio.timeout(30):
                    while not any(c.open and wanted <= c.subscriptions for c in server.connections.values()):
                        await asyncio.sleep(0.01)
                say(f"2. native feed live on {len(symbols)} symbols, recording to {recording}; {steps} market steps")
                for i in range(0, steps, 20):
                    if fault and i == steps // 2 // 20 * 20:
                        server.faults.skip_depth(first, count=5)
                        say(f"   fault: withholding the next 5 depth deltas of {first} (a sequence gap)")
                    server.step(min(20, steps - i))
                    await server.flush()
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)  # the last frames and the resync's snapshot reach the feed
                truth["books"] = {s: _server_top(server, n, depth) for s, n in natives.items()}
                truth["sequences"] = {s: server.market.sequence(n) for s, n in natives.items()}
                truth["trades"] = {(json.loads(t)["data"]["s"].replace("_", "-"), str(json.loads(t)["data"]["t"]))
                                   for c in server.connections.values() for t in c.texts
                                   if t.startswith('{"stream":"trade.')}
            finally:
                stop.set()

        driver = asyncio.ensure_future(drive())
        result = await record_session(recording, config, subscription_of(symbols, ["trades", "l2_book"]),
                                      stop=stop, depth=depth, meta={"made_by": "backpack-harness demo"})
        await driver
    truth["fault"] = f"skip_depth {first}" if fault else None
    return result.normalized, truth, result.frames


def _check_live(live: list[str], truth: dict[str, Any], symbols: tuple[str, ...], fault: bool) -> dict[str, Any]:
    """Step 3: the native books against the server's, every trade against what the server sent."""
    books, resyncs, trades = _books_by_symbol(live)
    per_symbol = {}
    for s in symbols:
        book = books.get(s) or {}
        per_symbol[s] = {
            "server_sequence": truth["sequences"][s],
            "native": {"sequence": book.get("sequence"), "resyncs": resyncs.get(s, 0),
                       "top_equal": {"bids": book.get("bids"), "asks": book.get("asks")} == truth["books"][s]},
        }
    unique = set(trades)
    exact = (all(v["native"]["top_equal"] and v["native"]["sequence"] == v["server_sequence"]
                 for v in per_symbol.values())
             and len(unique) == len(trades) and unique == truth["trades"])
    return {
        "fault": truth["fault"], "symbols": per_symbol, "native_exact": exact,
        "trades": {"server_sent": len(truth["trades"]),
                   "native": {"delivered": len(trades), "unique": len(unique), "missing": len(truth["trades"] - unique)}},
    }


async def _offline(recording: Path, live: list[str], depth: int, out: Path, parity: bool, say: Any) -> dict[str, Any]:
    """Steps 4-5: replay the recording, then the parity report against ccxt on it."""
    from harness.replay import replay_normalized

    replayed = await asyncio.to_thread(replay_normalized, recording, depth)
    identical = replayed == live
    say(f"4. replay of the recording: {'identical to the live run' if identical else 'DIFFERS from the live run'}")
    if not parity:
        return {"replay_identical": identical, "report": [], "parity": None}
    from harness.parity.deviations import load_registry
    from harness.parity.report import build, write
    from harness.parity.run import analyze

    summary = await asyncio.to_thread(analyze, str(recording), depth)
    report = build([summary], load_registry(), depth=depth)
    paths = [str(p) for p in write(report, out)]
    gaps = summary["ccxt"]["gaps_applied"]
    say(f"5. parity report against ccxt: {report['verdict']['headline']}")
    for g in gaps[:3]:
        say(f"   ccxt applied a gap on {g['symbol']} silently (expected U={g['expected']}, got U={g['got']}): "
            "deviation 1, while the native feed resynced")
    return {"replay_identical": identical, "report": paths,
            "parity": {"verdict": report["verdict"]["headline"], "passed": report["verdict"]["passed"],
                       "ccxt_gaps_applied": gaps, "deviations": summary["deviations"]}}


def format_report(report: dict[str, Any]) -> str:
    lines = ["", f"{'symbol':<18} {'server u':>10}  {'native book (top levels)':<26}"]
    for s, r in report["symbols"].items():
        n = r["native"]
        cell = ("equal" if n["top_equal"] else "DIFFERS") + (f", {n['resyncs']} resync" if n["resyncs"] else "")
        lines.append(f"{s:<18} {r['server_sequence']:>10}  {cell:<26}")
    t = report["trades"]
    lines.append("")
    lines.append(f"trades: server sent {t['server_sent']}; native delivered {t['native']['delivered']} "
                 f"({t['native']['unique']} unique, {t['native']['missing']} missing)")
    lines.append(f"recording: {report['recording']}")
    if report["report"]:
        lines.append(f"parity report: {next(p for p in report['report'] if p.endswith('.html'))}")
    parity = report["parity"]
    verdict = (f"native path exact: {'yes' if report['native_exact'] else 'NO'}; replay identical: "
               f"{'yes' if report['replay_identical'] else 'NO'}"
               + (f"; {parity['verdict']}" if parity else "") + f"  ({report['seconds']} s)")
    lines.append(verdict)
    return "\n".join(lines)
