"""Claims' invoice index: BRIN on PostgreSQL, a B-tree elsewhere (see BilledCall.invoice)."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "billedcall_invoice"


def create_index(apps, schema_editor):
    method = "USING brin " if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(f"CREATE INDEX {INDEX} ON billing_billedcall {method}(invoice_id)")


def drop_index(apps, schema_editor):
    schema_editor.execute(f"DROP INDEX {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_invoice_snapshots_aes_gcm"),
    ]

    operations = [
        migrations.AlterField(
            model_name="billedcall",
            name="invoice",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="billed_calls",
                to="billing.invoice",
            ),
        ),
        migrations.RunPython(create_index, drop_index),
    ]
