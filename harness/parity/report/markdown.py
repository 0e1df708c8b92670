"""``report.md``: the verdict, then the tables a reviewer scrolls through in a pull request."""

from __future__ import annotations

from typing import Any


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def _cell(value: Any, limit: int = 80) -> str:
    text = "null" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


CHANNEL_HEADER = ("| channel | native | ccxt | compared | equal | match rate | explained | unexplained | "
                  "only native | only ccxt | not comparable | parity |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _channel_row(c: dict[str, Any]) -> str:
    name = f"**{c['type']}**" if c.get("gated") else c["type"]
    nc = c["not_comparable_native"] + c["not_comparable_ccxt"]
    return (f"| {name} | {c['native_records']:,} | {c['ccxt_records']:,} | {c['paired']:,} | {c['matched']:,} | "
            f"{_pct(c['match_rate'])} | {c['explained']:,} | {c['unexplained']:,} | {c['only_native']:,} | "
            f"{c['only_ccxt']:,} | {nc:,} | {_pct(c['parity_rate'])} |")


def render_markdown(report: dict[str, Any]) -> str:
    v = report["verdict"]
    lines = [f"# Parity report: native Backpack feed vs ccxt.pro ({report['mode']})", "",
             f"## Verdict: **{v['ga_gate'].upper()}**", "", v["headline"], ""]
    lines += [f"- {r}" for r in v["reasons"]]
    lines += ["", "Bold channels are gated (the seed criterion: trades and order books). *match rate*: paired records "
              "equal in every field before deviations; *parity*: compared items that are equal or explained by a "
              "registered deviation.", "", "## All recordings", "", CHANNEL_HEADER]
    lines += [_channel_row(c) for c in report["totals"].values()]
    lines += ["", "## Registered deviations", "", "| id | ccxt-oracle # | title | differences explained |",
              "|---|---:|---|---:|"]
    for e in report["registry"]:
        lines.append(f"| `{e['id']}` | {e['number'] or ''} | {_cell(e['title'], 120)} | {e['explained']:,}"
                     f"{'' if e['scope'] == 'stream' else ' (' + e['scope'] + ', not a stream rule)'} |")
    for f in report.get("failures") or ():
        lines += ["", f"**{f['recording']}: could not be compared** ({f['error']})"]
    for rec in report["recordings"]:
        lines += ["", f"## {rec['recording']}", "", f"sha256 `{rec['sha256']}`; {rec['frames']:,} frames over "
                  f"{rec['span_ns'] / 1e9:,.1f} s; native {rec['native_lines']:,} lines, ccxt {rec['ccxt_records']:,} "
                  f"records; {rec['unexplained']} unexplained.", "", CHANNEL_HEADER]
        lines += [_channel_row(c) for c in rec["channels"].values()]
        gaps = rec["ccxt"]["gaps_applied"]
        if gaps:
            lines += ["", "ccxt applied these sequence gaps without resynchronising (deviation 1):", ""]
            lines += [f"- {g['symbol']}: expected U={g['expected']}, got U={g['got']} (delta u={g['sequence']}, "
                      f"frame {g['frame']})" for g in gaps]
        resyncs = rec["native"]["resyncs"]
        if resyncs:
            lines += ["", "Native resyncs: " + "; ".join(
                f"{r['symbol']} {r['reason']}" + (f" (expected {r['expected']}, got {r['got']})" if r["expected"] else "")
                for r in resyncs[:12])]
        fd = rec.get("first_divergence")
        if fd:
            lines += ["", f"First divergence: {fd['type']} {fd['symbol']} at key {fd['key']} "
                      f"({', '.join(fd['deviations']) or 'unexplained'})."]
        field_rows = [(kind, name, st) for kind, c in rec["channels"].items() for name, st in c["fields"].items()]
        if field_rows:
            lines += ["", "| channel | field | differing | explained |", "|---|---|---:|---:|"]
            lines += [f"| {k} | {n} | {st['differing']:,} | {st['explained']:,} |" for k, n, st in field_rows]
        unexplained = [d for d in rec["examples"] if not d["explained"]]
        shown = unexplained[:20] or rec["examples"][:6]
        if shown:
            lines += ["", "Unexplained differences (with the frame that caused them):" if unexplained
                      else "Examples of explained differences:", ""]
            for d in shown:
                fields = "; ".join(f"{f['field']}: native {_cell(f['native'], 40)} / ccxt {_cell(f['ccxt'], 40)}"
                                   f" [{f['explained_by'] or 'UNEXPLAINED'}]" for f in d["fields"]) or d["kind"]
                lines.append(f"- {d['type']} {d['symbol']} {d['key']}: {fields}")
                if d["frame_text"]:
                    lines.append(f"  - frame {d['frame']}: `{_cell(d['frame_text'], 300)}`")
    lines += ["", "## Versions", "", "| component | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in report["versions"].items()]
    lines += ["", "| recording | sha256 |", "|---|---|"]
    lines += [f"| {r['recording']} | `{r['sha256']}` |" for r in report["recordings"]]
    lines += ["", f"Generated {report['generated_at']}; book depth compared: top {report['depth']} levels per side.", ""]
    return "\n".join(lines)
