"""What each job role may do in billing. Frozen here; changes are new migrations."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

ALL = ("view", "add", "change", "delete")
SETUP_MODELS = ["tariff", "ratecard", "rate", "partnerbillingprofile"]


def _crud(*models: str, actions: tuple[str, ...] = ALL) -> list[str]:
    return [f"billing.{action}_{model}" for model in models for action in actions]


ROLE_PERMISSIONS = {
    "administrator": [
        *_crud(*SETUP_MODELS),
        *_crud("customertariff", "linetariff", "recurringcharge", "oneoffcharge"),
        *_crud("billrun", "invoice", "creditnote", "callrecord", "callimport", actions=("view",)),
        "billing.restrict_billrun",
        "billing.view_billing_data",
    ],
    "billing agent": [
        *_crud("tariff", "ratecard", "rate", "partnerbillingprofile", actions=("view",)),
        *_crud("customertariff", "linetariff", "recurringcharge", "oneoffcharge", actions=("view", "add", "change")),
        *_crud("callimport", actions=("view", "add")),
        "billing.view_callrecord",
        "billing.change_callrecord",
        *_crud("billrun", actions=("view", "add")),
        "billing.calculate_billrun",
        "billing.view_invoice",
        "billing.view_creditnote",
        "billing.view_billing_data",
    ],
    "finance manager": [
        *_crud("tariff", "ratecard", "rate", "partnerbillingprofile", actions=("view",)),
        "billing.view_billrun",
        "billing.approve_billrun",
        "billing.finalise_billrun",
        "billing.view_invoice",
        "billing.view_creditnote",
        "billing.add_creditnote",
        "billing.view_callrecord",
        "billing.view_billing_data",
    ],
    "data protection officer": [
        "billing.view_billrun",
        "billing.restrict_billrun",
        "billing.view_invoice",
        "billing.view_creditnote",
        "billing.view_billing_data",
    ],
    "customer": ["billing.view_invoice", "billing.view_creditnote"],
}


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial"), ("accounts", "0002_role_groups")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]
