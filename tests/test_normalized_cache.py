"""canonical_decimal keeps texts per value; what it returns never depends on what it saw before."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from backpack.protocol import normalized
from backpack.protocol.normalized import _canonical, canonical_decimal

# the same values spelled many ways (trailing zeros, exponents, signs), plus non-finite and huge ones
SPELLINGS = st.builds(
    lambda digits, exp, sign: Decimal(f"{sign}{digits}E{exp}"),
    st.integers(0, 10**6), st.integers(-12, 12), st.sampled_from(["", "-"]),
) | st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"), Decimal("1E+200"), Decimal("-0.000")])
VALUES = SPELLINGS | st.integers(-(10**9), 10**9) | st.text(max_size=6) | st.none() | st.booleans() | st.floats()


@settings(max_examples=300, deadline=None)
@given(st.lists(VALUES, max_size=40))
def test_cached_text_is_the_fresh_text_whatever_came_before(values: list) -> None:
    """For any sequence of values, each canonical_decimal result equals the uncached computation, even
    after an equal value with another spelling (or type) was converted and kept first."""
    normalized._TEXT.clear()
    for value in values + values[::-1]:
        assert canonical_decimal(value) == _canonical(value), value


def test_equal_values_share_a_text_and_huge_ones_are_not_kept() -> None:
    normalized._TEXT.clear()
    assert canonical_decimal(Decimal("1.10")) == canonical_decimal(Decimal("1.1")) == "1.1"
    assert canonical_decimal(Decimal("-0E-8")) == "0"
    assert canonical_decimal(Decimal("sNaN")) == "NaN"  # unhashable: converted, not kept
    huge = Decimal("1E+100000")
    assert canonical_decimal(huge) == "1" + "0" * 100000
    assert huge not in normalized._TEXT and Decimal("1.1") in normalized._TEXT
