"""The staff home list's rows, presented once in Python.

The list is the page staff open most. Its fifty rows through the template cost about 6.6 ms of CPU a
page, and a third of that was a ``{% url %}`` and two ``|date`` filters per row (bench/load.py); here the
link is reversed once and each date formatted from the month names looked up once per page."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from django.urls import reverse
from django.utils.dates import MONTHS_3

from accounts.models import Customer

# Reversed with this in the reference's place, then filled in for each row. A reference is "C-" and
# digits (Customer.reference_of), which a URL carries as they are.
_SLOT = "C-0"


@dataclass(frozen=True)
class CustomerRow:
    customer: Customer
    url: str
    contract: str


def customer_rows(customers: Iterable[Customer]) -> list[CustomerRow]:
    """Each customer with its Site Details link and its contract's dates, from and to ("open")."""
    link = reverse("accounts:site_details", args=[_SLOT])
    head, tail = link.rsplit(_SLOT, 1)
    months = {number: str(MONTHS_3[number]).title() for number in MONTHS_3}

    def day(value: date | None) -> str:
        return f"{value.day} {months[value.month]} {value.year}" if value else "open"

    return [
        CustomerRow(
            customer=customer,
            url=f"{head}{customer.reference}{tail}",
            contract=f"{day(customer.contract_start)} \N{EN DASH} {day(customer.contract_end)}",
        )
        for customer in customers
    ]
