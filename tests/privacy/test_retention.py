"""The retention job: who is due (month ends, leap years, UK dates), who is kept and why, what each policy
deletes, the lock, chunk failures and reruns, dry runs through the command, and nothing of an erased
customer left anywhere."""

import datetime
import io
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessLog, Contact, Customer, Role
from accounts.services import access_log_record, system_user
from billing.models import (
    BilledCall,
    CallRecord,
    CallReference,
    CreditNote,
    DirectDebitSubmission,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    Payment,
    PaymentAllocation,
    WriteOff,
)
from billing.services.direct_debit import direct_debit_export, direct_debit_submission_cancel
from billing.services.ledger import invoice_outstanding, write_off_approve, write_off_request
from billing.services.payments import payment_record
from privacy import data_map
from privacy import retention as retention_rules
from privacy.deadlines import add_calendar_months
from privacy.erasure import ErasureBlockedError, customer_erase, erasure_preview
from privacy.models import (
    LegalHold,
    PrivacyRequest,
    PrivacyRequestEvent,
    RetentionPolicy,
    RetentionRun,
    WebsiteSubmission,
)
from privacy.retention import retention_cutoff
from privacy.services.retention import (
    legal_hold_lift,
    legal_hold_set,
    retention_lock_acquire,
    retention_lock_release,
    retention_policy_update,
    retention_run,
)
from tests.billing.factories import Call, import_calls
from tests.factories import CustomerFactory, full_customer
from tests.privacy.conftest import receive
from tests.privacy.test_erasure import scan

# Scenarios on fixed dates around TODAY (a month's last day), so the clock is pinned there; the month-end,
# leap-year and UK-date boundaries are the explicit cases below, whatever day the suite runs on.
PINNED = "2026-11-30T12:00:00+00:00"
pytestmark = pytest.mark.frozen_at(PINNED)
TODAY = datetime.datetime.fromisoformat(PINNED).date()
LONDON = zoneinfo.ZoneInfo("Europe/London")


@pytest.fixture
def neighbour(partner, subject):
    """A customer of the same partner whose contract has not ended, built after the subject."""
    customer = full_customer(partner, sites=2, lines=2, contacts=2)
    import_calls(
        partner, [Call(cli=line.cli, start_time="2025-01-20T12:00:00") for line in customer.lines.all()]
    )
    return customer


def ended(partner, contract_end: datetime.date | None, **fields) -> Customer:
    customer = full_customer(partner)
    Customer.objects.filter(pk=customer.pk).update(
        contract_start=datetime.date(2020, 1, 1), contract_end=contract_end, **fields
    )
    customer.refresh_from_db()
    return customer


def is_erased(customer: Customer) -> bool:
    return Customer.objects.get(pk=customer.pk).is_erased


def settle(subject, actor) -> Payment:
    """Pay the subject's invoice in full: a customer who owes money is kept (the debt reason)."""
    return payment_record(
        customer=subject.customer,
        method=Payment.Method.BANK_TRANSFER,
        amount=invoice_outstanding(subject.invoice),
        received_on=datetime.date(2025, 2, 20),
        actor=actor,
        reference="BGC 0001",
    )


def hold(customer, dpo, kind=LegalHold.Kind.LITIGATION) -> LegalHold:
    return legal_hold_set(
        customer=customer,
        kind=kind,
        reason="Claim 2026-CL-118",
        owner=dpo,
        review_on=timezone.localdate() + datetime.timedelta(days=90),
        actor=dpo,
    )


# When a customer is due


def test_cutoff_is_exactly_the_inverse_of_adding_months():
    """For every day of four years (a leap year among them) and the periods in use, an anchor is due
    today exactly when the anchor plus the period is today or earlier."""
    start = datetime.date(2023, 1, 1)
    anchors = [start + datetime.timedelta(days=n) for n in range(0, 4 * 366)]
    for months in (1, 6, 12, 24, 36, 72):
        for today in (datetime.date(2024, 2, 29), datetime.date(2025, 2, 28), datetime.date(2026, 3, 30)):
            cutoff = retention_cutoff(today, months)
            for anchor in anchors:
                assert (add_calendar_months(anchor, months) <= today) == (anchor <= cutoff), (
                    anchor,
                    months,
                    today,
                )


