"""The account pages through the test client: the staff account page and the portal statement, recording a
payment, refunding, asking for and deciding write-offs (four eyes), the aged debt report and its CSV;
another partner's customer is a 404 everywhere, and the pages' query counts do not grow with the account."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest

from accounts.models import Customer, Role, User
from billing.models import LedgerEntry, Payment, WriteOff
from billing.services.ledger import write_off_request
from billing.services.payments import payment_record
from tests.billing.factories import billing_profile
from tests.billing.test_ledger import TODAY, issue_invoice
from tests.chart_pages import chart_data, chart_summary, chart_table
from tests.factories import UserFactory, full_customer

pytestmark = pytest.mark.frozen_at("2026-06-30T12:00:00+00:00")


@pytest.fixture
def account(partner, profile, finance) -> Customer:
    customer = full_customer(partner)
    issue_invoice(customer, "10.00", issued=datetime.date(2026, 4, 1), actor=finance)  # gross 12.00
    issue_invoice(customer, "20.00", issued=datetime.date(2026, 6, 1), actor=finance)  # gross 24.00
    return customer


@pytest.fixture
def stranger(other_partner) -> Customer:
    billing_profile(other_partner)
    customer = full_customer(other_partner)
    finance = UserFactory(role=Role.FINANCE_MANAGER, partner=other_partner)
    issue_invoice(customer, "50.00", issued=datetime.date(2026, 3, 1), actor=finance)
    return customer


def _text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_the_account_page_shows_balance_statement_open_invoices_and_payments(client, agent, account):
    payment_record(customer=account, method="card", amount=Decimal("5.00"), received_on=TODAY, actor=agent)
    client.force_login(agent)

    response = client.get(f"/billing/customers/{account.reference}/account/")

    assert response.status_code == 200
    text = _text(response)
    assert "Balance £31.00 owed" in text
    # The running balance: 12.00, 36.00, then 31.00 after the payment.
    assert re.search(
        r"Invoice .*£12\.00 £12\.00 .*Invoice .*£24\.00 £36\.00 .*Payment .*-£5\.00 £31\.00", text
    )
    assert "£7.00" in text  # outstanding on the older invoice
    assert "Record a payment" in text and "Ask for a write-off" in text
    assert "Refund" not in text  # finance managers refund


def test_the_account_page_costs_the_same_queries_however_long_the_account(
    client, agent, finance, account, django_assert_max_num_queries
):
    client.force_login(agent)
    url = f"/billing/customers/{account.reference}/account/"
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as short:
        client.get(url)
    for month in range(1, 6):
        issue_invoice(account, "1.00", issued=datetime.date(2025, month, 1), actor=finance)
        payment_record(
            customer=account, method="card", amount=Decimal("0.50"), received_on=TODAY, actor=agent
        )
    write_off_request(
        invoice=account.invoices.order_by("pk").first(), amount=Decimal("1.00"), reason="x", actor=agent
    )
    with django_assert_max_num_queries(len(short)):
        response = client.get(url)
    assert _text(response).count("Card") == 2 * 5  # each payment on the statement and in the payments


def test_the_providers_staff_reading_a_partners_account_is_logged(client, make_user, account):
    from accounts.models import AccessLog

    client.force_login(make_user(Role.ADMINISTRATOR))

    assert client.get(f"/billing/customers/{account.reference}/account/").status_code == 200
    log = AccessLog.objects.get(customer=account)
    assert (log.action, log.fields) == (AccessLog.Action.CROSS_PARTNER_VIEW, ["account"])


def test_a_portal_user_sees_its_own_statement_and_nothing_else(client, make_user, account, stranger, partner):
    portal = make_user(Role.CUSTOMER, customer=account)
    client.force_login(portal)

    own = client.get(f"/billing/customers/{account.reference}/account/")

    assert own.status_code == 200
    text = _text(own)
    assert "Your account" in text and "Balance £36.00" in text
    assert "Record a payment" not in text and "Write-offs" not in text
    for other in (stranger, full_customer(partner)):
        assert client.get(f"/billing/customers/{other.reference}/account/").status_code == 404
    assert client.get(f"/billing/customers/{account.reference}/account/payments/new/").status_code == 403


@pytest.mark.parametrize("role", [Role.BILLING_AGENT, Role.FINANCE_MANAGER])
def test_another_partners_customer_is_not_found_on_every_account_page(client, make_user, stranger, role):
    payment = payment_record(
        customer=stranger,
        method="card",
        amount=Decimal("1.00"),
        received_on=TODAY,
        actor=UserFactory(role=Role.BILLING_AGENT, partner=stranger.partner),
    )
    invoice = stranger.invoices.get()
    request = write_off_request(
        invoice=invoice,
        amount=Decimal("1.00"),
        reason="x",
        actor=UserFactory(role=Role.FINANCE_MANAGER, partner=stranger.partner),
    )
    client.force_login(make_user(role))
    base = f"/billing/customers/{stranger.reference}/account/"

    for url in (
        base,
        f"{base}payments/new/",
        f"{base}payments/{payment.pk}/refund/",
        f"{base}invoices/{invoice.pk}/write-off/",
    ):
        assert client.get(url).status_code == 404, url
    assert (
        client.post(
            f"{base}payments/new/", {"method": "card", "amount": "1", "received_on": "2026-06-30"}
        ).status_code
        == 404
    )
    assert client.post(f"{base}write-offs/{request.pk}/approve/").status_code == 404
    assert WriteOff.objects.get(pk=request.pk).status == WriteOff.Status.REQUESTED
    assert Payment.objects.filter(customer=stranger).count() == 1


def test_a_payment_cannot_be_refunded_through_another_customers_account(
    client, finance, account, partner, agent
):
    neighbour = full_customer(partner)
    payment = payment_record(
        customer=neighbour, method="card", amount=Decimal("9.00"), received_on=TODAY, actor=agent
    )
    client.force_login(finance)

    response = client.get(f"/billing/customers/{account.reference}/account/payments/{payment.pk}/refund/")

    assert response.status_code == 404


def test_recording_a_payment_settles_the_oldest_invoice(client, agent, account):
    client.force_login(agent)

    response = client.post(
        f"/billing/customers/{account.reference}/account/payments/new/",
        {"method": "bank_transfer", "amount": "20.00", "received_on": "2026-06-29", "reference": "BACS 123"},
    )

    assert response.status_code == 302
    payment = Payment.objects.get(customer=account)
    assert (payment.method, payment.amount, payment.recorded_by) == ("bank_transfer", Decimal("20.00"), agent)
    text = _text(client.get(f"/billing/customers/{account.reference}/account/"))
    assert "Balance £16.00 owed" in text


def test_a_refund_beyond_the_credit_is_refused_on_its_field(client, agent, finance, account):
    payment = payment_record(
        customer=account, method="card", amount=Decimal("40.00"), received_on=TODAY, actor=agent
    )
    client.force_login(finance)
    url = f"/billing/customers/{account.reference}/account/payments/{payment.pk}/refund/"

    refused = client.post(url, {"amount": "4.01", "reason": "Overpaid"})
    done = client.post(url, {"amount": "4.00", "reason": "Overpaid"})

    assert refused.status_code == 200 and "at most 4.00" in _text(refused)
    assert done.status_code == 302
    assert LedgerEntry.objects.get(kind="refund").amount == Decimal("4.00")


def test_a_write_off_is_decided_by_another_finance_manager_on_the_account_page(
    client, make_user, agent, finance, account
):
    second = make_user(Role.FINANCE_MANAGER, email="second.finance@example.com")
    invoice = account.invoices.order_by("issue_date").first()
    client.force_login(finance)
    asked = client.post(
        f"/billing/customers/{account.reference}/account/invoices/{invoice.pk}/write-off/",
        {"amount": "12.00", "reason": "Customer deceased"},
    )
    assert asked.status_code == 302
    request = WriteOff.objects.get()
    page = _text(client.get(f"/billing/customers/{account.reference}/account/"))
    assert "Approve" not in page  # not to the requester

    own = client.post(
        f"/billing/customers/{account.reference}/account/write-offs/{request.pk}/approve/", follow=True
    )
    assert "Four eyes" in _text(own)
    assert WriteOff.objects.get().status == WriteOff.Status.REQUESTED
    client.force_login(agent)
    assert (
        client.post(
            f"/billing/customers/{account.reference}/account/write-offs/{request.pk}/approve/"
        ).status_code
        == 403
    )
    client.force_login(second)
    approved = client.post(f"/billing/customers/{account.reference}/account/write-offs/{request.pk}/approve/")

    assert approved.status_code == 302
    assert WriteOff.objects.get().status == WriteOff.Status.APPROVED
    assert "Balance £24.00 owed" in _text(client.get(f"/billing/customers/{account.reference}/account/"))


def test_the_write_off_row_says_why_a_user_may_not_decide_it_and_the_post_is_refused_alike(
    client, make_user, agent, finance, account
):
    second = make_user(Role.FINANCE_MANAGER, email="second.finance@example.com")
    invoice = account.invoices.order_by("issue_date").first()
    request = write_off_request(
        invoice=invoice, amount=Decimal("12.00"), reason="Customer deceased", actor=finance
    )
    account_url = f"/billing/customers/{account.reference}/account/"
    approve_url = f"{account_url}write-offs/{request.pk}/approve/"
    four_eyes = "Four eyes: you asked for this write-off, so another finance manager must decide it."
    finance_only = "Only a finance manager may approve or reject a write-off."

    client.force_login(finance)
    page = client.get(account_url).content.decode()
    assert '<button type="submit">Approve</button>' not in page and four_eyes in page
    refused = client.post(approve_url, follow=True)
    assert [message.message for message in refused.context["messages"]] == [four_eyes]

    client.force_login(agent)
    page = client.get(account_url).content.decode()
    assert '<button type="submit">Approve</button>' not in page and finance_only in page
    forbidden = client.post(approve_url)
    assert forbidden.status_code == 403 and finance_only in forbidden.content.decode()

    client.force_login(second)
    page = client.get(account_url).content.decode()
    assert '<button type="submit">Approve</button>' in page
    assert four_eyes not in page and finance_only not in page
    assert WriteOff.objects.get().status == WriteOff.Status.REQUESTED


def test_staff_move_a_payment_to_another_invoice_and_the_reason_is_kept(client, agent, account):
    payment = payment_record(
        customer=account, method="card", amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )
    older, newer = account.invoices.order_by("issue_date")
    stranger_invoice = issue_invoice(full_customer(account.partner), "1.00", issued=TODAY, actor=agent)
    client.force_login(agent)
    url = f"/billing/customers/{account.reference}/account/payments/{payment.pk}/reallocate/"

    foreign = client.post(
        url, {"from_invoice": older.pk, "to_invoice": stranger_invoice.pk, "amount": "1", "reason": "x"}
    )
    moved = client.post(
        url, {"from_invoice": older.pk, "to_invoice": newer.pk, "amount": "5.00", "reason": "Remittance"}
    )

    assert foreign.status_code == 200 and "Select a valid choice" in _text(foreign)
    assert moved.status_code == 302
    assert set(payment.allocations.values_list("reason", flat=True)) == {"Oldest invoice first", "Remittance"}
    text = _text(client.get(f"/billing/customers/{account.reference}/account/"))
    assert "£5.00" in text and "£19.00" in text  # outstanding on the older and the newer invoice


# Aged debt.


def _csv(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_the_aged_debt_report_shows_the_partners_debt_with_a_chart_and_csv(
    client, agent, account, stranger, partner
):
    client.force_login(agent)

    page = client.get("/billing/aged-debt/", {"as_of": "2026-06-30"})
    download = client.get("/billing/aged-debt.csv", {"as_of": "2026-06-30"})

    html = page.content.decode()
    assert page.status_code == 200
    assert stranger.partner.name not in html
    data = chart_data(html, "aged-debt")
    assert (data["title"], data["x"]["label"], data["y"]["label"], data["stacked"]) == (
        "Outstanding by days past due on 30 Jun 2026",
        "Past due (days)",
        "Outstanding (£)",
        True,
    )
    assert data["labels"] == ["Current", "1-30 days", "31-60 days", "61-90 days", "Over 90 days"]
    assert data["series"] == [
        {
            "label": partner.name,
            "values": ["0.00", "24.00", "0.00", "12.00", "0.00"],
            "texts": ["£0.00", "£24.00", "£0.00", "£12.00", "£0.00"],
        }
    ]
    summary = chart_summary(html, "aged-debt")
    assert "1-30 days: £24.00" in summary and "61-90 days: £12.00" in summary
    assert chart_table(html, "aged-debt")[:3] == [
        ["Past due (days)", partner.name],
        ["Current", "£0.00"],
        ["1-30 days", "£24.00"],
    ]
    assert _csv(download) == [
        {
            "partner": partner.name,
            "as_of": "2026-06-30",
            "current": "0.00",
            "days_1_30": "24.00",
            "days_31_60": "0.00",
            "days_61_90": "12.00",
            "over_90": "0.00",
            "total": "36.00",
        }
    ]


def test_the_aged_debt_report_costs_the_same_queries_for_more_partners(
    client, make_user, account, stranger, django_assert_max_num_queries
):
    admin = make_user(Role.ADMINISTRATOR)
    client.force_login(admin)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get("/billing/aged-debt/")
    with CaptureQueriesContext(connection) as two_partners:
        first = client.get("/billing/aged-debt/")
    assert {stranger.partner.name, account.partner.name} <= set(
        re.findall(r"<td>([^<]+)</td>", first.content.decode())
    )
    from tests.factories import PartnerFactory

    for _ in range(3):
        extra = PartnerFactory()
        billing_profile(extra)
        finance = UserFactory(role=Role.FINANCE_MANAGER, partner=extra)
        issue_invoice(full_customer(extra), "5.00", issued=datetime.date(2026, 5, 1), actor=finance)
    with django_assert_max_num_queries(len(two_partners)):
        client.get("/billing/aged-debt/")


@pytest.mark.parametrize("role", [Role.SUPPORT_AGENT, Role.CUSTOMER])
def test_the_aged_debt_report_is_refused_to_whoever_may_not_see_billing(client, make_user, role):
    user: User = make_user(role)
    client.force_login(user)
    assert client.get("/billing/aged-debt/").status_code == 403
    assert client.get("/billing/aged-debt.csv").status_code == 403
