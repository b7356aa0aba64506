"""A bill run from creation through calculation (in chunks, by the worker), approval and finalisation,
or cancellation; restriction of a run; the event trail of each step, refused steps included."""

import datetime
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Partner, User
from accounts.services import system_user
from billing import calculation
from billing.models import (
    BillRun,
    BillRunChunk,
    BillRunEvent,
    BillRunException,
    CallRecord,
    Invoice,
    PartnerBillingProfile,
)
from billing.services.errors import BillingError
from billing.services.ledger import ledger_post_invoices
from fusion_site.models import save_with_actor
from fusion_site.refusals import Refusal

T = TypeVar("T")


def record_event(bill_run: BillRun, actor: User | None, action: str, detail: str = "") -> None:
    BillRunEvent.objects.create(bill_run=bill_run, actor=actor, action=action, detail=detail)
    # The chained audit trail gets the step, not the free text (reasons can name people).
    audit_record(
        actor=actor,
        action=f"bill_run.{action.replace(' ', '_')}",
        target=bill_run,
        detail={"partner": bill_run.partner_id, "period_start": bill_run.period_start},
    )


@dataclass(frozen=True)
class _Refusal:
    bill_run_id: int
    actor_id: int
    action: str
    detail: str


def refused(exc: Exception, bill_run: BillRun, actor: User, action: str, detail: str) -> Exception:
    exc.refusal = _Refusal(bill_run.pk, actor.pk, f"{action} refused", detail)  # type: ignore[attr-defined]
    return exc


def recording_refusals(step: Callable[..., T]) -> Callable[..., T]:
    """Write the event of a refused step after its transaction has rolled back, so the record stays."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> T:
        try:
            return step(*args, **kwargs)
        except (BillingError, PermissionDenied) as exc:
            refusal: _Refusal | None = getattr(exc, "refusal", None)
            if refusal is not None:
                BillRunEvent.objects.create(
                    bill_run_id=refusal.bill_run_id,
                    actor_id=refusal.actor_id,
                    action=refusal.action,
                    detail=refusal.detail,
                )
            raise

    return run


@dataclass(frozen=True)
class _Step:
    permission: str
    refused_to_others: str  # the refusal to someone without the permission
    while_restricted: str = ""  # what a restriction holds, if it holds the step


_FINANCE_ONLY = "Only a finance manager may {}."
_RESTRICTORS_ONLY = "Only the DPO or an administrator may {}."

# The steps of a run a user may be refused, by the action names of the run's page.
STEPS = {
    "calculate": _Step(
        "billing.calculate_billrun",
        "Only a billing agent may calculate a bill run.",
        "it cannot be calculated",
    ),
    "resume": _Step(
        "billing.calculate_billrun",
        "Only a billing agent may resume a bill run's calculation.",
        "it cannot be calculated",
    ),
    "cancel": _Step("billing.calculate_billrun", "Only a billing agent may cancel a bill run."),
    "approve": _Step(
        "billing.approve_billrun", _FINANCE_ONLY.format("approve a bill run"), "it cannot be approved"
    ),
    "finalise": _Step(
        "billing.finalise_billrun", _FINANCE_ONLY.format("finalise a bill run"), "it cannot be finalised"
    ),
    "direct_debit": _Step(
        "billing.finalise_billrun",
        _FINANCE_ONLY.format("make or download a bill run's Direct Debit file"),
        "its Direct Debit file cannot be handed out",
    ),
    "direct_debit_cancel": _Step(
        "billing.finalise_billrun", _FINANCE_ONLY.format("cancel a bill run's Direct Debit submission")
    ),
    "restrict": _Step("billing.restrict_billrun", _RESTRICTORS_ONLY.format("restrict a bill run")),
    "lift": _Step("billing.restrict_billrun", _RESTRICTORS_ONLY.format("lift a bill run's restriction")),
}


def bill_run_refusal(*, actor: User, bill_run: BillRun, action: str) -> Refusal | None:
    """Why ``actor`` may not take ``action`` (a key of ``STEPS``) on the run now, or None: the rule the
    services apply, so the run's page shows the reason where it would otherwise offer a button that
    fails. Whether the run's status allows the step is the page's and the service's own check."""
    step = STEPS[action]
    if not actor.has_perm(step.permission):
        return Refusal(step.refused_to_others, forbidden=True)
    if step.while_restricted and bill_run.is_restricted:
        return Refusal(
            f"This bill run is restricted ({bill_run.restricted_reason}); {step.while_restricted} "
            "until the restriction is lifted."
        )
    return None


