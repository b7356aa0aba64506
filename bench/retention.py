"""Benchmark: the nightly retention run over 100,000 customers, on PostgreSQL.

Creates a throwaway database (dropped at the end unless --keep; its name must contain "bench"), builds one
partner and --customers customers in bulk (bulk_create, encrypted as the services would, with a site and a
contact each, so erasure has rows to delete; none of them due yet), then runs ``retention_run`` twice in
the same database:

- small: --small-due customers made due (contract ended two years ago);
- large: --due further customers made due.

Each run is timed under tracemalloc, for the peak of
Python memory it allocated. The job works in chunks with keyset pagination, so the peak must not grow with
the number of customers due: the ratio large/small of peak memory is printed and the exit status is 1
when it exceeds --max-memory-ratio (2.0), or when any due customer is left unerased.

tracemalloc slows every Python allocation (about 4x for this job), so the times it gives are upper
bounds; --no-tracemalloc times the same runs without it, and then prints and checks no memory figures.

    .venv/bin/python bench/retention.py [--customers 100000] [--due 10000] [--small-due 1000] [--keep]
                                        [--no-tracemalloc] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bill_run import checkpoint, database_name, django_environment

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fusion_r_bench"
BATCH = 5_000
ENDED_LONG_AGO = datetime.date(2024, 6, 30)


@dataclass(frozen=True)
class Measured:
    label: str
    due: int
    seconds: float
    peak_bytes: int
    erased: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--small-due", type=int, default=1_000)
    parser.add_argument("--max-memory-ratio", type=float, default=2.0)
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a size that runs in seconds (CI: 1,000 customers, 200 and 20 due); the memory ratio is not\n"
        "checked at that size, where the fixed costs outweigh the growth it looks for",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--no-tracemalloc",
        dest="trace",
        action="store_false",
        help="time without tracemalloc (faster, truer times; no memory figures or memory check)",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"PostgreSQL database to DROP and re-create (default {DEFAULT_DATABASE_URL})",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.customers, args.due, args.small_due = 1_000, 200, 20
    if "bench" not in database_name(args.database_url):
        parser.error("the database's name must contain 'bench' (it is dropped and re-created)")
    if args.small_due + args.due > args.customers:
        parser.error("--small-due + --due must not exceed --customers")
    return args


def build(customers: int) -> None:
    from accounts import services
    from accounts.models import Contact, Customer, Site, name_tokens_rebuild

    partner = services.partner_create(code="bench", name="Bench Telecom", actor=None)
    start = datetime.date(2020, 1, 1)
    for offset in range(0, customers, BATCH):
        size = min(BATCH, customers - offset)
        made = Customer.objects.bulk_create(
            Customer(partner=partner, name=f"Bench Customer {offset + n}", contract_start=start)
            for n in range(size)
        )
        Site.objects.bulk_create(
            Site(
                customer=customer,
                label="Head office",
                address_line1=f"{customer.pk} Bench Street",
                town="Leeds",
                postcode="LS1 4AP",
            )
            for customer in made
        )
        contacts = Contact.objects.bulk_create(
            Contact(customer=customer, name=f"Person {customer.pk}", email=f"p{customer.pk}@bench.example")
            for customer in made
        )
        # bulk_create skips save(), which indexes the names' words; erasure deletes those rows too.
        name_tokens_rebuild(customers=made, contacts=contacts)
        print(f"  {offset + size:,} customers", file=sys.stderr)


def make_due(count: int) -> list[int]:
    from accounts.models import Customer

    ids = list(
        Customer.objects.filter(contract_end__isnull=True).order_by("pk").values_list("pk", flat=True)[:count]
    )
    for offset in range(0, len(ids), BATCH):
        Customer.objects.filter(pk__in=ids[offset : offset + BATCH]).update(contract_end=ENDED_LONG_AGO)
    return ids


def measure(label: str, count: int, *, trace: bool) -> Measured:
    from accounts.models import Customer
    from privacy.services.retention import retention_run

    ids = make_due(count)
    checkpoint()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    run = retention_run()
    seconds = time.perf_counter() - started
    peak = 0
    if trace:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert run is not None
    erased = Customer.objects.filter(pk__in=ids, erased_at__isnull=False).count()
    return Measured(label, count, seconds, peak, erased)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with django_environment(args.database_url, keep=args.keep) as database:
        from django.core.management import call_command
        from django.db import connection

        print("Building (not timed)...", file=sys.stderr)
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        build(args.customers)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        print(f"Built {args.customers:,} customers in {time.perf_counter() - started:.1f} s", file=sys.stderr)

        small = measure("small", args.small_due, trace=args.trace)
        large = measure("large", args.due, trace=args.trace)

    print(f"PostgreSQL {database}; {args.customers:,} customers, each with a site and a contact")
    for item in (small, large):
        memory = f", peak Python memory {item.peak_bytes / 1_048_576:.1f} MiB" if args.trace else ""
        print(
            f"{item.label:>6}: {item.due:>7,} due, {item.erased:>7,} erased in {item.seconds:8.1f} s "
            f"({1000 * item.seconds / max(item.due, 1):.1f} ms each){memory}"
        )
    memory_ratio = large.peak_bytes / max(small.peak_bytes, 1)
    print(
        f"large/small: {large.due / max(small.due, 1):.1f}x the customers, "
        f"{large.seconds / max(small.seconds, 1e-9):.2f}x the time"
        + (f", {memory_ratio:.2f}x the peak memory" if args.trace else " (not traced: no memory figures)")
    )
    failed = False
    if args.trace and not args.smoke and memory_ratio > args.max_memory_ratio:
        print(f"FAIL: peak memory grew {memory_ratio:.2f}x (limit {args.max_memory_ratio}x)")
        failed = True
    for item in (small, large):
        if item.erased != item.due:
            print(f"FAIL: {item.due - item.erased} of the {item.label} run's due customers were left")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
