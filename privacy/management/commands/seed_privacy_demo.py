"""The privacy demo: privacy notice version 1 published (so the public website's forms are open), and
privacy requests for the DPO queue: every kind, spread over the last months, in the states a request
can be in (some overdue, some due this week), worked by the demo DPO, some awaiting the second demo DPO's
approval."""

import datetime
import random
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import Customer, User
from privacy.governance_demo import seed_governance
from privacy.models import BreachIncident, PrivacyRequest
from privacy.services.breaches import (
    breach_ico_decide,
    breach_incident_close,
    breach_incident_create,
    breach_subjects_decide,
)
from privacy.services.requests.identity import privacy_request_attest_identity
from privacy.services.requests.receiving import privacy_request_receive
from privacy.services.requests.workflow import (
    privacy_request_hold,
    privacy_request_start,
    privacy_request_submit_for_approval,
)
from privacy.website.demo import NoDataProtectionOfficer, seed_first_notice

DEMO_DPO = "dpo@fusion.example"
KINDS = [choice for choice, _label in PrivacyRequest.Kind.choices]
CHANNELS = [PrivacyRequest.Channel.EMAIL, PrivacyRequest.Channel.PHONE, PrivacyRequest.Channel.POST]


def seed_breaches(dpo: User) -> None:
    """The breach register: a closed UK GDPR incident found two days ago (the ICO notified within the 72
    hours, the customers told) and an open PECR one found this morning (call records of the telephony
    service: 72 hours too, PECR reg. 5A as amended), its clock running. The decisions are recorded now, as
    a DPO would record them."""
    now = timezone.now()
    closed = breach_incident_create(
        actor=dpo,
        title="Invoices emailed to the wrong customer",
        pecr=False,
        occurred_at=now - datetime.timedelta(hours=53),
        became_aware_at=now - datetime.timedelta(hours=50),
        description="A mail merge paired 14 invoices with the next account's contact address.",
        data_categories=["contact", "financial"],
        subject_categories=["customers", "contacts"],
        approximate_records=14,
        approximate_subjects=14,
        likely_consequences="Names, addresses and amounts owed seen by another business.",
        measures_taken="Recipients asked to delete the emails, and confirmed; the merge now checks pairs.",
        measures_proposed="A second person checks every bulk send.",
        handler=dpo,
    )
    breach_ico_decide(
        incident=closed,
        actor=dpo,
        decision=BreachIncident.IcoDecision.NOTIFY,
        reason="Financial details of identifiable people were disclosed.",
        notified_at=now,
        ico_reference="IC-DEMO-0001",
    )
    breach_subjects_decide(
        incident=closed,
        actor=dpo,
        decision=BreachIncident.SubjectsDecision.TELL,
        reason="Amounts owed were disclosed: the customers should watch for misuse.",
    )
    breach_incident_close(
        incident=closed, actor=dpo, note="All recipients confirmed deletion; ICO closed the case."
    )
    breach_incident_create(
        actor=dpo,
        title="Support laptop stolen",
        pecr=True,
        occurred_at=now - datetime.timedelta(hours=20),
        became_aware_at=now - datetime.timedelta(hours=6),
        description="A support agent's laptop was stolen from a car; it was locked, its disk encrypted. It "
        "held an export of call records from the telephony service (a PECR breach).",
        data_categories=["contact", "service"],
        subject_categories=["customers"],
        approximate_records=0,
        approximate_subjects=0,
        likely_consequences="Unlikely: the disk is encrypted and the session had timed out.",
        measures_taken="Sessions revoked, password and authenticator reset.",
        handler=dpo,
    )


class Command(BaseCommand):
    help = (
        "Publish the first privacy notice, complete the processors register, add impact assessments of the "
        "main activities, record demo breach incidents and create demo privacy requests (idempotent). Run "
        "after seed_demo."
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
        dpo = User.objects.filter(email=DEMO_DPO).first() or notice.published_by
        if dpo is not None:
            completed, added = seed_governance(actor=dpo)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Processors register: {completed} completed; impact assessments: {added} added."
                )
            )
        if dpo is not None and not BreachIncident.objects.exists():
            seed_breaches(dpo)
            self.stdout.write(self.style.SUCCESS("Breach register: one open incident, one closed."))
        if PrivacyRequest.objects.exists():
            self.stdout.write("Demo privacy requests already present; not adding more.")
            return
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
            elif number % 4 == 2:
                # Four eyes: the second demo DPO (dpo2@) approves and completes what this one prepared.
                privacy_request_submit_for_approval(
                    privacy_request=request, actor=dpo, reason="Ready: checked against the data map"
                )
        self.stdout.write(self.style.SUCCESS(f"Created {len(customers)} demo privacy requests."))
