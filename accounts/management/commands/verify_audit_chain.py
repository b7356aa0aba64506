"""Check the audit trail's chain (HMACs, links, head, checkpoints); on a break, mails the DPO and
administrators, exits non-zero and names each edited, deleted or rewritten event."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from accounts import alerts
from accounts.audit import audit_events_per_key_id, verify_chain
from accounts.audit_keys import keyring


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
        # What a rotation needs to know: an old key stays configured while events it signed exist.
        signing_id = keyring().signing_id
        self.stdout.write("Events per key id:")
        for kid, number in audit_events_per_key_id().items():
            self.stdout.write(f"  {kid}{' (newest)' if kid == signing_id else ''}: {number}")
