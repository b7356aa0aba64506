"""Benchmark: the Site Details page and the permission-scoped customer list at 10,000 customers.

Builds a throwaway database (a fresh SQLite file unless ``--database-url`` names another empty one),
fills it through ``accounts.demo.DemoBuilder`` and then, for each page, prints the median time of the
full request (middleware, session, permission checks, template) next to a baseline measured in the same
run: the minimal raw SQL that fetches the same rows, decrypting the same values. Absolute times depend on
the machine; the ratio and the query counts are what to compare between runs.

Exits 1 when a page's query count is not constant (largest vs small customer, list page 1 vs page 3,
small vs big partner, one row vs a full page) or when a page does not show what the baseline fetched.

    .venv/bin/python bench/site_details.py [--customers 10000] [--repeat 15] [--database-url URL]
                                           [--no-analyze]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
PAGE_SIZE = 50  # accounts.views.CUSTOMERS_PER_PAGE; repeated so the baseline does not import the view
LARGEST = (50, 500)  # (sites, lines) of the one large customer, from the issue
SMALL = (1, 2)
ORDERS_ON_LARGEST = 30

if TYPE_CHECKING:
    from django.test import Client

    from accounts.models import Customer, Partner, User


@dataclass(frozen=True)
class Measurement:
    label: str
    ours_queries: int
    baseline_queries: int
    ours_decrypts: int
    baseline_decrypts: int
    ours_ms: float
    baseline_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.baseline_ms if self.baseline_ms else float("inf")


@dataclass(frozen=True)
class Check:
    label: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class World:
    """What the benchmark built: who looks, and at what."""

    big_partner: Partner
    small_partner: Partner
    big_agent: User
    small_agent: User
    tiny_agent: User
    largest: Customer
    small: Customer
    customers: int
    lines: int
    build_seconds: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000, help="customers in all (default 10000)")
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per page (default 15)")
    parser.add_argument(
        "--database-url",
        help="an EMPTY database to build in (default: a new SQLite file in a temporary directory)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a size that runs in seconds (CI): 200 customers, one timed request per page",
    )
    parser.add_argument(
        "--no-analyze",
        action="store_true",
        help="skip ANALYZE after building, as in a freshly seeded SQLite demo database",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.customers, args.repeat = 200, 1
    # Page 3 of the big partner must exist, or get_page() quietly answers the last page instead.
    if args.customers < 200:
        parser.error("--customers must be at least 200")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


@contextmanager
def django_environment(database_url: str | None) -> Iterator[str]:
    """Point Django at the benchmark database and set it up; yields a printable database description.

    DATABASE_URL is overwritten, not defaulted, so a variable left in the shell (or .env, which
    django-environ reads without overriding) can never aim ten thousand fake customers at a real database.
    """
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fusion_site.settings")
    with tempfile.TemporaryDirectory(prefix="fusion-bench-") as tmpdir:
        os.environ["DATABASE_URL"] = database_url or f"sqlite:///{tmpdir}/bench.sqlite3"
        import django
        from django.conf import settings
        from django.db import connections

        django.setup()
        # Time what production runs: no per-query log, no template debug bookkeeping. Both only exist
        # with DEBUG on, and the template engine reads it lazily on first render, after this line.
        settings.DEBUG = False
        try:
            yield f"{connections['default'].vendor} ({'given URL' if database_url else 'temporary file'})"
        finally:
            connections.close_all()  # SQLite keeps the file open; close it before the directory goes


def analyze() -> None:
    """Give the query planner statistics, as PostgreSQL's autovacuum would after a bulk load.

    SQLite never gathers them by itself, and without them it reads the whole object-permission table
    through its permission_id index (every row has the same permission) for each scoped query."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def build(customers: int) -> World:
    """Three partners: one of ~90% of the customers (holding the largest), one of the rest, and one with a
    single customer, so the list can be compared with one row and with a full page."""
    from django.core.management import call_command
    from django.utils import timezone
    from simple_history.utils import bulk_create_with_history
    from tqdm import tqdm

    from accounts import services
    from accounts.demo import DemoBuilder
    from accounts.models import Customer, Line, ProvisioningOrder, Role

    call_command("migrate", verbosity=0)
    if Customer.objects.exists():
        raise SystemExit("The benchmark database already holds customers; give it an empty one.")

    started = time.perf_counter()
    builder = DemoBuilder(seed=2026, actor=services.system_user(job="bench"))
    big_partner, small_partner, tiny_partner = builder.partners(3)
    small_count = customers // 10
    big_count = customers - small_count - 1
    with tqdm(total=customers, desc="Building", unit="customer") as bar:
        builder.customers(
            big_partner, big_count, sizes=lambda index: LARGEST if index == 0 else SMALL, progress=bar.update
        )
        builder.customers(small_partner, small_count, sizes=lambda index: SMALL, progress=bar.update)
        builder.customers(tiny_partner, 1, sizes=lambda index: SMALL, progress=bar.update)

    now = timezone.now()
    agents = [
        services.user_create(
            email=f"bench-billing@{partner.code}.example",
            full_name=f"Bench {partner.name}",
            role=Role.BILLING_AGENT,
            actor=None,
            partner=partner,
            confidentiality_signed_at=now,
            gdpr_training_completed_at=now,
        )
        for partner in (big_partner, small_partner, tiny_partner)
    ]
    largest, small = Customer.objects.filter(partner=big_partner).order_by("id")[:2]

    # DemoBuilder makes no provisioning orders, and an empty prefetch would hide an N+1 on their lines
    # or requesters, so both customers get some (the small one a single order).
    def orders(customer: Customer, count: int) -> list[ProvisioningOrder]:
        lines = list(Line.objects.filter(customer=customer).order_by("id")[:count])
        return [
            ProvisioningOrder(
                customer=customer,
                line=lines[number % len(lines)],
                kind=ProvisioningOrder.Kind.PROVIDE,
                status=ProvisioningOrder.Status.COMPLETED,
                requested_by=agents[0],
                gateway_reference=f"BENCH-{customer.pk}-{number}",
            )
            for number in range(count)
        ]

    bulk_create_with_history(orders(largest, ORDERS_ON_LARGEST) + orders(small, 1), ProvisioningOrder)
    return World(
        big_partner=big_partner,
        small_partner=small_partner,
        big_agent=agents[0],
        small_agent=agents[1],
        tiny_agent=agents[2],
        largest=largest,
        small=small,
        customers=Customer.objects.count(),
        lines=Line.objects.count(),
        build_seconds=time.perf_counter() - started,
    )


