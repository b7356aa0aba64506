"""Governance registers: the processors (UK GDPR Art. 28) and recipients we share personal data with, and
the data protection impact assessments (Art. 35) of the data map's processing activities.

The register's rows name the data map's activities and categories by their identifiers. ``clean`` checks
the categories; the services check the activities (and the screening criteria) against the data map in
force (``privacy.data_map`` reads every app's declarations, which models may not import), so a processor
cannot claim an activity the map does not have. Nothing here is personal data: a processor is an
organisation, and an assessment describes processing, not people (the forms say not to put personal
details in the text).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from fusion_site.models import TimeStampedModel
from fusion_site.personal_data import Category


class Processor(TimeStampedModel):
    """A processor (or a recipient that is a controller in its own right) and what it does with which of
    our data, under which contract, where, and how a transfer out of the UK is made lawful."""

    class Role(models.TextChoices):
        PROCESSOR = "processor", "Processor (Art. 28)"
        RECIPIENT = "recipient", "Recipient (controller in its own right)"

    class TransferMechanism(models.TextChoices):
        # UK GDPR Chapter V: Art. 45A (adequacy regulations), Art. 46 (appropriate safeguards: the ICO's
        # International Data Transfer Agreement, or its Addendum to the EU standard contractual clauses).
        NONE = "none", "None needed (processed in the UK)"
        ADEQUACY = "adequacy", "UK adequacy regulations (Art. 45A)"
        IDTA = "idta", "International Data Transfer Agreement (Art. 46)"
        ADDENDUM = "addendum", "UK Addendum to the EU standard contractual clauses (Art. 46)"

    key = models.SlugField(
        max_length=40,
        unique=True,
        help_text="The short name the data map's declarations use for this recipient (e.g. mail).",
    )
    name = models.CharField(max_length=200)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.PROCESSOR)
    service = models.TextField(help_text="What it does for us.")
    activities = models.JSONField(
        default=list, blank=True, help_text="The data map's processing activities it serves."
    )
    data_categories = models.JSONField(
        default=list, blank=True, help_text="The data map's categories it handles."
    )
    data_description = models.TextField(blank=True, help_text="The data it handles, in plain words.")
    contract_date = models.DateField(
        null=True, blank=True, help_text="Date of the Art. 28(3) contract (a processor needs one)."
    )
    review_date = models.DateField(null=True, blank=True, help_text="When the contract is next reviewed.")
    location = models.CharField(max_length=200, help_text="Where the data is processed.")
    transfer_mechanism = models.CharField(
        max_length=20, choices=TransferMechanism.choices, default=TransferMechanism.NONE
    )
    sub_processors = models.TextField(blank=True, help_text="Its sub-processors and where they are.")
    security_assurances = models.TextField(
        blank=True, help_text="Certifications, audits and contract terms that assure its security."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.CheckConstraint(
                name="processor_review_after_contract",
                condition=Q(contract_date__isnull=True)
                | Q(review_date__isnull=True)
                | Q(review_date__gt=models.F("contract_date")),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        activities = self.activities if isinstance(self.activities, list) else None
        if activities is None or not all(isinstance(name, str) for name in activities):
            errors["activities"] = "A list of the data map's processing activities."
        categories = self.data_categories if isinstance(self.data_categories, list) else None
        if categories is None or not all(isinstance(value, str) for value in categories):
            errors["data_categories"] = "A list of the data map's categories."
        elif unknown := sorted(set(categories) - set(Category.values)):
            errors["data_categories"] = f"Not a category of the data map: {', '.join(unknown)}."
        if self.role == self.Role.PROCESSOR and self.contract_date is None:
            errors["contract_date"] = "A processor acts under a written contract (Art. 28(3)): give its date."
        if self.contract_date and self.review_date and self.review_date <= self.contract_date:
            errors["review_date"] = "The review comes after the contract date."
        if errors:
            raise ValidationError(errors)

    @property
    def category_labels(self) -> list[str]:
        labels = dict(Category.choices)
        return [str(labels.get(value, value)) for value in self.data_categories]


class ImpactAssessment(TimeStampedModel):
    """The data protection impact assessment of one processing activity of the data map (by its name).

    Signing off stores the fingerprint of the activity's data map entry (``privacy.governance``); when the
    entry's fingerprint differs later, the assessment is flagged as changed since sign-off. Any edit after
    sign-off returns the assessment to draft: what was signed off is kept in the history."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SIGNED_OFF = "signed_off", "Signed off"

    activity = models.CharField(max_length=200, unique=True)
    screening = models.JSONField(
        default=list,
        blank=True,
        help_text="The ICO's high-risk criteria the processing meets (privacy.governance).",
    )
    screening_notes = models.TextField(blank=True)
    description = models.TextField(blank=True, help_text="Nature, scope, context and purposes.")
    necessity = models.TextField(blank=True, help_text="Necessity and proportionality.")
    dpo_advice = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    signed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    signed_off_at = models.DateTimeField(null=True, blank=True)
    review_on = models.DateField(null=True, blank=True, help_text="When the assessment is next reviewed.")
    fingerprint = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the activity's data map entry at sign-off."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["activity"]
        permissions = [("signoff_impactassessment", "Can sign off a data protection impact assessment")]
        constraints = [
            models.CheckConstraint(
                name="impactassessment_signed_off_complete",
                condition=Q(status="draft")
                | (
                    Q(signed_off_by__isnull=False)
                    & Q(signed_off_at__isnull=False)
                    & Q(review_on__isnull=False)
                    & ~Q(fingerprint="")
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"DPIA: {self.activity}"


class AssessmentRisk(TimeStampedModel):
    """One risk to individuals, scored on the ICO's scales (likelihood: remote, possible, probable;
    severity: minimal, significant, severe; 1-3 each) before and after the measures against it."""

    class Likelihood(models.IntegerChoices):
        REMOTE = 1, "Remote"
        POSSIBLE = 2, "Possible"
        PROBABLE = 3, "Probable"

    class Severity(models.IntegerChoices):
        MINIMAL = 1, "Minimal"
        SIGNIFICANT = 2, "Significant"
        SEVERE = 3, "Severe"

    assessment = models.ForeignKey(ImpactAssessment, on_delete=models.CASCADE, related_name="risks")
    description = models.TextField(help_text="The source of the risk and the harm it could do to people.")
    likelihood = models.PositiveSmallIntegerField(
        choices=Likelihood.choices, validators=[MinValueValidator(1), MaxValueValidator(3)]
    )
    severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, validators=[MinValueValidator(1), MaxValueValidator(3)]
    )
    measures = models.TextField(blank=True, help_text="What reduces or eliminates it.")
    residual_likelihood = models.PositiveSmallIntegerField(
        choices=Likelihood.choices, validators=[MinValueValidator(1), MaxValueValidator(3)]
    )
    residual_severity = models.PositiveSmallIntegerField(
        choices=Severity.choices, validators=[MinValueValidator(1), MaxValueValidator(3)]
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["assessment", "pk"]
        constraints = [
            models.CheckConstraint(
                name="assessmentrisk_scales",
                condition=Q(likelihood__range=(1, 3))
                & Q(severity__range=(1, 3))
                & Q(residual_likelihood__range=(1, 3))
                & Q(residual_severity__range=(1, 3)),
            ),
        ]

    def __str__(self) -> str:
        return f"Risk {self.pk} of {self.assessment_id}"

    def clean(self) -> None:
        errors = {}
        if self.residual_likelihood and self.likelihood and self.residual_likelihood > self.likelihood:
            errors["residual_likelihood"] = "Measures do not make a risk more likely: at most the likelihood."
        if self.residual_severity and self.severity and self.residual_severity > self.severity:
            errors["residual_severity"] = "Measures do not make harm more severe: at most the severity."
        if errors:
            raise ValidationError(errors)


class AssessmentReminder(models.Model):
    """A reminder mailed to the DPO about an assessment: one row per assessment, kind and occasion (the
    review date, or the fingerprint found changed), so each reminder is sent once."""

    class Kind(models.TextChoices):
        REVIEW_DUE = "review_due", "Review due"
        ACTIVITY_CHANGED = "activity_changed", "Activity changed since sign-off"

    assessment = models.ForeignKey(ImpactAssessment, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    occasion = models.CharField(max_length=64, help_text="The review date, or the changed fingerprint.")
    sent_at = models.DateTimeField()
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["assessment", "kind", "occasion"], name="assessmentreminder_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} reminder for {self.assessment_id} ({self.occasion})"
