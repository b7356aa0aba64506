"""Run the retention job now (the nightly beat task calls the same service), or show what it would do."""

import datetime
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from privacy.retention import Finding, RetentionObserver
from privacy.services.retention import retention_run


class CommandObserver(RetentionObserver):
    """A progress bar per policy on stderr; findings on stdout (all of them on a dry run, else the kept
    customers and errors, since the run record counts the deletions)."""

    def __init__(self, command: BaseCommand, *, verbose: bool) -> None:
        self.command = command
        self.verbose = verbose
        self.bar: tqdm[Any] | None = None

    def begin(self, policy: str, total: int) -> None:
        self.bar = tqdm(total=total, desc=policy, unit="row", file=cast(TextIO, self.command.stderr._out))

    def advance(self, done: int) -> None:
        if self.bar is not None:
            self.bar.update(done)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def finding(self, finding: Finding) -> None:
        if self.verbose or finding.action in {"keep", "error", "note"}:
            self.command.stdout.write(str(finding))


class Command(BaseCommand):
    help = "Delete or anonymise everything past its retention period, unless a legal hold keeps it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Print what would be deleted, anonymised and kept, and why; change nothing.",
        )
        parser.add_argument("--today", type=datetime.date.fromisoformat, help=argparse_today_help())

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        if options["today"] and not dry_run:
            # A real run as of a later day would delete early; only a preview may look ahead.
            raise CommandError("--today is only allowed with --dry-run.")
        observer = CommandObserver(self, verbose=dry_run or options["verbosity"] > 1)
        run = retention_run(dry_run=dry_run, today=options["today"], observer=observer)
        if run is None:
            raise CommandError("Another retention run is in progress (it holds the lock); nothing was done.")
        kind = "Dry run" if dry_run else "Run"
        per_policy = ", ".join(f"{key} {sum(tables.values())}" for key, tables in run.counts.items())
        self.stdout.write(
            f"{kind} #{run.pk} {run.get_status_display().lower()}: {per_policy or 'nothing deleted'}; "
            f"{len(run.held)} customer(s) held, {len(run.kept)} kept for another reason, "
            f"{len(run.errors)} error(s)."
        )
        if run.errors:
            raise CommandError(f"{len(run.errors)} chunk(s) failed; run again to finish them.")


def argparse_today_help() -> str:
    return "Act as of this date (YYYY-MM-DD) instead of today in UK time, to preview a coming night."
