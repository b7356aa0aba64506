"""Writes of retention: the DPO's changes to policies and legal holds, and the run of the job itself.

``retention_run`` is what the nightly beat task and ``manage.py run_retention`` both call. One run works
at a time: it takes the lease on the ``RetentionLock`` row with one conditional UPDATE (atomic on
PostgreSQL and SQLite alike), renews it after every batch and releases it at the end. A run that finds
the lease held by a live run records nothing and returns ``None``. A worker killed mid-run leaves its run
``running`` and its lease to expire; the next run (the redelivered task, or tomorrow's) takes the lease
and carries on with that same run record, which already counts every chunk committed before the kill.
A dry run reads only: it takes no lock and is recorded with ``dry_run`` set.

Every run, dry or real, also holds a lease on its own record (``RetentionRun.lease_expires_at``), renewed
with the lock's. A run past that lease has no worker: ``retention_runs_abandon_lapsed`` (a beat task
every few minutes, and the start of every run) marks it ``abandoned``. A task delivered again after its
run finished (``acks_late``: the worker died between the end of the run and the acknowledgement, or the
broker's visibility timeout ran out during a long run) finds its id on that finished run and does
nothing.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Customer, User
from accounts.services import system_user
from fusion_site.models import save_with_actor
from privacy.models import LegalHold, RetentionLock, RetentionPolicy, RetentionRun
from privacy.retention import HANDLERS, Finding, LeaseLostError, RetentionContext, RetentionObserver

logger = logging.getLogger(__name__)

RETENTION_JOB = "retention"
# Handlers run in this order: customers first, so their calls and exports go with the erasure rather than
# with the bulk statements; then whatever else is past due.
POLICY_ORDER = ("customer_account", "call_records", "invoices", "access_logs", "privacy_requests")


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


# Policies


@transaction.atomic
def retention_policy_update(
    *, policy: RetentionPolicy, actor: User, reason: str, months: int, enabled: bool = True
) -> RetentionPolicy:
    """Change how long a category is kept; history records who, when and why."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the retention period changes."})
    policy = RetentionPolicy.objects.select_for_update().get(pk=policy.pk)
    policy.months = months
    policy.enabled = enabled
    return save_with_actor(policy, actor=actor, reason=reason)


# Legal holds


@transaction.atomic
def legal_hold_set(
    *,
    customer: Customer,
    kind: str,
    reason: str,
    owner: User,
    review_on: datetime.date,
    actor: User,
) -> LegalHold:
    """Keep the customer's data: neither retention nor erasure touches it while the hold lasts."""
    if customer.is_erased:
        raise ValidationError(
            {"customer": f"{customer.reference} is already erased; nothing is left to hold."}
        )
    if review_on < timezone.localdate():
        raise ValidationError({"review_on": "The review date cannot be in the past."})
    hold = LegalHold(customer=customer, kind=kind, reason=reason.strip(), owner=owner, review_on=review_on)
    hold.set_by = actor
    return save_with_actor(hold, actor=actor, reason=f"Legal hold set: {hold.get_kind_display()}")


@transaction.atomic
def legal_hold_lift(*, hold: LegalHold, actor: User, reason: str) -> LegalHold:
    if not reason.strip():
        raise ValidationError({"lift_reason": "Say why the hold is no longer needed."})
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if not hold.is_active:
        raise ValidationError({"hold": "This hold was already lifted."})
    hold.lifted_at = timezone.now()
    hold.lifted_by = actor
    hold.lift_reason = reason.strip()
    return save_with_actor(hold, actor=actor, reason=f"Legal hold lifted: {reason.strip()}")


# The lock


def _lease_length() -> datetime.timedelta:
    return datetime.timedelta(seconds=_setting("RETENTION_LOCK_TTL_SECONDS", 600))


def retention_lock_acquire(*, holder: str) -> bool:
    """Take the lease if nobody holds it or its holder let it expire. One UPDATE decides between racing
    runs: the database applies them one after the other, and the second finds the condition false."""
    RetentionLock.objects.get_or_create(pk=RetentionLock.SINGLETON)
    now = timezone.now()
    taken = (
        RetentionLock.objects.filter(pk=RetentionLock.SINGLETON)
        .filter(Q(lease_token="") | Q(expires_at__lt=now))
        .update(lease_token=holder, expires_at=now + _lease_length())
    )
    return taken == 1


