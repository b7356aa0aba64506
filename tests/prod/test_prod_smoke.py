"""Production for real, on this machine: gunicorn with the production settings on a free port of
127.0.0.1, a Celery worker on every queue and beat, on the real PostgreSQL (a database of its own) and
Redis (databases of its own). `make serve` refuses the unmigrated database; after `migrate` and
`collectstatic` the processes start, /readyz turns 200, a hashed static file is served compressed, a
billing agent logs in with password and TOTP code, a bill run is calculated by the worker, and all of
them stop cleanly on SIGTERM.

Runs in CI (where PostgreSQL and Redis must be there) and wherever DATABASE_URL names a PostgreSQL and
REDIS_URL a Redis that answer; skipped elsewhere, saying why.
"""

import gzip
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import brotli
import psycopg
import pytest
import redis
from cryptography.fernet import Fernet
from django_otp.oath import totp

from tests.conftest import require_service

ROOT = Path(__file__).resolve().parents[2]
QUEUES = "imports,bill_runs,privacy,mail,default"
# Redis databases of the smoke test's own, so its broker never hands a task to another test's worker.
REDIS_DATABASES = {"cache": 10, "broker": 11, "results": 12}
STARTUP_SECONDS = 120

pytestmark = [pytest.mark.services, pytest.mark.real_clock]


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else ""


def _postgres_reachable(url: str) -> bool:
    try:
        with psycopg.connect(_with_database(url, "postgres"), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _redis_url() -> str:
    return os.environ.get("REDIS_URL", "")


def _redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def _redis_database(url: str, number: int) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{number}"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smoke_database() -> Iterator[str]:
    postgres = _postgres_url()
    require_service("PostgreSQL", bool(postgres) and _postgres_reachable(postgres), "DATABASE_URL")
    require_service("Redis", bool(_redis_url()) and _redis_reachable(_redis_url()), "REDIS_URL")
    name = f"{urllib.parse.urlsplit(postgres).path.strip('/') or 'fusion'}_prod_smoke"
    admin_url = _with_database(postgres, "postgres")

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    drop()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(postgres, name)
    drop()


def production_env(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "GUNICORN_", "PYTEST_", "FUSION_TEST"))
    }
    redis_url = _redis_url()
    env.update(
        DJANGO_SETTINGS_MODULE="fusion_site.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(60),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_BEHIND_TLS_PROXY="true",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        DJANGO_MEDIA_ROOT=str(tmp_path / "media"),
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        BLIND_INDEX_KEY=secrets.token_urlsafe(32),
        AUDIT_HMAC_KEYS=secrets.token_urlsafe(32),
        AUDIT_CHECKPOINT_DIR=str(tmp_path / "audit-checkpoints"),
        ERASURE_JOURNAL_DIR=str(tmp_path / "erasure-journal"),
        DATABASE_URL=database_url,
        REDIS_URL=_redis_database(redis_url, REDIS_DATABASES["cache"]),
        CELERY_BROKER_URL=_redis_database(redis_url, REDIS_DATABASES["broker"]),
        CELERY_RESULT_BACKEND=_redis_database(redis_url, REDIS_DATABASES["results"]),
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
        SITE_URL=f"https://127.0.0.1:{port}",
    )
    return env


