"""Erasure of a customer: a preview of what goes and what stays, and the erasure itself.

Privacy names no other app's tables: each app declares how its rows of given customers are found, erased
or kept (``<app>/personal_data.py``, read through ``fusion_site.personal_data``), and this module runs the
declarations. Both the preview and the erasure read the same list of steps (``_steps``, one per declared
statement), so the preview counts exactly the rows the erasure then deletes or anonymises. Each step is one
set-based statement (``_raw_delete`` or ``update``), so the number of queries does not depend on how many
calls, sites or history rows the customer has: rows are never loaded into Python, which also means no
delete signals and no cascade collection. The statements run in the order the declarations give, so that
each subquery still finds the rows it reads (calls are found through the customer's lines before the
lines and their history go).

``customers_erase`` erases several customers (a retention chunk) in one transaction with the same
statements, filtered by ``customer_id IN (...)``: the number of queries does not depend on how many
customers there are either. Blockers are checked per customer first; a blocked customer is left untouched
and reported, the others are erased. Each erased customer still gets its own ``ErasureRecord``, event and
audit entry (bulk-inserted), with the rows counted per customer: every statement says whose each row is
(``Erase.owner``) and its rows are counted by that owner just before the statement runs. ``customer_erase``
is the same code with one customer, which raises instead of reporting when it is blocked.

What stays:
- the Customer row, anonymised and marked ``erased_at``: finalised invoices, access logs and bill run
  records name it;
- finalised VAT invoices, their lines and credit notes, with the snapshot the law requires (number,
  dates, supplier, the customer's name and address as invoiced, amounts) for 6 years from issue
  (``privacy.data_map.VAT_RECORDS``); the retention job removes them after that;
- the access log (who read the data and why), kept under UK GDPR Art. 5(2)/32;
- Direct Debit submissions of the customer's bill runs, without the file's text (which names every payer
  of the run, so it is cleared for any of them): serial, dates, SHA-256, count and total;
- portal users, deactivated and stripped of name, email, password and every permission (history rows
  and the access log point at them).

Blocked: a customer with a draft invoice in an open bill run. Erasing would either remove a run's
invoice while it is reviewed or leave a run billing an erased account; the run is finalised (the
invoice is then kept) or cancelled first. Other findings (active lines, orders in flight, calls rated but
never billed) are warnings the approver reads: Fusion records no payments, so whether money is owed is
confirmed with finance before approval (legal holds, when they exist, stop erasure the same way).
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, F, Max, Q, QuerySet
from django.utils import timezone
from simple_history.utils import bulk_create_with_history

from accounts.audit import AuditEntry, audit_record_many
from fusion_site import personal_data
from fusion_site.customer_cache import customer_cache_forget_many
from fusion_site.personal_data import Declaration, Erase, ErasureAction, LegalObligation, Owner
from privacy.deadlines import add_calendar_months
from privacy.models import ErasureEvent, ErasureRecord

EXPORTS_DIR = "exports"

logger = logging.getLogger(__name__)


class ErasureBlockedError(ValidationError):
    """Something stops erasure now; the message says what and what to do first."""


@dataclass(frozen=True)
class TableErasure:
    table: str
    action: ErasureAction
    rows: int
    note: str


@dataclass(frozen=True)
class TableKept:
    table: str
    rows: int
    law: LegalObligation
    what: str
    until: datetime.date | None = None


@dataclass(frozen=True)
class ErasurePreview:
    customer_pk: int
    customer_reference: str
    already_erased_at: datetime.datetime | None
    erased: list[TableErasure]
    kept: list[TableKept]
    blockers: list[str]
    warnings: list[str]
    files: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def can_erase(self) -> bool:
        return not self.blockers

    @property
    def rows_to_erase(self) -> int:
        return sum(item.rows for item in self.erased)


@dataclass(frozen=True)
class BlockedErasure:
    customer: Any
    blockers: list[str]


@dataclass(frozen=True)
class CustomersErased:
    """What ``customers_erase`` did: a record per customer erased (or erased again), in id order; the
    customers it left untouched and why; and the rows per table over them all."""

    records: list[ErasureRecord]
    blocked: list[BlockedErasure]
    counts: dict[str, int]


# The customer a row is erased for, as an annotation, when one statement erases several customers' rows.
OWNER = "erasure_owner"


@dataclass(frozen=True)
class _Step:
    """One declared statement (``fusion_site.personal_data.Erase``) made for these customers: delete the
    queryset, or update it with ``changes``."""

    queryset: QuerySet[Any]
    note: str
    changes: dict[str, Any] | None
    still_personal: Q | None
    owner: Owner
    customer_ids: list[int]

    @classmethod
    def of(cls, statement: Erase, customer_ids: list[int], now: datetime.datetime) -> _Step:
        return cls(
            queryset=statement.rows(customer_ids),
            note=statement.note,
            changes=None if statement.changes is None else dict(statement.changes(customer_ids, now)),
            still_personal=statement.still_personal,
            owner=statement.owner,
            customer_ids=customer_ids,
        )

    @property
    def table(self) -> str:
        return self.queryset.model._meta.label

    @property
    def action(self) -> ErasureAction:
        return ErasureAction.DELETE if self.changes is None else ErasureAction.ANONYMISE

    def pending(self) -> QuerySet[Any]:
        return self.queryset if self.still_personal is None else self.queryset.filter(self.still_personal)

    def run(self) -> int:
        if self.changes is None:
            return int(self.queryset._raw_delete(self.queryset.db))
        return self.pending().update(**self.changes)

    def run_counting(self, customer_ids: Sequence[int]) -> tuple[int, dict[int, int]]:
        """Run the statement; returns its rows and those rows per customer. With one customer they are all
        its own; with several they are counted by owner just before, in the same transaction (a row two of
        them share counts once, for one of them)."""
        if len(customer_ids) == 1:
            rows = self.run()
            return rows, {customer_ids[0]: rows}
        # Built only here: with one customer, whose rows they are needs no expression.
        owner = F(self.owner) if isinstance(self.owner, str) else self.owner(self.customer_ids)
        per_customer = dict(
            self.pending()
            .order_by()
            .annotate(**{OWNER: owner})
            .values(OWNER)
            .annotate(rows=Count("*"))
            .values_list(OWNER, "rows")
        )
        return self.run(), per_customer


def _steps(customer_ids: Sequence[int], now: datetime.datetime | None = None) -> list[_Step]:
    """The statements that erase these customers, as the apps declared them, in the order they run."""
    ids = list(customer_ids)
    now = now or timezone.now()
    return [_Step.of(statement, ids, now) for statement in personal_data.erasure_statements()]


def _export_dirs(customer_ids: Collection[int]) -> dict[int, Path]:
    """The export directories (``MEDIA_ROOT/exports/<customer id>/``) that exist for these customers.

    Read from one listing of the exports directory, not a ``Path`` built per customer: pathlib interns each
    part of a path, so a path per customer interns a new string per customer, and that churn makes the
    interpreter reallocate its table of interned strings (about 2 MiB) every few thousand customers,
    which showed as the retention run's memory peak growing with the customers due."""
    root = Path(settings.MEDIA_ROOT) / EXPORTS_DIR
    if not root.is_dir():
        return {}
    wanted = {str(pk): pk for pk in customer_ids}
    with os.scandir(root) as entries:
        return {
            wanted[entry.name]: Path(entry.path)
            for entry in entries
            if entry.name in wanted and entry.is_dir()
        }