def require_permission(actor: User, bill_run: BillRun, action: str) -> None:
    """Refuse a step of ``STEPS`` to an actor without its permission, in ``bill_run_refusal``'s words."""
    if not actor.has_perm(STEPS[action].permission):
        raise refused(
            PermissionDenied(STEPS[action].refused_to_others), bill_run, actor, action, "Missing permission"
        )


def refuse_if_restricted(bill_run: BillRun, actor: User, action: str, event: str = "") -> None:
    """Refuse a step of ``STEPS`` that a restriction of the run holds, in ``bill_run_refusal``'s words
    (the refusal recorded as ``event``, the action's name by default)."""
    refusal = bill_run_refusal(actor=actor, bill_run=bill_run, action=action)
    if refusal is not None:
        raise refused(
            BillingError(refusal.reason),
            bill_run,
            actor,
            event or action,
            f"Run is restricted: {bill_run.restricted_reason}",
        )


def lock_bill_run(bill_run: BillRun) -> BillRun:
    return BillRun.objects.select_for_update().get(pk=bill_run.pk)


def lock_bill_run_to(action: str, bill_run: BillRun, actor: User) -> BillRun:
    """The run, locked, once the actor is found to hold the permission to take the step ``action``."""
    bill_run = lock_bill_run(bill_run)
    require_permission(actor, bill_run, action)
    return bill_run


def _save_step(bill_run: BillRun, actor: User, action: str, detail: str, *, history_reason: str) -> BillRun:
    """Save the run's step with its history reason and record it as an event (and in the audit trail)."""
    save_with_actor(bill_run, actor=actor, reason=history_reason)
    record_event(bill_run, actor, action, detail)
    return bill_run


def unfinished_usage_period(period_end: datetime.date, *, today: datetime.date) -> str | None:
    """Why a run for a usage period ending on ``period_end`` may not be billed today, or None.

    A period is billable from the day after it ends (UK time): until then its calls are still being
    made and imported, so its invoices would be short, and once finalised they can only be credited."""
    if period_end < today:
        return None
    billable_from = period_end + datetime.timedelta(days=1)
    return (
        f"The usage month {period_end:%B %Y} has not ended: "
        f"bill it from {billable_from.day} {billable_from:%B %Y}."
    )


@transaction.atomic
def bill_run_create(
    *, partner: Partner, period_start: datetime.date, period_end: datetime.date, actor: User
) -> BillRun:
    unfinished = unfinished_usage_period(period_end, today=timezone.localdate())
    if unfinished:
        raise BillingError({"period_end": unfinished})
    if BillRun.objects.filter(partner=partner, status__in=BillRun.OPEN_STATUSES).exists():
        raise BillingError("The partner already has an open bill run; finalise or cancel it first.")
    bill_run = save_with_actor(
        BillRun(partner=partner, period_start=period_start, period_end=period_end, created_by=actor),
        actor=actor,
    )
    record_event(bill_run, actor, "created", f"{period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}")
    return bill_run


