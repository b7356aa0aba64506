"""Calculating a bill run's draft invoices, one chunk of customers at a time.

A chunk is one transaction: it deletes the run's existing drafts for its customers (recalculation
replaces, never duplicates), records the customers it skips and why, sets aside the customers' unbilled
rated calls (one snapshot, so what is summed is exactly what is claimed), sums their usage by band in SQL,
prorates rentals, takes the one-off charges, and only then writes each invoice, once, with its totals and
legal snapshots, its lines, and the claims of its calls (insert-only rows in BilledCall).
Money rules: fusion_site.money.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet
from simple_history.utils import bulk_create_with_history

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
    # Releases their calls (claims cascade) and one-off charges (SET_NULL) for claiming again below.
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

    billable_ids = [customer.pk for customer in billable]
    calls_table = _set_aside_unbilled_calls(bill_run, billable_ids)
    lines_of: dict[int, list[InvoiceLine]] = {customer.pk: [] for customer in billable}
    for customer_id, line in _usage(calls_table):
        lines_of[customer_id].append(line)
    one_offs = _one_offs(bill_run, billable_ids)
    for charge in one_offs:
        lines_of[charge.customer_id].append(
            InvoiceLine(kind=InvoiceLine.Kind.ONE_OFF, description=charge.description, amount=charge.amount)
        )
    for customer_id, line in _rentals(bill_run, billable):
        lines_of[customer_id].append(line)

    invoices = bulk_create_with_history(
        [_draft(bill_run, profile, customer, lines_of[customer.pk]) for customer in billable],
        Invoice,
        default_user=actor,
        default_change_reason="Draft calculated",
    )
    if invoices[0].pk is None:  # databases that do not return ids from a bulk insert
        invoices = list(Invoice.objects.filter(bill_run=bill_run, customer_id__in=billable_ids))
    invoice_of = {invoice.customer_id: invoice for invoice in invoices}
    for customer_id, lines in lines_of.items():
        for line in lines:
            line.invoice = invoice_of[customer_id]
    InvoiceLine.objects.bulk_create([line for lines in lines_of.values() for line in lines], batch_size=2000)
    for charge in one_offs:
        charge.invoice = invoice_of[charge.customer_id]
    OneOffCharge.objects.bulk_update(one_offs, ["invoice"], batch_size=1000)
    _claim(calls_table, bill_run)
    _drop(calls_table)
    return len(invoices)


def _draft(
    bill_run: BillRun, profile: PartnerBillingProfile, customer: Customer, lines: list[InvoiceLine]
) -> Invoice:
    net = sum((line.amount for line in lines), Decimal("0"))
    vat = vat_on(net, STANDARD_VAT_RATE)
    return Invoice(
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
        net=net,
        vat=vat,
        gross=net + vat,
    )


_CHUNK_CALLS = "chunk_calls"


def _set_aside_unbilled_calls(bill_run: BillRun, customer_ids: list[int]) -> str:
    """Copy the customers' rated calls up to the period end that no invoice bills yet (id, customer, band,
    cost) into a temporary table with one statement, so the sums and the claims read the same rows even
    if calls are imported meanwhile. Returns the table's name."""
    placeholders = ", ".join(["%s"] * len(customer_ids))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_CHUNK_CALLS}")
        cursor.execute(
            f"""
            CREATE TEMPORARY TABLE {_CHUNK_CALLS} AS
            SELECT c.id, c.customer_id, c.band, CAST(ROUND(c.cost * 10000) AS BIGINT) AS units
            FROM billing_callrecord c
            WHERE c.customer_id IN ({placeholders}) AND c.status = 'rated' AND c.started_on <= %s
              AND NOT EXISTS (SELECT 1 FROM billing_billedcall b WHERE b.call_id = c.id)
            """,  # noqa: S608 - only placeholders are interpolated
            [*customer_ids, bill_run.period_end],
        )
    return _CHUNK_CALLS


def _drop(table: str) -> None:
    # Only on success: after an error the transaction is aborted, and its rollback drops the table.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _usage(calls_table: str) -> list[tuple[int, InvoiceLine]]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT customer_id, band, COUNT(*), SUM(units) FROM {calls_table} "  # noqa: S608
            "GROUP BY customer_id, band ORDER BY customer_id, band"
        )
        rows = cursor.fetchall()
    labels = dict(Band.choices)
    return [
        (
            customer_id,
            InvoiceLine(
                kind=InvoiceLine.Kind.USAGE,
                band=band,
                description=f"Calls: {labels.get(band, band)}",
                quantity=Decimal(count),
                amount=to_money(Decimal(units) / COST_UNITS_PER_POUND),
            ),
        )
        for customer_id, band, count, units in rows
    ]


def _claim(calls_table: str, bill_run: BillRun) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO billing_billedcall (call_id, invoice_id) "  # noqa: S608
            f"SELECT c.id, inv.id FROM {calls_table} c "
            "JOIN billing_invoice inv ON inv.customer_id = c.customer_id AND inv.bill_run_id = %s",
            [bill_run.pk],
        )


def _one_offs(bill_run: BillRun, customer_ids: list[int]) -> list[OneOffCharge]:
    return list(
        OneOffCharge.objects.filter(
            customer_id__in=customer_ids, invoice__isnull=True, charge_date__lte=bill_run.period_end
        ).order_by("charge_date", "pk")
    )


def _rentals(bill_run: BillRun, customers: list[Customer]) -> list[tuple[int, InvoiceLine]]:
    _start, rental_end = bill_run.rental_period
    contract_end = {customer.pk: customer.contract_end for customer in customers}
    charges = (
        RecurringCharge.objects.filter(customer_id__in=contract_end, start_date__lte=rental_end)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=bill_run.period_start))
        .select_related("line")
        # Proration needs the line's dates, not its number: no decryption per rental.
        .defer("line__cli", "line__cli_index")
        .order_by("customer_id", "pk")
    )
    return [
        (
            charge.customer_id,
            InvoiceLine(
                kind=InvoiceLine.Kind.RENTAL,
                description=item.description,
                quantity=Decimal(item.days),
                amount=item.amount,
            ),
        )
        for charge in charges
        for item in rental_charges(charge, bill_run, contract_end[charge.customer_id])
    ]


def plan_chunks(bill_run: BillRun, size: int = CHUNK_SIZE) -> list[BillRunChunk]:
    ids = list(customers_in_scope(bill_run).order_by("pk").values_list("pk", flat=True))
    return [
        BillRunChunk(bill_run=bill_run, number=number, first_customer_id=part[0], last_customer_id=part[-1])
        for number, part in enumerate((ids[i : i + size] for i in range(0, len(ids), size)), start=1)
    ]
