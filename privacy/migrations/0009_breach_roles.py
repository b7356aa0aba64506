"""Who may see and keep the breach register: the DPO and administrators, nobody else. Nobody may delete
an incident (the model has no delete permission); reminders are read only."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

REGISTER = [
    "privacy.view_breachincident",
    "privacy.add_breachincident",
    "privacy.change_breachincident",
    "privacy.view_breachreminder",
]
ROLE_PERMISSIONS = {"data protection officer": REGISTER, "administrator": REGISTER}


class Migration(migrations.Migration):
    dependencies = [("privacy", "0008_breach_register"), ("accounts", "0002_role_groups")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]
