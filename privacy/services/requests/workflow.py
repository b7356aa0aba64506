"""The privacy request workflow: taking a step of ``privacy.models.TRANSITIONS`` (checked against the
table, ``due_on`` kept in step with the clock by ``privacy.deadlines``, history through
``save_with_actor`` and a ``PrivacyRequestEvent`` for the step), and the steps of working a request from
start to approval, rejection or withdrawal.

Each service is keyword-only, takes the acting user and a reason, runs in a transaction on the locked
request, and queues emails to the subject on commit.
"""

import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from fusion_site.models import save_with_actor
from fusion_site.refusals import Refusal
from privacy import deadlines, selectors
from privacy.models import (
    TRANSITIONS,
    PrivacyPermission,
    PrivacyRequest,
    PrivacyRequestEvent,
    State,
)

Kind = PrivacyRequest.Kind


class PrivacyRequestError(ValidationError):
    """A step that cannot be taken now; the message says why."""


# Taking a step ----------------------------------------------------------------------------------


def local_today() -> datetime.date:
    return timezone.localdate()


def require_permission(actor: User, permission: PrivacyPermission, doing: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(f"You may not {doing}.")


ONLY_A_DPO_WORKS = "Only a DPO may work privacy requests."
ONLY_A_DPO_APPROVES = "Only a DPO may approve privacy requests."
ONLY_A_DPO_ERASES = "Only a DPO may erase a customer, which completing this erasure request does."


def privacy_request_refusal(*, actor: User, privacy_request: PrivacyRequest, action: str) -> Refusal | None:
    """Why ``actor`` may not take the step ``action`` (the request page's name for it) on the request now,
    or None: the rules the services apply beyond the workflow table's states (the role; four eyes; an
    approval before completion), so the page gives the reason where it would offer a button that fails."""
    if action == "approve":
        if not actor.has_perm(PrivacyPermission.APPROVE):
            return Refusal(ONLY_A_DPO_APPROVES, forbidden=True)
        if privacy_request.approved_by_id is not None:
            return Refusal(f"{privacy_request.reference} is already approved.")
        if actor.pk == privacy_request.submitted_for_approval_by_id:
            return Refusal(
                "Four eyes: you submitted this request for approval, so another DPO must approve it."
            )
        if actor.pk == privacy_request.received_by_id:
            return Refusal("Four eyes: you received this request, so another DPO must approve it.")
        return None
    if not actor.has_perm(PrivacyPermission.CHANGE):
        return Refusal(ONLY_A_DPO_WORKS, forbidden=True)
    if action == "complete":
        if privacy_request.approved_by_id is None:
            return Refusal(f"{privacy_request.reference} needs another DPO's approval first.")
        if privacy_request.kind == Kind.ERASURE and not actor.has_perm(PrivacyPermission.ERASE_CUSTOMER):
            return Refusal(ONLY_A_DPO_ERASES, forbidden=True)
    return None


def refuse(refusal: Refusal | None) -> None:
    """Raise ``refusal``, if any: a 403 for a role that may never take the step, else the step's error."""
    if refusal is None:
        return
    if refusal.forbidden:
        raise PermissionDenied(refusal.reason)
    raise PrivacyRequestError(refusal.reason)


def require_reason(reason: str, what: str) -> str:
    if not reason.strip():
        raise ValidationError({"reason": f"Give {what}."})
    return reason.strip()


def lock_request(privacy_request: PrivacyRequest) -> PrivacyRequest:
    return (
        PrivacyRequest.objects.select_for_update(of=("self",))
        .select_related("customer", "contact")
        .get(pk=privacy_request.pk)
    )


def require_worker(actor: User) -> None:
    if not actor.has_perm(PrivacyPermission.CHANGE):
        raise PermissionDenied(ONLY_A_DPO_WORKS)


def lock_to_work(privacy_request: PrivacyRequest, actor: User) -> PrivacyRequest:
    """The request, locked, once the actor is found to be allowed to work privacy requests."""
    require_worker(actor)
    return lock_request(privacy_request)


def lock_to_work_giving(
    privacy_request: PrivacyRequest, actor: User, reason: str, what: str
) -> tuple[PrivacyRequest, str]:
    """``lock_to_work`` for a step that needs a reason (``what`` it gives): the permission is checked,
    then the reason, then the request is locked; returns it with the reason stripped."""
    require_worker(actor)
    reason = require_reason(reason, what)
    return lock_request(privacy_request), reason


def record_event(
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


def check_step(privacy_request: PrivacyRequest, action: str) -> None:
    step = TRANSITIONS[action]
    if privacy_request.state not in step.sources:
        allowed = ", ".join(State(state).label.lower() for state in sorted(step.sources))
        raise PrivacyRequestError(
            f"{privacy_request.reference} is {privacy_request.get_state_display().lower()}: "
            f"'{step.label}' is allowed only from {allowed}."
        )


def take_step(
    privacy_request: PrivacyRequest, *, action: str, actor: User, reason: str, **changes: Any
) -> PrivacyRequest:
    """Take a step of the transition table: check it, apply it with ``changes``, record it."""
    check_step(privacy_request, action)
    from_state = privacy_request.state
    privacy_request.state = TRANSITIONS[action].target
    for name, value in changes.items():
        setattr(privacy_request, name, value)
    refresh_due(privacy_request)
    save_with_actor(privacy_request, actor=actor, reason=reason or TRANSITIONS[action].label)
    record_event(
        privacy_request,
        actor=actor,
        action=action,
        from_state=from_state,
        to_state=privacy_request.state,
        reason=reason,
    )
    return privacy_request


def take_closing_step(
    privacy_request: PrivacyRequest, *, action: str, actor: User, reason: str
) -> PrivacyRequest:
    """Take a step that closes the request now, its reason recorded as the outcome."""
    return take_step(
        privacy_request, action=action, actor=actor, reason=reason, outcome=reason, closed_at=timezone.now()
    )


def refresh_due(privacy_request: PrivacyRequest) -> None:
    if privacy_request.clock_started_on is None:
        privacy_request.due_on = None
        return
    privacy_request.due_on = deadlines.statutory_deadline(
        clock_started_on=privacy_request.clock_started_on,
        extended=privacy_request.is_extended,
        days_on_hold=privacy_request.days_on_hold,
    )


def email_subject(privacy_request: PrivacyRequest, *, subject: str, body: str) -> bool:
    """Queue an email to the subject's address on file; False when there is none to write to."""
    address = selectors.subject_email_on_file(privacy_request)
    if not address:
        return False
    full_subject = f"Your request {privacy_request.reference}: {subject}"
    transaction.on_commit(
        lambda: send_mail(full_subject, body, settings.DEFAULT_FROM_EMAIL, [address], fail_silently=False)
    )
    return True


# Working the request -------------------------------------------------------------------------------


@transaction.atomic
def privacy_request_start(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Start work (identity must be established), or take back a request awaiting approval for more work."""
    privacy_request = lock_to_work(privacy_request, actor)
    if privacy_request.state == State.RECEIVED and not privacy_request.is_identity_established:
        raise PrivacyRequestError(
            "Establish the subject's identity first: send a one-time code or attest it."
        )
    return take_step(
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
    privacy_request, reason = lock_to_work_giving(
        privacy_request, actor, reason, "the clarification asked for"
    )
    return take_step(privacy_request, action="hold", actor=actor, reason=reason, on_hold_since=local_today())


@transaction.atomic
def privacy_request_resume(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Clarification received: the deadline moves by the days the request was on hold, counted from the
    day it was asked for to the day it arrived, both included (``deadlines.clock_stopped_days``)."""
    privacy_request = lock_to_work(privacy_request, actor)
    check_step(privacy_request, "resume")
    today = local_today()
    # The day clarification was asked for and the day it arrived both stop the clock (UK GDPR Art. 12A).
    held = deadlines.clock_stopped_days(asked_on=privacy_request.on_hold_since or today, answered_on=today)
    return take_step(
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
    privacy_request, reason = lock_to_work_giving(
        privacy_request, actor, reason, "the reasons for the extension (they are sent to the subject)"
    )
    if not privacy_request.is_open:
        raise PrivacyRequestError(f"{privacy_request.reference} is closed; it cannot be extended.")
    if privacy_request.is_extended:
        raise PrivacyRequestError(f"{privacy_request.reference} has already been extended once.")
    if privacy_request.clock_started_on is None:
        raise PrivacyRequestError("The clock has not started (identity is awaited); nothing to extend yet.")
    if not deadlines.may_extend(
        today=local_today(),
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
    refresh_due(privacy_request)
    save_with_actor(privacy_request, actor=actor, reason=f"Extended: {reason}")
    body = (
        f"We need more time to answer your request {privacy_request.reference}, as the law allows for "
        f"complex or numerous requests. We will reply by {privacy_request.due_on:%d %B %Y}.\n\n"
        f"Why: {reason}\n\nYou may complain to the Information Commissioner's Office (ico.org.uk)."
    )
    notified = email_subject(privacy_request, subject="we need more time", body=body)
    record_event(
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
    privacy_request = lock_to_work(privacy_request, actor)
    return take_step(
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
    if not actor.has_perm(PrivacyPermission.APPROVE):
        raise PermissionDenied(ONLY_A_DPO_APPROVES)
    privacy_request = lock_request(privacy_request)
    if privacy_request.state != State.AWAITING_APPROVAL:
        raise PrivacyRequestError(
            f"{privacy_request.reference} is {privacy_request.get_state_display().lower()}; "
            "only a request awaiting approval can be approved."
        )
    refuse(privacy_request_refusal(actor=actor, privacy_request=privacy_request, action="approve"))
    privacy_request.approved_by = actor
    privacy_request.approved_at = timezone.now()
    save_with_actor(privacy_request, actor=actor, reason=reason or "Approved")
    record_event(
        privacy_request, actor=actor, action="approved", from_state=privacy_request.state, reason=reason
    )
    return privacy_request


@transaction.atomic
def privacy_request_reject(*, privacy_request: PrivacyRequest, actor: User, reason: str) -> PrivacyRequest:
    """Refuse the request (manifestly unfounded or excessive, say); the subject is told why."""
    privacy_request, reason = lock_to_work_giving(
        privacy_request, actor, reason, "the reason for refusing the request (it is sent to the subject)"
    )
    take_closing_step(privacy_request, action="reject", actor=actor, reason=reason)
    email_subject(
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
    privacy_request, reason = lock_to_work_giving(
        privacy_request, actor, reason, "how the subject withdrew the request"
    )
    return take_closing_step(privacy_request, action="withdraw", actor=actor, reason=reason)