# The permission join of the baselines: customers granted view_customer to one of the user's groups.
# Guardian also looks at per-user grants; partner staff have none, so the minimal query skips them.
VISIBLE_SQL = """
    SELECT g.content_object_id FROM {grants} g JOIN {user_groups} ug ON ug.group_id = g.group_id
    WHERE ug.user_id = %s AND g.permission_id = %s
"""
# One customer needs only its own grants checked, not the user's whole visible set listed.
GRANTED_SQL = """
    EXISTS (SELECT 1 FROM {grants} g JOIN {user_groups} ug ON ug.group_id = g.group_id
            WHERE g.content_object_id = c.id AND ug.user_id = %s AND g.permission_id = %s)
"""


def _tables() -> dict[str, str]:
    from accounts.models import (
        Contact,
        Customer,
        CustomerGroupObjectPermission,
        Line,
        Partner,
        PaymentDetails,
        ProvisioningOrder,
        Site,
        User,
    )

    models: dict[str, Any] = {
        "customer": Customer,
        "partner": Partner,
        "site": Site,
        "contact": Contact,
        "line": Line,
        "payment": PaymentDetails,
        "order": ProvisioningOrder,
        "user": User,
        "grants": CustomerGroupObjectPermission,
        "user_groups": User.groups.through,
    }
    return {name: model._meta.db_table for name, model in models.items()}


def _view_customer_permission_id() -> int:
    from django.contrib.auth.models import Permission

    # Looked up once, outside the timing: the page gets it from Django's per-process content-type cache.
    return Permission.objects.get(content_type__app_label="accounts", codename="view_customer").pk