def _pre_billing_checks(bill_run: BillRun) -> None:
    """Every exception a reviewer must see, found in one pass before calculation."""
    BillRunException.objects.filter(bill_run=bill_run).delete()
    profile = PartnerBillingProfile.objects.get(partner_id=bill_run.partner_id)
    exceptions = []
    if profile.default_tariff_id is None:
        no_tariff = calculation.customers_in_scope(bill_run).filter(tariff_assignment__isnull=True)
        exceptions += [
            BillRunException(
                bill_run=bill_run,
                customer=customer,
                kind=BillRunException.Kind.NO_TARIFF,
                detail="Neither the customer nor the partner has a tariff",
            )
            for customer in no_tariff
        ]
    in_period = CallRecord.objects.filter(
        partner_id=bill_run.partner_id,
        status=CallRecord.Status.SUSPENSE,
        started_on__gte=calculation.earliest_billable_day(bill_run.period_start),
        started_on__lte=bill_run.period_end,
    )
    unknown = in_period.filter(suspense_reason=CallRecord.SuspenseReason.UNKNOWN_CLI).count()
    if unknown:
        exceptions.append(
            BillRunException(
                bill_run=bill_run,
                kind=BillRunException.Kind.UNKNOWN_CLI_CALLS,
                count=unknown,
                detail="Fix the lines, then re-rate from the suspense queue",
            )
        )
    per_customer = (
        in_period.exclude(customer__isnull=True).values("customer_id").annotate(n=Count("id")).order_by()
    )
    exceptions += [
        BillRunException(
            bill_run=bill_run,
            customer_id=row["customer_id"],
            kind=BillRunException.Kind.SUSPENSE_CALLS,
            count=row["n"],
            detail="Calls that could not be rated",
        )
        for row in per_customer
    ]
    BillRunException.objects.bulk_create(exceptions)


@recording_refusals
@transaction.atomic
def bill_run_start_calculation(*, bill_run: BillRun, actor: User) -> BillRun:
    """Check, plan chunks and queue them. Recalculating a calculated run replaces its drafts."""
    bill_run = lock_bill_run_to("calculate", bill_run, actor)
    refuse_if_restricted(bill_run, actor, "calculate")
    if bill_run.status not in (BillRun.Status.DRAFT, BillRun.Status.CALCULATED):
        raise BillingError(f"A {bill_run.get_status_display().lower()} bill run cannot be calculated.")
    if not PartnerBillingProfile.objects.filter(partner_id=bill_run.partner_id).exists():
        raise BillingError("Set up the partner's billing profile (supplier details, invoice prefix) first.")
    # Checked here too: runs created before creation checked the month, or created just before midnight
    # and calculated after it, must not bill a month still under way.
    unfinished = unfinished_usage_period(bill_run.period_end, today=timezone.localdate())
    if unfinished:
        raise refused(BillingError(unfinished), bill_run, actor, "calculate", unfinished)
    recalculating = bill_run.status == BillRun.Status.CALCULATED
    bill_run.invoices.all().delete()
    bill_run.chunks.all().delete()
    _pre_billing_checks(bill_run)
    chunks = BillRunChunk.objects.bulk_create(calculation.plan_chunks(bill_run))
    bill_run.status = BillRun.Status.CALCULATING if chunks else BillRun.Status.CALCULATED
    bill_run.chunks_total, bill_run.chunks_done = len(chunks), 0
    bill_run.calculated_at = None if chunks else timezone.now()
    _save_step(
        bill_run,
        actor,
        "recalculation started" if recalculating else "calculation started",
        f"{len(chunks)} chunks",
        history_reason="Recalculation started" if recalculating else "Calculation started",
    )
    _queue_chunks(bill_run, [chunk.pk for chunk in chunks], actor)
    return bill_run


def _queue_chunks(bill_run: BillRun, chunk_ids: list[int], actor: User) -> None:
    from billing.tasks import calculate_bill_run_chunk

    actor_id = actor.pk
    transaction.on_commit(
        lambda: [calculate_bill_run_chunk.delay(chunk_id, actor_id) for chunk_id in chunk_ids]
    )


@recording_refusals
@transaction.atomic
def bill_run_resume_calculation(*, bill_run: BillRun, actor: User) -> int:
    """Queue again the chunks a crashed calculation did not finish. Returns how many."""
    bill_run = lock_bill_run_to("resume", bill_run, actor)
    refuse_if_restricted(bill_run, actor, "resume")
    if bill_run.status != BillRun.Status.CALCULATING:
        raise BillingError("Only a run that is calculating can be resumed.")
    pending = list(bill_run.chunks.filter(done_at__isnull=True).values_list("pk", flat=True))
    record_event(bill_run, actor, "calculation resumed", f"{len(pending)} chunks queued again")
    _queue_chunks(bill_run, pending, actor)
    return len(pending)


