"""Check the audit trail's hash chain; exits non-zero and names each edited or deleted event."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import verify_chain


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and report any edited or deleted event by id."

    def handle(self, *args: Any, **options: Any) -> None:
        checked, problems = verify_chain()
        if problems:
            for problem in problems:
                self.stderr.write(f"  {problem}")
            raise CommandError(f"Audit chain broken: {len(problems)} problem(s) in {checked} events.")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} events verified."))
