"""Second-factor devices: enrolment of a TOTP authenticator, recovery codes, verification.

Built on django-otp: a confirmed ``TOTPDevice`` per user (an authenticator app) and a ``StaticDevice``
holding single-use recovery codes.
"""

import base64
import io
import secrets
from urllib.parse import quote

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django_otp import match_token
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.audit import audit_record
from accounts.models import User

AUTHENTICATOR_NAME = "authenticator"
RECOVERY_DEVICE_NAME = "recovery codes"


def has_confirmed_authenticator(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def pending_authenticator(user: User) -> TOTPDevice:
    """The unconfirmed device being enrolled (one at a time; a new visit keeps the same secret)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


def base32_secret(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def otpauth_uri(device: TOTPDevice) -> str:
    """The provisioning URI authenticator apps read. The account is named by user id, not email, so a
    photographed QR code does not disclose who it belongs to."""
    issuer = settings.OTP_TOTP_ISSUER
    label = quote(f"{issuer}:user-{device.user_id}")
    return (
        f"otpauth://totp/{label}?secret={base32_secret(device)}&issuer={quote(issuer)}"
        f"&digits={device.digits}&period={device.step}&algorithm=SHA1"
    )


def qr_svg(data: str) -> str:
    """The URI as inline SVG markup (no script, no style attribute: the CSP allows it)."""
    buffer = io.BytesIO()
    qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage).save(buffer)
    text = buffer.getvalue().decode()
    return text[text.index("<svg") :]


def _new_recovery_code() -> str:
    raw = "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


@transaction.atomic
def recovery_codes_issue(*, user: User, actor: User) -> list[str]:
    """Replace the user's recovery codes with new ones, returned once in clear for the user to keep."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [_new_recovery_code() for _ in range(settings.RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    audit_record(actor=actor, action="2fa.recovery_codes_issued", target=user, detail={})
    return codes


@transaction.atomic
def authenticator_confirm(*, device: TOTPDevice, token: str, actor: User) -> list[str] | None:
    """Confirm an enrolling device with a code from the app; returns fresh recovery codes, or None when
    the code is wrong. Any older authenticator of the user is replaced."""
    if not device.verify_token(token.strip().replace(" ", "")):
        return None
    TOTPDevice.objects.filter(user_id=device.user_id, confirmed=True).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    audit_record(actor=actor, action="2fa.enrolled", target=device.user, detail={"device": device.pk})
    return recovery_codes_issue(user=device.user, actor=actor)


def demo_authenticator(user: User) -> TOTPDevice:
    """The demo user's confirmed authenticator, made once (the secret stays the same between runs)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=True)


def device_matching(user: User, token: str) -> Device | None:
    """The confirmed device (authenticator or an unused recovery code) that accepts the token."""
    return match_token(user, token.strip().replace(" ", "").lower())
