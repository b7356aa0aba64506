"""How amounts of money are shown: fusion_site.money.format_money, behind the ``money`` template filter,
the CSV exports and the documents. Pennies, rounded half-up (as invoice lines are), a leading minus."""

import re
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.template import Context, Template
from hypothesis import given
from hypothesis import strategies as st

from fusion_site.money import format_money, format_money_from_pence, to_money, vat_on

PAGE_AMOUNT = re.compile(r"(-?)£(\d{1,3}(?:,\d{3})*)\.(\d{2})")
CSV_AMOUNT = re.compile(r"(-?)(\d+)\.(\d{2})")


@pytest.mark.parametrize(
    ("value", "page", "csv"),
    [
        (Decimal("8953.84000000000"), "£8,953.84", "8953.84"),  # a SQLite SUM, as the run page showed it
        (Decimal("1234567.891"), "£1,234,567.89", "1234567.89"),
        (Decimal("999.995"), "£1,000.00", "1000.00"),
        (Decimal("0.125"), "£0.13", "0.13"),  # half-up, where half-even would give 0.12
        (Decimal("2.665"), "£2.67", "2.67"),
        (Decimal("-1234.565"), "-£1,234.57", "-1234.57"),  # half-up rounds away from zero
        (Decimal("-0.004"), "£0.00", "0.00"),  # never "-£0.00"
        (Decimal("-7953.84"), "-£7,953.84", "-7953.84"),
        (0, "£0.00", "0.00"),
        ("12.5", "£12.50", "12.50"),
    ],
)
def test_amounts_are_shown_in_pennies_half_up_with_a_leading_minus(value, page, csv):
    assert format_money(value) == page
    assert format_money(value, for_csv=True) == csv


def test_the_money_filter_is_format_money_and_leaves_nothing_empty():
    template = Template("{% load money %}[{{ a|money }}] [{{ b|money }}] [{{ p|money_from_pence }}]")

    rendered = template.render(Context({"a": Decimal("-8953.845"), "b": None, "p": 123456}))

    assert rendered == "[-£8,953.85] [] [£1,234.56]"
    assert format_money_from_pence(-5) == "-£0.05"


def test_what_is_not_an_amount_is_refused():
    with pytest.raises(ValueError, match="not an amount of money"):
        format_money("12,50")


amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False, allow_infinity=False)


@given(amounts)
def test_a_shown_amount_reads_back_as_the_amount_rounded_half_up_to_pennies(value):
    """Checked against the rule itself (round half-up to 0.01), not against the formatter's own code."""
    pennies = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    for text, pattern in (
        (format_money(value), PAGE_AMOUNT),
        (format_money(value, for_csv=True), CSV_AMOUNT),
    ):
        sign, pounds, pence = pattern.fullmatch(text).groups()
        read_back = Decimal(f"{pounds.replace(',', '')}.{pence}")
        assert (-read_back if sign else read_back) == pennies
        assert not (sign and pennies == 0)


def test_the_refusal_names_the_value():
    with pytest.raises(ValueError, match=r"^'12,50' is not an amount of money\.$"):
        format_money("12,50")


@given(amounts)
def test_vat_is_the_standard_rate_of_the_net_rounded_half_up_to_pennies(net):
    """VAT Notice 700 s. 17: the standard rate is 20%; we round the invoice total's VAT half-up to pennies."""
    expected = (net * Decimal("0.2")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert vat_on(net) == expected
    assert vat_on(net, Decimal("0.05")) == (net * Decimal("0.05")).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def test_vat_rounds_half_a_penny_up_not_to_even():
    assert vat_on(Decimal("0.025")) == Decimal("0.01")  # 0.005, where half-even gives 0.00
    assert to_money(Decimal("2.665")) == Decimal("2.67")
