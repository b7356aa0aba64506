"""The Direct Debit mandate's lifecycle: every change of ``PaymentDetails.status``, with its rule.

    new ──lodge──> lodged ──activate──> active ──expire──> expired
     │  <──withdraw──┘                    │
     └────────cancel──────────────────────┴──cancel──> cancelled        cancelled/expired ──reinstate──> new

``TRANSITIONS`` is the table; a step it does not hold is refused with a message naming both states.
Every step takes ``actor``, writes history attributed to it and an audit event. Jobs act as a named
system user (``accounts.services.system_user``).

The scheme's rules applied here (Bacs Payment Schemes Ltd, "The Service User's Guide and Rules to the
Direct Debit Scheme", v5.3 2019, the AUDDIS and dormancy sections; the Bacs three-day cycle):
- Lodgement: a new instruction goes to the payer's bank as an AUDDIS record, transaction code 0N, in a
  submission; a cancellation as 0C. Bacs processes the 0N on day 2 of the cycle (the processing day), the
  payer's bank receives it on day 3 and returns any rejection in the AUDDIS report by then; only from the
  next working day (day 4) is the instruction known to stand, so no collection is made before it:
  ``active_from`` is ``LODGEMENT_WORKING_DAYS`` working days after the 0N's processing day. (Bureaus
  state the same period: e.g. Mambu Payments/Numeral, "Register Bacs Direct Debit mandates": "On day 4 ...
  switch the remaining pending mandates to active"; Acquired, "Mandate timelines": 3 working days.)
- Dormancy: an instruction under which nothing has been collected for 13 months is dormant; the service
  user must not collect under it again without a new instruction (the Guide's dormancy rule; the payer's
  bank may remove it from then on). ``DORMANCY_MONTHS`` counts from the last collection's debit date, or
  from the lodgement when nothing was ever collected. An expired or cancelled instruction that was lodged
  is cancelled at the bank with a 0C in the next submission, unless the bank itself cancelled it (ADDACS,
  an AUDDIS rejection), when a 0C must not be sent.
"""

import calendar
import datetime
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from accounts.audit import AuditEntry, audit_record, audit_record_many
from accounts.models import PaymentDetails, User
from fusion_site.models import save_with_actor
from fusion_site.working_days import working_days_after

logger = logging.getLogger(__name__)

Status = PaymentDetails.Status

LODGEMENT_WORKING_DAYS = 2  # after the 0N's processing day (day 2): active on day 4 of its cycle
DORMANCY_MONTHS = 13
EXPIRY_REASON = "Dormant: nothing collected for 13 months (Direct Debit scheme dormancy rule)."
MANDATE_JOB = "direct-debit-mandates"
CHUNK_SIZE = 500
Progress = Callable[[int], None]

TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.LODGED, Status.CANCELLED}),
    # Back to new: the submission that carried the 0N was cancelled before Bacs processed it.
    Status.LODGED: frozenset({Status.ACTIVE, Status.NEW, Status.CANCELLED}),
    Status.ACTIVE: frozenset({Status.CANCELLED, Status.EXPIRED, Status.NEW}),
    # A new instruction from the payer (the scheme re-instates with a fresh 0N).
    Status.CANCELLED: frozenset({Status.NEW}),
    Status.EXPIRED: frozenset({Status.NEW}),
}

# A mandate whose 0C is still to be sent: lodged at the bank, ended here, not cancelled by the bank.
CANCELLATION_PENDING = (
    Q(status__in=[Status.CANCELLED, Status.EXPIRED])
    & Q(lodged_at__isnull=False)
    & Q(cancelled_by_bank=False)
    & Q(cancellation_submission_id__isnull=True)
)


def active_from_for(processing_date: datetime.date) -> datetime.date:
    """The first day a collection may be debited under an instruction whose 0N is processed on
    ``processing_date``."""
    return working_days_after(processing_date, LODGEMENT_WORKING_DAYS)


