"""Cost and quality of a call: exact integer arithmetic, rounding up, at the edges."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callworker.contract.policy import Rate
from callworker.policy.cost import billable_seconds, cost_cents, quality_score, rate_for


def rate(prefix: str = "+44", cents: str = "2", increment_s: int = 60, min_s: int = 0) -> Rate:
    return Rate(prefix=prefix, cents_per_minute=Decimal(cents), increment_s=increment_s, min_s=min_s)


@pytest.mark.parametrize(
    ("billsec", "increment_s", "min_s", "billable"),
    [
        (0, 60, 0, 0),  # never answered: nothing to bill, whatever the minimum
        (0, 6, 30, 0),
        (1, 60, 0, 60),  # one second is a whole increment
        (60, 60, 0, 60),  # exactly one increment
        (61, 60, 0, 120),
        (1, 6, 30, 30),  # under the minimum: the minimum
        (30, 6, 30, 30),  # exactly the minimum
        (31, 6, 30, 36),  # one second after it: one increment after it
        (36, 6, 30, 36),
        (37, 6, 30, 42),
        (7, 1, 0, 7),  # per-second billing
        (45, 60, 30, 90),  # the increment counts from min_s, not from 0
    ],
)
def test_billable_seconds(billsec: int, increment_s: int, min_s: int, billable: int) -> None:
    assert billable_seconds(billsec, rate(increment_s=increment_s, min_s=min_s)) == billable


@pytest.mark.parametrize(
    ("billsec", "cents", "increment_s", "min_s", "expected"),
    [
        (0, "2", 60, 0, 0),
        (1, "2", 60, 0, 2),  # one minute at 2 cents
        (60, "2", 60, 0, 2),
        (61, "2", 60, 0, 4),
        (1, "1", 1, 0, 1),  # 1/60 of a cent rounds up to a whole cent
        (60, "1", 1, 0, 1),
        (61, "1", 1, 0, 2),
        (30, "0.5", 6, 30, 1),  # 30 s at half a cent a minute: a quarter, rounded up
        (120, "0.5", 6, 30, 1),  # exactly one cent: no rounding up past it
        (121, "0.5", 6, 30, 2),
        (3600, "1.2345", 1, 0, 75),  # 74.07 cents
        (6, "0.1", 6, 0, 1),  # 0.01 cent is still a cent owed
        (10, "0", 1, 0, 0),  # a free prefix
    ],
)
def test_cost_in_cents_rounds_up_exactly(billsec: int, cents: str, increment_s: int, min_s: int,
                                          expected: int) -> None:
    assert cost_cents([rate(cents=cents, increment_s=increment_s, min_s=min_s)], "+4420123456", billsec) == expected


def test_exact_arithmetic_never_rounds_a_whole_cent_up() -> None:
    # 0.1 is not exact in binary: 600 s at 0.1 cents a minute must be 1 cent, not 2.
    assert cost_cents([rate(cents="0.1", increment_s=1)], "+44", 600) == 1
    assert cost_cents([rate(cents="0.3", increment_s=1)], "+44", 600) == 3


@given(billsec=st.integers(0, 100_000), cents=st.integers(0, 10_000), increment_s=st.integers(1, 120),
       min_s=st.integers(0, 300))
def test_cost_is_the_smallest_whole_cent_not_below_the_price(billsec: int, cents: int, increment_s: int,
                                                             min_s: int) -> None:
    r = rate(cents=str(Decimal(cents) / 100), increment_s=increment_s, min_s=min_s)
    cost = cost_cents([r], "+44", billsec)
    assert cost is not None
    billable = billable_seconds(billsec, r)
    # cost * 60 * 100 >= billable * cents > (cost - 1) * 60 * 100, in integers
    assert cost * 6000 >= billable * cents > (cost - 1) * 6000 or cost == 0 == billable * cents
    assert billable >= billsec and (billable == 0 or billable >= min_s)


def test_the_longest_matching_prefix_rates_the_call() -> None:
    rates = [rate("+44", "2"), rate("+4420", "1"), rate("", "9"), rate("1", "3")]
    assert rate_for(rates, "+442071234567") == rates[1]
    assert rate_for(rates, "441612345678") == rates[0]  # '+' or not, the same digits
    assert rate_for(rates, "+15551230001") == rates[3]
    assert rate_for(rates, "+33123456789") == rates[2]  # the empty prefix rates everything else
    assert rate_for(rates[:2], "+33123456789") is None
    assert cost_cents(rates[:2], "+33123456789", 60) is None  # no rate: unknown, not free
    assert rate_for(rates, None) is None


@pytest.mark.parametrize(
    ("mos", "score"),
    [(4.45, 4.5), (4.44, 4.4), (4.5, 4.5), (1.0, 1.0), (4.05, 4.1), (3.949999, 3.9), (0.0, 0.0),
     (None, None), (float("nan"), None), (float("inf"), None)],
)
def test_quality_is_the_mos_to_one_decimal_halves_up(mos: float | None, score: float | None) -> None:
    assert quality_score(mos) == score
