"""The demo the README's run command shows: billing on top of the accounts demo."""

import io

from django.core.management import call_command

from billing.models import BillRun, CallRecord, Invoice, RecurringCharge


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

    again = io.StringIO()
    call_command("seed_billing_demo", stdout=again, stderr=io.StringIO())
    assert "already present" in again.getvalue()
    assert BillRun.objects.count() == 4
