"""The parity report: one model, three renderings (``report.json``, ``report.md``, ``report.html``).

``build`` turns per-recording summaries (``harness.parity.run.summarize``) into the model; the verdict
comes first in every rendering: the GA gate passes when the unexplained differences, over every compared
channel of every recording, are at most ``max_unexplained``. The HTML page is one self-contained file:
inline CSS and inline SVG, no script and no external reference, so it reads the same offline.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.recording.format import utc_timestamp

from ..deviations import Deviation
from ..run import GATED_TYPES, PRIVATE_TYPES, PUBLIC_TYPES
from . import svg

FORMAT = "backpack-parity-report"
VERSION = 1


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name, dist in (("cryptofeed-backpack", "cryptofeed-backpack"), ("ccxt", "ccxt"),
                       ("cryptofeed", "cryptofeed"), ("websockets", "websockets"), ("aiohttp", "aiohttp")):
        try:
            out[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _totals(recordings: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    totals: dict[str, dict[str, Any]] = {}
    keys = ("native_records", "ccxt_records", "paired", "matched", "differences", "explained", "unexplained",
            "only_native", "only_ccxt", "not_comparable_native", "not_comparable_ccxt")
    for rec in recordings:
        for kind, ch in rec["channels"].items():
            t = totals.setdefault(kind, {"type": kind, "group": ch["group"], "gated": ch["gated"],
                                         **{k: 0 for k in keys}, "recordings": 0})
            t["recordings"] += 1
            for k in keys:
                t[k] += ch[k]
    for t in totals.values():
        one_sided = t["only_native"] + t["only_ccxt"]
        t["match_rate"] = t["matched"] / t["paired"] if t["paired"] else None
        total = t["paired"] + one_sided
        t["parity_rate"] = (total - t["unexplained"]) / total if total else None
    order = {k: i for i, k in enumerate((*PUBLIC_TYPES, *PRIVATE_TYPES))}
    return dict(sorted(totals.items(), key=lambda kv: order.get(kv[0], 99)))


def build(recordings: Sequence[dict[str, Any]], entries: Sequence[Deviation], *, max_unexplained: int = 0,
          depth: int | None = 10, failures: Sequence[dict[str, Any]] = (), mode: str = "recordings") -> dict[str, Any]:
    totals = _totals(recordings)
    unexplained = sum(r["unexplained"] for r in recordings)
    counts: Counter[str] = Counter()
    for r in recordings:
        counts.update(r["deviations"])
    reasons: list[str] = []
    for kind in GATED_TYPES:
        t = totals.get(kind)
        if t is None:
            reasons.append(f"no {kind} records were compared")
        elif t["unexplained"]:
            reasons.append(f"{kind}: {t['unexplained']} unexplained difference(s)")
        else:
            reasons.append(f"{kind}: {t['paired']:,} compared, 100% after registered deviations")
    others = {k: t["unexplained"] for k, t in totals.items() if k not in GATED_TYPES and t["unexplained"]}
    if others:
        reasons.append("unexplained elsewhere: " + ", ".join(f"{k} {n}" for k, n in others.items()))
    if failures:
        reasons.append(f"{len(failures)} recording(s) could not be compared")
    passed = unexplained <= max_unexplained and not failures and all(k in totals for k in GATED_TYPES)
    headline = (f"GA gate PASS: {unexplained} unexplained difference(s) (at most {max_unexplained} allowed)"
                if passed else
                f"GA gate FAIL: {unexplained} unexplained difference(s), at most {max_unexplained} allowed"
                + ("" if all(k in totals for k in GATED_TYPES) else "; trades and books must both be compared")
                + (f"; {len(failures)} recording(s) failed" if failures else ""))
    return {
        "format": FORMAT, "version": VERSION, "generated_at": utc_timestamp(), "mode": mode,
        "verdict": {"ga_gate": "pass" if passed else "fail", "passed": passed, "headline": headline,
                    "unexplained": unexplained, "max_unexplained": max_unexplained, "reasons": reasons},
        "depth": depth, "versions": versions(), "totals": totals,
        "registry": [{**e.to_json(), "explained": counts.get(e.id, 0)} for e in entries],
        "recordings": list(recordings), "failures": list(failures),
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def write(report: dict[str, Any], out: Path) -> list[Path]:
    """``report.json``, ``report.md`` and ``report.html`` in ``out`` (created); returns the three paths."""
    from .html import render_html
    from .markdown import render_markdown

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "report.html"]
    paths[0].write_text(json.dumps(report, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    paths[1].write_text(render_markdown(report), encoding="utf-8")
    paths[2].write_text(render_html(report), encoding="utf-8")
    return paths


__all__ = ["FORMAT", "VERSION", "build", "svg", "versions", "write"]
