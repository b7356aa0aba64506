"""Who imports Bacs reports (ARUDD, ADDACS): finance managers, who already record unpaid returns. Frozen
here; changes are new migrations."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

ROLE_PERMISSIONS = {
    "administrator": ["billing.view_bacsreportimport", "billing.view_directdebitcollection"],
    "finance manager": [
        "billing.view_bacsreportimport",
        "billing.add_bacsreportimport",
        "billing.view_directdebitcollection",
    ],
}


class Migration(migrations.Migration):
    dependencies = [("billing", "0015_direct_debit_collections_bacs_reports")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]
