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
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given, settings

from accounts import mandates
from accounts import services as account_services
from accounts.models import AuditEvent, Customer, DirectDebitNotice, PaymentDetails, Role
from billing import bacs, bacs_collections, tasks
from billing.bacs_reports import Action
from billing.models import BillRun, DirectDebitCollection, Invoice, LedgerEntry, Payment
from billing.personal_data import _direct_debit_files_past_due
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_create,
    bill_run_finalise,
    bill_run_start_calculation,
)
from billing.services.charges import one_off_charge_create
from billing.services.direct_debit import direct_debit_export, direct_debit_submission_cancel
from billing.services.direct_debit_representation import (
    NOTICE_SUBJECT as REPRESENTATION_SUBJECT,
)
from billing.services.direct_debit_representation import (
    REPRESENTATION_NOTICE_WORKING_DAYS,
    SETTLED_OTHERWISE,
    representation_choose,
    representation_debit_date,
    representation_processing_date,
    representations_due,
)
from billing.services.ledger import invoice_outstanding
from billing.services.payments import payment_record
from fusion_site.working_days import working_days_after
from privacy.erasure import customer_erase, erasure_preview
from tests.billing import test_bacs, test_bacs_report_import
from tests.billing.factories import run_on_commit
from tests.billing.test_bacs import detail_fields, make_active, one_off
from tests.billing.test_bacs_report_import import (
    NEW_ACCOUNT,
    NEW_SORT_CODE,
    addacs,
    arudd,
    import_,
    mandate_of,
    returned,
)
from tests.billing.test_bacs_rules import (
    LONDON,
    assert_cycle_holds,
    bacs_works,
    first_working_after,
    making_instants,
)
from tests.factories import full_customer
from tests.privacy.test_erasure import previewed_counts

billed = test_bacs.billed
finalise = test_bacs.finalise
exported = test_bacs_report_import.exported

FEBRUARY = (datetime.date(2024, 2, 1), datetime.date(2024, 2, 29))
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
    response = client.post(url, {"reason": "Sorted"}, follow=True)
    assert "not held" in response.content.decode()
    import_(addacs([{"reason-code": "D"}]), exported.finance)
    response = client.post(url, {"reason": "  "}, follow=True)
    assert "Say how the payer" in response.content.decode()
    assert mandate_of(exported.paying).is_held


# A new mandate's earlier invoices


def test_a_new_mandates_earlier_invoice_is_collected_once_it_is_active(
    billed, next_run, partner, clock, mailoutbox
):
    newbie = full_customer(partner)
    account_services.payment_details_set(
        customer=newbie,
        actor=billed.finance,
        account_holder="New Payer",
        sort_code="40-05-15",
        account_number="34206819",
        mandate_reference="DDNEW00001",
    )
    one_off(newbie, "30.00", billed.finance)
    # A March invoice of its own (a run of its own, as the bill run of March left it).
    march = next_run(partner, [newbie], period=FEBRUARY)
    march_invoice = Invoice.objects.get(bill_run=march, customer=newbie)
    first = direct_debit_export(bill_run=march, actor=billed.finance)
    assert not DirectDebitCollection.objects.filter(customer=newbie).exists()
    assert mandate_of(newbie).status == "lodged"

    clock.move_to(datetime.datetime.combine(mandate_of(newbie).active_from, datetime.time(9), tzinfo=LONDON))
    # The daily job activates it once the lodgement period is over.
    mandates.mandates_activate_due(today=timezone.localdate(), actor=billed.finance)
    april = next_run(partner, [newbie])
    choice = bacs_collections.choose(april)
    assert [d.invoice.number for d in choice.debits if d.invoice.customer_id == newbie.pk] == [
        march_invoice.number,
        Invoice.objects.get(bill_run=april, customer=newbie).number,
    ]
    mailoutbox.clear()
    with run_on_commit():
        submission = direct_debit_export(bill_run=april, actor=billed.finance)

    rows = DirectDebitCollection.objects.filter(submission=submission, customer=newbie).order_by(
        "invoice__pk"
    )
    assert [row.invoice_id for row in rows] == [
        march_invoice.pk,
        Invoice.objects.get(bill_run=april, customer=newbie).pk,
    ]
    assert rows[0].amount_pence == bacs.to_pence(march_invoice.gross)
    assert invoice_outstanding(march_invoice) == 0
    # Each with its advance notice, the debit no earlier than the notice said.
    told = {m.body.split("for invoice ")[1].split(" ")[0] for m in mailoutbox}
    assert {march_invoice.number} <= told
    for row in rows:
        notice = DirectDebitNotice.objects.get(mandate_id=row.mandate_id, invoice_number=row.invoice.number)
        assert notice.submission_id == submission.pk and row.debit_date >= notice.collection_date
    assert mandate_of(newbie).last_collected_on == max(row.debit_date for row in rows)
    # The March run's own file, made again, leaves the invoice out: collected once.
    reasons = bacs_collections.choose(march).skipped
    assert (newbie.reference, bacs.SKIP_COLLECTED_ELSEWHERE) in reasons
    assert first.pk  # the March file stands as it was


