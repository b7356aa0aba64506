"""A finalised bill run's Bacs Standard 18 Direct Debit submission: made once, handed out again unchanged,
cancelled with a reason; and the advance notices its collections are dated by.

The submission lodges the run's new mandates (AUDDIS 0N) and cancels its ended ones (0C) in a file of its
own, then collects from the active mandates, one collection file per debit date. Every collection is
debited on the date its advance notice gave (``accounts.models.DirectDebitNotice``): a notice is emailed
for each invoice collected (the scheme asks for one before the first collection and before any change of
amount or date; a phone bill changes every month), at least ``bacs.ADVANCE_NOTICE_WORKING_DAYS`` working
days ahead. A notice sent too late for the run's promised date gives a later date, and its collection goes
in a later file: never earlier than the payer was told. A notice whose date can no longer be met (the
submission it was for was cancelled) is sent again with the new date before it is used, and so is one sent
before its collection came back "presentation overdue" (ARUDD 9).

Besides the run's invoices a submission collects the partner's earlier invoices still owed whose mandate is
active now (``billing.bacs_collections``); a mandate held for a payer's dispute is left out. Re-presentation
files (ARUDD 0) are made by ``billing.services.direct_debit_representation``, which shares the recording
here (``record_mandates``, ``record_collections``, ``next_serial``).
"""

import datetime
import hashlib
import logging
from collections import defaultdict
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mass_mail
from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from accounts import mandates
from accounts.audit import audit_record
from accounts.models import Contact, DirectDebitNotice, PaymentDetails, User
from billing import bacs, bacs_collections
from billing.models import (
    BillRun,
    BillRunEvent,
    DirectDebitCollection,
    DirectDebitSubmission,
    Invoice,
    PartnerBillingProfile,
    Payment,
    PaymentAllocation,
)
from billing.services.bill_runs import (
    lock_bill_run,
    lock_bill_run_to,
    record_event,
    recording_refusals,
    refuse_if_restricted,
    refused,
)
from billing.services.errors import BillingError
from billing.services.ledger import (
    allocate_oldest_first,
    lock_customers,
    post_payment_entries,
    require,
    save_allocations,
)
from billing.services.payments import payment_reverse_unpaid
from fusion_site.models import save_with_actor
from fusion_site.money import to_money

DIRECT_DEBIT_NOTICE_DAYS = 14
DIRECT_DEBIT_EXPORTED = "direct debit file exported"
DIRECT_DEBIT_DOWNLOADED_AGAIN = "direct debit file downloaded again"
DIRECT_DEBIT_CANCELLED = "direct debit submission cancelled"
DIRECT_DEBIT_NOTICES_SENT = "direct debit advance notices sent"
NOTICE_SUBJECT = "Advance notice of your Direct Debit"

logger = logging.getLogger(__name__)


def direct_debit_promised_date(bill_run: BillRun) -> datetime.date:
    """The collection date the payers were promised. No advance notice with its own date is stored yet:
    the invoice (issued on the run's issue date) is the notice, and the payer gets the notice period
    from it, so this is the date the export has always used as the promise."""
    if bill_run.issue_date is None:
        raise BillingError("Direct Debit files are made from finalised bill runs only.")
    return bill_run.issue_date + datetime.timedelta(days=DIRECT_DEBIT_NOTICE_DAYS)


def _cleared_file_message(submission: DirectDebitSubmission) -> str:
    """Why a live submission's file cannot be handed out again, and what finance does about it."""
    when = timezone.localtime(submission.content_cleared_at)
    if submission.content_cleared_for == DirectDebitSubmission.ContentCleared.ERASURE:
        return (
            f"The file of Direct Debit submission {submission.serial} was cleared on {when:%d %B %Y} for a "
            "customer's erasure (it held their bank details), so it cannot be downloaded again; its SHA-256 "
            "and totals are kept. If it has not been sent to Bacs, cancel this submission (saying why) and "
            "make a new file, which leaves the erased customer out. If it has been sent, do not make "
            "another: it would collect twice."
        )
    return (
        f"The file of Direct Debit submission {submission.serial} was cleared on {when:%d %B %Y} by the "
        f"retention policy, after its processing day ({submission.processing_date:%d %B %Y}) was long past, "
        "so it cannot be downloaded again; its SHA-256 and totals are kept. It was processed: do not make "
        "another file of this run."
    )


