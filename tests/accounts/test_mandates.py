"""The Direct Debit mandate's lifecycle (accounts.mandates) through its services, the daily job and the
Direct Debit export: transitions and their refusals, AUDDIS 0N/0C in the submission (parsed back with the
layout table of tests/billing/test_bacs_rules.py), only active mandates collected, dormancy at 13 months
across a leap year, advance notices dating the collections across bank holidays, and the data migration."""

import datetime
import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import mandates
from accounts import services as account_services
from accounts.models import AuditEvent, Customer, DirectDebitNotice, PaymentDetails, Role, User
from billing import bacs
from billing.bacs_collections import choose
from billing.demo import uk_tariff
from billing.models import BillRun, DirectDebitSubmission, Invoice
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_create,
    bill_run_finalise,
    bill_run_start_calculation,
)
from billing.services.charges import one_off_charge_create
from billing.services.direct_debit import direct_debit_export, direct_debit_submission_cancel
from billing.tasks import direct_debit_mandates_daily, send_direct_debit_notices_daily
from tests.billing.factories import billing_profile
from tests.billing.test_bacs import make_active
from tests.billing.test_bacs_rules import (
    LONDON,
    bacs_works,
    first_working_after,
    from_bacs_day,
    parse,
    working_days_between,
)
from tests.factories import full_customer

Status = PaymentDetails.Status
NOTICE_SUBJECT = "Advance notice of your Direct Debit"


def mandate_of(customer: Customer) -> PaymentDetails:
    return PaymentDetails.objects.get(customer=customer)


def lodge(customer: Customer, actor: User, processing_date: datetime.date) -> PaymentDetails:
    return mandates.mandate_lodge(
        mandate=mandate_of(customer),
        actor=actor,
        submission_id=None,
        lodged_at=datetime.datetime.combine(processing_date, datetime.time(9), tzinfo=LONDON),
        processing_date=processing_date,
    )


def files_of(content: str) -> list[list[dict[str, str]]]:
    """Each file of a submission (HDR1 ... UTL1), its records parsed against the published layout."""
    records = content.split("\r\n")
    assert parse(records[0])["label"] == "VOL1"
    files: list[list[dict[str, str]]] = []
    for record in records[1:]:
        parsed = parse(record)
        if parsed.get("label") == "HDR1":
            files.append([])
        files[-1].append(parsed)
    return files


# Transitions ------------------------------------------------------------------------------------------


def test_a_mandate_goes_from_new_to_lodged_to_active_to_cancelled_with_history_and_audit(partner, agent):
    customer = full_customer(partner)
    assert mandate_of(customer).status == Status.NEW

    # Processed on Tuesday 24 November 2026: the bank has it on the 25th, collections from Thursday the 26th.
    lodged = lodge(customer, agent, datetime.date(2026, 11, 24))
    assert (lodged.status, lodged.active_from) == (Status.LODGED, datetime.date(2026, 11, 26))
    with pytest.raises(ValidationError, match="lodgement period runs until 26 November 2026"):
        mandates.mandate_activate(mandate=lodged, actor=agent, today=datetime.date(2026, 11, 25))
    active = mandates.mandate_activate(mandate=lodged, actor=agent, today=datetime.date(2026, 11, 26))
    with pytest.raises(ValidationError, match="Say why the mandate is cancelled"):
        mandates.mandate_cancel(mandate=active, actor=agent, reason="  ")
    cancelled = mandates.mandate_cancel(mandate=active, actor=agent, reason="Customer moved to card payments")

    assert cancelled.status == Status.CANCELLED
    assert cancelled.cancelled_at is not None and not cancelled.cancelled_by_bank
    assert cancelled.cancellation_reason == "Customer moved to card payments"
    # Lodged at the bank and cancelled here: its 0C is owed.
    assert PaymentDetails.objects.filter(mandates.CANCELLATION_PENDING, pk=cancelled.pk).exists()
    history = list(cancelled.history.order_by("history_date", "history_id"))
    assert [row.status for row in history] == ["new", "lodged", "active", "cancelled"]
    assert {row.history_user for row in history[1:]} == {agent}
    assert history[-1].history_change_reason == "Cancelled: Customer moved to card payments"
    actions = AuditEvent.objects.filter(
        target_id=str(cancelled.pk), actor_id=agent.pk, action__startswith="mandate."
    ).values_list("action", flat=True)
    assert list(actions) == ["mandate.lodged", "mandate.active", "mandate.cancelled"]


def in_state(
    customer: Customer, actor: User, status: str, *, lodged_on: datetime.date = datetime.date(2025, 6, 2)
) -> PaymentDetails:
    """A mandate brought to ``status`` through the services."""
    if status == Status.NEW:
        return mandate_of(customer)
    mandate = lodge(customer, actor, lodged_on)
    if status == Status.LODGED:
        return mandate
    mandate = mandates.mandate_activate(mandate=mandate, actor=actor, today=mandate.active_from)
    if status == Status.ACTIVE:
        return mandate
    if status == Status.CANCELLED:
        return mandates.mandate_cancel(mandate=mandate, actor=actor, reason="Payer asked")
    return mandates.mandate_expire(mandate=mandate, actor=actor, today=datetime.date(2026, 11, 30))


TODAY = datetime.date(2026, 11, 30)
STEPS = {
    "lodged": lambda m, a: mandates.mandate_lodge(
        mandate=m,
        actor=a,
        submission_id=None,
        lodged_at=datetime.datetime(2026, 11, 30, tzinfo=LONDON),
        processing_date=TODAY,
    ),
    "active": lambda m, a: mandates.mandate_activate(mandate=m, actor=a, today=TODAY),
    "cancelled": lambda m, a: mandates.mandate_cancel(mandate=m, actor=a, reason="Asked"),
    "expired": lambda m, a: mandates.mandate_expire(mandate=m, actor=a, today=TODAY),
    "new": lambda m, a: mandates.mandate_reinstate(mandate=m, actor=a, reason="New instruction"),
}
REFUSED = [
    (start, to)
    for start in Status.values
    for to in STEPS
    if to not in mandates.TRANSITIONS[start]
    # Reinstating is a step from cancelled/expired only; lodged/active go back to new another way.
    or (to == "new" and start in ("lodged", "active"))
]


@pytest.mark.parametrize(("start", "to"), REFUSED, ids=[f"{start}->{to}" for start, to in REFUSED])
def test_a_step_the_lifecycle_does_not_hold_is_refused_with_a_clear_message_and_changes_nothing(
    partner, agent, start, to
):
    mandate = in_state(full_customer(partner), agent, start)
    rows = mandate.history.count()

    with pytest.raises(ValidationError) as refused:
        STEPS[to](mandate, agent)

    [message] = refused.value.message_dict["status"]
    assert message.startswith(f"A Direct Debit mandate that is {start} cannot become {to}")
    assert (mandate_of(mandate.customer).status, mandate.history.count()) == (start, rows)


def test_an_active_mandate_used_within_13_months_is_not_expired(partner, agent):
    mandate = in_state(full_customer(partner), agent, Status.ACTIVE)
    PaymentDetails.objects.filter(pk=mandate.pk).update(last_collected_on=datetime.date(2025, 11, 1))

    with pytest.raises(ValidationError, match="dormant only from 01 December 2026"):
        mandates.mandate_expire(mandate=mandate, actor=agent, today=TODAY)


