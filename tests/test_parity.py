"""Parity against ccxt: the comparator, the registry's evidence-bound matchers, the oracle, the gate."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from harness.parity.compare import Difference, FieldDiff, Stream, compare
from harness.parity.decimals import from_ccxt, places
from harness.parity.deviations import Context, RegistryError, classifier, load_registry, parse_entry
from harness.parity.run import analyze

ROOT = Path(__file__).resolve().parents[1]
TRADE_FRAME = '{"stream":"trade.SOL_USDC","data":{"e":"trade","E":1694688638091000,"s":"SOL_USDC","t":1,"T":1694688638089000}}'


# --- decimals ------------------------------------------------------------------------------------------


def test_ccxt_floats_come_back_as_canonical_decimals_at_the_markets_precision() -> None:
    assert places(0.01) == 2 and places(1.0) == 0 and places(None) is None
    assert from_ccxt(0.1 + 0.2, 2) == "0.3"  # float arithmetic noise removed at the tick
    assert from_ccxt(0.1 + 0.2) == "0.30000000000000004"  # no precision known: the double's shortest text
    assert from_ccxt(0.125, 2) == "0.125"  # off the tick grid: the value is never moved
    assert from_ccxt(86700.0, 1) == "86700" and from_ccxt(-0.0) == "0" and from_ccxt(None) is None
    assert from_ccxt(158299.28111875868) == "158299.2811187587"  # the limit: a double keeps ~16 digits


# --- comparator --------------------------------------------------------------------------------------------


def _trade(i: int, price: str = "1.5", ts: int = 1_000_000, **extra: Any) -> dict[str, Any]:
    return {"type": "trade", "symbol": "SOL-USDC", "id": str(i), "side": "buy", "price": price, "amount": "2",
            "timestamp": ts, "receipt": i, **extra}


def _book(seq: int, bid: str, kind: str = "delta") -> dict[str, Any]:
    return {"type": "book", "symbol": "SOL-USDC", "sequence": seq, "kind": kind, "bids": [[bid, "1"]],
            "asks": [["2", "1"]], "receipt": seq}


def test_trades_pair_by_id_and_compare_decimals_as_numbers_and_times_at_the_coarser_resolution() -> None:
    a = Stream("a", [_trade(1, "1.50", 1_000_123), _trade(2), _trade(3)])
    b = Stream("b", [_trade(2), _trade(1, "1.5", 1_000_000), _trade(4)], resolution_us=1000)
    ch = compare(a, b).channels["trade"]
    assert (ch.paired, ch.matched) == (2, 2)
    assert sorted((d.kind, d.key[1]) for d in ch.differences) == [("only_a", "3"), ("only_b", "4")]
    changed = compare(Stream("a", [_trade(1, "1.5")]), Stream("b", [_trade(1, "1.6")])).channels["trade"]
    assert [(f.field, f.a, f.b) for f in changed.differences[0].fields] == [("price", "1.5", "1.6")]


def test_books_compare_states_at_the_same_sequence_and_tell_holes_from_unsynchronised_stretches() -> None:
    native = [_book(10, "1", "snapshot"), _book(11, "1"), _book(12, "1.1"), _book(13, "1.1")]
    # ccxt synced later (10 is not comparable), lacks 12 inside its run (a hole), and differs at 13
    other = [_book(11, "1", "snapshot"), _book(13, "1.2")]
    ch = compare(Stream("n", native), Stream("c", other)).channels["book"]
    assert ch.paired == 2 and ch.matched == 1 and ch.not_comparable_a == 1
    kinds = sorted((d.kind, d.key[1]) for d in ch.differences)
    assert kinds == [("only_a", 12), ("value", 13)]
    resync = [_book(10, "1", "snapshot"), {"type": "book_resync", "symbol": "SOL-USDC", "receipt": 10.5},
              _book(14, "1", "snapshot")]
    later = compare(Stream("n", resync), Stream("c", [_book(10, "1", "snapshot"), _book(12, "9"), _book(14, "1")]))
    assert later.channels["book"].not_comparable_b == 1 and not later.channels["book"].differences


# --- registry -----------------------------------------------------------------------------------------------


def test_the_registry_holds_the_seven_known_deviations_each_with_evidence() -> None:
    entries = load_registry()
    assert sorted(e.number for e in entries if e.number) == [1, 2, 3, 4, 5, 6, 7]
    assert any("trigger" in e.id for e in entries)
    for e in entries:
        frame = json.loads(e.evidence["frame"])  # exact frame text
        data = frame.get("data") if isinstance(frame.get("data"), dict) else {}
        assert e.evidence["documented"].strip() and e.evidence["source"].strip()
        for rule in e.rules:
            named = {k for k, spec in (rule.when.get("frame") or {}).items() if not (isinstance(spec, dict)
                                                                                     and spec.get("absent"))}
            for side in ("a", "b"):
                spec = rule.when.get(side)
                if isinstance(spec, dict) and "frame" in spec:
                    named.add(spec["frame"])
            if data and e.id not in ("ccxt-09-private-times-from-event-time", "ccxt-13-order-vocabulary",
                                     "ccxt-16-no-ws-handler"):
                assert named <= set(data), (e.id, named - set(data))


def test_an_entry_without_evidence_is_refused() -> None:
    entry = {"id": "x", "title": "t", "description": "d", "explains": [{"type": "trade", "fields": ["price"]}]}
    with pytest.raises(RegistryError, match="evidence"):
        parse_entry(entry)
    with pytest.raises(RegistryError, match="documented"):
        parse_entry({**entry, "evidence": {"frame": "{}", "source": "s"}})
    with pytest.raises(RegistryError, match="frame"):
        parse_entry({**entry, "evidence": {"frame": "not json", "documented": "d", "source": "s"}})


class _OneFrame:
    """Frames stand-in: every record came from TRADE_FRAME."""

    def data(self, index: int | None) -> dict[str, Any]:
        return json.loads(TRADE_FRAME)["data"]

    def repeats(self, index: int, fields: tuple[str, ...]) -> bool:
        return False


def test_a_deviation_explains_a_difference_only_where_its_evidence_holds_on_the_frame() -> None:
    classify = classifier(load_registry(), Context(frames=_OneFrame()))  # type: ignore[arg-type]
    native = _trade(1, ts=1694688638089000, frame=0)
    ccxt = _trade(1, ts=1694688638091000, frame=0)  # E at ms: deviation 2
    diff = Difference("value", "trade", "SOL-USDC", ("SOL-USDC", "1"), native, ccxt,
                      [FieldDiff("timestamp", native["timestamp"], ccxt["timestamp"])])
    classify(diff)
    assert diff.explained and diff.deviations == ["ccxt-02-trade-time-from-event-time"]
    wrong = dict(native, timestamp=1694688638080000)  # a native bug: neither T nor E
    bug = Difference("value", "trade", "SOL-USDC", ("SOL-USDC", "1"), wrong, ccxt,
                     [FieldDiff("timestamp", wrong["timestamp"], ccxt["timestamp"])])
    classify(bug)
    assert not bug.explained


# --- recordings ----------------------------------------------------------------------------------------------


async def _record_gap(path: Path) -> dict[str, Any]:
    """A real recording (the record path) of one symbol, with depth deltas withheld half way."""
    from backpack.config import BackpackConfig
    from harness.pytest_plugin import running_server
    from harness.recording.recorder import record_session

    async with running_server(seed=7, rate=0, ping_interval=5.0, pong_timeout=60.0) as server:
        stop = asyncio.Event()
        cfg = BackpackConfig.from_dict({"rest_url": server.rest_url, "ws_url": server.ws_url})
        task = asyncio.ensure_future(record_session(path, cfg, {"trades": ["SOL-USDC"], "l2_book": ["SOL-USDC"]},
                                                    stop=stop))
        await server.wait_subscribed("depth.SOL_USDC", timeout=30)

        async def steps(n: int) -> None:
            for _ in range(0, n, 20):
                server.step(20)
                await server.flush(timeout=30)
                await asyncio.sleep(0.005)

        await steps(600)
        server.faults.skip_depth("SOL_USDC", count=12)
        await steps(600)
        await asyncio.sleep(0.3)
        stop.set()
        result = await task
        skipped = [f.detail["u"] for f in server.faults.fired if f.kind == "skip_depth"]
        book = server.book("SOL_USDC")
        return {"skipped": skipped, "final": result.normalized, "server_book": book}


@pytest.fixture(scope="module")
def gap_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("parity") / "gap.jsonl.zst"
    info = asyncio.run(_record_gap(path))
    return path, info


def test_an_injected_gap_shows_ccxts_silent_divergence_at_the_right_sequence_and_the_native_side_clean(
        gap_recording: tuple[Path, dict[str, Any]]) -> None:
    path, info = gap_recording
    skipped = info["skipped"]
    assert len(skipped) == 12 and skipped == sorted(skipped)
    summary = analyze(str(path))
    # ccxt applied the gap where it is: the first withheld delta is what it should have seen next, and the
    # delta it applied instead is the first one sent after the withheld ones
    gaps = summary["ccxt"]["gaps_applied"]
    assert len(gaps) == 1 and gaps[0]["expected"] == skipped[0] and gaps[0]["got"] > skipped[-1]
    # the native feed saw the same gap and resynchronised
    resyncs = [r for r in summary["native"]["resyncs"] if r["reason"] == "gap"]
    assert [(r["expected"], r["got"]) for r in resyncs] == [(gaps[0]["expected"], gaps[0]["got"])]
    # ccxt's book diverged after the gap, and the report files that under deviation 1
    book = summary["channels"]["book"]
    assert book["explained"] > 0 and book["unexplained"] == 0
    first = summary["first_divergence"]
    assert first["type"] == "book" and first["deviations"] == ["ccxt-01-unchecked-gaps"]
    assert first["key"][1] > skipped[-1]
    assert summary["book_context"]["native"] and summary["book_context"]["ccxt"]
    # nothing unexplained anywhere: the native side is clean; and its last book is the server's
    assert summary["unexplained"] == 0
    last = [json.loads(line) for line in info["final"] if '"type":"book"' in line][-1]
    truth = info["server_book"]
    for side, best_first in (("bids", True), ("asks", False)):
        top = sorted(truth[side].items(), reverse=best_first)[:10]
        assert [(Decimal(p), Decimal(q)) for p, q in last[side]] == top


def test_the_gate_fails_when_differences_are_unexplained_and_the_three_reports_come_from_one_command(
        gap_recording: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from harness.cli import main

    path, _ = gap_recording
    out = tmp_path / "report"
    assert main(["parity", str(path), "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json", "report.md"]
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"]["ga_gate"] == "pass" and report["recordings"][0]["sha256"]
    head = (out / "report.md").read_text().splitlines()[:5]
    assert head[2] == "## Verdict: **PASS**" and head[4].startswith("GA gate PASS")
    empty = tmp_path / "no-registry"
    empty.mkdir()
    assert main(["parity", str(path), "--out", str(tmp_path / "strict"), "--registry", str(empty),
                 "--no-progress"]) == 5
    strict = json.loads((tmp_path / "strict" / "report.json").read_text())
    assert strict["verdict"]["ga_gate"] == "fail" and strict["verdict"]["unexplained"] > 0
    assert main(["parity", str(path), "--out", str(tmp_path / "loose"), "--registry", str(empty),
                 "--max-unexplained", str(strict["verdict"]["unexplained"]), "--no-progress"]) == 0


def test_unreadable_inputs_and_outputs_exit_with_the_recording_codes(tmp_path: Path) -> None:
    from harness.cli import main

    assert main(["parity", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 66
    (tmp_path / "blocker").write_text("")
    assert main(["parity", str(ROOT / "recordings" / "edge.jsonl.zst"), "--out",
                 str(tmp_path / "blocker" / "sub")]) == 73
    assert main(["parity", "--out", str(tmp_path / "o")]) == 64


@pytest.mark.e2e
def test_every_bundled_recording_trades_and_books_match_after_registered_deviations(tmp_path: Path) -> None:
    """Done-when of the parity issue, on the whole fixture library, through the command (process pool)."""
    from harness.cli import main

    recordings = sorted(str(p) for p in (ROOT / "recordings").glob("*.jsonl.zst"))
    assert main(["parity", *recordings, "--out", str(tmp_path), "--jobs", "2", "--no-progress"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"]["passed"] and len(report["recordings"]) == len(recordings) == 4
    totals = report["totals"]
    for gated in ("trade", "book"):
        assert totals[gated]["paired"] > 10_000 and totals[gated]["unexplained"] == 0
        assert totals[gated]["parity_rate"] == 1.0
    for other in ("bbo", "ticker", "candle", "order", "position", "balance"):
        assert totals[other]["match_rate"] is not None  # reported, whatever it is
    by_name = {r["recording"]: r for r in report["recordings"]}
    private = by_name["private.jsonl.zst"]["deviations"]
    assert private.get("ccxt-04-order-fill-fields", 0) > 0 and private.get("ccxt-05-position-fields", 0) > 0
    assert private.get("ccxt-08-trigger-order-size", 0) > 0


@pytest.mark.e2e
async def test_live_shadow_parity_compares_both_feeds_against_the_loopback_server() -> None:
    from harness.parity.live import run_live

    summary = await run_live(seed=2, steps=300, depth=10)
    trade, book = summary["channels"]["trade"], summary["channels"]["book"]
    assert trade["paired"] > 50 and trade["unexplained"] == 0
    assert book["paired"] > 5 and book["unexplained"] == 0  # ccxt's coalesced states equal the native ones
