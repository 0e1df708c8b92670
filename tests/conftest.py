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


def pytest_addoption(parser) -> None:
    parser.addoption("--shard", metavar="I/N", default=None,
                     help="run only the I-th of N disjoint slices of the collected tests (1-based), for CI machines; "
                          "combines with -n")


def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes I/N such as 2/3, got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text}: I must be within 1..N")
    return i, n


def pytest_collection_modifyitems(config, items) -> None:
    """``--shard I/N``: keep every N-th test in node-id order, starting at the I-th. Every xdist worker collects
    the same tests and slices them the same way, so the slices of N machines are disjoint and cover all."""
    text = config.getoption("--shard")
    if not text:
        return
    i, n = _shard(text)
    order = {item.nodeid: k for k, item in enumerate(sorted(items, key=lambda it: it.nodeid))}
    keep = [item for item in items if order[item.nodeid] % n == i - 1]
    dropped = [item for item in items if order[item.nodeid] % n != i - 1]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep
