"""Prices of effective-dated product versions: which version is in force on a day, and how a span of days
splits at the versions' dates. Pure functions over (valid_from, monthly price) pairs, so the bill run, the
pages and the tests read the one rule: a product's price on a day is the version with the latest
``valid_from`` on or before that day; before the first version there is no price."""

import datetime
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

PriceVersion = tuple[datetime.date, Decimal]


class PriceSpan(NamedTuple):
    """Consecutive days [first, last] charged at one monthly price."""

    first: datetime.date
    last: datetime.date
    monthly_price: Decimal


def price_on(versions: Iterable[PriceVersion], day: datetime.date) -> Decimal | None:
    """The monthly price in force on ``day``: the version with the latest ``valid_from`` not after it."""
    found: PriceVersion | None = None
    for valid_from, price in versions:
        if valid_from <= day and (found is None or valid_from > found[0]):
            found = (valid_from, price)
    return found[1] if found else None


def price_spans(
    versions: Iterable[PriceVersion], first: datetime.date, last: datetime.date
) -> list[PriceSpan]:
    """The days [first, last] split where a new version takes effect, each span at its version's price;
    days before the first version are left out (they have no price)."""
    if last < first:
        return []
    ordered = sorted(versions)
    spans: list[PriceSpan] = []
    for index, (valid_from, price) in enumerate(ordered):
        ends = ordered[index + 1][0] - datetime.timedelta(days=1) if index + 1 < len(ordered) else last
        start, end = max(valid_from, first), min(ends, last)
        if start <= end:
            spans.append(PriceSpan(start, end, price))
    return spans
