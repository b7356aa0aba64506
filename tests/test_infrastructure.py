"""The two commands' foundations: the real services in CI, Celery configuration, roles, demo data."""

import datetime
import io
import os

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.sessions.backends.cached_db import SessionStore
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from accounts.models import Contact, Customer, Line, PaymentDetails, Role, Site, User
from fusion_site.celery import app as celery_app
from fusion_site.redis_cache import ReusedClientRedisCache
from tests.conftest import LONDON, require_service


def _redis_reachable() -> bool:
    if not settings.REDIS_URL:
        return False
    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


@pytest.mark.services
def test_database_is_postgresql_in_ci(db):
    require_service(
        "PostgreSQL", connection.vendor == "postgresql", "DATABASE_URL does not point at PostgreSQL"
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        assert int(cursor.fetchone()[0].split(".")[0]) >= 13


@pytest.mark.services
def test_postgresql_connections_do_not_jit_compile_page_queries(db):
    # A page's statements are milliseconds; JIT spent 25-30 ms compiling the scoped customer list's count
    # (bench/load.py). The bill run and the import already turned it off for their own transactions.
    require_service(
        "PostgreSQL", connection.vendor == "postgresql", "DATABASE_URL does not point at PostgreSQL"
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


@pytest.mark.services
def test_redis_cache_round_trip():
    require_service("Redis", _redis_reachable(), "REDIS_URL is unset or Redis does not answer")
    assert settings.CACHES["default"]["BACKEND"].endswith("RedisCache")
    cache.set("fusion:ci-check", {"ok": 1}, timeout=30)
    assert cache.get("fusion:ci-check") == {"ok": 1}
    cache.delete("fusion:ci-check")


@pytest.mark.services
def test_the_redis_cache_keeps_one_client_per_pool_and_still_answers_after_a_fork():
    require_service("Redis", _redis_reachable(), "REDIS_URL is unset or Redis does not answer")
    backend = ReusedClientRedisCache(settings.REDIS_URL, {"KEY_PREFIX": f"fusion-reuse-{os.getpid()}"})
    reader, writer = backend._cache.get_client(), backend._cache.get_client(write=True)
    assert reader is writer is backend._cache.get_client()  # one server: one pool, one client
    backend.set("key", {"ok": 1}, timeout=30)

    child = os.fork()
    if child == 0:  # as a gunicorn worker forked from a master that used the cache
        os._exit(0 if backend.get("key") == {"ok": 1} and backend.delete("key") else 1)
    _pid, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert backend.get("key") is None  # deleted by the child, through its own connection


@pytest.mark.services
def test_sessions_are_read_from_redis_and_kept_in_the_database(client, agent):
    require_service("Redis", _redis_reachable(), "REDIS_URL is unset or Redis does not answer")
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db"
    client.force_login(agent)
    key = client.session.session_key
    cached = SessionStore(session_key=key).cache_key

    assert client.get(reverse("accounts:home")).status_code == 200
    assert Session.objects.filter(session_key=key).exists()
    assert cache.get(cached) is not None

    client.post(reverse("logout"))
    assert not Session.objects.filter(session_key=key).exists()
    assert cache.get(cached) is None


def test_celery_configured_under_its_namespace():
    conf = celery_app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT
    # What a starting worker does: import each installed app's tasks module (autodiscovery is lazy, so
    # without this the answer depended on whether another test had imported a tasks module first).
    celery_app.loader.import_default_modules()
    for app_label in ("accounts", "billing", "privacy"):
        assert any(name.startswith(f"{app_label}.tasks.") for name in celery_app.tasks), app_label
    assert "accounts.tasks.submit_provisioning_order" in celery_app.tasks


def test_role_groups_are_created_by_migration(db):
    assert set(Group.objects.filter(name__in=Role.values).values_list("name", flat=True)) == set(Role.values)
    support = Group.objects.get(name=Role.SUPPORT_AGENT)
    codenames = set(support.permissions.values_list("codename", flat=True))
    assert {"view_customer", "change_contact", "reveal_personal_data"} <= codenames
    assert "reveal_paymentdetails" not in codenames
    assert "view_all_customers" not in codenames
    portal = set(Group.objects.get(name=Role.CUSTOMER).permissions.values_list("codename", flat=True))
    assert "reveal_personal_data" not in portal and "view_all_customers" not in portal


def test_seed_demo_creates_every_role_and_full_site_details_and_is_idempotent(db):
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", customers=30, partners=2, stdout=out, stderr=err)
    assert Customer.objects.count() == 30
    for model in (Site, Contact, Line, PaymentDetails):
        assert model.objects.count() >= 30, model
    for role in Role.values:
        assert User.objects.filter(groups__name=role, is_active=True).exists(), role
    printed = out.getvalue()
    assert "admin@fusion.example" in printed and "fusion-demo-password" in printed
    assert "Customers" in err.getvalue()  # the progress bar
    portal = User.objects.get(email="portal@demo-1.example")
    assert portal.customer is not None and not portal.is_staff
    assert portal.check_password("fusion-demo-password")

    call_command("seed_demo", customers=30, partners=2, stdout=io.StringIO(), stderr=io.StringIO())
    assert Customer.objects.count() == 30


def test_demo_history_is_attributed_to_the_seed_actor(db):
    call_command("seed_demo", customers=4, partners=1, stdout=io.StringIO(), stderr=io.StringIO())
    record = Contact.history.first()
    assert record is not None and record.history_user.email.startswith("seed-demo@")


# Nothing rots unrun: CI runs ``make bench-smoke`` and ``make test-dates`` (.ci/run).

REPO = settings.BASE_DIR


def _make_variable(name: str) -> list[str]:
    for line in (REPO / "Makefile").read_text().splitlines():
        if line.startswith(f"{name} :="):
            return line.split(":=", 1)[1].split()
    raise AssertionError(f"the Makefile sets no {name}")


def test_every_bench_script_is_run_at_smoke_size_by_ci():
    """A bench script added to bench/ is listed for ``make bench-smoke`` and takes ``--smoke``."""
    scripts = sorted(
        f"bench/{path.name}"
        for path in (REPO / "bench").glob("*.py")
        if 'if __name__ == "__main__":' in path.read_text()
    )
    assert scripts, "no bench scripts found"
    assert sorted(_make_variable("BENCHES")) == scripts
    for script in scripts:
        assert '"--smoke"' in (REPO / script).read_text(), f"{script} has no --smoke size"
    ci = (REPO / ".ci" / "run").read_text()
    assert "make bench-smoke" in ci and "make test-dates" in ci


def test_ci_reruns_the_date_sensitive_tests_at_a_month_end_a_leap_day_and_the_clocks_going_back():
    instants = [datetime.datetime.fromisoformat(text) for text in _make_variable("DATE_SENSITIVE_INSTANTS")]
    london = [instant.astimezone(LONDON) for instant in instants]
    month_end = any((day + datetime.timedelta(days=1)).day == 1 for day in london)
    leap_day = any((day.month, day.day) == (2, 29) for day in london)
    # The repeated hour: the same wall-clock time an hour later is another UTC instant (fold=1).
    clocks_back = any(
        day.replace(fold=1).utcoffset() != day.replace(fold=0).utcoffset() and day.fold == 0 for day in london
    )
    assert month_end and leap_day and clocks_back, london
