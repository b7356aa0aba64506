"""The register of personal data breaches (UK GDPR Art. 33(5)): every incident, whether or not it is
reported, with its facts, its effects and what was done, the decision to notify the ICO (Art. 33, within
72 hours of becoming aware) and to tell the data subjects (Art. 34, when the risk to them is high).

A breach of personal data processed in connection with our public electronic communications service
falls under PECR reg. 5A instead (the ICO's guide to PECR, "Security breaches": this "takes the place of
UK GDPR breach reporting obligations"). Since 20 August 2025 its time limits are UK GDPR's: the Data (Use
and Access) Act 2025 s.111 ("duty to notify the Commissioner of personal data breach: time periods"),
commenced by SI 2025/904 reg. 2(p), amended reg. 5A so that the ICO is told "without undue delay and,
where feasible, not later than 72 hours after having become aware of it", with reasons when later, and
information that cannot all be given at once may follow in phases without undue further delay (as UK
GDPR Art. 33(4)); the former 24 hours and the second notification within 3 days (Regulation 611/2013
Art. 2(2)-(3)) no longer apply. What still differs: the subscriber or user is told when the breach is
likely to adversely affect their personal data or privacy (reg. 5A(3)), and every such breach is kept in a
log of its facts, effects and remedial action (reg. 5A(8)): the register filtered to PECR incidents is that
log.

The register is append-only in spirit: an incident is corrected with a reason kept in its history, and
nobody may delete one (the model has no delete permission at all, and the admin is read-only). The
texts are written to describe the incident, not the people in it: the affected customers are found from
the access log and the audit trail when needed (``privacy.breaches.affected_subjects``), never copied
here.
"""

import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from fusion_site.models import TimeStampedModel
from fusion_site.personal_data import Category

# Art. 33(1): "without undue delay and, where feasible, not later than 72 hours after having become aware".
NOTIFICATION_WINDOW = datetime.timedelta(hours=72)
# PECR reg. 5A(2) as amended by the Data (Use and Access) Act 2025 s.111, in force 20 August 2025 (SI
# 2025/904 reg. 2(p)): the same words and the same 72 hours as Art. 33(1), so PECR incidents share this
# window, its clock, its reminders and its late-notification reasons (the ICO's "Personal data breaches:
# a guide", note of 20 August 2025: PECR reports move "from 24 hours to 72 hours after becoming aware").


PECR_SUBJECTS_LABELS = [
    ("tell", "Tell the subscribers or users (likely to adversely affect them, PECR reg. 5A(3))"),
    ("do_not_tell", "Do not tell them (not likely to adversely affect them, or unintelligible, reg. 5A(4))"),
]


