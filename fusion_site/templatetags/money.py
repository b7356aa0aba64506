"""``{% load money %}``: ``{{ amount|money }}`` shows an amount in pounds (``£8,953.84``) the one way
every page, export and document does (fusion_site.money.format_money); ``{{ pence|money_from_pence }}``
for amounts kept in whole pence."""

from decimal import Decimal

from django import template

from fusion_site.money import format_money, format_money_from_pence

register = template.Library()


@register.filter
def money(value: Decimal | int | str | None) -> str:
    if value is None or value == "":
        return ""
    return format_money(value)


@register.filter
def money_from_pence(value: int | None) -> str:
    return "" if value is None else format_money_from_pence(value)
