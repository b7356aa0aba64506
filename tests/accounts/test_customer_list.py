"""The staff home list: each row's link and contract dates, as Django's own tags would have shown them."""

import datetime

from django.template import Context, Template
from django.urls import resolve, reverse
from hypothesis import given
from hypothesis import strategies as st

from accounts.customer_list import customer_rows
from accounts.models import Customer, Partner
from tests.factories import CustomerFactory

DASH = "\N{EN DASH}"
dates = st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2100, 12, 31))


# The cells as the list's template wrote them from the customer before the rows were presented in Python.
DJANGOS_OWN_CELLS = Template(
    '<a href="{% url "accounts:site_details" customer.reference %}">{{ customer.reference }}</a>'
    "|{{ customer.name }}|{{ customer.partner.name }}|{{ customer.get_status_display }}"
    '|{{ customer.contract_start|date:"j M Y" }} \N{EN DASH} '
    '{% if customer.contract_end %}{{ customer.contract_end|date:"j M Y" }}{% else %}open{% endif %}'
    "|{{ customer.site_count }}|{{ customer.line_count }}"
    "|{% if customer.billing_ceased_at %}ceased{% endif %}"
    "{% if customer.processing_restricted_at %}restricted{% endif %}"
)
ROW_CELLS = Template(
    '<a href="{{ row.url }}">{{ row.reference }}</a>|{{ row.name }}|{{ row.partner }}|{{ row.status }}'
    "|{{ row.contract }}|{{ row.sites }}|{{ row.lines }}"
    "|{% if row.billing_ceased %}ceased{% endif %}{% if row.restricted %}restricted{% endif %}"
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

    (row,) = customer_rows([customer])

    assert ROW_CELLS.render(Context({"row": row})) == DJANGOS_OWN_CELLS.render(
        Context({"customer": customer})
    )
    assert resolve(row["url"]).kwargs == {"reference": customer.reference}


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
