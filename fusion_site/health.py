"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work), for the proxy, systemd and CI.

``/healthz`` touches nothing: 200 ``ok`` while a worker can answer. ``/readyz`` runs every readiness
check and answers 200 only when all pass, else 503, with a JSON body naming each check and ``ok`` or
``failed``. A failure's exception is logged (redacted, with the request id), never put in the body: a
database URL in an error message would hand the password to whoever can reach the port.

Checks here know only this package; a higher app adds its own through ``register_readiness_check``
from its ``AppConfig.ready()`` (accounts registers the audit key ring), as with the personal data
declarations. Both views need no login, skip the second-factor redirect (``accounts.security``) and
the HTTPS redirect (``SECURE_REDIRECT_EXEMPT``), and are never cached.
"""

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from fusion_site import crypto

logger = logging.getLogger(__name__)

# Seconds a probe waits for Redis or the broker before calling it down: a probe must answer quickly.
CONNECT_TIMEOUT_SECONDS = 2
PROBE_PLAINTEXT = "readiness probe"

ReadinessCheck = Callable[[], None]  # returns when the dependency is usable, raises otherwise


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def migration_plan() -> list:
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def check_migrations() -> None:
    unapplied = migration_plan()
    if unapplied:
        raise RuntimeError(f"{len(unapplied)} migrations are not applied")


def _ping_redis(url: str) -> None:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=CONNECT_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()


def check_cache() -> None:
    """The cache's Redis (REDIS_URL); without one the cache is in-process and always there."""
    if settings.REDIS_URL:
        _ping_redis(settings.REDIS_URL)


def check_broker() -> None:
    """The Celery broker; without one tasks run in-process (the embedded default)."""
    broker_url = settings.CELERY_BROKER_URL
    if not broker_url:
        return
    if broker_url.startswith(("redis://", "rediss://")):
        _ping_redis(broker_url)
        return
    from fusion_site.celery import app as celery_app

    with celery_app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_SECONDS)


def check_encryption_keys() -> None:
    """Personal data can be encrypted and read back, and blind indexes computed."""
    if crypto.decrypt(crypto.encrypt(PROBE_PLAINTEXT)) != PROBE_PLAINTEXT:
        raise RuntimeError("round trip under the encryption key ring failed")
    if crypto.decrypt(crypto.encrypt_bulk(PROBE_PLAINTEXT)) != PROBE_PLAINTEXT:
        raise RuntimeError("bulk round trip under the encryption key ring failed")
    crypto.blind_index("readiness", PROBE_PLAINTEXT)


_CHECKS: dict[str, ReadinessCheck] = {
    "database": check_database,
    "migrations": check_migrations,
    "cache": check_cache,
    "broker": check_broker,
    "encryption_keys": check_encryption_keys,
}


def register_readiness_check(name: str, check: ReadinessCheck) -> None:
    _CHECKS[name] = check


def readiness_check_names() -> list[str]:
    return list(_CHECKS)


def run_checks() -> dict[str, str]:
    results = {}
    for name, check in _CHECKS.items():
        try:
            check()
        except Exception:
            # Any failure makes the instance unready; the log (not the response) says why.
            logger.exception("Readiness check %s failed", name)
            results[name] = "failed"
        else:
            results[name] = "ok"
    return results


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    checks = run_checks()
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "failed", "checks": checks}, status=200 if ready else 503
    )
