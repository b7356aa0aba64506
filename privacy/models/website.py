"""The public website: versioned privacy notices, consented form submissions and cookie choices.

Personal fields are encrypted at rest; an email is searched through its blind index (lower-cased),
never through its ciphertext.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from fusion_site.crypto import blind_index
from fusion_site.fields import EncryptedTextField
from fusion_site.models import TimeStampedModel

EMAIL_INDEX_PURPOSE = "website-email"


def website_email_index(email: str) -> str:
    return blind_index(EMAIL_INDEX_PURPOSE, email.strip().lower())


class PrivacyNotice(TimeStampedModel):
    """One version of the public privacy notice. A published version is never edited: a change is a
    new version, so every consent keeps pointing at the words the visitor actually saw."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    version = models.PositiveIntegerField(unique=True, editable=False)
    title = models.CharField(max_length=200)
    summary = models.TextField(
        help_text="The short notice shown beside each form: what the data is used for and for how long."
    )
    body = models.TextField(help_text="The full notice; blank lines separate paragraphs.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-version"]
        permissions = [("publish_privacynotice", "Can publish a privacy notice version")]
        constraints = [
            models.CheckConstraint(
                name="privacy_notice_published_has_date",
                condition=models.Q(status="draft") | models.Q(published_at__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"Privacy notice v{self.version} ({self.get_status_display().lower()})"

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    def save(self, *args: object, **kwargs: object) -> None:
        # Last line of defence behind the services and the admin: whatever path tries it, the stored
        # words of a published version cannot change.
        if self.pk is not None:
            stored = PrivacyNotice.objects.filter(pk=self.pk).values("status").first()
            if stored and stored["status"] == self.Status.PUBLISHED:
                raise ValidationError("A published privacy notice cannot be changed; publish a new version.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class WebsiteSubmission(TimeStampedModel):
    """Something a member of the public sent through the website, with the consent it was given under."""

    class Kind(models.TextChoices):
        CONTACT = "contact", "Contact enquiry"
        MAILING_LIST = "mailing_list", "Mailing list"
        JOB_APPLICATION = "job_application", "Job application"
        PRIVACY_REQUEST = "privacy_request", "Privacy request"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PENDING_CONFIRMATION = "pending_confirmation", "Waiting for email confirmation"
        CONFIRMED = "confirmed", "Confirmed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        PENDING_VERIFICATION = "pending_verification", "Waiting for email verification"
        VERIFIED = "verified", "Email verified"

    class Decision(models.TextChoices):
        NONE = "", "Not decided"
        OFFERED = "offered", "Offered the job"
        DECLINED = "declined", "Not taken forward"
        WITHDRAWN = "withdrawn", "Withdrawn by the applicant"

    class RequestKind(models.TextChoices):
        ACCESS = "access", "A copy of my data (access)"
        RECTIFICATION = "rectification", "Correct my data (rectification)"
        ERASURE = "erasure", "Delete my data (erasure)"
        RESTRICTION = "restriction", "Restrict processing of my data"
        OBJECTION = "objection", "Object to processing of my data"
        PORTABILITY = "portability", "My data in a portable format"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.RECEIVED)
    name = EncryptedTextField(blank=True)
    email = EncryptedTextField()
    email_index = models.CharField(max_length=64, db_index=True, editable=False)
    message = EncryptedTextField(blank=True, help_text="Enquiry, covering note or request details.")
    request_kind = models.CharField(max_length=20, choices=RequestKind.choices, blank=True)
    position = models.CharField(max_length=200, blank=True)
    cv = models.FileField(upload_to="applications/", blank=True, max_length=255)
    notice = models.ForeignKey(
        PrivacyNotice, null=True, blank=True, on_delete=models.PROTECT, related_name="submissions"
    )
    consented_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # A job application's outcome: retention counts its 6 months from the decision.
    decision = models.CharField(max_length=20, choices=Decision.choices, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("view_recruitment", "Can view job applications"),
            ("export_mailing_list", "Can export the mailing list"),
        ]
        indexes = [models.Index(fields=["kind", "status", "created_at"], name="website_sub_kind_status")]
        constraints = [
            # A privacy request rests on legal obligation, not consent; every other form needs both the
            # notice version and the moment the box was ticked.
            models.CheckConstraint(
                name="website_submission_consent_recorded",
                condition=models.Q(kind="privacy_request")
                | models.Q(notice__isnull=False, consented_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    def refresh_email_index(self) -> None:
        self.email_index = website_email_index(self.email)

    def save(self, *args: object, **kwargs: object) -> None:
        self.refresh_email_index()
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class CookieConsentRecord(models.Model):
    """A visitor's cookie choice, kept as proof that consent was asked for properly. Deliberately
    anonymous: no IP address, user agent or cookie id, and the time only to the hour."""

    class Choice(models.TextChoices):
        ACCEPTED = "accepted", "Accepted analytics"
        REFUSED = "refused", "Refused analytics"

    choice = models.CharField(max_length=10, choices=Choice.choices)
    notice = models.ForeignKey(
        PrivacyNotice, null=True, blank=True, on_delete=models.PROTECT, related_name="cookie_choices"
    )
    recorded_hour = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-recorded_hour"]

    def __str__(self) -> str:
        return f"{self.get_choice_display()} at {self.recorded_hour:%Y-%m-%d %H:00}"
