"""Calculating a bill run's draft invoices, one chunk of customers at a time.

A chunk is one transaction: it deletes the run's existing drafts for its customers (recalculation
replaces, never duplicates), records the customers it skips and why, sets aside the customers' unbilled
rated calls (one snapshot, so what is summed is exactly what is claimed), sums their usage by band in SQL,
prorates rentals, takes the one-off charges, and only then writes each invoice, once, with its totals and
legal snapshots, its lines, and the claims of its calls (insert-only rows in BilledCall).
Money rules: fusion_site.money.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Min, Q, QuerySet
from django.utils import timezone

from accounts.models import Customer, Site, User
from billing.catalogue import PriceVersion, price_spans
from billing.models import (
    Band,
    BillRun,
    BillRunChunk,
    BillRunException,
    Invoice,
    InvoiceLine,
    LineProduct,
    OneOffCharge,
    PartnerBillingProfile,
    ProductPrice,
    Rate,
    RecurringCharge,
)
from fusion_site.bulk import insert_rows, insert_rows_with_new_ids, record_history_in_sql, set_for_transaction
from fusion_site.crypto import keyring
from fusion_site.lookups import bigint_array, id_condition
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


class RentalCharge(NamedTuple):
    """What proration needs of a recurring charge and its line (dates, not the line's number)."""

    customer_id: int
    description: str
    monthly_amount: Decimal
    start_date: datetime.date
    end_date: datetime.date | None
    line_start: datetime.date | None
    line_end: datetime.date | None


def rental_charges(
    charge: RentalCharge, bill_run: BillRun, contract_end: datetime.date | None
) -> list[ProratedCharge]:
    """Monthly in advance for the month after the usage period; a charge that started during the usage
    period was not in last month's advance billing, so its days in the usage period are billed in arrears."""
    start = max(charge.start_date, charge.line_start) if charge.line_start else charge.start_date
    ends = [d for d in (charge.end_date, contract_end, charge.line_end) if d]
    end = min(ends) if ends else None
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


class ChunkCustomer(NamedTuple):
    pk: int
    name: str
    contract_end: datetime.date | None
    billing_ceased_at: datetime.datetime | None
    billing_ceased_reason: str
    processing_restricted_at: datetime.datetime | None
    processing_restricted_reason: str


def _skip_reason(customer: ChunkCustomer) -> tuple[str, str] | None:
    """Why a customer must not be billed (objection first, then restriction), or None."""
    if customer.billing_ceased_at is not None:
        return BillRunException.Kind.BILLING_CEASED, customer.billing_ceased_reason
    if customer.processing_restricted_at is not None:
        return BillRunException.Kind.PROCESSING_RESTRICTED, customer.processing_restricted_reason
    return None


class DraftLine(NamedTuple):
    """An invoice line before its invoice exists, in the order of _LINE_FIELDS after the invoice.

    Each line carries the particulars of VAT Notice 700 s.16.3: quantity and unit, unit price, VAT rate.
    Every supply billed here is standard-rated."""

    kind: str
    description: str
    band: str
    quantity: Decimal
    amount: Decimal
    unit: str
    minutes: Decimal | None
    unit_price: Decimal | None
    price_per: str
    vat_rate: Decimal = STANDARD_VAT_RATE


_INVOICE_FIELDS = (
    "created_at",
    "updated_at",
    "bill_run",
    "partner",
    "customer",
    "status",
    "number",
    "tax_point",
    "period_start",
    "period_end",
    "supplier_name",
    "supplier_address",
    "supplier_vat_number",
    "customer_reference",
    "customer_name",
    "customer_address",
    "vat_rate",
    "net",
    "vat",
    "gross",
)
_LINE_FIELDS = (
    "invoice",
    "kind",
    "description",
    "band",
    "quantity",
    "amount",
    "unit",
    "minutes",
    "unit_price",
    "price_per",
    "vat_rate",
)


def calculate_chunk(*, bill_run: BillRun, chunk: BillRunChunk, actor: User) -> int:
    """Build the drafts of one chunk. Returns the number of invoices created. Call in a transaction.

    A bill run writes thousands of invoices and tens of thousands of lines, so they are written as rows
    in SQL (fusion_site.bulk), with their history copied from them, rather than as model instances."""
    # A chunk's calls are a twentieth of the table, a few rows on each of many pages (imported in
    # batches, each in customer order). At PostgreSQL's default cost of a random page (4, for spinning
    # disks) the planner read the whole table instead of those pages through the customer index: 260 ms
    # instead of 65 ms a chunk of a million calls (bench/bill_run.py). JIT costs more than it saves here.
    set_for_transaction(random_page_cost="1.1", jit="off")
    profile = PartnerBillingProfile.objects.get(partner_id=bill_run.partner_id)
    customers = [
        ChunkCustomer(*row)
        for row in customers_in_scope(bill_run)
        .filter(pk__gte=chunk.first_customer_id, pk__lte=chunk.last_customer_id)
        .order_by("pk")
        .values_list(*ChunkCustomer._fields)
    ]
    ids = [customer.pk for customer in customers]
    # Releases their calls (claims cascade) and one-off charges (SET_NULL) for claiming again below.
    Invoice.objects.filter(bill_run=bill_run, customer_id__any_of=ids).delete()
    BillRunException.objects.filter(
        bill_run=bill_run, customer_id__any_of=ids, kind__in=BillRunException.SKIP_KINDS
    ).delete()

    skipped, billable = [], []
    for customer in customers:
        reason = _skip_reason(customer)
        if reason is None:
            billable.append(customer)
        else:
            skipped.append(
                BillRunException(bill_run=bill_run, customer_id=customer.pk, kind=reason[0], detail=reason[1])
            )
    BillRunException.objects.bulk_create(skipped)
    if not billable:
        return 0

    billable_ids = [customer.pk for customer in billable]
    calls_table = _set_aside_unbilled_calls(bill_run, billable_ids)
    lines_of: dict[int, list[DraftLine]] = {customer.pk: [] for customer in billable}
    for customer_id, line in _usage(calls_table):
        lines_of[customer_id].append(line)
    one_offs = _one_offs(bill_run, billable_ids)
    for charge in one_offs:
        lines_of[charge.customer_id].append(
            DraftLine(
                InvoiceLine.Kind.ONE_OFF,
                charge.description,
                "",
                Decimal("1"),
                charge.amount,
                "items",
                None,
                charge.amount,
                "item",
            )
        )
    for customer_id, line in _rentals(bill_run, billable):
        lines_of[customer_id].append(line)
    for customer_id, line in _product_rentals(bill_run, billable):
        lines_of[customer_id].append(line)

    now = timezone.now()
    stamp = connection.ops.adapt_datetimefield_value(now)
    addresses = _address_snapshots(billable_ids)
    encrypt = keyring().encrypt_bulk
    invoice_ids = insert_rows_with_new_ids(
        Invoice,
        _INVOICE_FIELDS,
        [
            _draft_row(
                bill_run,
                profile,
                customer,
                lines_of[customer.pk],
                addresses.get(customer.pk, ""),
                encrypt,
                stamp,
            )
            for customer in billable
        ],
    )
    # The drafts are named by their ids, not found again by run and customer: without fresh statistics
    # (the run's invoices are new) PostgreSQL read every draft of the run so far for each chunk.
    invoice_of = dict(zip(billable_ids, invoice_ids, strict=True))
    drafts = Invoice.objects.filter(pk__any_of=invoice_ids)
    record_history_in_sql(drafts, actor=actor, reason="Draft calculated", when=now)
    insert_rows(
        InvoiceLine,
        _LINE_FIELDS,
        [(invoice_of[customer_id], *line) for customer_id, lines in lines_of.items() for line in lines],
    )
    for charge in one_offs:
        charge.invoice_id = invoice_of[charge.customer_id]
    OneOffCharge.objects.bulk_update(one_offs, ["invoice"], batch_size=1000)
    _claim(calls_table, bill_run, invoice_of)
    _drop(calls_table)
    return len(invoice_of)


def _draft_row(
    bill_run: BillRun,
    profile: PartnerBillingProfile,
    customer: ChunkCustomer,
    lines: list[DraftLine],
    address: str,
    encrypt: Callable[[str], str],
    now: object,
) -> tuple[object, ...]:
    """An invoice's values in the order of _INVOICE_FIELDS, its snapshots encrypted."""
    net = sum((line.amount for line in lines), Decimal("0"))
    vat = vat_on(net, STANDARD_VAT_RATE)
    return (
        now,
        now,
        bill_run.pk,
        bill_run.partner_id,
        customer.pk,
        Invoice.Status.DRAFT,
        "",
        # Provisional: finalisation sets the tax point to the issue date (billing.services.bill_runs).
        bill_run.period_end,
        bill_run.period_start,
        bill_run.period_end,
        profile.legal_name,
        profile.address,
        profile.vat_number,
        Customer.reference_of(customer.pk),
        encrypt(customer.name),
        encrypt(address),
        STANDARD_VAT_RATE,
        net,
        vat,
        net + vat,
    )


def _address_snapshots(customer_ids: list[int]) -> dict[int, str]:
    """Each customer's first site's address, as the invoice prints it. Only first sites are read, so a
    customer with fifty sites costs four decryptions, not two hundred."""
    first_sites = (
        Site.objects.filter(customer_id__any_of=customer_ids)
        .values("customer_id")
        .annotate(first=Min("pk"))
        .values("first")
    )
    sites = Site.objects.filter(pk__in=first_sites).values_list(
        "customer_id", "address_line1", "address_line2", "town", "postcode"
    )
    return {customer_id: "\n".join(part for part in parts if part) for customer_id, *parts in sites}


_CHUNK_CALLS = "chunk_calls"


def earliest_billable_day(period_start: datetime.date) -> datetime.date:
    """The first day of the oldest month whose calls a run of ``period_start`` still bills, if no earlier
    run did: BILL_RUN_LATE_CALL_MONTHS before the period's month. The bound lets PostgreSQL read only
    those months' partitions of the call records instead of every month kept; a call rated later than
    that (a file imported months late, a suspense call fixed months on) is left unbilled."""
    index = period_start.year * 12 + period_start.month - 1 - settings.BILL_RUN_LATE_CALL_MONTHS
    return datetime.date(index // 12, index % 12 + 1, 1)


def _set_aside_unbilled_calls(bill_run: BillRun, customer_ids: list[int]) -> str:
    """Copy the customers' rated calls up to the period end that no invoice bills yet (id, customer, band,
    cost, rate, billable seconds as billing.rating counts them) into a temporary table with one
    statement, so the sums and the claims read the same rows even if calls are imported meanwhile.
    Returns the table's name."""
    customer_condition, customer_params = id_condition("c.customer_id", customer_ids, connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_CHUNK_CALLS}")
        cursor.execute(
            f"""
            CREATE TEMPORARY TABLE {_CHUNK_CALLS} AS
            SELECT c.id, c.customer_id, c.band, CAST(ROUND(c.cost * 10000) AS BIGINT) AS units, c.rate_id,
              ((c.duration_seconds + r.increment_seconds - 1) / r.increment_seconds) * r.increment_seconds
                AS billable_seconds
            FROM billing_callrecord c JOIN billing_rate r ON r.id = c.rate_id
            WHERE {customer_condition} AND c.status = 'rated'
              AND c.started_on >= %s AND c.started_on <= %s
              AND NOT EXISTS (SELECT 1 FROM billing_billedcall b WHERE b.call_id = c.id)
            """,  # noqa: S608 - only placeholders are interpolated
            [*customer_params, earliest_billable_day(bill_run.period_start), bill_run.period_end],
        )
    return _CHUNK_CALLS


def _drop(table: str) -> None:
    # Only on success: after an error the transaction is aborted, and its rollback drops the table.
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _usage(calls_table: str) -> list[tuple[int, DraftLine]]:
    """One line per customer and band: calls, billable minutes, and the price per minute when all the
    band's calls were rated at one rate (otherwise no single unit price: shown as various)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id, band, COUNT(*), SUM(units), SUM(billable_seconds), "  # noqa: S608
            f"COUNT(DISTINCT rate_id), MIN(rate_id) FROM {calls_table} "
            "GROUP BY customer_id, band ORDER BY customer_id, band"
        )
        rows = cursor.fetchall()
    labels = dict(Band.choices)
    single_rates = {rate_id for *_rest, rates, rate_id in rows if rates == 1}
    price_of = dict(Rate.objects.filter(pk__in=single_rates).values_list("pk", "price_per_minute"))
    return [
        (
            customer_id,
            DraftLine(
                InvoiceLine.Kind.USAGE,
                f"Calls: {labels.get(band, band)}",
                band,
                Decimal(count),
                to_money(Decimal(units) / COST_UNITS_PER_POUND),
                "calls",
                (Decimal(seconds) / 60).quantize(Decimal("0.01")),
                price_of.get(rate_id) if rates == 1 else None,
                "minute",
            ),
        )
        for customer_id, band, count, units, seconds, rates, rate_id in rows
    ]


def _claim(calls_table: str, bill_run: BillRun, invoice_of: dict[int, int]) -> None:
    """Each set-aside call to its customer's draft. On PostgreSQL through the chunk's own customer ->
    invoice pairs (two array parameters), not a join to the run's invoices, which grow chunk by chunk."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO billing_billedcall (call_id, invoice_id) "  # noqa: S608
                f"SELECT c.id, m.invoice_id FROM {calls_table} c "
                "JOIN unnest(%s::bigint[], %s::bigint[]) AS m (customer_id, invoice_id) "
                "ON m.customer_id = c.customer_id",
                [bigint_array(invoice_of), bigint_array(invoice_of.values())],
            )
            return
        cursor.execute(
            f"INSERT INTO billing_billedcall (call_id, invoice_id) "  # noqa: S608
            f"SELECT c.id, inv.id FROM {calls_table} c "
            "JOIN billing_invoice inv ON inv.customer_id = c.customer_id AND inv.bill_run_id = %s",
            [bill_run.pk],
        )


def _one_offs(bill_run: BillRun, customer_ids: list[int]) -> list[OneOffCharge]:
    return list(
        OneOffCharge.objects.filter(
            customer_id__any_of=customer_ids, invoice__isnull=True, charge_date__lte=bill_run.period_end
        ).order_by("charge_date", "pk")
    )


def _rentals(bill_run: BillRun, customers: list[ChunkCustomer]) -> list[tuple[int, DraftLine]]:
    _start, rental_end = bill_run.rental_period
    contract_end = {customer.pk: customer.contract_end for customer in customers}
    charges = (
        RecurringCharge.objects.filter(customer_id__any_of=list(contract_end), start_date__lte=rental_end)
        .filter(Q(end_date__isnull=True) | Q(end_date__gte=bill_run.period_start))
        .order_by("customer_id", "pk")
        .values_list(
            "customer_id",
            "description",
            "monthly_amount",
            "start_date",
            "end_date",
            "line__start_date",
            "line__end_date",
        )
    )
    return [
        (
            charge.customer_id,
            DraftLine(
                InvoiceLine.Kind.RENTAL,
                item.description,
                "",
                Decimal(item.days),
                item.amount,
                "days",
                None,
                charge.monthly_amount,
                "month",
            ),
        )
        for charge in map(RentalCharge._make, charges)
        for item in rental_charges(charge, bill_run, contract_end[charge.customer_id])
    ]


def _product_rentals(bill_run: BillRun, customers: list[ChunkCustomer]) -> list[tuple[int, DraftLine]]:
    """The rental of each line rented as a catalogue product, at the prices in force on the days billed:
    monthly in advance for the rental period and, for a line that started during the usage period, in
    arrears for its days of it (as ``rental_charges``). Where a new price version takes effect within a
    period, the days before and from it are prorated at their own prices (``billing.catalogue``); a
    whole month at one price is that price. Days before the product's first version have no price and
    are not charged. Three queries per chunk whatever its size."""
    period_start, _end = bill_run.period_start, bill_run.period_end
    _rental_start, rental_end = bill_run.rental_period
    contract_end = {customer.pk: customer.contract_end for customer in customers}
    rentals = list(
        LineProduct.objects.filter(
            line__customer_id__any_of=list(contract_end), line__start_date__lte=rental_end
        )
        .filter(Q(line__end_date__isnull=True) | Q(line__end_date__gte=period_start))
        .order_by("line__customer_id", "line_id")
        .values_list("line__customer_id", "product_id", "product__name", "line__start_date", "line__end_date")
    )
    versions: dict[int, list[PriceVersion]] = {}
    for product_id, valid_from, price in ProductPrice.objects.filter(
        product_id__in={rental[1] for rental in rentals}, valid_from__lte=rental_end
    ).values_list("product_id", "valid_from", "monthly_price"):
        versions.setdefault(product_id, []).append((valid_from, price))
    found: list[tuple[int, DraftLine]] = []
    for customer_id, product_id, name, line_start, line_end in rentals:
        ends = [day for day in (line_end, contract_end[customer_id]) if day]
        end = min(ends) if ends else None
        windows = [(bill_run.rental_period, "in advance")]
        if line_start > period_start:
            windows.append(((period_start, bill_run.period_end), "in arrears"))
        for (lo, hi), label in windows:
            first, last = max(line_start, lo), min(end or hi, hi)
            for span in price_spans(versions.get(product_id, []), first, last):
                item = prorate(
                    monthly_amount=span.monthly_price,
                    description=f"{name} rental",
                    start=span.first,
                    end=span.last,
                    period=(lo, hi),
                    label=label,
                )
                if item is not None:
                    found.append(
                        (
                            customer_id,
                            DraftLine(
                                InvoiceLine.Kind.RENTAL,
                                item.description,
                                "",
                                Decimal(item.days),
                                item.amount,
                                "days",
                                None,
                                span.monthly_price,
                                "month",
                            ),
                        )
                    )
    return found


def plan_chunks(bill_run: BillRun, size: int = CHUNK_SIZE) -> list[BillRunChunk]:
    ids = list(customers_in_scope(bill_run).order_by("pk").values_list("pk", flat=True))
    return [
        BillRunChunk(bill_run=bill_run, number=number, first_customer_id=part[0], last_customer_id=part[-1])
        for number, part in enumerate((ids[i : i + size] for i in range(0, len(ids), size)), start=1)
    ]
