"""Job roles as groups with their model permissions.

The lists are frozen here on purpose: a later change of a role's permissions is a new migration, so
every database can say when a role gained or lost a permission.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ACCOUNTS_MODELS = ["customer", "site", "contact", "line", "paymentdetails", "provisioningorder"]


def _crud(*models: str, actions: tuple[str, ...] = ("view", "add", "change", "delete")) -> list[str]:
    return [f"accounts.{action}_{model}" for model in models for action in actions]


ROLE_PERMISSIONS = {
    # Nobody deletes a customer from the admin: customer data goes through erasure or retention,
    # which keep what the law requires and leave a record.
    "administrator": [
        *[perm for perm in _crud(*ACCOUNTS_MODELS, "partner", "user") if perm != "accounts.delete_customer"],
        "accounts.view_accesslog",
        "accounts.view_all_customers",
        "accounts.reveal_personal_data",
        "accounts.reveal_paymentdetails",
        "auth.view_group",
        "auth.change_group",
        "auth.view_permission",
    ],
    "billing agent": [
        *_crud("customer", "site", "contact", "line", "paymentdetails", actions=("view", "add", "change")),
        "accounts.view_provisioningorder",
        "accounts.add_provisioningorder",
        "accounts.reveal_personal_data",
        "accounts.reveal_paymentdetails",
    ],
    "support agent": [
        *_crud("customer", "site", "contact", "line", "provisioningorder", actions=("view",)),
        "accounts.change_site",
        "accounts.change_contact",
        "accounts.reveal_personal_data",
    ],
    "finance manager": [
        *_crud(
            "customer", "site", "contact", "line", "paymentdetails", "provisioningorder", actions=("view",)
        ),
        "accounts.change_paymentdetails",
        "accounts.reveal_personal_data",
        "accounts.reveal_paymentdetails",
    ],
    "data protection officer": [
        *_crud(*ACCOUNTS_MODELS, actions=("view",)),
        "accounts.change_site",
        "accounts.change_contact",
        "accounts.view_accesslog",
        "accounts.view_all_customers",
        "accounts.reveal_personal_data",
    ],
    "customer": [
        *_crud(
            "customer", "site", "contact", "line", "paymentdetails", "provisioningorder", actions=("view",)
        ),
        "accounts.change_site",
        "accounts.change_contact",
    ],
}


def create_role_groups(apps, schema_editor):
    # Permissions are normally created after all migrations; the groups need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            wanted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(wanted)


def remove_role_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
