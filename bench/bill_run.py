"""Benchmark: one month of billing (call import, rating, bill run calculation) on PostgreSQL.

The issue's size: 10,000 customers, 20,000 lines and 1,000,000 call records. The script creates a throwaway
database (dropped at the end unless --keep), builds the customers through accounts.demo.DemoBuilder, writes a
CSV of last month's calls from their lines, then times, in the same run:

- baseline A: a raw COPY of that file into a plain table of text columns (psycopg; no parsing, no index);
- ours: call_import_run on the same file: parse, validate, encrypt; per batch, COPY to staging,
  rate there, store (--loaders batches at once, each on its own connection);
- ours: bill_run_start_calculation for the month, then the chunk tasks it queued, run by
  --workers processes at once as that many Celery workers would;
- baseline B: ANALYZE of the calls, then one read-only hand-written SQL statement computing the same
  invoices (see MINIMAL_SQL); PostgreSQL runs it as a parallel plan;
- floors of the import: P, its Python work alone; F, storing its finished rows alone (--no-floors skips).

Targets (from the issue): import within 5x of baseline A; rating + calculation within 3x of baseline B;
import + calculation (the whole month) under 60 s. Every figure and ratio is printed. The exit status is 1
when a target is missed, the run does not end calculated, or baseline B disagrees with the invoices.

    .venv/bin/python bench/bill_run.py [--customers 10000] [--lines-per-customer 2] [--calls 1000000]
                                      [--loaders N] [--workers N] [--no-floors]
                                      [--keep] [--profile] [--database-url URL]
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import datetime
import functools
import io
import math
import multiprocessing
import os
import pstats
import random
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fusion_bench"
CSV_COLUMNS = ("cli", "dialled_number", "start_time", "duration", "call_type", "call_reference")
# The targets of issue 19 ("ten times the size"), judged on the medians of --repeat runs.
IMPORT_TARGET = 1.5  # x the larger of the import's floors, P or F
RATE_AND_CALCULATE_TARGET = 2.5  # x minimal SQL
MONTH_TARGET_SECONDS = 300.0  # import + rating + bill run, at 100,000 customers and 10,000,000 calls
LINEARITY_TARGET = 1.2  # cost per call at the full size / at a tenth of it
LINEARITY_FROM_CALLS = 10_000_000  # --linearity is on from this size

# DemoBuilder draws each line's number at random from six Ofcom drama blocks of 1,000, so at 20,000 lines
# most numbers would belong to two or three lines at once. Rating would then bill each call to whichever
# of those lines PostgreSQL happens to join first, and no baseline could agree. Each line here gets a
# number of its own, from blocks of 10,000 that phonenumbers accepts as valid UK geographic numbers.
UNIQUE_CLI_BLOCKS = (
    "+44113496",
    "+44161496",
    "+44117496",
    "+44131496",
    "+44121496",
    "+44141496",
    "+44151496",
    "+44114496",
    "+44116496",
    "+44118496",
    "+44191498",
    "+44207946",
)
CLIS_PER_BLOCK = 10_000

if TYPE_CHECKING:
    from accounts.models import Partner, User
    from billing.models import BillRun, CallImport


@dataclass(frozen=True)
class World:
    partner: Partner
    agent: User
    customers: int
    lines: int
    clis: list[str]  # national format, as a CDR carries them
    build_seconds: float


@dataclass(frozen=True)
class CallFile:
    path: Path
    rows: int
    size_bytes: int
    month: tuple[datetime.date, datetime.date]
    seconds: float


@dataclass(frozen=True)
class CustomerBill:
    """What both sides agree an invoice says: usage lines (band, calls, amount), rentals, net, VAT, gross."""

    usage: tuple[tuple[str, int, Decimal], ...]
    rentals: Decimal
    net: Decimal
    vat: Decimal
    gross: Decimal


@dataclass
class Phases:
    """Seconds spent in named functions of the app, measured by wrapping them for the length of a block.

    Only functions called a few times per run are wrapped (per batch, per chunk), so the wrapping costs
    nothing measurable; per-row functions are left to --profile."""

    durations: dict[str, list[float]] = field(default_factory=dict)
    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    @contextmanager
    def timing(self, targets: list[tuple[object, str, str]]) -> Iterator[None]:
        with ExitStack() as stack:
            for owner, attribute, label in targets:
                wrapped = self._timed(label, getattr(owner, attribute))
                stack.enter_context(mock.patch.object(owner, attribute, new=wrapped))
            yield

    def _timed(self, label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                self.durations.setdefault(label, []).append(ended - started)
                self.spans.setdefault(label, []).append((started, ended))

        return timed

    def get(self, label: str) -> float:
        return sum(self.durations.get(label, []))

    def wall(self, label: str) -> float:
        """Seconds during which at least one call of ``label`` was running (calls overlap when several
        threads make them): the union of their spans, as a stopwatch would have timed it."""
        total, reached = 0.0, float("-inf")
        for started, ended in sorted(self.spans.get(label, [])):
            if ended > reached:
                total += ended - max(started, reached)
                reached = ended
        return total

    def count(self, label: str) -> int:
        return len(self.durations.get(label, []))

    def last(self, label: str) -> float:
        return (self.durations.get(label) or [0.0])[-1]


@dataclass
class Results:
    raw_copy_seconds: float = 0.0
    raw_copy_rows: int = 0
    import_seconds: float = 0.0
    calculation_seconds: float = 0.0
    minimal_sql_seconds: float = 0.0
    loaders: int = 1
    parse_floor_seconds: float = 0.0
    storage_floor_seconds: float = 0.0
    imported: int = 0
    rejected: int = 0
    suspense: int = 0
    run_status: str = ""
    chunks: int = 0
    invoices: int = 0
    billed_calls: int = 0
    baseline_calls: int = 0
    usage_mismatches: int = 0
    total_mismatches: int = 0
    missing: int = 0
    mismatch_examples: list[str] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    phases: Phases = field(default_factory=Phases)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000, help="customers (default 10000)")
    parser.add_argument(
        "--lines-per-customer", type=int, default=2, help="lines of each customer (default 2)"
    )
    parser.add_argument("--calls", type=int, default=1_000_000, help="call records (default 1000000)")
    parser.add_argument(
        "--loaders",
        type=int,
        default=None,
        help="import batches loading at once (default: billing.importer.pipeline.LOADERS); their statements\n"
        "then overlap, and the phase figures of the import are sums, rating's included",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes running the chunk tasks at once, as Celery workers would (default: one per CPU)",
    )
    parser.add_argument(
        "--no-floors",
        dest="floors",
        action="store_false",
        help="skip the two floors of the import (its Python work alone; storing its rows alone)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a size that runs in seconds (CI: 50 customers, 2,000 calls, no floors); the invoices must\n"
        "still agree with B, but the timing targets are not checked at that size",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run the timed phases (A, import, calculation, B, floors) N times on the same data, and judge\n"
        "the targets on the median of each ratio (its spread min-max is printed) (default 1)",
    )
    parser.add_argument(
        "--linearity",
        action="store_true",
        default=None,
        help="also import and bill a tenth of the calls, and compare the cost per call (import + rating +\n"
        f"bill run) with the full size's (on by default from {LINEARITY_FROM_CALLS:,} calls)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the import and the calculation under cProfile and print the top functions\n"
        "(the timed figures then include the profiler's overhead)",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"PostgreSQL database to DROP and re-create (default {DEFAULT_DATABASE_URL})",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.customers, args.calls, args.floors = 50, 2_000, False
    if args.linearity is None:
        args.linearity = args.calls >= LINEARITY_FROM_CALLS
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.customers < 1 or args.lines_per_customer < 1 or args.calls < 1 or args.workers < 1:
        parser.error("--customers, --lines-per-customer, --calls and --workers must be at least 1")
    if args.loaders is not None and args.loaders < 1:
        parser.error("--loaders must be at least 1")
    if args.customers * args.lines_per_customer > len(UNIQUE_CLI_BLOCKS) * CLIS_PER_BLOCK:
        parser.error(f"at most {len(UNIQUE_CLI_BLOCKS) * CLIS_PER_BLOCK:,} lines (distinct numbers)")
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL")
    # The database is dropped: a name without "bench" in it is more likely a real one given by mistake.
    if "bench" not in database_name(args.database_url):
        parser.error("the database's name must contain 'bench' (it is dropped and re-created)")
    return args


def database_name(url: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url).get("dbname") or "")


def recreate_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    name = sql.Identifier(database_name(url))
    # CREATE/DROP DATABASE cannot run in a transaction, hence autocommit on the maintenance database.
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(name))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def drop_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(database_name(url))))


@contextmanager
def django_environment(url: str, *, keep: bool) -> Iterator[str]:
    """Create the database, point Django at it and set Django up; yields the server's version."""
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fusion_site.settings")
    # Overwritten, not defaulted: a DATABASE_URL left in the shell or .env must never get bench data.
    os.environ["DATABASE_URL"] = url
    # Chunks must run in-process (Celery eager mode, the embedded default), whatever the shell says:
    # with a broker they would be queued to workers and the timing would end before the work does.
    # Empty rather than unset, so that a .env file (read without overriding) cannot set them either.
    os.environ["REDIS_URL"] = os.environ["CELERY_BROKER_URL"] = ""
    os.environ.pop("CELERY_RESULT_BACKEND", None)
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
    # Celery logs every eager task at INFO; one line per chunk would bury the progress bars.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    recreate_database(url)
    try:
        import django
        from django.conf import settings
        from django.db import connection, connections

        django.setup()
        # Time what production runs: with DEBUG on, Django keeps every query in memory with its SQL.
        settings.DEBUG = False
        if connection.vendor != "postgresql" or not settings.CELERY_TASK_ALWAYS_EAGER:
            raise SystemExit("The benchmark needs PostgreSQL and in-process (eager) Celery tasks.")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version")
                (version,) = cursor.fetchone()
                # The figures depend on these as much as on the code; print them with the results.
                shown = []
                for setting in ("shared_buffers", "max_wal_size", "synchronous_commit", "autovacuum"):
                    cursor.execute(f"SHOW {setting}")
                    shown.append(f"{setting}={cursor.fetchone()[0]}")
            yield f"PostgreSQL {version.split()[0]} ({', '.join(shown)})"
        finally:
            connections.close_all()
    finally:
        if keep:
            print(f"\nKept the database: {url}")
        else:
            drop_database(url)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def checkpoint() -> None:
    """Flush dirty pages before a timed phase, so it does not pay for the previous phase's writes."""
    from django.db import DatabaseError, connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
    except DatabaseError:
        pass  # needs superuser or pg_checkpoint; without it the timings are only a little noisier


