"""The operator docs agree with the code: generated tables are current, every bound and type they state
holds, every metric the runbook names exists, every link resolves and the README reaches every page."""

from __future__ import annotations

import base64
import importlib
import re
from pathlib import Path
from typing import Any

import pytest

from backpack import compat
from backpack.config import BackpackConfig, ConfigError
from backpack.feed import BackpackFeed
from backpack.protocol.subscriptions import stream_name
from harness.loopback.server import TEST_ACCOUNT_SECRET
from harness.parity.deviations import load_registry
from harness.pytest_plugin import running_server

from . import doc_tables
from .doc_tables import TARGETS, Choice, Range, Url, accepted_values, block, config_fields
from .feed_helpers import (
    PRIVATE,
    PUBLIC,
    RFQ_SYMBOLS,
    Collector,
    backpack_section,
    drive,
    running_handler,
    until,
)
from .runnable_docs import prose
from .test_observability_assets import check_expression, series_names

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BACKPACK_DOC = DOCS / "exchanges" / "backpack.md"
RUNBOOK = DOCS / "runbooks" / "backpack_migration.md"
CCXT_DOC = DOCS / "migrations" / "backpack_ccxt.md"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- generated blocks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "begin", "end", "generate"), TARGETS, ids=[t[0] for t in TARGETS])
def test_generated_block_is_current(name: str, begin: str, end: str, generate: Any) -> None:
    assert block(read(DOCS / name), begin, end) == generate(), f"docs/{name} is stale: run python -m tests.doc_tables"


def test_every_setting_has_a_row_with_its_bounds_and_meaning() -> None:
    keys = [key for key, _, _ in config_fields()]
    assert set(keys) == set(doc_tables.MEANINGS) == set(accepted_values()), "add the new setting to tests/doc_tables.py"
    table = block(read(BACKPACK_DOC), doc_tables.CONFIG_BEGIN, doc_tables.CONFIG_END)
    for key in keys:
        assert f"| `{key}`" in table


def _validate(key: str, value: Any) -> None:
    section: dict[str, Any] = {"health": {key.split(".", 1)[1]: value}} if key.startswith("health.") else {key: value}
    BackpackConfig.from_dict(section, environ={})


def _probes(rule: Any) -> tuple[list[Any], list[Any]]:
    """Values the stated rule accepts and values it refuses, at and just beyond each bound."""
    if isinstance(rule, Range):
        step = 1 if rule.kind is int else 0.001
        good, bad = [], ["many", True]
        if rule.lo is not None:
            good.append(rule.lo + step if rule.lo_open else rule.lo)
            bad.append(rule.lo if rule.lo_open else rule.lo - step)
        if rule.hi is not None:
            good.append(rule.hi)
            bad.append(rule.hi + step)
        if rule.kind is int:
            bad.append((rule.lo or 0) + 1.5)
        (good if rule.nullable else bad).append(None)
        return good, bad
    if isinstance(rule, Choice):
        off = "5ms" if isinstance(rule.values[0], str) else 7
        return list(rule.values) + ([None] if rule.nullable else []), [off]
    if isinstance(rule, Url):
        good = [f"{s}://127.0.0.1:1234" for s in rule.schemes] + ([None] if rule.nullable else [])
        return good, ["ftp://127.0.0.1:21", "127.0.0.1:1234"]
    return [], []


@pytest.mark.parametrize("key", sorted(k for k, r in accepted_values().items() if isinstance(r, Range | Choice | Url)))
def test_the_stated_bounds_are_the_models(key: str) -> None:
    """Each value the table says is accepted is accepted, and each just outside it is refused."""
    good, bad = _probes(accepted_values()[key])
    assert good and bad
    for value in good:
        _validate(key, value)
    for value in bad:
        with pytest.raises(ConfigError):
            _validate(key, value)


def test_the_probes_catch_a_wrong_bound() -> None:
    """Not vacuous: had the table said window_ms starts at 2, its probe 1 would be accepted and fail the test."""
    _, bad = _probes(Range(int, 2, 60000))
    accepted = []
    for value in bad:
        try:
            _validate("window_ms", value)
            accepted.append(value)
        except ConfigError:
            pass
    assert accepted == [1]


# --- the channel table -------------------------------------------------------------------------------------


