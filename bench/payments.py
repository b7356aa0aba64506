"""Benchmark: payments and aged debt at 100,000 customers with 12 months of invoices, on PostgreSQL.

Creates a throwaway database (dropped at the end unless --keep; its name must contain "bench"), builds (not
timed) a large partner with --customers customers and a small partner with a hundredth of them, each
customer with twelve monthly finalised invoices posted to the ledger (INSERT ... SELECT), then times:

- payments: one payment per customer of the large partner, paying exactly its two oldest invoices, recorded
  by ``billing.services.payments.payments_record_many`` (history, ledger entry, audit event, allocation
  oldest first). The baseline is the least SQL writing the same rows in the same run and database, in one
  statement, committed, then undone (not timed): the payments and their history rows, their ledger entries
  with an HMAC-signed audit event each, the allocations to each customer's two oldest invoices and those
  invoices' cached outstanding amounts. Target: at most 3x the baseline.
- aged debt: ``billing.selectors.aged_debt`` for an administrator, once over the large partner and once
  over the small one: the time (target: under 1 s) and the queries (target: the same number for both).
- unpaid Direct Debits: --unpaid customers (10,000; a tenth at --smoke size) get an active mandate and their
  latest invoice collected by Direct Debit (built, not timed); an ARUDD report returning every one of those
  collections ("refer to payer") is imported by ``billing.services.bacs_reports.bacs_report_import``
  (parsing, matching, the payment reversed and its allocation undone, the collection marked for
  re-presentation, history and audit). The baseline is the least SQL writing the same rows in the same run,
  in one statement, committed, then undone (not timed): the collections marked with a history row and an
  audit event each, the reversing allocations, the unpaid-reversal entries with an audit event each and the
  invoices' cached outstanding amounts. Target: at most 3x the baseline.

The baselines sign their audit events in the database (pgcrypto's HMAC) but do not chain them: linking each
event to the previous one's hash cannot be done set-based, so that small part of the product's work is the
one the baselines leave out.

The exit status is 1 when the payments were not allocated as recorded (every payment wholly allocated to
its customer's two oldest invoices), the aged debt's queries grow with the partner, or an unpaid item was
not applied (every collection returned, its invoice open again); the time targets are printed, not
checked, at --smoke size.

    .venv/bin/python bench/payments.py [--customers 100000] [--unpaid 10000] [--keep] [--database-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bill_run import checkpoint, database_name, django_environment

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fusion_payments_bench"
BATCH = 5_000
MONTHS = 12
FIRST_ISSUE = datetime.date(2025, 12, 1)
AS_OF = datetime.date(2026, 11, 30)
RATIO_TARGET = 3.0
AGED_DEBT_TARGET_SECONDS = 1.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--unpaid", type=int, default=10_000, help="items of the ARUDD report imported")
    parser.add_argument(
        "--smoke", action="store_true", help="a size that runs in seconds (CI: 1,000 customers)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"PostgreSQL database to DROP and re-create (default {DEFAULT_DATABASE_URL})",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.customers = 1_000
        args.unpaid = 100
    if "bench" not in database_name(args.database_url):
        parser.error("the database's name must contain 'bench' (it is dropped and re-created)")
    if args.customers < 100:
        parser.error("--customers must be at least 100")
    if not 0 < args.unpaid <= args.customers:
        parser.error("--unpaid must be between 1 and --customers")
    return args


def month_start(offset: int) -> datetime.date:
    month = FIRST_ISSUE.month - 1 + offset
    return datetime.date(FIRST_ISSUE.year + month // 12, month % 12 + 1, 1)


def build_partner(code: str, customers: int) -> Any:
    """A partner, its customers, a finalised bill run per month and an invoice per customer per run,
    posted to the ledger: set-based, one template invoice copied by INSERT ... SELECT."""
    from django.db import connection

    from accounts import services
    from accounts.models import Customer
    from billing.models import BillRun, Invoice, LedgerEntry

    partner = services.partner_create(code=code, name=f"{code.title()} Telecom", actor=None)
    for offset in range(0, customers, BATCH):
        size = min(BATCH, customers - offset)
        Customer.objects.bulk_create(
            Customer(
                partner=partner,
                name=f"{code} customer {offset + n}",
                contract_start=datetime.date(2020, 1, 1),
            )
            for n in range(size)
        )
    runs = []
    for n in range(MONTHS):
        issued = month_start(n)
        period_end = issued - datetime.timedelta(days=1)
        runs.append(
            BillRun.objects.create(
                partner=partner,
                period_start=period_end.replace(day=1),
                period_end=period_end,
                status=BillRun.Status.FINALISED,
                issue_date=issued,
            )
        )
    template = Invoice.objects.create(
        bill_run=runs[0],
        partner=partner,
        customer=None,
        status=Invoice.Status.FINALISED,
        sequence=0,
        number=f"{code}-TEMPLATE",
        issue_date=FIRST_ISSUE,
        tax_point=FIRST_ISSUE,
        period_start=runs[0].period_start,
        period_end=runs[0].period_end,
        supplier_name="Bench Telecom",
        supplier_address="1 Bench Street, Leeds",
        supplier_vat_number="GB123456789",
        customer_reference="",
        customer_name="Bench customer",
        customer_address="1 Bench Street, Leeds",
        net=Decimal("10.00"),
        vat=Decimal("2.00"),
        gross=Decimal("12.00"),
    )
    # Net 10.00 to 59.00 by customer, so allocations are not all alike; VAT 20%.
    overrides = {
        "bill_run_id": "r.id",
        "customer_id": "c.id",
        "sequence": "r.n * 1000000 + c.id",
        "number": f"'{code}-' || r.n || '-' || c.id",
        "issue_date": "r.issue_date",
        "tax_point": "r.issue_date",
        "period_start": "r.period_start",
        "period_end": "r.period_end",
        "customer_reference": "'C-' || lpad(c.id::text, 6, '0')",
        "net": "(10 + mod(c.id, 50))::numeric",
        "vat": "((10 + mod(c.id, 50)) * 0.2)::numeric(12, 2)",
        "gross": "((10 + mod(c.id, 50)) * 1.2)::numeric(12, 2)",
        # Posted to the ledger below and not yet paid, as ``ledger_post_invoices`` leaves it.
        "amount_outstanding": "((10 + mod(c.id, 50)) * 1.2)::numeric(12, 2)",
    }
    fields = [field for field in Invoice._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    values = ", ".join(overrides.get(field.attname, f"t.{quote(str(field.column))}") for field in fields)
    run_rows = ", ".join(
        f"({run.pk}, {n}, DATE '{run.issue_date}', DATE '{run.period_start}', DATE '{run.period_end}')"
        for n, run in enumerate(runs)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Invoice._meta.db_table} ({columns}) "
            f"SELECT {values} FROM {Invoice._meta.db_table} t "
            f"CROSS JOIN (VALUES {run_rows}) AS r(id, n, issue_date, period_start, period_end) "
            f"JOIN {Customer._meta.db_table} c ON c.partner_id = %s WHERE t.id = %s",
            [partner.pk, template.pk],
        )
        cursor.execute(f"DELETE FROM {Invoice._meta.db_table} WHERE id = %s", [template.pk])
        cursor.execute(
            f"INSERT INTO {LedgerEntry._meta.db_table} "
            "(kind, amount, effective_on, reason, created_at, customer_id, invoice_id) "
            f"SELECT 'invoice', gross, issue_date, '', now(), customer_id, id FROM {Invoice._meta.db_table} "
            "WHERE partner_id = %s",
            [partner.pk],
        )
    print(f"  {code}: {customers:,} customers, {customers * MONTHS:,} invoices", file=sys.stderr)
    return partner


def oldest_two_sql() -> str:
    from billing.models import Invoice

    return (
        f"SELECT id, customer_id, gross FROM (SELECT id, customer_id, gross, row_number() OVER "
        f"(PARTITION BY customer_id ORDER BY issue_date, id) AS n FROM {Invoice._meta.db_table} "
        "WHERE partner_id = %s) ranked WHERE n <= 2"
    )


def history_sql(model: Any, source: str, history_type: str) -> str:
    """INSERT of one simple-history row per row of the CTE ``source`` (which returns the model's columns),
    with the parameters: when, reason, actor id."""
    history = model.history.model
    kept = {field.column for field in history._meta.concrete_fields}
    columns = [field.column for field in model._meta.concrete_fields if field.column in kept]
    listed = ", ".join(columns)
    return (
        f"INSERT INTO {history._meta.db_table} "
        f"({listed}, history_date, history_change_reason, history_type, history_user_id) "
        f"SELECT {listed}, %s, %s, '{history_type}', %s FROM {source}"
    )


def audit_sql(source: str, action: str, target: str, detail: str, after: str = "0") -> str:
    """INSERT of one audit event per row of the CTE ``source`` (with a column ``id``), numbered after the
    last event and signed with HMAC-SHA256 over the event's fields (pgcrypto), with the parameters: actor
    id, actor label, key id, key. The one thing left out is the link to the previous event's hash, which
    needs each hash before the next and so cannot be set-based. ``after`` counts the events another CTE of
    the same statement numbers first."""
    from accounts.models import AuditEvent

    table = AuditEvent._meta.db_table
    return (
        f"INSERT INTO {table} (id, at, actor_id, actor_label, action, target_type, target_id, detail, "
        "previous_hash, hash, key_id) "
        f"SELECT numbered.n, now(), numbered.actor_id, numbered.actor_label, '{action}', '{target}', "
        "numbered.id::text, numbered.detail, '', "
        "encode(hmac(convert_to(concat_ws('|', numbered.n, numbered.actor_id, numbered.actor_label, "
        f"'{action}', numbered.id, numbered.detail::text), 'UTF8'), numbered.key, 'sha256'), 'hex'), "
        "numbered.key_id "
        f"FROM (SELECT (SELECT coalesce(max(id), 0) FROM {table}) + {after} "
        "+ row_number() OVER (ORDER BY id) AS n, "
        f"id, {detail} AS detail, %s::bigint AS actor_id, %s::text AS actor_label, %s::text AS key_id, "
        f"%s::bytea AS key FROM {source}) numbered"
    )


def audit_params(actor: Any) -> list[Any]:
    from accounts.audit_keys import keyring

    ring = keyring()
    return [actor.pk, str(actor), ring.signing_id, b"bench-audit-key-of-the-same-length-32"]


def prepare_baseline() -> None:
    """What the baselines' SQL needs (not timed): HMAC in the database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto")


@contextlib.contextmanager
def undone_afterwards(
    inserted: list[Any], updated: list[tuple[Any, list[str], str, list[Any]]]
) -> Iterator[None]:
    """Let a baseline commit, as the product does (a rolled back transaction never waits for its WAL to
    reach the disk), then put the database back as it was, not timed: the rows it inserted into the
    ``inserted`` models are deleted (in the order given: referencing rows first) and the columns it changed
    are restored from a copy taken before, for each (model, columns, WHERE, parameters) of ``updated``.
    Afterwards the tables are vacuumed, so the product's run does not step over the baseline's dead rows."""
    from django.db import connection

    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        last = {}
        for model in inserted:
            pk = quote(model._meta.pk.column)
            cursor.execute(f"SELECT coalesce(max({pk}), 0) FROM {quote(model._meta.db_table)}")
            last[model] = int(cursor.fetchone()[0])
        for number, (model, columns, where, params) in enumerate(updated):
            listed = ", ".join(["id", *columns])
            cursor.execute(
                f"CREATE TEMPORARY TABLE bench_before_{number} AS "
                f"SELECT {listed} FROM {quote(model._meta.db_table)} WHERE {where}",
                params,
            )
    yield
    with connection.cursor() as cursor:
        for number, (model, columns, _where, _params) in enumerate(updated):
            table = quote(model._meta.db_table)
            restored = ", ".join(f"{column} = before.{column}" for column in columns)
            cursor.execute(
                f"UPDATE {table} SET {restored} FROM bench_before_{number} before "
                f"WHERE {table}.id = before.id"
            )
            cursor.execute(f"DROP TABLE bench_before_{number}")
        for model in inserted:
            pk = quote(model._meta.pk.column)
            cursor.execute(
                f"DELETE FROM {quote(model._meta.db_table)} WHERE {pk} > %s",
                [last[model]],
            )
        for model in {*inserted, *(model for model, *_rest in updated)}:
            cursor.execute(f"VACUUM ANALYZE {quote(model._meta.db_table)}")


def baseline_payments(partner_id: int, received: datetime.date, actor: Any) -> float:
    """The least SQL that writes the same rows as the product, set-based in one statement: the payments
    and their history, their ledger entries with an audit event each, the allocations to each customer's
    two oldest invoices and those invoices' cached outstanding amounts. Timed to its commit, then undone."""
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import AuditEvent
    from billing.models import Invoice, LedgerEntry, Payment, PaymentAllocation

    payment_columns = ", ".join(str(field.column) for field in Payment._meta.concrete_fields)
    with undone_afterwards(
        [PaymentAllocation, AuditEvent, LedgerEntry, Payment.history.model, Payment],
        [(Invoice, ["amount_outstanding"], "partner_id = %s", [partner_id])],
    ):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"WITH oldest AS ({oldest_two_sql()}), "
                "due AS (SELECT customer_id, sum(gross) AS amount FROM oldest GROUP BY customer_id), "
                f"paid AS (INSERT INTO {Payment._meta.db_table} "
                "(method, amount, received_on, reference, created_at, customer_id, recorded_by_id, "
                "amount_unallocated) "
                "SELECT 'bank_transfer', amount, %s, 'STMT-' || customer_id, now(), customer_id, %s, 0 "
                f"FROM due RETURNING {payment_columns}), "
                f"history AS ({history_sql(Payment, 'paid', '+')}), "
                f"entries AS (INSERT INTO {LedgerEntry._meta.db_table} "
                "(kind, amount, effective_on, reason, created_at, customer_id, payment_id, actor_id) "
                "SELECT 'payment', -amount, %s, '', now(), customer_id, id, %s FROM paid "
                "RETURNING id, customer_id, amount), "
                "audit AS ("
                + audit_sql(
                    "entries",
                    "ledger.payment",
                    "billing.ledgerentry",
                    "jsonb_build_object('customer', customer_id, 'amount', amount::text)",
                )
                + "), "
                f"allocated AS (INSERT INTO {PaymentAllocation._meta.db_table} "
                "(amount, reason, created_at, invoice_id, payment_id, actor_id) "
                "SELECT oldest.gross, 'Oldest invoice first', now(), oldest.id, paid.id, %s FROM paid "
                "JOIN oldest ON oldest.customer_id = paid.customer_id) "
                f"UPDATE {Invoice._meta.db_table} invoice SET amount_outstanding = "
                "invoice.amount_outstanding - oldest.gross FROM oldest WHERE invoice.id = oldest.id",
                [
                    partner_id,
                    received,
                    actor.pk,
                    timezone.now(),
                    "Recorded",
                    actor.pk,
                    received,
                    actor.pk,
                    *audit_params(actor),
                    actor.pk,
                ],
            )
        seconds = time.perf_counter() - started
    return seconds


