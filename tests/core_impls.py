"""The core implementations every equivalence and property test of the hot path runs on.

Both, always: a normal run where the compiled core did not build fails (``tests/test_speedups.py`` and every
test parametrised here), so CI cannot silently test the pure core alone. ``BACKPACK_NO_COMPILER=1`` is the
explicit statement that this machine cannot build it; then only the pure core is tested.
"""

from __future__ import annotations

import os

import pytest

NO_COMPILER_ENV = "BACKPACK_NO_COMPILER"
NO_COMPILER = os.environ.get(NO_COMPILER_ENV, "").strip() not in ("", "0")
IMPLEMENTATIONS = ("python",) if NO_COMPILER else ("python", "cython")

each_core = pytest.mark.parametrize("impl", IMPLEMENTATIONS)
"""Parametrises a test over ``impl``: pass it to ``Router(implementation=impl)`` / ``Decoder(impl)``."""
