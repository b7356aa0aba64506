"""Retention runs that outlive their worker or their task: a task delivered again after its run finished
does nothing; a run (dry runs too) whose lease lapsed with no worker is marked abandoned, by the sweep
and by the next run, and the Retention page says so; a run whose lease is live is left alone."""

import datetime
from collections.abc import Iterator

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from accounts.models import Customer
from accounts.services import system_user
from privacy.models import RetentionLock, RetentionRun
from privacy.retention import RetentionObserver
from privacy.services.retention import (
    retention_lock_acquire,
    retention_lock_held_by_task,
    retention_lock_holder,
    retention_lock_release,
    retention_run,
    retention_runs_abandon_lapsed,
)
from privacy.tasks import abandon_lapsed_retention_runs, run_retention
from tests.factories import full_customer

NOW = datetime.datetime(2026, 11, 30, 12, tzinfo=datetime.UTC)
TTL = 600
Status = RetentionRun.Status


@pytest.fixture
def clock(settings) -> Iterator[time_machine.Traveller]:
    settings.RETENTION_LOCK_TTL_SECONDS = TTL
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def ended(partner) -> Customer:
    """A customer whose contract ended long enough ago to be erased by any run of NOW."""
    customer = full_customer(partner)
    Customer.objects.filter(pk=customer.pk).update(
        contract_start=datetime.date(2020, 1, 1), contract_end=datetime.date(2025, 1, 1)
    )
    return customer


