"""What each job role may do in billing. Frozen here; changes are new migrations."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

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


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role)
        codenames = {perm.split(".")[1] for perm in perms}
        found = list(Permission.objects.filter(content_type__app_label="billing", codename__in=codenames))
        missing = codenames - {permission.codename for permission in found}
        if missing:
            raise RuntimeError(f"Unknown billing permissions for {role}: {sorted(missing)}")
        group.permissions.add(*found)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        group.permissions.remove(*Permission.objects.filter(content_type__app_label="billing"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial"), ("accounts", "0002_role_groups")]

    operations = [migrations.RunPython(grant, revoke)]
