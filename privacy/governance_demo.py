"""The governance demo: the processors register completed (contract and review dates, sub-processors,
assurances) and impact assessments of the main activities of the data map, three signed off (one of them
due for review soon) and the public website's left in draft. Idempotent: a processor that already has a
contract date, or an activity that already has an assessment, is left as it is. Written through the
services, as the demo DPO, so history and audit events are what the pages would make."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils import timezone

from accounts.models import User
from privacy.models import ImpactAssessment, Processor
from privacy.services import governance as services

# key -> (months since the contract, sub-processors, security assurances)
PROCESSOR_DETAILS: dict[str, tuple[int, str, str]] = {
    "hosting": (
        20,
        "Data centre operator (London and Manchester regions)",
        "ISO/IEC 27001 certified; SOC 2 Type II report reviewed yearly; Cyber Essentials Plus",
    ),
    "mail": (
        14,
        "Its EEA delivery infrastructure (Ireland)",
        "ISO/IEC 27001; TLS for every delivery; messages deleted after 30 days",
    ),
    "bacs": (30, "None", "Bacs approved bureau (Bacs Payment Schemes Ltd accreditation); ISO/IEC 27001"),
    "wholesale": (
        40,
        "Field engineers' contractor for installations",
        "Ofcom General Conditions; order data over an authenticated API only",
    ),
}


@dataclass(frozen=True)
class DemoAssessment:
    activity: str
    screening: tuple[str, ...]
    description: str
    necessity: str
    dpo_advice: str
    risks: tuple[tuple[str, int, int, str, int, int], ...]
    review_in_days: int | None  # None: left in draft


ASSESSMENTS = (
    DemoAssessment(
        "Customer accounts and Site Details",
        ("data_matching",),
        "Accounts, sites, contacts and lines of the partners' end customers, kept to provide the service; "
        "staff of each partner see only their own customers, masked until revealed.",
        "Only what the contract needs; kept a month after the contract ends unless a legal reason keeps it.",
        "Proceed. Keep the yearly GDPR training of staff who reveal personal data current.",
        (
            (
                "Another partner's staff read a customer's details",
                1,
                2,
                "Object permissions per partner",
                1,
                2,
            ),
            ("Contact details disclosed by a careless reveal", 2, 2, "Masking, reveals logged, alerts", 1, 2),
        ),
        365,
    ),
    DemoAssessment(
        "Billing and payment",
        ("data_matching", "tracking"),
        "Call records rated into bills; Direct Debit collected through a Bacs bureau.",
        "Call records are needed to bill; kept only for the dispute period after billing.",
        "Proceed; review the Bacs bureau's contract each year.",
        (
            ("Bank details disclosed in a breach", 2, 3, "Encrypted at rest, reveals logged", 1, 3),
            ("Calls reveal who a customer rings", 2, 2, "Traffic data masked, access logged", 1, 2),
            ("Wrong customer billed", 2, 1, "Four-eyes approval of bill runs", 1, 1),
        ),
        20,  # due soon: the review reminder goes out
    ),
    DemoAssessment(
        "Logins and audit",
        (),
        "Staff and portal logins with two factors; an audit trail of who did and read what.",
        "Needed to secure the service and show accountability; logs kept for a fixed period.",
        "Proceed.",
        (("Audit trail altered to hide a misuse", 1, 2, "Keyed hash chain, signed checkpoints", 1, 1),),
        365,
    ),
    DemoAssessment(
        "Public website",
        ("invisible_processing",),
        "Enquiries, mailing list and job applications, each with consent.",
        "",
        "",
        (("CVs kept after the job is filled", 2, 2, "Six-month retention policy", 1, 2),),
        None,
    ),
)


def seed_governance(*, actor: User) -> tuple[int, int]:
    """Complete the seeded processors and add the demo assessments: (processors completed, assessments
    added)."""
    today = timezone.localdate()
    completed = 0
    for key, (months_ago, sub_processors, assurances) in PROCESSOR_DETAILS.items():
        processor = Processor.objects.filter(key=key, contract_date__isnull=True).first()
        if processor is None:
            continue
        contract = today - datetime.timedelta(days=30 * months_ago)
        services.processor_update(
            processor=processor,
            actor=actor,
            reason="Demo: contract details recorded",
            contract_date=contract,
            review_date=contract + datetime.timedelta(days=730),
            sub_processors=sub_processors,
            security_assurances=assurances,
        )
        completed += 1
    added = 0
    for item in ASSESSMENTS:
        if ImpactAssessment.objects.filter(activity=item.activity).exists():
            continue
        assessment = services.assessment_create(
            activity=item.activity,
            actor=actor,
            screening=list(item.screening),
            description=item.description,
            necessity=item.necessity,
            dpo_advice=item.dpo_advice,
        )
        for description, likelihood, severity, measures, residual_likelihood, residual_severity in item.risks:
            services.assessment_risk_save(
                assessment=assessment,
                actor=actor,
                description=description,
                likelihood=likelihood,
                severity=severity,
                measures=measures,
                residual_likelihood=residual_likelihood,
                residual_severity=residual_severity,
            )
        if item.review_in_days is not None:
            services.assessment_sign_off(
                assessment=assessment,
                actor=actor,
                review_on=today + datetime.timedelta(days=item.review_in_days),
            )
        added += 1
    return completed, added
