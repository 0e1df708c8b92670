"""The run's report: ``results.json``, ``index.html`` (the cases x clients matrix, totals first, coloured
like Autobahn's: green pass, yellow non-strict, red fail, grey unsupported or not installed) and one
detail page per case x client with its evidence. jinja2 templates, inline CSS, no script, nothing fetched.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from harness.conformance.judge import VERDICTS

TEMPLATES = Path(__file__).resolve().parent / "templates"
FORMAT = "backpack-conformance"
VERSION = 1


def detail_name(result: dict[str, Any]) -> str:
    return f"cases/{result['case']}-{result['client']}.html"


def build(results: list[dict[str, Any]], clients: list[str], *, command: str, catalog_size: int) -> dict[str, Any]:
    """The whole run as data: what results.json holds and the pages are rendered from."""
    totals = {c: dict(Counter(r["verdict"] for r in results if r["client"] == c)) for c in clients}
    for c in clients:
        totals[c] = {v: totals[c].get(v, 0) for v in VERDICTS}
    rows: dict[str, dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault(r["case"], {"case": r["case"], "name": r["name"], "area": r["area"],
                                          "area_title": r["area_title"], "expect": r["expect"], "cells": {}})
        row["cells"][r["client"]] = {"verdict": r["verdict"], "reason": "; ".join(r["reasons"])[:400],
                                     "href": detail_name(r)}
    order = sorted(rows.values(), key=lambda x: tuple(int(p) for p in x["case"].split(".")))
    native_failed = [r["case"] for r in results if r["client"] == "native" and r["verdict"] == "fail"]
    return {"format": FORMAT, "version": VERSION, "command": command, "clients": clients,
            "cases": len(order), "catalog": catalog_size, "totals": totals, "rows": order,
            "native_failed": native_failed, "results": results}


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                       trim_blocks=True, lstrip_blocks=True)


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """Write results.json, index.html and cases/*.html under ``out`` (which exists); returns the top files."""
    env = _env()
    (out / "cases").mkdir(exist_ok=True)
    results = out / "results.json"
    results.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    index = out / "index.html"
    index.write_text(env.get_template("index.html.j2").render(report=report), encoding="utf-8")
    page = env.get_template("detail.html.j2")
    for r in report["results"]:
        (out / detail_name(r)).write_text(page.render(r=r, report=report), encoding="utf-8")
    return [index, results]


def scorecard(report: dict[str, Any]) -> str:
    """The totals as a Markdown table (docs/conformance.md pastes it)."""
    head = "| client | " + " | ".join(VERDICTS) + " |"
    lines = [head, "|" + "---|" * (len(VERDICTS) + 1)]
    for c in report["clients"]:
        lines.append(f"| {c} | " + " | ".join(str(report["totals"][c][v]) for v in VERDICTS) + " |")
    return "\n".join(lines)


def matrix(report: dict[str, Any]) -> str:
    """Every case x client verdict as a Markdown table."""
    short = {"pass": "pass", "non-strict": "non-strict", "fail": "**fail**", "unsupported": "n/a",
             "not installed": "not installed"}
    lines = ["| case | " + " | ".join(report["clients"]) + " |", "|" + "---|" * (len(report["clients"]) + 1)]
    for row in report["rows"]:
        cells = [short[row["cells"][c]["verdict"]] if c in row["cells"] else "" for c in report["clients"]]
        lines.append(f"| {row['case']} {row['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["FORMAT", "VERSION", "build", "detail_name", "matrix", "scorecard", "write"]