def site_details_baseline(user: User, customer: Customer) -> Callable[[], dict[str, int]]:
    """The rows the Site Details page shows, one query per table, decrypting every encrypted value shown:
    the page decrypts before it masks, so a masked page still pays for each decryption."""
    from django.db import connection

    from fusion_site.crypto import decrypt

    t = _tables()
    granted = GRANTED_SQL.format(**t)
    params = (user.pk, _view_customer_permission_id())

    def run() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                f"""SELECT c.id, c.name, c.status, c.contract_start, c.contract_end, c.billing_ceased_at,
                           c.billing_ceased_reason, c.processing_restricted_at,
                           c.processing_restricted_reason, p.name
                    FROM {t["customer"]} c JOIN {t["partner"]} p ON p.id = c.partner_id
                    WHERE c.id = %s AND {granted}""",
                (customer.pk, *params),
            )
            account = cursor.fetchone()
            if account is None:
                raise RuntimeError(f"Baseline cannot see {customer.reference}")
            decrypt(account[1])  # the page shows the (encrypted) name
            cursor.execute(
                f"""SELECT id, label, address_line1, address_line2, town, postcode
                    FROM {t["site"]} WHERE customer_id = %s ORDER BY id""",
                (customer.pk,),
            )
            sites = [(*row[:2], *map(decrypt, row[2:])) for row in cursor.fetchall()]
            cursor.execute(
                f"""SELECT id, role, name, email, phone
                    FROM {t["contact"]} WHERE customer_id = %s ORDER BY id""",
                (customer.pk,),
            )
            contacts = [(*row[:2], *map(decrypt, row[2:])) for row in cursor.fetchall()]
            cursor.execute(
                f"""SELECT l.id, l.line_type, l.start_date, l.end_date, s.label, l.cli
                    FROM {t["line"]} l LEFT JOIN {t["site"]} s ON s.id = l.site_id
                    WHERE l.customer_id = %s ORDER BY l.site_id, l.id""",
                (customer.pk,),
            )
            lines = [(*row[:5], decrypt(row[5])) for row in cursor.fetchall()]
            cursor.execute(
                f"""SELECT account_holder, sort_code, account_number, mandate_reference
                    FROM {t["payment"]} WHERE customer_id = %s""",
                (customer.pk,),
            )
            payment = [tuple(map(decrypt, row)) for row in cursor.fetchall()]
            cursor.execute(
                f"""SELECT o.id, o.kind, o.status, o.created_at, o.gateway_reference, u.full_name
                    FROM {t["order"]} o LEFT JOIN {t["user"]} u ON u.id = o.requested_by_id
                    WHERE o.customer_id = %s ORDER BY o.created_at DESC""",
                (customer.pk,),
            )
            orders = cursor.fetchall()
        return {
            "sites": len(sites),
            "contacts": len(contacts),
            "lines": len(lines),
            "payment": len(payment),
            "orders": len(orders),
        }

    return run


def customer_list_baseline(user: User, page: int) -> Callable[[], dict[str, int]]:
    """The count and one page of 50 visible customers with their site and line counts, as the list shows."""
    from django.db import connection

    from fusion_site.crypto import decrypt

    t = _tables()
    visible = VISIBLE_SQL.format(**t)
    params = (user.pk, _view_customer_permission_id())

    def run() -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {t['customer']} WHERE id IN ({visible})", params)
            (total,) = cursor.fetchone()
            cursor.execute(
                f"""SELECT c.id, c.name, c.status, c.contract_start, c.contract_end, c.billing_ceased_at,
                           c.processing_restricted_at, p.name,
                           (SELECT COUNT(*) FROM {t["site"]} s WHERE s.customer_id = c.id),
                           (SELECT COUNT(*) FROM {t["line"]} l WHERE l.customer_id = c.id)
                    FROM {t["customer"]} c JOIN {t["partner"]} p ON p.id = c.partner_id
                    WHERE c.id IN ({visible})
                    ORDER BY c.id LIMIT %s OFFSET %s""",
                (*params, PAGE_SIZE, (page - 1) * PAGE_SIZE),
            )
            rows = [(row[0], decrypt(row[1]), *row[2:]) for row in cursor.fetchall()]
        return {"count": total, "rows": len(rows)}

    return run


