"""What a call cost and how it sounded: ``cost_cents`` and ``quality_score`` of its CDR.

A call is rated by its tenant's rate with the longest prefix matching its
destination number (digits compared, a leading ``+`` ignored on both sides;
an empty prefix rates every number). Its billable seconds are:

- 0 when it was never answered (``billsec`` 0);
- ``min_s`` when it lasted ``min_s`` seconds or less: the first ``min_s``
  seconds are charged whole;
- otherwise ``min_s`` plus the seconds after ``min_s`` rounded *up* to whole
  ``increment_s``: "billsec rounded up to the increment after min_s".

``cost_cents`` = ceil(billable seconds × ``cents_per_minute`` / 60), in exact
rational arithmetic (a rate of 0.5 cents is exactly a half, never 0.4999…),
rounded up to a whole cent. No matching rate: the cost is unknown (null).

``quality_score`` = ``rtp_audio_in_mos`` rounded to one decimal, halves up
(4.45 is 4.5); null when FreeSWITCH measured none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from callworker.contract.policy import Rate

__all__ = ["billable_seconds", "cost_cents", "quality_score", "rate_for"]


def rate_for(rates: Sequence[Rate], destination_number: str | None) -> Rate | None:
    """The rate with the longest prefix of the number's digits (the first listed on a tie)."""
    if destination_number is None:
        return None
    digits = destination_number.lstrip("+")
    best: Rate | None = None
    for rate in rates:
        if digits.startswith(rate.digits) and (best is None or len(rate.digits) > len(best.digits)):
            best = rate
    return best


def billable_seconds(billsec: int, rate: Rate) -> int:
    if billsec <= 0:
        return 0
    if billsec <= rate.min_s:
        return rate.min_s
    after = billsec - rate.min_s
    increments = -(-after // rate.increment_s)  # whole increments, rounded up
    return rate.min_s + increments * rate.increment_s


def cost_cents(rates: Sequence[Rate], destination_number: str | None, billsec: int | None) -> int | None:
    """The call's cost in whole cents, rounded up; None when no rate applies."""
    rate = rate_for(rates, destination_number)
    if rate is None:
        return None
    seconds = billable_seconds(billsec or 0, rate)
    return math.ceil(Fraction(seconds) * Fraction(rate.cents_per_minute) / 60)


def quality_score(mos: float | None) -> float | None:
    if mos is None or not math.isfinite(mos):
        return None
    # From the float's shortest text (4.45, not 4.4500000000000001776...), halves up.
    return float(Decimal(repr(mos)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
