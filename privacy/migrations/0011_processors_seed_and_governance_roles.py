"""The processors register starts as the fixed list the code held until now (privacy.data_map.PROCESSORS),
with the activities each served taken from the data map's activities then; contract dates were never
recorded, so they are left for the DPO to fill in (the register flags each processor without one).
Fixed values here: a migration does the same thing whatever the code says later.

The DPO and administrators see and edit the processors register and the impact assessments; only the
DPO signs an assessment off. Nobody else holds any of these permissions.
"""

from typing import Any

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

SEED = [
    {
        "key": "hosting",
        "name": "Cloud hosting provider (UK region)",
        "role": "processor",
        "service": "Runs the application, PostgreSQL, Redis and file storage",
        "data_description": "All categories, encrypted at rest",
        "data_categories": [
            "contact", "identity", "financial", "traffic", "service", "marketing", "recruitment", "account",
            "technical",
        ],
        "activities": [
            "Customer accounts and Site Details", "Billing and payment", "VAT records", "Logins and audit",
            "Data subject requests", "Public website",
        ],
        "location": "United Kingdom",
        "transfer_mechanism": "none",
    },
    {
        "key": "mail",
        "name": "Transactional mail carrier",
        "role": "processor",
        "service": "Sends bills, login and service messages",
        "data_description": "Contact email, names, invoice documents",
        "data_categories": ["contact", "identity", "financial"],
        "activities": [
            "Customer accounts and Site Details", "VAT records", "Data subject requests", "Public website",
        ],
        "location": "United Kingdom / EEA (adequacy regulations)",
        "transfer_mechanism": "adequacy",
    },
    {
        "key": "bacs",
        "name": "Bacs approved bureau",
        "role": "processor",
        "service": "Submits Direct Debit collections (Standard 18 files)",
        "data_description": "Account holder, sort code, account number, mandate reference, amounts",
        "data_categories": ["financial", "identity"],
        "activities": ["Billing and payment"],
        "location": "United Kingdom",
        "transfer_mechanism": "none",
    },
    {
        "key": "wholesale",
        "name": "Wholesale line provider (line gateway, accounts/gateways.py)",
        "role": "processor",
        "service": "Provides, modifies and ceases lines",
        "data_description": "Line numbers, installation addresses, order notes",
        "data_categories": ["service", "contact"],
        "activities": ["Customer accounts and Site Details"],
        "location": "United Kingdom",
        "transfer_mechanism": "none",
    },
    {
        "key": "hmrc",
        "name": "HM Revenue & Customs",
        "role": "recipient",
        "service": "VAT inspection on request",
        "data_description": "VAT invoices and credit notes",
        "data_categories": ["financial", "identity"],
        "activities": ["VAT records"],
        "location": "United Kingdom",
        "transfer_mechanism": "none",
    },
]

ROLE_PERMISSIONS = {
    "data protection officer": [
        "privacy.view_processor",
        "privacy.add_processor",
        "privacy.change_processor",
        "privacy.view_impactassessment",
        "privacy.add_impactassessment",
        "privacy.change_impactassessment",
        "privacy.signoff_impactassessment",
    ],
    "administrator": [
        "privacy.view_processor",
        "privacy.add_processor",
        "privacy.change_processor",
        "privacy.view_impactassessment",
        "privacy.add_impactassessment",
        "privacy.change_impactassessment",
    ],
}


def seed(apps: Any, schema_editor: Any) -> None:
    Processor = apps.get_model("privacy", "Processor")
    HistoricalProcessor = apps.get_model("privacy", "HistoricalProcessor")
    from django.utils import timezone

    now = timezone.now()
    for row in SEED:
        processor, created = Processor.objects.get_or_create(key=row["key"], defaults=row)
        if created:
            fields = {f.attname: getattr(processor, f.attname) for f in Processor._meta.concrete_fields}
            HistoricalProcessor.objects.create(
                **fields,
                history_date=now,
                history_type="+",
                history_change_reason="Seeded from the fixed list the code held (privacy.data_map.PROCESSORS)",
            )


def unseed(apps: Any, schema_editor: Any) -> None:
    apps.get_model("privacy", "Processor").objects.filter(key__in=[row["key"] for row in SEED]).delete()


class Migration(migrations.Migration):
    dependencies = [("privacy", "0010_governance_registers"), ("accounts", "0002_role_groups")]

    operations = [
        migrations.RunPython(seed, unseed),
        grant_role_permissions(ROLE_PERMISSIONS),
    ]
