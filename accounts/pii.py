"""The PII gate: who may see personal data unmasked, and how it looks when they may not."""

from django.contrib.auth.models import AnonymousUser

from accounts import validation
from accounts.models import User

MASK = "***"


def may_reveal_personal_data(user: User | AnonymousUser) -> bool:
    """Role permission plus a signed confidentiality agreement and current GDPR training."""
    if not isinstance(user, User) or not user.is_active or user.is_portal_user:
        return False
    return user.has_perm("accounts.reveal_personal_data") and user.is_cleared_for_personal_data()


def may_reveal_payment_details(user: User | AnonymousUser) -> bool:
    return (
        may_reveal_personal_data(user)
        and isinstance(user, User)
        and user.has_perm("accounts.reveal_paymentdetails")
    )


def mask_phone(e164: str) -> str:
    """'+447700900123' -> '07*** ***123'."""
    if not e164:
        return ""
    digits = validation.national_phone_digits(e164)
    return f"{digits[:2]}{MASK} {MASK}{digits[-3:]}"


def mask_email(email: str) -> str:
    """'jane.smith@example.com' -> 'j***@e***.com'."""
    if "@" not in email:
        return mask_text(email)
    local, _, domain = email.rpartition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}{MASK}@{host[:1]}{MASK}.{tld}"


def mask_postcode(postcode: str) -> str:
    """'SW1A 1AA' -> 'SW1A ***': the outward code says the area, not the street."""
    outward, _, _ = postcode.partition(" ")
    return f"{outward} {MASK}" if postcode else ""


def mask_text(value: str) -> str:
    """Names and address lines: the first letter only."""
    return f"{value[:1]}{MASK}" if value else ""


def mask_sort_code(sort_code: str) -> str:
    return f"**-**-{sort_code[-2:]}" if sort_code else ""


def mask_account_number(account_number: str) -> str:
    return f"****{account_number[-4:]}" if account_number else ""


def mask_reference(reference: str) -> str:
    return f"{MASK}{reference[-4:]}" if reference else ""