def channel_rows() -> dict[str, dict[str, str]]:
    text = read(BACKPACK_DOC)
    head = "| channel | stream | type delivered on cryptofeed 2.4.1"
    lines = text[text.index(head):].splitlines()
    rows = {}
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        channel = re.match(r"`([a-z_0-9]+)`", cells[0]).group(1)
        rows[channel] = {"stream": cells[1].strip("`"), "2": cells[2].strip("`"), "3": cells[3].strip("`"),
                         "ccxt": cells[4], "private": "(private)" in cells[0]}
    return rows


def documented_type(channel: str) -> type:
    """The class the table names for this channel on the running cryptofeed line; its module must match."""
    dotted = channel_rows()[channel][str(compat.CRYPTOFEED_MAJOR)]
    module, _, name = dotted.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert cls.__module__ == module, f"{dotted} is {cls.__module__}.{cls.__qualname__} on this line"
    return cls


def test_the_channel_table_lists_every_channel_with_its_stream() -> None:
    rows = channel_rows()
    assert set(rows) == set(BackpackFeed.websocket_channels)
    for channel, row in rows.items():
        stream = stream_name(channel, "SYM").replace("kline.1m.", "kline.<interval>.").replace("SYM", "<symbol>")
        assert row["stream"] == stream, channel
        assert row["private"] == (channel in compat.PRIVATE_CHANNELS), channel
        documented_type(channel)


@pytest.mark.parametrize("channel", sorted(BackpackFeed.websocket_channels))
def test_the_ccxt_column_is_what_the_legacy_feed_accepts(channel: str) -> None:
    from backpack.ccxt_feed import BackpackCcxtFeed

    symbols = RFQ_SYMBOLS if channel == compat.RFQ else ["BTC-USDC-PERP"]
    kwargs = {"symbols": symbols, "channels": [channel], "backpack_config": {"private_key": TEST_ACCOUNT_SECRET},
              "config": {"log": {"disabled": True}}}
    accepted = True
    try:
        BackpackCcxtFeed(**kwargs)
    except ValueError as exc:
        assert "does not support" in str(exc)
        accepted = False
    assert channel_rows()[channel]["ccxt"] == ("yes" if accepted else "no")


