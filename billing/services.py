"""Every write of the billing app. Keyword-only, transactional, taking the acting user."""

import csv
import datetime
import functools
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any, TypeVar

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Customer, Line, Partner, User
from accounts.services import system_user
from billing import calculation, importer, rating
from billing.models import (
    BillRun,
    BillRunChunk,
    BillRunEvent,
    BillRunException,
    CallImport,
    CallImportError,
    CallRecord,
    CreditNote,
    CustomerTariff,
    DirectDebitSubmission,
    Invoice,
    LineTariff,
    OneOffCharge,
    PartnerBillingProfile,
    RecurringCharge,
    Tariff,
)
from fusion_site.models import save_with_actor
from fusion_site.money import to_money, vat_on

T = TypeVar("T")


class BillingError(ValidationError):
    """A billing step that cannot be taken now; the message says why."""


# Tariffs and charges ---------------------------------------------------------------------------


@transaction.atomic
def customer_set_tariff(*, customer: Customer, tariff: Tariff, actor: User) -> CustomerTariff:
    _check_tariff_usable(tariff, customer.partner_id)
    assignment = CustomerTariff.objects.filter(customer=customer).first() or CustomerTariff(customer=customer)
    assignment.tariff = tariff
    return save_with_actor(assignment, actor=actor)


@transaction.atomic
def line_set_tariff(*, line: Line, tariff: Tariff, actor: User) -> LineTariff:
    _check_tariff_usable(tariff, line.customer.partner_id)
    assignment = LineTariff.objects.filter(line=line).first() or LineTariff(line=line)
    assignment.tariff = tariff
    return save_with_actor(assignment, actor=actor)


@transaction.atomic
def partner_billing_profile_save(*, profile: PartnerBillingProfile, actor: User) -> PartnerBillingProfile:
    """Set up or correct a partner's supplier details; its default tariff must be one the partner may use.
    The invoice and credit note counters move only as documents are numbered."""
    if profile.default_tariff is not None:
        _check_tariff_usable(profile.default_tariff, profile.partner_id, field="default_tariff")
    if profile.pk is not None:
        # The form was read before a finalisation may have numbered invoices: keep the counters it left.
        current = PartnerBillingProfile.objects.select_for_update().get(pk=profile.pk)
        profile.next_invoice_number = current.next_invoice_number
        profile.next_credit_note_number = current.next_credit_note_number
    return save_with_actor(profile, actor=actor)


def _check_tariff_usable(tariff: Tariff, partner_id: int, *, field: str = "tariff") -> None:
    if tariff.partner_id not in (None, partner_id):
        raise ValidationError({field: "That tariff belongs to another partner."})


@transaction.atomic
def recurring_charge_create(
    *,
    customer: Customer,
    description: str,
    monthly_amount: Decimal,
    start_date: datetime.date,
    actor: User | None,
    line: Line | None = None,
    end_date: datetime.date | None = None,
) -> RecurringCharge:
    _check_line_of(line, customer)
    charge = RecurringCharge(
        customer=customer,
        line=line,
        description=description,
        monthly_amount=monthly_amount,
        start_date=start_date,
        end_date=end_date,
    )
    return save_with_actor(charge, actor=actor)


@transaction.atomic
def one_off_charge_create(
    *,
    customer: Customer,
    description: str,
    amount: Decimal,
    charge_date: datetime.date,
    actor: User | None,
    line: Line | None = None,
) -> OneOffCharge:
    _check_line_of(line, customer)
    charge = OneOffCharge(
        customer=customer, line=line, description=description, amount=amount, charge_date=charge_date
    )
    return save_with_actor(charge, actor=actor)


RECURRING_CHARGE_EDITABLE_FIELDS = ("line", "description", "monthly_amount", "start_date", "end_date")


@transaction.atomic
def recurring_charge_update(
    *, charge: RecurringCharge, actor: User, reason: str = "", **changes: Any
) -> RecurringCharge:
    _check_line_of(changes.get("line"), charge.customer)
    return _update_charge(charge, actor, changes, RECURRING_CHARGE_EDITABLE_FIELDS, reason)


ONE_OFF_CHARGE_EDITABLE_FIELDS = ("line", "description", "amount", "charge_date")