def our_payments(partner_id: int, received: datetime.date, actor: Any) -> tuple[float, int]:
    from django.db import connection

    from billing.models import Payment
    from billing.services.payments import PaymentReceived, payments_record_many

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT customer_id, sum(gross) FROM ({oldest_two_sql()}) oldest "
            "GROUP BY customer_id ORDER BY 1",
            [partner_id],
        )
        due = cursor.fetchall()
    batch = [
        PaymentReceived(customer_id, Payment.Method.BANK_TRANSFER, amount, received, f"STMT-{customer_id}")
        for customer_id, amount in due
    ]

    def progress(done: int, total: int) -> None:
        if done % 10_000 == 0 or done == total:
            print(f"  {done:,} of {total:,} payments", file=sys.stderr)

    started = time.perf_counter()
    recorded = payments_record_many(payments=batch, actor=actor, progress=progress)
    return time.perf_counter() - started, recorded


def wrongly_allocated(partner_id: int) -> int:
    """Payments of the partner not wholly allocated to exactly their customer's two oldest invoices
    (set-based: one pass over the allocations, not a subquery per payment)."""
    from django.db import connection

    from accounts.models import Customer
    from billing.models import Payment, PaymentAllocation

    payment, allocation, customer = (
        Payment._meta.db_table,
        PaymentAllocation._meta.db_table,
        Customer._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH oldest AS ({oldest_two_sql()}), "
            f"paid AS (SELECT p.id, p.amount, p.customer_id FROM {payment} p "
            f"JOIN {customer} c ON c.id = p.customer_id AND c.partner_id = %s), "
            "allocated AS (SELECT a.payment_id, count(*) AS n, sum(a.amount) AS total, "
            "bool_and(o.id IS NOT NULL) AS to_oldest "
            f"FROM {allocation} a JOIN paid ON paid.id = a.payment_id "
            "LEFT JOIN oldest o ON o.id = a.invoice_id AND o.customer_id = paid.customer_id "
            "GROUP BY a.payment_id) "
            "SELECT count(*) FROM paid LEFT JOIN allocated ON allocated.payment_id = paid.id "
            "WHERE allocated.payment_id IS NULL OR allocated.n <> 2 OR NOT allocated.to_oldest "
            "OR allocated.total <> paid.amount",
            [partner_id, partner_id],
        )
        return int(cursor.fetchone()[0])


