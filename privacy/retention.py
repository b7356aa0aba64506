"""The retention job's rules: when data is past due, who is kept and why, and one handler per policy.

Each ``RetentionPolicy`` row names a handler by its key (``HANDLERS``, filled by ``@retention_handler``).
A handler finds what its policy makes due *as of today* (level-triggered: a missed night is caught up by
the next), and works through it in chunks, each in its own transaction through ``RetentionContext.chunk``,
which also adds the chunk's counts to the run in that same transaction: a chunk is either done and
counted, or neither. A policy whose handler does not exist yet is reported on the run as "no handler
yet".

Customers: due when ``add_calendar_months(contract_end, months) <= today`` (Europe/London date), not
erased, no active legal hold, and none of the reasons to keep the apps declare (``CustomerChecks.keep``:
billing keeps a customer with a draft invoice in an open bill run, which erasure would refuse, or who owes
money, a ledger balance above zero, under the "debt" reason until it is paid or written off). Such a
customer is kept and reported, and is due again once the reason has gone (or earlier, by the DPO erasing
it). A due customer is
erased exactly as an erasure request does, a chunk of them at a time (``customers_erase``: the statements
of ``customer_erase`` over the chunk's ids), as the ``retention`` system user, with the policy in the
reason; the erased customer is not due again, so a redelivered chunk erases no one twice.

The other policies run what the apps declare (``Declaration.purge`` in ``<app>/personal_data.py``, for the
policy named by its ``Retention``): billing's VAT documents (deleted with their lines, history and call
links, ledger entries, allocations, write-offs and the payments that settled them, once the document is
settled and every credit note, entry and payment of it is 6 years old), calls (once the dispute period
has passed after the bill, or after the call if never billed) and Direct Debit files (their text cleared
13 months after the processing day); accounts' access logs (after 2 years). Privacy's own records (closed
privacy requests 3 years after closing; the website's submissions) have their handlers here. Anything of
a customer under an active legal hold is kept by every handler that can tell whose a row is.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import gc
import logging
import operator
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from fusion_site import personal_data
from fusion_site.personal_data import Declaration, ErasureAction, start_of_day_after
from privacy.deadlines import add_calendar_months
from privacy.erasure import customers_erase, erasure_preview
from privacy.models import (
    IdentityCode,
    LegalHold,
    PrivacyRequest,
    PrivacyRequestEvent,
    RetentionPolicy,
    RetentionRun,
    State,
    SuppressionEntry,
    WebsiteSubmission,
)

logger = logging.getLogger(__name__)

CLOSED_STATES = (State.COMPLETED, State.REJECTED, State.WITHDRAWN)
# The run record lists at most this many held or kept customers; the counts beside them are complete.
LISTED_AT_MOST = 1000


def retention_cutoff(today: datetime.date, months: int) -> datetime.date:
    """The latest anchor date that is due today: the largest ``d`` with ``add_calendar_months(d, months)
    <= today``. At a month's end several anchors share one due date (31, 30 and 29 January plus one month
    are all 28 February in 2025), so on the last day of a month every day of the month ``months`` earlier
    is due."""
    index = today.year * 12 + today.month - 1 - months
    year, month = divmod(index, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    if today.day == calendar.monthrange(today.year, today.month)[1]:
        return datetime.date(year, month, last)
    return datetime.date(year, month, min(today.day, last))


# Who is due, held or kept


def active_holds() -> QuerySet[LegalHold]:
    return LegalHold.objects.filter(lifted_at__isnull=True)


def _held_customer_ids() -> QuerySet[LegalHold, Any]:
    return active_holds().values("customer_id")


def _customers() -> QuerySet[Any]:
    return personal_data.subject().model._default_manager.all()


def customers_past_due(today: datetime.date, months: int) -> QuerySet[Any]:
    """Not erased, and the contract ended at least ``months`` ago (whatever else may keep them)."""
    return _customers().filter(
        erased_at__isnull=True, contract_end__isnull=False, contract_end__lte=retention_cutoff(today, months)
    )


@dataclass(frozen=True)
class _KeptBecause:
    """The reasons to keep a customer past its period, as annotations (``why`` to an ``Exists``): an active
    legal hold first, then each app's (a draft invoice in an open bill run, which erasure would refuse; money
    owed on the ledger), with their words."""

    exists: dict[str, Exists]
    details: dict[str, str]

    @property
    def any(self) -> Q:
        return functools.reduce(operator.or_, (Q(reason) for reason in self.exists.values()))


HELD = "is_held"


def _reasons_to_keep(today: datetime.date) -> _KeptBecause:
    exists = {HELD: Exists(active_holds().filter(customer_id=OuterRef("pk")))}
    details = {}
    for checks in personal_data.customer_checks():
        for reason in checks.keep(today) if checks.keep is not None else ():
            exists[reason.why] = reason.exists
            details[reason.why] = reason.detail
    return _KeptBecause(exists, details)


def due_customers(today: datetime.date, months: int) -> QuerySet[Any]:
    """The customers to erase today."""
    return customers_past_due(today, months).exclude(_reasons_to_keep(today).any)


def customers_due_between(start: datetime.date, end: datetime.date, months: int) -> QuerySet[Any]:
    """Customers not erased whose deletion date falls after ``start`` and on or before ``end``."""
    return _customers().filter(
        erased_at__isnull=True,
        contract_end__gt=retention_cutoff(start, months),
        contract_end__lte=retention_cutoff(end, months),
    )


def deletion_date(contract_end: datetime.date, months: int) -> datetime.date:
    return add_calendar_months(contract_end, months)


# Reporting


@dataclass(frozen=True)
class Finding:
    """One line of what the run did or would do: ``action`` is delete, anonymise, keep or note."""

    action: str
    policy: str
    subject: str
    detail: str
    counts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        counts = ", ".join(f"{table} {rows}" for table, rows in self.counts.items())
        parts = [self.action.upper(), self.policy, self.subject, self.detail, counts]
        return " | ".join(part for part in parts if part)


class RetentionObserver:
    """Told what happens, for progress bars and dry-run listings; the default ignores it all."""

    def begin(self, policy: str, total: int) -> None:
        return None

    def advance(self, done: int) -> None:
        return None

    def end(self) -> None:
        return None

    def finding(self, finding: Finding) -> None:
        return None


class LeaseLostError(RuntimeError):
    """Another run took the lock after ours expired; this run stops at once."""


@dataclass
class RetentionContext:
    run: RetentionRun
    policy: RetentionPolicy
    today: datetime.date
    actor: Any
    observer: RetentionObserver
    renew_lease: Callable[[], None]
    chunk_size: int = 200
    row_batch: int = 5000
    pause_seconds: float = 0.0

    @property
    def dry_run(self) -> bool:
        return self.run.dry_run

    @property
    def cutoff(self) -> datetime.date:
        return retention_cutoff(self.today, self.policy.months)

    def report(self, action: str, subject: str, detail: str, counts: dict[str, int] | None = None) -> None:
        self.observer.finding(Finding(action, self.policy.key, subject, detail, dict(counts or {})))

    def id_batches(self, due: QuerySet[Any], size: int) -> Iterator[list[int]]:
        """The ids of ``due`` in ascending batches, by keyset (memory holds one batch), with the policy's
        progress shown as each batch is done. The run's lease is renewed after every batch, a dry run's
        too, so a run whose worker died is seen to have stopped."""
        self.observer.begin(self.policy.key, due.count())
        last = 0
        while ids := list(due.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size]):
            yield ids
            self.renew_lease()
            self.observer.advance(len(ids))
            last = ids[-1]
        self.observer.end()

    @contextmanager
    def chunk(self, first_id: int) -> Iterator[dict[str, int]]:
        """One chunk: its own transaction, its counts added to the run inside it. A failure rolls back the
        chunk, is recorded on the run (in a transaction of its own) and does not stop the run."""
        counts: dict[str, int] = {}
        try:
            with transaction.atomic():
                yield counts
                run = RetentionRun.objects.select_for_update().get(pk=self.run.pk)
                policy_counts = run.counts.setdefault(self.policy.key, {})
                for table, rows in counts.items():
                    policy_counts[table] = policy_counts.get(table, 0) + rows
                run.chunks_done += 1
                run.save(update_fields=["counts", "chunks_done"])
                self.run.counts, self.run.chunks_done = run.counts, run.chunks_done
        except (SoftTimeLimitExceeded, LeaseLostError):
            raise
        # Any failure of a chunk is reported and the run goes on: a rerun finishes what it left.
        except Exception as error:
            logger.exception("Retention chunk of %s from id %s failed", self.policy.key, first_id)
            with transaction.atomic():
                run = RetentionRun.objects.select_for_update().get(pk=self.run.pk)
                run.errors.append(
                    {
                        "policy": self.policy.key,
                        "first_id": first_id,
                        "error": f"{type(error).__name__}: {error}",
                    }
                )
                run.save(update_fields=["errors"])
                self.run.errors = run.errors
            self.report("error", "", f"chunk from id {first_id} failed: {error}; a rerun finishes it")
        # Each erasure leaves cyclic garbage (simple-history builds a manager class per call); collecting it
        # per chunk keeps the run's memory flat however many customers are due (bench/retention.py).
        gc.collect()
        if self.pause_seconds:
            time.sleep(self.pause_seconds)


Handler = Callable[[RetentionContext], None]
HANDLERS: dict[str, Handler] = {}


def retention_handler(key: str) -> Callable[[Handler], Handler]:
    """Register the handler of the policy with this key."""

    def register(handler: Handler) -> Handler:
        HANDLERS[key] = handler
        return handler

    return register


def _raw_delete(queryset: QuerySet[Any]) -> int:
    # No signals, no cascade collection, no "deleted" history row that would copy the data once more.
    return int(queryset._raw_delete(queryset.db))


# Customers


def _report_kept_customers(ctx: RetentionContext) -> None:
    reasons = _reasons_to_keep(ctx.today)
    kept = customers_past_due(ctx.today, ctx.policy.months).annotate(**reasons.exists).filter(reasons.any)
    held: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    kinds: dict[int, list[str]] = {}
    for hold in (
        active_holds().filter(customer__in=kept.filter(reasons.exists[HELD]).values("pk")).order_by("id")
    ):
        kinds.setdefault(hold.customer_id, []).append(hold.kind)
    for customer in kept.order_by("pk").only("pk", "contract_end").iterator(chunk_size=2000):
        reference = customer.reference
        if getattr(customer, HELD):
            detail = f"legal hold: {', '.join(kinds.get(customer.pk, []))}"
            if len(held) < LISTED_AT_MOST:
                held.append({"customer": reference, "holds": kinds.get(customer.pk, [])})
        else:
            why = next(why for why in reasons.details if getattr(customer, why))
            detail = reasons.details[why]
            if len(others) < LISTED_AT_MOST:
                others.append({"customer": reference, "why": why})
        ctx.report("keep", reference, detail)
    with transaction.atomic():
        run = RetentionRun.objects.select_for_update().get(pk=ctx.run.pk)
        run.held, run.kept = held, others
        run.save(update_fields=["held", "kept"])


@retention_handler("customer_account")
def erase_customers_past_due(ctx: RetentionContext) -> None:
    _report_kept_customers(ctx)
    due = due_customers(ctx.today, ctx.policy.months)
    reason = (
        f"Retention policy {ctx.policy.key}: contract ended {ctx.policy.months} month(s) ago or more "
        f"(run of {ctx.run.run_on:%Y-%m-%d})"
    )
    for ids in ctx.id_batches(due, ctx.chunk_size):
        if ctx.dry_run:
            for customer in _customers().filter(pk__in=ids).order_by("pk"):
                _report_preview(ctx, customer)
        else:
            _erase_chunk(ctx, ids, reason)


def _erase_chunk(ctx: RetentionContext, ids: list[int], reason: str) -> None:
    """Erase one chunk of due customers in its own transaction. A function of its own so that the chunk's
    erasure records are freed when it returns, not held by a loop variable while the next chunk runs."""
    with ctx.chunk(ids[0]) as counts:
        # Checked again under the chunk's transaction: a hold set or an erasure done since the ids were
        # read (a redelivered task, the DPO) wins.
        still_due = due_customers(ctx.today, ctx.policy.months).filter(pk__in=ids)
        erased = customers_erase(
            customer_ids=list(still_due.values_list("pk", flat=True)), actor=ctx.actor, reason=reason
        )
        for blocked in erased.blocked:
            ctx.report("keep", blocked.customer.reference, "; ".join(blocked.blockers))
        for table, rows in erased.counts.items():
            counts[table] = counts.get(table, 0) + rows
        for record in erased.records:
            ctx.report("delete", record.customer_reference, "erased", record.counts)


def _report_preview(ctx: RetentionContext, customer: Any) -> None:
    preview = erasure_preview(customer=customer)
    for action in ("delete", "anonymise"):
        counts = {item.table: item.rows for item in preview.erased if item.rows and item.action == action}
        if counts:
            ctx.report(action, customer.reference, f"contract ended {customer.contract_end}", counts)
    for kept in preview.kept:
        if kept.rows:
            until = f" until {kept.until}" if kept.until else ""
            ctx.report(
                "keep", customer.reference, f"{kept.what}{until}: {kept.law.name}", {kept.table: kept.rows}
            )


# What the apps declare: invoices and credit notes, calls, Direct Debit files, access logs


def _declared_purges(key: str) -> list[Declaration]:
    return [
        item
        for item in personal_data.declarations()
        if item.purge is not None and any(rule.policy == key for rule in item.retention)
    ]


def _run_declared_purges(ctx: RetentionContext) -> None:
    """The policy's rows past their period, as each declaring app finds and removes them, by batches of
    ids, one chunk (and transaction) per batch. Rows of a customer under an active legal hold are kept
    wherever the declaration says whose they are."""
    for declaration in _declared_purges(ctx.policy.key):
        purge = declaration.purge
        assert purge is not None
        action = "anonymise" if purge.action == ErasureAction.ANONYMISE else "delete"
        # Whole blocks first (the call records' months on PostgreSQL), each its own chunk.
        for block in purge.blocks(ctx.cutoff, _held_customer_ids()) if purge.blocks is not None else ():
            if ctx.dry_run:
                ctx.report(action, "", block.what, block.preview())
            else:
                with ctx.chunk(0) as counts:
                    counts.update(block.run())
                ctx.renew_lease()
        due = purge.due(ctx.cutoff, _held_customer_ids())
        for ids in ctx.id_batches(due, ctx.row_batch):
            if ctx.dry_run:
                ctx.report(action, "", purge.what.format(cutoff=ctx.cutoff), purge.preview(ids))
            else:
                with ctx.chunk(ids[0]) as counts:
                    counts.update(purge.run(ids, due))


def register_declared_handlers() -> None:
    """Give every policy some app declares a purge for its handler (called from privacy's ready(), once
    the apps have registered their declarations)."""
    for item in personal_data.declarations():
        if item.purge is not None:
            for rule in item.retention:
                if rule.policy:
                    HANDLERS.setdefault(rule.policy, _run_declared_purges)


# Privacy requests


@retention_handler("privacy_requests")
def delete_old_privacy_requests(ctx: RetentionContext) -> None:
    due = PrivacyRequest.objects.filter(state__in=CLOSED_STATES, closed_at__lt=start_of_day_after(ctx.cutoff))
    for ids in ctx.id_batches(due, ctx.row_batch):
        if ctx.dry_run:
            ctx.report(
                "delete",
                "",
                f"requests closed on or before {ctx.cutoff}",
                {
                    PrivacyRequest._meta.label: len(ids),
                    PrivacyRequestEvent._meta.label: PrivacyRequestEvent.objects.filter(
                        privacy_request_id__in=ids
                    ).count(),
                },
            )
        else:
            with ctx.chunk(ids[0]) as counts:
                # The suppression list outlives the request that created it (it holds only HMACs).
                SuppressionEntry.objects.filter(privacy_request_id__in=ids).update(privacy_request=None)
                PrivacyRequest.objects.filter(duplicate_of_id__in=ids).update(duplicate_of=None)
                _raw_delete(IdentityCode.objects.filter(privacy_request_id__in=ids))
                counts[PrivacyRequestEvent._meta.label] = _raw_delete(
                    PrivacyRequestEvent.objects.filter(privacy_request_id__in=ids)
                )
                _raw_delete(PrivacyRequest.history.filter(id__in=ids))
                counts[PrivacyRequest._meta.label] = _raw_delete(PrivacyRequest.objects.filter(pk__in=ids))


# The public website's records

# An address that never confirmed its subscription is not on the list: its pending entry goes after this.
UNCONFIRMED_SUBSCRIPTION_DAYS = 30


def _delete_files(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)


def _delete_submissions(ctx: RetentionContext, due: QuerySet[WebsiteSubmission], detail: str) -> None:
    """Delete website submissions with their history, in chunks; a job application's CV file goes once
    its chunk has committed."""
    for ids in ctx.id_batches(due, ctx.row_batch):
        if ctx.dry_run:
            ctx.report("delete", "", detail, {WebsiteSubmission._meta.label: len(ids)})
        else:
            with ctx.chunk(ids[0]) as counts:
                files = [
                    name
                    for name in WebsiteSubmission.objects.filter(pk__in=ids).values_list("cv", flat=True)
                    if name
                ]
                _raw_delete(WebsiteSubmission.history.filter(id__in=ids))
                counts[WebsiteSubmission._meta.label] = _raw_delete(
                    WebsiteSubmission.objects.filter(pk__in=ids)
                )
                transaction.on_commit(functools.partial(_delete_files, files))


@retention_handler("website_enquiries")
def delete_old_enquiries(ctx: RetentionContext) -> None:
    due = WebsiteSubmission.objects.filter(
        kind=WebsiteSubmission.Kind.CONTACT, created_at__lt=start_of_day_after(ctx.cutoff)
    )
    _delete_submissions(ctx, due, f"enquiries received on or before {ctx.cutoff}")


@retention_handler("job_applications")
def delete_decided_applications(ctx: RetentionContext) -> None:
    """6 months after the decision (the time to bring a discrimination claim); an application with no
    decision recorded is kept and listed, so someone records one."""
    applications = WebsiteSubmission.objects.filter(kind=WebsiteSubmission.Kind.JOB_APPLICATION)
    if undecided := applications.filter(decided_at__isnull=True).count():
        ctx.report("keep", "", f"{undecided} application(s) with no decision recorded")
    due = applications.filter(decided_at__lt=start_of_day_after(ctx.cutoff))
    _delete_submissions(ctx, due, f"applications decided on or before {ctx.cutoff}")


@retention_handler("mailing_list")
def delete_withdrawn_subscriptions(ctx: RetentionContext) -> None:
    """Consent withdrawn (unsubscribed) or never given (not confirmed within 30 days): the entry goes.
    The export's suppression list does not need it: unsubscribing removes the address from the list, and
    an objection to marketing is kept as an HMAC on the suppression list itself."""
    unconfirmed_before = start_of_day_after(ctx.today) - datetime.timedelta(
        days=UNCONFIRMED_SUBSCRIPTION_DAYS
    )
    due = WebsiteSubmission.objects.filter(kind=WebsiteSubmission.Kind.MAILING_LIST).filter(
        Q(status=WebsiteSubmission.Status.UNSUBSCRIBED, unsubscribed_at__lt=start_of_day_after(ctx.cutoff))
        | Q(status=WebsiteSubmission.Status.PENDING_CONFIRMATION, created_at__lt=unconfirmed_before)
    )
    _delete_submissions(ctx, due, "subscriptions withdrawn, or never confirmed within 30 days")
