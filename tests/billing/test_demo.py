"""The demo the README's run command shows: billing on top of the accounts demo."""

import io

from django.core.management import call_command
from django.utils import timezone

from accounts.models import ProvisioningOrder, Role, User
from billing import selectors
from billing.models import (
    BacsReportImport,
    BillRun,
    CallRecord,
    DirectDebitCollection,
    DunningAction,
    Invoice,
    LedgerEntry,
    Payment,
    Product,
    RecurringCharge,
)
from billing.services.ledger import invoice_outstanding


def test_seed_billing_demo_gives_finalised_runs_and_a_calculated_run_per_partner(db):
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("seed_demo", customers=12, partners=2, **quiet)
    call_command("seed_billing_demo", **quiet)

    runs = BillRun.objects.order_by("partner_id", "period_start")
    assert [run.status for run in runs] == ["finalised", "finalised", "calculated"] * 2
    assert RecurringCharge.objects.count() > 0
    # Each partner's catalogue, so onboarding offers rental products; one has a price rise next month.
    assert sorted(Product.objects.filter(partner=runs[0].partner).values_list("name", flat=True)) == [
        "Analogue line rental",
        "SIP channel",
    ]
    assert Product.objects.get(partner=runs[0].partner, name="Analogue line rental").prices.count() == 2
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

    # Every payments page has something on it: Direct Debit payments, one returned unpaid by an imported
    # ARUDD (its payment reversed on the ledger), a debtor over 90 days overdue, the dunning steps taken.
    today = timezone.localdate()
    assert Payment.objects.filter(method=Payment.Method.DIRECT_DEBIT).count() >= 2
    reports = BacsReportImport.objects.filter(kind=BacsReportImport.Kind.ARUDD)
    assert reports.count() == 2 and all(report.applied == 1 for report in reports)
    returned = DirectDebitCollection.objects.filter(outcome=DirectDebitCollection.Outcome.RETURNED)
    assert returned.count() == 2
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.UNPAID_REVERSAL).count() == 2
    finance = User.objects.filter(groups__name=Role.FINANCE_MANAGER, partner__isnull=False).first()
    aged = selectors.aged_debt(finance, as_of=today)
    assert [row.buckets["over_90"] > 0 for row in aged] == [True]
    assert DunningAction.objects.filter(outcome=DunningAction.Outcome.SENT).exists()
    assert DunningAction.objects.filter(kind="suspend_outgoing_calls").exclude(outcome="no_lines").exists()
    assert ProvisioningOrder.objects.filter(notes__startswith="Dunning").exists()

    again = io.StringIO()
    call_command("seed_billing_demo", stdout=again, stderr=io.StringIO())
    assert "already present" in again.getvalue()
    assert BillRun.objects.count() == 6
