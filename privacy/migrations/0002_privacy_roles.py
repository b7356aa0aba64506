"""What each job role may do in privacy. Frozen here; changes are new migrations.

The DPO works the request queue and approves, reads the data map, previews and carries out erasures,
exports a customer's data, drafts and publishes privacy notices and exports the mailing list;
administrators may look at requests, the data map, erasure previews and records, notices and submissions;
job applications are visible only with view_recruitment (DPO and administrator); support agents open
requests for the customers they can see (and see those); a portal user submits requests for, and exports,
its own account. Partner staff get no export permission: an export is the whole of a customer's personal
and billing data, so it is granted one user at a time if at all.
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
        "privacy.view_privacynotice",
        "privacy.add_privacynotice",
        "privacy.change_privacynotice",
        "privacy.publish_privacynotice",
        "privacy.view_websitesubmission",
        "privacy.view_recruitment",
        "privacy.export_mailing_list",
        "privacy.view_cookieconsentrecord",
    ],
    "administrator": [
        "privacy.view_privacyrequest",
        "privacy.view_data_map",
        "privacy.preview_erasure",
        "privacy.view_erasurerecord",
        "privacy.view_privacynotice",
        "privacy.view_websitesubmission",
        "privacy.view_recruitment",
        "privacy.view_cookieconsentrecord",
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
