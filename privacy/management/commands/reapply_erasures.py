"""After restoring a backup: carry out again every erasure completed since the backup was taken, from the
erasure journal kept outside the database (privacy.erasure_journal), so no erased customer comes back."""

import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import system_user
from privacy.erasure_journal import JournalDirectoryError, JournalInvalidError, journal_directory
from privacy.services.erasure_journal import Outcome, Planned, erasures_reapply

JOB = "erasure-reapply"


def backup_time(value: str) -> datetime.datetime:
    """An ISO 8601 instant with its offset: a time without one could be read an hour out either way."""
    try:
        instant = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(
            f"--since {value!r} is not an ISO 8601 time (e.g. 2026-12-01T01:30:00+00:00)."
        ) from exc
    if instant.tzinfo is None:
        raise CommandError(
            f"--since {value!r} has no UTC offset: give one (e.g. {value}+00:00 or {value}Z) so the time "
            "is not read an hour out."
        )
    return instant.astimezone(datetime.UTC)


class Command(BaseCommand):
    help = (
        "After a restore: re-apply every erasure the erasure journal records at or after --since (when the "
        "backup was taken) to this database, through the same erasure as a request or retention."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            required=True,
            help=(
                "When the restored backup was taken (when pg_dump started), as ISO 8601 with its offset, "
                "e.g. 2026-12-01T01:30:00Z. Erasures journaled at or after it are re-applied; an earlier "
                "time only re-checks more customers."
            ),
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List each customer and what would be done; change nothing.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        since = backup_time(options["since"])
        dry_run: bool = options["dry_run"]
        directory = journal_directory()
        self.stdout.write(
            f"{'Dry run: ' if dry_run else ''}erasures journaled in {directory} at or after "
            f"{since:%Y-%m-%d %H:%M:%S} UTC"
        )

        def progress(planned: Planned) -> None:
            self.stdout.write(f"{'would ' if dry_run and planned.outcome == Outcome.ERASE else ''}{planned}")

        try:
            result = erasures_reapply(
                since=since, actor=system_user(job=JOB), dry_run=dry_run, progress=progress
            )
        except JournalDirectoryError as exc:
            raise CommandError(f"{exc}; nothing was changed.") from exc
        except JournalInvalidError as exc:
            raise CommandError(
                "The erasure journal does not verify, so nothing was changed: " + "; ".join(exc.problems)
            ) from exc
        counts = {outcome: len(result.of(outcome)) for outcome in Outcome}
        summary = (
            f"{len(result.plan)} customer(s) journaled since then: "
            f"{counts[Outcome.ERASE]} {'to erase' if dry_run else 'erased'}, "
            f"{counts[Outcome.ALREADY]} already erased, {counts[Outcome.ABSENT]} not in this database, "
            f"{counts[Outcome.BLOCKED]} blocked."
        )
        if not dry_run:
            summary += f" Journal entries written: {result.journal_written}."
        self.stdout.write(summary)
        if counts[Outcome.BLOCKED]:
            raise CommandError(
                f"{counts[Outcome.BLOCKED]} customer(s) could not be erased (see above): finalise or cancel "
                "what blocks them, then run this again."
            )