def aged_debt_measured(user: Any, partner: Any) -> tuple[float, int, Decimal]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from billing.selectors import aged_debt

    with CaptureQueriesContext(connection) as captured:
        started = time.perf_counter()
        rows = aged_debt(user, as_of=AS_OF, partner=partner)
        seconds = time.perf_counter() - started
    total = sum((sum(row.buckets.values(), Decimal(0)) for row in rows), Decimal(0))
    return seconds, len(captured), total


SERVICE_USER_NUMBER = "123456"
PROCESSING_DAY = datetime.date(2026, 11, 16)
DEBIT_DAY = datetime.date(2026, 11, 17)


def build_collections(partner: Any, count: int) -> list[int]:
    """``count`` customers of the partner with an active mandate whose latest invoice was collected by
    Direct Debit in one submission: the payment, its ledger entry and allocation, the collection row, as
    ``direct_debit_export`` leaves them. Returns the collections' ids."""
    from accounts.models import Customer, PaymentDetails
    from billing.models import (
        DirectDebitCollection,
        DirectDebitSubmission,
        Invoice,
        PartnerBillingProfile,
        Payment,
        PaymentAllocation,
    )
    from billing.services.ledger import post_payment_entries, save_allocations

    PartnerBillingProfile.objects.update_or_create(
        partner=partner,
        defaults={
            "legal_name": "Bench Telecom Ltd",
            "address": "1 Bench Street, Leeds",
            "vat_number": "GB123456789",
            "invoice_prefix": "BEN",
            "bacs_service_user_number": SERVICE_USER_NUMBER,
            "bacs_sort_code": "200000",
            "bacs_account_number": "55779911",
            "bacs_account_name": "Bench Collect",
        },
    )
    customers = list(
        Customer.objects.filter(partner=partner).order_by("pk").values_list("pk", flat=True)[:count]
    )
    PaymentDetails.objects.bulk_create(
        [
            PaymentDetails(
                customer_id=pk,
                account_holder=f"Payer {pk}",
                sort_code="089999",
                account_number="66374958",
                mandate_reference=f"BENCH{pk:010d}",
                status=PaymentDetails.Status.ACTIVE,
                lodged_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
                active_from=datetime.date(2020, 1, 1),
            )
            for pk in customers
        ],
        batch_size=BATCH,
    )
    mandate_of = dict(
        PaymentDetails.objects.filter(customer_id__in=customers).values_list("customer_id", "pk")
    )
    latest = list(
        Invoice.objects.filter(customer_id__in=customers, issue_date=month_start(MONTHS - 1)).order_by(
            "customer_id"
        )
    )
    owner = {invoice.pk: int(invoice.customer_id or 0) for invoice in latest}
    submission = DirectDebitSubmission.objects.create(
        bill_run_id=latest[0].bill_run_id,
        partner=partner,
        serial="000001",
        processing_date=PROCESSING_DAY,
        promised_date=DEBIT_DAY,
        file_name="bench.txt",
        content="",
        sha256="0" * 64,
        collections=len(latest),
        total_pence=sum(int(invoice.gross * 100) for invoice in latest),
    )
    payments = Payment.objects.bulk_create(
        [
            Payment(
                customer_id=owner[invoice.pk],
                method=Payment.Method.DIRECT_DEBIT,
                amount=invoice.gross,
                received_on=DEBIT_DAY,
                reference=f"BENCH{invoice.customer_id:010d}/{invoice.number}"[:60],
            )
            for invoice in latest
        ],
        batch_size=BATCH,
    )
    post_payment_entries(payment_ids=[payment.pk for payment in payments], actor=None)
    save_allocations(
        [
            PaymentAllocation(payment=payment, invoice=invoice, amount=invoice.gross, reason="Direct Debit")
            for payment, invoice in zip(payments, latest, strict=True)
        ]
    )
    collections = DirectDebitCollection.objects.bulk_create(
        [
            DirectDebitCollection(
                submission=submission,
                invoice=invoice,
                customer_id=owner[invoice.pk],
                mandate_id=mandate_of[owner[invoice.pk]],
                payment=payment,
                amount_pence=int(invoice.gross * 100),
                processing_date=PROCESSING_DAY,
                debit_date=DEBIT_DAY,
                transaction_code="17",
            )
            for payment, invoice in zip(payments, latest, strict=True)
        ],
        batch_size=BATCH,
    )
    print(f"  {len(collections):,} Direct Debit collections", file=sys.stderr)
    return [collection.pk for collection in collections]


