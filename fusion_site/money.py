"""Money: Decimal everywhere, with one set of precisions and one rounding rule (half-up).

- A call's cost is kept to 4 decimal places (COST_PLACES).
- Invoice lines are rounded to pennies (MONEY_PLACES) from the sum of their unrounded call costs.
- VAT is charged on the invoice's net total, rounded to pennies.
- Amounts are shown by ``format_money`` (pages through the ``money`` template filter, CSV exports and
  documents): pennies, half-up, a leading minus, "£" and thousands separators on pages, bare in CSV.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

COST_PLACES = Decimal("0.0001")
MONEY_PLACES = Decimal("0.01")
COST_DIGITS = 14
MONEY_DIGITS = 12
# The smallest unit the rating SQL works in: a ten-thousandth of a pound, as an integer.
COST_UNITS_PER_POUND = 10_000
STANDARD_VAT_RATE = Decimal("0.20")


def to_money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_UP)


def vat_on(net: Decimal, rate: Decimal = STANDARD_VAT_RATE) -> Decimal:
    return to_money(net * rate)


def format_money(value: Decimal | int | str, *, for_csv: bool = False) -> str:
    """An amount in pounds as people read it: ``-£1,234.57`` on pages and documents; ``-1234.57`` in
    CSV (no symbol or separators, so spreadsheets read a number). Rounded to pennies, half-up, like
    invoice lines; a sum that rounds to nothing is never shown as ``-£0.00``."""
    try:
        amount = to_money(Decimal(value))
    except InvalidOperation as exc:
        raise ValueError(f"{value!r} is not an amount of money.") from exc
    sign = "-" if amount < 0 else ""
    if for_csv:
        return f"{sign}{abs(amount):.2f}"
    return f"{sign}£{abs(amount):,.2f}"


def format_money_from_pence(pence: int) -> str:
    return format_money(Decimal(pence) / 100)
