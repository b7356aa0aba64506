"""Privacy tasks: thin, call a service, safe to run twice."""

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from privacy.services import exports
from privacy.services.requests import privacy_deadline_reminders_send


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
