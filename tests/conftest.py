"""Suite-wide settings.

Under CI (``CI`` set) hypothesis runs derandomized, so a red build is reproducible from the same commit;
locally it explores new examples on every run and keeps failures in ``.hypothesis/``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
