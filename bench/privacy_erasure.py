"""Benchmark: erasure of a customer with 100,000 call records and history, on PostgreSQL.

Creates a throwaway database (dropped at the end unless --keep; its name must contain "bench"), builds one
partner with three customers through the accounts services, each with sites, contacts (corrected a few
times, so their history has rows), lines, a Direct Debit mandate, a portal user and call records inserted
in bulk (encrypted as the importer does):

- small: --small-calls call records (1,000);
- large: --calls call records (100,000), more sites, lines and history;
- baseline: the same as large, removed by a minimal hand-written SQL (DELETE of its calls, lines,
  contacts, sites, mandate and their history rows by customer id), the least any erasure must do.

It then times ``erasure_preview`` and ``customer_erase`` of small and large, counts their queries, and
prints the figures, the ratio of large to baseline and of large to small. Exits 1 when the query counts of
small and large differ (erasure would then loop per row) or when anything of large is left.

    .venv/bin/python bench/privacy_erasure.py [--calls 100000] [--small-calls 1000] [--keep]
                                              [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bill_run import checkpoint, database_name, django_environment

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fusion_p1_bench"
BATCH = 5_000
# The least an erasure must do, by hand: delete the customer's rows (name hashes before contacts) and history.
BASELINE_DELETES = (
    "DELETE FROM billing_callrecord WHERE customer_id = %s",
    "DELETE FROM accounts_provisioningorder WHERE customer_id = %s",
    "DELETE FROM accounts_paymentdetails WHERE customer_id = %s",
    "DELETE FROM accounts_nametoken WHERE customer_id = %s",
    "DELETE FROM accounts_contact WHERE customer_id = %s",
    "DELETE FROM accounts_line WHERE customer_id = %s",
    "DELETE FROM accounts_site WHERE customer_id = %s",
    "DELETE FROM accounts_historicalpaymentdetails WHERE customer_id = %s",
    "DELETE FROM accounts_historicalcontact WHERE customer_id = %s",
    "DELETE FROM accounts_historicalline WHERE customer_id = %s",
    "DELETE FROM accounts_historicalsite WHERE customer_id = %s",
)

if TYPE_CHECKING:
    from accounts.models import Customer, Partner, User


@dataclass(frozen=True)
class Timed:
    label: str
    seconds: float
    queries: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--small-calls", type=int, default=1_000)
    parser.add_argument(
        "--smoke", action="store_true", help="a size that runs in seconds (CI): 2,000 and 200 calls"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"PostgreSQL database to DROP and re-create (default {DEFAULT_DATABASE_URL})",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls, args.small_calls = 2_000, 200
    if "bench" not in database_name(args.database_url):
        parser.error("the database's name must contain 'bench' (it is dropped and re-created)")
    return args


def numbers(block: int) -> list[str]:
    """Valid UK geographic numbers (Ofcom drama ranges), a thousand per block, none shared."""
    prefix = ("0113496", "0161496", "0117496")[block]
    return [f"{prefix}{n:04d}" for n in range(1000)]


def build_customer(
    partner: Partner, agent: User, *, name: str, block: int, sites: int, lines: int, calls: int
) -> Customer:
    from accounts import services
    from accounts.models import Role
    from billing.models import CallRecord

    customer = services.customer_create(
        partner=partner, name=name, contract_start=datetime.date(2024, 1, 1), actor=agent
    )
    made_sites = [
        services.site_create(
            customer=customer,
            actor=agent,
            label=f"Site {n}",
            address_line1=f"{n} Bench Street",
            town="Leeds",
            postcode="LS1 4AP",
        )
        for n in range(sites)
    ]
    for n in range(sites):
        contact = services.contact_create(
            customer=customer,
            actor=agent,
            name=f"Person {n}",
            email=f"p{n}.{block}@bench.example",
            phone="07700 100123",
        )
        for correction in range(3):
            services.contact_update(
                contact=contact, actor=agent, phone=f"07700 1001{correction}{n % 10}", reason="Correction"
            )
    clis = numbers(block)[:lines]
    made_lines = [
        services.line_create(
            customer=customer,
            cli=cli,
            line_type="wlr_analogue",
            start_date=datetime.date(2024, 1, 1),
            actor=agent,
            site=made_sites[n % sites],
        )
        for n, cli in enumerate(clis)
    ]
    services.payment_details_set(
        customer=customer,
        actor=agent,
        account_holder=name,
        sort_code="12-34-56",
        account_number="12345678",
        mandate_reference=f"BENCH{block}",
    )
    services.user_create(
        email=f"portal{block}@bench.example",
        full_name=f"Portal {block}",
        role=Role.CUSTOMER,
        actor=None,
        customer=customer,
    )
    started = datetime.datetime(2025, 1, 1, 9, tzinfo=datetime.UTC)
    for first in range(0, calls, BATCH):
        batch = []
        for n in range(first, min(first + BATCH, calls)):
            line = made_lines[n % len(made_lines)]
            batch.append(
                CallRecord(
                    call_reference=f"B{block}-{n}",
                    partner=partner,
                    cli=line.cli,  # encrypted by the field, as the importer stores it
                    cli_index=line.cli_index,
                    dialled_number="01134960999",
                    dialled_prefix="0113",
                    started_at=started + datetime.timedelta(minutes=n % 40_000),
                    started_on=(started + datetime.timedelta(minutes=n % 40_000)).date(),
                    duration_seconds=60,
                    call_type="voice",
                    line=line,
                    customer=customer,
                )
            )
        CallRecord.objects.bulk_create(batch)
    return customer


def baseline_delete(customer: Customer) -> float:
    """The least an erasure must do, by hand: delete the customer's rows and their history by id."""
    from django.db import connection, transaction

    checkpoint()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in BASELINE_DELETES:
            cursor.execute(statement, [customer.pk])
    return time.perf_counter() - started


