"""The sans-I/O core stays pure: no asyncio/aiohttp/websockets/cryptofeed, no wall clock.

Every module under ``backpack/protocol`` is found by walking the folder, so a module added later is
covered without touching this file. The scanners are themselves tested on snippets they must flag.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROTOCOL = REPO / "backpack" / "protocol"
FORBIDDEN = frozenset({"asyncio", "aiohttp", "websockets", "cryptofeed"})
CLOCK_FUNCS = frozenset({"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns"})
DATETIME_CLOCK = frozenset({"now", "utcnow", "today"})
IMPORT_FUNCS = frozenset({"__import__", "import_module"})


def protocol_files() -> list[Path]:
    return sorted(PROTOCOL.rglob("*.py"))


def compiled_files() -> list[Path]:
    """Sources of the core's built extension modules (``_speedups.pyx`` once compiled): imported with the rest."""
    return sorted(p for p in PROTOCOL.glob("*.pyx") if any(PROTOCOL.glob(f"{p.stem}.*.so")))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str | None, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    package = current.split(".") if is_package else current.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, module] if module else base)


def _bad_module(name: str) -> str | None:
    root = name.split(".")[0]
    if root in FORBIDDEN:
        return f"imports {name}"
    # Anything in backpack outside backpack.protocol runs backpack/__init__.py, which imports cryptofeed.
    if root == "backpack" and not (name == "backpack.protocol" or name.startswith("backpack.protocol.")):
        return f"imports {name} (outside backpack.protocol)"
    return None