def previous_month(today: datetime.date) -> tuple[datetime.date, datetime.date]:
    last_day = today.replace(day=1) - datetime.timedelta(days=1)
    return last_day.replace(day=1), last_day


def unique_clis() -> Iterator[str]:
    for block in UNIQUE_CLI_BLOCKS:
        for number in range(CLIS_PER_BLOCK):
            yield f"{block}{number:04d}"


def build(customers: int, lines_per_customer: int) -> World:
    """A partner, its billing agent, customers with lines in bulk, the UK tariff as the partner's default
    and one rental per line: what a month of billing needs, made as the demo data is."""
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from tqdm import tqdm

    from accounts import demo as accounts_demo
    from accounts import services
    from accounts.models import Line, Role
    from accounts.validation import national_phone_digits
    from billing.demo import billing_profile, line_rentals, uk_tariff

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    partner = services.partner_create(
        code="bench", name="Bench Telecom Ltd", vat_number="GB123456789", actor=None
    )
    now = timezone.now()
    agent = services.user_create(
        email="billing@bench.example",
        full_name="Bench Billing Agent",
        role=Role.BILLING_AGENT,
        actor=None,
        partner=partner,
        confidentiality_signed_at=now,
        gdpr_training_completed_at=now,
    )
    builder = accounts_demo.DemoBuilder(seed=2026, actor=services.system_user(job="bench"))
    # The demo's 6,000 drama-range numbers are too few for 20,000 lines, each of which needs its own.
    builder.line_numbers = unique_clis()
    with tqdm(total=customers, desc="Building customers", unit="customer") as bar:
        builder.customers(
            partner, customers, sizes=lambda index: (1, lines_per_customer), progress=bar.update
        )
    billing_profile(partner, default_tariff=uk_tariff())
    lines = list(Line.objects.filter(customer__partner=partner).order_by("pk"))
    line_rentals(lines)
    clis = [national_phone_digits(line.cli) for line in lines]
    if len(set(clis)) != len(clis):
        raise RuntimeError("Two lines share a number; rating could not tell their calls apart.")
    # Reference data in production has long been analysed by autovacuum; the plans should assume so.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return World(
        partner=partner,
        agent=agent,
        customers=customers,
        lines=len(lines),
        clis=clis,
        build_seconds=time.perf_counter() - started,
    )