async def test_every_channel_delivers_the_type_the_table_names_on_this_cryptofeed_line() -> None:
    collector = Collector()
    symbols = ["SOL-USDC", "BTC-USDC-PERP"]
    channels = PUBLIC + PRIVATE + [compat.RFQ]
    subscription = {c: symbols for c in PUBLIC + PRIVATE} | {compat.RFQ: RFQ_SYMBOLS}
    async with running_server(seed=7, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        async with running_handler(subscription=subscription, callbacks=collector.callbacks(channels),
                                   handler_config={"log": {"disabled": True}, "backpack": backpack_section(server)}):
            await server.wait_subscribed("account.rfqUpdate.SOL_USDC_RFQ")
            await server.wait_subscribed("depth.SOL_USDC")
            await drive(server, 1500)
            await until(lambda: all(collector.items[c] for c in channels), "every channel to deliver")
    assert set(channels) == set(channel_rows())
    for channel in channels:
        want = documented_type(channel)
        # the book is a read-only subclass of cryptofeed's OrderBook (one book of record): isinstance holds
        assert all(isinstance(obj, want) for obj in collector.items[channel]), (channel, want)


# --- the runbook's metrics ---------------------------------------------------------------------------------

_CODE = re.compile(r"`([^`\n]+)`")


def test_every_metric_and_query_in_the_runbook_exists() -> None:
    text = prose(read(RUNBOOK))  # prose and inline code: the blocks hold Python, not queries
    names = set(re.findall(r"(?<![/\w.])backpack_[a-z0-9_]+", text))  # not the page names in links
    assert len(names) >= 15, names
    for name in names:
        series_names(name)  # raises for a name the registry does not have
    queries = [c for c in _CODE.findall(text) if "backpack_" in c and ("{" in c or "(" in c)]
    assert len(queries) >= 20
    for query in queries:
        check_expression(query)


@pytest.mark.parametrize("query", ['backpack_book_gap_total{path="native"}',
                                   'backpack_rest_circuit_state{path="ccxt",state="open"}',
                                   'sum by (sym) (backpack_book_synced{path="native"})'])
def test_the_runbook_check_refuses_a_wrong_name_path_or_label(query: str) -> None:
    with pytest.raises(AssertionError):
        check_expression(query)


# --- the ccxt audit and the deprecation checklist ----------------------------------------------------------


def test_the_sample_report_covers_the_registry() -> None:
    import json

    report = json.loads(read(doc_tables.SAMPLE_REPORT))
    assert [e["id"] for e in report["registry"]] == [e.id for e in load_registry()], (
        "docs/samples/parity/report.json predates the registry: regenerate it with backpack-harness parity "
        "recordings/edge.jsonl.zst recordings/errors.jsonl.zst recordings/private.jsonl.zst --out docs/samples/parity")


def test_the_audits_counts_are_what_parity_finds_on_the_edge_recording() -> None:
    """The sample report's numbers are reproduced, not copied: parity on the edge recording gives them again."""
    import json

    from harness.parity.run import analyze

    report = json.loads(read(doc_tables.SAMPLE_REPORT))
    [sample] = [r for r in report["recordings"] if r["recording"] == "edge.jsonl.zst"]
    fresh = analyze(str(ROOT / "recordings" / "edge.jsonl.zst"))
    assert fresh["deviations"] == sample["deviations"] and fresh["unexplained"] == sample["unexplained"] == 0


_CCXT_USE = re.compile(r"ccxt_feed|BackpackCcxtFeed|ccxt_observe|^\s*(?:import|from) ccxt\b|CRYPTOFEED_BACKPACK_NATIVE|"
                       r"native_enabled|NATIVE_ENV", re.M)


def test_the_deprecation_checklist_names_every_file_that_uses_the_ccxt_path() -> None:
    checklist = read(CCXT_DOC).split("## Deprecation checklist", 1)[1]
    own = {"tests/doc_tables.py", "tests/test_docs.py", "tests/test_example_native_demo.py"}
    users = []
    for folder in ("backpack", "harness", "bench", "examples", "tests"):
        for path in sorted((ROOT / folder).rglob("*")):
            rel = path.relative_to(ROOT).as_posix()
            if path.suffix in (".py", ".yaml") and rel not in own and _CCXT_USE.search(read(path)):
                users.append(rel)
    assert len(users) >= 10
    missing = [u for u in users if f"`{u}`" not in checklist]
    assert not missing, f"name these in the deprecation checklist of {CCXT_DOC.name}: {missing}"


# --- links -----------------------------------------------------------------------------------------------

_LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "samples" not in p.parts)]


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", prose(read(path)), re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-"))
    return out


def links(path: Path) -> list[str]:
    return _LINK.findall(prose(read(path)))


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_resolves(page: Path) -> None:
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else str(dest)
        assert dest.exists(), f"{page.relative_to(ROOT)}: broken link {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.relative_to(ROOT)}: no heading #{anchor} in {rel}"


def test_the_readme_links_every_doc() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve().relative_to(ROOT).as_posix()
              for t in links(ROOT / "README.md") if not re.match(r"[a-z]+:", t)}
    docs = {p.relative_to(ROOT).as_posix() for p in pages()[1:]}
    assert not docs - linked, f"the README does not link {sorted(docs - linked)}"


def test_the_readme_lists_every_cli_command() -> None:
    from harness.cli import _REGISTRY, discover

    discover()
    text = read(ROOT / "README.md").split("## CLI overview", 1)[1].split("\n## ", 1)[0]
    assert len(_REGISTRY) >= 10
    for name in _REGISTRY:
        assert f"| `{name}` |" in text, f"the README's CLI overview lacks {name}"


def test_a_secret_in_the_docs_is_only_the_public_test_account() -> None:
    """No page carries key material except the loopback test account's own, published, key pair."""
    from backpack.redaction import looks_like_key

    allowed = {TEST_ACCOUNT_SECRET, base64.b64encode(b"\0" * 32).decode()}
    for page in pages():
        for word in re.findall(r"[A-Za-z0-9+/=]{40,}", read(page)):
            assert not looks_like_key(word) or word in allowed, f"{page.relative_to(ROOT)}: {word[:8]}..."
