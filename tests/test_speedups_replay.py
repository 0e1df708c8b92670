"""Every bundled recording replays to byte-identical normalized output on the pure and the compiled core.

Each replay runs in a fresh process (``python -m harness replay``, what a user runs), one forced onto the pure
core with ``BACKPACK_PURE_PYTHON=1`` and one on the default core, which in a normal run is the compiled one
(``tests/test_speedups.py`` fails when it is not). Both must also give the sidecar's hash: the output the live
feed delivered while recording.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.recording.library import bundled, load_sidecar
from tests.core_impls import IMPLEMENTATIONS

RECORDINGS = bundled()
_CHILD = (
    "import sys\n"
    "from backpack.protocol import speedups\n"
    "from harness.cli import main\n"
    "sys.stderr.write(f'core={speedups.IMPLEMENTATION}\\n')\n"
    "raise SystemExit(main(['replay', sys.argv[1]]))\n"
)


def _replay(path: Path, impl: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "BACKPACK_PURE_PYTHON"}
    if impl == "python":
        env["BACKPACK_PURE_PYTHON"] = "1"
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name)
def test_both_cores_replay_the_recording_to_the_same_bytes(path: Path) -> None:
    procs = {impl: _replay(path, impl) for impl in IMPLEMENTATIONS}  # in parallel: one per core
    outputs = {}
    for impl, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-500:]
        assert err.decode().startswith(f"core={impl}\n"), err.decode()[:200]
        outputs[impl] = out
    assert len(set(outputs.values())) == 1, {k: len(v) for k, v in outputs.items()}
    expected = load_sidecar(path)["expected"]
    assert hashlib.sha256(outputs["python"]).hexdigest() == expected["normalized_sha256"]
    assert outputs["python"].count(b"\n") == expected["lines"] > 0
