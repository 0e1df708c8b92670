"""Which implementation of the core's hot path runs: compiled when it was built, pure Python otherwise.

The one place that knows about ``backpack.protocol._speedups`` (Cython, from ``_speedups.pyx``), as
websockets keeps its C code behind one module. ``messages.Decoder`` and ``router.Router`` ask ``compiled_for``
which to use; the pure functions in ``messages.py`` and ``router.py`` are the readable reference the compiled
ones transcribe, and the equivalence tests run both. ``IMPLEMENTATION`` names the active one
(``"cython"`` or ``"python"``); ``BACKPACK_PURE_PYTHON=1`` forces the pure one. An install without a C
compiler still works, on the pure core (``setup.py`` prints why).
"""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from types import ModuleType

from ._build_digest import TRANSCRIBED, source_digest

__all__ = ["CYTHON", "ENV", "IMPLEMENTATION", "PURE", "REASON", "compiled", "compiled_for", "stale_reason"]

LOG = logging.getLogger("backpack.speedups")

ENV = "BACKPACK_PURE_PYTHON"
PURE = "python"
CYTHON = "cython"
_MODULE = "backpack.protocol._speedups"


def _import() -> tuple[ModuleType | None, str]:
    try:
        module = importlib.import_module("backpack.protocol._speedups")
    except ImportError as exc:  # not built (no compiler at install time), or blocked
        return None, f"{_MODULE} is not importable ({exc})"
    stale = stale_reason(module)
    return (None, stale) if stale else (module, "built")


def stale_reason(module: ModuleType, directory: Path | None = None) -> str | None:
    """Why ``module`` must not run next to the sources in ``directory`` (default: this package), or None.

    A checkout of another revision (``git bisect``) or an edited ``router.py`` leaves the module of an earlier
    build in place; running it would test the old code under the new one's name.
    """
    here = Path(__file__).resolve().parent if directory is None else directory
    built = getattr(module, "SOURCE_DIGEST", None)
    if built == source_digest(here):
        return None
    return (f"{_MODULE} was built from other sources than the {', '.join(TRANSCRIBED)} next to it"
            " (another revision checked out, or edited since the build): reinstall (pip install -e .) to rebuild it")


def _choose() -> tuple[ModuleType | None, str]:
    if os.environ.get(ENV, "").strip() not in ("", "0"):
        return None, f"{ENV} is set"
    return _import()


compiled, REASON = _choose()
"""The compiled module when it is the active implementation, else None (``REASON`` says why)."""
IMPLEMENTATION = PURE if compiled is None else CYTHON
(LOG.warning if REASON.startswith(f"{_MODULE} was built") else LOG.debug)(
    "sans-I/O core hot path: %s (%s)", IMPLEMENTATION, REASON)


def compiled_for(implementation: str | None = None) -> ModuleType | None:
    """The compiled module to use for ``implementation`` (None: the active one), or None for the pure core.

    Asking for ``"cython"`` explicitly loads it even under ``BACKPACK_PURE_PYTHON`` (the tests compare both
    in one process) and raises ``ValueError`` when it was not built.
    """
    name = IMPLEMENTATION if implementation is None else implementation
    if name == PURE:
        return None
    if name != CYTHON:
        raise ValueError(f"unknown core implementation {name!r}; valid: {PURE!r}, {CYTHON!r}")
    if compiled is not None:
        return compiled
    module, why = _import()
    if module is None:
        raise ValueError(f"the compiled core is not available: {why}")
    return module
