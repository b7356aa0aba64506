"""The DPO's retention page: runs with the chart, customers due soon, holds set and lifted by POST only,
policies changed with a reason; refused to everyone without the permissions."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Customer, Role
from privacy.models import LegalHold, RetentionPolicy
from privacy.services.retention import legal_hold_set, retention_run
from tests.chart_pages import chart_data
from tests.factories import full_customer

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

PAGE = reverse("privacy:retention")


def ended(partner, contract_end):
    customer = full_customer(partner)
    Customer.objects.filter(pk=customer.pk).update(
        contract_start=datetime.date(2020, 1, 1), contract_end=contract_end
    )
    customer.refresh_from_db()
    return customer


@pytest.fixture
def dpo_client(client, dpo):
    client.force_login(dpo)
    return client


def test_page_shows_runs_chart_due_soon_and_holds(dpo_client, partner, dpo):
    today = timezone.localdate()
    gone = ended(partner, today - datetime.timedelta(days=70))
    soon = ended(partner, today - datetime.timedelta(days=20))
    later = ended(partner, today + datetime.timedelta(days=40))
    held = ended(partner, today - datetime.timedelta(days=15))
    legal_hold_set(
        customer=held,
        kind="litigation",
        reason="Claim CL-77",
        owner=dpo,
        review_on=today + datetime.timedelta(days=30),
        actor=dpo,
    )
    retention_run(today=today - datetime.timedelta(days=1))
    retention_run(today=today)
    response = dpo_client.get(PAGE)
    assert response.status_code == 200
    text = response.content.decode()
    assert "customer_account" in text and "Rows deleted per night" in text
    data = chart_data(text, "retention")
    assert data["y"]["label"] == "Deleted (rows)" and "customer_account" in [
        s["label"] for s in data["series"]
    ]
    due = response.context["due_soon"]
    assert [row.customer.pk for row in due] == [soon.pk, held.pk]
    assert [row.held for row in due] == [False, True]
    assert gone.reference not in {row.customer.reference for row in due} and later.pk not in [
        r.customer.pk for r in due
    ]
    assert sum(response.context["chart"].totals()) >= 1
    assert [hold.customer for hold in response.context["holds"]] == [held]
    assert "Claim CL-77" in text and "Set hold" in text
    assert 'name="csrfmiddlewaretoken"' in text


def test_page_queries_do_not_grow_with_rows(dpo_client, partner, dpo):
    today = timezone.localdate()

    def add(count):
        for _ in range(count):
            customer = ended(partner, today - datetime.timedelta(days=10))
            legal_hold_set(
                customer=customer,
                kind="dispute",
                reason="INV-9",
                owner=dpo,
                review_on=today + datetime.timedelta(days=5),
                actor=dpo,
            )
        retention_run(today=today)

    add(1)
    dpo_client.get(PAGE)
    with CaptureQueriesContext(connection) as few:
        dpo_client.get(PAGE)
    add(4)
    with CaptureQueriesContext(connection) as many:
        dpo_client.get(PAGE)
    assert len(few) == len(many)


def test_set_and_lift_a_hold_by_post(dpo_client, partner, dpo):
    customer = ended(partner, None)
    review = (timezone.localdate() + datetime.timedelta(days=60)).isoformat()
    data = {
        "customer_reference": customer.reference,
        "kind": "unpaid_debt",
        "reason": "Debt case D-12",
        "owner": dpo.pk,
        "review_on": review,
    }
    assert dpo_client.get(reverse("privacy:legal_hold_set")).status_code == 405
    response = dpo_client.post(reverse("privacy:legal_hold_set"), data, follow=True)
    hold = LegalHold.objects.get(customer=customer)
    assert hold.kind == "unpaid_debt" and hold.set_by == dpo and hold.owner == dpo
    assert "Unpaid debt hold set" in response.content.decode()

    missing = dpo_client.post(
        reverse("privacy:legal_hold_lift", args=[hold.pk]), {"lift_reason": ""}, follow=True
    )
    assert "lift reason: This field is required." in missing.content.decode()
    dpo_client.post(reverse("privacy:legal_hold_lift", args=[hold.pk]), {"lift_reason": "Paid in full"})
    hold.refresh_from_db()
    assert not hold.is_active and hold.lifted_by == dpo and hold.lift_reason == "Paid in full"


def test_bad_hold_input_names_the_field(dpo_client, partner, dpo):
    customer = ended(partner, None)
    past = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()
    response = dpo_client.post(
        reverse("privacy:legal_hold_set"),
        {
            "customer_reference": customer.reference,
            "kind": "dispute",
            "reason": "INV-1",
            "owner": dpo.pk,
            "review_on": past,
        },
        follow=True,
    )
    assert "review on: The review date cannot be in the past." in response.content.decode()
    assert not LegalHold.objects.exists()
    unknown = dpo_client.post(
        reverse("privacy:legal_hold_set"),
        {
            "customer_reference": "C-999999",
            "kind": "dispute",
            "reason": "INV-1",
            "owner": dpo.pk,
            "review_on": past,
        },
    )
    assert unknown.status_code == 404


def test_dpo_changes_a_policy_with_a_reason(dpo_client, dpo):
    policy = RetentionPolicy.objects.get(key="call_records")
    url = reverse("privacy:retention_policy_edit", args=[policy.pk])
    response = dpo_client.post(url, {"months": "18", "enabled": "on", "reason": ""}, follow=True)
    assert "reason: This field is required." in response.content.decode()
    dpo_client.post(url, {"months": "18", "enabled": "on", "reason": "Ofcom dispute window review"})
    policy.refresh_from_db()
    assert policy.months == 18 and policy.history.latest().history_user == dpo


@pytest.mark.parametrize(
    "role", [Role.SUPPORT_AGENT, Role.BILLING_AGENT, Role.FINANCE_MANAGER, Role.CUSTOMER]
)
def test_page_and_forms_refused_to_others(client, make_user, role, partner):
    client.force_login(make_user(role))
    assert client.get(PAGE).status_code == 403
    customer = ended(partner, None)
    response = client.post(
        reverse("privacy:legal_hold_set"),
        {
            "customer_reference": customer.reference,
            "kind": "dispute",
            "reason": "x",
            "owner": 1,
            "review_on": "2099-01-01",
        },
    )
    assert response.status_code == 403 and not LegalHold.objects.exists()


def test_administrator_sees_but_cannot_change(client, make_user, partner, dpo):
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.get(PAGE)
    assert response.status_code == 200 and "Set hold" not in response.content.decode()
    policy = RetentionPolicy.objects.get(key="access_logs")
    refused = client.post(
        reverse("privacy:retention_policy_edit", args=[policy.pk]), {"months": "1", "reason": "x"}
    )
    assert refused.status_code == 403 and RetentionPolicy.objects.get(pk=policy.pk).months == 24


def test_page_lists_customers_kept_for_debt_with_the_amount_and_age(dpo_client, partner, agent, finance):
    from billing.services.payments import payment_record
    from tests.billing.test_ledger import issue_invoice

    today = timezone.localdate()
    debtor = ended(partner, today - datetime.timedelta(days=400))
    older = issue_invoice(debtor, "100.00", issued=today - datetime.timedelta(days=120), actor=finance)
    issue_invoice(debtor, "10.00", issued=today - datetime.timedelta(days=90), actor=finance)
    payment_record(  # settles 100.00 of the older invoice: 20.00 of it and the newer 12.00 stay owed
        customer=debtor, method="card", amount=Decimal("100.00"), received_on=today, actor=agent
    )
    paid_up = ended(partner, today - datetime.timedelta(days=400))
    issue_invoice(paid_up, "10.00", issued=today - datetime.timedelta(days=90), actor=finance)
    payment_record(customer=paid_up, method="card", amount=Decimal("12.00"), received_on=today, actor=agent)
    current = ended(partner, None)  # owes, but their contract has not ended
    issue_invoice(current, "10.00", issued=today - datetime.timedelta(days=30), actor=finance)

    run = retention_run(today=today)
    response = dpo_client.get(PAGE)

    assert {"customer": debtor.reference, "why": "debt"} in run.kept
    assert Customer.objects.get(pk=paid_up.pk).is_erased
    rows = response.context["kept_for_debt"]
    assert [(row.customer, row.owes, row.oldest_unpaid) for row in rows] == [
        (debtor, Decimal("32.00"), older.issue_date)
    ]
    assert response.context["kept_for_debt_total"] == 1
    text = response.content.decode()
    assert "Kept for debt (1)" in text and debtor.reference in text
    assert "£32.00" in text and "120 days" in text


def test_kept_for_debt_costs_the_same_queries_for_more_debtors(dpo_client, partner, finance):
    from tests.billing.test_ledger import issue_invoice

    today = timezone.localdate()

    def add(count):
        for _ in range(count):
            debtor = ended(partner, today - datetime.timedelta(days=400))
            issue_invoice(debtor, "10.00", issued=today - datetime.timedelta(days=60), actor=finance)

    add(1)
    dpo_client.get(PAGE)
    with CaptureQueriesContext(connection) as few:
        dpo_client.get(PAGE)
    add(4)
    with CaptureQueriesContext(connection) as many:
        response = dpo_client.get(PAGE)
    assert len(few) == len(many) and len(response.context["kept_for_debt"]) == 5
