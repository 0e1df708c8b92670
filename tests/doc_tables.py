"""Generated parts of the docs: the configuration table and the ccxt audit.

Each lives between a begin and an end marker in the docs named in ``TARGETS``; ``tests/test_docs.py``
fails when a doc's block differs from what is generated here, so neither can drift from the code.
Regenerate after changing the config model, the deviation registry or the sample parity report:

    python -m tests.doc_tables            # rewrite the blocks in place
    python -m tests.doc_tables --check    # exit 1 if any block is stale

The configuration table takes every field, default and bound from ``backpack.config`` (the model and the
ranges its validators enforce); ``tests/test_docs.py`` also probes each bound against the model, so a
wrong bound fails even if the text were edited by hand. Only the meaning column is prose, kept here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backpack import config as cfg
from backpack.config import BackpackConfig, HealthSettings
from backpack.protocol.wire import DEPTH_LIMITS, DEPTH_SPEEDS

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SAMPLE_REPORT = DOCS / "samples" / "parity" / "report.json"

CONFIG_BEGIN = "<!-- config-table:begin (generated from backpack.config: python -m tests.doc_tables) -->"
CONFIG_END = "<!-- config-table:end -->"
AUDIT_BEGIN = (
    "<!-- ccxt-audit:begin (generated from harness/parity/registry and docs/samples/parity/report.json: "
    "python -m tests.doc_tables) -->"
)
AUDIT_END = "<!-- ccxt-audit:end -->"


# --- accepted values, as data the test can probe ----------------------------------------------------


@dataclass(frozen=True)
class Range:
    kind: type
    lo: float | None
    hi: float | None
    lo_open: bool = False
    nullable: bool = False

    def text(self) -> str:
        what = "integer" if self.kind is int else "number"
        if self.lo is not None and self.hi is not None:
            out = f"{what} {_num(self.lo)}–{_num(self.hi)}"
        elif self.lo is not None:
            out = f"{what} {'>' if self.lo_open else '≥'} {_num(self.lo)}"
        else:
            out = what
        return out + (", or `null`" if self.nullable else "")


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]
    nullable: str = ""  # what null means, when null is allowed

    def text(self) -> str:
        shown = ", ".join(f"`{v}`" for v in self.values)
        return f"one of {shown}" + (f", or `null` ({self.nullable})" if self.nullable else "")


@dataclass(frozen=True)
class Url:
    schemes: tuple[str, ...]
    nullable: bool = False

    def text(self) -> str:
        return "/".join(self.schemes) + " URL" + (", or `null`" if self.nullable else "")


@dataclass(frozen=True)
class Text:
    """Accepted values the table states in words; the test does not probe them."""

    words: str

    def text(self) -> str:
        return self.words


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _numeric(table: dict[str, tuple[type, float | None, float | None, bool]], name: str) -> Range:
    kind, lo, hi, lo_open = table[name]
    return Range(kind, lo, hi, lo_open)


def accepted_values() -> dict[str, Any]:
    """Field (``health.x`` for the health section) -> what it accepts, read from the validators' tables."""
    out: dict[str, Any] = {
        "api_key": Text("base64 of a 32-byte ED25519 public key"),
        "private_key": Text("base64 of a 32-byte ED25519 seed"),
        "private_key_env": Text("an environment variable's name"),
        "private_key_file": Text("a file path"),
        "rest_url": Url(("http", "https")),
        "ws_url": Url(("ws", "wss")),
        "rest_proxy": Url(cfg.PROXY_SCHEMES, nullable=True),
        "ws_proxy": Url(cfg.PROXY_SCHEMES, nullable=True),
        "depth_limit": Choice(DEPTH_LIMITS),
        "depth_speed": Choice(DEPTH_SPEEDS, nullable="realtime"),
        "native_enabled": Text("boolean, or one of `1/0/true/false/yes/no/on/off`"),
        "health": Text("a mapping of the `health.*` keys below, `true` (all defaults) or `null` (off)"),
        "health.host": Text("a host name or IP address (not a URL)"),
    }
    for name in cfg._NUMERIC:
        out[name] = _numeric(cfg._NUMERIC, name)
    for name in cfg._HEALTH_NUMERIC:
        out[f"health.{name}"] = _numeric(cfg._HEALTH_NUMERIC, name)
    for name in cfg._HEALTH_AGES:
        out[f"health.{name}"] = Range(float, 0, None, True, nullable=True)
    return out


