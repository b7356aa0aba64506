"""Cache each invoice's outstanding amount and each payment's unallocated credit beside the row, filled
here from the ledger entries and allocations they are derived from (``billing.services.ledger`` keeps them
from now on), with partial indexes on the open ones."""

from decimal import Decimal

from django.conf import settings
from django.db import migrations, models
from django.db.models import Case, Exists, OuterRef, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce, Round

MONEY = models.DecimalField(max_digits=14, decimal_places=2)
ZERO = Value(Decimal("0.00"))


def _sum(queryset, group_by):
    total = queryset.order_by().values(group_by).annotate(total=Sum("amount")).values("total")[:1]
    return Coalesce(Subquery(total, output_field=MONEY), ZERO, output_field=MONEY)


def fill(apps, schema_editor):
    Invoice = apps.get_model("billing", "Invoice")
    Payment = apps.get_model("billing", "Payment")
    LedgerEntry = apps.get_model("billing", "LedgerEntry")
    PaymentAllocation = apps.get_model("billing", "PaymentAllocation")
    charged = _sum(LedgerEntry.objects.filter(invoice=OuterRef("pk")), "invoice")
    settled = _sum(PaymentAllocation.objects.filter(invoice=OuterRef("pk")), "invoice")
    Invoice.objects.filter(status="finalised").update(amount_outstanding=Round(charged - settled, 2))
    allocated = _sum(PaymentAllocation.objects.filter(payment=OuterRef("pk")), "payment")
    refunded = _sum(LedgerEntry.objects.filter(payment=OuterRef("pk"), kind="refund"), "payment")
    returned = Exists(LedgerEntry.objects.filter(payment=OuterRef("pk"), kind="unpaid_reversal"))
    Payment.objects.update(
        amount_unallocated=Case(
            When(returned, then=ZERO),
            default=Round(models.F("amount") - allocated - refunded, 2),
            output_field=MONEY,
        )
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0010_mandates_with_past_collections_active"),
        ("billing", "0016_bacs_report_roles"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="invoice",
            name="amount_outstanding",
            field=models.DecimalField(
                db_default=Decimal("0"), decimal_places=2, default=Decimal("0"), editable=False, max_digits=12
            ),
        ),
        migrations.AddField(
            model_name="payment",
            name="amount_unallocated",
            field=models.DecimalField(
                db_default=Decimal("0"), decimal_places=2, default=Decimal("0"), editable=False, max_digits=12
            ),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                condition=models.Q(("amount_outstanding__gt", 0)),
                fields=["customer", "issue_date", "id"],
                name="invoice_open_by_customer",
            ),
        ),
        migrations.AddIndex(
            model_name="invoice",
            index=models.Index(
                condition=models.Q(("amount_outstanding__gt", 0)),
                fields=["partner", "issue_date"],
                name="invoice_open_by_partner",
            ),
        ),
        migrations.AddIndex(
            model_name="payment",
            index=models.Index(
                condition=models.Q(("amount_unallocated__gt", 0)),
                fields=["customer", "received_on", "id"],
                name="payment_with_credit",
            ),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop, elidable=True),
    ]