@transaction.atomic
def one_off_charge_update(
    *, charge: OneOffCharge, actor: User, reason: str = "", **changes: Any
) -> OneOffCharge:
    """Correct a charge not yet billed; a billed one is on an invoice and is credited instead."""
    if charge.invoice_id is not None:
        raise BillingError("This charge is on an invoice already; credit the invoice instead.")
    _check_line_of(changes.get("line"), charge.customer)
    return _update_charge(charge, actor, changes, ONE_OFF_CHARGE_EDITABLE_FIELDS, reason)


ChargeT = TypeVar("ChargeT", RecurringCharge, OneOffCharge)


def _update_charge(
    charge: ChargeT, actor: User, changes: dict[str, Any], allowed: tuple[str, ...], reason: str
) -> ChargeT:
    unknown = set(changes) - set(allowed)
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in sorted(unknown)})
    for name, value in changes.items():
        setattr(charge, name, value)
    return save_with_actor(charge, actor=actor, reason=reason)


def _check_line_of(line: Line | None, customer: Customer) -> None:
    if line is not None and line.customer_id != customer.pk:
        raise ValidationError({"line": "The line belongs to another customer."})


# Call records -----------------------------------------------------------------------------------


def call_import_run(
    *, partner: Partner, stream: IO[str], file_name: str, actor: User | None, progress: Any = None
) -> CallImport:
    """Import a CSV of call records for the partner now, then rate them. Batches commit as they go."""
    call_import = CallImport.objects.create(partner=partner, file_name=file_name[:255], uploaded_by=actor)
    return call_import_process(call_import=call_import, stream=stream, progress=progress)


def call_import_process(*, call_import: CallImport, stream: IO[str], progress: Any = None) -> CallImport:
    try:
        importer.run_import(
            call_import=call_import, stream=stream, **({"progress": progress} if progress else {})
        )
    except (importer.ImportFileError, UnicodeDecodeError, csv.Error) as exc:
        call_import.status = CallImport.Status.FAILED
        call_import.finished_at = timezone.now()
        call_import.save(update_fields=["status", "finished_at", "updated_at"])
        CallImportError.objects.create(call_import=call_import, line_number=0, reason=str(exc)[:300])
        raise importer.ImportFileError(str(exc)) from exc
    return call_import


def call_import_queue(*, partner: Partner, upload: Any, actor: User) -> CallImport:
    """Keep the uploaded file in private storage and import it in a task; the page shows progress.
    The file holds personal data, so the task deletes it once read."""
    call_import = CallImport.objects.create(partner=partner, file_name=upload.name[:255], uploaded_by=actor)
    stored_name = default_storage.save(f"call-imports/{call_import.pk}-{uuid.uuid4().hex}.csv", upload)
    from billing.tasks import import_call_file

    transaction.on_commit(lambda: import_call_file.delay(call_import.pk, stored_name))
    return call_import


def call_import_from_storage(*, call_import_id: int, stored_name: str) -> CallImport | None:
    call_import = CallImport.objects.filter(pk=call_import_id, status=CallImport.Status.RUNNING).first()
    if call_import is None:
        return None
    try:
        with default_storage.open(stored_name, "rb") as raw, importer.text_stream(raw) as text:
            call_import_process(call_import=call_import, stream=text)
    except importer.ImportFileError:
        pass  # recorded on the import and shown on its page
    finally:
        default_storage.delete(stored_name)
    return call_import


@transaction.atomic
def suspense_rerate(
    *, partner: Partner, actor: User, call_ids: list[int] | None = None
) -> rating.RatingResult:
    """Try suspense calls again, after a tariff or line was fixed."""
    rating.requeue_suspense(partner_id=partner.pk, call_ids=call_ids)
    return rating.rate_pending_calls(partner_id=partner.pk)


# Cease billing (objection) ----------------------------------------------------------------------


class BackBillPolicy:
    NONE = "none"
    CATCH_UP = "catch_up"
    FROM_DATE = "from_date"
    CHOICES = [
        (NONE, "Bill nothing for the ceased period"),
        (CATCH_UP, "Catch up every unbilled call"),
        (FROM_DATE, "Bill calls from a date"),
    ]


@transaction.atomic
def customer_cease_billing(*, customer: Customer, actor: User, reason: str) -> Customer:
    """Stop billing the customer (an upheld objection): bill runs skip it until billing is resumed
    with a back-bill policy."""
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason billing is ceased."})
    if customer.billing_ceased_at is not None:
        raise BillingError("Billing is already ceased for this customer.")
    customer.billing_ceased_at = timezone.now()
    customer.billing_ceased_by = actor
    customer.billing_ceased_reason = reason.strip()
    audit_record(actor=actor, action="customer.billing_ceased", target=customer)
    return save_with_actor(customer, actor=actor, reason=f"Billing ceased: {reason.strip()}")


