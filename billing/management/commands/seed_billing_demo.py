"""Demo billing data on top of seed_demo: tariff, rentals, two months of calls, two bill runs per partner."""

from typing import Any

from django.core.management.base import BaseCommand

from billing import demo


class Command(BaseCommand):
    help = "Create demo billing data for the demo partners (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not demo.seed(progress=lambda message: self.stderr.write(message)):
            self.stdout.write("Demo billing data already present.")
            return
        self.stdout.write(self.style.SUCCESS("Demo billing data created: see Bill runs."))
