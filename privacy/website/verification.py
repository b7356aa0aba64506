"""Signed, expiring links that prove a member of the public can read an email address.

A token names a purpose (so a mailing-list link cannot verify a privacy request), a reference (the
row it is about) and the blind index of the email, never the email itself: the link travels in a mail
and in browser history, and the signed payload is only encoded, not encrypted.

    token = issue_verification_token(email=email, purpose="privacy-request", reference=str(row.pk))
    verified = check_verification_token(token=token, purpose="privacy-request")
    row = load(verified.reference)
    if not verified.matches(row.email): ...
"""

import datetime
from dataclasses import dataclass

from django.core import signing

from fusion_site.crypto import blind_index

DEFAULT_MAX_AGE = datetime.timedelta(days=3)
_SALT = "fusion.website.verification"
_EMAIL_PURPOSE = "website-verification"


class VerificationError(Exception):
    """The link cannot be used; the message is fit to show the visitor."""


class VerificationExpired(VerificationError):
    pass


class VerificationInvalid(VerificationError):
    pass


def _email_digest(email: str) -> str:
    return blind_index(_EMAIL_PURPOSE, email.strip().lower())


@dataclass(frozen=True)
class VerifiedToken:
    purpose: str
    reference: str
    email_digest: str

    def matches(self, email: str) -> bool:
        return _email_digest(email) == self.email_digest


def issue_verification_token(*, email: str, purpose: str, reference: str) -> str:
    payload = {"p": purpose, "r": reference, "e": _email_digest(email)}
    return signing.dumps(payload, salt=f"{_SALT}.{purpose}", compress=True)


def check_verification_token(
    *, token: str, purpose: str, max_age: datetime.timedelta | None = DEFAULT_MAX_AGE
) -> VerifiedToken:
    """The token's content if it is genuine, for this purpose and younger than ``max_age`` (``None``:
    never expires, for unsubscribe links that must work in any old mail)."""
    try:
        payload = signing.loads(token, salt=f"{_SALT}.{purpose}", max_age=max_age)
    except signing.SignatureExpired as exc:
        raise VerificationExpired("This link has expired. Please send the form again.") from exc
    except signing.BadSignature as exc:
        raise VerificationInvalid("This link is not valid. Please use the link from your email.") from exc
    if not isinstance(payload, dict) or payload.get("p") != purpose:
        raise VerificationInvalid("This link is not valid. Please use the link from your email.")
    return VerifiedToken(purpose=purpose, reference=str(payload.get("r", "")), email_digest=str(payload["e"]))