def client_for(user: User) -> Client:
    from django.test import Client
    from django_otp import DEVICE_ID_SESSION_KEY

    from accounts.two_factor import demo_authenticator

    # Every staff page needs the second factor: the session records a verified authenticator, as the
    # login's second step would.
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = demo_authenticator(user).persistent_id
    session.save()
    return client


def page_request(client: Client, url: str) -> Callable[[], object]:
    def run() -> object:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url} answered {response.status_code}")
        return response

    return run


def shown_on_page(client: Client, url: str) -> dict[str, int]:
    """Row counts from the rendered context, to check the page showed what the baseline fetched.

    The test environment records template contexts; it is torn down again so the timed requests do
    not pay for that recording."""
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    try:
        response = client.get(url)
    finally:
        teardown_test_environment()
    if response.status_code != 200 or response.context is None:
        raise RuntimeError(f"GET {url} answered {response.status_code} without a rendered page")
    context = response.context
    if "page" in context:
        return {"count": context["page"].paginator.count, "rows": len(context["page"].object_list)}
    return {
        "sites": len(context["sites"]),
        "contacts": len(context["contacts"]),
        "lines": len(context["lines"]),
        "payment": int(context["payment"] is not None),
        "orders": len(context["orders"]),
    }


def _ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def _queries_and_decrypts(work: Callable[[], object]) -> tuple[int, int]:
    """Queries run and values decrypted by one call; decrypting is most of the cost of a large page,
    so a page decrypting more than it shows is as much a finding as one querying more."""
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from fusion_site.crypto import KeyRing

    with (
        CaptureQueriesContext(connection) as captured,
        mock.patch.object(KeyRing, "decrypt", autospec=True, side_effect=KeyRing.decrypt) as decrypt,
    ):
        work()
    return len(captured), decrypt.call_count


def measure(
    label: str, ours: Callable[[], object], baseline: Callable[[], object], repeat: int
) -> Measurement:
    # One untimed round first: the first request of a session fills per-process caches (content types,
    # permissions) and the first query warms SQLite's page cache, neither of which a user sees twice.
    ours()
    baseline()
    (ours_queries, ours_decrypts), (baseline_queries, baseline_decrypts) = (
        _queries_and_decrypts(ours),
        _queries_and_decrypts(baseline),
    )
    # Interleaved so drift (thermal, other processes) falls on both sides alike.
    ours_ms, baseline_ms = [], []
    for _ in range(repeat):
        ours_ms.append(_ms(ours))
        baseline_ms.append(_ms(baseline))
    return Measurement(
        label,
        ours_queries,
        baseline_queries,
        ours_decrypts,
        baseline_decrypts,
        statistics.median(ours_ms),
        statistics.median(baseline_ms),
    )


def rows_match(label: str, shown: dict[str, int], fetched: dict[str, int]) -> Check:
    def text(counts: dict[str, int]) -> str:
        return ", ".join(f"{name} {count:,}" for name, count in counts.items())

    if shown == fetched:
        return Check(label, True, text(shown))
    return Check(label, False, f"page {text(shown)}; sql {text(fetched)}")