def write_calls(
    directory: Path, clis: list[str], count: int, month: tuple[datetime.date, datetime.date]
) -> CallFile:
    """A month of calls from random lines to every prefix of the UK tariff, so each band is billed and
    the longest-prefix rule (00 vs 00353 vs 0035387) matters. Start times are UK local, as a CDR gives."""
    from billing.demo import UK_RATES

    started = time.perf_counter()
    rng = random.Random(2026)
    # National numbers have 11 digits; international ones 00 + country code + number, 13 here.
    destinations = [
        (prefix, (13 if prefix.startswith("00") else 11) - len(prefix)) for prefix, *_ in UK_RATES
    ]
    first = datetime.datetime.combine(month[0], datetime.time.min)  # naive: UK local, as a CDR gives it
    seconds = ((month[1] - month[0]).days + 1) * 86_400
    path = directory / f"calls-{month[0]:%Y-%m}.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for number in range(count):
            prefix, rest = rng.choice(destinations)
            dialled = f"{prefix}{rng.randrange(10**rest):0{rest}d}"
            # After 00 comes a country code: never 0 (the import rejects it), nor 44 (a UK number, which
            # the import rates in its national form).
            while dialled.startswith(("000", "0044")):
                dialled = f"{prefix}{rng.randrange(10**rest):0{rest}d}"
            writer.writerow(
                (
                    clis[rng.randrange(len(clis))],
                    dialled,
                    (first + datetime.timedelta(seconds=rng.randrange(seconds))).isoformat(),
                    rng.randrange(1, 1200),
                    "voice",
                    f"B{month[0]:%Y%m}-{number:08d}",
                )
            )
    return CallFile(path, count, path.stat().st_size, month, time.perf_counter() - started)


def raw_copy(url: str, calls: CallFile) -> tuple[float, int]:
    """Baseline A: the file as it is into a plain (logged, unindexed) table of text columns."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TABLE bench_raw_calls (cli text, dialled_number text, start_time text, duration text, "
            "call_type text, call_reference text)"
        )
        conn.commit()
        checkpoint()
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy("COPY bench_raw_calls FROM STDIN (FORMAT csv, HEADER true)") as copy,
            calls.path.open("rb") as source,
        ):
            while block := source.read(1 << 20):
                copy.write(block)
        conn.commit()
        elapsed = time.perf_counter() - started
        row = conn.execute("SELECT COUNT(*) FROM bench_raw_calls").fetchone()
        conn.execute("DROP TABLE bench_raw_calls")
        conn.commit()
    return elapsed, row[0] if row else 0


def storage_floor(url: str, month: datetime.date) -> float:
    """Floor F: the import's finished rows (parsed, encrypted, rated, as stored) copied in binary into an
    empty table with the columns, indexes and constraints of the month's call partition, and their
    references into an empty copy of billing_callreference (its unique key). No parsing, no validation, no
    rating, no Python per row: what storing those rows costs PostgreSQL alone."""
    import psycopg

    from billing.partitions import partition_name

    with (
        tempfile.TemporaryFile() as rows,
        tempfile.TemporaryFile() as references,
        psycopg.connect(url) as conn,
    ):
        columns = "id, call_reference, call_import_id, partner_id, cli, cli_index, dialled_number, " + (
            "dialled_prefix, started_at, started_on, duration_seconds, call_type, line_id, customer_id, "
            "status, suspense_reason, rate_id, band, cost"
        )
        reference_columns = "call_id, partner_id, call_reference, started_on"
        for table, file in (
            (f"SELECT {columns} FROM billing_callrecord", rows),
            (f"SELECT {reference_columns} FROM billing_callreference", references),
        ):
            with conn.cursor().copy(f"COPY ({table}) TO STDOUT (FORMAT BINARY)") as out:
                for block in out:
                    file.write(block)
            file.seek(0)
        conn.execute(f"CREATE TABLE bench_floor (LIKE {partition_name(month)} INCLUDING ALL)")
        conn.execute("CREATE TABLE bench_floor_references (LIKE billing_callreference INCLUDING ALL)")
        conn.commit()
        checkpoint()
        started = time.perf_counter()
        for table, names, file in (
            ("bench_floor_references", reference_columns, references),
            ("bench_floor", columns, rows),
        ):
            with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                while block := file.read(1 << 20):
                    copy.write(block)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DROP TABLE bench_floor")
        conn.execute("DROP TABLE bench_floor_references")
        conn.commit()
    return elapsed


def parse_floor(calls: CallFile) -> float:
    """Floor P: the import's Python work per line (csv, validation, normalisation, blind index,
    encryption, the row for COPY) over the whole file in one thread, loading nothing."""
    from django.utils import timezone

    from billing.importer import load, parse
    from fusion_site.crypto import keyring

    encrypt = keyring().encrypt_bulk
    started = time.perf_counter()
    with calls.path.open("rb") as raw, parse.text_stream(raw) as stream:
        reader = csv.reader(stream)
        columns = parse.read_header(reader)
        counts = parse.ImportCounts()
        latest = parse.latest_start(timezone.now())
        for call, cli in parse.parse_rows(reader, columns, counts, latest=latest):
            load.staged_row(call, cli, encrypt)
    return time.perf_counter() - started


@contextmanager
def profiled(enabled: bool, title: str) -> Iterator[None]:
    if not enabled:
        yield
        return
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(20)
        stats.sort_stats("cumulative").print_stats(25)
        print(f"\n===== cProfile: {title} =====\n{out.getvalue()}")


def import_calls(world: World, calls: CallFile, phases: Phases, *, profile: bool) -> tuple[float, CallImport]:
    """Ours: the service a billing agent's upload ends in, on the same file; rating runs at its end."""
    from django.db import connection
    from tqdm import tqdm

    from billing.importer import load, parse, pipeline
    from billing.services.call_imports import call_import_run

    targets: list[tuple[object, str, str]] = [
        (load, "load_postgresql", "load"),
        (load, "_copy_to_staging", "copy"),
        (load, "_rate_staged", "rate_staged"),
        (load, "_store_rated", "store"),
        (pipeline, "rate_pending_calls", "final_pass"),
        # Foreign keys are checked at commit (DEFERRABLE INITIALLY DEFERRED), so commits take real time;
        # the last one is the rating transaction's.
        (connection, "commit", "import_commit"),
    ]
    checkpoint()
    with (
        phases.timing(targets),
        calls.path.open("rb") as raw,
        parse.text_stream(raw) as stream,
        tqdm(total=calls.rows, desc="Importing (timed)", unit="call") as bar,
        profiled(profile, "call_import_run"),
    ):
        started = time.perf_counter()
        call_import = call_import_run(
            partner=world.partner,
            stream=stream,
            file_name=calls.path.name,
            actor=world.agent,
            progress=bar.update,
        )
        elapsed = time.perf_counter() - started
    return elapsed, call_import


