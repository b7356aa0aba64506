"""The demo the README's run command shows: billing on top of the accounts demo."""

import io

from django.core.management import call_command

from billing import selectors
from billing.models import BillRun, CallRecord, Invoice, Payment, RecurringCharge
from billing.services.ledger import invoice_outstanding


def test_seed_billing_demo_gives_a_finalised_and_a_calculated_run_per_partner(db):
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("seed_demo", customers=12, partners=2, **quiet)
    call_command("seed_billing_demo", **quiet)

    runs = BillRun.objects.order_by("partner_id", "period_start")
    assert [run.status for run in runs] == ["finalised", "calculated"] * 2
    assert RecurringCharge.objects.count() > 0
    assert CallRecord.objects.filter(status=CallRecord.Status.RATED).exists()
    finalised = Invoice.objects.filter(status=Invoice.Status.FINALISED)
    assert finalised.exists() and all(invoice.gross == invoice.net + invoice.vat for invoice in finalised)

    # Most invoices of the finalised runs are paid, a few in part, the last of each partner's not at all.
    assert Payment.objects.exists()
    outstanding = [invoice_outstanding(invoice) for invoice in finalised]
    assert any(amount == 0 for amount in outstanding)
    assert any(0 < amount < invoice.gross for amount, invoice in zip(outstanding, finalised, strict=True))
    assert any(amount == invoice.gross for amount, invoice in zip(outstanding, finalised, strict=True))
    debtor = next(invoice.customer for amount, invoice in zip(outstanding, finalised, strict=True) if amount)
    assert selectors.customer_balance(debtor) > 0

    again = io.StringIO()
    call_command("seed_billing_demo", stdout=again, stderr=io.StringIO())
    assert "already present" in again.getvalue()
    assert BillRun.objects.count() == 4
