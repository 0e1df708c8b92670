"""The conformance suite: its catalog, its verdicts on the clients, its report in a browser, its CLI.

Verdicts that the protocol facts predict are checked against real runs over loopback sockets: ccxt.pro
never checks depth sequences once synced, so it fails "gap after sync" (2.3) with a wrong book; the
native feed resyncs and passes it. The native feed must pass the whole catalog (the suite is the
project's regression gate): that run goes through the command, in parallel.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from harness.cli import EXIT_CANTCREAT, EXIT_OK, EXIT_USAGE, main
from harness.conformance import catalog as cat
from harness.conformance import report as rep
from harness.conformance.catalog import CatalogError, load_catalog, load_file, select
from harness.conformance.judge import FAIL, NOT_INSTALLED, PASS, UNSUPPORTED, unavailable
from harness.loopback.faults import Faults

pytestmark = pytest.mark.e2e


# -- the catalog --------------------------------------------------------------------------------------


def test_the_catalog_loads_with_unique_numbers_and_one_sentence_each() -> None:
    cases = load_catalog()
    assert len(cases) >= 40
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids) and len({c.name for c in cases}) == len(cases)
    areas = {c.area for c in cases}
    assert areas == {"streams", "book-sync", "keepalive", "reconnect", "errors", "transport", "rest"}
    for c in cases:
        assert re.fullmatch(r"[1-9]\d?\.[1-9]\d?", c.id)
        assert c.expect.endswith(".") and not re.search(r"[.!?]\s+[A-Z]", c.expect[:-1]), c.id
        assert (cat.CASES_DIR.parents[2] / "recordings" / f"{c.recording}.jsonl.zst").exists()
        for f in c.faults:
            assert f.hook in cat.HOOKS + cat.PSEUDO_HOOKS
    named = {c.name for c in cases}
    for wanted in ("gap-after-sync", "snapshot-behind", "snapshot-ahead", "duplicate-delta", "reordered-deltas",
                   "already-applied-delta", "ints-as-strings", "null-book-ticker-sides", "aggregated-depth",
                   "pings-answered", "silence-detected", "close-1000", "close-1001", "same-streams",
                   "private-resigned", "error-4002", "error-4006", "error-4008", "private-refused-once",
                   "deflate-on", "deflate-off", "split-7-bytes", "slow-consumer", "snapshot-503",
                   "retry-after-429", "plain-text-error", "snapshot-204"):
        assert wanted in named, wanted


def test_select_by_number_name_and_glob() -> None:
    cases = load_catalog()
    assert [c.id for c in select(cases, ["2.3"])] == ["2.3"]
    assert {c.id for c in select(cases, ["*gap*"])} >= {"2.3", "2.4", "2.8", "2.9", "4.5"}
    assert all(c.area == "keepalive" for c in select(cases, ["3.*"]))
    assert select(cases, ["9.*"]) == []


@pytest.mark.parametrize("body, message", [
    ("area: x\ntitle: X\ncases:\n  - {id: '1.1', name: a, expect: One.}\n", "slice"),
    ("area: x\ntitle: X\ncases:\n  - {id: 'one', name: a, expect: One.}\n", "numbered"),
    ("area: x\ntitle: X\ncases:\n  - {id: '1.1', name: a, expect: 'Two. Sentences.', slice: {recording: public, "
     "frames: 10, symbols: [SOL-USDC], channels: [trades]}}\n", "one sentence"),
    ("area: x\ntitle: X\ncases:\n  - {id: '1.1', name: a, expect: One., slice: {recording: public, frames: 10, "
     "symbols: [SOL-USDC], channels: [trades]}, faults: [{hook: explode}]}\n", "unknown hook"),
    ("area: x\ntitle: X\ncases:\n  - {id: '1.1', name: a, expect: One., slice: {recording: public, frames: 10, "
     "symbols: [SOL-USDC], channels: [trades]}, faults: [{hook: skip_depth, sideways: 1}]}\n", "takes no sideways"),
    ("area: x\ntitle: X\ncases: [\n", "cannot read"),
])
def test_a_broken_case_file_is_one_line_naming_the_problem(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(body)
    with pytest.raises(CatalogError) as err:
        load_file(path)
    assert message in str(err.value) and "\n" not in str(err.value) and str(err.value).startswith("x.yaml")


def test_duplicate_numbers_are_refused(tmp_path: Path) -> None:
    case = ("  - {id: '1.1', name: %s, expect: One., slice: {recording: public, frames: 10, symbols: [SOL-USDC], "
            "channels: [trades]}}\n")
    (tmp_path / "a.yaml").write_text("area: a\ntitle: A\ncases:\n" + case % "first")
    (tmp_path / "b.yaml").write_text("area: b\ntitle: B\ncases:\n" + case % "second")
    with pytest.raises(CatalogError, match="'1.1' is already used in a.yaml"):
        load_catalog(tmp_path)


# -- loopback hooks the catalog added -------------------------------------------------------------


def test_at_frame_fires_once_for_its_connection_only() -> None:
    faults, calls = Faults(), []
    faults.at_frame(3, lambda: calls.append("a"), connection=2)
    assert faults.take_at_frame(1, 5) == [] and calls == []
    assert faults.take_at_frame(2, 2) == []
    for action in faults.take_at_frame(2, 3):
        action()
    assert calls == ["a"] and faults.take_at_frame(2, 4) == [] and faults.count("at_frame") == 1


def test_snapshot_shift_reorder_and_empty_answers_are_counted() -> None:
    faults = Faults()
    with pytest.raises(ValueError):
        faults.shift_snapshots(0)
    faults.shift_snapshots(-3, count=1)
    faults.reorder_depth("SOL_USDC", count=1)
    faults.empty_snapshots(count=2)
    assert faults.take_snapshot_shift() == -3 and faults.take_snapshot_shift() == 0
    assert not faults.take_reorder_depth("BTC_USDC") and faults.take_reorder_depth("SOL_USDC")
    assert not faults.take_reorder_depth("SOL_USDC")
    assert [faults.take_empty_snapshot() for _ in range(3)] == [True, True, False]


# -- clients that cannot run ------------------------------------------------------------------------


def test_a_client_that_is_not_installed_is_never_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.conformance.clients import sdk
    from harness.conformance.run import run_case

    monkeypatch.setattr(sdk, "importable", lambda _module: False)
    case = select(load_catalog(), ["1.1"])[0]
    result = run_case(case, "backpack-exchange-sdk")
    assert result["verdict"] == NOT_INSTALLED and "conformance-clients" in result["reasons"][0]
    built = rep.build([result], ["backpack-exchange-sdk"], command="x", catalog_size=1)
    assert built["totals"]["backpack-exchange-sdk"]["pass"] == 0
    assert built["totals"]["backpack-exchange-sdk"][NOT_INSTALLED] == 1


def test_a_case_beyond_a_clients_abilities_is_unsupported() -> None:
    case = select(load_catalog(), ["2.3"])[0]  # needs an order book, which ccxt.pro keeps and the SDK does not
    result = unavailable(case, "backpack-exchange-sdk")
    if result is not None and result["verdict"] == NOT_INSTALLED:
        assert "not installed" in result["reasons"][0]
    else:
        assert result is not None and result["verdict"] == UNSUPPORTED and "l2_book" in result["reasons"][0]
    assert unavailable(case, "ccxt-pro") is None


def test_the_gate_counts_only_the_native_feeds_failures() -> None:
    def r(case: str, client: str, verdict: str) -> dict[str, Any]:
        return {"case": case, "name": "n", "area": "a", "area_title": "A", "expect": "E.", "client": client,
                "verdict": verdict, "reasons": []}

    built = rep.build([r("1.1", "native", PASS), r("1.1", "ccxt-pro", FAIL)], ["native", "ccxt-pro"],
                      command="x", catalog_size=1)
    assert built["native_failed"] == []
    built = rep.build([r("1.1", "native", FAIL)], ["native"], command="x", catalog_size=1)
    assert built["native_failed"] == ["1.1"]


# -- the CLI: hostile inputs ----------------------------------------------------------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and "Traceback" not in err
    return err


def test_an_unknown_client_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--client", "hummingbot", "--out", str(tmp_path / "o")]) == EXIT_USAGE
    err = _one_line_error(capsys)
    assert "unknown client 'hummingbot'" in err and "native" in err
    assert not (tmp_path / "o").exists()


def test_a_glob_matching_no_case_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["conform", "--cases", "99.*", "--out", str(tmp_path / "o")]) == EXIT_USAGE
    assert "no case matches 99.*" in _one_line_error(capsys)


def test_an_out_that_cannot_be_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["conform", "--client", "native", "--cases", "1.1", "--out", str(blocker / "o")]) == EXIT_CANTCREAT
    assert f"cannot create {blocker / 'o'}" in _one_line_error(capsys)


# -- verdicts known from the protocol facts, and the report in a browser ---------------------------


@pytest.fixture(scope="module")
def subset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("conform-subset")
    code = main(["conform", "--client", "native", "--client", "ccxt-pro", "--cases", "1.2", "--cases", "2.3",
                 "--cases", "3.5", "--cases", "4.2", "--out", str(out), "--no-progress", "--jobs", "2"])
    assert code == EXIT_OK
    return out, json.loads((out / "results.json").read_text())


def _verdicts(report: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["case"], r["client"]): r for r in report["results"]}


def test_ccxt_pro_fails_gap_after_sync_and_the_native_feed_passes_it(subset: tuple[Path, dict[str, Any]]) -> None:
    _out, report = subset
    v = _verdicts(report)
    native, ccxt = v[("2.3", "native")], v[("2.3", "ccxt-pro")]
    assert native["verdict"] == PASS, native["reasons"]
    assert native["stats"]["resyncs"] >= 1 and native["stats"]["books_checked"] > 100
    assert any(f["kind"] == "skip_depth" for f in native["evidence"]["fired"])
    assert ccxt["verdict"] == FAIL
    assert any(r.startswith("wrong book: SOL_USDC book at") for r in ccxt["reasons"]), ccxt["reasons"]
    wrong = ccxt["evidence"]["first_wrong"]
    assert '"type": "book"' in wrong["record"] and wrong["frames_sent"] > 150  # after the withheld delta
    assert ccxt["evidence"]["wire"]["sent"] and ccxt["evidence"]["wire"]["received"]
    # both keep a clean stream and come back after a server Close with the same streams
    for client in ("native", "ccxt-pro"):
        assert v[("1.2", client)]["verdict"] == PASS, v[("1.2", client)]["reasons"]
        assert v[("3.5", client)]["verdict"] in (PASS, "non-strict"), v[("3.5", client)]["reasons"]
        assert v[("3.5", client)]["stats"]["connections"] >= 2


def test_no_signature_reaches_the_report(subset: tuple[Path, dict[str, Any]]) -> None:
    out, report = subset
    from harness.loopback.server import TEST_ACCOUNT_SECRET

    private = _verdicts(report)[("4.2", "native")]  # signed subscribes on two connections, both in the wire log
    assert private["verdict"] == PASS, private["reasons"]
    assert _verdicts(report)[("4.2", "ccxt-pro")]["verdict"] == UNSUPPORTED
    assert any('"signature":"<redacted>"' in t for t in private["evidence"]["wire"]["received"])

    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert TEST_ACCOUNT_SECRET not in text
            assert not re.search(r'"signature"\s*:\s*\[', text)


def test_the_html_report_renders_in_headless_chromium(subset: tuple[Path, dict[str, Any]],
                                                        tmp_path: Path) -> None:
    from tests.test_parity_browser import _chromium, _run

    out, report = subset
    browser = _chromium()
    page = (out / "index.html").resolve().as_uri()
    dom = _run(browser, tmp_path / "profile-dom", "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    totals = re.search(r'<table id="totals">(.*?)</table>', html, re.S)
    matrix = re.search(r'<table id="matrix">(.*?)</table>', html, re.S)
    assert totals is not None and matrix is not None
    assert html.index('id="totals"') < html.index('id="matrix"')  # totals first
    assert 'data-client="native"' in totals.group(1) and 'data-client="ccxt-pro"' in totals.group(1)
    cells = re.findall(r'<td class="([a-z-]+)" data-client="([a-z-]+)" data-verdict="([a-z -]+)"', matrix.group(1))
    assert len(cells) == 8
    assert ("fail", "ccxt-pro", "fail") in cells and ("pass", "native", "pass") in cells
    assert re.search(r'<tr data-case="2.3">.*?data-client="ccxt-pro" data-verdict="fail"', matrix.group(1), re.S)
    assert 'data-gate="pass"' in html
    assert "http://" not in html and "https://" not in html
    detail = (out / "cases" / "2.3-ccxt-pro.html").resolve().as_uri()
    dom = _run(browser, tmp_path / "profile-detail", "--dump-dom", detail)
    assert 'data-verdict="fail"' in dom.stdout and 'id="first-wrong"' in dom.stdout and 'id="wire"' in dom.stdout

    png = tmp_path / "index.png"
    shot = _run(browser, tmp_path / "profile-shot", f"--screenshot={png}", "--window-size=1280,900", page)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 900)
    assert len(data) > 20_000  # coloured cells and text; a blank page compresses to a few kB


# -- the native feed on the whole catalog -------------------------------------------------------------


def test_the_native_feed_passes_the_whole_catalog(tmp_path: Path) -> None:
    out = tmp_path / "native"
    code = main(["conform", "--client", "native", "--out", str(out), "--no-progress",
                 "--jobs", str(max(2, os.cpu_count() or 2))])
    report = json.loads((out / "results.json").read_text())
    bad = {r["case"]: (r["verdict"], r["reasons"]) for r in report["results"] if r["verdict"] != PASS}
    assert bad == {} and code == EXIT_OK
    assert report["cases"] == len(load_catalog()) >= 40
