"""The case catalog: numbered conformance cases, as data (``cases/*.yaml``, one file per area).

A case is a recording slice (which bundled recording, how many of its frames, the symbols and channels a
client subscribes to, optional rewrites of the frames), a socket-level fault program (calls of the
loopback server's fault hooks, ``harness.loopback.faults.Faults``, each placed at a text frame of a
connection or armed from the start), what the judge should check, and the expected client behaviour in
one sentence. Nothing here runs a client; ``CatalogError`` says in one line what is wrong with a file.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.loopback.faults import Faults

CASES_DIR = Path(__file__).with_name("cases")
RECORDINGS = ("public", "private", "edge", "errors")
CHANNELS = ("trades", "l2_book", "bbo", "ticker", "orders")
TRANSFORMS = ("ints_as_strings", "null_bbo_sides", "aggregated_depth", "unknown_fields")
PSEUDO_HOOKS = ("resend_frame",)  # runner-side: send a frame of the slice again (``frame``: its position)
HOOKS = ("skip_depth", "duplicate_depth", "reorder_depth", "delay_frames", "fail_snapshots", "rate_limit",
         "reject_private", "stop_pongs", "stop_pings", "close_socket", "send_error", "send_raw", "split_frames",
         "shift_snapshots", "empty_snapshots")
CHECKS = {
    "reconnect": ("required", "allowed", "none"),  # none: an extra connection is non-strict
    "resync": ("allowed", "none"),  # none: a book_resync is non-strict (nothing was lost)
    "silence_s": float,  # a dead link to be replaced while this long a silence lasts (else non-strict)
    "retry_after_s": float,  # a REST retry must wait this long after the 429 (else non-strict)
    "pong_timeout": ("fail",),  # the server closing for an unanswered ping fails the case
    "timeout_s": float,  # the bound: a run not over by then is a hang
}
_ID = re.compile(r"^[1-9][0-9]?\.[1-9][0-9]?$")
_NEEDS = ("l2_book", "trades", "bbo", "private", "aggregated_depth")


class CatalogError(ValueError):
    """A case file that cannot be used; the message names the file and the case."""


@dataclass(frozen=True, slots=True)
class Fault:
    hook: str
    at: int | None = None  # text frames sent on ``connection`` before it applies (None: armed from the start)
    connection: int = 1
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        where = "from the start" if self.at is None else f"after frame {self.at} of connection {self.connection}"
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.hook}({args}) {where}"


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    name: str
    area: str
    area_title: str
    expect: str
    recording: str
    frames: int
    symbols: tuple[str, ...]
    channels: tuple[str, ...]
    transforms: tuple[str, ...] = ()
    faults: tuple[Fault, ...] = ()
    checks: dict[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    server: dict[str, Any] = field(default_factory=dict)
    slow_consumer: bool = False
    source: str = ""

    @property
    def key(self) -> tuple[int, int]:
        a, b = self.id.split(".")
        return int(a), int(b)

    @property
    def slug(self) -> str:
        return f"{self.id}-{self.name}"

    @property
    def timeout_s(self) -> float:
        return float(self.checks.get("timeout_s", 15.0))


def _hook_params(hook: str) -> set[str]:
    if hook == "resend_frame":
        return {"frame"}
    sig = inspect.signature(getattr(Faults, hook))
    return {p for p in sig.parameters if p != "self"}


def _fail(where: str, message: str) -> CatalogError:
    return CatalogError(f"{where}: {message}")


def _fault(raw: Any, where: str) -> Fault:
    if not isinstance(raw, dict):
        raise _fail(where, f"a fault is a mapping with a hook, not {type(raw).__name__}")
    raw = dict(raw)
    hook = raw.pop("hook", None)
    if hook not in HOOKS + PSEUDO_HOOKS:
        raise _fail(where, f"unknown hook {hook!r}; known: {', '.join(HOOKS + PSEUDO_HOOKS)}")
    at = raw.pop("at", None)
    connection = raw.pop("connection", 1)
    if at is not None and (type(at) is not int or at < 0):
        raise _fail(where, f"at must be a frame count >= 0, not {at!r}")
    if type(connection) is not int or connection < 1:
        raise _fail(where, f"connection must be a number >= 1, not {connection!r}")
    unknown = set(raw) - _hook_params(hook)
    if unknown:
        raise _fail(where, f"{hook} takes no {', '.join(sorted(unknown))}")
    if hook == "resend_frame" and type(raw.get("frame")) is not int:
        raise _fail(where, "resend_frame needs frame: the position of the frame to send again")
    return Fault(hook, at, connection, raw)


def _sentence(text: Any, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise _fail(where, "expect must be the expected client behaviour in one sentence")
    body = " ".join(text.split())
    if not body.endswith(".") or re.search(r"[.!?]\s+[A-Z]", body[:-1]):
        raise _fail(where, f"expect must be one sentence ending with a full stop: {body[:80]!r}")
    return body


def _case(raw: Any, area: str, area_title: str, source: str, index: int) -> Case:
    where = f"{source}: case {index + 1}"
    if not isinstance(raw, dict):
        raise _fail(where, "a case is a mapping")
    cid = str(raw.get("id", ""))
    where = f"{source}: case {cid or index + 1}"
    if not _ID.match(cid):
        raise _fail(where, f"id must be numbered like '3.2', not {raw.get('id')!r}")
    known = {"id", "name", "expect", "slice", "faults", "checks", "needs", "server", "slow_consumer"}
    unknown = set(raw) - known
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(sorted(unknown))}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise _fail(where, "name must be a lower-case slug")
    sl = raw.get("slice")
    if not isinstance(sl, dict):
        raise _fail(where, "slice must say recording, frames, symbols and channels")
    recording = sl.get("recording")
    if recording not in RECORDINGS:
        raise _fail(where, f"slice.recording must be one of {', '.join(RECORDINGS)}")
    frames = sl.get("frames")
    if type(frames) is not int or not 1 <= frames <= 20_000:
        raise _fail(where, "slice.frames must be a number of frames (1..20000)")
    symbols = sl.get("symbols")
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
        raise _fail(where, "slice.symbols must be a list of symbols such as SOL-USDC")
    channels = sl.get("channels")
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        raise _fail(where, f"slice.channels must be a list of {', '.join(CHANNELS)}")
    transforms = sl.get("transforms") or []
    if any(t not in TRANSFORMS for t in transforms):
        raise _fail(where, f"slice.transforms must be among {', '.join(TRANSFORMS)}")
    faults = tuple(_fault(f, f"{where} fault {i + 1}") for i, f in enumerate(raw.get("faults") or []))
    checks = raw.get("checks") or {}
    if not isinstance(checks, dict):
        raise _fail(where, "checks must be a mapping")
    for k, v in checks.items():
        rule = CHECKS.get(k)
        if rule is None:
            raise _fail(where, f"unknown check {k!r}; known: {', '.join(CHECKS)}")
        if rule is float:
            if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
                raise _fail(where, f"check {k} must be a positive number of seconds")
        elif v not in rule:
            raise _fail(where, f"check {k} must be one of {', '.join(rule)}")
    needs = raw.get("needs") or []
    if any(n not in _NEEDS for n in needs):
        raise _fail(where, f"needs must be among {', '.join(_NEEDS)}")
    server = raw.get("server") or {}
    if set(server) - {"compress", "ping_interval", "pong_timeout", "speed"}:
        raise _fail(where, "server takes compress, ping_interval, pong_timeout and speed")
    return Case(cid, name, area, area_title, _sentence(raw.get("expect"), where), recording, frames,
                tuple(symbols), tuple(channels), tuple(transforms), faults, dict(checks), tuple(needs),
                dict(server), bool(raw.get("slow_consumer", False)), source)


def load_file(path: Path) -> list[Case]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path.name}: cannot read it ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise CatalogError(f"{path.name}: a case file has area, title and a list of cases")
    area, title = doc.get("area"), doc.get("title")
    if not isinstance(area, str) or not isinstance(title, str):
        raise CatalogError(f"{path.name}: area and title must be text")
    return [_case(raw, area, title, path.name, i) for i, raw in enumerate(doc["cases"])]


def load_catalog(directory: Path = CASES_DIR) -> list[Case]:
    """Every case of every file, ordered by number; numbers and names must be unique."""
    files = sorted(directory.glob("*.yaml"))
    if not files:
        raise CatalogError(f"no case files (*.yaml) in {directory}")
    cases: list[Case] = []
    for path in files:
        cases.extend(load_file(path))
    seen: dict[str, str] = {}
    for case in cases:
        for key in (case.id, case.name):
            if key in seen:
                raise CatalogError(f"{case.source}: case {case.id}: {key!r} is already used in {seen[key]}")
            seen[key] = case.source
    return sorted(cases, key=lambda c: c.key)


def select(cases: list[Case], patterns: list[str] | None) -> list[Case]:
    """Cases whose number, name or slug matches any glob (``2.*``, ``*gap*``); all without patterns."""
    if not patterns:
        return list(cases)
    return [c for c in cases if any(fnmatch.fnmatchcase(x, p) for p in patterns for x in (c.id, c.name, c.slug))]


__all__ = ["CASES_DIR", "Case", "CatalogError", "Fault", "load_catalog", "load_file", "select"]