class BreachIncident(TimeStampedModel):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class SubjectCategory(models.TextChoices):
        CUSTOMERS = "customers", "End customers (account holders)"
        CONTACTS = "contacts", "Customers' contacts"
        STAFF = "staff", "Staff and partner staff"
        PUBLIC = "public", "Members of the public (website, mailing list)"
        APPLICANTS = "applicants", "Job applicants"

    class IcoDecision(models.TextChoices):
        UNDECIDED = "", "Not decided yet"
        NOTIFY = "notify", "Notify the ICO"
        DO_NOT_NOTIFY = "do_not_notify", "Do not notify (unlikely to result in a risk)"

    class SubjectsDecision(models.TextChoices):
        UNDECIDED = "", "Not decided yet"
        TELL = "tell", "Tell the data subjects (high risk, Art. 34)"
        DO_NOT_TELL = "do_not_tell", "Do not tell them"

    title = models.CharField(max_length=200, help_text="A short name for the incident; no personal details.")
    # No default: whoever records the incident says which regime applies (the form asks it as a required
    # choice); rows recorded before the question existed were all handled as UK GDPR (the migration).
    pecr = models.BooleanField(
        "In connection with our public electronic communications service (PECR reg. 5A)?",
        help_text="Yes: PECR reg. 5A applies instead of UK GDPR Art. 33 and 34 (the ICO within 72 hours all "
        "the same, the subscribers or users told when likely to be adversely affected, the PECR breach log).",
    )
    occurred_at = models.DateTimeField(help_text="When the breach happened (or began).")
    became_aware_at = models.DateTimeField(
        help_text="When we became aware of it: the 72 hours to notify the ICO run from here (UK GDPR Art. "
        "33(1), PECR reg. 5A as amended)."
    )
    description = models.TextField(help_text="What happened, how it was found; no personal details.")
    data_categories = models.JSONField(default=list, help_text="Categories of the data map concerned.")
    subject_categories = models.JSONField(default=list)
    approximate_records = models.PositiveIntegerField(help_text="Approximate number of records concerned.")
    approximate_subjects = models.PositiveIntegerField(help_text="Approximate number of people concerned.")
    likely_consequences = models.TextField()
    measures_taken = models.TextField(help_text="What has been done to address it and limit its effects.")
    measures_proposed = models.TextField(blank=True)
    handler = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # Where the evidence is: whose access, in which window (prefilled from an alert).
    suspect = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The staff user whose access is in question, if any.",
    )
    evidence_from = models.DateTimeField(null=True, blank=True)
    evidence_until = models.DateTimeField(null=True, blank=True)
    # The ``alert.sent`` audit event the incident was opened from (an id of the trail, not a key).
    source_alert_event = models.BigIntegerField(null=True, blank=True)

    ico_decision = models.CharField(max_length=20, choices=IcoDecision.choices, blank=True, default="")
    ico_decision_reason = models.TextField(blank=True)
    ico_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    ico_decided_at = models.DateTimeField(null=True, blank=True)
    ico_notified_at = models.DateTimeField(null=True, blank=True)
    ico_reference = models.CharField(max_length=60, blank=True)
    delay_reasons = models.TextField(
        blank=True,
        help_text="Why the ICO was told more than 72 hours after we became aware (UK GDPR Art. 33(1), PECR "
        "reg. 5A(2) as amended).",
    )

    subjects_decision = models.CharField(
        max_length=20, choices=SubjectsDecision.choices, blank=True, default=""
    )
    subjects_decision_reason = models.TextField(blank=True)
    subjects_decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    subjects_decided_at = models.DateTimeField(null=True, blank=True)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closure_note = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-became_aware_at", "-id"]
        # No delete permission: the register keeps every incident (Art. 33(5)).
        default_permissions = ("add", "change", "view")
        constraints = [
            models.CheckConstraint(
                name="breach_aware_after_occurred", condition=Q(became_aware_at__gte=F("occurred_at"))
            ),
            models.CheckConstraint(
                name="breach_ico_decision_recorded",
                condition=Q(ico_decision="")
                | (
                    ~Q(ico_decision_reason="")
                    & Q(ico_decided_by__isnull=False)
                    & Q(ico_decided_at__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="breach_subjects_decision_recorded",
                condition=Q(subjects_decision="")
                | (
                    ~Q(subjects_decision_reason="")
                    & Q(subjects_decided_by__isnull=False)
                    & Q(subjects_decided_at__isnull=False)
                ),
            ),
            models.CheckConstraint(
                name="breach_closed_has_note",
                condition=Q(status="open")
                | (Q(closed_at__isnull=False) & Q(closed_by__isnull=False) & ~Q(closure_note="")),
            ),
        ]
        indexes = [models.Index(fields=["status", "became_aware_at"], name="breach_status_aware")]

    def __str__(self) -> str:
        return f"{self.reference}: {self.title}"

    @property
    def reference(self) -> str:
        return f"BR-{self.pk:05d}" if self.pk else "BR-new"

    @property
    def regime(self) -> str:
        if self.pecr:
            return "PECR reg. 5A (public electronic communications service): the ICO within 72 hours"
        return "UK GDPR Art. 33 and 34: the ICO within 72 hours"

    @property
    def notification_deadline(self) -> datetime.datetime:
        """72 real hours after awareness, under either regime: added in UTC, never to a local wall clock."""
        return self.became_aware_at.astimezone(datetime.UTC) + NOTIFICATION_WINDOW

    def notified_late(self) -> bool:
        return self.ico_notified_at is not None and self.ico_notified_at > self.notification_deadline

    def subjects_decision_label(self) -> str:
        """The decision in the words of the incident's regime: PECR reg. 5A(3) tells the subscriber or user
        when the breach is "likely to adversely affect" their personal data or privacy, a lower bar than
        Art. 34's high risk (reg. 5A(4): not needed when the data were made unintelligible)."""
        if self.pecr and self.subjects_decision:
            return dict(PECR_SUBJECTS_LABELS)[self.subjects_decision]
        return str(self.get_subjects_decision_display())

    def data_category_labels(self) -> list[str]:
        return [Category(value).label for value in self.data_categories if value in Category.values]

    def subject_category_labels(self) -> list[str]:
        labels = dict(self.SubjectCategory.choices)
        return [str(labels[value]) for value in self.subject_categories if value in labels]

    def clean(self) -> None:
        errors: dict[str, str] = {}
        unknown = set(self.data_categories) - set(Category.values)
        if unknown:
            errors["data_categories"] = f"Not a category of the data map: {', '.join(sorted(unknown))}."
        if set(self.subject_categories) - set(self.SubjectCategory.values):
            errors["subject_categories"] = "Choose the categories of people from the list."
        if self.occurred_at and self.became_aware_at and self.became_aware_at < self.occurred_at:
            errors["became_aware_at"] = "We cannot have become aware before it happened."
        if self.evidence_from and self.evidence_until and self.evidence_until <= self.evidence_from:
            errors["evidence_until"] = "The end of the window must be after its start."
        if self.ico_notified_at is not None:
            if self.ico_decision != self.IcoDecision.NOTIFY:
                errors["ico_notified_at"] = "Record the decision to notify the ICO first."
            elif self.became_aware_at and self.notified_late() and not self.delay_reasons.strip():
                rule = "PECR reg. 5A(2) as amended" if self.pecr else "UK GDPR Art. 33(1)"
                errors["delay_reasons"] = (
                    "The ICO was told more than 72 hours after we became aware: give the reasons for the "
                    f"delay ({rule})."
                )
        if errors:
            raise ValidationError(errors)


class BreachReminder(models.Model):
    """One reminder to the DPO about an incident's clock, sent once: the unique pair of incident and kind
    is what makes a second run of the task send nothing: at 24 h, 48 h and 72 h after awareness, under UK
    GDPR and PECR alike (``privacy.breaches.REMINDER_AFTER``)."""

    class Kind(models.TextChoices):
        AFTER_24H = "24h", "24 hours after awareness"
        AFTER_48H = "48h", "48 hours after awareness"
        OVERDUE = "overdue", "72 hours passed: notification overdue"

    incident = models.ForeignKey(BreachIncident, on_delete=models.PROTECT, related_name="reminders")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    sent_at = models.DateTimeField()
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["incident", "sent_at"]
        default_permissions = ("view",)
        constraints = [
            models.UniqueConstraint(fields=["incident", "kind"], name="breach_reminder_once_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for incident {self.incident_id}"
