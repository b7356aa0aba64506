"""Every existing partner starts with the default dunning steps (a reminder at 7 days overdue, a final
notice at 14, suspension of outgoing calls at 28); partners made later get them from the dunning job or
the steps page (``billing.services.dunning.dunning_steps_ensure``). And who may see and change the steps:
finance managers change them; billing agents and administrators see them. Frozen here; changes are new
migrations."""

import datetime

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

# As billing.dunning_models.DEFAULT_DUNNING_STEPS was when this was written.
DEFAULTS = ((7, "reminder_email"), (14, "final_notice_email"), (28, "suspend_outgoing_calls"))
EFFECTIVE_FROM = datetime.date(2000, 1, 1)

ROLE_PERMISSIONS = {
    "administrator": ["billing.view_dunningstep", "billing.view_dunningaction"],
    "billing agent": ["billing.view_dunningstep", "billing.view_dunningaction"],
    "finance manager": [
        "billing.view_dunningstep",
        "billing.add_dunningstep",
        "billing.change_dunningstep",
        "billing.view_dunningaction",
    ],
}


def seed(apps, schema_editor):
    Partner = apps.get_model("accounts", "Partner")
    DunningStep = apps.get_model("billing", "DunningStep")
    has_steps = DunningStep.objects.values("partner_id")
    DunningStep.objects.bulk_create(
        DunningStep(partner_id=partner_id, days_overdue=days, kind=kind, effective_from=EFFECTIVE_FROM)
        for partner_id in Partner.objects.exclude(pk__in=has_steps).values_list("pk", flat=True)
        for days, kind in DEFAULTS
    )


def unseed(apps, schema_editor):
    DunningStep = apps.get_model("billing", "DunningStep")
    DunningStep.objects.filter(actions__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0013_dunning_steps_and_actions")]

    operations = [
        migrations.RunPython(seed, unseed),
        grant_role_permissions(ROLE_PERMISSIONS),
    ]
