"""The seam between the compiled and the pure core: which one runs, how it is chosen, and that it is there.

The behaviour of the two is compared elsewhere (tests/test_perf_equivalence.py, tests/test_messages_fuzz.py,
tests/test_speedups_core.py, tests/test_speedups_replay.py); here: the compiled core must be built unless
the machine says it has no compiler, ``BACKPACK_PURE_PYTHON=1`` and a missing module give the pure core, the
choice is visible and logged, and the ``.pyx`` stays sans-I/O like the rest of the core.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from backpack.protocol import speedups
from backpack.protocol.messages import Decoder
from backpack.protocol.router import Router
from tests.core_impls import NO_COMPILER, NO_COMPILER_ENV

REPO = Path(__file__).resolve().parents[1]
PYX = REPO / "backpack" / "protocol" / "_speedups.pyx"

# A child process: report which core it runs and what it logged, after decoding one depth frame.
_CHILD = r"""
import json, logging, sys
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("backpack.speedups").addHandler(Keep())
logging.getLogger("backpack.speedups").setLevel(logging.DEBUG)
if sys.argv[1] == "block":
    sys.modules["backpack.protocol._speedups"] = None  # an import of it now raises ImportError
from backpack.protocol import speedups
from backpack.protocol.router import Router
r = Router()
frame = json.dumps({"stream": "depth.S", "data": {"e": "depth", "E": 1, "s": "S", "U": 1, "u": 1, "T": 2,
                                                   "b": [["1.5", "2"]], "a": []}})
out = [type(e).__name__ for e in r.receive_frame(frame) + r.receive_frame(frame.replace('"U": 1, "u": 1', '"U": 2, "u": 2'))]
print(json.dumps({"implementation": speedups.IMPLEMENTATION, "router": r.implementation,
                  "decoder": r.decoder.implementation, "compiled": speedups.compiled is not None,
                  "bound": r.receive_frame.__qualname__, "logs": records, "out": out}))
