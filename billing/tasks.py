"""Billing tasks: thin, take ids, call a service; safe to run twice."""

import datetime
import logging
from typing import Any

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from accounts import mandates
from accounts.services import system_user
from billing import partitions
from billing.models import BillRun, DirectDebitSubmission, InvoiceDelivery
from billing.services import dunning
from billing.services.bill_runs import bill_run_calculate_chunk, bill_run_record_chunk_failure
from billing.services.call_imports import call_import_from_storage
from billing.services.direct_debit import direct_debit_notices_send
from billing.services.direct_debit_representation import representations_lapse
from billing.services.invoice_delivery import (
    InvoiceDeliveryFailed,
    invoice_deliveries_unsent,
    invoice_delivery_send,
)

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


# An invoice's email is tried this many times by its task (1, 2, 4 ... minutes apart, at most an hour), then
# again by the hourly sweep until this many attempts in all.
INVOICE_EMAIL_RETRIES = 8
INVOICE_EMAIL_MAX_ATTEMPTS = 24


def invoice_email_backoff(retries: int) -> int:
    """Seconds before retry number ``retries + 1``: doubling from a minute, at most an hour."""
    return int(min(60 * 2**retries, 60 * 60))


@shared_task(
    bind=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=INVOICE_EMAIL_RETRIES,
    acks_late=True,
    soft_time_limit=5 * 60,
    time_limit=6 * 60,
)
def send_invoice_email(self: Any, delivery_id: int) -> str:
    """Email one finalised invoice with its PDF (billing.services.invoice_delivery). A mail server failure is
    recorded on the delivery and retried with backoff; safe to run twice (a delivery sent sends nothing).
    Tasks run in-process (no broker) do not wait to retry: the failure stays recorded, the page that
    finalised the run is not broken by it, and the hourly sweep tries again."""
    try:
        return invoice_delivery_send(delivery_id=delivery_id).status
    except InvoiceDeliveryFailed as exc:
        if self.app.conf.task_always_eager:  # tasks run in-process (no broker), not by a worker
            logger.warning("%s; the hourly sweep tries again", exc)
            return InvoiceDelivery.Status.FAILED
        raise self.retry(exc=exc, countdown=invoice_email_backoff(self.request.retries)) from None


@shared_task(**DAILY_JOB)
def invoice_emails_sweep() -> int:
    """Hourly: queue again the invoice emails not sent an hour after their last try (a lost task, retries
    spent while the mail server was down). Each delivery sends at most once whatever runs it."""
    ids = invoice_deliveries_unsent(now=timezone.now(), max_attempts=INVOICE_EMAIL_MAX_ATTEMPTS)
    for delivery_id in ids:
        send_invoice_email.delay(delivery_id)
    return len(ids)


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


@shared_task(**DAILY_JOB)
def call_partitions_ahead_daily() -> dict[str, int]:
    """Daily: on PostgreSQL, this month's call partition and the next ones (billing.partitions), each
    created once; rows of a created month that the default partition caught move into it. Logs a warning
    while the default partition holds rows. Nothing to do on SQLite."""
    ensured = partitions.ensure_partitions_ahead(timezone.localdate())
    logger.info("Call partitions: %d created ahead", len(ensured.created))
    return {
        "created": len(ensured.created),
        "moved_from_default": ensured.moved_from_default,
        "left_in_default": ensured.left_in_default,
    }
