"""Write the erasure journal's missing entries from the database's erasure records, and name every file in
the journal that does not verify (the hourly task runs the same service)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from privacy.erasure_journal import JournalDirectoryError, journal_directory
from privacy.services.erasure_journal import erasure_journal_reconcile


class Command(BaseCommand):
    help = "Journal every erasure record the erasure journal lacks; report journal files that do not verify."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            reconciled = erasure_journal_reconcile()
        except (JournalDirectoryError, OSError) as exc:
            raise CommandError(
                f"The erasure journal in {journal_directory()} cannot be written: {exc}"
            ) from exc
        self.stdout.write(f"{reconciled.written} missing entr(y/ies) written to {journal_directory()}.")
        if reconciled.problems:
            raise CommandError(
                "Files in the erasure journal do not verify: " + "; ".join(reconciled.problems)
            )
