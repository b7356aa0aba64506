"""What each job role may do with payments and the ledger. Frozen here; changes are new migrations.

Billing agents record payments, move them between invoices and ask for write-offs; finance managers do
that too, and alone refund, post adjustments, record unpaid returns and approve write-offs (never their
own: the service and a CHECK refuse it). Customers see their own account through the portal."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

LEDGER_VIEW = ["billing.view_payment", "billing.view_ledgerentry", "billing.view_paymentallocation"]

ROLE_PERMISSIONS = {
    "administrator": [*LEDGER_VIEW, "billing.view_writeoff"],
    "billing agent": [
        *LEDGER_VIEW,
        "billing.add_payment",
        "billing.reallocate_payment",
        "billing.view_writeoff",
        "billing.add_writeoff",
    ],
    "finance manager": [
        *LEDGER_VIEW,
        "billing.add_payment",
        "billing.reallocate_payment",
        "billing.refund_payment",
        "billing.reverse_payment",
        "billing.post_adjustment",
        "billing.view_writeoff",
        "billing.add_writeoff",
        "billing.approve_writeoff",
    ],
    "data protection officer": [*LEDGER_VIEW],
    "customer": ["billing.view_ledgerentry"],
}


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_ledger_opening_entries")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]