@transaction.atomic
def bill_run_calculate_chunk(*, chunk_id: int, actor_id: int | None) -> bool:
    """Calculate one chunk (the task's work). Idempotent: a chunk already done is left alone.

    The chunks of a run are calculated at once by as many workers as there are: a chunk locks its own
    row only, and the run's row just for the closing count, which checks again that the run may still
    be calculated; a restriction or cancellation that came in meanwhile rolls the chunk back."""
    chunk = (
        BillRunChunk.objects.select_for_update(of=("self",))
        .select_related("bill_run")
        .filter(pk=chunk_id)
        .first()
    )
    if chunk is None or chunk.done_at is not None:
        return False
    bill_run = chunk.bill_run
    if bill_run.status != BillRun.Status.CALCULATING or bill_run.is_restricted:
        return False
    actor = (User.objects.filter(pk=actor_id).first() if actor_id else None) or system_user(job="billing")
    calculation.calculate_chunk(bill_run=bill_run, chunk=chunk, actor=actor)
    chunk.done_at = timezone.now()
    chunk.attempts = F("attempts") + 1
    chunk.save(update_fields=["done_at", "attempts"])
    counted = BillRun.objects.filter(
        pk=bill_run.pk, status=BillRun.Status.CALCULATING, restricted_at__isnull=True
    ).update(chunks_done=F("chunks_done") + 1)
    if not counted:
        transaction.set_rollback(True)
        return False
    locked = lock_bill_run(bill_run)  # already this transaction's, by the update: no wait
    if locked.chunks_done >= locked.chunks_total:
        locked.status = BillRun.Status.CALCULATED
        locked.calculated_at = timezone.now()
        _save_step(
            locked,
            actor,
            "calculated",
            f"{locked.invoices.count()} draft invoices",
            history_reason="Calculation finished",
        )
    return True


@transaction.atomic
def bill_run_record_chunk_failure(*, chunk_id: int, error: str) -> None:
    chunk = BillRunChunk.objects.select_related("bill_run").filter(pk=chunk_id).first()
    if chunk is None:
        return
    BillRunChunk.objects.filter(pk=chunk_id).update(error=error[:2000], attempts=F("attempts") + 1)
    record_event(chunk.bill_run, None, "chunk failed", f"Chunk {chunk.number}: {error[:500]}")


@recording_refusals
@transaction.atomic
def bill_run_approve(
    *, bill_run: BillRun, actor: User, exceptions_acknowledged: int | None = None
) -> BillRun:
    """Approve a calculated run. A run with exceptions is approved only by someone who says they
    reviewed them, giving how many they saw (``exceptions_acknowledged``): a count that no longer
    matches (the run was recalculated meanwhile) is no acknowledgement of what is there now."""
    bill_run = lock_bill_run_to("approve", bill_run, actor)
    refuse_if_restricted(bill_run, actor, "approve")
    if bill_run.status != BillRun.Status.CALCULATED:
        raise BillingError("Only a calculated bill run can be approved.")
    listed = bill_run.exceptions.count()
    if listed and exceptions_acknowledged != listed:
        exceptions = f"{listed} exception{'' if listed == 1 else 's'}"
        if exceptions_acknowledged is None:
            message = f"Confirm you have reviewed the {exceptions} before approving."
        else:
            message = (
                f"The run now has {exceptions}, not the {exceptions_acknowledged} you reviewed: "
                "review them again before approving."
            )
        raise refused(
            BillingError({"acknowledge_exceptions": message}),
            bill_run,
            actor,
            "approve",
            f"Exceptions not acknowledged ({listed} open)",
        )
    acknowledged = (
        f"{listed} exception{'' if listed == 1 else 's'} reviewed and acknowledged" if listed else ""
    )
    bill_run.status = BillRun.Status.APPROVED
    bill_run.approved_at, bill_run.approved_by = timezone.now(), actor
    history_reason = f"Approved; {acknowledged}" if listed else "Approved"
    return _save_step(bill_run, actor, "approved", acknowledged, history_reason=history_reason)


