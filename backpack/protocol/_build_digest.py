"""The fingerprint tying a compiled core to the pure sources it transcribes.

The compiled module is a separate file next to the sources. Nothing stops the two from drifting apart:
`git checkout` or `git bisect` of an older revision keeps the ignored, newer module, and an edit of
``router.py`` without a rebuild would keep running the old fused code. ``setup.py`` builds this digest into
the module, and ``speedups`` refuses a module whose digest does not match the sources it sits next to.
Standard library only: ``setup.py`` loads this file by path, before the package's dependencies exist.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

TRANSCRIBED = ("book.py", "events.py", "messages.py", "numbers.py", "router.py")
"""The pure modules the compiled code copies or reaches into (their behaviour, slots and field lists)."""


def source_digest(directory: Path) -> str:
    """sha256 over the names and bytes of ``TRANSCRIBED`` in ``directory``; a missing file counts as empty."""
    digest = hashlib.sha256()
    for name in TRANSCRIBED:
        path = directory / name
        data = path.read_bytes() if path.is_file() else b""
        digest.update(b"%s\0%d\0" % (name.encode(), len(data)))
        digest.update(data)
    return digest.hexdigest()