def test_the_database_refuses_lifecycle_fields_that_contradict_the_status(partner):
    mandate = mandate_of(full_customer(partner))
    for changes in (
        {"status": Status.ACTIVE},  # active without lodgement dates
        {"status": Status.CANCELLED},  # cancelled without date and reason
        {"lodged_at": datetime.datetime(2026, 1, 5, tzinfo=LONDON)},  # new but lodged
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            PaymentDetails.objects.filter(pk=mandate.pk).update(**changes)


def test_the_lifecycle_is_not_editable_in_forms_or_the_admin():
    lifecycle = [
        "status",
        "lodged_at",
        "active_from",
        "last_collected_on",
        "cancelled_at",
        "cancellation_reason",
    ]
    assert not any(PaymentDetails._meta.get_field(name).editable for name in lifecycle)


# The Direct Debit submission: AUDDIS records, only active mandates collected ----------------------------


def finalised_run(partner, agent, finance, charges: dict[Customer, str], capture, **finalise) -> BillRun:
    for customer, net in charges.items():
        one_off_charge_create(
            customer=customer,
            description="Equipment",
            amount=Decimal(net),
            charge_date=datetime.date(2026, 10, 1),
            actor=agent,
        )
    run = bill_run_create(
        partner=partner,
        period_start=datetime.date(2026, 10, 1),
        period_end=datetime.date(2026, 10, 31),
        actor=agent,
    )
    with capture(execute=True):  # the calculation's tasks run on commit, in process
        bill_run_start_calculation(bill_run=run, actor=agent)
    bill_run_approve(bill_run=run, actor=finance)
    return bill_run_finalise(bill_run=run, actor=finance, **finalise)


@pytest.fixture
def lifecycle_run(partner, agent, finance, django_capture_on_commit_callbacks):
    """A finalised October 2026 run of customers whose mandates stand at each point of the lifecycle."""
    billing_profile(partner, default_tariff=uk_tariff())
    customers = {name: full_customer(partner) for name in ("new", "lodged", "active", "ended", "by_bank")}
    for name, customer in customers.items():  # references Bacs can tell apart
        account_services.payment_details_set(
            customer=customer,
            actor=agent,
            account_holder="Jane Smith",
            sort_code="40-05-15",
            account_number="34206819",
            mandate_reference=f"DD-{name.upper().replace('_', '')}-01",
        )
    make_active(customers["active"], agent)
    lodge(customers["lodged"], agent, datetime.date(2026, 11, 27))  # active from 1 December
    for name in ("ended", "by_bank"):
        make_active(customers[name], agent)
    mandates.mandate_cancel(mandate=mandate_of(customers["ended"]), actor=agent, reason="Payer asked")
    mandates.mandate_cancel(
        mandate=mandate_of(customers["by_bank"]),
        actor=agent,
        reason="ADDACS 1: cancelled by payer",
        by_bank=True,
    )
    run = finalised_run(
        partner,
        agent,
        finance,
        {customer: "10.00" for customer in customers.values()},
        django_capture_on_commit_callbacks,
    )
    return run, customers


def test_only_active_mandates_are_collected_and_the_others_say_why(lifecycle_run):
    run, customers = lifecycle_run

    choice = choose(run)

    assert [debit.invoice.customer_reference for debit in choice.debits] == [customers["active"].reference]
    skipped = dict(choice.skipped)
    assert skipped[customers["new"].reference] == bacs.SKIP_MANDATE["new"]
    assert skipped[customers["lodged"].reference] == bacs.SKIP_MANDATE["lodged"]
    assert skipped[customers["ended"].reference] == bacs.SKIP_MANDATE["cancelled"]
    assert skipped[customers["by_bank"].reference] == bacs.SKIP_MANDATE["cancelled"]
    # The new one is lodged (0N), the one cancelled here cancelled at the bank (0C); the bank's own
    # cancellation needs no 0C (the scheme forbids one).
    assert {
        (item.instruction.customer_reference, item.instruction.transaction_code) for item in choice.lodgements
    } == {
        (customers["new"].reference, "0N"),
        (customers["ended"].reference, "0C"),
    }


def test_the_submission_lodges_and_cancels_in_an_auddis_file_and_the_mandates_follow(lifecycle_run, finance):
    run, customers = lifecycle_run

    submission = direct_debit_export(bill_run=run, actor=finance)

    auddis, collections = files_of(submission.content)
    hdr1, _hdr2, uhl1, *instructions, _eof1, _eof2, utl1 = auddis
    by_reference = {record["service user's reference"].strip(): record for record in instructions}
    new, ended = mandate_of(customers["new"]), mandate_of(customers["ended"])
    assert by_reference[new.mandate_reference.upper()]["transaction code"] == "0N"
    assert by_reference[ended.mandate_reference.upper()]["transaction code"] == "0C"
    assert {record["amount in pence"] for record in instructions} == {"0" * 11}
    assert (hdr1["file sequence number"], uhl1["file number"]) == ("0001", "001")
    assert (int(utl1["debit value total"]), int(utl1["debit item count"]), int(utl1["DDI count"])) == (
        0,
        0,
        2,
    )
    details = [record for record in collections[3:-3] if record["transaction code"] == "17"]
    assert len(details) == submission.collections == 1
    assert collections[2]["file number"] == "002"

    lodged_on = from_bacs_day(uhl1["processing date"])
    assert (new.status, new.lodgement_submission_id) == (Status.LODGED, submission.pk)
    assert new.active_from == mandates.active_from_for(lodged_on)
    assert working_days_between(lodged_on, new.active_from) == 2
    assert ended.cancellation_submission_id == submission.pk
    assert mandate_of(customers["by_bank"]).cancellation_submission_id is None
    active = mandate_of(customers["active"])
    notice = DirectDebitNotice.objects.get(mandate=active)
    assert (
        active.last_collected_on
        == notice.collection_date
        == first_working_after(from_bacs_day(collections[2]["processing date"]))
    )
    assert notice.submission_id == submission.pk


def test_cancelling_the_submission_puts_the_mandates_back_and_the_next_one_lodges_them_again(
    lifecycle_run, finance
):
    run, customers = lifecycle_run
    first = direct_debit_export(bill_run=run, actor=finance)

    direct_debit_submission_cancel(submission=first, actor=finance, reason="Not sent: wrong day")

    new, ended, active = (mandate_of(customers[name]) for name in ("new", "ended", "active"))
    assert (new.status, new.lodged_at, new.lodgement_submission_id, new.active_from) == (
        Status.NEW,
        None,
        None,
        None,
    )
    assert new.history.latest().history_change_reason.startswith(
        f"Direct Debit submission #{first.pk} cancelled"
    )
    assert ended.cancellation_submission_id is None
    assert active.last_collected_on is None  # never collected before this submission
    assert DirectDebitNotice.objects.get(mandate=active).submission_id is None

    second = direct_debit_export(bill_run=run, actor=finance)
    auddis = files_of(second.content)[0]
    assert sorted(record["transaction code"] for record in auddis[3:-3]) == ["0C", "0N"]
    assert mandate_of(customers["new"]).lodgement_submission_id == second.pk
    assert second.serial == "000002"


# The daily job: activation and dormancy (13 months, across a leap year), idempotent --------------------


@pytest.mark.frozen_at("2025-03-28T09:00:00+00:00")
def test_a_mandate_last_collected_on_a_leap_day_expires_13_months_later_once(partner, agent, clock):
    collected = in_state(full_customer(partner), agent, Status.ACTIVE, lodged_on=datetime.date(2023, 6, 1))
    PaymentDetails.objects.filter(pk=collected.pk).update(last_collected_on=datetime.date(2024, 2, 29))
    never = mandate_of(full_customer(partner))
    never = lodge(never.customer, agent, datetime.date(2024, 2, 27))  # lodged 27 February 2024
    mandates.mandate_activate(mandate=never, actor=agent, today=never.active_from)

    assert direct_debit_mandates_daily() == {"activated": 0, "expired": 1}  # the never-collected one
    assert mandate_of(collected.customer).status == Status.ACTIVE
    assert mandate_of(never.customer).status == Status.EXPIRED

    clock.move_to(datetime.datetime(2025, 3, 29, 6, 0, tzinfo=datetime.UTC))
    assert direct_debit_mandates_daily() == {"activated": 0, "expired": 1}
    expired = mandate_of(collected.customer)
    assert expired.status == Status.EXPIRED
    assert expired.cancellation_reason == mandates.EXPIRY_REASON
    assert expired.history.latest().history_user.email.startswith(mandates.MANDATE_JOB)
    rows = PaymentDetails.history.count()

    assert direct_debit_mandates_daily() == {"activated": 0, "expired": 0}
    assert PaymentDetails.history.count() == rows


@pytest.mark.parametrize(
    ("last_collected", "not_yet", "dormant"),
    [
        # 31 January + 13 months is the last day of February: the 29th in a leap year.
        ("2023-01-31", "2024-02-28", "2024-02-29"),
        ("2024-01-31", "2025-02-27", "2025-02-28"),
        ("2023-12-15", "2025-01-14", "2025-01-15"),
    ],
)
def test_dormancy_counts_13_calendar_months(partner, agent, last_collected, not_yet, dormant):
    mandate = in_state(full_customer(partner), agent, Status.ACTIVE)
    PaymentDetails.objects.filter(pk=mandate.pk).update(
        last_collected_on=datetime.date.fromisoformat(last_collected)
    )

    assert (
        not mandates.dormant_mandates(today=datetime.date.fromisoformat(not_yet))
        .filter(pk=mandate.pk)
        .exists()
    )
    assert (
        mandates.dormant_mandates(today=datetime.date.fromisoformat(dormant)).filter(pk=mandate.pk).exists()
    )


def test_the_daily_job_activates_lodged_mandates_after_their_period_in_chunks(partner, agent, clock):
    customers = [full_customer(partner) for _ in range(5)]
    for customer in customers:
        lodge(customer, agent, datetime.date(2026, 11, 30))  # active from Wednesday 2 December
    progress: list[int] = []

    assert mandates.mandates_activate_due(today=datetime.date(2026, 12, 1), actor=agent) == 0
    clock.move_to(datetime.datetime(2026, 12, 2, 6, 0, tzinfo=datetime.UTC))
    activated = mandates.mandates_activate_due(
        today=datetime.date(2026, 12, 2), actor=agent, chunk_size=2, progress=progress.append
    )

    assert activated == 5 and progress == [2, 4, 5]
    assert set(PaymentDetails.objects.values_list("status", flat=True)) == {Status.ACTIVE}
    assert direct_debit_mandates_daily() == {"activated": 0, "expired": 0}


# Advance notice ---------------------------------------------------------------------------------------


def test_the_daily_notices_fix_the_debit_date_and_the_export_keeps_it(
    partner, agent, finance, clock, mailoutbox, django_capture_on_commit_callbacks
):
    billing_profile(partner, default_tariff=uk_tariff())
    customer = full_customer(partner)
    make_active(customer, agent)
    run = finalised_run(
        partner, agent, finance, {customer: "25.00"}, django_capture_on_commit_callbacks, issue_date=TODAY
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert send_direct_debit_notices_daily() == 1
        assert send_direct_debit_notices_daily() == 0  # sent once

    # Sent Monday 30 November 2026: the 10th working day after is Monday 14 December, also the promise.
    notice = DirectDebitNotice.objects.get()
    invoice = Invoice.objects.get(bill_run=run)
    assert (notice.collection_date, notice.amount_pence, notice.invoice_number) == (
        datetime.date(2026, 12, 14),
        3000,
        invoice.number,
    )
    [mail] = [m for m in mailoutbox if m.subject == NOTICE_SUBJECT]
    assert "£30.00" in mail.body and "Monday 14 December 2026" in mail.body
    assert mail.to == [customer.contacts.get().email]

    clock.move_to(datetime.datetime(2026, 12, 3, 10, 0, tzinfo=datetime.UTC))
    with django_capture_on_commit_callbacks(execute=True):
        submission = direct_debit_export(bill_run=run, actor=finance)

    [collections] = files_of(submission.content)
    assert from_bacs_day(collections[2]["processing date"]) == datetime.date(2026, 12, 11)  # Friday
    assert len([m for m in mailoutbox if m.subject == NOTICE_SUBJECT]) == 1  # not told again


@pytest.mark.frozen_at("2026-12-18T10:00:00+00:00")
def test_a_notice_sent_late_is_collected_later_across_the_christmas_holidays(
    partner, agent, finance, mailoutbox, django_capture_on_commit_callbacks
):
    billing_profile(partner, default_tariff=uk_tariff())
    customer = full_customer(partner)
    make_active(customer, agent)
    quiet = full_customer(partner, contacts=0)  # nobody to tell: not collected
    make_active(quiet, agent)
    run = finalised_run(
        partner,
        agent,
        finance,
        {customer: "25.00", quiet: "5.00"},
        django_capture_on_commit_callbacks,
        issue_date=datetime.date(2026, 11, 30),
    )
    with django_capture_on_commit_callbacks(execute=True):
        submission = direct_debit_export(bill_run=run, actor=finance)

    # Promised 14 December, but the notice goes only on Friday 18 December: ten working days on, past
    # Christmas (25th), Boxing Day's substitute (28th) and New Year's Day, is Wednesday 6 January 2027.
    notice = DirectDebitNotice.objects.get()
    assert notice.collection_date == datetime.date(2027, 1, 6)
    assert working_days_between(datetime.date(2026, 12, 18), notice.collection_date) == 10
    [collections] = files_of(submission.content)
    processing = from_bacs_day(collections[2]["processing date"])
    assert processing == datetime.date(2027, 1, 5) and bacs_works(processing)
    assert first_working_after(processing) == notice.collection_date
    assert submission.collections == 1
    assert submission.promised_date == notice.collection_date
    # The customer with nobody to tell is chosen, but not collected without a notice.
    assert quiet.reference in {debit.invoice.customer_reference for debit in choose(run).debits}
    assert not DirectDebitNotice.objects.filter(mandate__customer=quiet).exists()
    assert [m.to for m in mailoutbox if m.subject == NOTICE_SUBJECT] == [[customer.contacts.get().email]]


# Data migration and the page ------------------------------------------------------------------------


def test_the_data_migration_activates_mandates_with_a_past_collection_only(lifecycle_run, finance):
    run, customers = lifecycle_run
    submission = direct_debit_export(bill_run=run, actor=finance)
    # As before the lifecycle existed: every mandate new, one collection file long processed.
    DirectDebitSubmission.objects.filter(pk=submission.pk).update(processing_date=datetime.date(2026, 11, 20))
    PaymentDetails.objects.update(
        status="new",
        lodged_at=None,
        lodgement_submission_id=None,
        active_from=None,
        last_collected_on=None,
        cancelled_at=None,
        cancellation_reason="",
        cancellation_submission_id=None,
        cancelled_by_bank=False,
    )
    other = full_customer(run.partner)  # no invoice in a collected run
    migration = importlib.import_module("accounts.migrations.0010_mandates_with_past_collections_active")

    migration.activate_collected(apps, None)

    collected = {c for c in customers.values() if Invoice.objects.filter(bill_run=run, customer=c).exists()}
    assert collected == set(customers.values())
    for customer in collected:
        mandate = mandate_of(customer)
        assert (mandate.status, mandate.last_collected_on) == (Status.ACTIVE, datetime.date(2026, 11, 23))
        assert mandate.active_from is not None and mandate.lodged_at is not None
    assert mandate_of(other).status == Status.NEW

    migration.back_to_new(apps, None)
    assert set(PaymentDetails.objects.values_list("status", flat=True)) == {Status.NEW}


def test_site_details_show_the_mandate_status_and_dates(client, partner, agent, make_user):
    customer = full_customer(partner)
    lodge(customer, agent, datetime.date(2026, 11, 24))
    client.force_login(make_user(Role.SUPPORT_AGENT))

    page = client.get(f"/customers/{customer.reference}/").content.decode()

    assert "Mandate status" in page and "Lodged (AUDDIS 0N sent)" in page
    assert "26 Nov 2026" in page  # collections from
    assert "never" in page  # last collected


def test_erasing_a_customer_whose_mandate_was_collected_from_leaves_no_mandate_and_nothing_personal(
    lifecycle_run, finance, dpo
):
    from privacy.erasure import customer_erase

    run, customers = lifecycle_run
    direct_debit_export(bill_run=run, actor=finance)
    customer = customers["active"]
    mandate_pk = mandate_of(customer).pk
    assert DirectDebitNotice.objects.filter(mandate_id=mandate_pk).exists()
    # Another payer's notice, which must stay.
    DirectDebitNotice.objects.create(
        mandate=mandate_of(customers["lodged"]),
        invoice_number="INV-OTHER",
        amount_pence=1234,
        collection_date=datetime.date(2026, 12, 14),
        sent_at=timezone.now(),
    )
    others = set(DirectDebitNotice.objects.exclude(mandate_id=mandate_pk).values_list("pk", flat=True))

    customer_erase(customer=customer, actor=dpo, reason="Erasure request")

    assert not PaymentDetails.objects.filter(pk=mandate_pk).exists()
    # The notices go with the mandate (accounts.personal_data declares them), the invoice stays (VAT law).
    assert not DirectDebitNotice.objects.filter(mandate_id=mandate_pk).exists()
    assert Invoice.objects.filter(bill_run=run, customer=customer).exists()
    # Nobody else's notices go with it.
    assert (
        set(DirectDebitNotice.objects.exclude(mandate_id=mandate_pk).values_list("pk", flat=True)) == others
    )