def calculate(
    world: World, calls: CallFile, phases: Phases, *, profile: bool, workers: int
) -> tuple[float, BillRun]:
    """Ours: create the month's bill run and start its calculation, then run the chunk tasks it queued
    as Celery workers would: in ``workers`` processes at once (forked, each with its own database
    connection, calling the task), or with one worker in this process. Timed until the last chunk is
    done, which is when the run is calculated."""
    from django.db import connection, connections
    from tqdm import tqdm

    from billing import calculation, tasks
    from billing.services import bill_runs

    if connection.in_atomic_block:
        raise RuntimeError("The calculation must start outside a transaction for its chunks to be queued.")
    run = bill_runs.bill_run_create(
        partner=world.partner, period_start=calls.month[0], period_end=calls.month[1], actor=world.agent
    )
    expected_chunks = math.ceil(calculation.customers_in_scope(run).count() / calculation.CHUNK_SIZE)
    targets: list[tuple[object, str, str]] = [
        (bill_runs, "_pre_billing_checks", "checks"),
        (calculation, "plan_chunks", "plan"),
        (calculation, "calculate_chunk", "chunk"),
        (calculation, "_set_aside_unbilled_calls", "set_aside"),
        (calculation, "_usage", "usage"),
        (calculation, "_one_offs", "one_offs"),
        (calculation, "_rentals", "rentals"),
        (calculation, "_address_snapshots", "addresses"),
        (calculation, "insert_rows", "inserts"),
        (calculation, "record_history_in_sql", "history"),
        (calculation, "_claim", "claims"),
        (connection, "commit", "calc_commit"),
    ]
    queued: list[tuple[Any, ...]] = []
    checkpoint()
    with (
        phases.timing(targets),
        mock.patch.object(tasks.calculate_bill_run_chunk, "delay", new=lambda *args: queued.append(args)),
        tqdm(total=expected_chunks, desc=f"Calculating on {workers} worker(s) (timed)", unit="chunk") as bar,
        profiled(profile, "bill_run_start_calculation"),
    ):
        started = time.perf_counter()
        bill_runs.bill_run_start_calculation(bill_run=run, actor=world.agent)
        if workers == 1:
            for args in queued:
                tasks.calculate_bill_run_chunk(*args)
                bar.update(1)
        else:
            connections.close_all()  # each forked worker opens its own
            _forked_phases[:] = [phases]
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                for durations in pool.imap_unordered(_run_chunk_task, queued):
                    for label, seconds in durations.items():
                        phases.durations.setdefault(label, []).extend(seconds)
                    bar.update(1)
        elapsed = time.perf_counter() - started
    run.refresh_from_db()
    return elapsed, run


# The Phases the timed functions record into, as the forked workers inherit it.
_forked_phases: list[Phases] = []


def _run_chunk_task(args: tuple[Any, ...]) -> dict[str, list[float]]:
    """In a worker process: one chunk task, returning the phase timings it recorded (the patched
    functions were inherited through fork and record into this process's copy of the Phases)."""
    from billing import tasks

    phases = _forked_phases[0]
    phases.durations.clear()
    tasks.calculate_bill_run_chunk(*args)
    return dict(phases.durations)