MEANINGS: dict[str, str] = {
    "api_key": "`X-API-Key`: the public half of the key pair. Derived from the private key when omitted; "
    "when given, it must match it.",
    "private_key": "The secret itself. Prefer `private_key_env` or `private_key_file`; give at most one of "
    "the three.",
    "private_key_env": "Name of an environment variable holding the secret.",
    "private_key_file": "Path of a file holding the secret (surrounding whitespace ignored).",
    "rest_url": "REST base URL. Anything but the default counts as a sandbox (the loopback server, a recording).",
    "ws_url": "WebSocket URL.",
    "rest_proxy": "Proxy for REST (markets, book snapshots); see [Proxies](#proxies).",
    "ws_proxy": "Proxy for the WebSocket stream; see [Proxies](#proxies).",
    "window_ms": "Signature validity window (`X-Window`) of private subscriptions, in ms.",
    "depth_limit": "Levels asked for in each REST book snapshot.",
    "depth_speed": "The aggregated depth stream `depth.<speed>.<symbol>` instead of the realtime one.",
    "symbol_cache_ttl": "Seconds between reloads of `/api/v1/markets`.",
    "native_enabled": "The feature flag: `false` selects the ccxt-backed legacy feed. The environment variable "
    "`CRYPTOFEED_BACKPACK_NATIVE` wins over it.",
    "ws_watchdog_seconds": "Reconnect when neither data nor a protocol Ping arrived for this long (the "
    "exchange pings every 60 s).",
    "rest_timeout": "Seconds per REST attempt.",
    "rest_retries": "Retries on 5xx, 429 and transport errors, with jittered exponential backoff.",
    "breaker_threshold": "Consecutive failed REST calls that open the circuit breaker.",
    "breaker_reset_seconds": "How long the breaker stays open before one probe call is let through.",
    "private_subscribe_retries": "Re-signed retries of a refused private subscription before private "
    "channels stop (public channels keep running).",
    "subscribe_batch_size": "Streams per SUBSCRIBE frame.",
    "health": "Serve `GET /health` and `GET /metrics` while the feed runs ([observability]({docs}observability.md)).",
    "health.host": "Address the endpoint binds; anything but loopback is reachable from other hosts.",
    "health.port": "TCP port; `0` takes a free one (read it from `feed.health_server.port`).",
    "health.window_seconds": "How far back the `recent` counts of the verdict reach.",
    "health.max_resyncs": "Book resyncs allowed per window before `degraded`.",
    "health.max_gaps": "Sequence gaps allowed per window before `degraded`.",
    "health.max_reconnects": "WebSocket reconnects allowed per window before `degraded`.",
    "health.max_errors": "Contained errors allowed per window before `degraded`.",
    "health.max_auth_failures": "Refused private subscriptions allowed per window before `degraded`.",
    "health.stale_book_seconds": "A synchronised book unchanged this long is stale (`degraded`); `null` "
    "disables the check.",
    "health.stale_message_seconds": "A continuously streaming symbol silent this long is stale; `null` "
    "disables the check.",
}


def config_fields() -> list[tuple[str, Any, tuple[str, ...]]]:
    """(key, default, aliases) for every field of the model and of its health section, in model order."""
    rows = []
    for name, info in BackpackConfig.model_fields.items():
        alias = info.validation_alias
        aliases = tuple(a for a in getattr(alias, "choices", ()) if a != name)
        rows.append((name, info.default, aliases))
        if name == "health":
            rows.extend((f"health.{n}", f.default, ()) for n, f in HealthSettings.model_fields.items())
    return rows


