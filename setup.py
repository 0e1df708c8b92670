"""Builds the optional compiled hot path (backpack/protocol/_speedups.pyx); everything else is in pyproject.toml.

The extension is optional: without Cython or a working C compiler the install still succeeds, prints why,
and the pure-Python core is used (``backpack.protocol.speedups.IMPLEMENTATION == "python"``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PYX = os.path.join("backpack", "protocol", "_speedups.pyx")
NAME = "backpack.protocol._speedups"
PROTOCOL = Path(__file__).resolve().parent / "backpack" / "protocol"


def _source_digest() -> str:
    """The digest of the pure sources this build transcribes (backpack/protocol/_build_digest.py), loaded by
    path: importing the package would need its run-time dependencies, which the build environment lacks."""
    spec = importlib.util.spec_from_file_location("_backpack_build_digest", PROTOCOL / "_build_digest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.source_digest(PROTOCOL)


def _warn(why: str) -> None:
    bar = "*" * 78
    sys.stderr.write(
        f"\n{bar}\nWARNING: the compiled core ({NAME}) was not built: {why}\n"
        "The pure-Python core will be used; it behaves the same, only slower.\n"
        f"Install a C compiler and Cython>=3 and reinstall to get it.\n{bar}\n\n"
    )


def _remove_stale() -> None:
    """A module left in the source tree by an earlier build would be imported instead of the pure core,
    though it no longer matches the .pyx: remove it when this build fails."""
    stale = os.path.join("backpack", "protocol", "_speedups" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))
    if os.path.exists(stale):
        os.remove(stale)
        sys.stderr.write(f"removed the stale {stale}\n")


class OptionalBuildExt(build_ext):
    """A failed compile is a warning, not a failed install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (distutils raises before compiling anything)
            _warn(f"{type(exc).__name__}: {exc}")
            _remove_stale()

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            _warn(f"{type(exc).__name__}: {exc}")
            _remove_stale()

    def copy_extensions_to_source(self) -> None:  # editable installs: nothing to copy after a failed build
        try:
            super().copy_extensions_to_source()
        except Exception as exc:
            _warn(f"{type(exc).__name__}: {exc}")
            _remove_stale()


def _extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not installed in the build environment")
        return []
    digest = _source_digest()
    generated = PROTOCOL / "_speedups.c"
    # cythonize skips a .pyx older than its .c, which would keep the digest of other sources: regenerate
    # whenever the .c does not carry this one.
    stale = not generated.is_file() or digest not in generated.read_text(errors="replace")
    try:
        return cythonize([Extension(NAME, [PYX])], compiler_directives={"language_level": "3"}, quiet=True,
                         compile_time_env={"BUILD_SOURCE_DIGEST": digest}, force=stale)
    except Exception as exc:
        _warn(f"cythonize failed: {type(exc).__name__}: {exc}")
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
