"""Every write of the privacy request workflow: one function per action.

Each is keyword-only, takes the acting user and a reason, runs in a transaction on the locked request,
checks the step against ``privacy.models.TRANSITIONS``, keeps ``due_on`` in step with the clock
(``privacy.deadlines``), writes history through ``save_with_actor`` and a ``PrivacyRequestEvent`` for
the step, and queues emails to the subject on commit.
"""

import datetime
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail, send_mass_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts import validation
from accounts.audit import audit_record
from accounts.models import Contact, Customer, User
from accounts.selectors import customers_visible_to
from accounts.services import customer_lift_processing_restriction, customer_restrict_processing
from billing.services.billing_cease import customer_cease_billing
from fusion_site.crypto import blind_index
from fusion_site.models import save_with_actor
from privacy import deadlines, selectors
from privacy.erasure import customer_erase
from privacy.models import (
    TRANSITIONS,
    IdentityCode,
    PrivacyPermission,
    PrivacyRequest,
    PrivacyRequestEvent,
    ReminderRun,
    State,
    SuppressionEntry,
)
from privacy.services.exports import portability_export_create

IDENTITY_CODE_DIGITS = 6
IDENTITY_CODE_MAX_ATTEMPTS = 5
IDENTITY_CODE_VALID_FOR = datetime.timedelta(hours=24)

Kind = PrivacyRequest.Kind


class PrivacyRequestError(ValidationError):
    """A step that cannot be taken now; the message says why."""


# Helpers ----------------------------------------------------------------------------------------


def _today() -> datetime.date:
    return timezone.localdate()


