"""The operator assets and the metric reference agree with the registry's catalogue."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from backpack.metrics import CATALOGUE, HISTOGRAM, PATHS, TABLE_BEGIN, TABLE_END, reference_table

DOCS = Path(__file__).resolve().parent.parent / "docs"
DASHBOARD = DOCS / "grafana" / "backpack-rollout.json"
ALERTS = DOCS / "prometheus" / "alerts.yml"

_SERIES = re.compile(r"\b(backpack_[a-z0-9_]+)(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_BY = re.compile(r"\bby\s*\(([^)]*)\)")
_SCRAPE_LABELS = {"instance", "job"}


def series_names(name: str) -> tuple[str, set[str]]:
    """The catalogue entry behind an exposed series name, and the extra labels that series has."""
    if name in CATALOGUE:
        return name, set()
    for suffix, extra in (("_bucket", {"le"}), ("_count", set()), ("_sum", set())):
        base = name.removesuffix(suffix)
        if base != name and base in CATALOGUE and CATALOGUE[base].kind == HISTOGRAM:
            return base, extra
    raise AssertionError(f"{name} is not a metric of backpack.metrics.CATALOGUE")


def check_expression(expr: str) -> set[str]:
    """Every series in ``expr`` exists, with labels it has and label values it can take; returns the names."""
    used = set()
    allowed_by: set[str] = set(_SCRAPE_LABELS) | {"path", "le"}
    for match in _SERIES.finditer(expr):
        name, extra = series_names(match.group(1))
        spec = CATALOGUE[name]
        used.add(name)
        labels = {"path", *spec.labels, *extra}
        allowed_by |= labels
        for label, op, value in _MATCHER.findall(match.group(2) or ""):
            assert label in labels | _SCRAPE_LABELS, f"{match.group(1)} has no label {label!r}: {expr}"
            if label == "path" and op == "=":
                assert value in spec.paths, f"{name} is not reported by path {value!r}: {expr}"
    for group in _BY.findall(expr):
        for label in (part.strip() for part in group.split(",")):
            assert label in allowed_by, f"grouping by unknown label {label!r}: {expr}"
    assert used, f"no backpack metric in {expr!r}"
    return used


def dashboard_expressions() -> list[str]:
    data = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in data["panels"] for t in p.get("targets", [])]


def alert_rules() -> list[dict]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_reference_table_in_the_docs_is_the_catalogue() -> None:
    text = (DOCS / "observability.md").read_text()
    block = text[text.index(TABLE_BEGIN) : text.index(TABLE_END) + len(TABLE_END)]
    assert block == reference_table(), "docs/observability.md is stale: run python -m backpack.metrics"
    for name in CATALOGUE:
        assert f"| `{name}` |" in block


def test_catalogue_is_well_formed() -> None:
    for name, spec in CATALOGUE.items():
        assert name == spec.name and re.fullmatch(r"backpack_[a-z0-9_]+", name)
        assert (spec.kind == "counter") == name.endswith("_total"), name  # Prometheus naming
        assert set(spec.paths) <= set(PATHS) and spec.paths
        assert "path" not in spec.labels and len(set(spec.labels)) == len(spec.labels)
        assert spec.help.endswith(".") and not spec.help[0].islower()
        assert (spec.kind == HISTOGRAM) == bool(spec.buckets)


def test_every_metric_the_dashboard_uses_exists() -> None:
    exprs = dashboard_expressions()
    assert exprs
    used = set().union(*(check_expression(e) for e in exprs))
    # the rollout signals the issue names are on the dashboard
    for name in (
        "backpack_book_gaps_total",
        "backpack_book_resyncs_total",
        "backpack_book_age_seconds",
        "backpack_auth_failures_total",
        "backpack_ws_reconnects_total",
        "backpack_health_status",
        "backpack_rest_latency_seconds",
        "backpack_callback_latency_seconds",
    ):
        assert name in used, name


def test_dashboard_is_importable() -> None:
    data = json.loads(DASHBOARD.read_text())
    assert data["uid"] and data["title"] and data["schemaVersion"] >= 30
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"]), panel[
                "title"
            ]
    assert {v["name"] for v in data["templating"]["list"]} == {"datasource", "instance"}


def test_every_metric_the_alerts_use_exists() -> None:
    rules = alert_rules()
    names = {r["alert"] for r in rules}
    assert len(names) == len(rules)
    for wanted in (
        "BackpackGapRate",
        "BackpackResyncStorm",
        "BackpackStaleBook",
        "BackpackAuthFailures",
        "BackpackFeedDown",
    ):
        assert wanted in names
    for rule in rules:
        check_expression(rule["expr"])
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert re.fullmatch(r"\d+[smh]", str(rule.get("for", "0s"))), rule["alert"]


@pytest.mark.parametrize(
    "expr",
    [
        "rate(backpack_frames_total[1m])",
        'backpack_book_synced{sym="X"}',
        "sum by (reason) (backpack_ws_frames_total)",
        'backpack_rest_retries_total{path="ccxt"}',
        "backpack_ws_frames_total_bucket",
    ],
)
def test_the_checker_refuses_what_the_registry_lacks(expr: str) -> None:
    """The asset checks above would catch a renamed metric, a wrong label or a path that lacks the metric."""
    with pytest.raises(AssertionError):
        check_expression(expr)