@recording_refusals
@transaction.atomic
def direct_debit_export(*, bill_run: BillRun, actor: User) -> DirectDebitSubmission:
    """The run's Direct Debit submission: made and recorded the first time, the same bytes every time
    after, until that submission is cancelled (``direct_debit_submission_cancel``)."""
    # The run's row lock serialises two exports of it: the second waits, then finds the first's file.
    bill_run = lock_bill_run_to("direct_debit", bill_run, actor)
    # A restriction holds exports to third parties, the file already made included.
    refuse_if_restricted(bill_run, actor, "direct_debit", "direct debit export")
    live = DirectDebitSubmission.objects.filter(bill_run=bill_run, cancelled_at__isnull=True).first()
    if live is not None:
        if live.is_content_cleared:
            raise refused(
                BillingError(_cleared_file_message(live)),
                bill_run,
                actor,
                "direct debit export",
                f"Serial {live.serial}: file text cleared ({live.content_cleared_for})",
            )
        if hashlib.sha256(live.file_bytes).hexdigest() != live.sha256:
            raise BillingError(
                f"The stored file of submission {live.serial} does not match its SHA-256; "
                "it is not handed out. Tell the system administrator."
            )
        BillRunEvent.objects.create(
            bill_run=bill_run,
            actor=actor,
            action=DIRECT_DEBIT_DOWNLOADED_AGAIN,
            detail=f"serial {live.serial}",
        )
        audit_record(
            actor=actor,
            action="export.direct_debit_file",
            target=live,
            detail={"serial": live.serial, "sha256": live.sha256, "again": True},
        )
        return live
    if bill_run.status != BillRun.Status.FINALISED or bill_run.issue_date is None:
        raise BillingError("Direct Debit files are made from finalised bill runs only.")
    made_at = timezone.now()
    today = timezone.localdate(made_at)
    promised = direct_debit_promised_date(bill_run)
    # Mandates whose lodgement period is over are collected from today.
    mandates.mandates_activate_due(today=today, actor=actor)
    # The partner's profile lock serialises serials: two runs of one partner never share one.
    PartnerBillingProfile.objects.select_for_update().filter(partner_id=bill_run.partner_id).first()
    serial = next_serial(bill_run.partner_id)
    try:
        choice = bacs_collections.choose(bill_run)
    except ValueError as exc:
        raise BillingError(str(exc)) from exc
    notices = _notices_for(
        choice.debits, actor=actor, made_at=made_at, promised=promised, collector=choice.originator.name
    )
    by_day: dict[datetime.date, list[bacs_collections.Debit]] = defaultdict(list)
    skipped = list(choice.skipped)
    for debit in choice.debits:
        notice = notices.get(debit.invoice.number)
        if notice is None:
            skipped.append((debit.invoice.customer_reference, bacs.SKIP_NO_NOTICE_ADDRESS))
            continue
        by_day[bacs.processing_day(made_at=made_at, promised=notice.collection_date)].append(debit)
    # Instructions are processed as early as the cycle allows.
    first_day = bacs.processing_day(made_at=made_at, promised=today)
    batches = []
    if choice.lodgements:
        batches.append(
            bacs.Batch(first_day, instructions=[(item.instruction, item.payer) for item in choice.lodgements])
        )
    batches += [
        bacs.Batch(day, debits=[(debit.collection, debit.payer) for debit in by_day[day]])
        for day in sorted(by_day)
    ]
    if not batches:
        raise BillingError(
            "No customer of this run has a Direct Debit to collect or a mandate to lodge or cancel; "
            "there is no file to send."
        )
    try:
        result = bacs.standard18_submission(
            batches=batches,
            originator=choice.originator,
            creation_date=made_at.astimezone(bacs.BACS_TIME_ZONE).date(),
            serial=serial,
            period_start=bill_run.period_start,
            skipped=skipped,
        )
    except ValueError as exc:
        raise BillingError(str(exc)) from exc
    # The submission's processing day is its last file's: the retention clock starts from it.
    processing_date = max(result.processing_dates)
    submission = save_with_actor(
        DirectDebitSubmission(
            bill_run=bill_run,
            partner_id=bill_run.partner_id,
            serial=serial,
            processing_date=processing_date,
            promised_date=max(
                [promised, *(notices[d.invoice.number].collection_date for d in _collected(by_day))]
            ),
            file_name=f"direct-debit-{bill_run.partner.code}-{bill_run.period_start:%Y-%m}-{serial}.txt",
            content=result.content,
            sha256=hashlib.sha256(result.content.encode("ascii")).hexdigest(),
            collections=len(result.collections),
            total_pence=result.total_pence,
            created_by=actor,
        ),
        actor=actor,
    )
    record_mandates(submission, choice, by_day, notices, actor=actor, made_at=made_at, lodged_on=first_day)
    record_collections(submission, by_day, actor=actor)
    record_event(
        bill_run,
        actor,
        DIRECT_DEBIT_EXPORTED,
        f"serial {serial}: {len(result.collections)} collections, processing day "
        f"{processing_date:%Y-%m-%d}, {len(result.instructions)} AUDDIS instructions, {len(skipped)} skipped",
    )
    audit_record(
        actor=actor,
        action="export.direct_debit_file",
        target=submission,
        detail={
            "serial": serial,
            "sha256": submission.sha256,
            "collections": len(result.collections),
            "instructions": len(result.instructions),
            "skipped": len(skipped),
        },
    )
    return submission


