"""Refuse to start production on a configuration that would run but do the wrong thing.

Run before the web process starts (`make serve`, ExecStartPre of deploy/systemd/fusion-web.service).
The settings already refuse to load without the secrets and keys when DJANGO_DEBUG is off; this adds what
only a running configuration shows: PostgreSQL rather than the embedded SQLite, Redis for the cache and a
broker (without one, tasks would run inside the web request), the database reachable, every migration
applied (migrations are applied on purpose, `make migrate`, never by starting the server), the collected
static files present, and the readiness checks of fusion_site.health passing. Each problem is one line
saying what to set or run; the exit status is 1 when there is any.
"""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection

from fusion_site import health


def problems() -> list[str]:
    found = []
    if settings.DEBUG:
        found.append("DJANGO_DEBUG is on: production runs with DJANGO_DEBUG=false.")
    if connection.vendor != "postgresql":
        found.append(
            f"DATABASE_URL points at {connection.vendor}: production runs on PostgreSQL "
            "(DATABASE_URL=postgres://USER@HOST:5432/NAME)."
        )
    if not settings.REDIS_URL:
        found.append(
            "REDIS_URL is not set: the cache and the login lockout need Redis shared by every process."
        )
    if not settings.CELERY_BROKER_URL or settings.CELERY_TASK_ALWAYS_EAGER:
        found.append(
            "CELERY_BROKER_URL is not set (or CELERY_TASK_ALWAYS_EAGER is on): tasks would run inside web "
            "requests instead of on the workers."
        )
    try:
        health.check_database()
    except DatabaseError:
        found.append("The database does not answer: check DATABASE_URL and that PostgreSQL is running.")
    else:
        unapplied = health.migration_plan()
        if unapplied:
            found.append(f"{len(unapplied)} migrations are not applied: run `make migrate` first.")
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    if settings.STATIC_MANIFEST and not manifest.exists():
        found.append(f"No collected static files in {settings.STATIC_ROOT}: run `make collectstatic`.")
    if not found:
        failed = [name for name, result in health.run_checks().items() if result != "ok"]
        if failed:
            found.append(f"Readiness checks failed: {', '.join(failed)} (the log above says why).")
    return found


class Command(BaseCommand):
    help = "Check that production can start: PostgreSQL, Redis, broker, migrations, static files, keys."

    def handle(self, *args: Any, **options: Any) -> None:
        found = problems()
        if found:
            for problem in found:
                self.stderr.write(f"preflight: {problem}")
            raise CommandError(f"{len(found)} problem(s): not starting.")
        self.stdout.write("preflight: ready to serve.")
