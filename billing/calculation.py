"""Calculating a bill run's draft invoices, one chunk of customers at a time.

A chunk is one transaction: it deletes the run's existing drafts for its customers (recalculation
replaces, never duplicates), records the customers it skips and why, creates the invoices with their
legal snapshots, claims the customers' unbilled rated calls and one-off charges (UPDATE ... FROM), sums
usage by band in SQL, prorates rentals, and totals each invoice. Money rules: fusion_site.money.
"""

import datetime
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from accounts.models import Customer, User
from billing.models import (
    Band,
    BillRun,
    BillRunChunk,
    BillRunException,
    Invoice,
    InvoiceLine,
    OneOffCharge,
    PartnerBillingProfile,
    RecurringCharge,
)
from fusion_site.money import COST_UNITS_PER_POUND, STANDARD_VAT_RATE, to_money, vat_on

CHUNK_SIZE = 500


def customers_in_scope(bill_run: BillRun) -> QuerySet[Customer]:
    """The partner's customers whose contract touches the usage period or the month billed in advance."""
    _rental_start, rental_end = bill_run.rental_period
    return (
        Customer.objects.filter(partner_id=bill_run.partner_id, contract_start__lte=rental_end)
        .exclude(status=Customer.Status.PROSPECT)
        .filter(Q(contract_end__isnull=True) | Q(contract_end__gte=bill_run.period_start))
    )


def _overlap_days(
    start: datetime.date, end: datetime.date | None, lo: datetime.date, hi: datetime.date
) -> int:
    first, last = max(start, lo), min(end or hi, hi)
    return (last - first).days + 1 if last >= first else 0


@dataclass(frozen=True)
class ProratedCharge:
    description: str
    days: int
    amount: Decimal


def prorate(
    *,
    monthly_amount: Decimal,
    description: str,
    start: datetime.date,
    end: datetime.date | None,
    period: tuple[datetime.date, datetime.date],
    label: str,
) -> ProratedCharge | None:
    """A monthly amount for the days of ``period`` that [start, end] covers, to the penny, half-up."""
    lo, hi = period
    days = _overlap_days(start, end, lo, hi)
    if days == 0:
        return None
    in_month = (hi - lo).days + 1
    amount = monthly_amount if days == in_month else to_money(monthly_amount * days / in_month)
    first, last = max(start, lo), min(end or hi, hi)
    return ProratedCharge(f"{description} ({label} {first:%-d %b} to {last:%-d %b %Y})", days, amount)


def rental_charges(
    charge: RecurringCharge, bill_run: BillRun, contract_end: datetime.date | None
) -> list[ProratedCharge]:
    """Monthly in advance for the month after the usage period; a charge that started during the usage
    period was not in last month's advance billing, so its days in the usage period are billed in arrears."""
    start = charge.start_date
    ends = [d for d in (charge.end_date, contract_end, charge.line.end_date if charge.line else None) if d]
    end = min(ends) if ends else None
    if charge.line is not None:
        start = max(start, charge.line.start_date)
    found = [
        prorate(
            monthly_amount=charge.monthly_amount,
            description=charge.description,
            start=start,
            end=end,
            period=bill_run.rental_period,
            label="in advance",
        ),
    ]
    if start > bill_run.period_start:
        found.append(
            prorate(
                monthly_amount=charge.monthly_amount,
                description=charge.description,
                start=start,
                end=end,
                period=(bill_run.period_start, bill_run.period_end),
                label="in arrears",
            )
        )
    return [item for item in found if item is not None]


def _address_snapshot(customer: Customer) -> str:
    sites = list(customer.sites.all())
    if not sites:
        return ""
    site = sites[0]
    parts = [site.address_line1, site.address_line2, site.town, site.postcode]
    return "\n".join(part for part in parts if part)


def _skip_reason(customer: Customer) -> tuple[str, str] | None:
    """Why a customer must not be billed (objection first, then restriction), or None."""
    if customer.billing_ceased_at is not None:
        return BillRunException.Kind.BILLING_CEASED, customer.billing_ceased_reason
    if customer.processing_restricted_at is not None:
        return BillRunException.Kind.PROCESSING_RESTRICTED, customer.processing_restricted_reason
    return None