@transaction.atomic
def customer_lift_billing_cease(
    *, customer: Customer, actor: User, policy: str, reason: str, from_date: datetime.date | None = None
) -> Customer:
    """Resume billing. The policy says what happens to calls made while billing was ceased: never a
    silent catch-up. Waived calls are kept (they are traffic data) but never billed."""
    if customer.billing_ceased_at is None:
        raise BillingError("Billing is not ceased for this customer.")
    if policy not in {BackBillPolicy.NONE, BackBillPolicy.CATCH_UP, BackBillPolicy.FROM_DATE}:
        raise ValidationError({"policy": "Choose a back-bill policy."})
    if policy == BackBillPolicy.FROM_DATE and from_date is None:
        raise ValidationError({"from_date": "Give the date to bill calls from."})
    # Calls of the ceased period not yet billed, rated or still in suspense (they would be billed once
    # re-rated); calls from before the cease are untouched by every policy.
    ceased_period = CallRecord.objects.filter(
        customer=customer,
        billing__isnull=True,
        status__in=[CallRecord.Status.RATED, CallRecord.Status.SUSPENSE, CallRecord.Status.PENDING],
        started_at__gte=customer.billing_ceased_at,
    )
    if policy == BackBillPolicy.NONE:
        ceased_period.update(status=CallRecord.Status.WAIVED)
    elif policy == BackBillPolicy.FROM_DATE:
        ceased_period.filter(started_on__lt=from_date).update(status=CallRecord.Status.WAIVED)
    detail = f"{policy}" + (f" from {from_date:%Y-%m-%d}" if from_date else "")
    customer.billing_ceased_at = None
    customer.billing_ceased_by = None
    customer.billing_ceased_reason = ""
    save_with_actor(customer, actor=actor, reason=f"Billing resumed ({detail}): {reason}")
    audit_record(actor=actor, action="customer.billing_resumed", target=customer, detail={"policy": policy})
    return customer


# Bill runs --------------------------------------------------------------------------------------


def _event(bill_run: BillRun, actor: User | None, action: str, detail: str = "") -> None:
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


def _refused(exc: Exception, bill_run: BillRun, actor: User, action: str, detail: str) -> Exception:
    exc.refusal = _Refusal(bill_run.pk, actor.pk, f"{action} refused", detail)  # type: ignore[attr-defined]
    return exc


def _recording_refusals(step: Callable[..., T]) -> Callable[..., T]:
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


def _require(actor: User, permission: str, bill_run: BillRun, action: str) -> None:
    if not actor.has_perm(permission):
        raise _refused(
            PermissionDenied(f"You may not {action} bill runs."),
            bill_run,
            actor,
            action,
            "Missing permission",
        )


def _refuse_if_restricted(bill_run: BillRun, actor: User, action: str) -> None:
    if bill_run.is_restricted:
        raise _refused(
            BillingError(
                f"This bill run is restricted ({bill_run.restricted_reason}); it cannot be {action}d."
            ),
            bill_run,
            actor,
            action,
            f"Run is restricted: {bill_run.restricted_reason}",
        )


def _locked(bill_run: BillRun) -> BillRun:
    return BillRun.objects.select_for_update().get(pk=bill_run.pk)


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
    _event(bill_run, actor, "created", f"{period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}")
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


@_recording_refusals
@transaction.atomic
def bill_run_start_calculation(*, bill_run: BillRun, actor: User) -> BillRun:
    """Check, plan chunks and queue them. Recalculating a calculated run replaces its drafts."""
    bill_run = _locked(bill_run)
    _require(actor, "billing.calculate_billrun", bill_run, "calculate")
    _refuse_if_restricted(bill_run, actor, "calculate")
    if bill_run.status not in (BillRun.Status.DRAFT, BillRun.Status.CALCULATED):
        raise BillingError(f"A {bill_run.get_status_display().lower()} bill run cannot be calculated.")
    if not PartnerBillingProfile.objects.filter(partner_id=bill_run.partner_id).exists():
        raise BillingError("Set up the partner's billing profile (supplier details, invoice prefix) first.")
    # Checked here too: runs created before creation checked the month, or created just before midnight
    # and calculated after it, must not bill a month still under way.
    unfinished = unfinished_usage_period(bill_run.period_end, today=timezone.localdate())
    if unfinished:
        raise _refused(BillingError(unfinished), bill_run, actor, "calculate", unfinished)
    recalculating = bill_run.status == BillRun.Status.CALCULATED
    bill_run.invoices.all().delete()
    bill_run.chunks.all().delete()
    _pre_billing_checks(bill_run)
    chunks = BillRunChunk.objects.bulk_create(calculation.plan_chunks(bill_run))
    bill_run.status = BillRun.Status.CALCULATING if chunks else BillRun.Status.CALCULATED
    bill_run.chunks_total, bill_run.chunks_done = len(chunks), 0
    bill_run.calculated_at = None if chunks else timezone.now()
    save_with_actor(
        bill_run, actor=actor, reason="Recalculation started" if recalculating else "Calculation started"
    )
    _event(
        bill_run,
        actor,
        "recalculation started" if recalculating else "calculation started",
        f"{len(chunks)} chunks",
    )
    _queue_chunks(bill_run, [chunk.pk for chunk in chunks], actor)
    return bill_run


