"""Who may request and download data portability exports. Frozen here; changes are new migrations.

The DPO works every partner's privacy requests; a portal user may export its own account only (the
object permission on its customer limits it). Partner staff get no export permission by default: an
export is the whole of a customer's personal and billing data, so it is granted individually if at all.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    "data protection officer": ["privacy.view_dataexport", "privacy.add_dataexport"],
    "customer": ["privacy.view_dataexport", "privacy.add_dataexport"],
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
    exports = Permission.objects.filter(content_type__app_label="privacy", codename__endswith="_dataexport")
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        group.permissions.remove(*exports)


class Migration(migrations.Migration):
    dependencies = [("privacy", "0001_initial"), ("accounts", "0002_role_groups")]

    operations = [migrations.RunPython(grant, revoke)]
