"""Check the audit trail's chain (HMACs, links, head, checkpoints); on a break, mails the DPO and
administrators, exits non-zero and names each edited, deleted or rewritten event."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts import alerts
from accounts.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Verify the audit trail's HMAC chain against its head and the signed checkpoints; report any "
        "edited, deleted or rewritten event by id and mail the DPO and administrators."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        checked, problems = verify_chain()
        if problems:
            for problem in problems:
                self.stderr.write(f"  {problem}")
            recipients = alerts.report_broken_audit_chain(problems)
            self.stderr.write(f"Mailed to {len(recipients)} DPO and administrator address(es).")
            raise CommandError(f"Audit chain broken: {len(problems)} problem(s) in {checked} events.")
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} events verified."))