def arudd_report(collection_ids: list[int]) -> bytes:
    """An ARUDD report returning these collections, "refer to payer" (code 0), in the layout
    ``billing.bacs_reports`` reads (the tests' sample files)."""
    from billing.models import DirectDebitCollection

    rows = DirectDebitCollection.objects.filter(pk__in=collection_ids).values_list(
        "customer_id", "amount_pence"
    )
    items = "".join(
        f'<ReturnedDebitItem ref="BENCH{customer_id:010d}" transCode="17" returnCode="0" '
        f'returnDescription="REFER TO PAYER" originalProcessingDate="{PROCESSING_DAY}" '
        f'valueOf="{pence // 100}.{pence % 100:02d}" currency="GBP">'
        f'<PayerAccount number="66374958" ref="BENCH{customer_id:010d}" name="PAYER" sortCode="08-99-99"/>'
        "</ReturnedDebitItem>\n"
        for customer_id, pence in rows
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<BACSDocument><Data><ARUDD>'
        '<Header reportType="REFT1234" adviceNumber="001" currentProcessingDate="2026-11-18"/>'
        f'<ServiceLicenseInformation userName="BENCH" userNumber="{SERVICE_USER_NUMBER}"/>'
        "<Advice><OriginatingAccountRecords><OriginatingAccountRecord>"
        '<OriginatingAccount name="BENCH" number="55779911" sortCode="20-00-00" type="0"/>'
        f"{items}</OriginatingAccountRecord></OriginatingAccountRecords></Advice></ARUDD></Data></BACSDocument>"
    ).encode()