def next_serial(partner_id: int) -> str:
    """The partner's next submission serial (VOL1, HDR1): one more than its submissions so far, a bill
    run's counted by their export events, re-presentation files by their rows. The caller holds the
    partner's billing profile row locked, so two submissions never share one."""
    exported = BillRunEvent.objects.filter(
        bill_run__partner_id=partner_id, action=DIRECT_DEBIT_EXPORTED
    ).count()
    representations = DirectDebitSubmission.objects.filter(
        partner_id=partner_id, bill_run__isnull=True
    ).count()
    return f"{exported + representations + 1:06d}"


def _collected(by_day: dict[datetime.date, list[bacs_collections.Debit]]) -> list[bacs_collections.Debit]:
    return [debit for day in sorted(by_day) for debit in by_day[day]]


def record_mandates(
    submission: DirectDebitSubmission,
    choice: bacs_collections.Choice,
    by_day: dict[datetime.date, list[bacs_collections.Debit]],
    notices: dict[str, DirectDebitNotice],
    *,
    actor: User,
    made_at: datetime.datetime,
    lodged_on: datetime.date,
) -> None:
    """What the submission did to each mandate: lodged (0N), cancellation sent (0C), collected from."""
    for lodgement in choice.lodgements:
        if lodgement.superseded:
            mandates.mandate_superseded_cancellation_sent(
                mandate=lodgement.mandate, actor=actor, submission_id=submission.pk
            )
        elif lodgement.instruction.transaction_code == bacs.TRANSACTION_NEW_INSTRUCTION:
            mandates.mandate_lodge(
                mandate=lodgement.mandate,
                actor=actor,
                submission_id=submission.pk,
                lodged_at=made_at,
                processing_date=lodged_on,
            )
        else:
            mandates.mandate_cancellation_sent(
                mandate=lodgement.mandate, actor=actor, submission_id=submission.pk
            )
    # Set-based: a run collects from thousands of mandates. Their rows are locked, the notices say which
    # submission collected them (and the date to put back if it is cancelled), history rows in bulk. A
    # mandate may be collected from more than once (earlier invoices): every notice is marked, and the
    # mandate's last collection is the latest of them.
    entries: dict[int, list[tuple[bacs_collections.Debit, datetime.date]]] = defaultdict(list)
    for day in sorted(by_day):
        for debit in by_day[day]:
            entries[debit.mandate.pk].append((debit, bacs.entry_day(day)))
    collected = list(PaymentDetails.objects.select_for_update().filter(pk__in=list(entries)).order_by("pk"))
    changed_notices = []
    for mandate in collected:
        for debit, _entry in entries[mandate.pk]:
            notice = notices[debit.invoice.number]
            notice.submission_id = submission.pk
            notice.previous_last_collected_on = mandate.last_collected_on
            changed_notices.append(notice)
        mandate.last_collected_on = max(entry for _debit, entry in entries[mandate.pk])
        mandate.updated_at = made_at
    DirectDebitNotice.objects.bulk_update(
        changed_notices, ["submission_id", "previous_last_collected_on"], batch_size=1000
    )
    bulk_update_with_history(
        collected,
        PaymentDetails,
        ["last_collected_on", "updated_at"],
        batch_size=1000,
        default_user=actor,
        default_change_reason=f"Collected in Direct Debit submission {submission.serial}",
    )