"""


def _child(mode: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k != speedups.ENV}
    proc = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, cwd=REPO,
                          env={**base, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_compiled_core_is_built_and_active() -> None:
    """A normal run must have the compiled core: if the build failed, this fails instead of letting every
    equivalence test quietly compare the pure core with itself. Only ``BACKPACK_NO_COMPILER=1`` (the machine
    says it has no compiler) accepts the pure core, and then it must be the one running."""
    child = _child("normal")
    if NO_COMPILER:
        assert child["implementation"] == "python", f"{NO_COMPILER_ENV}=1 but the compiled core is active"
        return
    assert speedups.compiled_for(speedups.CYTHON) is not None, speedups.REASON
    assert (child["implementation"], child["router"], child["decoder"]) == ("cython",) * 3
    assert child["compiled"] is True and child["bound"] == "Receiver.receive_frame"
    assert child["logs"] == ["sans-I/O core hot path: cython (built)"]  # once, at debug
    assert child["out"] == ["FetchSnapshot"]  # buffered; the second frame chains onto the buffer


def test_pure_python_env_forces_the_pure_core() -> None:
    child = _child("normal", BACKPACK_PURE_PYTHON="1")
    assert (child["implementation"], child["router"], child["decoder"]) == ("python",) * 3
    assert child["compiled"] is False and child["bound"] == "Router.receive_frame"
    assert child["logs"] == ["sans-I/O core hot path: python (BACKPACK_PURE_PYTHON is set)"]
    assert child["out"] == ["FetchSnapshot"]


def test_a_missing_compiled_module_falls_back_to_the_pure_core() -> None:
    """An install without a compiler has no ``_speedups`` module: the core imports, says so, and works."""
    child = _child("block")
    assert (child["implementation"], child["router"], child["decoder"]) == ("python",) * 3
    assert child["compiled"] is False and child["bound"] == "Router.receive_frame"
    [log] = child["logs"]
    assert log.startswith("sans-I/O core hot path: python (backpack.protocol._speedups is not importable")
    assert child["out"] == ["FetchSnapshot"]


def test_implementation_is_chosen_per_router_and_unknown_names_are_refused() -> None:
    assert Router(implementation="python").implementation == "python"
    assert Decoder("python").implementation == "python"
    assert Router().implementation == speedups.IMPLEMENTATION
    with pytest.raises(ValueError, match="unknown core implementation 'rust'"):
        Router(implementation="rust")
    with pytest.raises(ValueError, match="unknown core implementation"):
        Decoder("C")


def test_asking_for_the_compiled_core_when_it_is_missing_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(speedups, "compiled", None)
    monkeypatch.setitem(sys.modules, "backpack.protocol._speedups", None)
    with pytest.raises(ValueError, match="the compiled core is not available"):
        Router(implementation="cython")


_FORBIDDEN_IMPORT = re.compile(
    r"^\s*(?:from|c?import)\s+(asyncio|aiohttp|websockets|cryptofeed|time|datetime|backpack\.(?!protocol)\w+)\b",
    re.M,
)
_CLOCK = re.compile(r"\b(?:time|monotonic|perf_counter|time_ns|monotonic_ns|perf_counter_ns|now|utcnow)\s*\(")


def test_the_pyx_stays_sans_io() -> None:
    """No event loop, network library, cryptofeed, clock or shell module in the compiled core either
    (tests/test_protocol_purity.py also imports the built module with those blocked)."""
    source = PYX.read_text()
    assert _FORBIDDEN_IMPORT.findall(source) == []
    assert _CLOCK.findall(source) == []
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, re.M)
    assert set(imports) <= {"logging", "decimal", "orjson", ".book", ".events", ".numbers", "cpython.object", "cpython.ref"}
    for snippet in ("import asyncio", "from time import monotonic", "import backpack.feed"):
        assert _FORBIDDEN_IMPORT.findall(snippet), snippet  # the scanner flags what it must
    assert _CLOCK.findall("x = time.monotonic()")


def test_generated_files_are_not_tracked() -> None:
    tracked = subprocess.run(["git", "ls-files", "backpack/protocol"], capture_output=True, text=True, cwd=REPO)
    if tracked.returncode != 0:
        pytest.skip("not a git checkout")  # an sdist or wheel has no index to check
    names = tracked.stdout.split()
    assert "backpack/protocol/_speedups.pyx" in names
    assert not [n for n in names if n.endswith((".c", ".so", ".pyd", ".html"))]


def _copy_package(tmp_path: Path) -> Path:
    """A copy of the package as this checkout has it, built module included, for a child to import."""
    import shutil

    shutil.copytree(REPO / "backpack", tmp_path / "backpack", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _child_in(cwd: Path) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in (speedups.ENV, "PYTHONPATH")}
    code = _CHILD.replace("print(json.dumps({", "import backpack\nprint(json.dumps({\"file\": backpack.__file__, ")
    proc = subprocess.run([sys.executable, "-c", code, "normal"], capture_output=True, text=True, cwd=cwd,
                          env=base, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(NO_COMPILER, reason="needs the built module; BACKPACK_NO_COMPILER=1 says there is none")
def test_a_module_built_from_other_sources_is_refused(tmp_path: Path) -> None:
    """``git checkout``/``git bisect`` of another revision keeps the ignored module of the last build; running
    it would judge the old code by the new fused copy. A changed ``router.py`` next to it gives the pure core
    and a warning naming the fix; the same copy unchanged runs the compiled core."""
    root = _copy_package(tmp_path)
    same = _child_in(root)
    assert same["file"].startswith(str(root)) and same["implementation"] == "cython", same
    router = root / "backpack" / "protocol" / "router.py"
    router.write_text(router.read_text() + "\n# another revision\n")
    child = _child_in(root)
    assert child["file"].startswith(str(root))
    assert (child["implementation"], child["router"], child["compiled"]) == ("python", "python", False)
    [log] = child["logs"]
    assert "was built from other sources" in log and "reinstall (pip install -e .)" in log
    assert child["out"] == ["FetchSnapshot"]


def test_stale_reason_compares_the_built_digest_with_the_sources(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from backpack.protocol._build_digest import TRANSCRIBED, source_digest

    for name in TRANSCRIBED:
        (tmp_path / name).write_text(f"# {name}\n")
    built = SimpleNamespace(SOURCE_DIGEST=source_digest(tmp_path))
    assert speedups.stale_reason(built, tmp_path) is None
    (tmp_path / "book.py").write_text("# book.py, edited\n")
    assert "was built from other sources" in speedups.stale_reason(built, tmp_path)
    assert speedups.stale_reason(SimpleNamespace(), tmp_path) is not None  # a module from before digests
