"""Re-presenting Direct Debits returned "refer to payer" (ARUDD 0), in a submission of their own.

The scheme's special instruction for ARUDD 0 (Bacs ARUDD reason tables, as cited in
``billing.bacs_reports.ARUDD_RULES``): "Service user may represent up to one month from original processing
day - it is recommended that the payer is notified of this 5 working days in advance of the
representation"; the re-presentation is for the same amount with transaction code 18. The import records
each such return with ``representation_due_by``, the last processing day (``representation_deadline``).

- ``representations_due(partner_id=...)``: the partner's collections returned with the action "represent"
  and not re-presented yet (no live collection ``represents`` them).
- ``direct_debit_representation_export``: one re-presentation file of them, made by a finance manager from
  the Bacs reports page. Each is re-presented once, for the same amount, with transaction code 18, as a new
  ``DirectDebitCollection`` (``represents`` set) and a new Direct Debit payment posted to the ledger (the
  path a bill run's collections take, ``services.direct_debit.record_collections``). The payer is emailed
  an advance notice when the file is made, and debited no earlier than
  ``REPRESENTATION_NOTICE_WORKING_DAYS`` working days after; the file is processed no later than the
  deadline. Only while the invoice is still owed in full (a re-presentation is of the same amount), the
  mandate is active, not held and still the instruction collected under, and the customer is neither
  restricted nor objecting; otherwise the item is skipped with the reason and stays due.
- ``representations_lapse``: a return whose deadline a file made now could no longer meet is left to
  dunning: its action becomes "recover outside Direct Debit" (history and an audit event); the invoice is
  open again (the return reversed its payment), so the dunning steps take it up. One whose invoice was
  settled another way is recorded as not needed. Run by the file and by a daily task.

Why a file of its own and not the partner's next bill-run file: a run's file is made once a month, and one
month from the original processing day is the scheme's limit, so the next run would usually be too late.
"""

import datetime
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.core.mail import send_mass_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import DirectDebitNotice, Partner, PaymentDetails, User
from billing import bacs, bacs_collections
from billing.bacs_reports import Action
from billing.models import DirectDebitCollection, DirectDebitSubmission, Invoice, PartnerBillingProfile
from billing.services.direct_debit import next_serial, notice_addresses, record_collections, record_mandates
from billing.services.errors import BillingError
from billing.services.ledger import invoice_outstanding_expression, require
from fusion_site.models import save_with_actor
from fusion_site.money import to_money
from fusion_site.working_days import next_working_day, working_days_after

# "it is recommended that the payer is notified of this 5 working days in advance of the representation"
REPRESENTATION_NOTICE_WORKING_DAYS = 5
# What became of a return that was not re-presented (DirectDebitCollection.action).
LEFT_TO_DUNNING = Action.RECOVER_OUTSIDE_DIRECT_DEBIT.value
SETTLED_OTHERWISE = "settled_otherwise"
NOTICE_SUBJECT = "Advance notice: your Direct Debit will be collected again"

SKIP_PART_PAID = "part of the amount was paid another way; a re-presentation is of the same amount"
SKIP_INSTRUCTION_CHANGED = "the mandate was lodged again since; the return is not re-presented under it"


@dataclass
class RepresentationChoice:
    originator: bacs.Originator
    debit_date: datetime.date
    processing_date: datetime.date
    debits: list[bacs_collections.Debit] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def representation_debit_date(made_at: datetime.datetime) -> datetime.date:
    """The debit date a re-presentation announced at ``made_at`` gets: the notice period's end, or the first
    day a file made then can debit, whichever is later; a working day."""
    notified = working_days_after(timezone.localdate(made_at), REPRESENTATION_NOTICE_WORKING_DAYS)
    return next_working_day(max(notified, bacs.earliest_entry_day(made_at)))


def representation_processing_date(made_at: datetime.datetime) -> datetime.date:
    """The processing day (UHL1) of a re-presentation file made at ``made_at``."""
    return bacs.processing_day(made_at=made_at, promised=representation_debit_date(made_at))


