"""Who sees what a Bacs report could not apply (its line errors, shown with the report in the admin): those
who see the reports. Frozen here; changes are new migrations."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

ROLE_PERMISSIONS = {
    "administrator": ["billing.view_bacsreportimporterror"],
    "finance manager": ["billing.view_bacsreportimporterror"],
}


class Migration(migrations.Migration):
    dependencies = [("billing", "0017_cached_outstanding_and_credit")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]
