"""Billing tasks: thin, take ids, call a service; safe to run twice."""

from celery import shared_task
from django.db import OperationalError

from billing.services.bill_runs import bill_run_calculate_chunk, bill_run_record_chunk_failure
from billing.services.call_imports import call_import_from_storage


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