def _queue_chunks(bill_run: BillRun, chunk_ids: list[int], actor: User) -> None:
    from billing.tasks import calculate_bill_run_chunk

    actor_id = actor.pk
    transaction.on_commit(
        lambda: [calculate_bill_run_chunk.delay(chunk_id, actor_id) for chunk_id in chunk_ids]
    )


@_recording_refusals
@transaction.atomic
def bill_run_resume_calculation(*, bill_run: BillRun, actor: User) -> int:
    """Queue again the chunks a crashed calculation did not finish. Returns how many."""
    bill_run = _locked(bill_run)
    _require(actor, "billing.calculate_billrun", bill_run, "calculate")
    _refuse_if_restricted(bill_run, actor, "calculate")
    if bill_run.status != BillRun.Status.CALCULATING:
        raise BillingError("Only a run that is calculating can be resumed.")
    pending = list(bill_run.chunks.filter(done_at__isnull=True).values_list("pk", flat=True))
    _event(bill_run, actor, "calculation resumed", f"{len(pending)} chunks queued again")
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
    locked = _locked(bill_run)  # already this transaction's, by the update: no wait
    if locked.chunks_done >= locked.chunks_total:
        locked.status = BillRun.Status.CALCULATED
        locked.calculated_at = timezone.now()
        save_with_actor(locked, actor=actor, reason="Calculation finished")
        _event(locked, actor, "calculated", f"{locked.invoices.count()} draft invoices")
    return True


@transaction.atomic
def bill_run_record_chunk_failure(*, chunk_id: int, error: str) -> None:
    chunk = BillRunChunk.objects.select_related("bill_run").filter(pk=chunk_id).first()
    if chunk is None:
        return
    BillRunChunk.objects.filter(pk=chunk_id).update(error=error[:2000], attempts=F("attempts") + 1)
    _event(chunk.bill_run, None, "chunk failed", f"Chunk {chunk.number}: {error[:500]}")


@_recording_refusals
@transaction.atomic
def bill_run_approve(
    *, bill_run: BillRun, actor: User, exceptions_acknowledged: int | None = None
) -> BillRun:
    """Approve a calculated run. A run with exceptions is approved only by someone who says they
    reviewed them, giving how many they saw (``exceptions_acknowledged``): a count that no longer
    matches (the run was recalculated meanwhile) is no acknowledgement of what is there now."""
    bill_run = _locked(bill_run)
    _require(actor, "billing.approve_billrun", bill_run, "approve")
    _refuse_if_restricted(bill_run, actor, "approve")
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
        raise _refused(
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
    save_with_actor(bill_run, actor=actor, reason=f"Approved; {acknowledged}" if listed else "Approved")
    _event(bill_run, actor, "approved", acknowledged)
    return bill_run


@_recording_refusals
@transaction.atomic
def bill_run_finalise(*, bill_run: BillRun, actor: User, issue_date: datetime.date | None = None) -> BillRun:
    """Number the invoices gaplessly per partner, under a lock on the partner's counter, and freeze them.

    A retried finalisation of a finalised run does nothing; two partners finalise independently."""
    bill_run = _locked(bill_run)
    if bill_run.status == BillRun.Status.FINALISED:
        return bill_run
    _require(actor, "billing.finalise_billrun", bill_run, "finalise")
    _refuse_if_restricted(bill_run, actor, "finalise")
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
    profile.next_invoice_number += len(invoices)
    save_with_actor(profile, actor=actor, reason=f"Invoice numbers assigned for {bill_run}")
    bill_run.status = BillRun.Status.FINALISED
    bill_run.finalised_at, bill_run.finalised_by, bill_run.issue_date = timezone.now(), actor, issued
    save_with_actor(bill_run, actor=actor, reason="Finalised")
    _event(bill_run, actor, "finalised", f"{len(invoices)} invoices numbered")
    return bill_run


@_recording_refusals
@transaction.atomic
def bill_run_cancel(*, bill_run: BillRun, actor: User, reason: str) -> BillRun:
    bill_run = _locked(bill_run)
    _require(actor, "billing.calculate_billrun", bill_run, "cancel")
    if bill_run.status not in BillRun.OPEN_STATUSES:
        raise BillingError("Only an open bill run can be cancelled.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the run is cancelled."})
    bill_run.invoices.all().delete()
    bill_run.status, bill_run.cancelled_reason = BillRun.Status.CANCELLED, reason
    save_with_actor(bill_run, actor=actor, reason=f"Cancelled: {reason}")
    _event(bill_run, actor, "cancelled", reason)
    return bill_run