def baseline_unpaid(
    collection_ids: list[int], returned_on: datetime.date, due_by: datetime.date, actor: Any
) -> float:
    """The least SQL that writes the same rows as the import, set-based in one statement: the collections
    marked for re-presentation with a history row each and an audit event each, their allocations
    reversed, an unpaid-reversal ledger entry each with its audit event, and the invoices' cached
    outstanding amounts put back. Timed to its commit, then undone."""
    from django.db import connection, transaction
    from django.utils import timezone

    from billing.models import DirectDebitCollection, Invoice, LedgerEntry, PaymentAllocation

    allocation = PaymentAllocation._meta.db_table
    from accounts.models import AuditEvent

    collection_columns = ", ".join(str(field.column) for field in DirectDebitCollection._meta.concrete_fields)
    changed = ["outcome", "returned_reason_code", "returned_at", "action", "representation_due_by"]
    invoice_ids = list(
        DirectDebitCollection.objects.filter(pk__in=collection_ids).values_list("invoice_id", flat=True)
    )
    with undone_afterwards(
        [PaymentAllocation, AuditEvent, LedgerEntry, DirectDebitCollection.history.model],
        [
            (DirectDebitCollection, changed, "id = ANY(%s)", [collection_ids]),
            (Invoice, ["amount_outstanding"], "id = ANY(%s)", [invoice_ids]),
        ],
    ):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"WITH c AS (UPDATE {DirectDebitCollection._meta.db_table} SET outcome = 'returned', "
                "returned_reason_code = '0', returned_at = now(), action = 'represent', "
                f"representation_due_by = %s WHERE id = ANY(%s) RETURNING {collection_columns}), "
                f"history AS ({history_sql(DirectDebitCollection, 'c', '~')}), "
                "collection_audit AS ("
                + audit_sql(
                    "c",
                    "direct_debit.returned_unpaid",
                    "billing.directdebitcollection",
                    "jsonb_build_object('reason_code', returned_reason_code, 'action', action, "
                    "'invoice', invoice_id)",
                )
                + "), "
                f"undone AS (INSERT INTO {allocation} "
                "(amount, reason, created_at, invoice_id, payment_id, reverses_id, actor_id) "
                "SELECT -a.amount, 'Returned unpaid', now(), a.invoice_id, a.payment_id, a.id, %s "
                f"FROM {allocation} a JOIN c ON a.payment_id = c.payment_id), "
                f"entries AS (INSERT INTO {LedgerEntry._meta.db_table} "
                "(kind, amount, effective_on, reason, created_at, customer_id, payment_id, actor_id) "
                "SELECT 'unpaid_reversal', amount_pence / 100.0, %s, 'Returned unpaid', now(), "
                "customer_id, payment_id, %s FROM c RETURNING id, customer_id, amount), "
                "entry_audit AS ("
                + audit_sql(
                    "entries",
                    "ledger.unpaid_reversal",
                    "billing.ledgerentry",
                    "jsonb_build_object('customer', customer_id, 'amount', amount::text)",
                    after="(SELECT count(*) FROM c)",
                )
                + ") "
                f"UPDATE {Invoice._meta.db_table} invoice SET amount_outstanding = "
                "invoice.amount_outstanding + c.amount_pence / 100.0 "
                "FROM c WHERE invoice.id = c.invoice_id",
                [
                    due_by,
                    collection_ids,
                    timezone.now(),
                    "Returned unpaid",
                    actor.pk,
                    *audit_params(actor),
                    actor.pk,
                    returned_on,
                    actor.pk,
                    *audit_params(actor),
                ],
            )
        seconds = time.perf_counter() - started
    return seconds