def retention_lock_renew(*, holder: str) -> None:
    renewed = RetentionLock.objects.filter(pk=RetentionLock.SINGLETON, lease_token=holder).update(
        expires_at=timezone.now() + _lease_length()
    )
    if not renewed:
        raise LeaseLostError("The retention lock was taken by another run after this run's lease expired.")


def retention_lock_release(*, holder: str) -> None:
    RetentionLock.objects.filter(pk=RetentionLock.SINGLETON, lease_token=holder).update(
        lease_token="", expires_at=None, run=None
    )


def _task_holder_prefix(task_id: str) -> str:
    return f"task-{task_id}-"


def retention_lock_held_by_task(task_id: str) -> bool:
    """Whether a live lease belongs to a delivery of this task (a killed one, whose lease has not expired
    yet). Each delivery has a token of its own, so two deliveries never both think they hold the lock."""
    return retention_lock_holder().startswith(_task_holder_prefix(task_id))


def retention_lock_holder() -> str:
    lock = RetentionLock.objects.filter(pk=RetentionLock.SINGLETON).first()
    if lock is None or not lock.lease_token or (lock.expires_at and lock.expires_at < timezone.now()):
        return ""
    return lock.lease_token


# The run


def _finished_run_of(task_id: str) -> RetentionRun | None:
    if not task_id:
        return None
    return RetentionRun.objects.filter(task_id=task_id, status__in=RetentionRun.FINISHED).first()


def retention_runs_abandon_lapsed() -> int:
    """Mark every run still ``running`` whose lease has lapsed as abandoned: its worker died or hung, and
    nothing else will ever finish the record. Runs recorded before leases existed have none and count as
    lapsed. Returns how many were marked."""
    now = timezone.now()
    lapsed = RetentionRun.objects.filter(status=RetentionRun.Status.RUNNING).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    )
    ids = list(lapsed.values_list("pk", flat=True))
    if not ids:
        return 0
    # The lapse is checked again in the UPDATE: a worker that renewed since the read above is alive.
    marked = lapsed.filter(pk__in=ids).update(status=RetentionRun.Status.ABANDONED, finished_at=now)
    logger.warning("Retention runs %s abandoned: their lease lapsed with no worker renewing it", ids)
    return marked


def _run_lease_renew(run: RetentionRun) -> None:
    """The run's worker is alive. A run marked abandoned while its worker was only slow is running again,
    unless another run has carried it on since (one more attempt): then this worker stops."""
    renewed = RetentionRun.objects.filter(
        pk=run.pk,
        attempts=run.attempts,
        status__in=[RetentionRun.Status.RUNNING, RetentionRun.Status.ABANDONED],
    ).update(
        status=RetentionRun.Status.RUNNING,
        finished_at=None,
        lease_expires_at=timezone.now() + _lease_length(),
    )
    if not renewed:
        raise LeaseLostError("Another run carries this run on since this worker's lease expired.")


def retention_run(
    *,
    dry_run: bool = False,
    today: datetime.date | None = None,
    observer: RetentionObserver | None = None,
    task_id: str = "",
    chunk_size: int | None = None,
) -> RetentionRun | None:
    """Act on everything past due as of ``today`` (default: today in UK time). Returns the run record, or
    ``None`` when another run holds the lock (this one then does nothing). ``task_id`` is the Celery
    task's: a task whose run already finished gets that run back and nothing is done again."""
    observer = observer or RetentionObserver()
    today = today or timezone.localdate()
    # As stored (a Celery id is 36 characters; a custom one may be longer), so a redelivery finds it.
    task_id = task_id[:64]
    actor = system_user(job=RETENTION_JOB)
    retention_runs_abandon_lapsed()
    if (done := _finished_run_of(task_id)) is not None:
        logger.info(
            "Retention task %s delivered again after run #%s finished: nothing to do", task_id, done.pk
        )
        return done
    if dry_run:
        run = RetentionRun.objects.create(
            started_at=timezone.now(),
            run_on=today,
            dry_run=True,
            actor=actor,
            task_id=task_id,
            lease_expires_at=timezone.now() + _lease_length(),
        )
        _execute(
            run,
            today=today,
            actor=actor,
            observer=observer,
            renew=lambda: _run_lease_renew(run),
            chunk_size=chunk_size,
        )
        return run
    holder = f"{_task_holder_prefix(task_id)}{uuid.uuid4().hex[:12]}" if task_id else f"run-{uuid.uuid4()}"
    if not retention_lock_acquire(holder=holder):
        logger.info("Retention run skipped: another run holds the lock")
        return None
    try:
        # Again under the lease: the task's first delivery may have finished since the look above.
        if (done := _finished_run_of(task_id)) is not None:
            return done
        run = _resume_or_start(today=today, actor=actor, task_id=task_id)
        RetentionLock.objects.filter(pk=RetentionLock.SINGLETON, lease_token=holder).update(run=run)

        def renew() -> None:
            retention_lock_renew(holder=holder)
            _run_lease_renew(run)

        _execute(run, today=today, actor=actor, observer=observer, renew=renew, chunk_size=chunk_size)
        return run
    finally:
        retention_lock_release(holder=holder)


