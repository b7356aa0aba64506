import datetime
import os
import zoneinfo

import pytest
import time_machine
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import Role
from billing.demo import uk_tariff
from fusion_site import crypto
from fusion_site.celery import app as celery_app
from tests.billing.factories import billing_profile
from tests.factories import CustomerFactory, PartnerFactory, UserFactory, full_customer

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Every test runs under a frozen clock, so no outcome depends on the day the suite runs. The default
# instant is a month's last day (retention and deadline rules turn on month ends). ``FUSION_TEST_NOW``
# (an ISO 8601 instant with its offset) moves the tests marked ``date_sensitive`` to another instant:
# CI runs them again at a month end, on a leap day and in the hour the clocks go back (.ci/run).
DEFAULT_TEST_NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
TEST_NOW_VARIABLE = "FUSION_TEST_NOW"
LONDON = zoneinfo.ZoneInfo("Europe/London")


def test_now(*, date_sensitive: bool) -> datetime.datetime:
    """The instant a test starts at: ``FUSION_TEST_NOW`` for date-sensitive tests when it is set."""
    override = os.environ.get(TEST_NOW_VARIABLE, "")
    if not (date_sensitive and override):
        return DEFAULT_TEST_NOW
    instant = datetime.datetime.fromisoformat(override)
    if instant.tzinfo is None:
        raise pytest.UsageError(f"{TEST_NOW_VARIABLE}={override!r} needs an offset, e.g. +00:00")
    return instant


@pytest.fixture(autouse=True)
def _frozen_clock(request):
    """Freeze the clock at ``test_now`` (it ticks on from there, so code that waits still sees time
    pass). A test marked ``frozen_at("<ISO instant>")`` starts at its own instant; one marked
    ``real_clock`` (it talks to another process on the real clock: a Celery worker, Chromium) is left
    alone and must use only times relative to now."""
    if request.node.get_closest_marker("real_clock"):
        yield None
        return
    pinned = request.node.get_closest_marker("frozen_at")
    if pinned:
        start = datetime.datetime.fromisoformat(pinned.args[0])
    else:
        start = test_now(date_sensitive=request.node.get_closest_marker("date_sensitive") is not None)
    with time_machine.travel(start, tick=True) as traveller:
        yield traveller


@pytest.fixture
def clock(_frozen_clock):
    """The test's time machine: ``clock.shift(datetime.timedelta(...))`` or ``clock.move_to(instant)``."""
    if _frozen_clock is None:
        pytest.fail("this test is marked real_clock: it has no frozen clock to move")
    return _frozen_clock


@pytest.fixture(autouse=True)
def _tasks_in_process():
    """Unit tests run tasks in-process; tests marked ``services`` start a real worker instead."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _own_audit_checkpoints(settings, tmp_path):
    """Each test verifies the audit chain against its own checkpoints, never a developer's local ones."""
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """The production hasher costs most of a second per user; tests make hundreds of users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class VerifiedClient(Client):
    """A test client whose ``force_login`` also passes the second factor, as a real login through
    /login/ and /account/two-factor/ would: the user gets a confirmed TOTP device and the session
    records it. Tests of the second factor itself use ``Client`` and log in step by step."""

    def force_login(self, user, backend=None):
        super().force_login(user, backend)
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or TOTPDevice.objects.create(
            user=user, name="test authenticator", confirmed=True
        )
        session = self.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()


@pytest.fixture
def client():
    """pytest-django's ``client``, with a ``force_login`` that completes two-factor verification."""
    return VerifiedClient()


@pytest.fixture
def partner(db):
    return PartnerFactory()


@pytest.fixture
def other_partner(db):
    return PartnerFactory()


@pytest.fixture
def customer(partner):
    return full_customer(partner)


@pytest.fixture
def other_customer(other_partner):
    return full_customer(other_partner)


@pytest.fixture
def make_user(db, partner):
    """``make_user(role, cleared=True, **fields)``: partner staff belong to the ``partner`` fixture;
    administrators and DPOs to no partner; a portal user gets a new customer of that partner."""
    provider_roles = {Role.ADMINISTRATOR, Role.DATA_PROTECTION_OFFICER}

    def make(role: Role, *, cleared: bool = True, **kwargs):
        if role == Role.CUSTOMER:
            if "customer" not in kwargs:
                kwargs["customer"] = CustomerFactory(partner=partner)
        elif role not in provider_roles:
            kwargs.setdefault("partner", partner)
        return UserFactory(role=role, cleared=cleared, **kwargs)

    return make


@pytest.fixture
def decryptions(monkeypatch) -> list[str]:
    """Each stored value decrypted while the test runs, in order (``fusion_site.crypto.decrypt`` counted)."""
    decrypted: list[str] = []
    decrypt = crypto.decrypt

    def counted(stored: str) -> str:
        decrypted.append(stored)
        return decrypt(stored)

    monkeypatch.setattr(crypto, "decrypt", counted)
    return decrypted


def require_service(name: str, available: bool, why: str) -> None:
    """Inside CI a missing service fails the test; outside CI the test is skipped, saying why."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{name} is required in CI: {why}")
    pytest.skip(f"{name} not available outside CI ({why})")


@pytest.fixture
def agent(make_user):
    return make_user(Role.BILLING_AGENT)


@pytest.fixture
def finance(make_user):
    return make_user(Role.FINANCE_MANAGER)


@pytest.fixture
def dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


@pytest.fixture
def profile(partner):
    """The partner bills on the standard UK tariff (billing.demo.UK_RATES) by default."""
    return billing_profile(partner, default_tariff=uk_tariff())


def pytest_collection_modifyitems(config, items):
    """A test that commits must give back the migrated rows (role groups, content types) it flushes:
    without ``serialized_rollback`` every later test finds them gone and fails far from the cause."""
    unsafe = [
        item.nodeid
        for item in items
        if (marker := item.get_closest_marker("django_db"))
        and marker.kwargs.get("transaction")
        and not marker.kwargs.get("serialized_rollback")
    ]
    if unsafe:
        raise pytest.UsageError(
            "django_db(transaction=True) needs serialized_rollback=True: " + ", ".join(unsafe)
        )


@pytest.fixture
def migrations_restored():
    """For a test that migrates the test database back: every app's latest migration again afterwards.
    Migrating one app forward to its own latest leaves behind the other apps' migrations that were unapplied
    with it (billing's ledger depends on accounts), and the tests after it would find tables missing."""
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