def calculate_chunk(*, bill_run: BillRun, chunk: BillRunChunk, actor: User) -> int:
    """Build the drafts of one chunk. Returns the number of invoices created. Call in a transaction."""
    profile = PartnerBillingProfile.objects.get(partner_id=bill_run.partner_id)
    customers = list(
        customers_in_scope(bill_run)
        .filter(pk__gte=chunk.first_customer_id, pk__lte=chunk.last_customer_id)
        .prefetch_related("sites")
        .order_by("pk")
    )
    ids = [customer.pk for customer in customers]
    # Releases their calls and one-off charges (SET_NULL) for claiming again below.
    Invoice.objects.filter(bill_run=bill_run, customer_id__in=ids).delete()
    BillRunException.objects.filter(
        bill_run=bill_run, customer_id__in=ids, kind__in=BillRunException.SKIP_KINDS
    ).delete()

    skipped, billable = [], []
    for customer in customers:
        reason = _skip_reason(customer)
        if reason is None:
            billable.append(customer)
        else:
            skipped.append(
                BillRunException(bill_run=bill_run, customer=customer, kind=reason[0], detail=reason[1])
            )
    BillRunException.objects.bulk_create(skipped)
    if not billable:
        return 0

    invoices = bulk_create_with_history(
        [
            Invoice(
                bill_run=bill_run,
                partner_id=bill_run.partner_id,
                customer=customer,
                tax_point=bill_run.period_end,
                period_start=bill_run.period_start,
                period_end=bill_run.period_end,
                supplier_name=profile.legal_name,
                supplier_address=profile.address,
                supplier_vat_number=profile.vat_number,
                customer_reference=customer.reference,
                customer_name=customer.name,
                customer_address=_address_snapshot(customer),
                vat_rate=STANDARD_VAT_RATE,
            )
            for customer in billable
        ],
        Invoice,
        default_user=actor,
        default_change_reason="Draft calculated",
    )
    if invoices[0].pk is None:
        invoices = list(Invoice.objects.filter(bill_run=bill_run, customer_id__in=[c.pk for c in billable]))
    invoice_of = {invoice.customer_id: invoice for invoice in invoices}
    lines: list[InvoiceLine] = []
    lines += _claim_usage(bill_run, chunk, invoice_of)
    lines += _claim_one_offs(bill_run, invoice_of)
    lines += _rentals(bill_run, billable, invoice_of)
    InvoiceLine.objects.bulk_create(lines, batch_size=2000)
    _total(invoices, lines, actor)
    return len(invoices)


def _claim_usage(bill_run: BillRun, chunk: BillRunChunk, invoice_of: dict[int, Invoice]) -> list[InvoiceLine]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE billing_callrecord SET invoice_id = inv.id
            FROM billing_invoice inv
            WHERE inv.bill_run_id = %s AND inv.customer_id = billing_callrecord.customer_id
              AND billing_callrecord.customer_id BETWEEN %s AND %s
              AND billing_callrecord.status = 'rated' AND billing_callrecord.invoice_id IS NULL
              AND billing_callrecord.started_on <= %s
            """,
            [bill_run.pk, chunk.first_customer_id, chunk.last_customer_id, bill_run.period_end],
        )
        cursor.execute(
            """
            SELECT c.invoice_id, c.band, COUNT(*), SUM(CAST(ROUND(c.cost * 10000) AS BIGINT))
            FROM billing_callrecord c JOIN billing_invoice inv ON inv.id = c.invoice_id
            WHERE inv.bill_run_id = %s AND inv.customer_id BETWEEN %s AND %s
            GROUP BY c.invoice_id, c.band
            """,
            [bill_run.pk, chunk.first_customer_id, chunk.last_customer_id],
        )
        rows = cursor.fetchall()
    labels = dict(Band.choices)
    return [
        InvoiceLine(
            invoice_id=invoice_id,
            kind=InvoiceLine.Kind.USAGE,
            band=band,
            description=f"Calls: {labels.get(band, band)}",
            quantity=Decimal(count),
            amount=to_money(Decimal(units) / COST_UNITS_PER_POUND),
        )
        for invoice_id, band, count, units in rows
    ]


def _claim_one_offs(bill_run: BillRun, invoice_of: dict[int, Invoice]) -> list[InvoiceLine]:
    charges = list(
        OneOffCharge.objects.filter(
            customer_id__in=invoice_of, invoice__isnull=True, charge_date__lte=bill_run.period_end
        )
    )
    for charge in charges:
        charge.invoice = invoice_of[charge.customer_id]
    OneOffCharge.objects.bulk_update(charges, ["invoice"], batch_size=1000)
    return [
        InvoiceLine(
            invoice=charge.invoice,
            kind=InvoiceLine.Kind.ONE_OFF,
            description=charge.description,
            amount=charge.amount,
        )
        for charge in charges
    ]


def _rentals(
    bill_run: BillRun, customers: list[Customer], invoice_of: dict[int, Invoice]
) -> list[InvoiceLine]:
    _start, rental_end = bill_run.rental_period
    charges = (
        RecurringCharge.objects.filter(customer_id__in=invoice_of, start_date__lte=rental_end)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=bill_run.period_start))
        .select_related("line")
    )
    contract_end = {customer.pk: customer.contract_end for customer in customers}
    lines = []
    for charge in charges:
        for item in rental_charges(charge, bill_run, contract_end[charge.customer_id]):
            lines.append(
                InvoiceLine(
                    invoice=invoice_of[charge.customer_id],
                    kind=InvoiceLine.Kind.RENTAL,
                    description=item.description,
                    quantity=Decimal(item.days),
                    amount=item.amount,
                )
            )
    return lines


def _total(invoices: list[Invoice], lines: list[InvoiceLine], actor: User) -> None:
    nets: dict[int, Decimal] = defaultdict(Decimal)
    for line in lines:
        nets[line.invoice_id] += line.amount
    for invoice in invoices:
        invoice.net = nets[invoice.pk]
        invoice.vat = vat_on(invoice.net, invoice.vat_rate)
        invoice.gross = invoice.net + invoice.vat
    bulk_update_with_history(invoices, Invoice, ["net", "vat", "gross"], batch_size=1000, default_user=actor)


def plan_chunks(bill_run: BillRun, size: int = CHUNK_SIZE) -> list[BillRunChunk]:
    ids = list(customers_in_scope(bill_run).order_by("pk").values_list("pk", flat=True))
    return [
        BillRunChunk(bill_run=bill_run, number=number, first_customer_id=part[0], last_customer_id=part[-1])
        for number, part in enumerate((ids[i : i + size] for i in range(0, len(ids), size)), start=1)
    ]