# Baseline B, one read-only statement after an ANALYZE: the invoices of the run from the stored calls,
# with none of the product's duties (no writes, no history, no decryption, no chunks, no Python per row).
# - calls: each call of the partner up to the last day of the period (its UK date, started_on), matched
#   through its CLI blind index to the line that held the number that day, of a customer in scope (as
#   calculation.customers_in_scope, less customers whose billing is ceased or processing restricted);
#   its tariff is the line's, else the customer's, else the partner's default;
# - rated: the rate of the longest prefix of the dialled number in the rate card in force at the call's
#   start (the newest card, should two overlap); cost = max(connection charge + price per minute x
#   (seconds rounded up to the increment) / 60 rounded half-up to 1/10,000 of a pound, minimum charge);
# - usage: per customer and band, the number of calls and the sum of their costs rounded to the penny;
# - rentals: each recurring charge for the days of the next month it covers (start no earlier than its
#   line's, end no later than its own, its line's or the customer's contract end), the full monthly amount
#   for a whole month, else prorated by day and rounded half-up; days of the usage period too when the
#   charge started after the period began (billed in arrears);
# - per customer in scope: net = usage + rentals, VAT = net x rate rounded half-up, gross = net + VAT.
MINIMAL_SQL = """
WITH scope AS (
    SELECT cu.id, cu.contract_end
    FROM accounts_customer cu
    WHERE cu.partner_id = %(partner)s AND cu.status <> 'prospect'
      AND cu.contract_start <= %(rental_end)s
      AND (cu.contract_end IS NULL OR cu.contract_end >= %(period_start)s)
      AND cu.billing_ceased_at IS NULL AND cu.processing_restricted_at IS NULL
),
calls AS (
    SELECT c.id, l.customer_id, c.dialled_prefix, c.duration_seconds, c.started_at,
           COALESCE(lt.tariff_id, ct.tariff_id, p.default_tariff_id) AS tariff_id
    FROM billing_callrecord c
    JOIN accounts_line l ON l.cli_index = c.cli_index AND l.start_date <= c.started_on
         AND (l.end_date IS NULL OR l.end_date >= c.started_on)
    JOIN scope s ON s.id = l.customer_id
    LEFT JOIN billing_linetariff lt ON lt.line_id = l.id
    LEFT JOIN billing_customertariff ct ON ct.customer_id = l.customer_id
    LEFT JOIN billing_partnerbillingprofile p ON p.partner_id = c.partner_id
    WHERE c.partner_id = %(partner)s AND c.started_on >= %(earliest)s AND c.started_on <= %(period_end)s
),
rated AS (
    SELECT DISTINCT ON (c.id) c.customer_id, r.band,
           GREATEST(
               r.connection_charge + ROUND(
                   r.price_per_minute
                   * ((c.duration_seconds + r.increment_seconds - 1) / r.increment_seconds)
                   * r.increment_seconds / 60,
                   4
               ),
               r.minimum_charge
           ) AS cost
    FROM calls c
    JOIN billing_ratecard rc ON rc.tariff_id = c.tariff_id AND rc.effective_from <= c.started_at
         AND (rc.effective_to IS NULL OR rc.effective_to > c.started_at)
    JOIN billing_rate r ON r.rate_card_id = rc.id AND starts_with(c.dialled_prefix, r.prefix)
    ORDER BY c.id, LENGTH(r.prefix) DESC, rc.effective_from DESC
),
usage AS (
    SELECT customer_id, band, COUNT(*) AS calls, ROUND(SUM(cost), 2) AS amount
    FROM rated GROUP BY customer_id, band
),
charges AS (
    SELECT ch.customer_id, ch.monthly_amount,
           GREATEST(ch.start_date, COALESCE(l.start_date, ch.start_date)) AS first_day,
           LEAST(ch.end_date, s.contract_end, l.end_date) AS last_day
    FROM billing_recurringcharge ch
    JOIN scope s ON s.id = ch.customer_id
    LEFT JOIN accounts_line l ON l.id = ch.line_id
    WHERE ch.start_date <= %(rental_end)s AND (ch.end_date IS NULL OR ch.end_date >= %(period_start)s)
),
rentals AS (
    SELECT customer_id,
           CASE WHEN days = month_days THEN monthly_amount
                ELSE ROUND(monthly_amount * days / month_days, 2) END AS amount
    FROM (
        SELECT ch.customer_id, ch.monthly_amount, pr.hi - pr.lo + 1 AS month_days,
               LEAST(COALESCE(ch.last_day, pr.hi), pr.hi) - GREATEST(ch.first_day, pr.lo) + 1 AS days
        FROM charges ch
        CROSS JOIN (VALUES (%(rental_start)s::date, %(rental_end)s::date, true),
                           (%(period_start)s::date, %(period_end)s::date, false)) AS pr(lo, hi, advance)
        WHERE pr.advance OR ch.first_day > %(period_start)s
    ) prorated
    WHERE days > 0
),
usage_by_customer AS (
    SELECT customer_id, ARRAY_AGG(band ORDER BY band) AS bands, ARRAY_AGG(calls ORDER BY band) AS counts,
           ARRAY_AGG(amount ORDER BY band) AS amounts, SUM(amount) AS total
    FROM usage GROUP BY customer_id
),
rentals_by_customer AS (
    SELECT customer_id, SUM(amount) AS total FROM rentals GROUP BY customer_id
)
SELECT s.id, u.bands, u.counts, u.amounts, COALESCE(r.total, 0), n.net,
       ROUND(n.net * %(vat_rate)s, 2), n.net + ROUND(n.net * %(vat_rate)s, 2)
FROM scope s
LEFT JOIN usage_by_customer u ON u.customer_id = s.id
LEFT JOIN rentals_by_customer r ON r.customer_id = s.id
CROSS JOIN LATERAL (SELECT COALESCE(u.total, 0) + COALESCE(r.total, 0) AS net) n
"""


def minimal_sql(run: BillRun) -> tuple[float, dict[int, CustomerBill]]:
    from django.db import connection

    from billing.calculation import earliest_billable_day
    from fusion_site.money import STANDARD_VAT_RATE

    rental_start, rental_end = run.rental_period
    params: dict[str, Any] = {
        "partner": run.partner_id,
        "earliest": earliest_billable_day(run.period_start),
        "period_start": run.period_start,
        "period_end": run.period_end,
        "rental_start": rental_start,
        "rental_end": rental_end,
        "vat_rate": STANDARD_VAT_RATE,
    }
    checkpoint()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # Whoever writes SQL by hand over a freshly loaded table analyses it first: without statistics
        # the planner takes the million calls for a few hundred and picks nested loops. Timed with it.
        cursor.execute("ANALYZE billing_callrecord")
        cursor.execute(MINIMAL_SQL, params)
        rows = cursor.fetchall()
    elapsed = time.perf_counter() - started
    bills = {
        customer_id: CustomerBill(
            usage=tuple(zip(bands or [], counts or [], amounts or [], strict=True)),
            rentals=rentals,
            net=net,
            vat=vat,
            gross=gross,
        )
        for customer_id, bands, counts, amounts, rentals, net, vat, gross in rows
    }
    return elapsed, bills


