"""Privacy tasks: thin, call a service, safe to run twice."""

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from privacy.services import erasure_journal, exports, governance, retention
from privacy.services.breaches import breach_reminders_send
from privacy.services.requests.reminders import privacy_deadline_reminders_send


@shared_task(
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=300, time_limit=360
)
def send_deadline_reminders() -> int:
    """Nightly: email the DPO group about requests overdue or due soon. A second run the same day sends
    nothing (the service records each day's run)."""
    run = privacy_deadline_reminders_send(
        today=timezone.localdate(), within_days=settings.PRIVACY_REMINDER_DAYS
    )
    return 0 if run is None else run.recipients


@shared_task(acks_late=True, soft_time_limit=20 * 60, time_limit=25 * 60)
def build_data_export(export_id: int) -> str | None:
    export = exports.data_export_build(export_id=export_id)
    return export.status if export else None


@shared_task(acks_late=True, soft_time_limit=10 * 60, time_limit=15 * 60)
def purge_expired_data_exports() -> int:
    return exports.data_export_purge_expired()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    soft_time_limit=6 * 60 * 60,
    time_limit=6 * 60 * 60 + 300,
)
def run_retention(self: Task) -> int | None:
    """Nightly: delete what retention no longer lets us keep. Acknowledged only when done, so a worker
    killed mid-run has the task redelivered; the redelivery carries on the same run record, and a
    delivery after the run finished does nothing. If the lease is still held by another delivery of this
    task (a killed one's, not yet expired), try again once it has expired; if another run holds it, this
    one does nothing."""
    task_id = str(self.request.id)
    run = retention.retention_run(task_id=task_id)
    if run is None:
        if retention.retention_lock_held_by_task(task_id):
            raise self.retry(countdown=int(settings.RETENTION_LOCK_TTL_SECONDS) + 1)
        return None
    return run.pk


@shared_task(
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=60, time_limit=90
)
def abandon_lapsed_retention_runs() -> int:
    """Every few minutes: a retention run (dry runs too) whose worker stopped renewing its lease is
    marked abandoned, so the Retention page does not show it running for ever."""
    return retention.retention_runs_abandon_lapsed()


@shared_task(
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=300, time_limit=360
)
def send_assessment_reminders() -> int:
    """Daily: mail the DPO group about impact assessments whose review is due within
    ``DPIA_REVIEW_REMINDER_DAYS`` days or whose activity changed since sign-off, each reminder once."""
    return len(
        governance.assessment_reminders_send(
            today=timezone.localdate(), within_days=settings.DPIA_REVIEW_REMINDER_DAYS
        )
    )


@shared_task(
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=120, time_limit=180
)
def send_breach_reminders() -> int:
    """Every quarter of an hour: remind the DPO of breaches 24 h, 48 h and 72 h after awareness, each
    reminder once (recorded)."""
    return len(breach_reminders_send(now=timezone.now()))


@shared_task(
    autoretry_for=(OSError, OperationalError),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=120,
    time_limit=180,
)
def write_erasure_journal(record_ids: list[int]) -> int:
    """Queued when an erasure commits: journal its records outside the database (privacy.erasure_journal).
    Safe to run twice: an entry already written is left as it is."""
    return erasure_journal.erasure_journal_write(record_ids=record_ids)


@shared_task(
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=600, time_limit=660
)
def reconcile_erasure_journal() -> int:
    """Hourly: journal every erasure record the journal lacks (a lost task), and log every file that does
    not verify."""
    return erasure_journal.erasure_journal_reconcile().written