@_recording_refusals
@transaction.atomic
def bill_run_restrict(*, bill_run: BillRun, actor: User, reason: str) -> BillRun:
    bill_run = _locked(bill_run)
    _require(actor, "billing.restrict_billrun", bill_run, "restrict")
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason for the restriction."})
    bill_run.restricted_at, bill_run.restricted_by, bill_run.restricted_reason = timezone.now(), actor, reason
    save_with_actor(bill_run, actor=actor, reason=f"Restricted: {reason}")
    _event(bill_run, actor, "restricted", reason)
    return bill_run


@_recording_refusals
@transaction.atomic
def bill_run_lift_restriction(*, bill_run: BillRun, actor: User, reason: str) -> BillRun:
    bill_run = _locked(bill_run)
    _require(actor, "billing.restrict_billrun", bill_run, "lift the restriction of")
    if not bill_run.is_restricted:
        raise BillingError("This bill run is not restricted.")
    bill_run.restricted_at, bill_run.restricted_by, bill_run.restricted_reason = None, None, ""
    save_with_actor(bill_run, actor=actor, reason=f"Restriction lifted: {reason}")
    _event(bill_run, actor, "restriction lifted", reason)
    return bill_run


# Credit notes -----------------------------------------------------------------------------------


@transaction.atomic
def credit_note_issue(
    *, invoice: Invoice, actor: User, reason: str, net: Decimal | None = None
) -> CreditNote:
    """Credit a finalised invoice in full (no amount) or in part (a net amount); VAT at the invoice's rate.
    The invoice itself is never changed."""
    if not actor.has_perm("billing.add_creditnote"):
        raise PermissionDenied("You may not issue credit notes.")
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.FINALISED:
        raise BillingError("Only a finalised invoice can be credited.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the invoice is credited."})
    earlier = list(invoice.credit_notes.all())
    remaining = invoice.net - sum((note.net for note in earlier), Decimal("0"))
    amount = remaining if net is None else to_money(net)
    if amount <= 0 or amount > remaining:
        raise ValidationError(
            {"net": f"The credit must be more than 0 and at most {remaining} (net not yet credited)."}
        )
    profile = PartnerBillingProfile.objects.select_for_update().get(partner_id=invoice.partner_id)
    sequence = profile.next_credit_note_number
    profile.next_credit_note_number += 1
    save_with_actor(profile, actor=actor, reason="Credit note number assigned")
    # The last credit takes exactly the VAT not yet credited, so full credits always net to zero.
    vat = (
        invoice.vat - sum((note.vat for note in earlier), Decimal("0"))
        if amount == remaining
        else vat_on(amount, invoice.vat_rate)
    )
    note = CreditNote(
        invoice=invoice,
        partner_id=invoice.partner_id,
        sequence=sequence,
        number=f"{profile.invoice_prefix}CN{sequence:06d}",
        issue_date=timezone.localdate(),
        reason=reason,
        net=amount,
        vat=vat,
        gross=amount + vat,
        issued_by=actor,
    )
    return save_with_actor(note, actor=actor)


# Direct Debit ------------------------------------------------------------------------------------

DIRECT_DEBIT_NOTICE_DAYS = 14
DIRECT_DEBIT_EXPORTED = "direct debit file exported"
DIRECT_DEBIT_DOWNLOADED_AGAIN = "direct debit file downloaded again"
DIRECT_DEBIT_CANCELLED = "direct debit submission cancelled"


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