def representations_due(*, partner_id: int) -> QuerySet[DirectDebitCollection]:
    """The partner's returns "refer to payer" not yet re-presented nor lapsed, oldest deadline first, with
    their invoice's outstanding amount (one query; the customer and mandate joined)."""
    live_representation = DirectDebitCollection.objects.filter(represents=OuterRef("pk")).exclude(
        outcome=DirectDebitCollection.Outcome.CANCELLED
    )
    outstanding = (
        Invoice.objects.filter(pk=OuterRef("invoice_id"))
        .annotate(outstanding=invoice_outstanding_expression())
        .values("outstanding")[:1]
    )
    return (
        DirectDebitCollection.objects.filter(
            submission__partner_id=partner_id,
            outcome=DirectDebitCollection.Outcome.RETURNED,
            action=Action.REPRESENT.value,
            representation_due_by__isnull=False,
        )
        .exclude(Exists(live_representation))
        .annotate(outstanding=Subquery(outstanding))
        .select_related("invoice", "payment", "customer__payment_details")
        .order_by("representation_due_by", "pk")
    )


def _owed(row: DirectDebitCollection) -> Decimal:
    return to_money(Decimal(row.outstanding or 0))  # type: ignore[attr-defined]


def _mandate(row: DirectDebitCollection) -> PaymentDetails | None:
    try:
        return row.customer.payment_details
    except ObjectDoesNotExist:
        return None


def _representation(row: DirectDebitCollection) -> bacs_collections.Debit | str:
    """The re-presentation of a return, or why there is none now."""
    customer, invoice = row.customer, row.invoice
    if bacs.to_pence(_owed(row)) < row.amount_pence:
        return SKIP_PART_PAID
    if customer.is_processing_restricted:
        return bacs.SKIP_RESTRICTED
    if customer.is_billing_ceased:
        return bacs.SKIP_BILLING_CEASED
    mandate = _mandate(row)
    if mandate is None or mandate.pk != row.mandate_id:
        return bacs.SKIP_NO_MANDATE
    if mandate.status != PaymentDetails.Status.ACTIVE:
        return bacs.SKIP_MANDATE[mandate.status]
    if mandate.is_held:
        return bacs.SKIP_HELD + mandate.collection_held_reason
    if mandate.lodged_at is not None and timezone.localdate(mandate.lodged_at) > row.processing_date:
        return SKIP_INSTRUCTION_CHANGED
    payer = bacs.Payer(
        sort_code=mandate.sort_code,
        account_number=mandate.account_number,
        account_holder=mandate.account_holder,
    )
    reference = mandate.mandate_reference.strip().upper()
    problem = bacs.payer_problem(payer, reference)
    if problem is not None:
        return problem
    collection = bacs.Collection(
        customer_reference=invoice.customer_reference,
        amount_pence=row.amount_pence,
        mandate_reference=reference,
        invoice_number=invoice.number,
        transaction_code=bacs.TRANSACTION_REPRESENTATION,
    )
    return bacs_collections.Debit(
        collection=collection, payer=payer, invoice=invoice, mandate=mandate, follows_id=row.pk
    )


@transaction.atomic
def representations_lapse(*, made_at: datetime.datetime, actor: User, partner_id: int | None = None) -> int:
    """Record the returns that will not be re-presented: settled another way, or past the last day a file
    made at ``made_at`` could meet (left to dunning). Returns how many; a second call finds none."""
    processing = representation_processing_date(made_at)
    rows = DirectDebitCollection.objects.filter(
        outcome=DirectDebitCollection.Outcome.RETURNED,
        action=Action.REPRESENT.value,
        representation_due_by__isnull=False,
    )
    partners = (
        [partner_id]
        if partner_id is not None
        else sorted(set(rows.values_list("submission__partner_id", flat=True)))
    )
    done = 0
    for pk in partners:
        for row in representations_due(partner_id=pk).select_for_update(of=("self",)):
            if _owed(row) <= 0:
                action, why = SETTLED_OTHERWISE, "Not re-presented: the invoice was settled another way"
            elif processing > row.representation_due_by:  # type: ignore[operator]
                action = LEFT_TO_DUNNING
                why = f"Not re-presented by {row.representation_due_by:%d %B %Y}: left to dunning"
            else:
                continue
            row.action = action
            save_with_actor(row, actor=actor, reason=why)
            audit_record(
                actor=actor,
                action="direct_debit.representation_lapsed",
                target=row,
                detail={"invoice": row.invoice_id, "action": action},
            )
            done += 1
    return done