def _customer_id(debit: bacs_collections.Debit) -> int:
    # bacs_collections skips an erased customer's invoice (no customer), so a debit always has one.
    assert debit.invoice.customer_id is not None
    return debit.invoice.customer_id


def record_collections(
    submission: DirectDebitSubmission,
    by_day: dict[datetime.date, list[bacs_collections.Debit]],
    *,
    actor: User,
) -> list[DirectDebitCollection]:
    """Put each collection on the ledger, in the submission's transaction: a Direct Debit payment of the
    amount collected, received on the debit (entry) day, settling the invoice it collects (any excess, when
    account credit already settled part of it, settles the customer's other invoices or stays as credit).

    Recorded when the file is made, not on the debit day: Bacs confirms no paid Direct Debit, a collection
    is good unless an ARUDD returns it (``billing.services.bacs_reports``) or the submission is cancelled
    (``_undo_collections``), and this way the record of what was collected and the file can never disagree.
    Set-based (a run collects thousands): a few queries whatever the size. The unique constraint
    ``ddcollection_invoice_collected_once`` refuses a second live collection of one invoice."""
    debits = [(day, debit) for day in sorted(by_day) for debit in by_day[day]]
    if not debits:
        return []
    invoice_ids = [debit.invoice.pk for _day, debit in debits]
    live = DirectDebitCollection.objects.exclude(outcome=DirectDebitCollection.Outcome.CANCELLED)
    firsts = [debit.invoice.pk for _day, debit in debits if debit.follows_id is None]
    follows = [debit.follows_id for _day, debit in debits if debit.follows_id is not None]
    already = set(
        live.filter(invoice_id__in=firsts, represents__isnull=True).values_list("invoice__number", flat=True)
    ) | set(live.filter(represents_id__in=follows).values_list("invoice__number", flat=True))
    if already:
        raise BillingError(
            f"Invoice {sorted(already)[0]} is already collected by a live Direct Debit submission; "
            "it is not collected twice."
        )
    customer_ids = {debit.invoice.customer_id for _day, debit in debits if debit.invoice.customer_id}
    lock_customers(customer_ids)
    outstanding = dict(Invoice.objects.filter(pk__in=invoice_ids).values_list("pk", "amount_outstanding"))
    payments = [
        Payment(
            customer_id=_customer_id(debit),
            method=Payment.Method.DIRECT_DEBIT,
            amount=to_money(Decimal(debit.collection.amount_pence) / 100),
            received_on=bacs.entry_day(day),
            reference=f"{debit.collection.mandate_reference}/{debit.invoice.number}"[:60],
            recorded_by=actor,
        )
        for day, debit in debits
    ]
    payments = bulk_create_with_history(
        payments,
        Payment,
        batch_size=1000,
        default_user=actor,
        default_change_reason=f"Collected in Direct Debit submission {submission.serial}",
    )
    # PostgreSQL and SQLite (3.35+) give back the ids of rows inserted in bulk; the rows below need them.
    if any(payment.pk is None for payment in payments):
        raise BillingError("The database gave back no ids for the payments recorded; nothing was recorded.")
    post_payment_entries(payment_ids=[payment.pk for payment in payments], actor=actor)
    allocations = []
    for payment, (_day, debit) in zip(payments, debits, strict=True):
        settles = min(payment.amount, to_money(Decimal(outstanding.get(debit.invoice.pk) or 0)))
        if settles > 0:
            allocations.append(
                PaymentAllocation(
                    payment=payment,
                    invoice_id=debit.invoice.pk,
                    amount=settles,
                    actor=actor,
                    reason=f"Direct Debit submission {submission.serial}",
                )
            )
    save_allocations(allocations)
    # What an invoice already settled by credit leaves over settles the customer's other invoices.
    allocate_oldest_first(customer_ids=sorted(customer_ids), actor=actor, reason="Oldest invoice first")
    collections = bulk_create_with_history(
        [
            DirectDebitCollection(
                submission=submission,
                invoice_id=debit.invoice.pk,
                customer_id=_customer_id(debit),
                mandate_id=debit.mandate.pk,
                payment=payment,
                amount_pence=debit.collection.amount_pence,
                processing_date=day,
                debit_date=payment.received_on,
                transaction_code=debit.collection.transaction_code,
                represents_id=debit.follows_id,
            )
            for payment, (day, debit) in zip(payments, debits, strict=True)
        ],
        DirectDebitCollection,
        batch_size=1000,
        default_user=actor,
        default_change_reason=f"Collected in Direct Debit submission {submission.serial}",
    )
    audit_record(
        actor=actor,
        action="ledger.direct_debit_collections",
        target=submission,
        detail={"serial": submission.serial, "payments": len(payments)},
    )
    return collections


