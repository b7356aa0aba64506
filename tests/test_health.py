"""/healthz and /readyz as the proxy, systemd and CI ask them: each readiness check, and each failure."""

import json
import logging
import socket

import pytest
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from accounts.models import Role
from fusion_site import health

CHECKS = {"database", "migrations", "cache", "broker", "encryption_keys", "audit_keys"}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_healthz_answers_ok_without_touching_the_database():
    """No ``db`` fixture: a query would fail the test (pytest-django blocks the database)."""
    response = Client().get("/healthz")

    assert response.status_code == 200
    assert response.content == b"ok"
    assert "no-store" in response["Cache-Control"]


def test_readyz_names_every_check_and_answers_200_when_all_pass(db):
    response = Client().get("/readyz")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body == {"status": "ok", "checks": dict.fromkeys(CHECKS, "ok")}
    assert "no-store" in response["Cache-Control"]
    assert set(health.readiness_check_names()) == CHECKS


def test_readyz_is_503_when_redis_is_down_and_says_nothing_of_the_url(db, settings, caplog):
    settings.REDIS_URL = f"redis://:cache-password-123@127.0.0.1:{closed_port()}/0"

    with caplog.at_level(logging.ERROR, logger="fusion_site.health"):
        response = Client().get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failed"
    assert body["checks"]["cache"] == "failed"
    assert {name for name, result in body["checks"].items() if result == "ok"} == CHECKS - {"cache"}
    assert b"cache-password-123" not in response.content
    assert b"Connection" not in response.content and b"Error" not in response.content
    # Operators learn why from the log, not from the probe's body.
    assert "Readiness check cache failed" in caplog.text


def test_readyz_is_503_when_the_broker_is_down(db, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/1"

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "failed"


@pytest.mark.django_db
def test_readyz_is_503_while_a_migration_is_unapplied(monkeypatch):
    real_plan = MigrationExecutor.migration_plan

    def plan_with_one_unapplied(self, targets, clean_start=False):
        plan = real_plan(self, targets, clean_start)
        assert plan == [], "the test database should be fully migrated"
        return [(self.loader.graph.nodes[("accounts", "0001_initial")], False)]

    monkeypatch.setattr(MigrationExecutor, "migration_plan", plan_with_one_unapplied)

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "failed"
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_is_503_when_the_encryption_key_is_unusable(db, settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["encryption_keys"] == "failed"
    assert b"not-a-fernet-key" not in response.content


def test_readyz_is_503_when_the_audit_key_is_unusable(db, settings):
    settings.AUDIT_HMAC_KEYS = ["too-short"]

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["audit_keys"] == "failed"
    assert response.json()["checks"]["encryption_keys"] == "ok"


def test_the_database_being_down_is_a_failed_check_not_a_500(db, monkeypatch):
    def refuse() -> None:
        raise health_error

    health_error = ConnectionRefusedError("password=db-secret refused")
    monkeypatch.setitem(health._CHECKS, "database", refuse)

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "failed"
    assert b"db-secret" not in response.content


def test_the_probes_skip_the_second_factor_and_the_https_redirect(make_user, settings):
    """A session that has a password but no second factor is sent to the two-factor page everywhere
    else; a probe over plain HTTP is redirected to HTTPS everywhere else. Neither applies to the probes."""
    settings.SECURE_SSL_REDIRECT = True
    client = Client()  # not the VerifiedClient: force_login here passes no second factor
    client.force_login(make_user(Role.BILLING_AGENT))

    assert client.get("/", secure=True)["Location"].startswith("/account/two-factor/")
    assert client.get("/login/").status_code == 301
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)


def test_the_probes_answer_get_only(db):
    assert Client().post("/healthz").status_code == 405
    assert Client().post("/readyz").status_code == 405


def test_readyz_body_is_json_with_no_personal_data_or_secrets(db, settings):
    response = Client().get("/readyz")
    text = response.content.decode()

    assert json.loads(text)["checks"].keys() == CHECKS
    for secret in (*settings.FIELD_ENCRYPTION_KEYS, settings.BLIND_INDEX_KEY, *settings.AUDIT_HMAC_KEYS):
        assert secret not in text