def our_unpaid(report: bytes, partner: Any, actor: Any) -> tuple[float, Any]:
    from billing.services.bacs_reports import bacs_report_import

    def progress(done: int, total: int) -> None:
        if done % 2_000 == 0 or done == total:
            print(f"  {done:,} of {total:,} unpaid items", file=sys.stderr)

    started = time.perf_counter()
    record = bacs_report_import(
        data=report, filename="arudd.xml", actor=actor, partner=partner, progress=progress
    )
    return time.perf_counter() - started, record


def unpaid_not_applied(collection_ids: list[int]) -> int:
    """Collections not returned, or whose invoice is not wholly open again (cached and derived)."""
    from billing.models import DirectDebitCollection
    from billing.services.ledger import invoice_outstanding

    wrong = 0
    for collection in DirectDebitCollection.objects.filter(pk__in=collection_ids).select_related("invoice"):
        invoice = collection.invoice
        if (
            collection.outcome != DirectDebitCollection.Outcome.RETURNED
            or invoice.amount_outstanding != invoice.gross
            or invoice_outstanding(invoice) != invoice.gross
        ):
            wrong += 1
    return wrong


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with django_environment(args.database_url, keep=args.keep) as database:
        import time_machine
        from django.core.management import call_command
        from django.db import connection

        from accounts import services
        from accounts.models import Role

        print("Building (not timed)...", file=sys.stderr)
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        large = build_partner("large", args.customers)
        small = build_partner("small", max(args.customers // 100, 10))
        prepare_baseline()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"Built in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        received = AS_OF
        with time_machine.travel(datetime.datetime(2026, 12, 1, 12, tzinfo=datetime.UTC), tick=True):
            admin = services.user_create(
                email="bench.admin@bench.example",
                full_name="Bench Admin",
                role=Role.ADMINISTRATOR,
                actor=None,
            )
            finance = services.user_create(
                email="bench.finance@bench.example",
                full_name="Bench Finance",
                role=Role.FINANCE_MANAGER,
                partner=large,
                actor=None,
            )
            checkpoint()
            baseline = baseline_payments(large.pk, received, finance)
            checkpoint()
            ours, recorded = our_payments(large.pk, received, finance)
            wrong = wrongly_allocated(large.pk)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            warm_aged_debt(admin, small)  # warm: the user's permissions, the plan cache
            large_seconds, large_queries, large_total = aged_debt_measured(admin, large)
            small_seconds, small_queries, _small_total = aged_debt_measured(admin, small)
            print("Building Direct Debit collections (not timed)...", file=sys.stderr)
            collection_ids = build_collections(large, args.unpaid)
            report = arudd_report(collection_ids)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            checkpoint()
            unpaid_baseline = baseline_unpaid(collection_ids, AS_OF, datetime.date(2026, 12, 16), finance)
            checkpoint()
            unpaid_ours, imported = our_unpaid(report, large, finance)
            unpaid_wrong = unpaid_not_applied(collection_ids)

    ratio = ours / baseline if baseline else float("inf")
    print(
        f"PostgreSQL {database}; {args.customers:,} customers with {MONTHS} invoices each "
        "(and a partner a hundredth the size)"
    )
    print(
        f"payments:  {recorded:,} recorded and allocated in {ours:8.2f} s "
        f"({1e6 * ours / max(recorded, 1):.0f} us each); minimal SQL {baseline:6.2f} s; "
        f"ratio {ratio:.2f}x (target <= {RATIO_TARGET}x)"
    )
    print(
        f"aged debt: {large_seconds * 1000:7.1f} ms, {large_queries} queries over the large partner "
        f"(outstanding {large_total:,.2f}); {small_seconds * 1000:.1f} ms, {small_queries} queries over "
        f"the small one (target < {AGED_DEBT_TARGET_SECONDS:.0f} s, the same queries)"
    )
    unpaid_ratio = unpaid_ours / unpaid_baseline if unpaid_baseline else float("inf")
    print(
        f"unpaid:    {imported.applied:,} ARUDD items imported in {unpaid_ours:8.2f} s "
        f"({1e6 * unpaid_ours / max(imported.applied, 1):.0f} us each); "
        f"minimal SQL {unpaid_baseline:6.2f} s; "
        f"ratio {unpaid_ratio:.2f}x (target <= {RATIO_TARGET}x)"
    )
    failed = False
    if unpaid_wrong or imported.applied != args.unpaid or imported.rejected:
        print(
            f"FAIL: {unpaid_wrong} unpaid items not applied; {imported.applied:,} applied, "
            f"{imported.rejected:,} rejected of {args.unpaid:,}"
        )
        failed = True
    if wrong or recorded != args.customers:
        print(f"FAIL: {wrong} payments not allocated to their two oldest invoices; {recorded:,} recorded")
        failed = True
    if large_queries != small_queries:
        print(
            f"FAIL: aged debt ran {large_queries} queries for the large partner, "
            f"{small_queries} for the small"
        )
        failed = True
    if not args.smoke:
        if ratio > RATIO_TARGET:
            print(f"MISSED: payments at {ratio:.2f}x the minimal SQL (target {RATIO_TARGET}x)")
        if unpaid_ratio > RATIO_TARGET:
            print(f"MISSED: unpaid items at {unpaid_ratio:.2f}x the minimal SQL (target {RATIO_TARGET}x)")
        if large_seconds > AGED_DEBT_TARGET_SECONDS:
            print(f"MISSED: aged debt took {large_seconds:.2f} s (target {AGED_DEBT_TARGET_SECONDS} s)")
    return 1 if failed else 0


def warm_aged_debt(user: Any, partner: Any) -> None:
    from billing.selectors import aged_debt as selector

    selector(user, as_of=AS_OF, partner=partner)


if __name__ == "__main__":
    raise SystemExit(main())