def _count_files(directory: Path | None) -> int:
    if directory is None:
        return 0
    return sum(1 for path in directory.rglob("*") if path.is_file())


def _blockers(customer_ids: Collection[int]) -> dict[int, list[str]]:
    """What stops erasing each of these customers now (customers with nothing in the way are absent), as
    each app declared it (an open bill run's draft invoice, a legal hold)."""
    blockers: dict[int, list[str]] = {}
    for checks in personal_data.customer_checks():
        if checks.blockers is not None:
            for pk, found in checks.blockers(customer_ids).items():
                blockers.setdefault(pk, []).extend(found)
    return blockers


def _warnings(customer: Any) -> list[str]:
    """What the approver reads before erasing (active lines, orders in flight, calls never billed)."""
    return [
        warning
        for checks in personal_data.customer_checks()
        if checks.warnings is not None
        for warning in checks.warnings(customer)
    ]


def _kept_by_owner(declaration: Declaration, customer_ids: Collection[int]) -> dict[int, tuple[int, Any]]:
    """One grouped query: the kept rows of each customer, and the latest anchor date among them."""
    kept = declaration.kept
    assert kept is not None
    grouped = kept.rows(list(customer_ids)).order_by().values(kept.owner)
    if kept.anchor_field:
        rows = grouped.annotate(rows=Count("pk"), last=Max(kept.anchor_field))
        return {row[kept.owner]: (row["rows"], row["last"]) for row in rows}
    return {
        owner: (rows, None)
        for owner, rows in grouped.annotate(rows=Count("pk")).values_list(kept.owner, "rows")
    }


