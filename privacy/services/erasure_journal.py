"""Keeping the erasure journal (``privacy.erasure_journal``) and re-applying it after a restore.

- ``erasure_journal_write``: the entries of erasure records, written by a task once the erasure commits.
- ``erasure_journal_reconcile``: the entry of every erasure record the journal lacks (a task lost with the
  broker, a worker that could not write), written from the database; hourly, and at the end of a
  re-application. It also reports any file that does not verify.
- ``erasures_reapply``: every erasure journaled at or after a backup's time carried out again on the
  restored database, through ``customers_erase``, so the customers come out exactly as an erasure leaves
  them, with an audit event saying it was re-applied after a restore.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import groupby
from pathlib import Path
from typing import Any

from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.alerts import alert_recipients
from accounts.audit import AuditEntry, audit_record_many
from fusion_site import personal_data
from privacy.erasure import customers_erase
from privacy.erasure_journal import (
    JournalDirectoryError,
    JournalEntry,
    JournalInvalidError,
    journal_directory,
    journal_entry_sign,
    journal_read,
    journal_write,
)
from privacy.models import ErasureRecord

logger = logging.getLogger(__name__)

REAPPLY_CHUNK_SIZE = 200
JOURNAL_TASK_GRACE = datetime.timedelta(minutes=10)


def _entries_of(rows: Iterable[tuple[int, int, datetime.datetime, str]]) -> list[JournalEntry]:
    """Signed entries of erasure records, given as (id, customer id, erased at, request reference)."""
    return [
        journal_entry_sign(
            record_id=record_id,
            customer_id=customer_pk,
            erased_at=erased_at,
            request_reference=request_reference,
        )
        for record_id, customer_pk, erased_at, request_reference in rows
    ]


def erasure_journal_write(*, record_ids: Collection[int]) -> int:
    """Journal these erasure records (those already journaled are left); returns the entries written."""
    rows = (
        ErasureRecord.objects.filter(pk__in=list(record_ids))
        .order_by("pk")
        .values_list("pk", "customer_pk", "erased_at", "request_reference")
    )
    return len(journal_write(directory=journal_directory(), entries=_entries_of(rows)))


@dataclass(frozen=True)
class Reconciliation:
    written: int
    problems: list[str]


def _alert(subject: str, lines: list[str]) -> None:
    """Log as an error and mail the DPO and administrators, at most once a day for the same lines (the
    reconciliation runs hourly; a file that does not verify stays until someone explains it). The lines
    name files, record ids and customer ids: nothing about anyone."""
    body = "\n".join(lines)
    logger.error("Erasure journal: %s\n%s", subject, body)
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    if cache.add(f"erasure-journal-alert:{digest}", 1, timeout=24 * 60 * 60):
        recipients = alert_recipients()
        if recipients:
            send_mail(f"[Fusion privacy] Erasure journal: {subject}", body, None, recipients)


def erasure_journal_reconcile() -> Reconciliation:
    """Write the entry of every erasure record the journal lacks, and name the files that do not verify.
    Entries lost (not a task still queued) and files that do not verify are alerted: each lost entry was
    an erasure a restore would have undone. A journal that cannot be written is alerted and raised."""
    directory = journal_directory()
    try:
        return _reconcile(directory)
    except (JournalDirectoryError, OSError) as exc:
        _alert("it cannot be written", [f"{directory}: {exc}"])
        raise


def _reconcile(directory: Path) -> Reconciliation:
    entries, problems = journal_read(directory, missing_ok=True)
    journaled = {entry.key for entry in entries}
    missing = [
        row
        for row in ErasureRecord.objects.order_by("pk").values_list(
            "pk", "customer_pk", "erased_at", "request_reference"
        )
        if (row[0], row[1], row[2].astimezone(datetime.UTC)) not in journaled
    ]
    written = journal_write(directory=directory, entries=_entries_of(missing)) if missing else []
    # A record younger than this may have its task still queued: writing it here is a race, not a loss.
    lost_before = timezone.now() - JOURNAL_TASK_GRACE
    lost = [str(row[0]) for row in missing if row[2] < lost_before]
    if lost:
        _alert(
            f"{len(lost)} erasure record(s) had not been journaled",
            [f"Written now from the database: erasure records {', '.join(lost)}."],
        )
    if problems:
        _alert(f"{len(problems)} file(s) do not verify", problems)
    return Reconciliation(written=len(written), problems=problems)


class Outcome(StrEnum):
    ERASE = "erase"
    ALREADY = "already erased"
    ABSENT = "not in this database"
    BLOCKED = "blocked"


@dataclass
class Planned:
    """A customer the journal says was erased after the backup, and what re-applying does with them."""

    customer_id: int
    erased_at: datetime.datetime
    entries: list[JournalEntry]
    outcome: Outcome
    reference: str = ""
    detail: str = ""

    @property
    def request_reference(self) -> str:
        return self.entries[-1].request_reference

    def __str__(self) -> str:
        who = f"customer {self.customer_id}" + (f" ({self.reference})" if self.reference else "")
        records = ", ".join(str(entry.record_id) for entry in self.entries)
        when = f"{self.erased_at:%Y-%m-%d %H:%M:%S} UTC"
        text = f"{self.outcome}: {who}, erased {when} (journal record {records})"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class Reapplied:
    since: datetime.datetime
    plan: list[Planned] = field(default_factory=list)
    journal_written: int = 0

    def of(self, outcome: Outcome) -> list[Planned]:
        return [planned for planned in self.plan if planned.outcome == outcome]


def erasures_reapply_plan(*, entries: list[JournalEntry], since: datetime.datetime) -> list[Planned]:
    """The customers journaled as erased at or after ``since``, in id order, each with what re-applying
    would do: erase; nothing, the database already holds an erasure record as late as the journal's
    (re-applied before, or the dump was taken after it); or nothing, the customer is not in this database."""
    by_customer: dict[int, list[JournalEntry]] = {}
    for entry in entries:
        if entry.erased_at >= since:
            by_customer.setdefault(entry.customer_id, []).append(entry)
    ids = sorted(by_customer)
    model = personal_data.subject().model
    references = {
        pk: model.reference_of(pk)
        for pk in model._default_manager.filter(pk__in=ids).values_list("pk", flat=True)
    }
    latest_record = dict(
        ErasureRecord.objects.filter(customer_pk__in=ids)
        .order_by()
        .values("customer_pk")
        .annotate(last=Max("erased_at"))
        .values_list("customer_pk", "last")
    )
    plan = []
    for pk in ids:
        journaled = by_customer[pk]
        erased_at = max(entry.erased_at for entry in journaled)
        if pk not in references:
            plan.append(Planned(pk, erased_at, journaled, Outcome.ABSENT))
        elif latest_record.get(pk) is not None and latest_record[pk] >= erased_at:
            plan.append(
                Planned(
                    pk,
                    erased_at,
                    journaled,
                    Outcome.ALREADY,
                    references[pk],
                    f"erasure record of {latest_record[pk].astimezone(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC",
                )
            )
        else:
            plan.append(Planned(pk, erased_at, journaled, Outcome.ERASE, references[pk]))
    return plan


def erasures_reapply(
    *,
    since: datetime.datetime,
    actor: Any,
    dry_run: bool = False,
    progress: Callable[[Planned], None] | None = None,
) -> Reapplied:
    """Carry out again every erasure journaled at or after ``since`` that this database does not hold.

    Raises JournalDirectoryError or JournalFileError (naming the file) before changing anything when the
    journal is missing or any file in it does not verify: a journal someone has tampered with is not
    acted on, in part or whole. Idempotent: a second run finds every customer already erased."""
    entries, problems = journal_read(journal_directory())
    if problems:
        raise JournalInvalidError(problems)
    result = Reapplied(since=since, plan=erasures_reapply_plan(entries=entries, since=since))
    if dry_run:
        for planned in result.plan:
            if progress:
                progress(planned)
        return result
    to_erase = sorted(
        result.of(Outcome.ERASE), key=lambda planned: (planned.request_reference, planned.customer_id)
    )
    for reference, group in groupby(to_erase, key=lambda planned: planned.request_reference):
        planned_group = list(group)
        for start in range(0, len(planned_group), REAPPLY_CHUNK_SIZE):
            _reapply_chunk(planned_group[start : start + REAPPLY_CHUNK_SIZE], reference, since, actor)
    for planned in result.plan:
        if progress:
            progress(planned)
    result.journal_written = erasure_journal_reconcile().written
    return result


@transaction.atomic
def _reapply_chunk(
    chunk: list[Planned], request_reference: str, since: datetime.datetime, actor: Any
) -> None:
    """Erase one chunk (customers journaled under the same request, or none) in one transaction, with an
    audit event per customer saying the erasure was re-applied after a restore and which entry asked."""
    by_id = {planned.customer_id: planned for planned in chunk}
    erased = customers_erase(
        customer_ids=list(by_id),
        actor=actor,
        # Short: it also becomes the history rows' change reason (100 characters, with the request's).
        reason=f"Re-applied after a restore (backup of {since:%Y-%m-%d %H:%M} UTC)",
        request_reference=request_reference,
    )
    for blocked in erased.blocked:
        planned = by_id[blocked.customer.pk]
        planned.outcome = Outcome.BLOCKED
        planned.detail = "; ".join(blocked.blockers)
    customers = personal_data.subject().model._default_manager.in_bulk(
        [record.customer_pk for record in erased.records]
    )
    audit_record_many(
        actor=actor,
        entries=[
            AuditEntry(
                "customer.erasure_reapplied",
                customers[record.customer_pk],
                {
                    "record": record.pk,
                    "journal_records": [entry.record_id for entry in by_id[record.customer_pk].entries],
                    "erased_at": by_id[record.customer_pk].erased_at.isoformat(),
                    "backup_taken_at": since.isoformat(),
                },
            )
            for record in erased.records
        ],
    )