def add_months(day: datetime.date, months: int) -> datetime.date:
    """The same day ``months`` calendar months later, or the month's last day when it has none
    (31 January + 1 month = 28 or 29 February; 29 February 2024 + 12 months = 28 February 2025)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def dormant_since(mandate: PaymentDetails) -> datetime.date | None:
    """The day dormancy counts from: the last collection, or the lodgement when there was none."""
    if mandate.last_collected_on is not None:
        return mandate.last_collected_on
    return timezone.localdate(mandate.lodged_at) if mandate.lodged_at else None


def is_dormant(mandate: PaymentDetails, *, today: datetime.date) -> bool:
    since = dormant_since(mandate)
    return since is not None and add_months(since, DORMANCY_MONTHS) <= today


def _refuse(mandate: PaymentDetails, to: str, why: str = "") -> ValidationError:
    message = f"A Direct Debit mandate that is {mandate.status} cannot become {to}"
    return ValidationError({"status": f"{message}{': ' + why if why else ''}."}, code="invalid_transition")


def _transition(
    mandate: PaymentDetails,
    *,
    to: str,
    actor: User,
    reason: str,
    changes: dict[str, Any],
    detail: dict[str, Any],
) -> PaymentDetails:
    """Move a locked, fresh copy of ``mandate`` to ``to`` with ``changes``, or refuse."""
    mandate = PaymentDetails.objects.select_for_update().get(pk=mandate.pk)
    if to not in TRANSITIONS[mandate.status]:
        raise _refuse(mandate, to)
    before = mandate.status
    mandate.status = to
    for name, value in changes.items():
        setattr(mandate, name, value)
    save_with_actor(mandate, actor=actor, reason=reason)
    audit_record(
        actor=actor, action=f"mandate.{to}", target=mandate, detail={"from": before, "to": to, **detail}
    )
    return mandate


def _locked(mandate: PaymentDetails) -> PaymentDetails:
    return PaymentDetails.objects.select_for_update().get(pk=mandate.pk)


@transaction.atomic
def mandate_lodge(
    *,
    mandate: PaymentDetails,
    actor: User,
    submission_id: int | None,
    lodged_at: datetime.datetime,
    processing_date: datetime.date,
) -> PaymentDetails:
    """Its 0N is in submission ``submission_id``, processed on ``processing_date``: lodged, active from the
    end of the lodgement period. ``submission_id`` None: lodged outside this system's submissions (by a
    bureau, or on paper before AUDDIS), on that processing day."""
    where = f"Direct Debit submission #{submission_id}" if submission_id else "a submission made elsewhere"
    return _transition(
        mandate,
        to=Status.LODGED,
        actor=actor,
        reason=f"AUDDIS 0N in {where}",
        changes={
            "lodged_at": lodged_at,
            "lodgement_submission_id": submission_id,
            "active_from": active_from_for(processing_date),
        },
        detail={"submission": submission_id, "processing_date": processing_date.isoformat()},
    )


@transaction.atomic
def mandate_lodgement_withdraw(*, mandate: PaymentDetails, actor: User, submission_id: int) -> PaymentDetails:
    """The submission that carried its 0N was cancelled (not sent, or rejected whole): new again, so the
    next submission lodges it. One collected from since (through another submission) stays as it is."""
    current = _locked(mandate)
    if current.lodgement_submission_id != submission_id:
        raise _refuse(current, Status.NEW, f"its 0N is not in submission #{submission_id}")
    if current.status == Status.ACTIVE and current.last_collected_on is not None:
        raise _refuse(current, Status.NEW, "it has been collected from since")
    return _transition(
        current,
        to=Status.NEW,
        actor=actor,
        reason=f"Direct Debit submission #{submission_id} cancelled: the 0N was not processed",
        changes={"lodged_at": None, "lodgement_submission_id": None, "active_from": None},
        detail={"submission": submission_id},
    )


@transaction.atomic
def mandate_activate(*, mandate: PaymentDetails, actor: User, today: datetime.date) -> PaymentDetails:
    current = _locked(mandate)
    if current.status == Status.LODGED and current.active_from and today < current.active_from:
        raise _refuse(
            current, Status.ACTIVE, f"the scheme's lodgement period runs until {current.active_from:%d %B %Y}"
        )
    return _transition(
        current, to=Status.ACTIVE, actor=actor, reason="Lodgement period over", changes={}, detail={}
    )


@transaction.atomic
def mandate_cancel(
    *, mandate: PaymentDetails, actor: User, reason: str, by_bank: bool = False
) -> PaymentDetails:
    """Cancel it, saying why. ``by_bank``: the payer's bank already cancelled it (ADDACS, an AUDDIS
    rejection), so no 0C is sent; otherwise one lodged at the bank gets its 0C in the next submission."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the mandate is cancelled."})
    return _transition(
        mandate,
        to=Status.CANCELLED,
        actor=actor,
        reason=f"Cancelled: {reason.strip()}",
        changes={
            "cancelled_at": timezone.now(),
            "cancellation_reason": reason.strip(),
            "cancelled_by_bank": by_bank,
        },
        detail={"by_bank": by_bank},
    )


