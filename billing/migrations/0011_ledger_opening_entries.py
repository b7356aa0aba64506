"""Post the ledger entry of every finalised invoice and every credit note issued before the ledger existed,
so each account's balance starts from what it was billed. Invoices of erased-and-detached accounts (no
customer) have no account to post to and are left out. Reversing removes exactly these entries."""

from typing import Any

from django.db import migrations

OPENING_REASON = "Posted when the ledger was introduced (migration 0011)."
BATCH = 2000


def post_opening_entries(apps: Any, schema_editor: Any) -> None:
    Invoice = apps.get_model("billing", "Invoice")
    CreditNote = apps.get_model("billing", "CreditNote")
    LedgerEntry = apps.get_model("billing", "LedgerEntry")
    invoices = Invoice.objects.filter(status="finalised", customer__isnull=False, gross__gt=0)
    entries = (
        LedgerEntry(
            customer_id=customer_id,
            kind="invoice",
            amount=gross,
            effective_on=issue_date,
            invoice_id=pk,
            reason=OPENING_REASON,
        )
        for pk, customer_id, gross, issue_date in invoices.values_list("pk", "customer_id", "gross", "issue_date")
        .order_by("pk")
        .iterator(chunk_size=BATCH)
    )
    LedgerEntry.objects.bulk_create(entries, batch_size=BATCH)
    notes = CreditNote.objects.filter(invoice__customer__isnull=False, gross__gt=0)
    note_entries = (
        LedgerEntry(
            customer_id=customer_id,
            kind="credit_note",
            amount=-gross,
            effective_on=issue_date,
            invoice_id=invoice_id,
            credit_note_id=pk,
            reason=OPENING_REASON,
        )
        for pk, invoice_id, customer_id, gross, issue_date in notes.values_list(
            "pk", "invoice_id", "invoice__customer_id", "gross", "issue_date"
        )
        .order_by("pk")
        .iterator(chunk_size=BATCH)
    )
    LedgerEntry.objects.bulk_create(note_entries, batch_size=BATCH)


def remove_opening_entries(apps: Any, schema_editor: Any) -> None:
    LedgerEntry = apps.get_model("billing", "LedgerEntry")
    LedgerEntry.objects.filter(kind__in=["invoice", "credit_note"], reason=OPENING_REASON)._raw_delete(
        schema_editor.connection.alias
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0010_ledger")]

    operations = [migrations.RunPython(post_opening_entries, remove_opening_entries)]