def test_earlier_invoices_are_found_in_a_fixed_number_of_queries(billed, next_run, partner, clock):
    customers = []
    for n in range(3):
        customer = full_customer(partner)
        account_services.payment_details_set(
            customer=customer,
            actor=billed.finance,
            account_holder="Payer",
            sort_code="40-05-15",
            account_number="34206819",
            mandate_reference=f"DDEARLY{n:04d}",
        )
        customers.append(customer)
    march = next_run(partner, customers, period=FEBRUARY)
    for customer in customers:
        make_active(customer, billed.finance)
    april = next_run(partner, customers[:1])

    with CaptureQueriesContext(connection) as three:
        assert sum(d.invoice.bill_run_id == march.pk for d in bacs_collections.choose(april).debits) == 3
    for customer in customers[1:]:
        mandates.mandate_cancel(mandate=mandate_of(customer), actor=billed.finance, reason="Payer left")
    with CaptureQueriesContext(connection) as one:
        assert sum(d.invoice.bill_run_id == march.pk for d in bacs_collections.choose(april).debits) == 1
    assert len(three) == len(one)


# ARUDD 9: a fresh advance notice before collecting again


def test_an_invoice_returned_presentation_overdue_is_collected_again_after_a_fresh_notice(
    exported, next_run, partner, mailoutbox
):
    returned_row = exported.collection
    old_notice = DirectDebitNotice.objects.get(invoice_number=exported.invoice.number)
    import_(arudd([returned(returned_row, "9")]), exported.finance)
    returned_row.refresh_from_db()
    assert returned_row.action == Action.NEW_ADVANCE_NOTICE
    # The old notice's date is still ahead: without the rule it would be used again.
    assert old_notice.collection_date >= bacs.earliest_entry_day(timezone.now())

    april = next_run(partner, [exported.exact])
    mailoutbox.clear()
    with run_on_commit():
        submission = direct_debit_export(bill_run=april, actor=exported.finance)

    again = DirectDebitCollection.objects.get(submission=submission, invoice=exported.invoice)
    assert (again.represents_id, again.transaction_code) == (returned_row.pk, "17")
    assert again.amount_pence == returned_row.amount_pence
    notice = DirectDebitNotice.objects.get(invoice_number=exported.invoice.number)
    assert notice.sent_at > returned_row.returned_at
    assert (
        again.debit_date
        >= notice.collection_date
        >= bacs.earliest_debit_after_notice(timezone.localdate(notice.sent_at))
    )
    assert any(exported.invoice.number in m.body for m in mailoutbox)
    assert invoice_outstanding(exported.invoice) == 0
    # Collected once more only: the next run's file does not collect it again.
    may = next_run(partner, [exported.exact], period=(datetime.date(2024, 5, 1), datetime.date(2024, 5, 31)))
    assert exported.invoice.pk not in {d.invoice.pk for d in bacs_collections.choose(may).debits}


def test_other_returned_invoices_are_not_collected_again_by_a_later_submission(exported, next_run, partner):
    import_(arudd([returned(exported.collection, "0")]), exported.finance)
    april = next_run(partner, [exported.exact])
    assert exported.invoice.pk not in {d.invoice.pk for d in bacs_collections.choose(april).debits}


