"""Create demo partners, users of every role and customers with Site Details, then print the logins."""

from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection
from tqdm import tqdm

from accounts.demo import DEMO_PASSWORD, DemoBuilder
from accounts.models import Customer
from accounts.services import system_user


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
