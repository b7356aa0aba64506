"""Publish the first privacy notice, so the public website's forms are open in the demo."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from privacy.website.demo import NoDataProtectionOfficer, seed_first_notice


class Command(BaseCommand):
    help = "Publish privacy notice version 1 as the demo DPO (idempotent). Run after seed_demo."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            notice = seed_first_notice()
        except NoDataProtectionOfficer as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Privacy notice version {notice.version} is published."))
        self.stdout.write("Public website: http://127.0.0.1:8000/site/")
