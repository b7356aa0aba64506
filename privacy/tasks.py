"""Privacy tasks: thin, take ids, call a service; safe to run twice."""

from celery import shared_task

from privacy.services import exports


@shared_task(acks_late=True, soft_time_limit=20 * 60, time_limit=25 * 60)
def build_data_export(export_id: int) -> str | None:
    export = exports.data_export_build(export_id=export_id)
    return export.status if export else None


@shared_task(acks_late=True, soft_time_limit=10 * 60, time_limit=15 * 60)
def purge_expired_data_exports() -> int:
    return exports.data_export_purge_expired()
