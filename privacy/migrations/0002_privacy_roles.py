"""What each job role may do in privacy. Frozen here; changes are new migrations.

The DPO works the request queue and approves, reads the data map, previews and carries out erasures;
administrators may look at requests, the data map, erasure previews and records; support agents open
requests for the customers they can see (and see those); a portal user submits requests for its own account.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    "data protection officer": [
        "privacy.view_privacyrequest",
        "privacy.add_privacyrequest",
        "privacy.change_privacyrequest",
        "privacy.approve_privacyrequest",
        "privacy.view_data_map",
        "privacy.preview_erasure",
        "privacy.erase_customer",
        "privacy.view_erasurerecord",
        "privacy.view_dataexport",
        "privacy.add_dataexport",
    ],
    "administrator": [
        "privacy.view_privacyrequest",
        "privacy.view_data_map",
        "privacy.preview_erasure",
        "privacy.view_erasurerecord",
    ],
    "support agent": ["privacy.view_privacyrequest", "privacy.add_privacyrequest"],
    # A portal user exports its own account only (the object permission on its customer limits it).
    "customer": ["privacy.add_privacyrequest", "privacy.view_dataexport", "privacy.add_dataexport"],
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
        found = list(Permission.objects.filter(content_type__app_label="privacy", codename__in=codenames))
        missing = codenames - {permission.codename for permission in found}
        if missing:
            raise RuntimeError(f"Unknown privacy permissions for {role}: {sorted(missing)}")
        group.permissions.add(*found)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        codenames = [perm.split(".")[1] for perm in perms]
        for group in Group.objects.filter(name=role):
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="privacy", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [("privacy", "0001_initial"), ("accounts", "0002_role_groups")]

    operations = [migrations.RunPython(grant, revoke)]
