"""Call record imports started from the pages, the command and the worker, and re-rating the suspense
queue. The reading and loading of the file itself is ``billing.importer``."""

import csv
import uuid
from typing import IO, Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from accounts.models import Partner, User
from billing import rating
from billing.importer.parse import ImportFileError, text_stream
from billing.importer.pipeline import run_import
from billing.models import (
    CallImport,
    CallImportError,
)


def call_import_run(
    *, partner: Partner, stream: IO[str], file_name: str, actor: User | None, progress: Any = None
) -> CallImport:
    """Import a CSV of call records for the partner now, then rate them. Batches commit as they go."""
    call_import = CallImport.objects.create(partner=partner, file_name=file_name[:255], uploaded_by=actor)
    return call_import_process(call_import=call_import, stream=stream, progress=progress)


def call_import_process(*, call_import: CallImport, stream: IO[str], progress: Any = None) -> CallImport:
    try:
        run_import(call_import=call_import, stream=stream, **({"progress": progress} if progress else {}))
    except (ImportFileError, UnicodeDecodeError, csv.Error) as exc:
        call_import.status = CallImport.Status.FAILED
        call_import.finished_at = timezone.now()
        call_import.save(update_fields=["status", "finished_at", "updated_at"])
        CallImportError.objects.create(call_import=call_import, line_number=0, reason=str(exc)[:300])
        raise ImportFileError(str(exc)) from exc
    return call_import


def call_import_queue(*, partner: Partner, upload: Any, actor: User) -> CallImport:
    """Keep the uploaded file in private storage and import it in a task; the page shows progress.
    The file holds personal data, so the task deletes it once read."""
    call_import = CallImport.objects.create(partner=partner, file_name=upload.name[:255], uploaded_by=actor)
    stored_name = default_storage.save(f"call-imports/{call_import.pk}-{uuid.uuid4().hex}.csv", upload)
    from billing.tasks import import_call_file

    transaction.on_commit(lambda: import_call_file.delay(call_import.pk, stored_name))
    return call_import


def call_import_from_storage(*, call_import_id: int, stored_name: str) -> CallImport | None:
    call_import = CallImport.objects.filter(pk=call_import_id, status=CallImport.Status.RUNNING).first()
    if call_import is None:
        return None
    try:
        with default_storage.open(stored_name, "rb") as raw, text_stream(raw) as text:
            call_import_process(call_import=call_import, stream=text)
    except ImportFileError:
        pass  # recorded on the import and shown on its page
    finally:
        default_storage.delete(stored_name)
    return call_import


@transaction.atomic
def suspense_rerate(
    *, partner: Partner, actor: User, call_ids: list[int] | None = None
) -> rating.RatingResult:
    """Try suspense calls again, after a tariff or line was fixed."""
    rating.requeue_suspense(partner_id=partner.pk, call_ids=call_ids)
    return rating.rate_pending_calls(partner_id=partner.pk)