def our_bills(run: BillRun) -> dict[int, CustomerBill]:
    from billing.models import Invoice, InvoiceLine

    usage: dict[int, list[tuple[str, int, Decimal]]] = {}
    rentals: dict[int, Decimal] = {}
    lines = InvoiceLine.objects.filter(invoice__bill_run=run).values_list(
        "invoice__customer_id", "kind", "band", "quantity", "amount"
    )
    for customer_id, kind, band, quantity, amount in lines:
        if kind == InvoiceLine.Kind.USAGE:
            usage.setdefault(customer_id, []).append((band, int(quantity), amount))
        elif kind == InvoiceLine.Kind.RENTAL:
            rentals[customer_id] = rentals.get(customer_id, Decimal(0)) + amount
    return {
        customer_id: CustomerBill(
            usage=tuple(sorted(usage.get(customer_id, []))),
            rentals=rentals.get(customer_id, Decimal(0)),
            net=net,
            vat=vat,
            gross=gross,
        )
        for customer_id, net, vat, gross in Invoice.objects.filter(bill_run=run).values_list(
            "customer_id", "net", "vat", "gross"
        )
    }


def compare(ours: dict[int, CustomerBill], baseline: dict[int, CustomerBill], results: Results) -> None:
    for customer_id in sorted(ours.keys() | baseline.keys()):
        mine, theirs = ours.get(customer_id), baseline.get(customer_id)
        if mine is None or theirs is None:
            results.missing += 1
            detail = "no invoice" if mine is None else "not in the minimal SQL's scope"
            if len(results.mismatch_examples) < 5:
                results.mismatch_examples.append(f"customer {customer_id}: {detail}")
            continue
        if mine.usage != theirs.usage:
            results.usage_mismatches += 1
        totals = (mine.rentals, mine.net, mine.vat, mine.gross)
        if totals != (theirs.rentals, theirs.net, theirs.vat, theirs.gross):
            results.total_mismatches += 1
        if (mine.usage != theirs.usage or mine != theirs) and len(results.mismatch_examples) < 5:
            results.mismatch_examples.append(f"customer {customer_id}: ours {mine}; sql {theirs}")
    results.billed_calls = sum(count for bill in ours.values() for _band, count, _amount in bill.usage)
    results.baseline_calls = sum(count for bill in baseline.values() for _band, count, _amount in bill.usage)


def reset_month() -> None:
    """Between repeats, not timed: the calls, their references and claims, the bill run and its draft
    invoices, the import, gone; the customers, lines, tariffs and charges stay."""
    from django.db import connection

    from billing.models import BillRun, CallImport, Invoice

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE billing_billedcall, billing_callreference, billing_callrecord")
    Invoice.objects.all().delete()
    BillRun.objects.all().delete()
    CallImport.objects.all().delete()


def run(args: argparse.Namespace, world: World, calls: CallFile, *, floors: bool | None = None) -> Results:
    results = Results()
    results.rss_mb["build + CSV"] = rss_mb()
    results.raw_copy_seconds, results.raw_copy_rows = raw_copy(args.database_url, calls)

    from billing.importer import pipeline

    with mock.patch.object(pipeline, "LOADERS", args.loaders or pipeline.LOADERS):
        results.import_seconds, call_import = import_calls(world, calls, results.phases, profile=args.profile)
        results.loaders = pipeline.LOADERS
    results.imported, results.rejected, results.suspense = (
        call_import.imported,
        call_import.rejected,
        call_import.suspense,
    )
    results.rss_mb["import"] = rss_mb()

    results.calculation_seconds, bill_run = calculate(
        world, calls, results.phases, profile=args.profile, workers=args.workers
    )
    results.run_status = bill_run.status
    results.chunks = bill_run.chunks_total
    results.rss_mb["calculation"] = rss_mb()

    results.minimal_sql_seconds, baseline = minimal_sql(bill_run)
    ours = our_bills(bill_run)
    results.invoices = len(ours)
    compare(ours, baseline, results)
    if args.floors if floors is None else floors:
        results.parse_floor_seconds = parse_floor(calls)
        results.storage_floor_seconds = storage_floor(args.database_url, calls.month[0])
    return results


@dataclass(frozen=True)
class Ratios:
    """One repeat's figures that the targets judge."""

    month_seconds: float  # import (rating included) + calculation
    rate_and_calculate: float
    import_vs_a: float
    import_vs_floor: float | None  # against the larger of P and F; None without floors
    rate_vs_b: float
    per_call_microseconds: float


def rating_seconds(results: Results) -> float:
    """Rating: each staged batch's (the time during which one or more loaders rated) and the final pass."""
    phases = results.phases
    return phases.wall("rate_staged") + phases.get("final_pass") + phases.last("import_commit")


def ratios(results: Results) -> Ratios:
    month_seconds = results.import_seconds + results.calculation_seconds
    floor = max(results.parse_floor_seconds, results.storage_floor_seconds)
    rate_and_calculate = rating_seconds(results) + results.calculation_seconds
    return Ratios(
        month_seconds=month_seconds,
        rate_and_calculate=rate_and_calculate,
        import_vs_a=results.import_seconds / results.raw_copy_seconds,
        import_vs_floor=results.import_seconds / floor if floor else None,
        rate_vs_b=rate_and_calculate / results.minimal_sql_seconds,
        per_call_microseconds=month_seconds / max(results.imported, 1) * 1e6,
    )


