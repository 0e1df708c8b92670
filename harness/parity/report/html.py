"""``report.html``: one self-contained page rendered from a jinja2 template (inline CSS and SVG only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from . import svg

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _short(value: Any, limit: int = 90) -> str:
    text = "null" if value is None else (value if isinstance(value, str) else json.dumps(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_html(report: dict[str, Any]) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=_pct, short=_short)
    charts = {r["recording"]: {"timeline": svg.timeline(r), "depth": svg.depth_chart(r.get("book_context"))}
              for r in report["recordings"]}
    return env.get_template("report.html.j2").render(report=report, charts=charts)