def timed(label: str, work: Callable[[], object]) -> Timed:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    checkpoint()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        work()
        seconds = time.perf_counter() - started
    return Timed(label, seconds, len(queries))


def left_of(customer: Customer) -> int:
    from accounts.models import Contact, Line, Site
    from billing.models import CallRecord

    return (
        CallRecord.objects.filter(customer=customer).count()
        + Line.history.filter(customer_id=customer.pk).count()
        + Contact.history.filter(customer_id=customer.pk).count()
        + Site.objects.filter(customer=customer).count()
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with django_environment(args.database_url, keep=args.keep) as database:
        from django.core.management import call_command
        from django.db import connection

        from accounts import services
        from accounts.models import Role
        from billing.models import CallRecord
        from privacy.erasure import customer_erase, erasure_preview

        print("Building (not timed)...", file=sys.stderr)
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        partner = services.partner_create(code="bench", name="Bench Telecom", actor=None)
        agent = services.user_create(
            email="agent@bench.example",
            full_name="Agent",
            role=Role.BILLING_AGENT,
            actor=None,
            partner=partner,
        )
        dpo = services.user_create(
            email="dpo@bench.example", full_name="DPO", role=Role.DATA_PROTECTION_OFFICER, actor=None
        )
        small = build_customer(
            partner, agent, name="Small Ltd", block=0, sites=1, lines=2, calls=args.small_calls
        )
        large = build_customer(
            partner, agent, name="Large Ltd", block=1, sites=20, lines=200, calls=args.calls
        )
        base = build_customer(
            partner, agent, name="Baseline Ltd", block=2, sites=20, lines=200, calls=args.calls
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        build_seconds = time.perf_counter() - started
        large_calls = CallRecord.objects.filter(customer=large).count()

        erasure_preview(customer=small)  # content types cached, as in a running process
        results = [
            timed("preview small", lambda: erasure_preview(customer=small)),
            timed("preview large", lambda: erasure_preview(customer=large)),
            timed("erase small", lambda: customer_erase(customer=small, actor=dpo, reason="Benchmark")),
            timed("erase large", lambda: customer_erase(customer=large, actor=dpo, reason="Benchmark")),
            timed("erase large again", lambda: customer_erase(customer=large, actor=dpo, reason="Benchmark")),
        ]
        baseline_seconds = baseline_delete(base)
        by_label = {result.label: result for result in results}

        print(f"\n{database}; built in {build_seconds:.1f} s")
        print(f"call records: small {args.small_calls:,}, large {large_calls:,}")
        print(f"{'step':<20} {'seconds':>9} {'queries':>8}")
        for result in results:
            print(f"{result.label:<20} {result.seconds:>9.3f} {result.queries:>8}")
        print(f"{'baseline raw SQL':<20} {baseline_seconds:>9.3f} {len(BASELINE_DELETES):>8}")
        erase_large = by_label["erase large"].seconds
        print(f"erase large / baseline: {erase_large / baseline_seconds:.2f}x")
        print(f"erase large / erase small: {erase_large / by_label['erase small'].seconds:.1f}x time")
        checks = {
            "preview queries equal (small, large)": by_label["preview small"].queries
            == by_label["preview large"].queries,
            "erase queries equal (small, large)": by_label["erase small"].queries
            == by_label["erase large"].queries,
            "nothing left of large": left_of(large) == 0,
        }
        for label, ok in checks.items():
            print(f"{'ok' if ok else 'MISSED'}: {label}")
        return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