# A change of bank details lodges the instruction again


def auddis(submission, reference: str = "DDM/0001-A") -> list[dict[str, str]]:
    """The AUDDIS records of the submission under the mandate reference (the paying customer's)."""
    records = [detail_fields(r) for r in submission.content.split("\r\n") if len(r) == bacs.RECORD_LENGTH]
    return [
        r
        for r in records
        if r["transaction_code"] in bacs.INSTRUCTION_CODES and r["reference"].strip() == reference
    ]


def change_bank(customer, actor, **changes):
    details = {
        "account_holder": "Zoë O'Brien & Søn (Café)",
        "sort_code": NEW_SORT_CODE,
        "account_number": NEW_ACCOUNT,
        "mandate_reference": "ddm/0001-a",
        **changes,
    }
    return account_services.payment_details_set(customer=customer, actor=actor, **details)


def test_a_staff_change_of_bank_details_cancels_the_old_instruction_and_lodges_the_new(
    exported, next_run, partner, agent
):
    assert mandate_of(exported.paying).status == "active"
    change_bank(exported.paying, agent)

    mandate = mandate_of(exported.paying)
    assert mandate.status == "new" and mandate.last_collected_on is None
    assert (mandate.superseded_sort_code, mandate.superseded_account_number) == ("400515", "34206819")
    assert mandate.superseded_cancellation_pending
    assert mandate.history.first().history_user == agent
    assert "Bank details changed, lodged again" in mandate.history.first().history_change_reason

    april = next_run(partner, [exported.paying, exported.exact])
    # Until the new instruction is active nothing is collected from the customer.
    assert (
        bacs_collections.choose(april).skipped.count((exported.paying.reference, bacs.SKIP_MANDATE["new"]))
        == 1
    )
    submission = direct_debit_export(bill_run=april, actor=exported.finance)
    instructions = auddis(submission)
    assert [(r["transaction_code"], r["sort_code"], r["account_number"]) for r in instructions] == [
        ("0C", "400515", "34206819"),
        ("0N", NEW_SORT_CODE, NEW_ACCOUNT),
    ]
    assert {r["reference"].strip() for r in instructions} == {"DDM/0001-A"}
    assert not DirectDebitCollection.objects.filter(submission=submission, customer=exported.paying).exists()
    mandate = mandate_of(exported.paying)
    assert mandate.status == "lodged"
    assert mandate.superseded_cancellation_submission_id == submission.pk
    assert not mandate.superseded_cancellation_pending

    # A cancelled submission was not processed: both instructions are owed again.
    direct_debit_submission_cancel(submission=submission, actor=exported.finance, reason="Not sent")
    mandate = mandate_of(exported.paying)
    assert mandate.status == "new" and mandate.superseded_cancellation_pending
    again = direct_debit_export(bill_run=april, actor=exported.finance)
    assert [r["transaction_code"] for r in auddis(again)] == ["0C", "0N"]
    # And once sent, never again.
    assert not [
        lodgement
        for lodgement in bacs_collections.choose(april).lodgements
        if lodgement.mandate.pk == mandate.pk
    ]