def manage(env: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start(name: str, command: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("wb")
    return subprocess.Popen(  # noqa: S603 - fixed command lines, nothing from input
        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM (gunicorn's graceful stop, Celery's warm shutdown), as systemd stops them."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return -9
    return process.returncode


class Browser:
    """Plain HTTP to gunicorn as the TLS proxy forwards it (X-Forwarded-Proto: https), keeping cookies by
    hand: they are Secure, which a cookie jar would not send over plain HTTP."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.origin = f"https://127.0.0.1:{port}"
        self.cookies: dict[str, str] = {}
        opener = urllib.request.build_opener(NoRedirects)
        self.opener = opener

    def request(self, path: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None):
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=body)  # noqa: S310 - http on loopback
        request.add_header("X-Forwarded-Proto", "https")
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if body is not None:
            request.add_header("Referer", f"{self.origin}{path}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            response = self.opener.open(request, timeout=30)
        except urllib.error.HTTPError as error:
            response = error
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response.status, response.headers, response.read()

    def csrf_token(self, html: bytes) -> str:
        found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
        assert found, html[:500]
        return found.group(1).decode()


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def wait_until_ready(browser: Browser, processes: dict[str, subprocess.Popen[bytes]], logs: Path) -> dict:
    deadline = time.monotonic() + STARTUP_SECONDS
    last: object = None
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{(logs / f'{name}.log').read_text()}")
        try:
            status, _, body = browser.request("/readyz")
        except OSError as error:
            last = error
        else:
            last = body
            if status == 200:
                return json.loads(body)
        time.sleep(1)
    pytest.fail(f"/readyz never answered 200: {last!r}\n{(logs / 'web.log').read_text()}")


# The last calendar month before today (real_clock: these run in other processes, on the real clock).
LAST_MONTH = """
import datetime
from django.utils import timezone
period_end = timezone.localdate().replace(day=1) - datetime.timedelta(days=1)
period_start = period_end.replace(day=1)
"""

SETUP_SCRIPT = (
    LAST_MONTH
    + """
import io, json
from django_otp.plugins.otp_totp.models import TOTPDevice
from accounts.models import Role
from accounts.validation import national_phone_digits
from billing.demo import billing_profile, uk_tariff
from billing.services.call_imports import call_import_run
from tests.factories import PartnerFactory, UserFactory, full_customer

partner = PartnerFactory()
billing_profile(partner, default_tariff=uk_tariff())
customers = [full_customer(partner) for _ in range(2)]
agent = UserFactory(role=Role.BILLING_AGENT, partner=partner, email="smoke-agent@fusion.test")
device = TOTPDevice.objects.create(user=agent, name="phone", confirmed=True)
rows = ["cli,dialled_number,start_time,duration,call_type,call_reference"]
for number, customer in enumerate(customers):
    cli = national_phone_digits(customer.lines.get().cli)
    rows.append(f"{cli},01134960000,{period_start.isoformat()}T1{number}:00:00,600,voice,S{number}")
call_import_run(partner=partner, stream=io.StringIO("\\n".join(rows)), file_name="s.csv", actor=agent)
print(json.dumps({"partner": partner.pk, "agent": agent.pk, "totp_key": device.key}))
"""
)

BILL_RUN_SCRIPT = (
    LAST_MONTH
    + """
import json, time
from accounts.models import User
from billing.models import BillRun
from billing.services.bill_runs import bill_run_create, bill_run_start_calculation

agent = User.objects.get(email="smoke-agent@fusion.test")
bill_run = bill_run_create(
    partner=agent.partner, period_start=period_start, period_end=period_end, actor=agent,
)
bill_run_start_calculation(bill_run=bill_run, actor=agent)
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    bill_run.refresh_from_db()
    if bill_run.status == BillRun.Status.CALCULATED:
        break
    time.sleep(0.5)
print(json.dumps({"status": bill_run.status, "invoices": bill_run.invoices.count()}))
"""
)


def test_production_serves_and_works_on_postgresql_and_redis(smoke_database, tmp_path):
    port = _free_port()
    env = production_env(tmp_path, smoke_database, port)
    logs = tmp_path / "logs"
    logs.mkdir()

    # `make serve` will not start on a database with migrations to apply: it says to run `make migrate`.
    refused = subprocess.run(
        ["make", "--no-print-directory", "serve"],  # noqa: S607 - make from PATH, as a person runs it
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert refused.returncode != 0
    assert "migrations are not applied: run `make migrate` first." in refused.stderr, refused.stderr

    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"], ["preflight"]):
        result = manage(env, *command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
    setup = manage(env, "shell", "-c", SETUP_SCRIPT)
    assert setup.returncode == 0, setup.stderr
    made = json.loads(setup.stdout.strip().splitlines()[-1])

    processes = {
        "web": start(
            "web", [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn_conf.py"], env, logs
        ),
        "worker": start(
            "worker",
            [sys.executable, "-m", "celery", "-A", "fusion_site", "worker", f"--queues={QUEUES}",
             "--pool=solo", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            env,
            logs,
        ),
        "beat": start(
            "beat",
            [sys.executable, "-m", "celery", "-A", "fusion_site", "beat",
             f"--schedule={tmp_path / 'celerybeat-schedule'}", "--loglevel=INFO"],
            env,
            logs,
        ),
    }  # fmt: skip
    exit_codes: dict[str, int] = {}
    try:
        browser = Browser(port)
        ready = wait_until_ready(browser, processes, logs)
        assert set(ready["checks"].values()) == {"ok"}, ready

        status, headers, body = browser.request("/healthz")
        assert (status, body) == (200, b"ok")
        assert "no-store" in headers["Cache-Control"]
        assert re.fullmatch(r"[0-9a-f-]{36}", headers["X-Request-ID"])

        # The login page refers to its stylesheet by hashed name; WhiteNoise serves it compressed.
        status, headers, body = browser.request("/login/")
        assert status == 200
        stylesheet = re.search(rb'href="(/static/css/site\.[0-9a-f]{12}\.css)"', body)
        assert stylesheet, body[:1000]
        for encoding in ("br", "gzip"):
            status, headers, compressed = browser.request(
                stylesheet.group(1).decode(), headers={"Accept-Encoding": encoding}
            )
            assert status == 200
            assert headers["Content-Encoding"] == encoding
            assert "immutable" in headers["Cache-Control"]
            decompress = brotli.decompress if encoding == "br" else gzip.decompress
            collected = tmp_path / stylesheet.group(1).decode().lstrip("/")
            assert decompress(compressed) == collected.read_bytes()

        # Password, then the second factor, then the staff home page.
        token = browser.csrf_token(body)
        status, headers, _ = browser.request(
            "/login/",
            {
                "username": "smoke-agent@fusion.test",
                "password": "correct-horse-battery-staple",
                "csrfmiddlewaretoken": token,
            },
        )
        assert status == 302, status
        status, headers, body = browser.request("/")
        assert status == 302 and headers["Location"].startswith("/account/two-factor/")
        status, _, body = browser.request("/account/two-factor/")
        code = f"{totp(bytes.fromhex(made['totp_key'])):06d}"
        status, headers, _ = browser.request(
            "/account/two-factor/", {"token": code, "csrfmiddlewaretoken": browser.csrf_token(body)}
        )
        assert status == 302, status
        status, _, body = browser.request("/", headers={"X-Request-ID": "smoke-home-request-0001"})
        assert status == 200
        assert b"Log out" in body or b"logout" in body

        # A bill run, calculated by the worker through the broker (chunks on the bill_runs queue).
        run = manage(env, "shell", "-c", BILL_RUN_SCRIPT)
        assert run.returncode == 0, run.stderr
        outcome = json.loads(run.stdout.strip().splitlines()[-1])
        assert outcome == {"status": "calculated", "invoices": 2}, (
            outcome,
            (logs / "worker.log").read_text(),
        )
    finally:
        for name in ("web", "beat", "worker"):
            exit_codes[name] = stop(processes[name])

    assert exit_codes == {"web": 0, "beat": 0, "worker": 0}, {
        name: (logs / f"{name}.log").read_text()[-2000:] for name in processes
    }
    worker_log = (logs / "worker.log").read_text()
    assert "billing.tasks.calculate_bill_run_chunk" in worker_log
    web_log = (logs / "web.log").read_text()
    lines = [json.loads(line) for line in web_log.splitlines() if line.startswith("{")]
    assert any(line["message"].startswith("Listening at") for line in lines), web_log
    assert (tmp_path / "celerybeat-schedule").exists() or list(tmp_path.glob("celerybeat-schedule*"))
