"""The Direct Debit lifecycle after the first collection, through the services, pages and tasks staff use:
holds (ARUDD 4, 7, 8; ADDACS D) that keep a mandate out of submissions until cleared; re-presentation of
"refer to payer" (ARUDD 0) in a file of its own; a fresh advance notice before an invoice returned
"presentation overdue" (ARUDD 9) is collected again; a new mandate's earlier invoices collected once it is
active; and a change of bank details lodging the instruction again (0C + 0N). The run, its mandates and
the reports come from tests.billing.test_bacs and tests.billing.test_bacs_report_import; the clock is
frozen by tests/conftest.py (30 November 2026)."""

import datetime
from decimal import Decimal

import pytest

from accounts import mandates
from accounts.models import AuditEvent
from billing import bacs, bacs_collections
from billing.models import BillRun, DirectDebitCollection
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_create,
    bill_run_finalise,
    bill_run_start_calculation,
)
from billing.services.charges import one_off_charge_create
from billing.services.direct_debit import direct_debit_export, direct_debit_submission_cancel
from tests.billing import test_bacs, test_bacs_report_import
from tests.billing.test_bacs_report_import import addacs, arudd, import_, mandate_of, returned

billed = test_bacs.billed
finalise = test_bacs.finalise
exported = test_bacs_report_import.exported

APRIL = (datetime.date(2024, 4, 1), datetime.date(2024, 4, 30))


@pytest.fixture
def next_run(agent, finance, django_capture_on_commit_callbacks):
    """Bill the partner's customers for a later month (April 2024 by default): a one-off charge each for
    the customers given, then calculated, approved and finalised through the services."""

    def run(partner, customers, period=APRIL) -> BillRun:
        for customer in customers:
            one_off_charge_create(
                customer=customer,
                description="Equipment",
                amount=Decimal("20.00"),
                charge_date=period[0],
                actor=agent,
            )
        bill_run = bill_run_create(partner=partner, period_start=period[0], period_end=period[1], actor=agent)
        with django_capture_on_commit_callbacks(execute=True):
            bill_run_start_calculation(bill_run=bill_run, actor=agent)
        bill_run.refresh_from_db()
        bill_run_approve(bill_run=bill_run, actor=finance)
        return bill_run_finalise(
            bill_run=bill_run, actor=finance, issue_date=period[1] + datetime.timedelta(days=1)
        )

    return run


def skipped_reasons(run: BillRun) -> dict[str, str]:
    return dict(bacs_collections.choose(run).skipped)


# Holds


@pytest.mark.parametrize("code", ["4", "7", "8"])
def test_an_arudd_hold_keeps_the_mandate_out_of_submissions_until_cleared(
    client, exported, next_run, partner, code
):
    import_(arudd([returned(exported.collection, code)]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert mandate.is_held and f"ARUDD {code}" in mandate.collection_held_reason
    assert mandate.status == "active"  # the instruction stands; nothing is collected under it

    april = next_run(partner, [exported.paying, exported.exact])
    reason = skipped_reasons(april)[exported.paying.reference]
    assert reason.startswith(bacs.SKIP_HELD) and f"ARUDD {code}" in reason
    submission = direct_debit_export(bill_run=april, actor=exported.finance)
    collected = set(
        DirectDebitCollection.objects.filter(submission=submission).values_list("customer_id", flat=True)
    )
    assert collected == {exported.exact.pk}

    # The finance manager sees the hold on the account page and clears it, saying how it was resolved.
    client.force_login(exported.finance)
    page = client.get(f"/billing/customers/{exported.paying.reference}/account/").content.decode()
    assert "Direct Debit collections are held" in page and "Clear the hold" in page
    response = client.post(
        f"/billing/customers/{exported.paying.reference}/account/direct-debit-hold/clear/",
        {"reason": "Payer agreed the amount by phone"},
    )
    assert response.status_code == 302
    mandate = mandate_of(exported.paying)
    assert not mandate.is_held and mandate.collection_held_reason == ""
    cleared = mandate.history.first()
    assert cleared.history_user == exported.finance
    assert cleared.history_change_reason == "Hold cleared: Payer agreed the amount by phone"
    assert AuditEvent.objects.filter(action="mandate.hold_cleared", actor_id=exported.finance.pk).exists()
    page = client.get(f"/billing/customers/{exported.paying.reference}/account/").content.decode()
    assert "Direct Debit collections are held" not in page

    # The next file of the run collects from the customer again.
    direct_debit_submission_cancel(submission=submission, actor=exported.finance, reason="Not sent")
    again = direct_debit_export(bill_run=april, actor=exported.finance)
    assert DirectDebitCollection.objects.filter(submission=again, customer=exported.paying).exists()


def test_an_addacs_d_holds_the_mandate_and_the_same_advice_again_changes_nothing(exported):
    report = import_(addacs([{"reason-code": "D"}]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert report.applied == 1
    assert mandate.is_held and "ADDACS D" in mandate.collection_held_reason
    assert mandate.history.first().history_user == exported.finance
    again = import_(addacs([{"reason-code": "D"}], advice="2"), exported.finance)
    assert (again.applied, again.already_applied) == (0, 1)


def test_only_staff_with_the_permission_clear_a_hold(client, exported, agent):
    import_(addacs([{"reason-code": "D"}]), exported.finance)
    client.force_login(agent)
    page = client.get(f"/billing/customers/{exported.paying.reference}/account/").content.decode()
    assert "Direct Debit collections are held" in page and "Clear the hold" not in page
    url = f"/billing/customers/{exported.paying.reference}/account/direct-debit-hold/clear/"
    assert client.post(url, {"reason": "Sorted"}).status_code == 403
    assert mandate_of(exported.paying).is_held
    with pytest.raises(Exception, match="may not clear"):
        mandates.mandate_hold_clear(mandate=mandate_of(exported.paying), actor=agent, reason="Sorted")


def test_clearing_needs_a_reason_and_a_hold(client, exported):
    client.force_login(exported.finance)
    url = f"/billing/customers/{exported.paying.reference}/account/direct-debit-hold/clear/"
    response = client.post(url, {"reason": "Sorted"})
    assert response.status_code == 200 and "not held" in response.content.decode()
    import_(addacs([{"reason-code": "D"}]), exported.finance)
    response = client.post(url, {"reason": "  "})
    assert response.status_code == 200
    assert mandate_of(exported.paying).is_held