def _require(actor: User, permission: PrivacyPermission, doing: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(f"You may not {doing}.")


def _require_reason(reason: str, what: str) -> str:
    if not reason.strip():
        raise ValidationError({"reason": f"Give {what}."})
    return reason.strip()


def _locked(privacy_request: PrivacyRequest) -> PrivacyRequest:
    return (
        PrivacyRequest.objects.select_for_update(of=("self",))
        .select_related("customer", "contact")
        .get(pk=privacy_request.pk)
    )


def _event(
    privacy_request: PrivacyRequest,
    *,
    actor: User | None,
    action: str,
    from_state: str,
    to_state: str | None = None,
    reason: str = "",
) -> PrivacyRequestEvent:
    event = PrivacyRequestEvent.objects.create(
        privacy_request=privacy_request,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=to_state or from_state,
        reason=reason,
    )
    # The chained audit trail gets the step and the states, never the reason (it can name the subject).
    audit_record(
        actor=actor,
        action=f"privacy_request.{action}",
        target=privacy_request,
        detail={"kind": privacy_request.kind, "from": from_state, "to": event.to_state},
    )
    return event


def _check_step(privacy_request: PrivacyRequest, action: str) -> None:
    step = TRANSITIONS[action]
    if privacy_request.state not in step.sources:
        allowed = ", ".join(State(state).label.lower() for state in sorted(step.sources))
        raise PrivacyRequestError(
            f"{privacy_request.reference} is {privacy_request.get_state_display().lower()}: "
            f"'{step.label}' is allowed only from {allowed}."
        )


def _transition(
    privacy_request: PrivacyRequest, *, action: str, actor: User, reason: str, **changes: Any
) -> PrivacyRequest:
    """Take a step of the transition table: check it, apply it with ``changes``, record it."""
    _check_step(privacy_request, action)
    from_state = privacy_request.state
    privacy_request.state = TRANSITIONS[action].target
    for name, value in changes.items():
        setattr(privacy_request, name, value)
    _refresh_due(privacy_request)
    save_with_actor(privacy_request, actor=actor, reason=reason or TRANSITIONS[action].label)
    _event(
        privacy_request,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=privacy_request.state,
        reason=reason,
    )
    return privacy_request


def _refresh_due(privacy_request: PrivacyRequest) -> None:
    if privacy_request.clock_started_on is None:
        privacy_request.due_on = None
        return
    privacy_request.due_on = deadlines.statutory_deadline(
        clock_started_on=privacy_request.clock_started_on,
        extended=privacy_request.is_extended,
        days_on_hold=privacy_request.days_on_hold,
    )


def _email_subject(privacy_request: PrivacyRequest, *, subject: str, body: str) -> bool:
    """Queue an email to the subject's address on file; False when there is none to write to."""
    address = selectors.subject_email_on_file(privacy_request)
    if not address:
        return False
    full_subject = f"Your request {privacy_request.reference}: {subject}"
    transaction.on_commit(
        lambda: send_mail(full_subject, body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    )
    return True


def _code_hash(privacy_request: PrivacyRequest, code: str) -> str:
    # Keyed, and bound to the request: a six-digit code alone is guessable offline from a plain hash.
    return blind_index("identity code", f"{privacy_request.pk}:{code}")


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
) -> PrivacyRequest:
    """Record a new request. A portal user's request is about its own account, arrives through the
    portal and has its identity established by the login. A duplicate is flagged, not refused."""
    _require(actor, PrivacyPermission.ADD, "open privacy requests")
    received_on = received_on or _today()
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
    if received_on > _today():
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
    )
    if actor.is_portal_user:
        privacy_request.identity_method = PrivacyRequest.IdentityMethod.PORTAL_LOGIN
        privacy_request.identity_verified_at = timezone.now()
    # Looked up before the save so the new request does not find itself.
    duplicate = selectors.open_duplicate_of(
        kind=kind,
        customer_id=customer.pk if customer else None,
        contact_id=contact.pk if contact else None,
        subject_email_index=privacy_request.subject_email_index,
    )
    privacy_request.duplicate_of = duplicate
    _refresh_due(privacy_request)
    save_with_actor(privacy_request, actor=actor, reason=reason or "Request received")
    _event(privacy_request, actor=actor, action="received", from_state=State.RECEIVED, reason=reason)
    if duplicate is not None:
        _event(
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
    today = _today()
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
    _refresh_due(privacy_request)
    reason = "Sent from the public website; email address verified"
    save_with_actor(privacy_request, actor=actor, reason=reason)
    _event(privacy_request, actor=actor, action="received", from_state=State.RECEIVED, reason=reason)
    if privacy_request.duplicate_of is not None:
        _event(
            privacy_request,
            actor=actor,
            action="flagged_duplicate",
            from_state=State.RECEIVED,
            reason=f"Same subject and kind as the open request {privacy_request.duplicate_of.reference}.",
        )
    return privacy_request


# Identity ------------------------------------------------------------------------------------------


def _issue_identity_code(privacy_request: PrivacyRequest, *, actor: User) -> bool:
    """Replace any outstanding code with a new one and email it; False when no email is on file."""
    address = selectors.subject_email_on_file(privacy_request)
    if not address:
        return False
    now = timezone.now()
    privacy_request.identity_codes.filter(used_at__isnull=True, superseded_at__isnull=True).update(
        superseded_at=now
    )
    code = f"{secrets.randbelow(10**IDENTITY_CODE_DIGITS):0{IDENTITY_CODE_DIGITS}d}"
    expires_at = now + IDENTITY_CODE_VALID_FOR
    IdentityCode.objects.create(
        privacy_request=privacy_request, code_hash=_code_hash(privacy_request, code), expires_at=expires_at
    )
    _event(
        privacy_request,
        actor=actor,
        action="identity_code_sent",
        from_state=privacy_request.state,
        reason="A one-time code was sent to the email on file.",
    )
    body = (
        f"We received a data protection request, reference {privacy_request.reference}.\n\n"
        f"To confirm it is yours, give this code to our staff, or enter it with the reference at "
        f"{settings.SITE_URL}{reverse('privacy:verify_identity')}\n\n"
        f"Your code: {code}\n\n"
        f"The code expires at {timezone.localtime(expires_at):%H:%M on %d %B %Y}. If you did not make "
        f"this request, ignore this email and nothing will happen."
    )
    _email_subject(privacy_request, subject="confirm your identity", body=body)
    return True


@transaction.atomic
def privacy_request_request_identity(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Ask for proof of identity. The clock stops: the month will count from the day it is verified."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    privacy_request = _locked(privacy_request)
    _transition(
        privacy_request,
        action="request_identity",
        actor=actor,
        reason=reason,
        clock_started_on=None,
        identity_method=PrivacyRequest.IdentityMethod.NONE,
        identity_verified_at=None,
    )
    if not _issue_identity_code(privacy_request, actor=actor):
        _event(
            privacy_request,
            actor=actor,
            action="identity_code_not_sent",
            from_state=privacy_request.state,
            reason="No email on file: verify the subject another way and attest it.",
        )
    return privacy_request


@transaction.atomic
def privacy_request_send_identity_code(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Send a fresh code (the old one expired or ran out of attempts); the old code stops working."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    privacy_request = _locked(privacy_request)
    if privacy_request.state != State.AWAITING_IDENTITY:
        raise PrivacyRequestError("A code is sent only while the request awaits proof of identity.")
    if not _issue_identity_code(privacy_request, actor=actor):
        raise PrivacyRequestError("There is no email on file to send a code to; attest the identity instead.")
    return privacy_request


def _establish_identity(
    privacy_request: PrivacyRequest, *, method: str, actor: User, reason: str, attestation: str = ""
) -> PrivacyRequest:
    changes: dict[str, Any] = {
        "identity_method": method,
        "identity_verified_at": timezone.now(),
        "identity_attestation": attestation,
    }
    if privacy_request.state == State.AWAITING_IDENTITY:
        return _transition(
            privacy_request,
            action="verify_identity",
            actor=actor,
            reason=reason,
            clock_started_on=_today(),
            **changes,
        )
    # Identity settled before any was asked for: the clock keeps running from receipt.
    for name, value in changes.items():
        setattr(privacy_request, name, value)
    save_with_actor(privacy_request, actor=actor, reason=reason or "Identity established")
    _event(
        privacy_request,
        actor=actor,
        action="identity_attested",
        from_state=privacy_request.state,
        reason=reason,
    )
    return privacy_request


def privacy_request_verify_identity_code(
    *, privacy_request: PrivacyRequest, code: str, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Check a code entered by staff (or by the subject). A wrong code uses up an attempt, and the count
    is kept even though the call fails; an expired or exhausted code is refused until a new one is sent."""
    failure = ""
    with transaction.atomic():
        privacy_request = _locked(privacy_request)
        _check_step(privacy_request, "verify_identity")
        current = (
            privacy_request.identity_codes.select_for_update()
            .filter(used_at__isnull=True, superseded_at__isnull=True)
            .first()
        )
        now = timezone.now()
        if current is None:
            failure = "No code is outstanding for this request; send a new one."
        elif current.expires_at <= now:
            failure = "This code has expired; send a new one."
        elif current.attempts >= IDENTITY_CODE_MAX_ATTEMPTS:
            failure = "Too many wrong attempts; send a new code."
        else:
            current.attempts += 1
            if hmac.compare_digest(current.code_hash, _code_hash(privacy_request, code.strip())):
                current.used_at = now
                current.save(update_fields=["attempts", "used_at"])
                return _establish_identity(
                    privacy_request,
                    method=PrivacyRequest.IdentityMethod.CODE,
                    actor=actor,
                    reason=reason or "Identity verified with the one-time code.",
                )
            current.save(update_fields=["attempts"])
            left = IDENTITY_CODE_MAX_ATTEMPTS - current.attempts
            failure = f"The code is wrong; {left} attempt{'s' if left != 1 else ''} left."
            _event(
                privacy_request,
                actor=actor,
                action="identity_code_wrong",
                from_state=privacy_request.state,
                reason=failure,
            )
    # Raised after the block so the used-up attempt (and its event) is kept.
    raise PrivacyRequestError({"code": failure})


@transaction.atomic
def privacy_request_attest_identity(
    *, privacy_request: PrivacyRequest, actor: User, reason: str
) -> PrivacyRequest:
    """A staff member vouches for the subject's identity (say, photo ID seen in person), with how."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    reason = _require_reason(reason, "how you verified the subject's identity")
    privacy_request = _locked(privacy_request)
    if privacy_request.state not in (State.RECEIVED, State.AWAITING_IDENTITY):
        raise PrivacyRequestError("Identity is settled before work on the request starts.")
    return _establish_identity(
        privacy_request,
        method=PrivacyRequest.IdentityMethod.ATTESTATION,
        actor=actor,
        reason=reason,
        attestation=reason,
    )


# Working the request -------------------------------------------------------------------------------


@transaction.atomic
def privacy_request_start(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Start work (identity must be established), or take back a request awaiting approval for more work."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    privacy_request = _locked(privacy_request)
    if privacy_request.state == State.RECEIVED and not privacy_request.is_identity_established:
        raise PrivacyRequestError(
            "Establish the subject's identity first: send a one-time code or attest it."
        )
    return _transition(
        privacy_request,
        action="start",
        actor=actor,
        reason=reason,
        submitted_for_approval_by=None,
        approved_by=None,
        approved_at=None,
    )


@transaction.atomic
def privacy_request_hold(*, privacy_request: PrivacyRequest, actor: User, reason: str) -> PrivacyRequest:
    """Wait for the subject to clarify; the clock stops until work resumes."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    reason = _require_reason(reason, "the clarification asked for")
    privacy_request = _locked(privacy_request)
    return _transition(privacy_request, action="hold", actor=actor, reason=reason, on_hold_since=_today())


@transaction.atomic
def privacy_request_resume(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Clarification received: the deadline moves by the days the request was on hold, counted from the
    day it was asked for to the day it arrived, both included (``deadlines.clock_stopped_days``)."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    privacy_request = _locked(privacy_request)
    _check_step(privacy_request, "resume")
    today = _today()
    # The day clarification was asked for and the day it arrived both stop the clock (UK GDPR Art. 12A).
    held = deadlines.clock_stopped_days(asked_on=privacy_request.on_hold_since or today, answered_on=today)
    return _transition(
        privacy_request,
        action="resume",
        actor=actor,
        reason=reason or f"Resumed after {held} day{'s' if held != 1 else ''} on hold.",
        on_hold_since=None,
        days_on_hold=privacy_request.days_on_hold + held,
    )


@transaction.atomic
def privacy_request_extend(*, privacy_request: PrivacyRequest, actor: User, reason: str) -> PrivacyRequest:
    """Extend the deadline by two further months, once, within the first month; the subject is told why."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    reason = _require_reason(reason, "the reasons for the extension (they are sent to the subject)")
    privacy_request = _locked(privacy_request)
    if not privacy_request.is_open:
        raise PrivacyRequestError(f"{privacy_request.reference} is closed; it cannot be extended.")
    if privacy_request.is_extended:
        raise PrivacyRequestError(f"{privacy_request.reference} has already been extended once.")
    if privacy_request.clock_started_on is None:
        raise PrivacyRequestError("The clock has not started (identity is awaited); nothing to extend yet.")
    if not deadlines.may_extend(
        today=_today(),
        clock_started_on=privacy_request.clock_started_on,
        days_on_hold=privacy_request.days_on_hold,
        already_extended=False,
    ):
        raise PrivacyRequestError(
            f"The first month ended on {privacy_request.due_on:%d %B %Y}; "
            "an extension had to be made before then."
        )
    privacy_request.extended_at = timezone.now()
    privacy_request.extension_reason = reason
    _refresh_due(privacy_request)
    save_with_actor(privacy_request, actor=actor, reason=f"Extended: {reason}")
    body = (
        f"We need more time to answer your request {privacy_request.reference}, as the law allows for "
        f"complex or numerous requests. We will reply by {privacy_request.due_on:%d %B %Y}.\n\n"
        f"Why: {reason}\n\nYou may complain to the Information Commissioner's Office (ico.org.uk)."
    )
    notified = _email_subject(privacy_request, subject="we need more time", body=body)
    _event(
        privacy_request,
        actor=actor,
        action="extended",
        from_state=privacy_request.state,
        reason=reason if notified else f"{reason} (no email on file: tell the subject by post or phone)",
    )
    return privacy_request


@transaction.atomic
def privacy_request_submit_for_approval(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    privacy_request = _locked(privacy_request)
    return _transition(
        privacy_request,
        action="submit_for_approval",
        actor=actor,
        reason=reason,
        submitted_for_approval_by=actor,
    )


@transaction.atomic
def privacy_request_approve(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Four eyes: whoever submitted the request for approval, or received it, cannot approve it."""
    _require(actor, PrivacyPermission.APPROVE, "approve privacy requests")
    privacy_request = _locked(privacy_request)
    if privacy_request.state != State.AWAITING_APPROVAL:
        raise PrivacyRequestError(
            f"{privacy_request.reference} is {privacy_request.get_state_display().lower()}; "
            "only a request awaiting approval can be approved."
        )
    if privacy_request.approved_by_id is not None:
        raise PrivacyRequestError(f"{privacy_request.reference} is already approved.")
    if actor.pk == privacy_request.submitted_for_approval_by_id:
        raise PrivacyRequestError(
            "Four eyes: you submitted this request for approval, so someone else must approve it."
        )
    if actor.pk == privacy_request.received_by_id:
        raise PrivacyRequestError("Four eyes: you received this request, so someone else must approve it.")
    privacy_request.approved_by = actor
    privacy_request.approved_at = timezone.now()
    save_with_actor(privacy_request, actor=actor, reason=reason or "Approved")
    _event(privacy_request, actor=actor, action="approved", from_state=privacy_request.state, reason=reason)
    return privacy_request


@transaction.atomic
def privacy_request_complete(*, privacy_request: PrivacyRequest, actor: User, reason: str) -> PrivacyRequest:
    """Close an approved request with its outcome and carry it out (``privacy_request_execute``)."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    reason = _require_reason(reason, "the outcome (what was done), without personal data")
    privacy_request = _locked(privacy_request)
    _check_step(privacy_request, "complete")
    if privacy_request.approved_by_id is None:
        raise PrivacyRequestError(f"{privacy_request.reference} needs a second person's approval first.")
    _transition(
        privacy_request,
        action="complete",
        actor=actor,
        reason=reason,
        outcome=reason,
        closed_at=timezone.now(),
    )
    privacy_request_execute(privacy_request=privacy_request, actor=actor)
    _email_subject(
        privacy_request,
        subject="completed",
        body=f"We have completed your request {privacy_request.reference}.\n\n{reason}",
    )
    return privacy_request


@transaction.atomic
def privacy_request_reject(*, privacy_request: PrivacyRequest, actor: User, reason: str) -> PrivacyRequest:
    """Refuse the request (manifestly unfounded or excessive, say); the subject is told why."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    reason = _require_reason(reason, "the reason for refusing the request (it is sent to the subject)")
    privacy_request = _locked(privacy_request)
    _transition(
        privacy_request, action="reject", actor=actor, reason=reason, outcome=reason, closed_at=timezone.now()
    )
    _email_subject(
        privacy_request,
        subject="we cannot act on it",
        body=(
            f"We will not act on your request {privacy_request.reference}.\n\nWhy: {reason}\n\n"
            "You may complain to the Information Commissioner's Office (ico.org.uk) "
            "or seek a remedy in court."
        ),
    )
    return privacy_request


@transaction.atomic
def privacy_request_withdraw(*, privacy_request: PrivacyRequest, actor: User, reason: str) -> PrivacyRequest:
    """The subject withdrew the request."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    reason = _require_reason(reason, "how the subject withdrew the request")
    privacy_request = _locked(privacy_request)
    return _transition(
        privacy_request,
        action="withdraw",
        actor=actor,
        reason=reason,
        outcome=reason,
        closed_at=timezone.now(),
    )


# Carrying requests out ---------------------------------------------------------------------------


def privacy_request_execute(*, privacy_request: PrivacyRequest, actor: User) -> None:
    """Carry out a completed request. Restriction restricts the customer's processing; objection ceases
    billing or suppresses marketing; erasure erases the customer (privacy.erasure, which the DPO previewed
    before a second person approved); portability builds the export. Access and rectification are
    answered by people (the Art. 15 report and the normal edit screens), so completing them records the
    outcome only.

    Idempotent: a customer already restricted, ceased or erased is left as it is (erasure runs again
    safely and records a repeat)."""
    customer = privacy_request.customer
    why = f"Privacy request {privacy_request.reference} ({privacy_request.get_kind_display().lower()})"
    if privacy_request.kind == Kind.ERASURE:
        if customer is None:
            raise PrivacyRequestError("An erasure request needs the customer whose data is erased.")
        _require(actor, PrivacyPermission.ERASE_CUSTOMER, "erase customers")
        customer_erase(
            customer=customer, actor=actor, reason=why, request_reference=privacy_request.reference
        )
    elif privacy_request.kind == Kind.PORTABILITY:
        if customer is None:
            raise PrivacyRequestError("A portability request needs the customer whose data is exported.")
        # Built by a task once this commits; the subject downloads it from the portal, staff from the
        # customer's exports page, through a link that expires and is logged.
        portability_export_create(customer=customer, actor=actor, request_reference=privacy_request.reference)
    elif privacy_request.kind == Kind.RESTRICTION:
        if customer is None:
            raise PrivacyRequestError(
                "A restriction request needs the customer whose processing is restricted."
            )
        if not customer.is_processing_restricted:
            customer_restrict_processing(customer=customer, actor=actor, reason=why)
    elif privacy_request.kind == Kind.OBJECTION:
        if privacy_request.objection_scope == PrivacyRequest.ObjectionScope.PROCESSING:
            if customer is None:
                raise PrivacyRequestError(
                    "An objection to billing needs the customer whose billing is ceased."
                )
            if not customer.is_billing_ceased:
                customer_cease_billing(customer=customer, actor=actor, reason=why)
        else:
            _suppress_marketing(privacy_request)


def _suppress_marketing(privacy_request: PrivacyRequest) -> int:
    """Add the subject's emails and phone numbers to the suppression list (HMACs only)."""
    values: list[tuple[str, str]] = []
    if privacy_request.subject_email:
        values.append((SuppressionEntry.Channel.EMAIL, privacy_request.subject_email))
    contacts: list[Contact] = []
    if privacy_request.contact is not None:
        contacts = [privacy_request.contact]
    elif privacy_request.customer_id is not None:
        contacts = list(Contact.objects.filter(customer_id=privacy_request.customer_id))
    for contact in contacts:
        values += [
            (SuppressionEntry.Channel.EMAIL, contact.email),
            (SuppressionEntry.Channel.PHONE, contact.phone),
        ]
    added = 0
    for channel, value in values:
        if not value:
            continue
        _entry, created = SuppressionEntry.objects.get_or_create(
            value_hmac=selectors.suppression_hmac(channel, value),
            defaults={"channel": channel, "privacy_request": privacy_request},
        )
        added += created
    return added


@transaction.atomic
def privacy_request_lift_restriction(
    *, privacy_request: PrivacyRequest, actor: User, reason: str
) -> PrivacyRequest:
    """Lift the restriction a completed request put on the customer; the subject is told (Article 18(3))."""
    _require(actor, PrivacyPermission.CHANGE, "work privacy requests")
    reason = _require_reason(reason, "the reason the restriction is lifted (it is sent to the subject)")
    privacy_request = _locked(privacy_request)
    if privacy_request.kind != Kind.RESTRICTION or privacy_request.state != State.COMPLETED:
        raise PrivacyRequestError("Only a completed restriction request has a restriction to lift.")
    if privacy_request.restriction_lifted_at is not None or privacy_request.customer is None:
        raise PrivacyRequestError(f"The restriction of {privacy_request.reference} is already lifted.")
    customer_lift_processing_restriction(
        customer=privacy_request.customer,
        actor=actor,
        reason=f"Privacy request {privacy_request.reference}: {reason}",
    )
    privacy_request.restriction_lifted_at = timezone.now()
    save_with_actor(privacy_request, actor=actor, reason=f"Restriction lifted: {reason}")
    _event(
        privacy_request,
        actor=actor,
        action="restriction_lifted",
        from_state=privacy_request.state,
        reason=reason,
    )
    _email_subject(
        privacy_request,
        subject="restriction lifted",
        body=(
            f"The restriction of processing you asked for in request {privacy_request.reference} is lifted "
            f"from today.\n\nWhy: {reason}"
        ),
    )
    return privacy_request


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