def _kept(customer_ids: Collection[int]) -> dict[int, list[TableKept]]:
    """What erasure keeps of each customer, and the law that keeps it (until the declared period has passed
    after the latest anchor): one grouped query per kept model for all the customers."""
    kept: dict[int, list[TableKept]] = {pk: [] for pk in customer_ids}
    for declaration in personal_data.declarations():
        if declaration.kept is None or declaration.kept_under is None:
            continue
        months = declaration.retention[0].months
        by_owner = _kept_by_owner(declaration, customer_ids)
        for pk in customer_ids:
            rows, last = by_owner.get(pk, (0, None))
            # Calendar months, so an invoice of 29 February is kept until 28 February six years on.
            until = add_calendar_months(last, months) if last else None
            kept[pk].append(
                TableKept(declaration.model, rows, declaration.kept_under, declaration.kept.what, until)
            )
    return kept


def erasure_preview(*, customer: Any) -> ErasurePreview:
    """What erasing ``customer`` would delete or anonymise (rows per table), what it keeps and the law that
    keeps it, and what blocks it. Reads only; a fixed number of queries whatever the customer's size."""
    subject = personal_data.subject()
    erased = [
        TableErasure(step.table, step.action, step.pending().count(), step.note)
        for step in _steps([customer.pk])
    ]
    erased.append(
        TableErasure(
            subject.model._meta.label, ErasureAction.ANONYMISE, 0 if customer.is_erased else 1, subject.note
        )
    )
    return ErasurePreview(
        customer_pk=customer.pk,
        customer_reference=customer.reference,
        already_erased_at=customer.erased_at,
        erased=erased,
        kept=_kept([customer.pk])[customer.pk],
        blockers=_blockers([customer.pk]).get(customer.pk, []),
        warnings=_warnings(customer),
        files=_count_files(_export_dirs([customer.pk]).get(customer.pk)),
        notes=[
            "Portal users stay, deactivated, without name, email or password: history and logs name them.",
            "Portal users' sessions stop authenticating at once (the users are inactive) and expire.",
        ],
    )


@transaction.atomic
def customer_erase(*, customer: Any, actor: Any, reason: str, request_reference: str = "") -> ErasureRecord:
    """Carry out the declared erasure of everything about ``customer``, in one transaction.

    Idempotent: a second run finds nothing left and records a repeat with zero counts. Raises
    ErasureBlockedError (naming what blocks it) before changing anything."""
    erased = customers_erase(
        customer_ids=[customer.pk], actor=actor, reason=reason, request_reference=request_reference
    )
    if erased.blocked:
        raise ErasureBlockedError({"customer": erased.blocked[0].blockers})
    if not erased.records:
        raise personal_data.subject().model.DoesNotExist(f"No customer with id {customer.pk}.")
    return erased.records[0]


@dataclass
class _Counts:
    """Rows erased per table: over all the customers, and per customer."""

    totals: dict[str, int]
    per_customer: dict[int, dict[str, int]]

    def add(self, table: str, rows: int, per_customer: dict[int, int]) -> None:
        if rows:
            self.totals[table] = self.totals.get(table, 0) + rows
        for pk, owned in per_customer.items():
            if owned and pk in self.per_customer:
                counts = self.per_customer[pk]
                counts[table] = counts.get(table, 0) + owned


def _lock_erasable(customer_ids: Collection[int]) -> tuple[list[Any], list[BlockedErasure]]:
    """The customers, locked in id order (so two erasures of overlapping sets cannot deadlock), split
    into those to erase and those something blocks."""
    customers = list(
        personal_data.subject()
        .model._default_manager.select_for_update()
        .filter(pk__in=customer_ids)
        .order_by("pk")
    )
    blockers = _blockers([customer.pk for customer in customers])
    blocked = [BlockedErasure(c, blockers[c.pk]) for c in customers if c.pk in blockers]
    return [customer for customer in customers if customer.pk not in blockers], blocked


def _run_statements(ids: list[int], now: datetime.datetime) -> _Counts:
    counts = _Counts(totals={}, per_customer={pk: {} for pk in ids})
    for step in _steps(ids, now):
        table = step.table  # one string shared by every customer's counts
        rows, per_customer = step.run_counting(ids)
        counts.add(table, rows, per_customer)
    return counts


def _anonymise_accounts(
    customers: list[Any], counts: _Counts, *, now: datetime.datetime, actor: Any, reason: str
) -> set[int]:
    """The account rows stay, anonymised and marked erased (those erased before are left as they are);
    returns the ids erased before (repeats)."""
    subject = personal_data.subject()
    repeats = {customer.pk for customer in customers if customer.is_erased}
    newly_erased = [customer.pk for customer in customers if customer.pk not in repeats]
    if newly_erased:
        subject.anonymise(newly_erased, now=now, actor=actor, reason=reason)
        label = subject.model._meta.label
        counts.add(label, len(newly_erased), dict.fromkeys(newly_erased, 1))
    return repeats


