"""Production as `make serve` runs it, without the servers: DJANGO_DEBUG=false in a subprocess, static files
collected (hashed names, gzip and Brotli copies) and the main pages rendered from them, JSON log lines,
and the preflight that refuses a configuration that would run but do the wrong thing.

The same against gunicorn, a Celery worker and beat on PostgreSQL and Redis: tests/prod/test_prod_smoke.py.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.test_production_settings import ROOT, production_env

PAGES_SCRIPT = """
import json, sys, django
django.setup()
from django.test import Client
from django.test.utils import setup_test_environment
setup_test_environment()
from django.conf import settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice
from accounts.models import Role
from tests.factories import PartnerFactory, UserFactory, full_customer

partner = PartnerFactory()
customer = full_customer(partner)
admin = UserFactory(role=Role.ADMINISTRATOR)
client = Client(HTTP_HOST="backoffice.example")
public = ("/login/", "/site/", "/site/contact/", "/site/mailing-list/")
anonymous = {path: client.get(path, secure=True) for path in public}
client.force_login(admin)
device = TOTPDevice.objects.create(user=admin, name="phone", confirmed=True)
session = client.session
session[DEVICE_ID_SESSION_KEY] = device.persistent_id
session.save()
paths = ["/", f"/customers/{customer.reference}/", "/billing/runs/", "/privacy/", "/admin/", "/no-such-page/"]
signed_in = {path: client.get(path, secure=True) for path in paths}
print(json.dumps({
    "storage": settings.STORAGES["staticfiles"]["BACKEND"],
    "pages": {
        path: {"status": response.status_code, "html": response.content.decode()}
        for path, response in {**anonymous, **signed_in}.items()
    },
}))
"""


def run(args: list[str], env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def served_env(tmp_path: Path) -> dict[str, str]:
    env = production_env(tmp_path)
    del env["DJANGO_STATIC_MANIFEST"]  # production's own default: the manifest storage
    env["DJANGO_STATIC_ROOT"] = str(tmp_path / "static")
    env["DJANGO_ALLOWED_HOSTS"] = "backoffice.example"
    env.pop("DJANGO_LOG_FORMAT", None)
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("served")
    env = served_env(tmp_path)
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
        result = run(["manage.py", *command], env)
        assert result.returncode == 0, result.stdout + result.stderr
    result = run(["-c", PAGES_SCRIPT], env)
    assert result.returncode == 0, result.stderr
    return {
        "static_root": tmp_path / "static",
        "log": result.stderr,
        **json.loads(result.stdout.strip().splitlines()[-1]),
    }


STATIC_REFERENCE = re.compile(r'(?:href|src)="/static/([^"]+)"')
HASHED = re.compile(r"\.[0-9a-f]{12}\.\w+$")


def test_production_serves_static_files_from_the_manifest(served):
    assert served["storage"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    manifest = json.loads((served["static_root"] / "staticfiles.json").read_text())["paths"]
    assert "css/site.css" in manifest


def test_the_main_pages_render_with_hashed_static_files_that_were_collected(served):
    pages = served["pages"]
    expected = {path: 200 for path in pages} | {"/no-such-page/": 404}
    assert {path: page["status"] for path, page in pages.items()} == expected
    referenced = set()
    for page in pages.values():
        referenced.update(STATIC_REFERENCE.findall(page["html"]))
    assert referenced, "no page refers to a static file"
    assert [name for name in referenced if not HASHED.search(name)] == []
    missing = [name for name in referenced if not (served["static_root"] / name).is_file()]
    assert missing == []


def test_text_static_files_have_gzip_and_brotli_copies(served):
    site_css = next(served["static_root"].glob("css/site.*.css"))
    assert Path(f"{site_css}.gz").is_file()
    assert Path(f"{site_css}.br").is_file()


def test_production_logs_json_lines_with_request_ids(served):
    """The 404 above was logged by the settings' own handler: a JSON line with the request's id."""
    records = [json.loads(line) for line in served["log"].splitlines() if line.startswith("{")]
    not_found = [record for record in records if record.get("status_code") == 404]
    assert not_found, served["log"]
    assert re.fullmatch(r"[0-9a-f-]{36}", not_found[0]["request_id"])
    assert not_found[0]["logger"] == "django.request"


def test_preflight_refuses_sqlite_and_an_inline_task_runner(tmp_path):
    env = served_env(tmp_path)
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)

    result = run(["manage.py", "preflight"], env)

    assert result.returncode == 1
    assert "DATABASE_URL points at sqlite: production runs on PostgreSQL" in result.stderr
    assert "REDIS_URL is not set" in result.stderr
    assert "CELERY_BROKER_URL is not set" in result.stderr
    assert "migrations are not applied: run `make migrate` first" in result.stderr
    assert "run `make collectstatic`" in result.stderr


def test_production_names_every_missing_secret_at_once(tmp_path):
    env = served_env(tmp_path)
    del env["DJANGO_SECRET_KEY"]
    del env["BLIND_INDEX_KEY"]

    result = run(["manage.py", "preflight"], env)

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY, BLIND_INDEX_KEY must be set when DJANGO_DEBUG is off." in result.stderr