def notice_addresses(customer_ids: set[int]) -> dict[int, str]:
    """Where each customer's advance notice goes: the billing contact, else the primary one (one query)."""
    contacts = Contact.objects.filter(
        customer_id__in=customer_ids, role__in=[Contact.ContactRole.BILLING, Contact.ContactRole.PRIMARY]
    ).order_by("customer_id", "pk")
    addresses: dict[int, str] = {}
    for contact in sorted(
        contacts, key=lambda c: (c.customer_id, c.role != Contact.ContactRole.BILLING, c.pk)
    ):
        if contact.email:
            addresses.setdefault(contact.customer_id, contact.email)
    return addresses


def _notices_for(
    debits: list[bacs_collections.Debit],
    *,
    actor: User,
    made_at: datetime.datetime,
    promised: datetime.date,
    collector: str,
) -> dict[str, DirectDebitNotice]:
    """The advance notice of each debit's invoice, sending (on commit) those not sent yet and sending again
    those whose date a file made at ``made_at`` can no longer meet. A debit whose customer has no address
    to tell has none, and is not collected."""
    today = timezone.localdate(made_at)
    earliest = bacs.earliest_entry_day(made_at)
    existing = {
        (notice.mandate_id, notice.invoice_number): notice
        for notice in DirectDebitNotice.objects.filter(
            mandate_id__in=[debit.mandate.pk for debit in debits],
            invoice_number__in=[debit.invoice.number for debit in debits],
        )
    }
    notices: dict[str, DirectDebitNotice] = {}
    messages = []
    to_send = []
    for debit in debits:
        notice = existing.get((debit.mandate.pk, debit.invoice.number))
        amount = debit.collection.amount_pence
        # A notice sent before the collection it announced came back "presentation overdue" (ARUDD 9) is
        # spent: "must give further advance notice to the payer before Direct Debit is collected".
        spent = debit.notice_sent_after is not None and (
            notice is None or notice.sent_at <= debit.notice_sent_after
        )
        if (
            notice is not None
            and not spent
            and notice.amount_pence == amount
            and notice.collection_date >= earliest
        ):
            notices[debit.invoice.number] = notice
        else:
            to_send.append((debit, notice))
    addresses = notice_addresses({debit.mandate.customer_id for debit, _notice in to_send})
    # One date for every notice sent now: the run's promise, or later if the notice period needs it.
    date = bacs.notified_debit_date(sent_on=today, promised=promised, made_at=made_at)
    created: list[DirectDebitNotice] = []
    resent: list[DirectDebitNotice] = []
    for debit, notice in to_send:
        amount = debit.collection.amount_pence
        address = addresses.get(debit.mandate.customer_id)
        if address is None:
            continue
        if notice is None:
            notice = DirectDebitNotice(mandate_id=debit.mandate.pk, invoice_number=debit.invoice.number)
            created.append(notice)
        else:
            resent.append(notice)
        notice.amount_pence, notice.collection_date, notice.sent_at = amount, date, made_at
        notices[debit.invoice.number] = notice
        messages.append(_notice_message(debit, notice, address, collector))
    DirectDebitNotice.objects.bulk_create(created, batch_size=1000)
    DirectDebitNotice.objects.bulk_update(
        resent, ["amount_pence", "collection_date", "sent_at"], batch_size=1000
    )
    if messages:
        audit_record(
            actor=actor, action="direct_debit.advance_notices_sent", detail={"notices": len(messages)}
        )
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=False))
    return notices


