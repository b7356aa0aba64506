"""The retention policy of the ledger's money on no invoice (billing.personal_data.LEDGER_RECORDS): account
credit, its refunds and returns, and adjustments go once all of a customer's are 6 years old and sum to
nothing. Written out rather than imported: a migration must do the same thing whatever the data map says
later (tests/privacy/test_retention.py checks the two agree)."""

from django.db import migrations

LEDGER = {
    "key": "ledger",
    "title": "Ledger entries on no invoice (account credit, refunds, adjustments)",
    "anchor": "created",
    "months": 72,
    "basis": (
        "Legal obligation (UK GDPR Art. 6(1)(c)): accounting records of money received and paid are kept 6 "
        "years (Companies Act 2006 ss.386-388; HMRC, VAT Notice 700/21). Entries that belong to an invoice "
        "go with it (policy invoices); the others go once all of a customer's are 6 years old and sum to "
        "nothing, so no balance changes."
    ),
}


def create_policy(apps, schema_editor):
    RetentionPolicy = apps.get_model("privacy", "RetentionPolicy")
    values = dict(LEDGER)
    RetentionPolicy.objects.get_or_create(key=values.pop("key"), defaults=values)


def remove_policy(apps, schema_editor):
    apps.get_model("privacy", "RetentionPolicy").objects.filter(key=LEDGER["key"]).delete()


class Migration(migrations.Migration):
    dependencies = [("privacy", "0006_direct_debit_file_retention")]

    operations = [migrations.RunPython(create_policy, remove_policy)]