@recording_refusals
@transaction.atomic
def bill_run_finalise(
    *,
    bill_run: BillRun,
    actor: User,
    issue_date: datetime.date | None = None,
    email_invoices: bool = True,
) -> BillRun:
    """Number the invoices gaplessly per partner, under a lock on the partner's counter, and freeze them,
    then (``email_invoices``) email each to its customer with its PDF once this commits.

    A retried finalisation of a finalised run does nothing; two partners finalise independently. The demo
    data, finalising runs it dates months back, sends no email (``email_invoices=False``)."""
    bill_run = lock_bill_run(bill_run)
    if bill_run.status == BillRun.Status.FINALISED:
        return bill_run
    require_permission(actor, bill_run, "finalise")
    refuse_if_restricted(bill_run, actor, "finalise")
    if bill_run.status != BillRun.Status.APPROVED:
        raise BillingError("Only an approved bill run can be finalised.")
    profile = PartnerBillingProfile.objects.select_for_update().get(partner_id=bill_run.partner_id)
    issued = issue_date or timezone.localdate()
    invoices = list(bill_run.invoices.order_by("customer_reference", "pk"))
    for offset, invoice in enumerate(invoices):
        invoice.sequence = profile.next_invoice_number + offset
        invoice.number = f"{profile.invoice_prefix}{invoice.sequence:06d}"
        invoice.status = Invoice.Status.FINALISED
        invoice.issue_date = issued
        # Time of supply: rentals (billed monthly in advance) and calls are continuous supplies of
        # services, whose tax point is the earlier of the VAT invoice's issue and payment (VAT Notice 700
        # s.14, continuous supplies). Payment is always collected after issue, so the issue date is it.
        invoice.tax_point = issued
    from simple_history.utils import bulk_update_with_history

    bulk_update_with_history(
        invoices,
        Invoice,
        ["sequence", "number", "status", "issue_date", "tax_point"],
        batch_size=1000,
        default_user=actor,
        default_change_reason="Finalised",
    )
    # The invoices go on their accounts in the same transaction (and account credit settles them).
    ledger_post_invoices(invoices=invoices, actor=actor)
    # Each invoice is emailed to the customer with its PDF once this commits (one task per invoice). Imported
    # here: the delivery reads the billing contact through direct_debit, which imports this module.
    from billing.services.invoice_delivery import invoice_deliveries_queue

    if email_invoices:
        invoice_deliveries_queue(invoices=invoices, actor=actor)
    profile.next_invoice_number += len(invoices)
    save_with_actor(profile, actor=actor, reason=f"Invoice numbers assigned for {bill_run}")
    bill_run.status = BillRun.Status.FINALISED
    bill_run.finalised_at, bill_run.finalised_by, bill_run.issue_date = timezone.now(), actor, issued
    return _save_step(
        bill_run, actor, "finalised", f"{len(invoices)} invoices numbered", history_reason="Finalised"
    )


@recording_refusals
@transaction.atomic
def bill_run_cancel(*, bill_run: BillRun, actor: User, reason: str) -> BillRun:
    bill_run = lock_bill_run_to("cancel", bill_run, actor)
    if bill_run.status not in BillRun.OPEN_STATUSES:
        raise BillingError("Only an open bill run can be cancelled.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the run is cancelled."})
    bill_run.invoices.all().delete()
    bill_run.status, bill_run.cancelled_reason = BillRun.Status.CANCELLED, reason
    return _save_step(bill_run, actor, "cancelled", reason, history_reason=f"Cancelled: {reason}")


@recording_refusals
@transaction.atomic
def bill_run_restrict(*, bill_run: BillRun, actor: User, reason: str) -> BillRun:
    bill_run = lock_bill_run_to("restrict", bill_run, actor)
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for the restriction."})
    bill_run.restricted_at, bill_run.restricted_by, bill_run.restricted_reason = timezone.now(), actor, reason
    return _save_step(bill_run, actor, "restricted", reason, history_reason=f"Restricted: {reason}")


@recording_refusals
@transaction.atomic
def bill_run_lift_restriction(*, bill_run: BillRun, actor: User, reason: str) -> BillRun:
    bill_run = lock_bill_run_to("lift", bill_run, actor)
    if not bill_run.is_restricted:
        raise BillingError("This bill run is not restricted.")
    bill_run.restricted_at, bill_run.restricted_by, bill_run.restricted_reason = None, None, ""
    return _save_step(
        bill_run, actor, "restriction lifted", reason, history_reason=f"Restriction lifted: {reason}"
    )