def _default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{_num(value)}`"
    return f"`{value}`"


def config_table(docs: str = "") -> str:
    """``docs`` is the relative path from the page holding the table to ``docs/`` ("" or "../")."""
    accepted = accepted_values()
    rows = ["| key | default | accepted values | meaning |", "|---|---|---|---|"]
    for key, default, aliases in config_fields():
        shown = f"`{key}`" + "".join(f" (alias `{a}`)" for a in aliases)
        meaning = MEANINGS[key].replace("{docs}", docs)
        rows.append(f"| {shown} | {_default(default)} | {accepted[key].text()} | {meaning} |")
    return "\n".join([CONFIG_BEGIN, *rows, CONFIG_END])


# --- the ccxt audit -----------------------------------------------------------------------------------


def _sample_counts() -> tuple[dict[str, dict[str, int]], list[str]]:
    """Deviation id -> {recording: differences it explained} in the sample report, and its recordings."""
    report = json.loads(SAMPLE_REPORT.read_text(encoding="utf-8"))
    counts: dict[str, dict[str, int]] = {}
    names = []
    for rec in report["recordings"]:
        names.append(rec["recording"])
        for ident, n in rec["deviations"].items():
            counts.setdefault(ident, {})[rec["recording"]] = n
    return counts, names


def _rules(entry: Any) -> str:
    parts = []
    for rule in entry.rules:
        what = {"value": "differing " + ", ".join(f"`{f}`" for f in rule.fields), "only_a": "native-only records",
                "only_b": "ccxt-only records"}[rule.kind]
        parts.append(f"`{rule.type}`: {what}")
    return "; ".join(dict.fromkeys(parts))


def ccxt_audit() -> str:
    from harness.parity.deviations import load_registry

    entries = load_registry()
    counts, names = _sample_counts()
    lines = [AUDIT_BEGIN, "", "| id | ccxt-oracle # | scope | differences explained in the sample report | what ccxt does |",
             "|---|---:|---|---:|---|"]
    for e in entries:
        total = sum(counts.get(e.id, {}).values())
        shown = str(total) if e.scope == "stream" else f"n/a ({e.scope})"
        lines.append(f"| [`{e.id}`](#{e.id}) | {e.number or ''} | {e.scope} | {shown} | {e.title} |")
    lines.append("")
    for e in entries:
        per = counts.get(e.id, {})
        if e.scope != "stream":
            seen = f"not a stream rule (scope `{e.scope}`): documented here, checked by its own tests"
        elif per:
            seen = f"{sum(per.values())} differences explained (" + ", ".join(
                f"{name}: {per[name]}" for name in names if name in per) + ")"
        else:
            seen = "no difference in its recordings is explained by this entry; the frame above is the evidence"
        lines += [
            f"### {e.id}",
            "",
            f"**{e.title}.** {e.description}",
            "",
            f"- What the exchange documents: {e.evidence['documented']}",
            f"- Source: {e.evidence['source']}",
            f"- Evidence frame, from recording `{e.evidence['recording']}`:",
            "",
            "  ```json",
            f"  {e.evidence['frame']}",
            "  ```",
            "",
            f"- Sample parity report: {seen}.",
        ]
        if e.rules:
            lines.append(f"- Explains: {_rules(e)}.")
        lines.append("")
    lines.append(AUDIT_END)
    return "\n".join(lines)


# --- where the blocks live ----------------------------------------------------------------------------

TARGETS: tuple[tuple[str, str, str, Any], ...] = (
    ("exchanges/backpack.md", CONFIG_BEGIN, CONFIG_END, lambda: config_table("../")),
    ("configuration.md", CONFIG_BEGIN, CONFIG_END, config_table),
    ("migrations/backpack_ccxt.md", AUDIT_BEGIN, AUDIT_END, ccxt_audit),
)


def block(text: str, begin: str, end: str) -> str:
    """The marked block of ``text``, markers included; ValueError when a marker is missing."""
    start = text.index(begin)
    return text[start : text.index(end, start) + len(end)]


def refreshed(text: str, begin: str, end: str, new: str) -> str:
    old = block(text, begin, end)
    return text.replace(old, new, 1)


def main(argv: list[str]) -> int:
    stale = []
    for name, begin, end, generate in TARGETS:
        path = DOCS / name
        text = path.read_text(encoding="utf-8")
        new = refreshed(text, begin, end, generate())
        if new != text:
            stale.append(name)
            if "--check" not in argv:
                path.write_text(new, encoding="utf-8")
    for name in stale:
        print(f"{'stale' if '--check' in argv else 'rewrote'}: docs/{name}")
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