def run(world: World, repeat: int) -> tuple[list[Measurement], list[Check]]:
    measurements: dict[str, Measurement] = {}
    checks: list[Check] = []
    big, small, tiny = (client_for(u) for u in (world.big_agent, world.small_agent, world.tiny_agent))
    big_count = world.big_partner.customers.count()
    small_count = world.small_partner.customers.count()

    cases: list[tuple[str, Client, str, Callable[[], dict[str, int]]]] = [
        (
            f"Site Details, largest ({LARGEST[0]} sites, {LARGEST[1]} lines)",
            big,
            f"/customers/{world.largest.reference}/",
            site_details_baseline(world.big_agent, world.largest),
        ),
        (
            f"Site Details, small ({SMALL[0]} site, {SMALL[1]} lines)",
            big,
            f"/customers/{world.small.reference}/",
            site_details_baseline(world.big_agent, world.small),
        ),
        (
            f"Customer list p1, {big_count:,} visible",
            big,
            "/",
            customer_list_baseline(world.big_agent, 1),
        ),
        (
            f"Customer list p3, {big_count:,} visible",
            big,
            "/?page=3",
            customer_list_baseline(world.big_agent, 3),
        ),
        (
            f"Customer list p1, {small_count:,} visible",
            small,
            "/",
            customer_list_baseline(world.small_agent, 1),
        ),
        ("Customer list p1, 1 visible", tiny, "/", customer_list_baseline(world.tiny_agent, 1)),
    ]
    for label, client, url, baseline in cases:
        shown, fetched = shown_on_page(client, url), baseline()
        checks.append(rows_match(f"{label}: page shows the SQL's rows", shown, fetched))
        measurements[label] = measure(label, page_request(client, url), baseline, repeat)

    rows = list(measurements.values())
    checks += [
        Check(
            "Site Details: largest vs small customer",
            rows[0].ours_queries == rows[1].ours_queries,
            f"{rows[0].ours_queries} vs {rows[1].ours_queries} queries",
        ),
        Check(
            "Customer list: page 1 vs page 3",
            rows[2].ours_queries == rows[3].ours_queries,
            f"{rows[2].ours_queries} vs {rows[3].ours_queries} queries",
        ),
        Check(
            f"Customer list: {small_count:,} vs {big_count:,} visible",
            rows[4].ours_queries == rows[2].ours_queries,
            f"{rows[4].ours_queries} vs {rows[2].ours_queries} queries",
        ),
        Check(
            "Customer list: 1 row vs a full page",
            rows[5].ours_queries == rows[2].ours_queries,
            f"{rows[5].ours_queries} vs {rows[2].ours_queries} queries",
        ),
        Check(
            "Scoping: each agent sees only its partner's customers",
            [shown_on_page(c, "/")["count"] for c in (big, small, tiny)] == [big_count, small_count, 1],
            f"expected {big_count:,} / {small_count:,} / 1",
        ),
    ]
    return rows, checks


def report(world: World, database: str, repeat: int, rows: list[Measurement], checks: list[Check]) -> bool:
    print()
    print(
        f"Built {world.customers:,} customers ({world.lines:,} lines) in {world.build_seconds:.1f} s "
        f"on {database}; median of {repeat} requests each."
    )
    print("ours: the full GET through the test client (session, permissions, template included).")
    print("sql: minimal raw SQL of the rows the page shows, through the same permission grants,")
    print("decrypting every encrypted value shown. queries / decrypts: per request; ratio: ours / sql ms.")
    print()
    width = max(len(row.label) for row in rows)
    header = (
        f"{'page':<{width}}  {'queries':>7}  {'sql q':>5}  {'decrypts':>8}  {'sql dec':>7}"
        f"  {'ours ms':>8}  {'sql ms':>7}  {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.label:<{width}}  {row.ours_queries:>7}  {row.baseline_queries:>5}  {row.ours_decrypts:>8}"
            f"  {row.baseline_decrypts:>7}  {row.ours_ms:>8.2f}  {row.baseline_ms:>7.2f}  {row.ratio:>5.1f}x"
        )
    print()
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.label}: {check.detail}")
    passed = all(check.ok for check in checks)
    print()
    print("PASS: constant queries" if passed else "FAIL: see above")
    return passed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with django_environment(args.database_url) as database:
        world = build(args.customers)
        if not args.no_analyze:
            analyze()
        rows, checks = run(world, args.repeat)
        statistics_note = "no planner statistics" if args.no_analyze else "after ANALYZE"
        return 0 if report(world, f"{database}, {statistics_note}", args.repeat, rows, checks) else 1


if __name__ == "__main__":
    sys.exit(main())