@transaction.atomic
def _resume_or_start(*, today: datetime.date, actor: User, task_id: str) -> RetentionRun:
    """We hold the lease, so a real run still running or abandoned died with its worker: carry the latest
    on (it already counts what was done), and close any older one as interrupted."""
    lease_expires_at = timezone.now() + _lease_length()
    unfinished = list(
        RetentionRun.objects.select_for_update()
        .filter(status__in=[RetentionRun.Status.RUNNING, RetentionRun.Status.ABANDONED], dry_run=False)
        .order_by("-started_at", "-id")
    )
    if unfinished:
        run, *older = unfinished
        for stale in older:
            stale.status = RetentionRun.Status.INTERRUPTED
            stale.finished_at = timezone.now()
            stale.save(update_fields=["status", "finished_at"])
        run.attempts += 1
        run.task_id = task_id
        run.status = RetentionRun.Status.RUNNING
        run.finished_at = None
        run.lease_expires_at = lease_expires_at
        run.save(update_fields=["attempts", "task_id", "status", "finished_at", "lease_expires_at"])
        return run
    return RetentionRun.objects.create(
        started_at=timezone.now(),
        run_on=today,
        actor=actor,
        task_id=task_id,
        lease_expires_at=lease_expires_at,
    )


def _execute(
    run: RetentionRun,
    *,
    today: datetime.date,
    actor: User,
    observer: RetentionObserver,
    renew: Callable[[], None],
    chunk_size: int | None,
) -> None:
    policies = sorted(
        RetentionPolicy.objects.all(),
        key=lambda p: (POLICY_ORDER.index(p.key) if p.key in POLICY_ORDER else len(POLICY_ORDER), p.key),
    )
    notes = []
    try:
        for policy in policies:
            handler = HANDLERS.get(policy.key)
            note = "disabled" if not policy.enabled else "no handler yet" if handler is None else ""
            if note or handler is None:
                notes.append({"policy": policy.key, "note": note})
                observer.finding(Finding("note", policy.key, "", note))
                continue
            handler(
                RetentionContext(
                    run=run,
                    policy=policy,
                    today=today,
                    actor=actor,
                    observer=observer,
                    renew_lease=renew,
                    chunk_size=chunk_size or int(_setting("RETENTION_CHUNK_SIZE", 200)),
                    row_batch=int(_setting("RETENTION_ROW_BATCH", 5000)),
                    pause_seconds=_setting("RETENTION_CHUNK_PAUSE_SECONDS", 0),
                )
            )
    except LeaseLostError:
        # Unless the run that took the lock carries this record on (one more attempt): then it is its.
        RetentionRun.objects.filter(pk=run.pk, attempts=run.attempts).update(
            status=RetentionRun.Status.INTERRUPTED, finished_at=timezone.now()
        )
        raise
    run.refresh_from_db()
    run.notes = notes
    run.status = RetentionRun.Status.COMPLETED_WITH_ERRORS if run.errors else RetentionRun.Status.COMPLETED
    run.finished_at = timezone.now()
    run.lease_expires_at = None
    run.save(update_fields=["notes", "status", "finished_at", "lease_expires_at"])
