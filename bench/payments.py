"""Benchmark: payments and aged debt at 100,000 customers with 12 months of invoices, on PostgreSQL.

Creates a throwaway database (dropped at the end unless --keep; its name must contain "bench"), builds (not
timed) a large partner with --customers customers and a small partner with a hundredth of them, each
customer with twelve monthly finalised invoices posted to the ledger (INSERT ... SELECT), then times:

- payments: one payment per customer of the large partner, paying exactly its two oldest invoices, recorded
  by ``billing.services.payments.payments_record_many`` (history, ledger entry, audit event, allocation
  oldest first). The baseline is the least SQL doing the same work in the same run and database: the
  payments, their ledger entries and the allocations to each customer's two oldest invoices in one
  statement, rolled back afterwards. Target: at most 3x the baseline.
- aged debt: ``billing.selectors.aged_debt`` for an administrator, once over the large partner and once
  over the small one: the time (target: under 1 s) and the queries (target: the same number for both).

The exit status is 1 when the payments were not allocated as recorded (every payment wholly allocated to
its customer's two oldest invoices) or the aged debt's queries grow with the partner; the time targets are
printed, not checked, at --smoke size.

    .venv/bin/python bench/payments.py [--customers 100000] [--keep] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
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
    if "bench" not in database_name(args.database_url):
        parser.error("the database's name must contain 'bench' (it is dropped and re-created)")
    if args.customers < 100:
        parser.error("--customers must be at least 100")
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


def baseline_payments(partner_id: int, received: datetime.date) -> float:
    """The least SQL that records the same payments, entries and allocations; timed, then rolled back."""
    from django.db import connection, transaction

    from billing.models import LedgerEntry, Payment, PaymentAllocation

    class Rollback(Exception):
        pass

    started = time.perf_counter()
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"WITH oldest AS ({oldest_two_sql()}), "
                    "due AS (SELECT customer_id, sum(gross) AS amount FROM oldest GROUP BY customer_id), "
                    f"paid AS (INSERT INTO {Payment._meta.db_table} "
                    "(method, amount, received_on, reference, created_at, customer_id) "
                    "SELECT 'bank_transfer', amount, %s, '', now(), customer_id FROM due "
                    "RETURNING id, customer_id, amount), "
                    f"entries AS (INSERT INTO {LedgerEntry._meta.db_table} "
                    "(kind, amount, effective_on, reason, created_at, customer_id, payment_id) "
                    "SELECT 'payment', -amount, %s, '', now(), customer_id, id FROM paid) "
                    f"INSERT INTO {PaymentAllocation._meta.db_table} "
                    "(amount, reason, created_at, invoice_id, payment_id) "
                    "SELECT oldest.gross, '', now(), oldest.id, paid.id FROM paid "
                    "JOIN oldest ON oldest.customer_id = paid.customer_id",
                    [partner_id, received, received],
                )
            raise Rollback
    except Rollback:
        pass
    return time.perf_counter() - started


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
    """Payments of the partner not wholly allocated to exactly their customer's two oldest invoices."""
    from django.db import connection

    from billing.models import Payment, PaymentAllocation

    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH oldest AS ({oldest_two_sql()}) "
            f"SELECT count(*) FROM {Payment._meta.db_table} p "
            "JOIN accounts_customer c ON c.id = p.customer_id AND c.partner_id = %s "
            "WHERE p.amount <> (SELECT coalesce(sum(a.amount), 0) FROM "
            f"{PaymentAllocation._meta.db_table} a JOIN oldest o ON o.id = a.invoice_id "
            "WHERE a.payment_id = p.id) "
            f"OR (SELECT count(*) FROM {PaymentAllocation._meta.db_table} a WHERE a.payment_id = p.id) <> 2",
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
            baseline = baseline_payments(large.pk, received)
            checkpoint()
            ours, recorded = our_payments(large.pk, received, finance)
            wrong = wrongly_allocated(large.pk)
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
            warm_aged_debt(admin, small)  # warm: the user's permissions, the plan cache
            large_seconds, large_queries, large_total = aged_debt_measured(admin, large)
            small_seconds, small_queries, _small_total = aged_debt_measured(admin, small)

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
    failed = False
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
        if large_seconds > AGED_DEBT_TARGET_SECONDS:
            print(f"MISSED: aged debt took {large_seconds:.2f} s (target {AGED_DEBT_TARGET_SECONDS} s)")
    return 1 if failed else 0


def warm_aged_debt(user: Any, partner: Any) -> None:
    from billing.selectors import aged_debt as selector

    selector(user, as_of=AS_OF, partner=partner)


if __name__ == "__main__":
    raise SystemExit(main())
