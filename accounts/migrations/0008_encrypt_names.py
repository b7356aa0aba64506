"""Customer names encrypted at rest, in the live and the history table, and names searchable by word.

The columns become text (ciphertext is longer than the old 200 characters) before the data step rewrites
each plaintext name as ciphertext with raw SQL: the migration's model already reads the column as
ciphertext and would refuse the plaintext. Then every customer's and contact's name is indexed word by
word in NameToken. Rows already holding ciphertext are left as they are, so a rerun is harmless.
"""

from collections.abc import Callable

import django.db.models.deletion
from django.db import migrations, models

import fusion_site.fields

CHUNK = 1000
TABLES = (("accounts_customer", "id"), ("accounts_historicalcustomer", "history_id"))


def _is_ciphertext(value: str) -> bool:
    from fusion_site import crypto

    try:
        crypto.split_ciphertext(value)
    except crypto.DecryptionError:
        return False
    return True


def _rewrite_names(schema_editor, convert: Callable[[str], str | None]) -> None:
    """Pass every name of both tables through ``convert`` (None: leave it), a chunk of rows at a time."""
    connection = schema_editor.connection
    quote = connection.ops.quote_name
    for table, pk in TABLES:
        after = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT {quote(pk)}, {quote('name')} FROM {quote(table)} "  # noqa: S608 - quoted names
                    f"WHERE {quote(pk)} > %s ORDER BY {quote(pk)} LIMIT %s",
                    [after, CHUNK],
                )
                rows = cursor.fetchall()
                if not rows:
                    break
                changes = [(new, row_pk) for row_pk, name in rows if (new := convert(name)) is not None]
                cursor.executemany(
                    f"UPDATE {quote(table)} SET {quote('name')} = %s WHERE {quote(pk)} = %s",  # noqa: S608
                    changes,
                )
            after = rows[-1][0]


def encrypt_names_and_index_words(apps, schema_editor) -> None:
    from fusion_site import crypto

    _rewrite_names(schema_editor, lambda name: None if _is_ciphertext(name) else crypto.encrypt(name))
    # The live normaliser and key, not a copy: the index must match what searches compute from now on.
    from accounts.models import name_index_digests

    Customer = apps.get_model("accounts", "Customer")
    Contact = apps.get_model("accounts", "Contact")
    NameToken = apps.get_model("accounts", "NameToken")
    NameToken.objects.all().delete()
    customers = Customer.objects.filter(erased_at__isnull=True).values_list("pk", "pk", "name")
    contacts = Contact.objects.values_list("customer_id", "pk", "name")
    for owners, contact_of in ((customers, lambda pk: None), (contacts, lambda pk: pk)):
        batch = []
        for customer_id, pk, name in owners.iterator(chunk_size=CHUNK):
            batch += [
                NameToken(customer_id=customer_id, contact_id=contact_of(pk), name_index=digest)
                for digest in name_index_digests(name)
            ]
            if len(batch) >= CHUNK:
                NameToken.objects.bulk_create(batch)
                batch = []
        NameToken.objects.bulk_create(batch)


def decrypt_names(apps, schema_editor) -> None:
    from fusion_site import crypto

    _rewrite_names(schema_editor, lambda name: crypto.decrypt(name) if _is_ciphertext(name) else None)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_audit_key_id"),
    ]

    operations = [
        migrations.AlterField(
            model_name="customer",
            name="name",
            field=fusion_site.fields.EncryptedTextField(help_text="The account's trading name."),
        ),
        migrations.AlterField(
            model_name="historicalcustomer",
            name="name",
            field=fusion_site.fields.EncryptedTextField(help_text="The account's trading name."),
        ),
        migrations.CreateModel(
            name="NameToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name_index", models.CharField(editable=False, max_length=64)),
                (
                    "contact",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="name_tokens",
                        to="accounts.contact",
                    ),
                ),
                (
                    "customer",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="name_tokens",
                        to="accounts.customer",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["name_index", "customer"], name="nametoken_index_customer")],
            },
        ),
        migrations.RunPython(encrypt_names_and_index_words, decrypt_names),
    ]
