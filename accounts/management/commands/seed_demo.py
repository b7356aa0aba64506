"""Create demo partners, users of every role and customers with Site Details, then print the logins."""

from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from django_otp.oath import totp
from tqdm import tqdm

from accounts.demo import DEMO_PASSWORD, DemoBuilder
from accounts.models import Customer, User
from accounts.services import system_user
from accounts.two_factor import base32_secret, demo_authenticator


class Command(BaseCommand):
    help = "Create demo data (idempotent: an already seeded database only gets its logins printed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--partners", type=int, default=3)
        parser.add_argument("--customers", type=int, default=300, help="Customers in all, across partners.")
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args: Any, **options: Any) -> None:
        builder = DemoBuilder(seed=options["seed"], actor=system_user(job="seed-demo"))
        partners = builder.partners(options["partners"])
        if Customer.objects.filter(partner__in=partners).exists():
            self.stdout.write("Demo data already present; not adding more.")
        else:
            per_partner = max(1, options["customers"] // len(partners))
            with tqdm(
                total=per_partner * len(partners),
                desc="Customers",
                unit="customer",
                file=cast(TextIO, self.stderr._out),
            ) as bar:
                for partner in partners:
                    builder.customers(partner, per_partner, progress=bar.update)
        logins = builder.users(partners)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")  # planner statistics for the new rows (SQLite never gathers its own)
        self.stdout.write(self.style.SUCCESS(f"\nDemo logins (password for all: {DEMO_PASSWORD})"))
        width = max(len(login.email) for login in logins)
        for login in logins:
            self.stdout.write(f"  {login.email:<{width}}  {login.role:<24} {login.partner:<20} {login.note}")
        # Two-factor authentication is never switched off, so each demo user gets an authenticator:
        # add the secret to an app, or type the current code printed here (it changes every 30 s).
        self.stdout.write(
            self.style.SUCCESS("\nSecond factor (TOTP secret for an authenticator app, code now)")
        )
        users = {user.email: user for user in User.objects.filter(email__in=[x.email for x in logins])}
        for login in logins:
            device = demo_authenticator(users[login.email])
            code = f"{totp(device.bin_key, device.step, device.t0, device.digits):0{device.digits}d}"
            self.stdout.write(f"  {login.email:<{width}}  {base32_secret(device)}  {code}")
        self.stdout.write(
            "  Codes change every 30 seconds; `manage.py demo_totp_codes` prints the current ones again."
        )
