"""Suite-wide settings.

Under CI (``CI`` set) hypothesis runs derandomized, so a red build is reproducible from the same commit;
locally it explores new examples on every run and keeps failures in ``.hypothesis/``. ``nightly`` explores
too, without the example database (a nightly machine starts clean). The fault scenarios read the same
variable (or ``BACKPACK_SCENARIOS_PROFILE``) for how many scenarios to run: ``harness/scenarios/strategies.py``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.register_profile("nightly", print_blob=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
