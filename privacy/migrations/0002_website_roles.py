"""What each job role may do with the public website's data. Frozen here; changes are new migrations.

Job applications are visible only with ``view_recruitment`` (DPO and administrator); the DPO alone
drafts and publishes privacy notices and exports the mailing list."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    "data protection officer": [
        "view_privacynotice",
        "add_privacynotice",
        "change_privacynotice",
        "publish_privacynotice",
        "view_websitesubmission",
        "view_recruitment",
        "export_mailing_list",
        "view_cookieconsentrecord",
    ],
    "administrator": [
        "view_privacynotice",
        "view_websitesubmission",
        "view_recruitment",
        "view_cookieconsentrecord",
    ],
}


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role)
        found = list(Permission.objects.filter(content_type__app_label="privacy", codename__in=codenames))
        missing = set(codenames) - {permission.codename for permission in found}
        if missing:
            raise RuntimeError(f"Unknown privacy permissions for {role}: {sorted(missing)}")
        group.permissions.add(*found)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, codenames in ROLE_PERMISSIONS.items():
        group = Group.objects.filter(name=role).first()
        if group is not None:
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="privacy", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [("privacy", "0001_website"), ("accounts", "0002_role_groups")]

    operations = [migrations.RunPython(grant, revoke)]
