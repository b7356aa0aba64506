"""Retention: the policies (how long each category of data is kept), legal holds that stop a customer's
deletion, the record of each nightly run, and the lock that lets one run work at a time.

A hold's reason and a policy's note are plain text, not encrypted: they are written to say *why* data is
kept (a case number, "disputed invoice INV-42"), and the forms say not to put personal details in them.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from accounts.models import Customer
from fusion_site.models import TimeStampedModel
from fusion_site.personal_data import Anchor

# The data map's anchors (privacy.data_map.RETENTION_POLICIES gives each policy's).
ANCHOR_CHOICES = Anchor.choices


class RetentionPolicy(TimeStampedModel):
    """How long one category of data is kept, counted from its anchor. One row per handler key; the DPO
    may change the period (history keeps every change with who and why), never the key or the anchor."""

    key = models.SlugField(max_length=40, unique=True, editable=False)
    title = models.CharField(max_length=100)
    anchor = models.CharField(max_length=30, choices=ANCHOR_CHOICES, editable=False)
    # Sixty years is far past any period the law asks for; a larger number is a typing mistake.
    months = models.PositiveIntegerField(validators=[MaxValueValidator(720)])
    basis = models.TextField(help_text="Why this period: the law, contract or purpose that sets it.")
    enabled = models.BooleanField(
        default=True, help_text="A disabled policy is reported by each run and deletes nothing."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["key"]
        verbose_name_plural = "retention policies"
        permissions = [("run_retention", "Can run the retention job and see its runs")]

    def __str__(self) -> str:
        return f"{self.title}: {self.months} months from the {self.get_anchor_display()}"


class LegalHold(TimeStampedModel):
    """A lawful or contractual reason to keep a customer's data: while a hold is active (not lifted) the
    customer is neither deleted by retention nor erased."""

    class Kind(models.TextChoices):
        UNPAID_DEBT = "unpaid_debt", "Unpaid debt"
        DISPUTE = "dispute", "Billing dispute"
        LITIGATION = "litigation", "Litigation"
        OTHER = "other", "Other"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="legal_holds")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    reason = models.TextField(
        help_text="Why the data is kept: a case or invoice number, no personal details."
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    review_on = models.DateField(help_text="When the DPO next decides whether the hold is still needed.")
    set_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lift_reason = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["review_on", "id"]
        permissions = [("manage_legalhold", "Can set and lift legal holds")]
        constraints = [
            models.CheckConstraint(name="legalhold_has_reason", condition=~Q(reason="")),
            models.CheckConstraint(
                name="legalhold_lift_has_reason",
                condition=Q(lifted_at__isnull=True) | (~Q(lift_reason="") & Q(lifted_by__isnull=False)),
            ),
        ]
        indexes = [models.Index(fields=["customer", "lifted_at"], name="legalhold_customer_active")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} hold on customer {self.customer_id}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None


class RetentionRun(models.Model):
    """One run of the retention job: what it did per policy, whom it kept and why, and what failed.

    A run is alive while its worker keeps renewing ``lease_expires_at`` (after every batch, dry runs
    too). A run still ``running`` past it has no worker: the sweep, or the next run, marks it
    ``abandoned``, so the page never shows a dead run as running. The next real run carries an abandoned
    real run on (the same record, one more attempt); an abandoned dry run stays as it is."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors (rerun finishes the rest)"
        INTERRUPTED = "interrupted", "Interrupted"
        ABANDONED = "abandoned", "Abandoned (its worker stopped before the end)"

    # A delivery of the task whose run is in one of these states has nothing left to do.
    FINISHED = (Status.COMPLETED, Status.COMPLETED_WITH_ERRORS, Status.INTERRUPTED)

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # Beat sends no date: "today" is fixed when the run starts, so a run across midnight is consistent.
    run_on = models.DateField()
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.RUNNING)
    dry_run = models.BooleanField(default=False)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The Celery task (its last delivery) that works on the run; empty when started from the command.
    task_id = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Renewed by the run's worker; a running run past it has none."
    )
    attempts = models.PositiveSmallIntegerField(default=1)
    counts = models.JSONField(default=dict, help_text="Rows deleted or customers erased, per policy key.")
    held = models.JSONField(default=list, help_text="Customers due but held: reference and hold kinds.")
    kept = models.JSONField(default=list, help_text="Customers due but kept for another reason, and why.")
    errors = models.JSONField(default=list, help_text="Chunks that failed: policy, first id, error.")
    notes = models.JSONField(default=list, help_text="Policies without a handler, disabled policies.")
    chunks_done = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["status", "started_at"], name="retentionrun_status_started"),
            # Each delivery of the task looks for a run it already finished.
            models.Index(fields=["task_id"], condition=~Q(task_id=""), name="retentionrun_task_id"),
        ]

    def __str__(self) -> str:
        kind = "Dry run" if self.dry_run else "Run"
        return f"{kind} of {self.run_on:%Y-%m-%d} ({self.get_status_display().lower()})"

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class RetentionLock(models.Model):
    """The singleton row (pk 1) that says which run works now. A lease, not a held row lock: each chunk
    commits on its own, so no transaction spans the run; the holder renews ``expires_at`` after every
    chunk, and a holder killed without releasing it loses the lease when it expires."""

    SINGLETON = 1

    lease_token = models.CharField(max_length=64, blank=True)
    run = models.ForeignKey(RetentionRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Retention lock held by {self.lease_token or 'nobody'}"