def is_erased(customer: Customer) -> bool:
    return Customer.objects.get(pk=customer.pk).is_erased


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the job catches it, so the run is left as the kill found it."""


class KilledAfterFirstBatch(RetentionObserver):
    """The first batch takes a minute, the lease is renewed after it, and then the worker dies."""

    def __init__(self, clock: time_machine.Traveller) -> None:
        self.clock = clock

    def begin(self, policy: str, total: int) -> None:
        self.clock.shift(datetime.timedelta(minutes=1))

    def advance(self, done: int) -> None:
        raise WorkerKilled


def killed_run(clock: time_machine.Traveller, *, dry_run: bool) -> RetentionRun:
    """A run started through the service whose worker dies after its first batch."""
    with pytest.raises(WorkerKilled):
        retention_run(dry_run=dry_run, observer=KilledAfterFirstBatch(clock), chunk_size=1)
    run = RetentionRun.objects.get(dry_run=dry_run, status=Status.RUNNING)
    # Renewed after the batch, not only set when the run started: a dry run has a heartbeat too.
    assert run.lease_expires_at == timezone.now() + datetime.timedelta(seconds=TTL)
    return run


# A task delivered again


def test_a_task_delivered_again_after_its_run_finished_does_nothing(clock, partner):
    first_customer = ended(partner)
    run_id = run_retention.apply(task_id="delivery-of-0230").get()
    run = RetentionRun.objects.get(pk=run_id)
    assert run.status == Status.COMPLETED and run.task_id == "delivery-of-0230" and run.attempts == 1
    assert is_erased(first_customer) and run.counts["customer_account"]["accounts.Customer"] == 1

    # Someone a second run would erase, so a second run cannot hide behind having nothing to do.
    later_customer = ended(partner)
    clock.shift(datetime.timedelta(hours=1))
    assert run_retention.apply(task_id="delivery-of-0230").get() == run_id

    assert RetentionRun.objects.count() == 1 and not is_erased(later_customer)
    again = RetentionRun.objects.get(pk=run_id)
    assert (again.attempts, again.finished_at, again.counts) == (1, run.finished_at, run.counts)
    assert retention_lock_holder() == ""

    # Another task (tomorrow's) does run.
    other = RetentionRun.objects.get(pk=run_retention.apply(task_id="delivery-of-next-night").get())
    assert other.pk != run_id and other.status == Status.COMPLETED and is_erased(later_customer)


def test_a_delivery_while_another_delivery_of_the_task_works_waits_and_then_does_nothing(clock, partner):
    """The broker's visibility timeout ran out during a long run, so the task was delivered again while
    its first delivery still worked: the second finds the lock held by its own task (and retries); once the
    first has finished, the retry finds the finished run and starts no second one."""
    customer = ended(partner)
    assert retention_lock_acquire(holder="task-delivery-of-0230-firstworker")
    working = RetentionRun.objects.create(
        started_at=timezone.now(),
        run_on=timezone.localdate(),
        actor=system_user(job="retention"),
        task_id="delivery-of-0230",
        lease_expires_at=timezone.now() + datetime.timedelta(seconds=TTL),
    )
    assert retention_run(task_id="delivery-of-0230") is None
    assert retention_lock_held_by_task("delivery-of-0230") and not retention_lock_held_by_task("another")
    assert RetentionRun.objects.get(pk=working.pk).status == Status.RUNNING  # a live lease stays running

    RetentionRun.objects.filter(pk=working.pk).update(status=Status.COMPLETED, finished_at=timezone.now())
    retention_lock_release(holder="task-delivery-of-0230-firstworker")
    clock.shift(datetime.timedelta(seconds=TTL + 1))

    assert retention_run(task_id="delivery-of-0230") == working
    assert RetentionRun.objects.count() == 1 and not is_erased(customer)
    assert retention_lock_holder() == ""


# Abandoned runs


def test_a_killed_dry_run_is_marked_abandoned_by_the_next_run(clock, partner):
    ended(partner)
    dead = killed_run(clock, dry_run=True)

    clock.shift(datetime.timedelta(seconds=TTL + 1))
    next_run = retention_run(dry_run=True)

    dead.refresh_from_db()
    assert dead.status == Status.ABANDONED and dead.finished_at == timezone.now()
    assert next_run.status == Status.COMPLETED and next_run.pk != dead.pk
    assert RetentionRun.objects.filter(status=Status.RUNNING).count() == 0


def test_a_killed_dry_run_is_marked_abandoned_by_the_sweep(clock, partner, settings):
    ended(partner)
    dead = killed_run(clock, dry_run=True)

    clock.shift(datetime.timedelta(seconds=TTL + 1))
    assert abandon_lapsed_retention_runs.delay().get() == 1

    dead.refresh_from_db()
    assert dead.status == Status.ABANDONED and dead.finished_at == timezone.now()
    assert RetentionRun.objects.count() == 1  # the sweep starts no run
    assert abandon_lapsed_retention_runs.delay().get() == 0
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-retention-abandoned-runs"]
    assert entry["task"] == "privacy.tasks.abandon_lapsed_retention_runs"
    assert entry["schedule"].minute == set(range(0, 60, 10))


def test_a_run_whose_lease_is_live_is_not_marked_abandoned(clock, partner):
    ended(partner)
    dry = killed_run(clock, dry_run=True)
    real = killed_run(clock, dry_run=False)  # a minute later: its lease lapses a minute after the dry run's
    # The real run's worker still holds the lock, as a live one does.
    assert retention_lock_acquire(holder="the-real-runs-worker")
    assert dry.lease_expires_at is not None and real.lease_expires_at is not None
    second = datetime.timedelta(seconds=1)

    clock.move_to(dry.lease_expires_at - second)
    assert retention_runs_abandon_lapsed() == 0
    assert retention_run() is None  # the next real run finds the lock held and leaves everything be
    assert retention_run(dry_run=True).status == Status.COMPLETED
    assert RetentionRun.objects.get(pk=dry.pk).status == Status.RUNNING
    assert RetentionRun.objects.get(pk=real.pk).status == Status.RUNNING

    clock.move_to(dry.lease_expires_at + second)
    assert retention_runs_abandon_lapsed() == 1
    assert RetentionRun.objects.get(pk=dry.pk).status == Status.ABANDONED
    assert RetentionRun.objects.get(pk=real.pk).status == Status.RUNNING

    clock.move_to(real.lease_expires_at + second)
    assert retention_runs_abandon_lapsed() == 1
    assert RetentionRun.objects.get(pk=real.pk).status == Status.ABANDONED


def test_an_abandoned_real_run_is_carried_on_by_the_next_run(clock, partner):
    """A real run is never finished by marking it abandoned: the next run carries the same record on."""
    customers = [ended(partner) for _ in range(3)]
    dead = killed_run(clock, dry_run=False)
    assert sum(is_erased(customer) for customer in customers) == 1

    clock.shift(datetime.timedelta(seconds=TTL + 1))
    assert abandon_lapsed_retention_runs.delay().get() == 1
    assert RetentionRun.objects.get(pk=dead.pk).status == Status.ABANDONED

    run = retention_run()
    assert run.pk == dead.pk and run.attempts == 2 and run.status == Status.COMPLETED
    assert run.finished_at == timezone.now() and run.lease_expires_at is None
    assert all(is_erased(customer) for customer in customers)
    assert run.counts["customer_account"]["accounts.Customer"] == 3
    assert RetentionRun.objects.count() == 1


def test_a_slow_worker_marked_abandoned_is_running_again_when_it_renews(clock, partner):
    """The sweep only sees a lapsed lease; a worker that was slow, not dead, renews and is running again."""
    customers = [ended(partner) for _ in range(2)]

    # The lease lapses while the first chunk works, and the sweep runs before the chunk ends.
    class LapseDuringFirstChunk(RetentionObserver):
        swept = False

        def finding(self, finding) -> None:
            if finding.action == "delete" and not self.swept:
                self.swept = True
                clock.shift(datetime.timedelta(seconds=TTL + 1))
                assert retention_runs_abandon_lapsed() == 1
                assert RetentionRun.objects.get().status == Status.ABANDONED

    run = retention_run(observer=LapseDuringFirstChunk(), chunk_size=1)
    assert run.status == Status.COMPLETED and run.attempts == 1
    assert all(is_erased(customer) for customer in customers)
    assert RetentionLock.objects.get().lease_token == ""


# The page


def test_the_page_shows_an_abandoned_run(clock, client, dpo, partner):
    ended(partner)
    dead = killed_run(clock, dry_run=True)
    clock.shift(datetime.timedelta(seconds=TTL + 1))
    retention_runs_abandon_lapsed()

    client.force_login(dpo)
    response = client.get(reverse("privacy:retention"))
    assert response.status_code == 200
    assert [run.status for run in response.context["runs"]] == [Status.ABANDONED]
    rows = [row for row in response.content.decode().split("<tr") if f"#{dead.pk} (dry run)" in row]
    assert len(rows) == 1
    assert 'class="overdue"' in rows[0] and "Abandoned (its worker stopped before the end)" in rows[0]
