"""Writes of data portability exports: request one, build its file, record downloads, delete it on expiry.

The file is built by a task queued on commit (privacy.tasks.build_data_export), outside any transaction:
reading 100,000 calls must not hold a row lock. Only the final step, moving the finished file into place
and marking the export ready, runs in a short transaction under a lock of the export row, so a task that
runs twice leaves one file and one history row.
"""

import datetime
import logging
import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import AccessLog, Customer, User
from accounts.services import access_log_record, system_user
from fusion_site.models import save_with_actor
from privacy.models import DataExport
from privacy.models.exports import export_directory_of
from privacy.portability import CATEGORIES, write_export

logger = logging.getLogger(__name__)

EXPORT_JOB = "privacy-exports"
PURGE_BATCH_SIZE = 200


def export_lifetime() -> datetime.timedelta:
    return datetime.timedelta(days=settings.PRIVACY_EXPORT_RETENTION_DAYS)


@transaction.atomic
def portability_export_create(*, customer: Customer, actor: User, request_reference: str = "") -> DataExport:
    """Request a portability export of the customer's data; the file is built by a task after commit.

    A customer whose processing is restricted still gets its export: the restriction holds processing
    for the provider's purposes and disclosures to third parties, and the subject's own copy is neither.
    """
    Customer.objects.select_for_update().filter(pk=customer.pk).first()  # one pending export at a time
    if DataExport.objects.filter(customer=customer, status=DataExport.Status.PENDING).exists():
        raise ValidationError("An export of this account is already being prepared; wait for it to finish.")
    export = DataExport(
        customer=customer,
        requested_by=actor,
        request_reference=request_reference.strip(),
        expires_at=timezone.now() + export_lifetime(),
    )
    save_with_actor(export, actor=actor, reason="Data portability export requested")
    _queue_build(export.pk)
    return export


def _queue_build(export_id: int) -> None:
    from privacy.tasks import build_data_export

    transaction.on_commit(lambda: build_data_export.delay(export_id))


def data_export_build(*, export_id: int) -> DataExport | None:
    """Write the export's zip and mark it ready (or failed). Idempotent: only a pending export is built."""
    export = DataExport.objects.select_related("customer").filter(pk=export_id).first()
    if export is None or export.status != DataExport.Status.PENDING:
        return export
    directory = export_directory_of(export.customer_id)
    directory.mkdir(parents=True, exist_ok=True)
    # A name of its own per attempt, so two workers building the same export never share a file.
    partial = directory / f"{export.public_id}.{secrets.token_hex(4)}.part"
    try:
        counts = write_export(export.customer, partial, generated_at=timezone.now())
    except Exception as exc:
        partial.unlink(missing_ok=True)
        logger.exception("Data export %s failed", export.public_id)
        return _mark_failed(export_id, reason=f"{type(exc).__name__} while writing the file")
    return _mark_ready(export_id, partial=partial, counts=counts)


@transaction.atomic
def _mark_ready(export_id: int, *, partial: Path, counts: dict[str, int]) -> DataExport:
    export = DataExport.objects.select_for_update().get(pk=export_id)
    if export.status != DataExport.Status.PENDING:
        partial.unlink(missing_ok=True)
        return export
    final = export.storage_path()
    os.replace(partial, final)
    now = timezone.now()
    export.status = DataExport.Status.READY
    export.file_path = str(final.relative_to(settings.MEDIA_ROOT))
    export.size_bytes = final.stat().st_size
    export.row_counts = counts
    export.completed_at = now
    export.expires_at = now + export_lifetime()
    return save_with_actor(export, actor=system_user(job=EXPORT_JOB), reason="Export file written")


@transaction.atomic
def _mark_failed(export_id: int, *, reason: str) -> DataExport:
    export = DataExport.objects.select_for_update().get(pk=export_id)
    if export.status != DataExport.Status.PENDING:
        return export
    export.status = DataExport.Status.FAILED
    export.failure_reason = reason[:200]
    return save_with_actor(export, actor=system_user(job=EXPORT_JOB), reason="Export failed")


def data_export_record_download(
    *, export: DataExport, user: User, now: datetime.datetime | None = None
) -> AccessLog:
    """Log a download in the access log (who, which customer, what, why) and count it on the export.

    The counter is a single UPDATE, not a history row: the access log is the record of each download."""
    reason = (
        "The customer downloaded its own data portability export"
        if user.is_portal_user
        else "Downloaded a data portability export for the data subject"
    )
    if export.request_reference:
        reason += f" (request {export.request_reference})"
    entry = access_log_record(
        user=user,
        customer=export.customer,
        action=AccessLog.Action.EXPORT_DOWNLOAD,
        fields=[f"export.{category.name}" for category in CATEGORIES],
        reason=f"{reason}; export {export.public_id}",
    )
    DataExport.objects.filter(pk=export.pk).update(
        download_count=F("download_count") + 1, last_downloaded_at=now or timezone.now()
    )
    return entry


def data_export_purge_expired(
    *, now: datetime.datetime | None = None, batch_size: int = PURGE_BATCH_SIZE
) -> int:
    """Delete the files of every export past its expiry and mark it expired; returns how many.

    Level-triggered (anything past due, however late), one transaction per export, safe to run again."""
    now = now or timezone.now()
    actor = system_user(job=EXPORT_JOB)
    purged = 0
    while True:
        due = list(
            DataExport.objects.filter(expires_at__lte=now)
            .exclude(status=DataExport.Status.EXPIRED)
            .order_by("id")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not due:
            return purged
        for export_id in due:
            purged += _expire(export_id, now=now, actor=actor)


@transaction.atomic
def _expire(export_id: int, *, now: datetime.datetime, actor: User) -> int:
    export = DataExport.objects.select_for_update().filter(pk=export_id).first()
    if export is None or export.status == DataExport.Status.EXPIRED or export.expires_at > now:
        return 0
    # Deleted before the commit: if the commit then fails the export is still due and the next run
    # retries, whereas deleting after it could leave a file behind an export already marked expired.
    export.storage_path().unlink(missing_ok=True)
    export.status = DataExport.Status.EXPIRED
    export.file_path = ""
    save_with_actor(export, actor=actor, reason="Expired: file deleted")
    return 1
