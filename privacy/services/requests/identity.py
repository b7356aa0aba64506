"""Establishing the subject's identity: a one-time code emailed to the address on file, entered by staff or
the subject, or a staff member's attestation. Asking for proof stops the clock until it is given."""

import datetime
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from fusion_site.crypto import blind_index
from fusion_site.models import save_with_actor
from privacy import selectors
from privacy.models import (
    IdentityCode,
    PrivacyRequest,
    State,
)
from privacy.services.requests.workflow import (
    PrivacyRequestError,
    check_step,
    email_subject,
    local_today,
    lock_request,
    lock_to_work,
    lock_to_work_giving,
    record_event,
    take_step,
)

IDENTITY_CODE_DIGITS = 6
IDENTITY_CODE_MAX_ATTEMPTS = 5
IDENTITY_CODE_VALID_FOR = datetime.timedelta(hours=24)


def _code_hash(privacy_request: PrivacyRequest, code: str) -> str:
    # Keyed, and bound to the request: a six-digit code alone is guessable offline from a plain hash.
    return blind_index("identity code", f"{privacy_request.pk}:{code}")


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
    record_event(
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
    email_subject(privacy_request, subject="confirm your identity", body=body)
    return True


@transaction.atomic
def privacy_request_request_identity(
    *, privacy_request: PrivacyRequest, actor: User, reason: str = ""
) -> PrivacyRequest:
    """Ask for proof of identity. The clock stops: the month will count from the day it is verified."""
    privacy_request = lock_to_work(privacy_request, actor)
    take_step(
        privacy_request,
        action="request_identity",
        actor=actor,
        reason=reason,
        clock_started_on=None,
        identity_method=PrivacyRequest.IdentityMethod.NONE,
        identity_verified_at=None,
    )
    if not _issue_identity_code(privacy_request, actor=actor):
        record_event(
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
    privacy_request = lock_to_work(privacy_request, actor)
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
        return take_step(
            privacy_request,
            action="verify_identity",
            actor=actor,
            reason=reason,
            clock_started_on=local_today(),
            **changes,
        )
    # Identity settled before any was asked for: the clock keeps running from receipt.
    for name, value in changes.items():
        setattr(privacy_request, name, value)
    save_with_actor(privacy_request, actor=actor, reason=reason or "Identity established")
    record_event(
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
        privacy_request = lock_request(privacy_request)
        check_step(privacy_request, "verify_identity")
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
            record_event(
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
    privacy_request, reason = lock_to_work_giving(
        privacy_request, actor, reason, "how you verified the subject's identity"
    )
    if privacy_request.state not in (State.RECEIVED, State.AWAITING_IDENTITY):
        raise PrivacyRequestError("Identity is settled before work on the request starts.")
    return _establish_identity(
        privacy_request,
        method=PrivacyRequest.IdentityMethod.ATTESTATION,
        actor=actor,
        reason=reason,
        attestation=reason,
    )
