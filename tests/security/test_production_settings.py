"""Production settings (DJANGO_DEBUG=false), loaded for real in a subprocess: `check --deploy` passes
with no warnings, and the pages carry the transport and browser security headers."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]

HEADERS_SCRIPT = """
import json, django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
from django.conf import settings
client = Client()
plain = client.get("/login/", HTTP_HOST="backoffice.example")
secure = client.get("/login/", HTTP_HOST="backoffice.example", secure=True)
print(json.dumps({
    "plain_status": plain.status_code,
    "plain_location": plain.get("Location", ""),
    "headers": dict(secure.headers),
    "cookies": {name: dict(morsel) for name, morsel in secure.cookies.items()},
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "session_cookie_httponly": settings.SESSION_COOKIE_HTTPONLY,
    "csrf_cookie_secure": settings.CSRF_COOKIE_SECURE,
}))
"""


def production_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        DJANGO_SETTINGS_MODULE="fusion_site.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_ALLOWED_HOSTS="backoffice.example",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=secrets.token_urlsafe(32),
        AUDIT_HMAC_KEYS=secrets.token_urlsafe(32),
        AUDIT_CHECKPOINT_DIR=str(tmp_path / "audit-checkpoints"),
        ERASURE_JOURNAL_DIR=str(tmp_path / "erasure-journal"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'production.sqlite3'}",
        # These tests render pages without running collectstatic first; tests/test_production_serving.py
        # renders them from the collected, hashed and compressed files as production does.
        DJANGO_STATIC_MANIFEST="false",
    )
    env.pop("REDIS_URL", None)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_deploy_passes_with_no_warnings_in_production(tmp_path):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_would_catch_a_missing_setting(tmp_path):
    """The same check fails when production is misconfigured, so the test above can fail."""
    env = production_env(tmp_path)
    env["DJANGO_SECRET_KEY"] = "short"

    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)

    assert result.returncode != 0
    assert "security.W009" in result.stdout + result.stderr


def test_production_refuses_to_start_without_the_audit_key_checkpoint_or_erasure_journal_directory(tmp_path):
    for name in ("AUDIT_HMAC_KEYS", "AUDIT_CHECKPOINT_DIR", "ERASURE_JOURNAL_DIR"):
        env = production_env(tmp_path)
        del env[name]

        result = run(["manage.py", "check"], env)

        assert result.returncode != 0
        assert f"{name} must be set when DJANGO_DEBUG is off." in result.stderr


@pytest.fixture(scope="module")
def production_response(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("production")
    env = production_env(tmp_path)
    migrated = run(["manage.py", "migrate", "--noinput"], env)
    assert migrated.returncode == 0, migrated.stderr
    result = run(["-c", HEADERS_SCRIPT], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_plain_http_is_redirected_to_https(production_response):
    assert production_response["plain_status"] == 301
    assert production_response["plain_location"].startswith("https://backoffice.example/")


def test_security_headers_are_sent(production_response):
    headers = production_response["headers"]

    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


def test_cookies_are_secure_and_http_only(production_response):
    assert production_response["session_cookie_secure"] is True
    assert production_response["session_cookie_httponly"] is True
    assert production_response["csrf_cookie_secure"] is True
    csrf = production_response["cookies"]["csrftoken"]
    assert csrf["secure"] is True
    assert csrf["httponly"] is True
    assert csrf["samesite"] == "Strict"


def test_no_template_has_inline_script_or_style():
    """The CSP forbids inline script and style, so none may be written into a template."""
    offenders = []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        for needle in ("<script>", "<style", " style=", "onclick=", "onload=", "javascript:"):
            if needle in text.lower():
                offenders.append(f"{template.relative_to(ROOT)}: {needle}")
    assert offenders == []
