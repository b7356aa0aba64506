"""Billing tasks: thin, take ids, call a service; safe to run twice."""

import datetime
import logging
from typing import Any

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from accounts import mandates
from accounts.services import system_user
from billing.models import BillRun, DirectDebitSubmission
from billing.services import dunning
from billing.services.bill_runs import bill_run_calculate_chunk, bill_run_record_chunk_failure
from billing.services.call_imports import call_import_from_storage
from billing.services.direct_debit import direct_debit_notices_send
from billing.services.direct_debit_representation import representations_lapse

logger = logging.getLogger(__name__)

# Runs finalised this many days ago or less still get their advance notices from the daily job.
NOTICE_LOOKBACK_DAYS = 31


# The daily jobs' task options: retried on a lost database connection, acknowledged after the work, and
# stopped if a run ever takes half an hour.
DAILY_JOB: dict[str, Any] = {
    "autoretry_for": (OperationalError,),
    "retry_backoff": True,
    "max_retries": 3,
    "acks_late": True,
    "soft_time_limit": 25 * 60,
    "time_limit": 30 * 60,
}


@shared_task(
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    acks_late=True,
    soft_time_limit=15 * 60,
    time_limit=20 * 60,
)
def calculate_bill_run_chunk(chunk_id: int, actor_id: int | None) -> bool:
    try:
        return bill_run_calculate_chunk(chunk_id=chunk_id, actor_id=actor_id)
    except Exception as exc:
        # The chunk's transaction rolled back; say so on the run, where "resume" picks it up again.
        bill_run_record_chunk_failure(chunk_id=chunk_id, error=f"{type(exc).__name__}: {exc}")
        raise


@shared_task(acks_late=True, soft_time_limit=60 * 60, time_limit=65 * 60)
def import_call_file(call_import_id: int, stored_name: str) -> int | None:
    call_import = call_import_from_storage(call_import_id=call_import_id, stored_name=stored_name)
    return call_import.imported if call_import else None


@shared_task(**DAILY_JOB)
def direct_debit_mandates_daily() -> dict[str, int]:
    """Daily: activate the lodged mandates whose lodgement period is over, and expire those dormant for 13
    months (accounts.mandates). Level-triggered and idempotent: a missed day is caught up, a second run
    finds nothing; chunks of one transaction each, progress logged."""
    actor = system_user(job=mandates.MANDATE_JOB)
    today = timezone.localdate()

    def progress(step: str) -> mandates.Progress:
        return lambda done: logger.info("Direct Debit mandates: %s %d so far", step, done)

    activated = mandates.mandates_activate_due(today=today, actor=actor, progress=progress("activated"))
    expired = mandates.mandates_expire_dormant(today=today, actor=actor, progress=progress("expired"))
    return {"activated": activated, "expired": expired}


@shared_task(**DAILY_JOB)
def send_direct_debit_notices_daily() -> int:
    """Daily: the advance notices of recently finalised runs not yet exported (one run a transaction; a
    run whose notices are all sent sends none)."""
    actor = system_user(job="direct-debit-notices")
    since = timezone.localdate() - datetime.timedelta(days=NOTICE_LOOKBACK_DAYS)
    live = DirectDebitSubmission.objects.filter(cancelled_at__isnull=True).values("bill_run_id")
    runs = BillRun.objects.filter(status=BillRun.Status.FINALISED, issue_date__gte=since).exclude(pk__in=live)
    sent = 0
    for bill_run in runs.order_by("pk"):
        sent += direct_debit_notices_send(bill_run=bill_run, actor=actor)
    return sent


@shared_task(**DAILY_JOB)
def direct_debit_representations_lapse_daily() -> int:
    """Daily: returns "refer to payer" whose re-presentation deadline a file made today could no longer
    meet are left to dunning (billing.services.direct_debit_representation); idempotent."""
    actor = system_user(job="direct-debit-representations")
    return representations_lapse(made_at=timezone.now(), actor=actor)


@shared_task(**DAILY_JOB)
def dunning_daily() -> dict[str, int]:
    """Daily: take the partners' dunning steps that are due (billing.services.dunning). Idempotent: each
    step is recorded once per customer and overdue episode, so a retried or doubled run sends nothing
    twice; a chunk of customers per transaction, progress logged."""
    actor = system_user(job=dunning.DUNNING_JOB)
    counts = dunning.dunning_run(
        today=timezone.localdate(),
        actor=actor,
        progress=lambda done: logger.info("Dunning: %d customers looked at so far", done),
    )
    return dict(counts)