def representation_choose(*, partner: Partner, made_at: datetime.datetime) -> RepresentationChoice:
    """What a re-presentation file made at ``made_at`` collects and what it leaves out, and why. Reads only
    (the caller records the lapsed first). Raises ValueError when the partner's Bacs originator details are
    missing or malformed."""
    choice = RepresentationChoice(
        originator=bacs_collections.partner_originator(partner),
        debit_date=representation_debit_date(made_at),
        processing_date=representation_processing_date(made_at),
    )
    for row in representations_due(partner_id=partner.pk):
        if _owed(row) <= 0 or choice.processing_date > row.representation_due_by:  # type: ignore[operator]
            continue  # recorded by representations_lapse
        outcome = _representation(row)
        if isinstance(outcome, str):
            choice.skipped.append((row.invoice.customer_reference, f"{row.invoice.number}: {outcome}"))
        else:
            choice.debits.append(outcome)
    return choice


def _send_notices(
    debits: list[bacs_collections.Debit],
    *,
    actor: User,
    made_at: datetime.datetime,
    debit_date: datetime.date,
    collector: str,
) -> tuple[dict[str, DirectDebitNotice], list[bacs_collections.Debit]]:
    """The advance notice of each re-presentation (the invoice's notice, sent again with the new date, on
    commit), and the debits whose customer has no address to tell (not re-presented)."""
    existing = {
        (notice.mandate_id, notice.invoice_number): notice
        for notice in DirectDebitNotice.objects.filter(
            mandate_id__in=[debit.mandate.pk for debit in debits],
            invoice_number__in=[debit.invoice.number for debit in debits],
        )
    }
    addresses = notice_addresses({debit.mandate.customer_id for debit in debits})
    notices: dict[str, DirectDebitNotice] = {}
    untold: list[bacs_collections.Debit] = []
    created, resent, messages = [], [], []
    for debit in debits:
        address = addresses.get(debit.mandate.customer_id)
        if address is None:
            untold.append(debit)
            continue
        notice = existing.get((debit.mandate.pk, debit.invoice.number))
        if notice is None:
            notice = DirectDebitNotice(mandate_id=debit.mandate.pk, invoice_number=debit.invoice.number)
            created.append(notice)
        else:
            resent.append(notice)
        notice.amount_pence, notice.collection_date, notice.sent_at = (
            debit.collection.amount_pence,
            debit_date,
            made_at,
        )
        notices[debit.invoice.number] = notice
        messages.append(_notice_message(debit, notice, address, collector))
    DirectDebitNotice.objects.bulk_create(created, batch_size=1000)
    DirectDebitNotice.objects.bulk_update(
        resent, ["amount_pence", "collection_date", "sent_at"], batch_size=1000
    )
    if messages:
        audit_record(
            actor=actor,
            action="direct_debit.representation_notices_sent",
            detail={"notices": len(messages)},
        )
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=False))
    return notices, untold


def _notice_message(
    debit: bacs_collections.Debit, notice: DirectDebitNotice, address: str, collector: str
) -> tuple[str, str, str | None, list[str]]:
    pounds, pence = divmod(notice.amount_pence, 100)
    body = (
        "Advance notice: your Direct Debit will be collected again\n\n"
        f"Your bank returned our Direct Debit of \u00a3{pounds:,}.{pence:02d} for invoice "
        f"{debit.invoice.number} unpaid. We will collect it again on {notice.collection_date:%A %d %B %Y}.\n"
        f"Direct Debit reference: {debit.collection.mandate_reference}\n"
        f"On your bank statement: {collector}\n\n"
        f"This notice is given at least {REPRESENTATION_NOTICE_WORKING_DAYS} working days before the "
        "collection. If you would rather pay another way, or anything is wrong, tell us before then.\n"
    )
    return (NOTICE_SUBJECT, body, settings.DEFAULT_FROM_EMAIL, [address])


