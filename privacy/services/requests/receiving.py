"""Recording a new privacy request: from staff or a portal user, or from the public website."""

import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import validation
from accounts.models import Contact, Customer, User
from accounts.selectors import customers_visible_to
from fusion_site.crypto import blind_index
from fusion_site.models import save_with_actor
from privacy import selectors
from privacy.models import (
    PrivacyPermission,
    PrivacyRequest,
    State,
)
from privacy.services.requests.workflow import (
    Kind,
    local_today,
    record_event,
    refresh_due,
    require_permission,
)

# Receiving -----------------------------------------------------------------------------------------


@transaction.atomic
def privacy_request_receive(
    *,
    kind: str,
    channel: str,
    details: str,
    actor: User,
    reason: str = "",
    customer: Customer | None = None,
    contact: Contact | None = None,
    subject_email: str = "",
    received_on: datetime.date | None = None,
    objection_scope: str = "",
    access_log_entry_id: int | None = None,
) -> PrivacyRequest:
    """Record a new request. A portal user's request is about its own account, arrives through the
    portal and has its identity established by the login. A duplicate is flagged, not refused. A
    question about one access-log entry (``access_log_entry_id``, see ``access_questions``) is no
    duplicate of another request: each entry has at most one open question."""
    require_permission(actor, PrivacyPermission.ADD, "open privacy requests")
    received_on = received_on or local_today()
    errors: dict[str, str] = {}
    if contact is not None:
        if customer is not None and contact.customer_id != customer.pk:
            errors["contact"] = "This contact belongs to another customer."
        customer = contact.customer
    if actor.is_portal_user:
        if customer is None or customer.pk != actor.customer_id or contact is not None:
            raise PermissionDenied("A portal user can make requests about its own account only.")
        channel = PrivacyRequest.Channel.PORTAL
        subject_email = subject_email or actor.email
    elif customer is not None and not customers_visible_to(actor).filter(pk=customer.pk).exists():
        errors["customer"] = "No such customer."
    elif customer is None and not actor.has_perm(PrivacyPermission.CHANGE):
        errors["customer"] = "Name the customer; only the DPO opens requests from members of the public."
    if subject_email.strip():
        try:
            subject_email = validation.normalise_email(subject_email)
        except ValidationError:
            errors["subject_email"] = "Enter a valid email address."
    if customer is None and not subject_email.strip() and "customer" not in errors:
        errors["subject_email"] = "Name the subject: a customer, one of its contacts, or an email address."
    if received_on > local_today():
        errors["received_on"] = "A request cannot be received in the future."
    if not details.strip():
        errors["details"] = "Say what the subject asked for."
    needs_customer = kind == Kind.RESTRICTION or (
        kind == Kind.OBJECTION and objection_scope == PrivacyRequest.ObjectionScope.PROCESSING
    )
    if needs_customer and customer is None:
        errors["customer"] = "This request changes how a customer's account is processed: name the customer."
    if kind == Kind.OBJECTION and not objection_scope:
        errors["objection_scope"] = "Say what the subject objects to: direct marketing or billing."
    if kind != Kind.OBJECTION:
        objection_scope = ""
    if errors:
        raise ValidationError(errors)

    privacy_request = PrivacyRequest(
        kind=kind,
        channel=channel,
        objection_scope=objection_scope,
        customer=customer,
        contact=contact,
        subject_email=subject_email,
        subject_email_index=blind_index("email", subject_email) if subject_email else "",
        details=details.strip(),
        received_on=received_on,
        received_by=actor,
        clock_started_on=received_on,
        access_log_entry_id=access_log_entry_id,
    )
    if actor.is_portal_user:
        privacy_request.identity_method = PrivacyRequest.IdentityMethod.PORTAL_LOGIN
        privacy_request.identity_verified_at = timezone.now()
    # Looked up before the save so the new request does not find itself.
    duplicate = (
        selectors.open_duplicate_of(
            kind=kind,
            customer_id=customer.pk if customer else None,
            contact_id=contact.pk if contact else None,
            subject_email_index=privacy_request.subject_email_index,
        )
        if access_log_entry_id is None
        else None
    )
    privacy_request.duplicate_of = duplicate
    refresh_due(privacy_request)
    save_with_actor(privacy_request, actor=actor, reason=reason or "Request received")
    record_event(privacy_request, actor=actor, action="received", from_state=State.RECEIVED, reason=reason)
    if duplicate is not None:
        record_event(
            privacy_request,
            actor=actor,
            action="flagged_duplicate",
            from_state=State.RECEIVED,
            reason=f"Same subject and kind as the open request {duplicate.reference}.",
        )
    return privacy_request


@transaction.atomic
def privacy_request_receive_from_public(
    *, email: str, kind: str, details: str, actor: User
) -> PrivacyRequest:
    """A request a member of the public sent from the website, once they proved they read the email
    address (``privacy.website``). That is not proof of identity: the DPO still verifies it (a code to
    the address is enough for a subject known only by it). ``actor`` is the website's system user; no
    staff permission applies, the verified address is the gate. A request the website cannot tie to an
    account is about the address alone; the DPO links or answers it."""
    if kind not in Kind.values:
        raise ValidationError({"kind": f"'{kind}' is not a kind of privacy request."})
    try:
        email = validation.normalise_email(email)
    except ValidationError as exc:
        raise ValidationError({"subject_email": "Enter a valid email address."}) from exc
    if not details.strip():
        raise ValidationError({"details": "Say what the subject asked for."})
    today = local_today()
    privacy_request = PrivacyRequest(
        kind=kind,
        channel=PrivacyRequest.Channel.WEBSITE,
        # From the public, an objection is to direct marketing: billing objections come from an account.
        objection_scope=PrivacyRequest.ObjectionScope.MARKETING if kind == Kind.OBJECTION else "",
        subject_email=email,
        subject_email_index=blind_index("email", email),
        details=details.strip(),
        received_on=today,
        received_by=actor,
        clock_started_on=today,
    )
    privacy_request.duplicate_of = selectors.open_duplicate_of(
        kind=kind, customer_id=None, contact_id=None, subject_email_index=privacy_request.subject_email_index
    )
    refresh_due(privacy_request)
    reason = "Sent from the public website; email address verified"
    save_with_actor(privacy_request, actor=actor, reason=reason)
    record_event(privacy_request, actor=actor, action="received", from_state=State.RECEIVED, reason=reason)
    if privacy_request.duplicate_of is not None:
        record_event(
            privacy_request,
            actor=actor,
            action="flagged_duplicate",
            from_state=State.RECEIVED,
            reason=f"Same subject and kind as the open request {privacy_request.duplicate_of.reference}.",
        )
    return privacy_request
