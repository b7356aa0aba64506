"""Money: Decimal everywhere, with one set of precisions and one rounding rule (half-up).

- A call's cost is kept to 4 decimal places (COST_PLACES).
- Invoice lines are rounded to pennies (MONEY_PLACES) from the sum of their unrounded call costs.
- VAT is charged on the invoice's net total, rounded to pennies.
"""

from decimal import ROUND_HALF_UP, Decimal

COST_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")
COST_DIGITS = 14
MONEY_DIGITS = 12
# The smallest unit the rating SQL works in: a ten-thousandth of a pound, as an integer.
COST_UNITS_PER_POUND = 10_000
STANDARD_VAT_RATE = Decimal("0.20")


def to_cost(value: Decimal) -> Decimal:
    return value.quantize(COST_PLACES, rounding=ROUND_HALF_UP)


def to_money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def vat_on(net: Decimal, rate: Decimal = STANDARD_VAT_RATE) -> Decimal:
    return to_money(net * rate)
