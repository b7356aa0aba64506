"""The staff home list's rows, presented once in Python.

The list is the page staff open most. Its fifty rows through the template cost about 6.6 ms of CPU a
page, and a third of that was a ``{% url %}`` and two ``|date`` filters per row (bench/load.py); here the
link is reversed once and each date formatted from the month names looked up once per page
(``fusion_site.short_dates``).

The rows are then written as HTML here too: even from dicts of ready strings, Django's template engine
spent about 2.4 ms a page on the fifty rows' 450 variables (resolving, escaping, joining each node),
against 0.2 ms for one format per row with each value escaped as the template escapes it
(``html.escape``, which ``django.utils.html.escape`` wraps). tests/accounts/test_customer_list.py checks
each row against the template the list used before."""

import html
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.core.paginator import Page, Paginator
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.safestring import SafeString, mark_safe

from accounts import selectors
from accounts.models import Customer, User
from accounts.selectors import ListedCustomer
from fusion_site.short_dates import ShortDates


class CustomerListPaginator(Paginator):
    """The staff list's pages: the total and each page as ``selectors.CustomerList`` reads them (for a
    partner's staff, from the grant tables rather than by testing every customer's grants)."""

    def __init__(self, user: User, *, query: str, per_page: int) -> None:
        self.listing = selectors.CustomerList(user, query=query)
        # No object list of its own: the total and the pages are the listing's (count, page, get_page), and
        # a partner's list is read from the grants without building the rows' queryset at all.
        super().__init__((), per_page)

    @cached_property
    def count(self) -> int:
        return self.listing.count()

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        rows = self.listing.page(offset=(number - 1) * self.per_page, limit=self.per_page)
        return Page(rows, number, self)

    def get_page(self, number: Any) -> Page:
        """``Paginator.get_page``: the page ``number``, the first if it is not a page number, the last if
        past it; its rows and the total read together where the listing can (``page_and_count``)."""
        try:
            wanted = int(number)
        except (TypeError, ValueError):
            wanted = 1
        if wanted >= 1:
            read = self.listing.page_and_count(offset=(wanted - 1) * self.per_page, limit=self.per_page)
            if read is not None:
                rows, total = read
                self.__dict__["count"] = total  # the count cached_property's value, read with the rows
                return Page(rows, wanted, self)
        return super().get_page(number)


# Reversed with this in the reference's place, then filled in for each row. A reference is "C-" and
# digits (Customer.reference_of), which a URL carries as they are.
_SLOT = "C-0"


# One row of the list; every value is escaped before it is put in (``customer_rows``).
_ROW = (
    '<tr><td><a href="{url}">{reference}</a></td><td>{name}</td><td>{partner}</td><td>{status}</td>'
    '<td>{contract}</td><td class="num">{sites}</td><td class="num">{lines}</td><td>{flags}</td></tr>\n'
)
_CEASED = '<span class="flag">billing ceased</span>'
_RESTRICTED = '<span class="flag">restricted</span>'


def customer_rows(customers: Iterable[ListedCustomer]) -> SafeString:
    """Each customer's row of the list, as HTML: its Site Details link and reference, name, partner,
    status, contract dates from and to ("open"), counts of sites and lines (whole numbers print as the
    template would, without separators) and its flags. Every value is escaped as Django's templates
    escape it."""
    escape = html.escape
    link = reverse("accounts:site_details", args=[_SLOT])
    head, tail = link.rsplit(_SLOT, 1)
    dates = ShortDates()
    statuses = {value: str(label) for value, label in Customer.Status.choices}

    def day(value: date | None) -> str:
        return dates.day(value) if value else "open"

    rows = []
    for customer in customers:
        reference = escape(customer.reference)
        flags = (_CEASED if customer.billing_ceased_at is not None else "") + (
            _RESTRICTED if customer.processing_restricted_at is not None else ""
        )
        rows.append(
            _ROW.format(
                url=f"{head}{reference}{tail}",
                reference=reference,
                name=escape(customer.name),
                partner=escape(customer.partner_name),
                status=escape(statuses.get(customer.status, customer.status)),
                contract=f"{day(customer.contract_start)} \N{EN DASH} {day(customer.contract_end)}",
                sites=customer.site_count,
                lines=customer.line_count,
                flags=flags,
            )
        )
    return mark_safe("".join(rows))  # noqa: S308 - each value above is escaped
