"""Celery queues by kind of work: every registered task is routed to one of the named queues, a worker
started without --queues consumes them all, and `make worker` consumes them all by default."""

import re

import pytest
from django.conf import settings

from fusion_site.celery import app as celery_app

QUEUES = {"imports", "bill_runs", "privacy", "mail", "default"}


def queue_of(task_name: str) -> str:
    return celery_app.amqp.router.route({}, task_name)["queue"].name


@pytest.fixture(scope="module")
def registered_tasks() -> list[str]:
    # What a starting worker does: import each installed app's tasks module.
    celery_app.loader.import_default_modules()
    names = sorted(name for name in celery_app.tasks if not name.startswith("celery."))
    assert len(names) >= 10, names
    return names


def test_the_queues_are_the_named_kinds_of_work():
    assert set(settings.CELERY_QUEUE_NAMES) == QUEUES
    assert set(celery_app.amqp.queues) == QUEUES
    assert celery_app.conf.task_default_queue == "default"


def test_every_registered_task_routes_to_a_named_queue(registered_tasks):
    unrouted = {name: queue_of(name) for name in registered_tasks if queue_of(name) not in QUEUES}
    assert unrouted == {}
    # Celery's own tasks (chords, backend clean-up) too.
    assert {queue_of(name) for name in celery_app.tasks} <= QUEUES


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("billing.tasks.import_call_file", "imports"),
        ("billing.tasks.calculate_bill_run_chunk", "bill_runs"),
        ("billing.tasks.call_partitions_ahead_daily", "imports"),
        ("privacy.tasks.run_retention", "privacy"),
        ("privacy.tasks.build_data_export", "privacy"),
        ("privacy.tasks.purge_expired_data_exports", "privacy"),
        ("privacy.tasks.send_breach_reminders", "mail"),
        ("privacy.tasks.send_deadline_reminders", "mail"),
        ("accounts.tasks.send_security_alert", "mail"),
        ("billing.tasks.send_direct_debit_notices_daily", "mail"),
        ("accounts.tasks.submit_provisioning_order", "default"),
        ("accounts.tasks.verify_audit_chain_nightly", "default"),
        ("billing.tasks.dunning_daily", "default"),
    ],
)
def test_each_kind_of_work_has_its_queue(registered_tasks, task, queue):
    assert task in registered_tasks
    assert queue_of(task) == queue


def test_every_queue_has_work(registered_tasks):
    """A queue no task is routed to would be a worker waiting for ever (or a misspelt route)."""
    assert {queue_of(name) for name in registered_tasks} == QUEUES


def test_make_worker_consumes_every_queue_by_default():
    makefile = (settings.BASE_DIR / "Makefile").read_text()
    default = re.search(r"^QUEUES \?= (\S+)$", makefile, re.M)
    assert default is not None
    assert set(default.group(1).split(",")) == QUEUES
    assert "--queues=$(QUEUES)" in makefile


def test_workers_keep_djangos_logging():
    """Celery would otherwise put its own plain-text handlers on the root and task loggers, so a worker's
    lines would be neither JSON nor carry the request id field."""
    import logging

    from celery.app.log import Logging

    root = logging.getLogger()
    before = list(root.handlers)
    was_setup = Logging._setup
    try:
        Logging._setup = False  # as in a freshly started worker
        celery_app.log.setup_logging_subsystem(loglevel="INFO")
        assert root.handlers == before
        task_handlers = logging.getLogger("celery.task").handlers
        assert all(isinstance(handler, logging.NullHandler) for handler in task_handlers), task_handlers
    finally:
        Logging._setup = was_setup