@_recording_refusals
@transaction.atomic
def direct_debit_export(*, bill_run: BillRun, actor: User) -> DirectDebitSubmission:
    """The run's Direct Debit submission: made and recorded the first time, the same bytes every time
    after, until that submission is cancelled (``direct_debit_submission_cancel``)."""
    from billing import bacs

    # The run's row lock serialises two exports of it: the second waits, then finds the first's file.
    bill_run = _locked(bill_run)
    _require(actor, "billing.finalise_billrun", bill_run, "export Direct Debit files of")
    # A restriction holds exports to third parties, the file already made included.
    if bill_run.is_restricted:
        raise _refused(
            BillingError(
                f"This bill run is restricted ({bill_run.restricted_reason}); "
                "its Direct Debit file cannot be handed out until the restriction is lifted."
            ),
            bill_run,
            actor,
            "direct debit export",
            f"Run is restricted: {bill_run.restricted_reason}",
        )
    live = DirectDebitSubmission.objects.filter(bill_run=bill_run, cancelled_at__isnull=True).first()
    if live is not None:
        if live.is_content_cleared:
            raise _refused(
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
    promised = direct_debit_promised_date(bill_run)
    processing_date = bacs.processing_day(made_at=made_at, promised=promised)
    # The partner's profile lock serialises serials: two runs of one partner never share one.
    PartnerBillingProfile.objects.select_for_update().filter(partner_id=bill_run.partner_id).first()
    exported = BillRunEvent.objects.filter(
        bill_run__partner_id=bill_run.partner_id, action=DIRECT_DEBIT_EXPORTED
    ).count()
    serial = f"{exported + 1:06d}"
    try:
        result = bacs.build_standard18(
            bill_run,
            processing_date=processing_date,
            serial=serial,
            creation_date=made_at.astimezone(bacs.BACS_TIME_ZONE).date(),
        )
    except ValueError as exc:
        raise BillingError(str(exc)) from exc
    if not result.collections:
        raise BillingError("No customer of this run has a Direct Debit to collect; there is no file to send.")
    submission = save_with_actor(
        DirectDebitSubmission(
            bill_run=bill_run,
            partner_id=bill_run.partner_id,
            serial=serial,
            processing_date=processing_date,
            promised_date=promised,
            file_name=f"direct-debit-{bill_run.partner.code}-{bill_run.period_start:%Y-%m}-{serial}.txt",
            content=result.content,
            sha256=hashlib.sha256(result.content.encode("ascii")).hexdigest(),
            collections=len(result.collections),
            total_pence=result.total_pence,
            created_by=actor,
        ),
        actor=actor,
    )
    _event(
        bill_run,
        actor,
        DIRECT_DEBIT_EXPORTED,
        f"serial {serial}: {len(result.collections)} collections, processing day "
        f"{processing_date:%Y-%m-%d}, {len(result.skipped)} skipped",
    )
    audit_record(
        actor=actor,
        action="export.direct_debit_file",
        target=submission,
        detail={
            "serial": serial,
            "sha256": submission.sha256,
            "collections": len(result.collections),
            "skipped": len(result.skipped),
        },
    )
    return submission


@_recording_refusals
@transaction.atomic
def direct_debit_submission_cancel(
    *, submission: DirectDebitSubmission, actor: User, reason: str
) -> DirectDebitSubmission:
    """Record that a submission's file will not be (or was not) processed, so the run may be exported
    again. The finance manager says why; the file itself is kept."""
    bill_run = _locked(submission.bill_run)
    _require(actor, "billing.finalise_billrun", bill_run, "cancel Direct Debit files of")
    submission = DirectDebitSubmission.objects.select_for_update().get(pk=submission.pk)
    if submission.is_cancelled:
        raise BillingError(f"Submission {submission.serial} is already cancelled.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the submission is cancelled."})
    submission.cancelled_at = timezone.now()
    submission.cancelled_by = actor
    submission.cancelled_reason = reason.strip()
    save_with_actor(submission, actor=actor, reason=f"Cancelled: {submission.cancelled_reason}")
    _event(
        bill_run, actor, DIRECT_DEBIT_CANCELLED, f"serial {submission.serial}: {submission.cancelled_reason}"
    )
    audit_record(
        actor=actor,
        action="direct_debit_submission.cancelled",
        target=submission,
        detail={"serial": submission.serial, "sha256": submission.sha256},
    )
    return submission
