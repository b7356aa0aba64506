"""The staff home list: each row's link and contract dates, as Django's own tags would have shown them."""

import datetime

from django.urls import resolve, reverse
from django.utils import dateformat
from hypothesis import given
from hypothesis import strategies as st

from accounts.customer_list import customer_rows
from accounts.models import Customer
from tests.factories import CustomerFactory

DASH = "\N{EN DASH}"
dates = st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2100, 12, 31))


@given(pk=st.integers(min_value=1, max_value=10**9), start=dates, end=st.none() | dates)
def test_a_row_links_and_dates_as_the_url_tag_and_date_filter_would(pk, start, end):
    customer = Customer(pk=pk, contract_start=start, contract_end=end)

    (row,) = customer_rows([customer])

    assert row.url == reverse("accounts:site_details", args=[customer.reference])
    assert resolve(row.url).kwargs == {"reference": customer.reference}
    shown_end = dateformat.format(end, "j M Y") if end else "open"
    assert row.contract == f"{dateformat.format(start, 'j M Y')} {DASH} {shown_end}"


def test_the_list_shows_each_visible_customer_with_its_link_and_contract(
    client, agent, partner, other_partner
):
    ended = CustomerFactory(
        partner=partner, contract_start=datetime.date(2024, 1, 5), contract_end=datetime.date(2026, 3, 31)
    )
    running = CustomerFactory(partner=partner, contract_start=datetime.date(2025, 12, 1))
    hidden = CustomerFactory(partner=other_partner)
    client.force_login(agent)

    page = client.get(reverse("accounts:home")).content.decode()

    assert f'<a href="/customers/{ended.reference}/">{ended.reference}</a>' in page
    assert f"5 Jan 2024 {DASH} 31 Mar 2026" in page
    assert f"1 Dec 2025 {DASH} open" in page
    assert running.reference in page
    assert hidden.reference not in page
    assert client.get(f"/customers/{ended.reference}/").status_code == 200
