"""Delta debugging (Zeller and Hildebrandt's ddmin): a 1-minimal subset of units that still fails.

Generic over what a unit is; ``fails(units)`` decides. Results are cached by the tuple of units, since
ddmin asks about the same subset more than once. Subsets are tried before complements, and complements
only once there are more than two chunks (at two they are the subsets again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class Oracle:
    """``fails`` with a cache and a count of the real tests run."""

    def __init__(self, fails: Callable[[list[T]], bool], on_test: Callable[[int, int], None] | None = None) -> None:
        self._fails = fails
        self._cache: dict[tuple[object, ...], bool] = {}
        self.tests = 0
        self.on_test = on_test

    def __call__(self, units: list[T]) -> bool:
        key = tuple(units)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        self.tests += 1
        result = bool(self._fails(units))
        self._cache[key] = result
        if self.on_test is not None:
            self.on_test(self.tests, len(units))
        return result


def _chunks(units: Sequence[T], n: int) -> list[list[T]]:
    size, extra = divmod(len(units), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(list(units[start:end]))
        start = end
    return [c for c in out if c]


def ddmin(units: Sequence[T], fails: Callable[[list[T]], bool]) -> list[T]:
    """Assumes ``fails(units)``; returns a subset that fails and fails no more when any one unit is removed."""
    current = list(units)
    if fails([]):
        return []
    n = 2
    while len(current) >= 2:
        chunks = _chunks(current, n)
        for chunk in chunks:
            if fails(chunk):
                current, n = chunk, 2
                break
        else:
            for i in range(len(chunks) if len(chunks) > 2 else 0):
                complement = [u for j, c in enumerate(chunks) if j != i for u in c]
                if fails(complement):
                    current, n = complement, max(n - 1, 2)
                    break
            else:
                if n >= len(current):
                    break
                n = min(len(current), 2 * n)
    return current


__all__ = ["Oracle", "ddmin"]