@transaction.atomic
def mandate_expire(*, mandate: PaymentDetails, actor: User, today: datetime.date) -> PaymentDetails:
    current = _locked(mandate)
    if current.status == Status.ACTIVE and not is_dormant(current, today=today):
        since = dormant_since(current)
        raise _refuse(
            current,
            Status.EXPIRED,
            f"it is dormant only from {add_months(since, DORMANCY_MONTHS):%d %B %Y}"
            if since
            else "never lodged",
        )
    return _transition(
        current,
        to=Status.EXPIRED,
        actor=actor,
        reason=EXPIRY_REASON,
        changes={"cancelled_at": timezone.now(), "cancellation_reason": EXPIRY_REASON},
        detail={"dormant_since": (dormant_since(current) or today).isoformat()},
    )


@transaction.atomic
def mandate_reinstate(*, mandate: PaymentDetails, actor: User, reason: str) -> PaymentDetails:
    """The payer gave a new instruction for a cancelled or expired mandate: new, lodged by the next
    submission (0N). A 0C still owed for the old one is sent first if it has not been."""
    if not reason.strip():
        raise ValidationError({"reason": "Say what the payer instructed."})
    current = _locked(mandate)
    if current.status not in (Status.CANCELLED, Status.EXPIRED):
        raise _refuse(current, Status.NEW, "only a cancelled or expired mandate is reinstated")
    return _transition(
        current,
        to=Status.NEW,
        actor=actor,
        reason=f"Reinstated: {reason.strip()}",
        changes={
            "lodged_at": None,
            "lodgement_submission_id": None,
            "active_from": None,
            "cancelled_at": None,
            "cancellation_reason": "",
            "cancelled_by_bank": False,
            "cancellation_submission_id": None,
        },
        detail={},
    )


@transaction.atomic
def mandate_cancellation_sent(
    *, mandate: PaymentDetails, actor: User, submission_id: int | None
) -> PaymentDetails:
    """Its 0C is in submission ``submission_id`` (or, with None, that submission was cancelled and the 0C is
    owed again). The status does not change."""
    current = _locked(mandate)
    if current.status not in (Status.CANCELLED, Status.EXPIRED):
        raise ValidationError(
            {"status": "Only a cancelled or expired mandate is cancelled at the bank (0C)."}
        )
    current.cancellation_submission_id = submission_id
    reason = (
        f"AUDDIS 0C in submission #{submission_id}"
        if submission_id
        else "The submission with its 0C was cancelled"
    )
    return save_with_actor(current, actor=actor, reason=reason)