def spread(values: list[float], unit: str = "x") -> str:
    low, high = min(values), max(values)
    return (
        f"{statistics.median(values):.2f}{unit} ({low:.2f}-{high:.2f})"
        if len(values) > 1
        else f"{values[0]:.2f}{unit}"
    )


def report(
    args: argparse.Namespace,
    database: str,
    world: World,
    calls: CallFile,
    repeats: list[Results],
    tenth: Results | None = None,
) -> bool:
    """The last repeat's figures in detail, then each ratio's median and spread over the repeats, and the
    targets judged on the medians."""
    results = repeats[-1]
    phases = results.phases
    final_commit = phases.last("import_commit")
    batch_commits = phases.get("import_commit") - final_commit
    final_pass = phases.get("final_pass") + final_commit
    # Rating each staged batch is part of the import's time and also counted with the calculation. With
    # several loaders their rating statements overlap: the ratio takes the time during which one or more
    # of them was rating (as the calculation's time is that of its workers together), and the sum is shown.
    rating_summed = phases.get("rate_staged") + final_pass
    rating = phases.wall("rate_staged") + final_pass
    # The reader thread parses, validates and encrypts the next batch while a batch loads; what is left
    # is the time the loader waited for it (the first batch, and any batch it could not keep up with).
    waiting_seconds = results.import_seconds - phases.get("load") - batch_commits - final_pass
    loaders = results.loaders
    chunk_rest = phases.get("chunk") - sum(
        phases.get(label)
        for label in (
            "set_aside",
            "usage",
            "one_offs",
            "rentals",
            "addresses",
            "inserts",
            "history",
            "claims",
        )
    )
    calculation_rest = (
        results.calculation_seconds
        - phases.get("checks")
        - phases.get("plan")
        - phases.get("chunk")
        - phases.get("calc_commit")
    )

    print()
    print(
        f"{world.customers:,} customers, {world.lines:,} lines, {calls.rows:,} calls "
        f"({calls.month[0]:%B %Y}) on {database}, {os.cpu_count()} CPUs"
        + (" -- UNDER cProfile: figures include its overhead" if args.profile else "")
        + (f"; the figures below are the last of {len(repeats)} repeats" if len(repeats) > 1 else "")
    )
    print(
        f"Built in {world.build_seconds:.1f} s; CSV of {calls.size_bytes / 1e6:.1f} MB written in "
        f"{calls.seconds:.1f} s (neither is timed against a target)."
    )
    print()
    rows: list[tuple[str, float, str]] = [
        ("A  raw COPY of the file (text columns, plain table)", results.raw_copy_seconds, ""),
        ("   import: call_import_run", results.import_seconds, ""),
        *(
            [
                (
                    "     rest: waiting for the reader thread (parse, validate, encrypt), ANALYZE",
                    waiting_seconds,
                    "",
                )
            ]
            if loaders == 1  # with more, the loads below overlap and are not parts of the elapsed time
            else []
        ),
        (
            "     load: COPY to staging, rate there, INSERT ON CONFLICT",
            phases.get("load"),
            f"{phases.count('load')} batches"
            + (f", summed over {loaders} loaders; so is each figure below" if loaders > 1 else ""),
        ),
        ("       COPY to the staging table", phases.get("copy"), ""),
        (
            "       rate the staged calls (one INSERT ... SELECT; counted as rating)",
            phases.get("rate_staged"),
            "",
        ),
        ("       store them (INSERT ... ON CONFLICT DO NOTHING)", phases.get("store"), ""),
        *([("     batch commits", batch_commits, "")] if loaders == 1 else []),
        ("     final pass: rate what is still pending, commit", final_pass, ""),
        *([("   rating, summed over the loaders", rating_summed, "in the import")] if loaders > 1 else []),
        (
            "   rating: the staged batches and the final pass",
            rating,
            "in the import" + (f"; while one or more of the {loaders} loaders rated" if loaders > 1 else ""),
        ),
        (
            "   calculation: bill_run_start_calculation",
            results.calculation_seconds,
            f"{results.chunks} chunks",
        ),
        ("     pre-billing checks", phases.get("checks"), ""),
        ("     plan chunks", phases.get("plan"), ""),
        (
            "     calculate chunks",
            phases.get("chunk"),
            f"summed over {args.workers} workers; so is each figure below" if args.workers > 1 else "",
        ),
        ("       set aside unbilled calls (CREATE TEMP TABLE AS)", phases.get("set_aside"), ""),
        ("       usage by band (SUM over the set-aside calls)", phases.get("usage"), ""),
        ("       one-off charges", phases.get("one_offs"), ""),
        ("       rentals (load + prorate in Python)", phases.get("rentals"), ""),
        ("       address snapshots (first sites, decrypted)", phases.get("addresses"), ""),
        ("       invoices and their lines (COPY)", phases.get("inserts"), ""),
        ("       invoice history (INSERT ... SELECT)", phases.get("history"), ""),
        ("       claim the calls (INSERT INTO BilledCall)", phases.get("claims"), ""),
        ("       rest of the chunk (deletes, customers, product rentals, ...)", chunk_rest, ""),
        ("     commits (deferred foreign key checks)", phases.get("calc_commit"), ""),
        *(
            [("     rest (locks, events, task overhead)", calculation_rest, "")]
            if args.workers == 1  # with more, the sums above are not parts of the elapsed time
            else []
        ),
        ("B  minimal SQL: ANALYZE, then rating + invoice totals", results.minimal_sql_seconds, "read-only"),
    ]
    if args.floors:
        rows += [
            (
                "P  floor: the import's Python work alone, one thread",
                results.parse_floor_seconds,
                f"{results.parse_floor_seconds / results.raw_copy_seconds:.1f}x A",
            ),
            (
                "F  floor: COPY of the stored rows into an indexed copy",
                results.storage_floor_seconds,
                f"{results.storage_floor_seconds / results.raw_copy_seconds:.1f}x A",
            ),
        ]
    width = max(len(label) for label, _seconds, _note in rows)
    print(f"{'figure':<{width}}  {'seconds':>8}")
    print("-" * (width + 10))
    for label, seconds, note in rows:
        print(f"{label:<{width}}  {seconds:>8.2f}" + (f"  ({note})" if note else ""))
    print()
    print(
        f"Import: {results.raw_copy_rows:,} rows copied raw; {results.imported:,} imported, "
        f"{results.rejected:,} rejected, {results.suspense:,} in suspense."
    )
    print(
        f"Bill run: {results.run_status}, {results.invoices:,} invoices billing "
        f"{results.billed_calls:,} calls; minimal SQL billed {results.baseline_calls:,} calls."
    )
    print(
        f"Minimal SQL vs invoices: {results.usage_mismatches} usage mismatches, "
        f"{results.total_mismatches} total (rental/net/VAT/gross) mismatches, {results.missing} missing."
    )
    for example in results.mismatch_examples:
        print(f"  {example}")
    print(
        "Peak RSS: "
        + ", ".join(f"after {phase} {megabytes:,.0f} MB" for phase, megabytes in results.rss_mb.items())
    )
    print()

    measured = [ratios(each) for each in repeats]
    month_median = statistics.median(m.month_seconds for m in measured)
    rate_median = statistics.median(m.rate_vs_b for m in measured)
    floors = [m.import_vs_floor for m in measured if m.import_vs_floor is not None]
    floor_median = statistics.median(floors) if floors else None
    print(f"Over {len(repeats)} repeat(s): median (min-max)")
    lines = [
        ("import / raw COPY (A), no target", spread([m.import_vs_a for m in measured])),
        *([("import / max(P, F)", spread(floors))] if floors else []),
        ("(rating + calculation) / minimal SQL (B)", spread([m.rate_vs_b for m in measured])),
        ("whole month (import + calculation)", spread([m.month_seconds for m in measured], " s")),
        ("cost per call (whole month)", spread([m.per_call_microseconds for m in measured], " us")),
    ]
    for label, figure in lines:
        print(f"  {label + ':':<42} {figure}")
    linearity = None
    if tenth is not None:
        small = ratios(tenth)
        full = statistics.median(m.per_call_microseconds for m in measured)
        linearity = full / small.per_call_microseconds
        print(
            f"  a tenth of the calls ({tenth.imported:,}): {small.month_seconds:.1f} s, "
            f"{small.per_call_microseconds:.2f} us a call; full size / tenth: {linearity:.2f}x"
        )
    print()

    every = all
    checks: list[tuple[str, str, str, bool | None]] = [
        (
            "import / max(P, F) (median)",
            f"{floor_median:.2f}x" if floor_median is not None else "no floors",
            f"<= {IMPORT_TARGET:.1f}x",
            floor_median <= IMPORT_TARGET if floor_median is not None else None,
        ),
        (
            "(rating + calculation) / B (median)",
            f"{rate_median:.2f}x",
            f"<= {RATE_AND_CALCULATE_TARGET:.1f}x",
            rate_median <= RATE_AND_CALCULATE_TARGET,
        ),
        (
            "whole month (median)",
            f"{month_median:.1f} s",
            f"< {MONTH_TARGET_SECONDS:.0f} s",
            month_median < MONTH_TARGET_SECONDS,
        ),
        (
            "cost per call: full / a tenth",
            f"{linearity:.2f}x" if linearity is not None else "not run",
            f"<= {LINEARITY_TARGET:.1f}x",
            linearity <= LINEARITY_TARGET if linearity is not None else None,
        ),
        (
            "bill run ends calculated",
            results.run_status,
            "calculated",
            every(each.run_status == "calculated" for each in repeats),
        ),
        (
            "minimal SQL agrees with the invoices",
            f"{sum(e.usage_mismatches + e.total_mismatches + e.missing for e in repeats)} mismatches",
            "0",
            every(e.usage_mismatches + e.total_mismatches + e.missing == 0 for e in repeats),
        ),
        (
            "every call imported",
            f"{results.imported:,}",
            f"{calls.rows:,}",
            every(each.imported == calls.rows for each in repeats),
        ),
    ]
    if args.smoke:
        # At smoke size fixed costs swamp the work the targets are about: print them, check correctness.
        checks = [(*check[:3], None) if index < 4 else check for index, check in enumerate(checks)]
    print(f"{'check':<38}  {'value':>14}  {'target':>10}  result")
    print("-" * 74)
    for label, value, target, ok in checks:
        verdict = (
            ("not checked (smoke)" if args.smoke else "not checked")
            if ok is None
            else "ok"
            if ok
            else "MISSED"
        )
        print(f"{label:<38}  {value:>14}  {target:>10}  {verdict}")
    print(f"{'peak RSS':<38}  {rss_mb():>11,.0f} MB")
    passed = all(ok is not False for *_rest, ok in checks)
    print()
    print("PASS" if passed else "FAIL: see MISSED above")
    return passed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with (
        django_environment(args.database_url, keep=args.keep) as database,
        tempfile.TemporaryDirectory(prefix="fusion-bench-") as directory,
    ):
        from django.utils import timezone

        from billing.partitions import create_month_partition

        world = build(args.customers, args.lines_per_customer)
        month = previous_month(timezone.localdate())
        # What the beat task does ahead of the month in production (the migration made none: no calls).
        create_month_partition(month[0])
        print(f"Writing {args.calls:,} calls for {month[0]:%B %Y} (not timed)...", file=sys.stderr)
        calls = write_calls(Path(directory), world.clis, args.calls, month)
        repeats = []
        for repeat in range(args.repeat):
            if repeat:
                reset_month()
            repeats.append(run(args, world, calls))
        tenth = None
        if args.linearity:
            reset_month()
            (Path(directory) / "tenth").mkdir()
            small = write_calls(Path(directory) / "tenth", world.clis, max(args.calls // 10, 1), month)
            tenth = run(args, world, small, floors=False)
        return 0 if report(args, database, world, calls, repeats, tenth) else 1


if __name__ == "__main__":
    sys.exit(main())