def _record(
    customers: list[Any],
    counts: _Counts,
    repeats: set[int],
    *,
    now: datetime.datetime,
    actor: Any,
    reason: str,
    request_reference: str,
) -> list[ErasureRecord]:
    """An erasure record per customer (with what was kept and under which law), its event and audit entry:
    bulk-inserted, so a fixed number of queries however many customers."""
    ids = [customer.pk for customer in customers]
    kept = _kept(ids)
    directories = _export_dirs(ids)
    records = bulk_create_with_history(
        [
            ErasureRecord(
                customer_pk=customer.pk,
                customer_reference=customer.reference,
                partner_id=customer.partner_id,
                request_reference=request_reference,
                actor=actor,
                reason=reason,
                erased_at=now,
                repeat=customer.pk in repeats,
                counts=counts.per_customer[customer.pk],
                kept={
                    item.table: {"rows": item.rows, "law": item.law.citation} for item in kept[customer.pk]
                },
                files_deleted=_count_files(directories.get(customer.pk)),
            )
            for customer in customers
        ],
        ErasureRecord,
        default_user=actor,
    )
    label = f" under request {request_reference}" if request_reference else ""
    ErasureEvent.objects.bulk_create(
        ErasureEvent(
            record=record,
            actor=actor,
            action=ErasureEvent.Action.REPEATED if record.repeat else ErasureEvent.Action.ERASED,
            detail=f"{sum(record.counts.values())} rows erased{label}",
        )
        for record in records
    )
    audit_record_many(
        actor=actor,
        entries=[
            AuditEntry(
                "customer.erased_again" if record.repeat else "customer.erased",
                customer,
                {"request": request_reference, "rows": sum(record.counts.values()), "record": record.pk},
            )
            for customer, record in zip(customers, records, strict=True)
        ],
    )
    return list(records)


@transaction.atomic
def customers_erase(
    *, customer_ids: Collection[int], actor: Any, reason: str, request_reference: str = ""
) -> CustomersErased:
    """Erase each of these customers as ``customer_erase`` does, in one transaction and a fixed number of
    queries however many they are. A customer something blocks is left untouched and listed in
    ``blocked``; one already erased is erased again (a repeat with what was left)."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the customer is erased."})
    customers, blocked = _lock_erasable(customer_ids)
    if not customers:
        return CustomersErased(records=[], blocked=blocked, counts={})
    ids = [customer.pk for customer in customers]
    now = timezone.now()
    counts = _run_statements(ids, now)
    label = f" under request {request_reference}" if request_reference else ""
    repeats = _anonymise_accounts(customers, counts, now=now, actor=actor, reason=f"Erased{label}: {reason}")
    records = _record(
        customers, counts, repeats, now=now, actor=actor, reason=reason, request_reference=request_reference
    )
    transaction.on_commit(_after_commit(ids))
    transaction.on_commit(_journal_after_commit([record.pk for record in records]))
    return CustomersErased(records=records, blocked=blocked, counts=counts.totals)


def _after_commit(customer_ids: list[int]) -> Callable[[], None]:
    """Files and cache go only once the rows are gone for good: a rolled-back erasure leaves them, and the
    retry (or a repeat run) removes them. The directories are listed again then, so one written since
    the count goes too."""

    def forget() -> None:
        for directory in _export_dirs(customer_ids).values():
            shutil.rmtree(directory, ignore_errors=True)
        customer_cache_forget_many(customer_ids)

    return forget


def _journal_after_commit(record_ids: list[int]) -> Callable[[], None]:
    """The erasure journal (``privacy.erasure_journal``) gets its entries once the erasure has committed,
    so a rolled-back erasure is never journaled. They are written by a task, as the jobs user that owns
    the journal; the erasure has happened whatever becomes of it, so a task that cannot be queued is
    logged as an error and left to the hourly reconciliation, which writes every entry the journal lacks."""

    def queue() -> None:
        from privacy.tasks import write_erasure_journal

        try:
            write_erasure_journal.delay(record_ids)
        except Exception:
            logger.exception(
                "Erasure journal: could not write the entries of erasure records %s; the hourly "
                "reconciliation (manage.py reconcile_erasure_journal) writes them",
                ", ".join(map(str, record_ids)),
            )

    return queue