@transaction.atomic
def mandate_hold(*, mandate: PaymentDetails, actor: User, reason: str) -> PaymentDetails:
    """Hold collections under it: the payer disputes the advance notice, the amount or the date (ARUDD 4, 7,
    8; ADDACS D). The scheme's special instruction for each: "Service user should not collect further
    Direct Debits until it has resolved the dispute with the payer" (Bacs Service User's Guide and Rules,
    ARUDD and ADDACS reason tables, as cited in ``billing.bacs_reports``). The status does not change: the
    instruction stands, nothing is collected under it. A second hold keeps the first's date and adds its
    reason. Returns the mandate."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why collections are held."})
    current = _locked(mandate)
    if current.collection_held_at is None:
        current.collection_held_at = timezone.now()
        current.collection_held_reason = reason.strip()
    elif reason.strip() not in current.collection_held_reason:
        current.collection_held_reason = f"{current.collection_held_reason}; {reason.strip()}"
    else:
        return current
    save_with_actor(current, actor=actor, reason=f"Collections held: {reason.strip()}"[:100])
    audit_record(actor=actor, action="mandate.held", target=current, detail={"reason": reason.strip()})
    return current


@transaction.atomic
def mandate_hold_clear(*, mandate: PaymentDetails, actor: User, reason: str) -> PaymentDetails:
    """Staff resolved the payer's dispute: collections under the mandate may be made again (each with its
    own advance notice). Needs ``accounts.clear_mandate_hold``; the reason says how it was resolved."""
    if not actor.has_perm("accounts.clear_mandate_hold"):
        raise PermissionDenied("You may not clear a Direct Debit hold.")
    if not reason.strip():
        raise ValidationError({"reason": "Say how the payer's dispute was resolved."})
    current = _locked(mandate)
    if current.collection_held_at is None:
        raise ValidationError({"reason": "Collections under this mandate are not held."})
    held_for = current.collection_held_reason
    current.collection_held_at = None
    current.collection_held_reason = ""
    save_with_actor(current, actor=actor, reason=f"Hold cleared: {reason.strip()}"[:100])
    audit_record(
        actor=actor,
        action="mandate.hold_cleared",
        target=current,
        detail={"reason": reason.strip(), "held_for": held_for},
    )
    return current


# The instruction's details the payer's bank holds it under: a change of any of them is a new instruction.
INSTRUCTION_FIELDS = ("sort_code", "account_number", "mandate_reference")


@transaction.atomic
def mandate_relodge(
    *, mandate: PaymentDetails, actor: User, superseded: dict[str, str], reason: str
) -> PaymentDetails:
    """Staff changed the bank details of a lodged or active mandate (``superseded`` holds the old
    ``account_holder``, ``sort_code``, ``account_number`` and ``mandate_reference``): the old instruction is
    cancelled at its bank with a 0C and the new one lodged with a 0N, both in the next submission, and
    nothing is collected until the new one is active. AUDDIS: a change of the payer's bank account is a new
    Direct Debit Instruction, lodged with 0N; the one it replaces is cancelled with 0C (Bacs, AUDDIS service
    definition, as restated by the ADDACS 3 special instruction: when the bank moved the account itself "a
    0N must be sent ... do not send a 0C to the old bank", so that case does not come here). The new
    instruction's dormancy counts from its own lodgement, so the last collection date is cleared."""
    current = _locked(mandate)
    if current.status not in (Status.LODGED, Status.ACTIVE):
        raise _refuse(current, Status.NEW, "only a lodged or active mandate is lodged again")
    changes: dict[str, Any] = {
        "lodged_at": None,
        "lodgement_submission_id": None,
        "active_from": None,
        "last_collected_on": None,
    }
    # An older superseded instruction whose 0C is still to go stays the one to cancel: the current details
    # were never lodged in that case (the mandate was new), so only a lodged one replaces it.
    changes.update({f"superseded_{name}": value for name, value in superseded.items()})
    changes["superseded_cancellation_submission_id"] = None
    return _transition(
        current,
        to=Status.NEW,
        actor=actor,
        reason=f"Bank details changed, lodged again: {reason}"[:100],
        changes=changes,
        detail={"relodged": True},
    )


@transaction.atomic
def mandate_superseded_cancellation_sent(
    *, mandate: PaymentDetails, actor: User, submission_id: int | None
) -> PaymentDetails:
    """The superseded instruction's 0C is in submission ``submission_id`` (None: that submission was
    cancelled and the 0C is owed again)."""
    current = _locked(mandate)
    current.superseded_cancellation_submission_id = submission_id
    reason = (
        f"AUDDIS 0C of the superseded instruction in submission #{submission_id}"
        if submission_id
        else "The submission with the superseded instruction's 0C was cancelled"
    )
    return save_with_actor(current, actor=actor, reason=reason)


@transaction.atomic
def mandate_collected(
    *, mandate: PaymentDetails, actor: User, collected_on: datetime.date | None, reason: str
) -> PaymentDetails:
    """Record the debit date of its latest collection (or put back the one before, when the submission
    that collected it is cancelled)."""
    current = _locked(mandate)
    current.last_collected_on = collected_on
    return save_with_actor(current, actor=actor, reason=reason)


def _bulk_transition(
    queryset: Any,
    *,
    to: str,
    actor: User,
    reason: str,
    changes: Callable[[PaymentDetails], dict[str, Any]],
    chunk_size: int,
    progress: Callable[[int], None] | None,
) -> int:
    """Move every mandate of ``queryset`` to ``to``, a chunk per transaction, each row re-checked under its
    lock (a row another process moved meanwhile is left alone): idempotent, resumable."""
    done = 0
    while True:
        with transaction.atomic():
            chunk = list(queryset.select_for_update(skip_locked=True).order_by("pk")[:chunk_size])
            if not chunk:
                return done
            entries = []
            for mandate in chunk:
                if to not in TRANSITIONS[mandate.status]:
                    continue
                before = mandate.status
                mandate.status = to
                for name, value in changes(mandate).items():
                    setattr(mandate, name, value)
                save_with_actor(mandate, actor=actor, reason=reason)
                entries.append(AuditEntry(f"mandate.{to}", mandate, {"from": before, "to": to}))
            audit_record_many(actor=actor, entries=entries)
        done += len(chunk)
        if progress is not None:
            progress(done)


def mandates_activate_due(
    *,
    today: datetime.date,
    actor: User,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Activate every lodged mandate whose lodgement period is over. Returns how many."""
    due = PaymentDetails.objects.filter(status=Status.LODGED, active_from__lte=today)
    return _bulk_transition(
        due,
        to=Status.ACTIVE,
        actor=actor,
        reason="Lodgement period over",
        changes=lambda _mandate: {},
        chunk_size=chunk_size,
        progress=progress,
    )


def dormant_mandates(*, today: datetime.date) -> Any:
    """Active mandates with nothing collected for ``DORMANCY_MONTHS`` (or since lodgement if never)."""
    # A day D is dormant on ``today`` when D + 13 months <= today; the cut-off is the latest such D. Month
    # ends clamp (add_months), so the cut-off is found by stepping back from today - 13 months.
    cutoff = add_months(today, -DORMANCY_MONTHS)
    while add_months(cutoff + datetime.timedelta(days=1), DORMANCY_MONTHS) <= today:
        cutoff += datetime.timedelta(days=1)
    return (
        PaymentDetails.objects.filter(status=Status.ACTIVE)
        .alias(dormant_from=Coalesce("last_collected_on", TruncDate("lodged_at")))
        .filter(dormant_from__lte=cutoff)
    )


def mandates_expire_dormant(
    *,
    today: datetime.date,
    actor: User,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Expire every dormant active mandate. Returns how many; a second run the same day finds none."""
    now = timezone.now()
    return _bulk_transition(
        dormant_mandates(today=today),
        to=Status.EXPIRED,
        actor=actor,
        reason=EXPIRY_REASON,
        changes=lambda _mandate: {"cancelled_at": now, "cancellation_reason": EXPIRY_REASON},
        chunk_size=chunk_size,
        progress=progress,
    )


def mandates_of(ids: Iterable[int]) -> list[PaymentDetails]:
    return list(PaymentDetails.objects.filter(pk__in=list(ids)).order_by("pk"))
