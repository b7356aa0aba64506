"""The staff home list: each row's link and contract dates, as Django's own tags would have shown them."""

import datetime
import html
import re

from django.template import Context, Template
from django.urls import resolve, reverse
from django.utils.safestring import SafeString
from hypothesis import given
from hypothesis import strategies as st

from accounts.customer_list import customer_rows
from accounts.models import Customer, Partner
from accounts.selectors import ListedCustomer
from tests.factories import CustomerFactory

DASH = "\N{EN DASH}"
dates = st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2100, 12, 31))


# A row as the list's template wrote it from the customer, with Django's own tags, filters and escaping,
# before the rows were written in Python.
DJANGOS_OWN_ROW = Template(
    '<tr><td><a href="{% url "accounts:site_details" customer.reference %}">{{ customer.reference }}</a></td>'
    "<td>{{ customer.name }}</td><td>{{ customer.partner.name }}</td>"
    "<td>{{ customer.get_status_display }}</td>"
    '<td>{{ customer.contract_start|date:"j M Y" }} \N{EN DASH} '
    '{% if customer.contract_end %}{{ customer.contract_end|date:"j M Y" }}{% else %}open{% endif %}</td>'
    '<td class="num">{{ customer.site_count }}</td><td class="num">{{ customer.line_count }}</td>'
    '<td>{% if customer.billing_ceased_at %}<span class="flag">billing ceased</span>{% endif %}'
    '{% if customer.processing_restricted_at %}<span class="flag">restricted</span>{% endif %}</td></tr>\n'
)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
moments = st.none() | st.datetimes(timezones=st.just(datetime.UTC))
counts = st.integers(min_value=0, max_value=10**7)


@given(
    pk=st.integers(min_value=1, max_value=10**9),
    start=dates,
    end=st.none() | dates,
    name=text,
    partner=text,
    status=st.sampled_from(Customer.Status.values),
    sites=counts,
    lines=counts,
    ceased=moments,
    restricted=moments,
)
def test_a_row_shows_what_djangos_own_tags_and_filters_would(
    pk, start, end, name, partner, status, sites, lines, ceased, restricted
):
    customer = Customer(
        pk=pk,
        name=name,
        partner=Partner(name=partner),
        status=status,
        contract_start=start,
        contract_end=end,
        billing_ceased_at=ceased,
        processing_restricted_at=restricted,
    )
    customer.site_count, customer.line_count = sites, lines
    listed = ListedCustomer(pk, name, partner, status, start, end, ceased, restricted, sites, lines)

    row = customer_rows([listed])

    assert row == DJANGOS_OWN_ROW.render(Context({"customer": customer}))
    assert isinstance(row, SafeString)
    href = re.search(r'href="([^"]*)"', row)
    assert href is not None
    assert resolve(html.unescape(href.group(1))).kwargs == {"reference": customer.reference}


def test_rows_are_joined_in_the_order_given_and_none_is_empty():
    start = datetime.date(2026, 1, 1)
    first, second = (
        ListedCustomer(pk, f"N{pk}", "P", "active", start, None, None, None, 0, 0) for pk in (7, 3)
    )

    rows = customer_rows([first, second])

    assert rows == customer_rows([first]) + customer_rows([second])
    assert rows.index(first.reference) < rows.index(second.reference)
    assert customer_rows([]) == ""


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