@pytest.mark.parametrize(
    ("contract_end", "today", "erased"),
    [
        (datetime.date(2026, 10, 31), datetime.date(2026, 11, 29), False),  # a month less a day
        (datetime.date(2026, 10, 30), datetime.date(2026, 11, 30), True),  # a month to the day
        (datetime.date(2026, 10, 31), datetime.date(2026, 11, 30), True),  # 31 Oct + 1 month = 30 Nov
        (datetime.date(2025, 1, 31), datetime.date(2025, 2, 27), False),
        (datetime.date(2025, 1, 31), datetime.date(2025, 2, 28), True),  # no 31 February: its last day
        (datetime.date(2024, 1, 31), datetime.date(2024, 2, 28), False),  # leap year: due on the 29th
        (datetime.date(2024, 1, 31), datetime.date(2024, 2, 29), True),
        (datetime.date(2024, 2, 29), datetime.date(2024, 3, 28), False),
        (datetime.date(2024, 2, 29), datetime.date(2024, 3, 29), True),
    ],
)
def test_contract_end_boundaries(partner, contract_end, today, erased):
    customer = ended(partner, contract_end)
    run = retention_run(today=today)
    assert is_erased(customer) is erased
    assert run.counts.get("customer_account", {}).get("accounts.Customer", 0) == int(erased)


def test_today_is_the_uk_date_not_the_utc_date(partner, clock):
    """23:30 UTC on 31 March 2025 is 00:30 on 1 April in London (BST): a contract that ended on 1 March
    is a month old there, though the UTC date still says 31 March."""
    customer = ended(partner, datetime.date(2025, 3, 1))
    instant = datetime.datetime(2025, 3, 31, 23, 30, tzinfo=datetime.UTC)
    clock.move_to(instant)
    assert instant.date() == datetime.date(2025, 3, 31)
    run = retention_run()
    assert run.run_on == datetime.date(2025, 4, 1)
    assert is_erased(customer)


def test_active_held_indebted_and_open_run_customers_are_kept_and_reported(
    partner, profile, agent, finance, dpo
):
    from tests.billing.factories import calculated_run, finalised_run, month

    active = ended(partner, None)
    ends_later = ended(partner, TODAY + datetime.timedelta(days=10))
    held = ended(partner, datetime.date(2026, 1, 31))
    hold(held, dpo)
    debtor = ended(partner, datetime.date(2026, 1, 31))
    due = ended(partner, datetime.date(2026, 1, 31))
    # The debtor's last invoice (posted to the ledger as the run is finalised) is unpaid.
    import_calls(partner, [Call(cli=debtor.lines.get().cli, start_time="2026-01-10T10:00:00")])
    run_issue = finalised_run(partner, month(2026, 1), agent=agent, finance=finance)
    invoice = Invoice.objects.get(bill_run=run_issue, customer=debtor)
    in_run = ended(partner, datetime.date(2026, 2, 28))
    draft_run = calculated_run(partner, month(2026, 2), actor=agent)
    Invoice.objects.filter(bill_run=draft_run).exclude(customer=in_run).delete()
    assert Invoice.objects.filter(bill_run=draft_run, customer=in_run).exists()
    assert invoice_outstanding(invoice) > 0
    # The other customers' invoices of the run are paid: a paid account does not keep anyone.
    for paid in Invoice.objects.filter(bill_run=run_issue).exclude(customer=debtor):
        if invoice_outstanding(paid) == 0:
            continue
        payment_record(
            customer=paid.customer,
            method=Payment.Method.CARD,
            amount=invoice_outstanding(paid),
            received_on=TODAY,
            actor=agent,
        )

    run = retention_run(today=TODAY)

    assert [is_erased(c) for c in (active, ends_later, held, debtor, in_run)] == [False] * 5
    assert is_erased(due)
    assert run.held == [{"customer": held.reference, "holds": ["litigation"]}]
    assert {(item["customer"], item["why"]) for item in run.kept} == {
        (debtor.reference, "debt"),
        (in_run.reference, "open_bill_run"),
    }


