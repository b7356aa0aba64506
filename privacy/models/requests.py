"""Data subject requests: the request, its events, identity codes, reminder runs and the suppression list.

The subject's email and what they asked are personal data, so they are EncryptedTextFields; the email
also has a blind index so duplicates can be found without decrypting every request. The transition
table (``TRANSITIONS``) is the one place that says which step may follow which.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from accounts.models import Contact, Customer
from fusion_site.fields import EncryptedTextField
from fusion_site.models import TimeStampedModel


class State(models.TextChoices):
    RECEIVED = "received", "Received"
    AWAITING_IDENTITY = "awaiting_identity", "Awaiting identity"
    IN_PROGRESS = "in_progress", "In progress"
    ON_HOLD = "on_hold", "On hold (clarification)"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    WITHDRAWN = "withdrawn", "Withdrawn"


OPEN_STATES = frozenset(
    {State.RECEIVED, State.AWAITING_IDENTITY, State.IN_PROGRESS, State.ON_HOLD, State.AWAITING_APPROVAL}
)


@dataclass(frozen=True)
class Transition:
    sources: frozenset[State]
    target: State
    label: str


TRANSITIONS: dict[str, Transition] = {
    "request_identity": Transition(
        frozenset({State.RECEIVED}), State.AWAITING_IDENTITY, "Ask for proof of identity"
    ),
    "verify_identity": Transition(
        frozenset({State.AWAITING_IDENTITY}), State.IN_PROGRESS, "Identity verified"
    ),
    "start": Transition(
        frozenset({State.RECEIVED, State.AWAITING_APPROVAL}), State.IN_PROGRESS, "Start work"
    ),
    "hold": Transition(frozenset({State.IN_PROGRESS}), State.ON_HOLD, "Hold for clarification"),
    "resume": Transition(frozenset({State.ON_HOLD}), State.IN_PROGRESS, "Resume"),
    "submit_for_approval": Transition(
        frozenset({State.IN_PROGRESS}), State.AWAITING_APPROVAL, "Submit for approval"
    ),
    "complete": Transition(frozenset({State.AWAITING_APPROVAL}), State.COMPLETED, "Complete"),
    "reject": Transition(OPEN_STATES, State.REJECTED, "Reject"),
    "withdraw": Transition(OPEN_STATES, State.WITHDRAWN, "Withdrawn by the subject"),
}


class PrivacyRequest(TimeStampedModel):
    """A data subject request with its statutory deadline."""

    class Kind(models.TextChoices):
        ACCESS = "access", "Access"
        RECTIFICATION = "rectification", "Rectification"
        ERASURE = "erasure", "Erasure"
        RESTRICTION = "restriction", "Restriction of processing"
        OBJECTION = "objection", "Objection"
        PORTABILITY = "portability", "Portability"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"
        POST = "post", "Post"
        PORTAL = "portal", "Customer portal"
        WEBSITE = "website", "Website"
        IN_PERSON = "in_person", "In person"

    class ObjectionScope(models.TextChoices):
        NONE = "", "—"
        MARKETING = "marketing", "Direct marketing"
        PROCESSING = "processing", "Processing for billing"

    class IdentityMethod(models.TextChoices):
        NONE = "", "Not established"
        CODE = "code", "One-time code to the email on file"
        ATTESTATION = "attestation", "Staff attestation"
        PORTAL_LOGIN = "portal_login", "Logged in to the customer portal"

    State = State
    REFERENCE_PREFIX = "DSR-"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    state = models.CharField(max_length=20, choices=State.choices, default=State.RECEIVED)
    channel = models.CharField(max_length=20, choices=Channel.choices)
    objection_scope = models.CharField(
        max_length=20, choices=ObjectionScope.choices, blank=True, default=ObjectionScope.NONE
    )

    # The subject: a contact (and so its customer), a customer, or a member of the public by email.
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="privacy_requests"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="privacy_requests"
    )
    subject_email = EncryptedTextField(blank=True, default="")
    subject_email_index = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    details = EncryptedTextField(help_text="What the subject asked for, in their words.")
    # Set when the subject is erased: the record of the request stays (the law asks us to show it was
    # answered), without the subject's email, words or contact.
    subject_erased_at = models.DateTimeField(null=True, blank=True, editable=False)

    received_on = models.DateField()
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    identity_method = models.CharField(
        max_length=20, choices=IdentityMethod.choices, blank=True, default=IdentityMethod.NONE
    )
    identity_verified_at = models.DateTimeField(null=True, blank=True)
    identity_attestation = models.TextField(blank=True)

    # The clock: ``due_on`` is kept in step with these by the services, so the queue can sort on it.
    clock_started_on = models.DateField(null=True, blank=True)
    on_hold_since = models.DateField(null=True, blank=True)
    days_on_hold = models.PositiveIntegerField(default=0)
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    due_on = models.DateField(null=True, blank=True)

    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )

    submitted_for_approval_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(
        blank=True,
        help_text="What was done, or why it was refused; no personal data (it is in the register).",
    )
    restriction_lifted_at = models.DateTimeField(null=True, blank=True)
    # A customer's question about one entry of its access log (accounts.AccessLog), asked from the
    # portal. The entry's id, not a foreign key: retention and erasure delete log rows in bulk, and the
    # request must outlive the entry it asked about.
    access_log_entry_id = models.BigIntegerField(
        null=True, blank=True, editable=False, help_text="The access-log entry the customer asked about."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["-received_on", "-id"]
        permissions = [("approve_privacyrequest", "Can approve privacy requests (four eyes)")]
        constraints = [
            models.CheckConstraint(
                name="privacyrequest_names_subject",
                condition=Q(customer__isnull=False) | ~Q(subject_email_index=""),
            ),
            models.CheckConstraint(
                name="privacyrequest_rejection_has_reason",
                condition=~Q(state="rejected") | ~Q(outcome=""),
            ),
            models.CheckConstraint(
                name="privacyrequest_extension_has_reason",
                condition=Q(extended_at__isnull=True) | ~Q(extension_reason=""),
            ),
            models.CheckConstraint(
                name="privacyrequest_objection_has_scope",
                condition=~Q(kind="objection") | ~Q(objection_scope=""),
            ),
            # Asking twice about one entry while the first question is open opens nothing new.
            models.UniqueConstraint(
                fields=["access_log_entry_id"],
                condition=Q(access_log_entry_id__isnull=False, state__in=sorted(OPEN_STATES)),
                name="privacyrequest_one_open_per_access_entry",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "due_on"], name="privacyrequest_state_due"),
            models.Index(fields=["customer", "kind", "state"], name="privacyrequest_subject_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.get_kind_display()})"

    @property
    def reference(self) -> str:
        return f"{self.REFERENCE_PREFIX}{self.pk:06d}"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def is_extended(self) -> bool:
        return self.extended_at is not None

    @property
    def is_identity_established(self) -> bool:
        return self.identity_verified_at is not None

    def allowed_actions(self) -> list[str]:
        """The transitions the table allows from the current state."""
        return [name for name, step in TRANSITIONS.items() if self.state in step.sources]


class PrivacyRequestEvent(models.Model):
    """A step of a request: a transition (from, to) or an event within a state (extension, a code sent)."""

    privacy_request = models.ForeignKey(PrivacyRequest, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40)
    from_state = models.CharField(max_length=20, choices=State.choices)
    to_state = models.CharField(max_length=20, choices=State.choices)
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action}: {self.from_state} -> {self.to_state}"

    @property
    def label(self) -> str:
        return self.action.replace("_", " ").capitalize()

    @property
    def is_transition(self) -> bool:
        return self.from_state != self.to_state


class IdentityCode(models.Model):
    """A one-time code sent to the subject's email on file. Only its keyed hash is stored."""

    privacy_request = models.ForeignKey(
        PrivacyRequest, on_delete=models.CASCADE, related_name="identity_codes"
    )
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)
    # A newer code replaces an older one; the older can no longer be used.
    superseded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Identity code #{self.pk} for request {self.privacy_request_id}"


class ReminderRun(models.Model):
    """One day's deadline reminder: its row makes a second run on the same day send nothing."""

    run_on = models.DateField(unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    due_soon = models.PositiveIntegerField(default=0)
    overdue = models.PositiveIntegerField(default=0)
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-run_on"]

    def __str__(self) -> str:
        return f"Reminders of {self.run_on:%Y-%m-%d}"


class SuppressionEntry(models.Model):
    """An email or phone number that must never be sent marketing: only its HMAC, so the entry outlives
    the erasure of everything else about the person and still matches when they reappear."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        PHONE = "phone", "Phone"

    channel = models.CharField(max_length=10, choices=Channel.choices)
    value_hmac = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    privacy_request = models.ForeignKey(
        PrivacyRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="suppressions"
    )

    class Meta:
        verbose_name_plural = "suppression entries"

    def __str__(self) -> str:
        return f"Suppressed {self.channel} #{self.pk}"