def _partner_for(actor: User, partner: Partner) -> None:
    require(actor, "billing.finalise_billrun", "make Direct Debit files")
    if actor.partner_id is not None and actor.partner_id != partner.pk:
        raise PermissionDenied("You may make your own partner's Direct Debit files only.")


def direct_debit_representation_export(*, partner: Partner, actor: User) -> DirectDebitSubmission:
    """Make the partner's re-presentation file of the returns "refer to payer" due now (see the module),
    after recording those that lapsed (kept even when there is then nothing to send). Raises BillingError
    when there is nothing to re-present."""
    _partner_for(actor, partner)
    made_at = timezone.now()
    representations_lapse(made_at=made_at, actor=actor, partner_id=partner.pk)
    return _export(partner=partner, actor=actor, made_at=made_at)


@transaction.atomic
def _export(*, partner: Partner, actor: User, made_at: datetime.datetime) -> DirectDebitSubmission:
    # The partner's profile lock serialises its submissions (serials, and two files re-presenting one
    # return: the second finds the first's collections live).
    PartnerBillingProfile.objects.select_for_update().filter(partner_id=partner.pk).first()
    try:
        choice = representation_choose(partner=partner, made_at=made_at)
    except ValueError as exc:
        raise BillingError(str(exc)) from exc
    notices, untold = _send_notices(
        choice.debits,
        actor=actor,
        made_at=made_at,
        debit_date=choice.debit_date,
        collector=choice.originator.name,
    )
    skipped = choice.skipped + [
        (debit.invoice.customer_reference, f"{debit.invoice.number}: {bacs.SKIP_NO_NOTICE_ADDRESS}")
        for debit in untold
    ]
    debits = [debit for debit in choice.debits if debit.invoice.number in notices]
    if not debits:
        raise BillingError(
            "No Direct Debit returned \u201crefer to payer\u201d can be re-presented now"
            + (
                f" ({len(skipped)} left out: " + "; ".join(reason for _ref, reason in skipped) + ")"
                if skipped
                else ""
            )
            + "; there is no file to send."
        )
    serial = next_serial(partner.pk)
    today = timezone.localdate(made_at)
    try:
        result = bacs.standard18_submission(
            batches=[
                bacs.Batch(
                    choice.processing_date, debits=[(debit.collection, debit.payer) for debit in debits]
                )
            ],
            originator=choice.originator,
            creation_date=made_at.astimezone(bacs.BACS_TIME_ZONE).date(),
            serial=serial,
            period_start=today.replace(day=1),
            skipped=skipped,
        )
    except ValueError as exc:
        raise BillingError(str(exc)) from exc
    submission = save_with_actor(
        DirectDebitSubmission(
            bill_run=None,
            partner=partner,
            serial=serial,
            processing_date=choice.processing_date,
            promised_date=choice.debit_date,
            file_name=f"direct-debit-{partner.code}-representations-{today:%Y-%m-%d}-{serial}.txt",
            content=result.content,
            sha256=hashlib.sha256(result.content.encode("ascii")).hexdigest(),
            collections=len(result.collections),
            total_pence=result.total_pence,
            created_by=actor,
        ),
        actor=actor,
    )
    by_day = {choice.processing_date: debits}
    record_mandates(
        submission,
        bacs_collections.Choice(originator=choice.originator),
        by_day,
        notices,
        actor=actor,
        made_at=made_at,
        lodged_on=choice.processing_date,
    )
    record_collections(submission, by_day, actor=actor)
    audit_record(
        actor=actor,
        action="export.direct_debit_representation_file",
        target=submission,
        detail={
            "serial": serial,
            "sha256": submission.sha256,
            "collections": len(result.collections),
            "skipped": len(skipped),
        },
    )
    return submission
