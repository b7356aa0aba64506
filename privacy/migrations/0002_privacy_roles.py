"""What each job role may do in privacy (data map, erasure). Frozen here; changes are new migrations."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    "administrator": ["privacy.view_data_map", "privacy.preview_erasure", "privacy.view_erasurerecord"],
    "data protection officer": [
        "privacy.view_data_map",
        "privacy.preview_erasure",
        "privacy.erase_customer",
        "privacy.view_erasurerecord",
    ],
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
    dependencies = [("privacy", "0001_erasure_record"), ("accounts", "0002_role_groups")]

    operations = [migrations.RunPython(grant, revoke)]
