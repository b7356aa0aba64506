"""Print the current TOTP code of each demo user (the demo's stand-in for an authenticator app)."""

from typing import Any

from django.core.management.base import BaseCommand
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice


class Command(BaseCommand):
    help = "Print each demo user's current two-factor code."

    def handle(self, *args: Any, **options: Any) -> None:
        devices = TOTPDevice.objects.filter(confirmed=True).select_related("user").order_by("user__email")
        for device in devices:
            if not device.user.email.endswith(".example"):  # demo logins only, never real staff
                continue
            code = totp(device.bin_key, device.step, device.t0, device.digits)
            self.stdout.write(f"  {device.user.email:<36} {code:0{device.digits}d}")