def import_violations(
    source: str, current: str = "backpack.protocol.x", is_package: bool = False
) -> list[str]:
    """Every import, from-import, __import__ or importlib.import_module that could load a forbidden module."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [f"line {node.lineno}: {why}" for a in node.names if (why := _bad_module(a.name))]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node.module, node.level, current, is_package)
            names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            out += [f"line {node.lineno}: {why}" for n in names if (why := _bad_module(n))]
        elif isinstance(node, ast.Call):
            func = node.func
            fname = (
                func.id
                if isinstance(func, ast.Name)
                else func.attr
                if isinstance(func, ast.Attribute)
                else None
            )
            if fname in IMPORT_FUNCS:
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    if why := _bad_module(arg.value):
                        out.append(f"line {node.lineno}: {fname}() {why}")
                else:
                    out.append(f"line {node.lineno}: {fname}() with a non-literal name cannot be checked")
    return out


def clock_violations(source: str) -> list[str]:
    """Every use (call or reference) of a wall/monotonic clock, through any import alias."""
    tree = ast.parse(source)
    time_mods: set[str] = set()
    dt_mods: set[str] = set()
    dt_classes: set[str] = set()
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "time":
                    time_mods.add(a.asname or "time")
                elif a.name == "datetime":
                    dt_mods.add(a.asname or "datetime")
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            for a in node.names:
                if node.module == "time" and a.name in CLOCK_FUNCS:
                    out.append(f"line {node.lineno}: imports time.{a.name}")
                elif node.module == "datetime" and a.name in ("datetime", "date"):
                    dt_classes.add(a.asname or a.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        value = node.value
        if isinstance(value, ast.Name) and value.id in time_mods and node.attr in CLOCK_FUNCS:
            out.append(f"line {node.lineno}: {value.id}.{node.attr}")
        elif node.attr in DATETIME_CLOCK:
            if isinstance(value, ast.Name) and value.id in dt_classes:
                out.append(f"line {node.lineno}: {value.id}.{node.attr}")
            elif (
                isinstance(value, ast.Attribute)
                and isinstance(value.value, ast.Name)
                and value.value.id in dt_mods
                and value.attr in ("datetime", "date")
            ):
                out.append(f"line {node.lineno}: {value.value.id}.{value.attr}.{node.attr}")
    return out


# --- the scanners catch what they must ------------------------------------------------------------


@pytest.mark.parametrize(
    "snippet",
    [
        "import asyncio",
        "import aiohttp.web",
        "import websockets.client as wc",
        "import os, cryptofeed",
        "from asyncio import sleep",
        "from cryptofeed.defines import TRADES",
        "from websockets import connect",
        "__import__('aiohttp')",
        "import importlib\nimportlib.import_module('cryptofeed.feed')",
        "from importlib import import_module\nimport_module('asyncio')",
        "name = 'asyncio'\n__import__(name)",
        "import backpack.feed",
        "from backpack import feed",
        "from .. import feed",
        "from ..feed import BackpackFeed",
    ],
)
def test_import_scanner_flags(snippet: str) -> None:
    assert import_violations(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "import json, re\nfrom decimal import Decimal",
        "from . import auth\nfrom .auth import Signer",
        "from .symbols import SymbolMap",
        "import backpack.protocol.auth",
        "from backpack.protocol import events",
        "import typing",
    ],
)
def test_import_scanner_passes_clean_code(snippet: str) -> None:
    assert import_violations(snippet) == []


def test_relative_import_resolution_from_a_package_init() -> None:
    assert import_violations("from . import auth", "backpack.protocol", is_package=True) == []
    assert import_violations("from .. import feed", "backpack.protocol", is_package=True)


@pytest.mark.parametrize(
    "snippet",
    [
        "import time\ntime.time()",
        "import time\nx = time.monotonic_ns",
        "import time as t\nt.perf_counter()",
        "from time import time",
        "from time import monotonic as m",
        "from datetime import datetime\ndatetime.now()",
        "from datetime import datetime as DT\nDT.utcnow()",
        "from datetime import date\ndate.today()",
        "import datetime\ndatetime.datetime.now(datetime.timezone.utc)",
        "import datetime as d\nd.date.today()",
    ],
)
def test_clock_scanner_flags(snippet: str) -> None:
    assert clock_violations(snippet), snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "import time\ntime.sleep",  # not a clock read (and harmless here)
        "from datetime import datetime\ndatetime.fromisoformat('2025-01-01T00:00:00')",
        "import datetime\ndatetime.datetime.fromtimestamp(0, datetime.timezone.utc)",
        "def now(): pass\nclass C:\n    def time(self): pass\nC().time()",
    ],
)
def test_clock_scanner_passes_pure_code(snippet: str) -> None:
    assert clock_violations(snippet) == []


# --- the real package ---------------------------------------------------------------------------


def test_protocol_package_has_the_core_modules() -> None:
    names = {module_name(p) for p in protocol_files()}
    assert {
        "backpack.protocol",
        "backpack.protocol.auth",
        "backpack.protocol.events",
        "backpack.protocol.symbols",
        "backpack.protocol.subscriptions",
    } <= names


@pytest.mark.parametrize("path", protocol_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_static_no_forbidden_imports(path: Path) -> None:
    source = path.read_text()
    assert import_violations(source, module_name(path), path.name == "__init__.py") == []


@pytest.mark.parametrize("path", protocol_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_static_no_clock_reads(path: Path) -> None:
    assert clock_violations(path.read_text()) == []


_RUNTIME = textwrap.dedent(
    """
    import importlib, importlib.abc, json, pkgutil, sys

    root, forbidden = sys.argv[1], set(json.loads(sys.argv[2]))

    class Absent(importlib.abc.MetaPathFinder):
        \"\"\"Makes the forbidden packages look not installed (the error a missing package gives).\"\"\"

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in forbidden:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    preloaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
    for m in preloaded:  # make sure a later import goes through the finder
        del sys.modules[m]
    sys.meta_path.insert(0, Absent())
    try:
        import asyncio  # noqa: F401
        blocker_works = False
    except ImportError:
        blocker_works = True

    sys.path.insert(0, root)
    import backpack  # the real package __init__: it must not need cryptofeed to import

    importlib.import_module("backpack.protocol")
    errors = []
    imported = ["backpack.protocol"]
    for info in pkgutil.walk_packages([root + "/backpack/protocol"], "backpack.protocol.", onerror=errors.append):
        try:
            importlib.import_module(info.name)
        except Exception as exc:  # report every module, not just the first failure
            errors.append(f"{info.name}: {type(exc).__name__}: {exc}")
        else:
            imported.append(info.name)

    # ... and run: decode frames, sync a book, route a trade.
    from backpack.protocol.router import Router

    def depth(seq, bids):
        data = {"e": "depth", "E": 1, "s": "SOL_USDC", "U": seq, "u": seq, "T": 2, "b": bids, "a": []}
        return json.dumps({"stream": "depth.SOL_USDC", "data": data})

    router = Router()
    ran = [type(e).__name__ for e in router.receive_frame(depth(10, [["100", "1"]]), 5)]
    snapshot = json.dumps({"lastUpdateId": "9", "bids": [["99", "2"]], "asks": [["101", "3"]]})
    ran += [type(e).__name__ for e in router.receive_snapshot("SOL_USDC", snapshot, 6)]
    ran += [type(e).__name__ for e in router.receive_frame(depth(11, [["99", "0"]]), 7)]
    trade = {"e": "trade", "E": 1, "s": "SOL_USDC", "p": "1", "q": "1", "b": "x", "a": "y", "t": 1, "T": 1, "m": True}
    ran += [type(e).__name__ for e in router.receive_frame(json.dumps({"stream": "trade.SOL_USDC", "data": trade}))]
    book = router.books.get("SOL_USDC").book.top()
    print(json.dumps({
        "blocker_works": blocker_works,
        "imported": sorted(imported),
        "errors": [str(e) for e in errors],
        "leaked": sorted(m for m in sys.modules if m.split(".")[0] in forbidden),
        "registry_loaded": "backpack.registry" in sys.modules,
        "registered": backpack.registered,
        "exchange_id": backpack.BACKPACK,
        "ran": ran,
        "book": [[[str(p), str(q)] for p, q in side] for side in book],
    }))
    """
)


def test_runtime_import_with_forbidden_modules_blocked() -> None:
    """With cryptofeed, aiohttp, websockets and asyncio absent, ``import backpack`` and every core module
    import, skip registration, and the core decodes frames and syncs a book without loading any of them."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNTIME, str(REPO), json.dumps(sorted(FORBIDDEN))],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["blocker_works"] is True
    assert result["errors"] == []
    assert result["leaked"] == []
    assert result["imported"] == sorted(module_name(p) for p in protocol_files() + compiled_files())
    assert (result["registered"], result["registry_loaded"], result["exchange_id"]) == (False, False, "BACKPACK")
    assert result["ran"] == ["FetchSnapshot", "BookUpdate", "BookUpdate", "Trade"]
    assert result["book"] == [[["100", "1"]], [["101", "3"]]]