def _command(clock, today: datetime.date) -> str:
    """The nightly job as cron starts it, at 02:15 in London on ``today``."""
    clock.move_to(datetime.datetime.combine(today, datetime.time(2, 15), tzinfo=LONDON))
    out = io.StringIO()
    call_command("run_retention", stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def debtor(partner, profile, agent, finance):
    """A customer whose contract ended on 31 January 2026, owing their last invoice, issued that day."""
    from tests.billing.factories import finalised_run, month

    customer = ended(partner, datetime.date(2026, 1, 31))
    import_calls(partner, [Call(cli=customer.lines.get().cli, start_time="2026-01-10T10:00:00")])
    run = finalised_run(partner, month(2026, 1), agent=agent, finance=finance)
    invoice = run.invoices.get(customer=customer)
    assert invoice_outstanding(invoice) > 0
    return customer


def test_a_debtor_is_kept_by_the_nightly_job_until_the_debt_is_paid(debtor, agent, clock):
    invoice = Invoice.objects.get(customer=debtor)
    owed = invoice_outstanding(invoice)

    out = _command(clock, TODAY)
    later = _command(clock, TODAY + datetime.timedelta(days=400))

    assert not is_erased(debtor)
    assert f"KEEP | customer_account | {debtor.reference} | owes money" in out + later
    latest = RetentionRun.objects.order_by("-pk").first()
    assert latest.kept == [{"customer": debtor.reference, "why": "debt"}]

    payment_record(
        customer=debtor,
        method=Payment.Method.BANK_TRANSFER,
        amount=owed,
        received_on=TODAY + datetime.timedelta(days=400),
        actor=agent,
        reference="Paid by Zebedee",
    )
    _command(clock, TODAY + datetime.timedelta(days=401))
    assert is_erased(debtor)
    # The account's money stays under accounting law, its free text scrubbed.
    assert LedgerEntry.objects.filter(customer=debtor).count() == 2
    assert not Payment.objects.filter(customer=debtor).exclude(reference="").exists()


def test_a_debtor_is_released_once_the_debt_is_written_off(debtor, finance, make_user):
    approver = make_user(Role.FINANCE_MANAGER, email="second.finance@example.com")
    invoice = Invoice.objects.get(customer=debtor)
    retention_run(today=TODAY)
    assert not is_erased(debtor)
    write_off = write_off_request(
        invoice=invoice,
        amount=invoice_outstanding(invoice),
        reason="Zebedee cannot be traced",
        actor=finance,
    )
    retention_run(today=TODAY)
    assert not is_erased(debtor)  # asked for, not yet approved: still owed
    write_off_approve(write_off=write_off, actor=approver)

    retention_run(today=TODAY)

    assert is_erased(debtor)
    kept = WriteOff.objects.get(pk=write_off.pk)
    assert kept.reason == "(erased)" and kept.amount == write_off.amount
    assert not WriteOff.history.filter(reason__contains="Zebedee").exists()


def test_account_credit_does_not_keep_a_customer(partner, agent):
    customer = ended(partner, datetime.date(2026, 1, 31))
    payment_record(
        customer=customer,
        method=Payment.Method.CARD,
        amount=Decimal("5.00"),
        received_on=TODAY,
        actor=agent,
        reference="Overpaid by Zebedee",
    )
    retention_run(today=TODAY)
    assert is_erased(customer)
    assert Payment.objects.get(customer=customer).reference == ""


# Legal holds


def test_held_customer_is_never_erased_by_the_job_or_by_hand(partner, dpo):
    customer = ended(partner, datetime.date(2025, 1, 1))
    the_hold = hold(customer, dpo, LegalHold.Kind.UNPAID_DEBT)
    preview = erasure_preview(customer=customer)
    assert not preview.can_erase and "Legal hold (unpaid debt" in preview.blockers[0]
    with pytest.raises(ErasureBlockedError) as raised:
        customer_erase(customer=customer, actor=dpo, reason="Erasure request")
    assert "Legal hold" in raised.value.message_dict["customer"][0]
    retention_run(today=TODAY)
    assert not is_erased(customer) and Contact.objects.filter(customer=customer).exists()

    legal_hold_lift(hold=the_hold, actor=dpo, reason="Debt settled, letter 2026-11-02")
    retention_run(today=TODAY)
    assert is_erased(customer)
    history = list(LegalHold.history.filter(id=the_hold.pk).order_by("history_id"))
    assert [h.history_user for h in history] == [dpo, dpo] and history[-1].lifted_at is not None


def test_hold_needs_a_reason_and_a_future_review_date(partner, dpo):
    customer = ended(partner, None)
    with pytest.raises(ValidationError) as raised:
        legal_hold_set(customer=customer, kind="dispute", reason=" ", owner=dpo, review_on=TODAY, actor=dpo)
    assert "reason" in raised.value.message_dict
    with pytest.raises(ValidationError) as raised:
        legal_hold_set(
            customer=customer,
            kind="dispute",
            reason="INV-1",
            owner=dpo,
            review_on=timezone.localdate() - datetime.timedelta(days=1),
            actor=dpo,
        )
    assert "review_on" in raised.value.message_dict
    the_hold = hold(customer, dpo)
    with pytest.raises(ValidationError) as raised:
        legal_hold_lift(hold=the_hold, actor=dpo, reason="")
    assert "lift_reason" in raised.value.message_dict


# Policies


@pytest.mark.django_db
def test_default_policies_come_from_the_data_map_and_unhandled_ones_are_reported():
    # The rows the job runs, as the migrations left them, against the data map's rules: one source.
    policies = {p.key: (p.anchor, p.months) for p in RetentionPolicy.objects.all()}
    assert policies == {key: (rule.anchor, rule.months) for key, rule in data_map.RETENTION_POLICIES.items()}
    # Each policy is the rule of the fields it deletes, not a second opinion of them.
    for label, field, key in [
        ("billing.CallRecord", "dialled_number", "call_records"),
        ("billing.CallRecord", "cli", "call_records"),
        ("billing.DirectDebitSubmission", "content", "direct_debit_files"),
    ]:
        rule = data_map.field_entry(label, field).retention
        assert policies[key] == (rule.anchor, rule.months), (label, field)
    # Calls count from the bill that charged them: the dispute period runs from the invoice (PECR reg. 7).
    assert policies["call_records"] == (data_map.Anchor.INVOICE_ISSUE, 12)
    run = retention_run(today=TODAY)
    assert run.status == RetentionRun.Status.COMPLETED
    assert [note for note in run.notes if note["note"] == "no handler yet"] == [], "every policy has one"


def test_dpo_changes_a_period_with_history(partner, dpo):
    policy = RetentionPolicy.objects.get(key="customer_account")
    customer = ended(partner, datetime.date(2026, 9, 30))
    retention_policy_update(policy=policy, actor=dpo, reason="Board decision 12/2026", months=3)
    retention_run(today=TODAY)
    assert not is_erased(customer)  # 30 Sep + 3 months = 30 Dec
    latest = policy.history.order_by("-history_id").first()
    assert latest.months == 3 and latest.history_user == dpo and "Board" in latest.history_change_reason
    with pytest.raises(ValidationError) as raised:
        retention_policy_update(policy=policy, actor=dpo, reason="x", months=9999)
    assert "months" in raised.value.message_dict


# What the other policies delete


def test_invoices_credit_notes_and_lines_go_six_years_after_issue(subject, dpo, finance):
    invoice = subject.invoice  # issued 1 February 2025, credited on the day the test runs
    note = CreditNote.objects.get(invoice=invoice)
    CreditNote.objects.filter(pk=note.pk).update(issue_date=datetime.date(2025, 3, 1))
    # Its ledger entry is dated as the note now is (entries are immutable: the plain queryset moves it).
    QuerySet(LedgerEntry).filter(credit_note=note).update(effective_on=datetime.date(2025, 3, 1))
    # Paid in full: an invoice still owed is the debt's record and is never purged.
    payment = settle(subject, finance)
    assert invoice_outstanding(invoice) == 0
    customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")
    assert InvoiceLine.objects.filter(invoice=invoice).exists()

    retention_run(today=datetime.date(2031, 2, 28))  # six years less a day from issue
    assert Invoice.objects.filter(pk=invoice.pk).exists()
    retention_run(today=datetime.date(2031, 2, 1))
    assert Invoice.objects.filter(pk=invoice.pk).exists()  # the credit note of 1 March is younger
    run = retention_run(today=datetime.date(2031, 3, 1))
    assert not Invoice.objects.filter(pk=invoice.pk).exists()
    assert not Invoice.history.filter(id=invoice.pk).exists()
    assert not InvoiceLine.objects.filter(invoice_id=invoice.pk).exists()
    assert not CreditNote.objects.filter(pk=note.pk).exists() and not CreditNote.history.filter(id=note.pk)
    assert run.counts["invoices"]["billing.Invoice"] == 1
    # The payment that settled it goes with it, and every ledger row of the two.
    assert not Payment.objects.filter(pk=payment.pk).exists()
    assert not Payment.history.filter(id=payment.pk).exists()
    assert not LedgerEntry.objects.filter(customer=subject.customer).exists()
    assert not PaymentAllocation.objects.filter(payment_id=payment.pk).exists()
    # Nothing of the subject is left at all now, not even the VAT snapshot.
    assert scan(subject.values, subject.blind_indexes, kept_invoice_ids=set()) == []


def test_calls_go_after_the_dispute_period_from_their_invoice_or_the_call(subject):
    billed = CallRecord.objects.filter(billing__isnull=False, customer=subject.customer)
    unbilled = CallRecord.objects.filter(billing__isnull=True, customer=subject.customer)
    assert billed.count() == 3 and unbilled.count() == 3
    # Billed on an invoice of 1 February 2025: due on 1 February 2026. Unbilled calls of February
    # 2025 (1, 2 and 3 February): each due a year after its own day.
    Customer.objects.filter(pk=subject.customer.pk).update(contract_end=None)
    retention_run(today=datetime.date(2026, 1, 31))
    assert billed.count() == 3
    retention_run(today=datetime.date(2026, 2, 1))
    assert billed.count() == 0 and unbilled.count() == 2
    assert not BilledCall.objects.filter(invoice=subject.invoice).exists()
    retention_run(today=datetime.date(2026, 2, 3))
    assert unbilled.count() == 0
    # Their references go with them (kept only to refuse a second import of the same calls).
    assert not CallReference.objects.filter(partner=subject.customer.partner).exists()


def test_access_logs_go_after_two_years_and_closed_requests_after_three(partner, dpo, customer):
    old = access_log_record(user=dpo, customer=customer, action="reveal", fields=["email"], reason="Check")
    recent = access_log_record(user=dpo, customer=customer, action="reveal", fields=["email"], reason="Chk")
    AccessLog.objects.filter(pk=old.pk).update(at=datetime.datetime(2024, 11, 30, 23, 0, tzinfo=LONDON))
    AccessLog.objects.filter(pk=recent.pk).update(at=datetime.datetime(2024, 12, 1, 0, 5, tzinfo=LONDON))
    closed = receive(dpo, customer=customer)
    open_request = receive(dpo, customer=customer)
    PrivacyRequest.objects.filter(pk=closed.pk).update(
        state="withdrawn", closed_at=datetime.datetime(2023, 11, 30, 12, 0, tzinfo=LONDON)
    )
    PrivacyRequest.objects.filter(pk=open_request.pk).update(
        received_on=datetime.date(2020, 1, 1)
    )  # open, however old: kept

    run = retention_run(today=TODAY)

    assert list(AccessLog.objects.values_list("pk", flat=True)) == [recent.pk]
    assert list(PrivacyRequest.objects.values_list("pk", flat=True)) == [open_request.pk]
    assert not PrivacyRequestEvent.objects.filter(privacy_request_id=closed.pk).exists()
    assert not PrivacyRequest.history.filter(id=closed.pk).exists()
    assert run.counts["access_logs"] == {"accounts.AccessLog": 1}
    assert run.counts["privacy_requests"]["privacy.PrivacyRequest"] == 1


def test_direct_debit_files_are_cleared_13_months_after_their_processing_day(subject, finance, dpo):
    Customer.objects.filter(pk=subject.customer.pk).update(contract_end=None)
    run_of_january = subject.invoice.bill_run
    old = direct_debit_export(bill_run=run_of_january, actor=finance)
    direct_debit_submission_cancel(submission=old, actor=finance, reason="Rejected by Bacs")
    recent = direct_debit_export(bill_run=run_of_january, actor=finance)
    # TODAY is 30 November 2026, a month's last day: 13 months back, all of October 2025 is due.
    DirectDebitSubmission.objects.filter(pk=old.pk).update(processing_date=datetime.date(2025, 10, 31))
    DirectDebitSubmission.objects.filter(pk=recent.pk).update(processing_date=datetime.date(2025, 11, 1))

    dry = retention_run(today=TODAY, dry_run=True)
    assert dry.counts == {} and DirectDebitSubmission.objects.get(pk=old.pk).content == old.content
    run = retention_run(today=TODAY)

    assert run.counts["direct_debit_files"] == {"billing.DirectDebitSubmission": 1}
    cleared = DirectDebitSubmission.objects.get(pk=old.pk)
    assert (
        cleared.content == ""
        and cleared.content_cleared_for == DirectDebitSubmission.ContentCleared.RETENTION
    )
    assert (cleared.sha256, cleared.serial, cleared.total_pence) == (old.sha256, old.serial, old.total_pence)
    kept = DirectDebitSubmission.objects.get(pk=recent.pk)
    assert kept.content == recent.content and "34206819" in kept.content and not kept.is_content_cleared

    # A hold on a customer the run billed keeps the file a dispute may need; lifting it lets it go.
    the_hold = hold(subject.customer, dpo, LegalHold.Kind.DISPUTE)
    assert "direct_debit_files" not in retention_run(today=TODAY + datetime.timedelta(days=1)).counts
    assert DirectDebitSubmission.objects.get(pk=recent.pk).content == recent.content
    legal_hold_lift(hold=the_hold, actor=dpo, reason="Dispute settled")
    later = retention_run(today=TODAY + datetime.timedelta(days=1))
    assert later.counts["direct_debit_files"] == {"billing.DirectDebitSubmission": 1}
    assert DirectDebitSubmission.objects.get(pk=recent.pk).content == ""
    assert DirectDebitSubmission.objects.get(pk=old.pk).content_cleared_at == cleared.content_cleared_at


def test_a_held_customers_calls_and_invoices_stay(subject, dpo):
    hold(subject.customer, dpo, LegalHold.Kind.DISPUTE)
    retention_run(today=datetime.date(2032, 1, 1))
    assert CallRecord.objects.filter(customer=subject.customer).count() == 6
    assert Invoice.objects.filter(pk=subject.invoice.pk).exists()


def test_website_enquiries_go_after_a_year_and_withdrawn_or_unconfirmed_subscriptions_at_once(notice):
    def submission(kind, status, *, created, unsubscribed=None):
        made = WebsiteSubmission.objects.create(
            kind=kind,
            status=status,
            email="someone@example.com",
            notice=notice,
            consented_at=created,
            unsubscribed_at=unsubscribed,
        )
        WebsiteSubmission.objects.filter(pk=made.pk).update(created_at=created)
        return made.pk

    contact, mailing = WebsiteSubmission.Kind.CONTACT, WebsiteSubmission.Kind.MAILING_LIST
    status = WebsiteSubmission.Status
    # A year before TODAY (30 Nov 2026) is 30 Nov 2025: that day is due, the next is not.
    old_enquiry = submission(
        contact, status.RECEIVED, created=datetime.datetime(2025, 11, 30, 12, tzinfo=LONDON)
    )
    new_enquiry = submission(
        contact, status.RECEIVED, created=datetime.datetime(2025, 12, 1, 5, tzinfo=LONDON)
    )
    withdrawn = submission(
        mailing,
        status.UNSUBSCRIBED,
        created=datetime.datetime(2026, 1, 1, tzinfo=LONDON),
        unsubscribed=datetime.datetime(2026, 11, 29, 9, tzinfo=LONDON),
    )
    subscribed = submission(mailing, status.CONFIRMED, created=datetime.datetime(2020, 1, 1, tzinfo=LONDON))
    never_confirmed = submission(
        mailing, status.PENDING_CONFIRMATION, created=datetime.datetime(2026, 10, 30, tzinfo=LONDON)
    )
    just_asked = submission(
        mailing, status.PENDING_CONFIRMATION, created=datetime.datetime(2026, 11, 20, tzinfo=LONDON)
    )

    run = retention_run(today=TODAY)

    left = set(WebsiteSubmission.objects.values_list("pk", flat=True))
    assert left == {new_enquiry, subscribed, just_asked}
    assert not WebsiteSubmission.history.filter(id__in=[old_enquiry, withdrawn, never_confirmed]).exists()
    assert run.counts["website_enquiries"] == {"privacy.WebsiteSubmission": 1}
    assert run.counts["mailing_list"] == {"privacy.WebsiteSubmission": 2}


def test_job_applications_go_six_months_after_the_decision_with_their_cv(
    notice, dpo, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = str(tmp_path)

    def application(decided_on: datetime.datetime | None) -> WebsiteSubmission:
        made = WebsiteSubmission.objects.create(
            kind=WebsiteSubmission.Kind.JOB_APPLICATION,
            status=WebsiteSubmission.Status.RECEIVED,
            email="applicant@example.com",
            notice=notice,
            consented_at=datetime.datetime(2025, 1, 1, tzinfo=LONDON),
            cv=default_storage.save("applications/cv.pdf", ContentFile(b"%PDF-1.4 cv")),
        )
        if decided_on:
            WebsiteSubmission.objects.filter(pk=made.pk).update(decision="declined", decided_at=decided_on)
        return made

    # TODAY (30 Nov 2026) is a month's last day, so every decision up to 31 May 2026 is six months old.
    due = application(datetime.datetime(2026, 5, 31, 18, tzinfo=LONDON))
    kept = application(datetime.datetime(2026, 6, 1, 9, tzinfo=LONDON))
    undecided = application(None)

    with django_capture_on_commit_callbacks(execute=True):  # the CV file goes once its chunk commits
        run = retention_run(today=TODAY)

    assert set(WebsiteSubmission.objects.values_list("pk", flat=True)) == {kept.pk, undecided.pk}
    assert not default_storage.exists(due.cv.name) and default_storage.exists(kept.cv.name)
    assert run.counts["job_applications"] == {"privacy.WebsiteSubmission": 1}


def test_staff_record_a_decision_on_the_application_page(client, notice, make_user):
    application = WebsiteSubmission.objects.create(
        kind=WebsiteSubmission.Kind.JOB_APPLICATION,
        status=WebsiteSubmission.Status.RECEIVED,
        email="applicant@example.com",
        notice=notice,
        consented_at=datetime.datetime(2025, 1, 1, tzinfo=LONDON),
    )
    url = reverse("website_staff:submission_decision", args=[application.pk])
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert client.post(url, {"decision": "declined"}).status_code == 404, "recruitment staff only"
    client.force_login(make_user(Role.DATA_PROTECTION_OFFICER))
    assert client.get(url).status_code == 405
    client.post(url, {"decision": "nonsense"})
    application.refresh_from_db()
    assert application.decided_at is None
    client.post(url, {"decision": "declined"})
    application.refresh_from_db()
    assert application.decision == "declined" and application.decided_at is not None


# A whole run: nothing of the customer left; the audit trail names the system actor


def test_after_a_run_nothing_of_a_deleted_customer_remains_in_any_table(subject, neighbour, finance):
    Customer.objects.filter(pk=subject.customer.pk).update(contract_end=datetime.date(2025, 12, 31))
    settle(subject, finance)
    before = scan(subject.values, subject.blind_indexes, kept_invoice_ids={subject.invoice.pk})
    assert {"accounts.HistoricalContact", "billing.CallRecord", "accounts.PaymentDetails"} <= {
        hit.split(":")[0].rsplit(".", 1)[0] for hit in before
    }
    neighbour_contacts = sorted(c.email for c in Contact.objects.filter(customer=neighbour))

    run = retention_run(today=TODAY)

    assert scan(subject.values, subject.blind_indexes, kept_invoice_ids={subject.invoice.pk}) == []
    assert sorted(c.email for c in Contact.objects.filter(customer=neighbour)) == neighbour_contacts
    assert not is_erased(neighbour)
    customer = Customer.objects.get(pk=subject.customer.pk)
    latest = customer.history.order_by("-history_id").first()
    assert latest.history_user == system_user(job="retention")
    assert "Retention policy customer_account" in latest.history_change_reason
    assert run.counts["customer_account"]["accounts.Customer"] == 1
    assert run.status == RetentionRun.Status.COMPLETED and run.finished_at is not None
    # Level-triggered and idempotent: the next night finds nothing more of this customer to do.
    again = retention_run(today=TODAY + datetime.timedelta(days=1))
    assert "customer_account" not in again.counts


# The lock, failures and reruns


def test_a_second_run_exits_while_the_first_holds_the_lock(partner):
    customer = ended(partner, datetime.date(2025, 1, 1))
    assert retention_lock_acquire(holder="the-other-run")
    assert retention_run(today=TODAY) is None
    with pytest.raises(CommandError, match="Another retention run is in progress"):
        call_command("run_retention", stdout=io.StringIO(), stderr=io.StringIO())
    assert not is_erased(customer) and not RetentionRun.objects.exists()
    retention_lock_release(holder="the-other-run")
    assert retention_run(today=TODAY) is not None and is_erased(customer)


def test_an_expired_lease_is_taken_over_and_the_dead_run_carried_on(partner, settings):
    customer = ended(partner, datetime.date(2025, 1, 1))
    settings.RETENTION_LOCK_TTL_SECONDS = -1  # the killed worker's lease has already lapsed
    dead = RetentionRun.objects.create(
        started_at=timezone.now(), run_on=TODAY, actor=system_user(job="retention"), task_id="killed"
    )
    assert retention_lock_acquire(holder="killed")
    run = retention_run(today=TODAY)
    assert run.pk == dead.pk and run.attempts == 2 and run.status == RetentionRun.Status.COMPLETED
    assert is_erased(customer)


def test_a_failing_chunk_is_reported_and_a_rerun_finishes_it(partner, monkeypatch, settings):
    settings.RETENTION_CHUNK_SIZE = 2
    customers = [ended(partner, datetime.date(2025, 1, 1)) for _ in range(5)]
    real_erase = retention_rules.customers_erase

    def failing(*, customer_ids, **kwargs):
        erased = real_erase(customer_ids=customer_ids, **kwargs)
        if customers[2].pk in customer_ids:
            # A real database error, after the erasure's statements ran in the chunk's transaction.
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO retention_no_such_table VALUES (1)")
        return erased

    monkeypatch.setattr(retention_rules, "customers_erase", failing)
    run = retention_run(today=TODAY)
    # Chunks: [0, 1] done, [2, 3] rolled back (2 was erased in it, then undone), [4] done.
    assert [is_erased(c) for c in customers] == [True, True, False, False, True]
    assert run.status == RetentionRun.Status.COMPLETED_WITH_ERRORS
    assert run.errors[0]["policy"] == "customer_account" and run.errors[0]["first_id"] == customers[2].pk
    assert "retention_no_such_table" in run.errors[0]["error"]
    assert run.counts["customer_account"]["accounts.Customer"] == 3

    monkeypatch.undo()
    rerun = retention_run(today=TODAY)
    assert all(is_erased(c) for c in customers)
    assert rerun.counts["customer_account"]["accounts.Customer"] == 2 and not rerun.errors


# The command


def test_dry_run_prints_what_it_would_do_and_changes_nothing(subject, dpo, partner, finance):
    Customer.objects.filter(pk=subject.customer.pk).update(contract_end=datetime.date(2025, 12, 31))
    settle(subject, finance)
    held = ended(partner, datetime.date(2025, 1, 1))
    hold(held, dpo)
    out, err = io.StringIO(), io.StringIO()
    call_command("run_retention", "--dry-run", "--today", "2026-11-30", stdout=out, stderr=err)
    text = out.getvalue()
    reference = subject.customer.reference
    assert f"DELETE | customer_account | {reference} | contract ended 2025-12-31" in text
    assert "accounts.Contact 1" in text and "billing.CallRecord 7" in text
    assert f"ANONYMISE | customer_account | {reference}" in text
    assert f"KEEP | customer_account | {reference} |" in text and "VAT records" in text
    assert f"KEEP | customer_account | {held.reference} | legal hold: litigation" in text
    assert "no handler yet" not in text
    assert "customer_account" in err.getvalue()  # the progress bar
    assert not is_erased(subject.customer) and CallRecord.objects.filter(customer=subject.customer).exists()
    run = RetentionRun.objects.get()
    assert (
        run.dry_run
        and run.counts == {}
        and run.held == [{"customer": held.reference, "holds": ["litigation"]}]
    )


def test_command_runs_and_summarises(partner):
    customer = ended(partner, datetime.date(2025, 1, 1))
    out = io.StringIO()
    call_command("run_retention", stdout=out, stderr=io.StringIO())
    assert is_erased(customer)
    assert "completed: customer_account" in out.getvalue()


def test_command_refuses_a_real_run_as_of_another_day(partner):
    ended(partner, datetime.date(2026, 11, 1))
    with pytest.raises(CommandError, match="--today"):
        call_command("run_retention", "--today", "2030-01-01", stdout=io.StringIO(), stderr=io.StringIO())
    assert not Customer.objects.filter(erased_at__isnull=False).exists()


def test_beat_schedules_the_task_nightly(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-retention"]
    assert entry["task"] == "privacy.tasks.run_retention"
    assert entry["schedule"].hour == {2}
    from privacy.tasks import run_retention

    assert run_retention.acks_late and run_retention.reject_on_worker_lost


def test_the_task_runs_the_job(partner):
    from privacy.tasks import run_retention

    customer = ended(partner, timezone.localdate() - datetime.timedelta(days=400))
    run_id = run_retention.delay().get()
    assert RetentionRun.objects.get(pk=run_id).status == RetentionRun.Status.COMPLETED
    assert is_erased(customer)


def test_a_customer_without_contract_end_is_never_due(partner):
    customer = CustomerFactory(partner=partner)
    retention_run(today=datetime.date(2099, 1, 1))
    assert not is_erased(customer)


def test_erasing_a_debtor_by_hand_warns_of_the_debt(debtor):
    owed = invoice_outstanding(Invoice.objects.get(customer=debtor))
    preview = erasure_preview(customer=debtor)
    assert any(f"owes £{owed}" in warning for warning in preview.warnings), preview.warnings
    assert preview.can_erase  # the DPO decides: the debt is a reason to keep, not a blocker
