"""The daily email to the DPO group of the requests overdue or due soon."""

import datetime

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import transaction

from privacy import selectors
from privacy.models import (
    PrivacyRequest,
    ReminderRun,
)

# Reminders ---------------------------------------------------------------------------------------


@transaction.atomic
def privacy_deadline_reminders_send(*, today: datetime.date, within_days: int) -> ReminderRun | None:
    """Email the DPO group the requests overdue or due within ``within_days`` days, once a day: a second
    run on the same day finds its ReminderRun row and sends nothing (returns None)."""
    run, created = ReminderRun.objects.get_or_create(run_on=today)
    if not created:
        return None
    due = list(selectors.requests_needing_reminder(today=today, within_days=within_days))
    overdue = [item for item in due if item.due_on is not None and item.due_on < today]
    soon = [item for item in due if item not in overdue]
    recipients = selectors.dpo_email_addresses() if due else []
    run.overdue, run.due_soon, run.recipients = len(overdue), len(soon), len(recipients)
    run.save(update_fields=["overdue", "due_soon", "recipients"])
    if not recipients:
        return run

    def lines(items: list[PrivacyRequest]) -> str:
        return (
            "\n".join(
                f"  {item.reference}  {item.get_kind_display():<26} {item.get_state_display():<20} "
                f"due {item.due_on:%a %d %b %Y}"
                for item in items
            )
            or "  none"
        )

    body = (
        f"Privacy requests needing attention on {today:%d %B %Y}.\n\n"
        f"Overdue ({len(overdue)}):\n{lines(overdue)}\n\n"
        f"Due within {within_days} days ({len(soon)}):\n{lines(soon)}\n"
    )
    subject = f"Privacy requests: {len(overdue)} overdue, {len(soon)} due within {within_days} days"
    messages = tuple((subject, body, settings.DEFAULT_FROM_EMAIL, [address]) for address in recipients)
    transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=False))
    return run
