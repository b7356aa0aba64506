"""The invoices on a bill run's page: paged, filtered by customer reference, name or invoice number,
the page links keeping the filter, and the same number of queries whatever the page holds."""

import datetime
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Customer, Partner, Role, User
from billing import views
from billing.demo import uk_tariff
from billing.models import BillRun
from billing.services.charges import one_off_charge_create
from tests.billing.factories import billing_profile, calculated_run, finalised_run, month
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    LineFactory,
    PaymentDetailsFactory,
    SiteFactory,
    UserFactory,
)

JANUARY = month(2025, 1)
NAMES = ["Alder Joinery Ltd", "Birch Dental Care", "Cedar Zebedee Plumbing", "Damson Florists", "Elm Cafe"]


def _named_customer(partner: Partner, name: str, agent: User) -> Customer:
    customer = CustomerFactory(partner=partner, name=name)
    site = SiteFactory(customer=customer, label="Head office")
    ContactFactory(customer=customer)
    LineFactory(customer=customer, site=site)
    PaymentDetailsFactory(customer=customer)
    one_off_charge_create(
        customer=customer,
        description="Equipment",
        amount=Decimal("10.00"),
        charge_date=datetime.date(2025, 1, 5),
        actor=agent,
    )
    return customer


@pytest.fixture
def customers(partner, agent) -> list[Customer]:
    billing_profile(partner, default_tariff=uk_tariff(), invoice_prefix="OWN-")
    return [_named_customer(partner, name, agent) for name in NAMES]


@pytest.fixture
def run(partner, customers, agent, finance) -> BillRun:
    return finalised_run(partner, JANUARY, agent=agent, finance=finance)


@pytest.fixture
def two_a_page(monkeypatch):
    monkeypatch.setattr(views, "INVOICES_PER_PAGE", 2)


INVOICE_ROW = re.compile(r"<tr><td>(C-\d+)</td>")


def _listed(response) -> list[str]:
    assert response.status_code == 200
    return INVOICE_ROW.findall(response.content.decode())


def test_the_invoices_come_a_page_at_a_time_in_customer_order(client, finance, customers, run, two_a_page):
    client.force_login(finance)
    references = [customer.reference for customer in customers]

    pages = [_listed(client.get(f"/billing/runs/{run.pk}/?page={n}")) for n in (1, 2, 3)]

    assert pages == [references[0:2], references[2:4], references[4:5]]


@pytest.mark.parametrize("page", ["99", "0", "-1", "abc", ""])
def test_a_page_out_of_range_shows_the_last_or_first_page(client, finance, customers, run, two_a_page, page):
    client.force_login(finance)

    listed = _listed(client.get(f"/billing/runs/{run.pk}/?page={page}"))

    # Chosen over a 404 (Django's get_page): a number outside the pages gives the last page, a page that
    # is not a number the first; a bookmarked page of a run that has since shrunk still shows invoices.
    expected = customers[4:5] if page in {"99", "0", "-1"} else customers[0:2]
    assert listed == [customer.reference for customer in expected]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(lambda c, run: c[2].reference, [2], id="reference"),
        pytest.param(lambda c, run: c[2].reference.lower().removeprefix("c-"), [2], id="part-of-the-ref"),
        pytest.param(lambda c, run: "zebedee", [2], id="a-word-of-the-name"),
        pytest.param(lambda c, run: "Birch Dental", [1], id="words-of-the-name"),
        pytest.param(lambda c, run: "Birch Florists", [], id="words-of-two-names"),
        pytest.param(lambda c, run: run.invoices.get(customer=c[3]).number, [3], id="invoice-number"),
    ],
)
def test_the_invoices_are_filtered_by_reference_name_or_number(
    client, finance, customers, run, query, expected
):
    client.force_login(finance)

    listed = _listed(client.get(f"/billing/runs/{run.pk}/", {"q": query(customers, run)}))

    assert listed == [customers[n].reference for n in expected]


def test_the_filter_keeps_to_the_runs_own_invoices(client, finance, customers, run, other_partner):
    # Another partner bills a customer with the same name word; its invoice is not on this run's page.
    other_agent = UserFactory(role=Role.BILLING_AGENT, partner=other_partner)
    billing_profile(other_partner, default_tariff=uk_tariff(name="Other"), invoice_prefix="OTH-")
    stranger = _named_customer(other_partner, "Zebedee Holdings", other_agent)
    calculated_run(other_partner, JANUARY, actor=other_agent)
    client.force_login(finance)

    listed = _listed(client.get(f"/billing/runs/{run.pk}/", {"q": "Zebedee"}))

    assert listed == [customers[2].reference]
    assert stranger.reference not in listed


def test_the_page_links_keep_the_filter(client, finance, customers, run, two_a_page):
    client.force_login(finance)

    html = client.get(f"/billing/runs/{run.pk}/", {"q": "OWN-"}).content.decode()

    assert "5 invoices matching “OWN-”, 1\u20132 shown" in html  # every number carries the prefix
    assert 'href="?q=OWN-&amp;page=2#invoices">Next</a>' in html
    assert 'href="?q=OWN-&amp;page=3#invoices">Last</a>' in html


def test_a_page_costs_the_same_queries_whatever_it_holds(
    client, finance, customers, run, monkeypatch, django_assert_max_num_queries
):
    client.force_login(finance)
    client.get(f"/billing/runs/{run.pk}/")  # the session and permission caches warmed
    monkeypatch.setattr(views, "INVOICES_PER_PAGE", 1)
    with CaptureQueriesContext(connection) as one_invoice:
        assert len(_listed(client.get(f"/billing/runs/{run.pk}/"))) == 1
    monkeypatch.setattr(views, "INVOICES_PER_PAGE", 5)

    with django_assert_max_num_queries(len(one_invoice)):
        assert len(_listed(client.get(f"/billing/runs/{run.pk}/", {"q": "OWN-"}))) == 5