def _notice_message(
    debit: bacs_collections.Debit, notice: DirectDebitNotice, address: str, collector: str
) -> tuple[str, str, str | None, list[str]]:
    """The notice the scheme asks for: amount, debit date, the mandate's reference, who collects, and the
    notice period."""
    pounds, pence = divmod(notice.amount_pence, 100)
    body = (
        "Advance notice of your Direct Debit\n\n"
        f"We will collect \u00a3{pounds:,}.{pence:02d} for invoice "
        f"{debit.invoice.number} by Direct Debit on {notice.collection_date:%A %d %B %Y}.\n"
        f"Direct Debit reference: {debit.collection.mandate_reference}\n"
        f"On your bank statement: {collector}\n\n"
        f"This notice is given at least {bacs.ADVANCE_NOTICE_WORKING_DAYS} working days before the "
        "collection, as the Direct Debit Guarantee promises. If anything is wrong, tell us before then.\n"
    )
    return (NOTICE_SUBJECT, body, settings.DEFAULT_FROM_EMAIL, [address])


def direct_debit_notices_send(*, bill_run: BillRun, actor: User) -> int:
    """Send the advance notices of a finalised run's collections now (the daily job does, the day after
    finalisation), so the export finds them sent and collects on the run's promised date. Returns how
    many were sent; a second call sends none."""
    with transaction.atomic():
        bill_run = lock_bill_run(bill_run)
        if (
            bill_run.status != BillRun.Status.FINALISED
            or bill_run.issue_date is None
            or bill_run.is_restricted
        ):
            return 0
        if DirectDebitSubmission.objects.filter(bill_run=bill_run, cancelled_at__isnull=True).exists():
            return 0
        try:
            choice = bacs_collections.choose(bill_run)
        except ValueError:
            return 0
        made_at = timezone.now()
        notices = _notices_for(
            choice.debits,
            actor=actor,
            made_at=made_at,
            promised=direct_debit_promised_date(bill_run),
            collector=choice.originator.name,
        )
        sent = sum(1 for notice in notices.values() if notice.sent_at == made_at)
        if sent:
            record_event(
                bill_run,
                actor,
                DIRECT_DEBIT_NOTICES_SENT,
                f"{sent} advance notices",
            )
        return sent


