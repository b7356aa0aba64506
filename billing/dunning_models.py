"""Dunning: the steps a partner takes with customers who do not pay, and what was done for each.

Imported at the end of ``billing.models`` (so these are billing's models), like the ledger's.

- A ``DunningStep`` is one of a partner's steps: so many days after the due date of the customer's oldest
  unpaid invoice, send a reminder, send a final notice, or suspend outgoing calls. Steps are switched off,
  never deleted (the actions taken name them); a step applies only from its ``effective_from`` date, so a
  step added today does not reach back over debts that were already past its day.
- A ``DunningAction`` records one step for one customer in one overdue episode: the episode is named by
  the due date of the oldest unpaid invoice (``due_on``), so each step happens once per episode (a unique
  constraint; the daily job inserts under the customer's lock and a second run finds the row). What was
  done is its ``outcome``; a notice records the lawful basis it was sent (or held) under.
- A step held by a restriction of processing is taken once the restriction is lifted, if the episode is
  still owed, or set aside once it is paid: ``released_at`` and ``released_outcome`` record which, once (the
  held ``outcome`` stays as it was recorded).
"""

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from accounts.models import Customer, Partner
from billing.models import Invoice, _money
from fusion_site.models import TimeStampedModel


class DunningStepKind(models.TextChoices):
    REMINDER_EMAIL = "reminder_email", "Reminder email"
    FINAL_NOTICE_EMAIL = "final_notice_email", "Final notice email"
    SUSPEND_OUTGOING_CALLS = "suspend_outgoing_calls", "Suspend outgoing calls"


# The steps every partner starts with (days overdue, kind); the partner's finance manager changes them.
DEFAULT_DUNNING_STEPS: tuple[tuple[int, str], ...] = (
    (7, DunningStepKind.REMINDER_EMAIL),
    (14, DunningStepKind.FINAL_NOTICE_EMAIL),
    (28, DunningStepKind.SUSPEND_OUTGOING_CALLS),
)
# The date the seeded defaults apply from: every debt, past and future.
DEFAULT_EFFECTIVE_FROM = datetime.date(2000, 1, 1)


class DunningStep(TimeStampedModel):
    """One of a partner's dunning steps, taken ``days_overdue`` days after the oldest unpaid invoice's due
    date. Steps run in order of their days (then id)."""

    Kind = DunningStepKind

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="dunning_steps")
    days_overdue = models.PositiveSmallIntegerField(
        help_text="Days after the due date of the oldest unpaid invoice."
    )
    kind = models.CharField(max_length=30, choices=DunningStepKind.choices)
    active = models.BooleanField(default=True)
    effective_from = models.DateField(
        help_text="The step is taken only on or after this date (it never reaches back over older debts)."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["partner_id", "days_overdue", "id"]
        constraints = [
            models.CheckConstraint(name="dunningstep_days_positive", condition=Q(days_overdue__gte=1)),
            models.UniqueConstraint(
                fields=["partner", "days_overdue", "kind"], name="dunningstep_unique_per_partner"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.days_overdue} days"


class DunningAction(models.Model):
    """What one step did for one customer in one overdue episode. Written once by the dunning job."""

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        SKIPPED_PAID = "skipped_paid", "Skipped: paid"
        HELD_RESTRICTED = "held_restricted", "Held: processing restricted"
        SUSPENDED = "suspended", "Suspension ordered"
        NO_ADDRESS = "no_address", "Not sent: no email address"
        NO_LINES = "no_lines", "Nothing to suspend: no live lines"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="dunning_actions")
    step = models.ForeignKey(DunningStep, on_delete=models.PROTECT, related_name="actions")
    # The step as it was when taken (a step's days may be changed later).
    kind = models.CharField(max_length=30, choices=DunningStepKind.choices)
    days_overdue = models.PositiveSmallIntegerField()
    # The episode: the due date of the oldest unpaid invoice, and that invoice.
    due_on = models.DateField()
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="dunning_actions")
    overdue_amount = _money(help_text="What was overdue when the step was taken.")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    lawful_basis = models.TextField(blank=True, help_text="Why a notice may be sent (or why it was held).")
    note = models.TextField(blank=True)
    provisioning_order_ids = models.JSONField(default=list, blank=True)
    taken_at = models.DateTimeField()
    # A held step's end: taken after the restriction was lifted, or set aside because the episode was paid.
    released_at = models.DateTimeField(null=True, blank=True)
    released_outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-taken_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "step", "due_on"], name="dunningaction_once_per_episode"
            ),
        ]
        indexes = [
            # The account page's history, and the job's look-up of an episode's actions.
            models.Index(fields=["customer", "due_on"], name="dunningaction_customer_due"),
            # The job's look-up of the held steps still to release (few rows, any age).
            models.Index(
                fields=["customer"],
                condition=Q(outcome="held_restricted", released_at__isnull=True),
                name="dunningaction_held",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.get_outcome_display()}"
