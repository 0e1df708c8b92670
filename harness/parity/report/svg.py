"""Inline SVG charts for the HTML report: no script, no library, nothing fetched when the page is viewed.

Two charts: the divergence timeline (every difference on the recording's time axis, one lane per channel,
explained in grey, unexplained in red, with resyncs, gaps and reconnects marked) and the cumulative book
depth of both sides at the first divergence.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any

WIDTH = 900
NATIVE = "#1f6feb"
CCXT = "#d97706"
BAD = "#cf222e"
OK = "#8c959f"


def _num(text: Any) -> float | None:
    try:
        return float(Decimal(str(text)))
    except (InvalidOperation, ValueError, TypeError):
        return None


def timeline(summary: dict[str, Any]) -> str:
    points = summary.get("timeline") or []
    markers = summary.get("markers") or []
    lanes = sorted({p["type"] for p in points})
    span = max([summary.get("span_ns") or 0, *[p["t"] or 0 for p in points], 1])
    left, top, lane_h = 110, 24, 22
    height = top + lane_h * max(1, len(lanes)) + 40
    plot_w = WIDTH - left - 20

    def x(t: Any) -> float:
        return left + plot_w * ((t or 0) / span)

    parts = [f'<svg class="chart timeline" role="img" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{height}" viewBox="0 0 {WIDTH} {height}" data-points="{len(points)}">',
             f'<title>Differences over the recording ({escape(summary.get("recording", ""))})</title>']
    for i, lane in enumerate(lanes):
        y = top + i * lane_h
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" font-size="12">{escape(lane)}</text>')
        parts.append(f'<line x1="{left}" y1="{y + 10}" x2="{left + plot_w}" y2="{y + 10}" stroke="#d0d7de"/>')
    lane_of = {lane: i for i, lane in enumerate(lanes)}
    for p in points:
        y = top + lane_of[p["type"]] * lane_h + 10
        colour = OK if p["explained"] else BAD
        r = 2 if p["explained"] else 3.5
        label = f'{p["type"]} {p["kind"]} {",".join(p.get("deviations") or []) or "unexplained"}'
        parts.append(f'<circle class="{"explained" if p["explained"] else "unexplained"}" cx="{x(p["t"]):.1f}" '
                     f'cy="{y}" r="{r}" fill="{colour}" fill-opacity="0.7"><title>{escape(label)}</title></circle>')
    base = top + lane_h * max(1, len(lanes)) + 4
    for m in markers:
        colour = {"native resync": NATIVE, "ccxt applied a gap": CCXT}.get(m["what"], "#57606a")
        xm = x(m["t"])
        parts.append(f'<line class="marker" x1="{xm:.1f}" y1="{top - 6}" x2="{xm:.1f}" y2="{base}" stroke="{colour}" '
                     f'stroke-dasharray="3,2"><title>{escape(m["what"] + " " + (m.get("symbol") or "") + " " + m["detail"])}'
                     f'</title></line>')
    seconds = span / 1e9
    for k in range(6):
        xt = left + plot_w * k / 5
        parts.append(f'<text x="{xt:.1f}" y="{base + 16}" text-anchor="middle" font-size="11">{seconds * k / 5:.1f} s</text>')
    parts.append("</svg>")
    return "".join(parts)


def _cumulative(levels: Any, reverse: bool) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    total = 0.0
    for level in levels or ():
        price, size = _num(level[0]), _num(level[1])
        if price is None or size is None:
            continue
        total += size
        out.append((price, total))
    return sorted(out, reverse=reverse)


def depth_chart(context: dict[str, Any] | None) -> str:
    """Cumulative depth (size against price) of both sides at the first divergent state."""
    if not context or not (context.get("native") or context.get("ccxt")):
        return ""
    series = []
    for name, colour in (("native", NATIVE), ("ccxt", CCXT)):
        state = context.get(name) or {}
        series.append((name, colour, _cumulative(state.get("bids"), True), _cumulative(state.get("asks"), False)))
    prices = [p for _, _, b, a in series for p, _ in b + a]
    sizes = [s for _, _, b, a in series for _, s in b + a]
    if not prices:
        return ""
    lo, hi = min(prices), max(prices)
    top_size = max(sizes) or 1.0
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    left, top, w, h = 70, 30, WIDTH - 100, 260

    def x(p: float) -> float:
        return left + w * (p - lo) / (hi - lo)

    def y(s: float) -> float:
        return top + h - h * s / top_size

    parts = [f'<svg class="chart depth" role="img" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
             f'height="{top + h + 50}" viewBox="0 0 {WIDTH} {top + h + 50}">',
             f'<title>Book depth of {escape(str(context.get("symbol")))} at sequence {context.get("sequence")}</title>',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#d0d7de"/>']
    for name, colour, bids, asks in series:
        dash = "" if name == "native" else ' stroke-dasharray="6,3"'
        for side in (bids, asks):
            if not side:
                continue
            points = [(x(side[0][0]), y(0))]
            for price, size in side:
                points.append((x(price), points[-1][1]))
                points.append((x(price), y(size)))
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline class="series {name}" points="{path}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{dash}><title>{name}</title></polyline>')
    for k in range(5):
        price = lo + (hi - lo) * k / 4
        parts.append(f'<text x="{x(price):.1f}" y="{top + h + 16}" text-anchor="middle" font-size="11">{price:.6g}</text>')
        size = top_size * k / 4
        parts.append(f'<text x="{left - 6}" y="{y(size) + 4:.1f}" text-anchor="end" font-size="11">{size:.4g}</text>')
    parts.append(f'<text x="{left}" y="{top - 10}" font-size="12" fill="{NATIVE}">── native</text>'
                 f'<text x="{left + 90}" y="{top - 10}" font-size="12" fill="{CCXT}">- - ccxt</text>'
                 f'<text x="{left + w}" y="{top - 10}" font-size="12" text-anchor="end">cumulative size by price '
                 f'(bids left, asks right)</text>')
    parts.append("</svg>")
    return "".join(parts)