@recording_refusals
@transaction.atomic
def direct_debit_submission_cancel(
    *, submission: DirectDebitSubmission, actor: User, reason: str
) -> DirectDebitSubmission:
    """Record that a submission's file will not be (or was not) processed, so the run may be exported
    again (a re-presentation file's collections are due again). The finance manager says why; the file
    itself is kept."""
    bill_run = None
    if submission.bill_run is not None:
        bill_run = lock_bill_run_to("direct_debit_cancel", submission.bill_run, actor)
    else:
        require(actor, "billing.finalise_billrun", "cancel Direct Debit files")
        if actor.partner_id is not None and actor.partner_id != submission.partner_id:
            raise PermissionDenied("You may cancel your own partner's Direct Debit files only.")
    submission = DirectDebitSubmission.objects.select_for_update().get(pk=submission.pk)
    if submission.is_cancelled:
        raise BillingError(f"Submission {submission.serial} is already cancelled.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the submission is cancelled."})
    submission.cancelled_at = timezone.now()
    submission.cancelled_by = actor
    submission.cancelled_reason = reason.strip()
    save_with_actor(submission, actor=actor, reason=f"Cancelled: {submission.cancelled_reason}")
    kept = _undo_mandates(submission, actor=actor)
    if bill_run is not None:
        record_event(
            bill_run,
            actor,
            DIRECT_DEBIT_CANCELLED,
            f"serial {submission.serial}: {submission.cancelled_reason}"
            + (f" ({kept} mandates collected from since stay active)" if kept else ""),
        )
    audit_record(
        actor=actor,
        action="direct_debit_submission.cancelled",
        target=submission,
        detail={"serial": submission.serial, "sha256": submission.sha256},
    )
    return submission


def _undo_mandates(submission: DirectDebitSubmission, *, actor: User) -> int:
    """A cancelled submission was not processed: the mandates it lodged are new again (their 0N goes in the
    next one), the 0Cs it carried are owed again, and the collections it made are not collections. Returns
    how many mandates it lodged were collected from since (through another submission) and stay active."""
    kept = 0
    for mandate in PaymentDetails.objects.filter(lodgement_submission_id=submission.pk).order_by("pk"):
        if mandate.status in (PaymentDetails.Status.LODGED, PaymentDetails.Status.ACTIVE):
            try:
                mandates.mandate_lodgement_withdraw(mandate=mandate, actor=actor, submission_id=submission.pk)
            except ValidationError:
                kept += 1
    for mandate in PaymentDetails.objects.filter(cancellation_submission_id=submission.pk).order_by("pk"):
        mandates.mandate_cancellation_sent(mandate=mandate, actor=actor, submission_id=None)
    for mandate in PaymentDetails.objects.filter(
        superseded_cancellation_submission_id=submission.pk
    ).order_by("pk"):
        mandates.mandate_superseded_cancellation_sent(mandate=mandate, actor=actor, submission_id=None)
    for notice in DirectDebitNotice.objects.filter(submission_id=submission.pk).select_related("mandate"):
        mandates.mandate_collected(
            mandate=notice.mandate,
            actor=actor,
            collected_on=notice.previous_last_collected_on,
            reason=f"Submission {submission.serial} cancelled: {notice.invoice_number} not collected",
        )
        notice.submission_id = None
        notice.previous_last_collected_on = None
        notice.save(update_fields=["submission_id", "previous_last_collected_on"])
    _undo_collections(submission, actor=actor)
    return kept


def _undo_collections(submission: DirectDebitSubmission, *, actor: User) -> int:
    """The collections of a cancelled submission never happened: each payment is reversed (its invoice is
    open again) and the collection is marked cancelled, so the run may collect the invoice again."""
    rows = list(
        DirectDebitCollection.objects.filter(
            submission=submission, outcome=DirectDebitCollection.Outcome.COLLECTED
        ).select_related("payment")
    )
    for row in rows:
        payment_reverse_unpaid(
            payment=row.payment,
            reason_code=f"Direct Debit submission {submission.serial} cancelled",
            actor=actor,
            returned_on=row.debit_date,
        )
        row.outcome = DirectDebitCollection.Outcome.CANCELLED
        save_with_actor(row, actor=actor, reason=f"Submission {submission.serial} cancelled")
    return len(rows)
