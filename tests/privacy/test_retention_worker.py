"""The retention task on real Celery workers (separate processes) with the real Redis broker and
PostgreSQL (CI): a worker killed mid-run has the task redelivered and the same run completes, with no
customer erased twice and none missed; two runs started at once, one works and the other exits."""

import datetime
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

from accounts.models import Customer
from fusion_site.celery import app as celery_app
from privacy.models import ErasureRecord, RetentionRun
from privacy.tasks import run_retention
from tests.conftest import require_service
from tests.factories import full_customer
from tests.test_infrastructure import _redis_reachable

ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 12

# The workers are other processes on the real clock, so these tests use only times relative to now.
pytestmark = [
    pytest.mark.services,
    pytest.mark.real_clock,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _require_services() -> None:
    require_service("Redis", _redis_reachable(), "REDIS_URL is unset or Redis does not answer")
    require_service(
        "PostgreSQL",
        connection.vendor == "postgresql",
        "a worker in another process needs a database it can share (DATABASE_URL=postgres://...)",
    )


def _worker_env() -> dict[str, str]:
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}/{db['NAME']}"
    return {
        **os.environ,
        "DATABASE_URL": url,
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "BLIND_INDEX_KEY": settings.BLIND_INDEX_KEY,
        "AUDIT_HMAC_KEYS": ",".join(settings.AUDIT_HMAC_KEYS),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        # Short enough to see a redelivery in seconds: Redis hands an unacknowledged task to another
        # worker after the visibility timeout, and the killed run's lease lapses before that.
        "CELERY_VISIBILITY_TIMEOUT": "4",
        # ... and the worker looks for such tasks every second instead of every 100.
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
        "CELERY_UNACKED_RESTORE_THROTTLE": "1",
        "RETENTION_LOCK_TTL_SECONDS": "2",
        "RETENTION_CHUNK_SIZE": "2",
        "RETENTION_CHUNK_PAUSE_SECONDS": "0.4",
    }


def _start_worker(name: str, concurrency: int = 1) -> subprocess.Popen[bytes]:
    pool = ["--pool=solo"] if concurrency == 1 else ["--pool=prefork", f"--concurrency={concurrency}"]
    return subprocess.Popen(  # noqa: S603 - a fixed command line, nothing from input
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "fusion_site",
            "worker",
            "-n",
            f"{name}@%h",
            *pool,
            "--without-gossip",
            "--without-mingle",
            "--loglevel=WARNING",
        ],
        cwd=ROOT,
        env=_worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"Timed out waiting for {what}")


@pytest.fixture
def due_customers(partner) -> list[Customer]:
    _require_services()
    customers = [full_customer(partner) for _ in range(CUSTOMERS)]
    Customer.objects.filter(pk__in=[c.pk for c in customers]).update(
        contract_start=datetime.date(2020, 1, 1), contract_end=datetime.date(2024, 1, 31)
    )
    return customers


def _forget_every_task() -> None:
    """Empty the queue and Kombu's record of delivered but unacknowledged tasks, which a killed worker
    leaves behind and which would otherwise be redelivered into the next test."""
    celery_app.control.purge()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("unacked", "unacked_index", "unacked_mutex")


@pytest.fixture
def broker() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    _forget_every_task()
    yield
    _forget_every_task()
    celery_app.conf.task_always_eager = previous


def test_worker_killed_mid_run_the_task_is_redelivered_and_the_run_completes(due_customers, broker):
    first = _start_worker("first")
    second = None
    try:
        run_retention.apply_async()
        _wait_for(
            lambda: RetentionRun.objects.filter(chunks_done__gte=2).exists(), 60, "the first chunks to commit"
        )
        os.killpg(first.pid, signal.SIGKILL)  # no warm shutdown: the task is neither acknowledged nor failed
        first.wait()
        run = RetentionRun.objects.get()
        erased_before = Customer.objects.filter(erased_at__isnull=False).count()
        assert run.status == RetentionRun.Status.RUNNING and 0 < erased_before < CUSTOMERS

        second = _start_worker("second")
        _wait_for(
            lambda: RetentionRun.objects.filter(pk=run.pk, status=RetentionRun.Status.COMPLETED).exists(),
            90,
            "the redelivered task to complete the run",
        )
    finally:
        _stop(first)
        if second is not None:
            _stop(second)

    run.refresh_from_db()
    assert RetentionRun.objects.count() == 1 and run.attempts == 2
    assert not Customer.objects.filter(pk__in=[c.pk for c in due_customers], erased_at__isnull=True).exists()
    erasures = Counter(ErasureRecord.objects.values_list("customer_pk", flat=True))
    assert erasures == Counter({c.pk: 1 for c in due_customers})  # each erased once: none twice, none missed
    assert not ErasureRecord.objects.filter(repeat=True).exists()
    assert run.counts["customer_account"]["accounts.Customer"] == CUSTOMERS


def test_two_runs_started_at_once_one_works_the_other_exits(due_customers, broker):
    worker = _start_worker("pair", concurrency=2)
    try:
        results = [run_retention.apply_async(), run_retention.apply_async()]
        outcomes = [result.get(timeout=90) for result in results]
    finally:
        _stop(worker)
    assert sorted(outcomes, key=lambda value: value is None) == [RetentionRun.objects.get().pk, None]
    assert RetentionRun.objects.get().status == RetentionRun.Status.COMPLETED
    assert Counter(ErasureRecord.objects.values_list("customer_pk", flat=True)) == Counter(
        {c.pk: 1 for c in due_customers}
    )