def test_the_admin_change_of_a_mandate_lodges_it_again(client, exported, make_user):
    admin_user = make_user(Role.ADMINISTRATOR, partner=None)
    client.force_login(admin_user)
    mandate = mandate_of(exported.paying)
    url = f"/admin/accounts/paymentdetails/{mandate.pk}/change/"
    page = client.get(url)
    if page.status_code != 200:
        pytest.skip("the administrator cannot open the mandate in the admin here")
    response = client.post(
        url,
        {
            "customer": exported.paying.pk,
            "account_holder": "Zoë O'Brien",
            "sort_code": NEW_SORT_CODE,
            "account_number": NEW_ACCOUNT,
            "mandate_reference": "DDM/0001-A",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    mandate = mandate_of(exported.paying)
    assert mandate.status == "new" and mandate.superseded_cancellation_pending


@pytest.mark.parametrize(
    "changes",
    [{"sort_code": "400515", "account_number": "34206819", "account_holder": "Zoe OBrien"}],
    ids=["name only"],
)
def test_a_change_of_the_name_only_keeps_the_instruction(exported, agent, changes):
    change_bank(exported.paying, agent, **changes)
    mandate = mandate_of(exported.paying)
    assert mandate.status == "active" and not mandate.superseded_cancellation_pending


def test_a_mandate_not_lodged_yet_just_takes_the_new_details(billed, agent):
    assert not PaymentDetails.objects.filter(customer=billed.no_mandate).exists()
    account_services.payment_details_set(
        customer=billed.no_mandate,
        actor=agent,
        account_holder="Jo Bloggs",
        sort_code="40-05-15",
        account_number="34206819",
        mandate_reference="DDNOTYET01",
    )
    change_bank(billed.no_mandate, agent, mandate_reference="DDNOTYET01")
    mandate = mandate_of(billed.no_mandate)
    assert mandate.status == "new" and not mandate.superseded_cancellation_pending


@pytest.mark.parametrize("code", ["C", "E"])
def test_an_addacs_amendment_is_applied_without_a_0c_0n_pair(exported, next_run, partner, code):
    advice = {
        "reason-code": code,
        "payer-new-sort-code": NEW_SORT_CODE,
        "payer-new-account-number": NEW_ACCOUNT,
    }
    import_(addacs([advice]), exported.finance)
    mandate = mandate_of(exported.paying)
    assert mandate.status == "active" and not mandate.superseded_cancellation_pending
    april = next_run(partner, [exported.paying])
    choice = bacs_collections.choose(april)
    assert not [item for item in choice.lodgements if item.mandate.pk == mandate.pk]
    assert [d.payer.account_number for d in choice.debits if d.mandate.pk == mandate.pk] == [NEW_ACCOUNT]


def test_an_addacs_move_lodges_at_the_new_bank_without_a_0c_to_the_old(exported, next_run, partner):
    advice = {
        "reason-code": "3",
        "payer-new-sort-code": NEW_SORT_CODE,
        "payer-new-account-number": NEW_ACCOUNT,
    }
    import_(addacs([advice]), exported.finance)
    april = next_run(partner, [exported.paying])
    codes = [
        (item.instruction.transaction_code, item.payer.account_number)
        for item in bacs_collections.choose(april).lodgements
        if item.mandate.customer_id == exported.paying.pk
    ]
    assert codes == [("0N", NEW_ACCOUNT)]


# Re-presentation of "refer to payer" (ARUDD 0)


@pytest.fixture
def referred(exported, clock):
    """The paying customer's collection returned "refer to payer" on the ARUDD of 15 December 2026."""
    clock.move_to(datetime.datetime(2026, 12, 15, 10, 0, tzinfo=LONDON))
    import_(arudd([returned(exported.collection, "0")], day="2026-12-15"), exported.finance)
    exported.collection.refresh_from_db()
    assert exported.collection.representation_due_by is not None
    return exported


def represent(client, user):
    client.force_login(user)
    return client.post("/billing/bacs-reports/representations/")


def test_the_finance_manager_re_presents_once_with_code_18_after_five_working_days_notice(
    client, referred, mailoutbox
):
    original = referred.collection
    page = client_page(client, referred.finance)
    assert referred.invoice.number in page and "Make the re-presentation file" in page

    with run_on_commit():
        response = represent(client, referred.finance)

    assert response.status_code == 200 and response["Content-Disposition"].startswith("attachment")
    again = DirectDebitCollection.objects.get(represents=original)
    assert (again.transaction_code, again.amount_pence, again.invoice_id) == (
        "18",
        original.amount_pence,
        original.invoice_id,
    )
    assert again.submission.bill_run is None and again.submission.is_representation
    details = [detail_fields(r) for r in response.content.decode("ascii").split("\r\n") if len(r) == 100]
    debit = [d for d in details if d["transaction_code"] == "18"]
    assert len(debit) == 1 and int(debit[0]["amount"]) == original.amount_pence
    assert debit[0]["reference"].strip() == "DDM/0001-A"
    # Processed no later than the deadline, debited no earlier than 5 working days after the notice.
    notice = DirectDebitNotice.objects.get(invoice_number=referred.invoice.number)
    assert again.processing_date <= original.representation_due_by
    assert (
        again.debit_date
        >= notice.collection_date
        >= working_days_after(timezone.localdate(notice.sent_at), REPRESENTATION_NOTICE_WORKING_DAYS)
    )
    assert notice.submission_id == again.submission_id
    (mail,) = [m for m in mailoutbox if m.subject == REPRESENTATION_SUBJECT]
    assert referred.invoice.number in mail.body and f"{notice.collection_date:%d %B %Y}" in mail.body
    # A new Direct Debit payment on the ledger settles the invoice again.
    assert again.payment.method == Payment.Method.DIRECT_DEBIT and again.payment.pk != original.payment_id
    assert LedgerEntry.objects.filter(payment=again.payment, kind="payment").exists()
    assert invoice_outstanding(referred.invoice) == 0
    # Never twice: nothing is due any more, and a second file is refused.
    response = represent(client, referred.finance)
    assert response.status_code == 302
    assert DirectDebitCollection.objects.filter(represents=original).count() == 1
    assert not representations_due(partner_id=referred.run.partner_id).exists()


def client_page(client, user) -> str:
    client.force_login(user)
    return client.get("/billing/bacs-reports/").content.decode()


def test_a_cancelled_re_presentation_file_makes_its_direct_debits_due_again(client, referred):
    represent(client, referred.finance)
    submission = DirectDebitCollection.objects.get(represents=referred.collection).submission
    response = client.post(
        f"/billing/bacs-reports/representations/{submission.pk}/cancel/", {"reason": "Not sent to Bacs"}
    )
    assert response.status_code == 302
    submission.refresh_from_db()
    assert submission.is_cancelled
    assert invoice_outstanding(referred.invoice) == referred.invoice.gross
    assert list(representations_due(partner_id=referred.run.partner_id)) == [referred.collection]

    represent(client, referred.finance)
    live = DirectDebitCollection.objects.filter(represents=referred.collection).exclude(outcome="cancelled")
    assert live.count() == 1 and live.get().submission_id != submission.pk
    assert invoice_outstanding(referred.invoice) == 0


def test_a_re_presentation_returned_again_is_recovered_outside_direct_debit(client, referred, clock):
    represent(client, referred.finance)
    again = DirectDebitCollection.objects.get(represents=referred.collection)
    import_(arudd([returned(again, "0")], advice="009", day="2026-12-23"), referred.finance)
    again.refresh_from_db()
    assert again.action == Action.RECOVER_OUTSIDE_DIRECT_DEBIT and again.representation_due_by is None


@pytest.mark.parametrize("why", ["held", "cancelled", "paid"])
def test_only_an_outstanding_invoice_under_an_active_unheld_mandate_is_re_presented(client, referred, why):
    mandate = mandate_of(referred.paying)
    if why == "held":
        mandates.mandate_hold(
            mandate=mandate, actor=referred.finance, reason="ADDACS D: Advance notice disputed"
        )
    elif why == "cancelled":
        mandates.mandate_cancel(mandate=mandate, actor=referred.finance, reason="Payer left")
    else:
        payment_record(
            customer=referred.paying,
            method=Payment.Method.BANK_TRANSFER,
            amount=referred.invoice.gross,
            received_on=timezone.localdate(),
            actor=referred.finance,
        )
    response = represent(client, referred.finance)
    assert response.status_code == 302
    assert not DirectDebitCollection.objects.filter(represents=referred.collection).exists()
    referred.collection.refresh_from_db()
    if why == "paid":
        # Recorded as not needed: it is no longer due.
        assert referred.collection.action == SETTLED_OTHERWISE
        assert not representations_due(partner_id=referred.run.partner_id).exists()
    else:
        # Still due while the deadline can be met: the reason is given, staff may act.
        assert referred.collection.action == Action.REPRESENT
        choice = representation_choose(partner=referred.run.partner, made_at=timezone.now())
        (reason,) = [reason for _ref, reason in choice.skipped]
        assert ("held" in reason) if why == "held" else ("cancelled" in reason)


def test_past_the_deadline_the_daily_task_leaves_it_to_dunning(client, referred, clock):
    due_by = referred.collection.representation_due_by
    # A week before the deadline, five working days' notice can no longer be given in time.
    clock.move_to(
        datetime.datetime.combine(due_by - datetime.timedelta(days=3), datetime.time(9), tzinfo=LONDON)
    )
    assert tasks.direct_debit_representations_lapse_daily() == 1
    referred.collection.refresh_from_db()
    assert referred.collection.action == Action.RECOVER_OUTSIDE_DIRECT_DEBIT
    assert "left to dunning" in referred.collection.history.first().history_change_reason
    assert AuditEvent.objects.filter(action="direct_debit.representation_lapsed").count() == 1
    assert tasks.direct_debit_representations_lapse_daily() == 0  # once
    assert invoice_outstanding(referred.invoice) == referred.invoice.gross  # open, for dunning
    response = represent(client, referred.finance)
    assert response.status_code == 302
    assert not DirectDebitCollection.objects.filter(represents=referred.collection).exists()


def test_only_a_finance_manager_of_the_partner_makes_or_cancels_re_presentation_files(
    client, referred, agent, other_partner, make_user
):
    assert represent(client, agent).status_code == 403
    assert "Make the re-presentation file" not in client_page(client, agent)
    represent(client, referred.finance)
    submission = DirectDebitCollection.objects.get(represents=referred.collection).submission
    other_finance = make_user(Role.FINANCE_MANAGER, partner=other_partner)
    client.force_login(other_finance)
    url = f"/billing/bacs-reports/representations/{submission.pk}/cancel/"
    assert client.post(url, {"reason": "Mine now"}).status_code == 404
    assert client.post(f"/billing/bacs-reports/representations/{submission.pk}/").status_code == 404
    submission.refresh_from_db()
    assert not submission.is_cancelled


def test_another_partners_finance_manager_cannot_clear_a_hold(client, exported, other_partner, make_user):
    import_(addacs([{"reason-code": "D"}]), exported.finance)
    client.force_login(make_user(Role.FINANCE_MANAGER, partner=other_partner))
    url = f"/billing/customers/{exported.paying.reference}/account/direct-debit-hold/clear/"
    assert client.post(url, {"reason": "Sorted"}).status_code == 404
    assert mandate_of(exported.paying).is_held


def test_erasure_clears_a_re_presentation_file_which_has_no_bill_run(client, referred, dpo):
    represent(client, referred.finance)
    again = DirectDebitCollection.objects.get(represents=referred.collection)
    assert "34206819" in again.submission.content
    # The run's file (found through the invoice) and the re-presentation file (through its collection).
    assert previewed_counts(referred.paying)["billing.DirectDebitSubmission"] == 2
    assert erasure_preview(customer=referred.paying).erased
    customer_erase(customer=referred.paying, actor=dpo, reason="Erasure request")
    again.submission.refresh_from_db()
    assert again.submission.content == "" and again.submission.is_content_cleared


@settings(max_examples=300, deadline=None)
@given(made_at=making_instants)
def test_a_re_presentation_is_debited_after_five_working_days_notice_within_the_cycle(made_at):
    """Against the statement, on the published calendar (holidays, not the code's working days): "notified
    5 working days in advance of the representation" (ARUDD 0), and the three-day cycle."""
    told_on = made_at.astimezone(LONDON).date()
    debit = representation_debit_date(made_at)
    processing = representation_processing_date(made_at)

    working_days_of_notice = sum(
        bacs_works(told_on + datetime.timedelta(days=n)) for n in range(1, (debit - told_on).days + 1)
    )
    assert working_days_of_notice >= REPRESENTATION_NOTICE_WORKING_DAYS
    assert bacs_works(debit)
    assert first_working_after(processing) == debit  # debited exactly on the day the payer was told
    assert_cycle_holds(processing, made_at=made_at, promised=debit)


def test_retention_keeps_a_re_presentation_file_while_its_payer_is_held(client, referred):
    represent(client, referred.finance)
    submission = DirectDebitCollection.objects.get(represents=referred.collection).submission
    later = submission.processing_date + datetime.timedelta(days=400)
    nobody = Customer.objects.none().values("pk")
    held = Customer.objects.filter(pk=referred.paying.pk).values("pk")

    assert submission in _direct_debit_files_past_due(later, nobody)
    assert submission not in _direct_debit_files_past_due(later, held)
