"""A finalised bill run's Bacs Standard 18 Direct Debit submission: made once, handed out again unchanged,
cancelled with a reason."""

import datetime
import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from billing.models import (
    BillRun,
    BillRunEvent,
    DirectDebitSubmission,
    PartnerBillingProfile,
)
from billing.services.bill_runs import (
    lock_bill_run_to,
    record_event,
    recording_refusals,
    refused,
)
from billing.services.errors import BillingError
from fusion_site.models import save_with_actor

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


@recording_refusals
@transaction.atomic
def direct_debit_export(*, bill_run: BillRun, actor: User) -> DirectDebitSubmission:
    """The run's Direct Debit submission: made and recorded the first time, the same bytes every time
    after, until that submission is cancelled (``direct_debit_submission_cancel``)."""
    from billing import bacs, bacs_collections

    # The run's row lock serialises two exports of it: the second waits, then finds the first's file.
    bill_run = lock_bill_run_to("export Direct Debit files of", bill_run, actor, "billing.finalise_billrun")
    # A restriction holds exports to third parties, the file already made included.
    if bill_run.is_restricted:
        raise refused(
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
    promised = direct_debit_promised_date(bill_run)
    processing_date = bacs.processing_day(made_at=made_at, promised=promised)
    # The partner's profile lock serialises serials: two runs of one partner never share one.
    PartnerBillingProfile.objects.select_for_update().filter(partner_id=bill_run.partner_id).first()
    exported = BillRunEvent.objects.filter(
        bill_run__partner_id=bill_run.partner_id, action=DIRECT_DEBIT_EXPORTED
    ).count()
    serial = f"{exported + 1:06d}"
    try:
        result = bacs_collections.build_standard18(
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
    record_event(
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


@recording_refusals
@transaction.atomic
def direct_debit_submission_cancel(
    *, submission: DirectDebitSubmission, actor: User, reason: str
) -> DirectDebitSubmission:
    """Record that a submission's file will not be (or was not) processed, so the run may be exported
    again. The finance manager says why; the file itself is kept."""
    bill_run = lock_bill_run_to(
        "cancel Direct Debit files of", submission.bill_run, actor, "billing.finalise_billrun"
    )
    submission = DirectDebitSubmission.objects.select_for_update().get(pk=submission.pk)
    if submission.is_cancelled:
        raise BillingError(f"Submission {submission.serial} is already cancelled.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the submission is cancelled."})
    submission.cancelled_at = timezone.now()
    submission.cancelled_by = actor
    submission.cancelled_reason = reason.strip()
    save_with_actor(submission, actor=actor, reason=f"Cancelled: {submission.cancelled_reason}")
    record_event(
        bill_run, actor, DIRECT_DEBIT_CANCELLED, f"serial {submission.serial}: {submission.cancelled_reason}"
    )
    audit_record(
        actor=actor,
        action="direct_debit_submission.cancelled",
        target=submission,
        detail={"serial": submission.serial, "sha256": submission.sha256},
    )
    return submission
