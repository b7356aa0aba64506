"""The product catalogue: a product's price on a day is the version with the latest valid_from on or before
that day (Hypothesis, against that statement), price versions added through the pages with history, and
the partner's staff keeping only their own partner's products."""

import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import AuditEvent, Role
from billing.catalogue import price_on, price_spans
from billing.models import Product, ProductPrice
from billing.services.catalogue import product_create

DAYS = st.dates(min_value=datetime.date(2020, 1, 1), max_value=datetime.date(2030, 12, 31))
PRICES = st.decimals(min_value=Decimal("0"), max_value=Decimal("999.99"), places=2)
VERSIONS = st.dictionaries(DAYS, PRICES, max_size=8)


def _by_statement(versions: dict[datetime.date, Decimal], day: datetime.date) -> Decimal | None:
    """The price list read the way a person reads it: of the versions dated on or before the day, the
    latest one."""
    dated_before = [valid_from for valid_from in versions if valid_from <= day]
    return versions[max(dated_before)] if dated_before else None


@given(VERSIONS, DAYS)
def test_the_price_on_any_day_is_the_latest_version_not_after_it(versions, day):
    assert price_on(versions.items(), day) == _by_statement(versions, day)


@given(VERSIONS, DAYS, st.integers(min_value=0, max_value=120))
def test_the_spans_of_a_period_price_each_day_as_on_that_day(versions, first, length):
    last = first + datetime.timedelta(days=length)
    spans = price_spans(versions.items(), first, last)
    priced = {}
    for span in spans:
        day = span.first
        while day <= span.last:
            assert day not in priced  # spans never overlap
            priced[day] = span.monthly_price
            day += datetime.timedelta(days=1)
    day = first
    while day <= last:
        assert priced.get(day) == _by_statement(versions, day)
        day += datetime.timedelta(days=1)


@pytest.fixture
def product(partner, agent):
    return product_create(
        partner=partner,
        name="SIP channel",
        monthly_price=Decimal("8.00"),
        valid_from=datetime.date(2026, 1, 1),
        actor=agent,
    )


def test_the_agent_adds_a_product_and_a_price_version_with_history(client, agent, partner):
    client.force_login(agent)
    response = client.post(
        "/billing/products/", {"name": "Analogue line", "monthly_price": "14.99", "valid_from": "2026-11-01"}
    )
    product = Product.objects.get(name="Analogue line")
    assert response.url == f"/billing/products/{product.pk}/"
    assert product.partner == partner  # a partner's staff add to their own partner only

    added = client.post(
        f"/billing/products/{product.pk}/",
        {"valid_from": "2027-01-01", "monthly_price": "16.50", "reason": "Annual review"},
    )
    assert added.status_code == 302
    versions = list(product.prices.order_by("valid_from").values_list("valid_from", "monthly_price"))
    assert versions == [
        (datetime.date(2026, 11, 1), Decimal("14.99")),
        (datetime.date(2027, 1, 1), Decimal("16.50")),
    ]
    page = client.get(f"/billing/products/{product.pk}/").content.decode()
    assert "£14.99" in page and "£16.50" in page and "Annual review" in page
    latest = ProductPrice.history.filter(product_id=product.pk).order_by("-history_date").first()
    assert latest.history_user == agent and latest.history_change_reason == "Annual review"
    assert AuditEvent.objects.filter(action="product.price_added", actor_id=agent.pk).count() == 1


def test_a_price_cannot_start_before_today(client, agent, product):
    client.force_login(agent)
    response = client.post(
        f"/billing/products/{product.pk}/", {"valid_from": "2026-11-01", "monthly_price": "9.00"}
    )
    assert response.status_code == 200
    assert "A new price starts today or later" in response.content.decode()
    assert product.prices.count() == 1


def test_a_finance_manager_reads_the_catalogue_but_does_not_change_it(client, make_user, product):
    client.force_login(make_user(Role.FINANCE_MANAGER))
    assert client.get(f"/billing/products/{product.pk}/").status_code == 200
    assert 'name="monthly_price"' not in client.get(f"/billing/products/{product.pk}/").content.decode()
    refused = client.post(
        f"/billing/products/{product.pk}/", {"valid_from": "2027-01-01", "monthly_price": "1"}
    )
    assert refused.status_code == 403
    assert product.prices.count() == 1


def test_the_same_name_twice_is_named(client, agent, product):
    client.force_login(agent)
    response = client.post(
        "/billing/products/", {"name": "SIP channel", "monthly_price": "1.00", "valid_from": "2026-12-01"}
    )
    assert "The partner has a product of this name already." in response.content.decode()
