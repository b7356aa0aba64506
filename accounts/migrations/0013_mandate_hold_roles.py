"""Who clears a Direct Debit hold once the payer's dispute is resolved: finance managers (who import the
reports that hold) and administrators. Frozen here; changes are new migrations."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

ROLE_PERMISSIONS = {
    "administrator": ["accounts.clear_mandate_hold"],
    "finance manager": ["accounts.clear_mandate_hold"],
}


class Migration(migrations.Migration):
    dependencies = [("accounts", "0012_mandate_hold_and_superseded_instruction")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]
