"""Benchmark: the data portability export of a customer with 100,000 call records, on PostgreSQL.

Creates a throwaway database (dropped at the end unless --keep), builds two customers of one partner with
Site Details and payment details, gives one --calls call records and the other a tenth of them, then for
each customer, in a fresh child process (so its peak resident memory is its own):

- baseline: one server-side cursor over the customer's calls, decrypting the two encrypted columns of every
  row and writing nothing: the least any export must do;
- ours: privacy.portability.write_export, the zip of JSON and CSV the export task writes, timed;
- the same export again under tracemalloc, for the peak of Python memory it allocated.

It prints time, rows per second, the ratio to the baseline, the zip's size, the peak of traced memory and
the growth of the process's peak RSS (ru_maxrss) during the export. The export streams, so memory must not
grow with the rows: the exit status is 1 when the large customer's traced peak is more than 1.5x the
small one's, or when an export's row count differs from the database.

    .venv/bin/python bench/privacy_export.py [--calls 100000] [--keep] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fusion_privacy_bench"
MEMORY_GROWTH_LIMIT = 1.5
BATCH = 5000


@dataclass(frozen=True)
class Measurement:
    calls: int
    rows_exported: int
    baseline_seconds: float
    export_seconds: float
    zip_bytes: int
    traced_peak_bytes: int
    rss_growth_kb: int
    rss_peak_kb: int

    @property
    def ratio(self) -> float:
        return self.export_seconds / self.baseline_seconds if self.baseline_seconds else float("inf")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--calls", type=int, default=100_000, help="calls of the large customer (default 100000)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a size that runs in seconds (CI: 2,000 calls); the memory limit is not checked at that size",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="dropped and re-created")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # child: the customer id to export
    args = parser.parse_args(argv)
    if args.smoke:
        args.calls = 2_000
    if "bench" not in database_name(args.database_url):
        parser.error("the database's name must contain 'bench' (it is dropped and re-created)")
    if args.calls < 1000:
        parser.error("--calls must be at least 1000")
    return args


def database_name(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url).get("dbname") or "")


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database_name(url))))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database_name(url))))


def drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database_name(url))))


def setup_django(url: str) -> None:
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fusion_site.settings")
    # Overwritten, not defaulted: a DATABASE_URL left in the shell or .env must never get bench data.
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.conf import settings
    from django.db import connection

    django.setup()
    settings.DEBUG = False  # with DEBUG on Django keeps every query in memory, which is not what runs
    if connection.vendor != "postgresql":
        raise SystemExit("The benchmark needs PostgreSQL.")


@contextmanager
def bench_database(url: str, *, keep: bool) -> Iterator[None]:
    recreate_database(url)
    try:
        setup_django(url)
        yield
    finally:
        from django.db import connections

        connections.close_all()
        if keep:
            print(f"\nKept the database: {url}")
        else:
            drop_database(url)


def build(calls: int) -> tuple[int, int, float]:
    """Two customers with Site Details; returns (large id, small id, seconds)."""
    from django.core.management import call_command

    from accounts import services
    from accounts.models import Line
    from billing.models import CallRecord
    from fusion_site.crypto import blind_index

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    actor = services.system_user(job="bench")
    partner = services.partner_create(code="bench", name="Bench Telecom Ltd", actor=actor)
    made = []
    for number, count in enumerate((calls, calls // 10)):
        customer = services.customer_create(
            partner=partner,
            name=f"Bench Customer {number}",
            contract_start=datetime.date(2024, 1, 1),
            actor=actor,
        )
        site = services.site_create(
            customer=customer,
            actor=actor,
            label="Head office",
            address_line1="1 Park Row",
            town="Leeds",
            postcode="LS1 5AB",
        )
        services.contact_create(
            customer=customer,
            actor=actor,
            name="Jane Smith",
            email=f"jane{number}@example.com",
            phone="07700 100123",
            role="primary",
        )
        line: Line = services.line_create(
            customer=customer,
            cli=f"0113 496 000{number}",
            line_type=Line.LineType.WLR_ANALOGUE,
            start_date=datetime.date(2024, 1, 1),
            actor=actor,
            site=site,
        )
        services.payment_details_set(
            customer=customer,
            actor=actor,
            account_holder="Jane Smith",
            sort_code="20-40-60",
            account_number="31226819",
            mandate_reference=f"DDBENCH{number}",
        )
        first = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
        cli_index = blind_index("phone", line.cli)
        for offset in range(0, count, BATCH):
            CallRecord.objects.bulk_create(
                CallRecord(
                    call_reference=f"BENCH-{uuid.uuid4().hex}",
                    partner_id=partner.pk,
                    cli=line.cli,
                    cli_index=cli_index,
                    dialled_number=f"0113496{n % 10000:04d}",
                    dialled_prefix="0113",
                    started_at=first + datetime.timedelta(seconds=30 * n),
                    started_on=(first + datetime.timedelta(seconds=30 * n)).date(),
                    duration_seconds=30 + n % 600,
                    call_type="voice",
                    line=line,
                    customer=customer,
                )
                for n in range(offset, min(offset + BATCH, count))
            )
        made.append(customer.pk)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return made[0], made[1], time.perf_counter() - started


def baseline(customer_id: int) -> tuple[float, int]:
    """Read and decrypt every call of the customer through one server-side cursor; write nothing."""
    from django.db import connection, transaction

    from fusion_site import crypto

    started = time.perf_counter()
    rows = 0
    with transaction.atomic(), connection.connection.cursor(name="bench_baseline") as cursor:
        cursor.itersize = 2000
        cursor.execute(
            "SELECT call_reference, cli, dialled_number, started_at, duration_seconds, cost "
            "FROM billing_callrecord WHERE customer_id = %s ORDER BY started_at, id",
            [customer_id],
        )
        for row in cursor:
            crypto.decrypt(row[1])
            crypto.decrypt(row[2])
            rows += 1
    return time.perf_counter() - started, rows


def measure(customer_id: int) -> dict[str, float | int]:
    """Runs in a child process: baseline, timed export, then the export under tracemalloc."""
    from django.utils import timezone

    from accounts.models import Customer
    from privacy import portability

    customer = Customer.objects.get(pk=customer_id)
    baseline_seconds, calls = baseline(customer_id)
    with tempfile.TemporaryDirectory(prefix="fusion-bench-") as directory:
        destination = Path(directory) / "export.zip"
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        counts = portability.write_export(customer, destination, generated_at=timezone.now())
        export_seconds = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        zip_bytes = destination.stat().st_size
        destination.unlink()
        tracemalloc.start()
        portability.write_export(customer, destination, generated_at=timezone.now())
        _current, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "calls": calls,
        "rows_exported": counts["call_records"],
        "baseline_seconds": baseline_seconds,
        "export_seconds": export_seconds,
        "zip_bytes": zip_bytes,
        "traced_peak_bytes": traced_peak,
        "rss_growth_kb": rss_after - rss_before,
        "rss_peak_kb": rss_after,
    }


def measure_in_child(url: str, customer_id: int) -> Measurement:
    # Our own interpreter and script with arguments we built: no untrusted input reaches the command.
    output = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--database-url", url, "--measure", str(customer_id)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": url},
    ).stdout
    return Measurement(**json.loads(output.strip().splitlines()[-1]))


def report(build_seconds: float, large: Measurement, small: Measurement, *, smoke: bool) -> bool:
    print(
        f"\nBuilt two customers ({large.calls:,} and {small.calls:,} calls) "
        f"in {build_seconds:.1f} s (not timed)\n"
    )
    print(
        f"{'calls':>9} {'baseline s':>11} {'export s':>9} {'ratio':>6} {'rows/s':>9} {'zip MB':>7} "
        f"{'traced peak MB':>15} {'RSS growth MB':>14} {'RSS peak MB':>12}"
    )
    for m in (small, large):
        print(
            f"{m.calls:>9,} {m.baseline_seconds:>11.2f} {m.export_seconds:>9.2f} {m.ratio:>5.1f}x "
            f"{m.calls / m.export_seconds:>9,.0f} {m.zip_bytes / 1e6:>7.2f} "
            f"{m.traced_peak_bytes / 1e6:>15.2f} "
            f"{m.rss_growth_kb / 1024:>14.1f} {m.rss_peak_kb / 1024:>12.1f}"
        )
    growth = large.traced_peak_bytes / small.traced_peak_bytes
    ok = True
    print(
        f"\nTraced peak, {large.calls // small.calls}x the calls: {growth:.2f}x the memory "
        f"(limit {MEMORY_GROWTH_LIMIT}x)"
    )
    if smoke:
        print("(smoke size: the memory limit is not checked; fixed costs outweigh the growth it looks for)")
    elif growth > MEMORY_GROWTH_LIMIT:
        print("FAIL: export memory grows with the number of calls")
        ok = False
    for m in (small, large):
        if m.rows_exported != m.calls:
            print(f"FAIL: exported {m.rows_exported} call records of {m.calls}")
            ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure is not None:
        setup_django(args.database_url)
        print(json.dumps(measure(args.measure)))
        return 0
    with bench_database(args.database_url, keep=args.keep):
        print(f"Building {args.calls:,} + {args.calls // 10:,} calls...", file=sys.stderr)
        large_id, small_id, build_seconds = build(args.calls)
        from django.db import connections

        connections.close_all()
        small = measure_in_child(args.database_url, small_id)
        large = measure_in_child(args.database_url, large_id)
        return 0 if report(build_seconds, large, small, smoke=args.smoke) else 1


if __name__ == "__main__":
    sys.exit(main())
