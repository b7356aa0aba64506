"""Billing tasks: thin, take ids, call a service; safe to run twice."""

from celery import shared_task
from django.db import OperationalError

from billing import services


@shared_task(
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    acks_late=True,
    soft_time_limit=15 * 60,
    time_limit=20 * 60,
)
def calculate_bill_run_chunk(chunk_id: int, actor_id: int | None) -> bool:
    return services.bill_run_calculate_chunk(chunk_id=chunk_id, actor_id=actor_id)
