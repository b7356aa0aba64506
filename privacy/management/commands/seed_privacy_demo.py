"""The privacy demo: privacy notice version 1 published (so the public website's forms are open), and
privacy requests for the DPO queue: every kind, spread over the last months, in the states a request
can be in (some overdue, some due this week), worked by the demo DPO."""

import datetime
import random
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import Customer, User
from privacy.governance_demo import seed_governance
from privacy.models import PrivacyRequest
from privacy.services.requests.identity import privacy_request_attest_identity
from privacy.services.requests.receiving import privacy_request_receive
from privacy.services.requests.workflow import privacy_request_hold, privacy_request_start
from privacy.website.demo import NoDataProtectionOfficer, seed_first_notice

DEMO_DPO = "dpo@fusion.example"
KINDS = [choice for choice, _label in PrivacyRequest.Kind.choices]
CHANNELS = [PrivacyRequest.Channel.EMAIL, PrivacyRequest.Channel.PHONE, PrivacyRequest.Channel.POST]


class Command(BaseCommand):
    help = (
        "Publish the first privacy notice, complete the processors register, add impact assessments of the "
        "main activities and create demo privacy requests (idempotent). Run after seed_demo."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=24)
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            notice = seed_first_notice()
        except NoDataProtectionOfficer as exc:
            raise CommandError(f"{exc} Run seed_demo first: the demo DPO works the requests.") from exc
        self.stdout.write(self.style.SUCCESS(f"Privacy notice version {notice.version} is published."))
        self.stdout.write("Public website: http://127.0.0.1:8000/site/")
        governor = User.objects.filter(email=DEMO_DPO).first() or notice.published_by
        if governor is not None:
            completed, added = seed_governance(actor=governor)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Processors register: {completed} completed; impact assessments: {added} added."
                )
            )
        if PrivacyRequest.objects.exists():
            self.stdout.write("Demo privacy requests already present; not adding more.")
            return
        dpo = User.objects.filter(email=DEMO_DPO).first() or notice.published_by
        if dpo is None:
            raise CommandError("Run seed_demo first: the demo DPO works the requests.")
        rng = random.Random(options["seed"])
        customers = list(Customer.objects.order_by("pk")[: options["requests"]])
        today = timezone.localdate()
        for number, customer in enumerate(customers):
            kind = KINDS[number % len(KINDS)]
            request = privacy_request_receive(
                kind=kind,
                channel=rng.choice(CHANNELS),
                details=f"Demo {kind} request.",
                actor=dpo,
                customer=customer,
                received_on=today - datetime.timedelta(days=rng.randrange(0, 150)),
                objection_scope=(
                    PrivacyRequest.ObjectionScope.MARKETING if kind == PrivacyRequest.Kind.OBJECTION else ""
                ),
            )
            # Some are still new; the rest are verified and worked, one in three put on hold.
            if number % 4 == 0:
                continue
            privacy_request_attest_identity(
                privacy_request=request, actor=dpo, reason="Known to the account manager (demo)"
            )
            privacy_request_start(privacy_request=request, actor=dpo)
            if number % 3 == 0:
                privacy_request_hold(
                    privacy_request=request, actor=dpo, reason="Asked the subject which line they mean"
                )
        self.stdout.write(self.style.SUCCESS(f"Created {len(customers)} demo privacy requests."))
