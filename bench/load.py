"""Load: the staff and portal pages under 50 concurrent clients, against gunicorn as production runs it.

Creates a throwaway PostgreSQL database (dropped at the end unless --keep; its name must contain "bench"),
builds --customers customers through accounts.demo.DemoBuilder (90% under one partner, the rest under a
second), a billing agent of the large partner and a portal user, each with a TOTP device. Then it collects
the static files and starts gunicorn with the production settings (DJANGO_DEBUG=false, keys generated for
the run) and deploy/gunicorn_conf.py, 2 workers, on a free port of 127.0.0.1; logs in once per role
(password, then the TOTP code) and reuses each session cookie in every client.

For each page, --clients clients (asyncio, one connection per request, as gunicorn's sync workers close
it) request it again and again for --seconds in all, after a short warm-up. The seconds are split into
--rounds rounds, and each round measures every page in turn, so a machine that slows down or speeds up
during the run moves every page's figure alike and the ratios hold. It prints requests per second, the
50th/95th/99th percentile latency, the errors (any answer but 200, or no answer), and the throughput
relative to /healthz, the minimal Django view (every middleware, no session, no database), measured in the
same rounds, with the lowest and highest of the rounds' ratios. It also prints the CPU the gunicorn
workers spent per request and the share of a core the client itself used, so a client that saturates is
seen.

Targets (full size): no errors, every page at least 1/6 of the minimal view's throughput, p95 under
500 ms. It exits 1 when one is missed. At --smoke size only the errors count. gunicorn is stopped in every
case (SIGTERM, then SIGKILL to its group after 30 s), and the whole run is bounded by --seconds per page.

    .venv/bin/python bench/load.py [--customers 10000] [--seconds 10] [--rounds 5] [--clients 50]
                                   [--threads N] [--conn-max-age 60]
                                   [--keep] [--smoke] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bill_run import REPO_ROOT, database_name, django_environment

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fusion_load_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
PASSWORD = "bench-load-password-0123456789"  # noqa: S105 - a throwaway user in a throwaway database
STARTUP_SECONDS = 60
STOP_SECONDS = 30
REQUEST_TIMEOUT = 30.0
MIN_RATIO = 1 / 6
MAX_P95_MS = 500.0
CEILING = "minimal view (/healthz)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000, help="customers in all (default 10000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per page (default 10)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds the seconds are split into, every page measured in each (default 5)",
    )
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="GUNICORN_THREADS for the server (default: deploy/gunicorn_conf.py's own default)",
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="DATABASE_CONN_MAX_AGE for the server (default 60, as deploy/GUIDE.md sets it)",
    )
    parser.add_argument(
        "--redis-url",
        default=DEFAULT_REDIS_URL,
        help=f"REDIS_URL for the server: its cache and sessions (default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--smoke", action="store_true", help="CI size: 200 customers, 2 s per page, only errors checked"
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help=f"PostgreSQL database to DROP and re-create (default {DEFAULT_DATABASE_URL})",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.customers, args.seconds, args.rounds = 200, 2.0, 2
    if "bench" not in database_name(args.database_url):
        parser.error("the database's name must contain 'bench' (it is dropped and re-created)")
    if args.customers < 20 or args.clients < 1 or not 0.5 <= args.seconds <= 60:
        parser.error("--customers at least 20, --clients at least 1, --seconds between 0.5 and 60")
    if not 1 <= args.rounds <= 20 or args.seconds / args.rounds < 0.5:
        parser.error("--rounds between 1 and 20, and at least 0.5 s a page in each round")
    return args


@dataclass(frozen=True)
class Role:
    email: str
    totp_key: str


@dataclass(frozen=True)
class World:
    staff: Role
    portal: Role
    listed_reference: str  # on the staff list's first page
    shown_reference: str  # the customer whose Site Details staff open
    portal_reference: str
    phone: str  # a line of a customer of the staff user's partner
    phone_reference: str
    customers: int
    build_seconds: float


@dataclass(frozen=True)
class Page:
    label: str
    path: str
    role: str | None  # "staff", "portal" or None (no session)
    marker: str  # text the page must show, checked once before the load


@dataclass
class Result:
    """A page's figures summed over the rounds; ``round_rps`` keeps each round's requests/s."""

    page: Page
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    server_cpu: float = 0.0
    database_cpu: float = 0.0
    client_cpu: float = 0.0
    round_rps: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def round_ratios(self, ceiling: Result) -> list[float]:
        """This page's requests/s over the minimal view's, round by round."""
        pairs = zip(self.round_rps, ceiling.round_rps, strict=True)
        return [mine / theirs if theirs else 0.0 for mine, theirs in pairs]

    def percentile_ms(self, percent: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[percent - 1] * 1000

    @property
    def answered(self) -> int:
        return len(self.latencies) + sum(self.errors.values())


def build(customers: int) -> World:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from tqdm import tqdm

    from accounts import services
    from accounts.demo import DemoBuilder
    from accounts.models import Customer, Line
    from accounts.models import Role as UserRole

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    builder = DemoBuilder(seed=2026, actor=services.system_user(job="bench"))
    big_partner, small_partner = builder.partners(2)
    small_count = customers // 10
    with tqdm(total=customers, desc="Building", unit="customer") as bar:
        builder.customers(big_partner, customers - small_count, sizes=lambda i: (1, 2), progress=bar.update)
        builder.customers(small_partner, small_count, sizes=lambda i: (1, 2), progress=bar.update)
    now = timezone.now()
    first, shown, portal_customer, searched = Customer.objects.filter(partner=big_partner).order_by("id")[:4]
    made = {}
    for name, role, partner, customer in (
        ("staff", UserRole.BILLING_AGENT, big_partner, None),
        ("portal", UserRole.CUSTOMER, None, portal_customer),
    ):
        user = services.user_create(
            email=f"bench-{name}@load.example",
            full_name=f"Bench {name}",
            role=role,
            actor=None,
            password=PASSWORD,
            partner=partner,
            customer=customer,
            confidentiality_signed_at=now,
            gdpr_training_completed_at=now,
        )
        device = TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
        made[name] = Role(user.email, device.key)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would after a bulk load
    line = Line.objects.filter(customer=searched).order_by("id").first()
    assert line is not None
    return World(
        staff=made["staff"],
        portal=made["portal"],
        listed_reference=first.reference,
        shown_reference=shown.reference,
        portal_reference=portal_customer.reference,
        phone=str(line.cli),
        phone_reference=searched.reference,
        customers=Customer.objects.count(),
        build_seconds=time.perf_counter() - started,
    )


def pages(world: World) -> list[Page]:
    return [
        Page(CEILING, "/healthz", None, "ok"),
        Page("staff customer list", "/", "staff", world.listed_reference),
        Page(
            "search by phone",
            "/?" + urllib.parse.urlencode({"q": world.phone}),
            "staff",
            world.phone_reference,
        ),
        Page("Site Details (staff)", f"/customers/{world.shown_reference}/", "staff", world.shown_reference),
        Page("portal home", f"/customers/{world.portal_reference}/", "portal", world.portal_reference),
    ]


def production_env(tmp: Path, database_url: str, port: int, args: argparse.Namespace) -> dict[str, str]:
    """The production settings with keys of the run's own (the build used the same, set before Django
    started), as tests/prod/test_prod_smoke.py runs them, with Redis for the cache and sessions; no
    broker: pages queue nothing under load."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "CELERY_", "GUNICORN_", "PYTEST_", "FUSION_TEST"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="fusion_site.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=os.environ["DJANGO_SECRET_KEY"],
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_BEHIND_TLS_PROXY="true",
        DJANGO_STATIC_ROOT=str(tmp / "static"),
        DJANGO_MEDIA_ROOT=str(tmp / "media"),
        DATABASE_URL=database_url,
        DATABASE_CONN_MAX_AGE=str(args.conn_max_age),
        REDIS_URL=args.redis_url,
        CELERY_BROKER_URL="",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS="2",
        # No worker replaced during the run: a new worker loads the application again (2.3-2.6 s of CPU),
        # which at the production default of ~20,000 requests costs every request alike about 0.12 ms,
        # but within a run lands whole in the one page's round it falls in. Off, every page is measured
        # at steady state (the ratios are, if anything, lower: /healthz would pay the same 0.12 ms).
        GUNICORN_MAX_REQUESTS="0",
        SITE_URL=f"https://127.0.0.1:{port}",
    )
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    return env


def set_run_keys(tmp: Path) -> None:
    """Keys for this run only, in the environment before Django starts, so the build encrypts and
    indexes with the keys the server reads."""
    from cryptography.fernet import Fernet

    os.environ["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(60)
    os.environ["FIELD_ENCRYPTION_KEYS"] = Fernet.generate_key().decode()
    os.environ["BLIND_INDEX_KEY"] = secrets.token_urlsafe(32)
    os.environ["AUDIT_HMAC_KEYS"] = secrets.token_urlsafe(32)
    os.environ["AUDIT_CHECKPOINT_DIR"] = str(tmp / "audit-checkpoints")
    os.environ["ERASURE_JOURNAL_DIR"] = str(tmp / "erasure-journal")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM the server if this script dies without its finally (SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn_conf.py"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def workers_of(master: int) -> list[int]:
    """The process ids of the gunicorn master's workers alive now."""
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def cpu_seconds_of_server(master: int) -> float:
    """User + system CPU of the gunicorn workers alive now plus those that exited (the master's
    cumulative children figures), so a worker replaced by max_requests mid-phase still counts."""
    ticks = os.sysconf("SC_CLK_TCK")

    def stat(pid: int) -> list[str]:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2 :].split()

    try:
        master_stat = stat(master)
        total = int(master_stat[11]) + int(master_stat[12]) + int(master_stat[13]) + int(master_stat[14])
        children = workers_of(master)
    except OSError:
        return float("nan")
    for child in children:
        with contextlib.suppress(OSError):
            child_stat = stat(child)
            total += int(child_stat[11]) + int(child_stat[12])
    return total / ticks


def cpu_seconds_of_postgresql() -> float:
    """User + system CPU of every PostgreSQL process on this machine (backends and background workers),
    plus what the ones that ended spent (the postmaster's figures for the children it reaped), so a
    connection closed mid-phase (DATABASE_CONN_MAX_AGE) still counts. On a quiet machine the difference
    over a phase is what the pages cost the database. Readable only for PostgreSQL running here."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            text = (entry / "stat").read_text()
            if text[text.index("(") + 1 : text.rindex(")")] != "postgres":
                continue
            fields = text[text.rindex(")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


class Client:
    """HTTP/1.1 to gunicorn as the TLS proxy forwards it (X-Forwarded-Proto: https), cookies by hand: they
    are Secure, and a cookie jar would not send them over plain HTTP."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.origin = f"https://127.0.0.1:{port}"

    def request_bytes(
        self, path: str, cookies: dict[str, str], *, form: dict[str, str] | None = None
    ) -> bytes:
        headers = [
            f"{'POST' if form is not None else 'GET'} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            "X-Forwarded-Proto: https",
            "Connection: close",
        ]
        if cookies:
            headers.append("Cookie: " + "; ".join(f"{name}={value}" for name, value in cookies.items()))
        body = b""
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers += [
                f"Referer: {self.origin}{path}",
                "Content-Type: application/x-www-form-urlencoded",
                f"Content-Length: {len(body)}",
            ]
        return ("\r\n".join(headers) + "\r\n\r\n").encode() + body

    async def send(self, raw: bytes) -> tuple[int, bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(raw)
            answer = await reader.read()
        finally:
            writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head[9:12]), head, body

    async def fetch(self, path: str, cookies: dict[str, str], form: dict[str, str] | None = None) -> Any:
        status, head, body = await self.send(self.request_bytes(path, cookies, form=form))
        for name, value in re.findall(rb"(?im)^set-cookie: *([^=]+)=([^;\r\n]*)", head):
            cookies[name.decode()] = value.decode()
        location = re.search(rb"(?im)^location: *(\S+)", head)
        return status, (location.group(1).decode() if location else ""), body

    async def log_in(self, role: Role) -> dict[str, str]:
        """Password, then the second factor (TOTP), as a person signs in."""
        from django_otp.oath import totp

        cookies: dict[str, str] = {}
        _, _, body = await self.fetch("/login/", cookies)
        form = {"username": role.email, "password": PASSWORD, "csrfmiddlewaretoken": csrf_token(body)}
        status, _, _ = await self.fetch("/login/", cookies, form)
        if status != 302:
            raise SystemExit(f"{role.email}: the password step answered {status}")
        _, _, body = await self.fetch("/account/two-factor/", cookies)
        code = f"{totp(bytes.fromhex(role.totp_key)):06d}"
        form = {"token": code, "csrfmiddlewaretoken": csrf_token(body)}
        status, _, _ = await self.fetch("/account/two-factor/", cookies, form)
        if status != 302:
            raise SystemExit(f"{role.email}: the second factor answered {status}")
        return cookies


def csrf_token(html: bytes) -> str:
    found = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if not found:
        raise SystemExit(f"no CSRF token in: {html[:300]!r}")
    return found.group(1).decode()


async def wait_until_up(client: Client, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError, ValueError):
            status, _, _ = await client.fetch("/healthz", {})
            if status == 200:
                return
        await asyncio.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-3000:]}")


async def hammer(client: Client, raw: bytes, seconds: float, clients: int, result: Result | None) -> None:
    """``clients`` loops sending ``raw`` until ``seconds`` have passed; a request in flight then
    finishes and counts."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def one_client() -> None:
        while loop.time() < deadline:
            started = time.perf_counter()
            try:
                status, _, _ = await asyncio.wait_for(client.send(raw), REQUEST_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as error:
                if result is not None:
                    result.errors[type(error).__name__] += 1
                continue
            if result is None:
                continue
            if status == 200:
                result.latencies.append(time.perf_counter() - started)
            else:
                result.errors[f"HTTP {status}"] += 1

    await asyncio.gather(*(one_client() for _ in range(clients)))


async def check_and_warm(
    client: Client, page: Page, cookies: dict[str, str], args: argparse.Namespace
) -> bytes:
    """The page answers with its marker; then a short warm-up, not counted. Returns the request to send."""
    status, location, body = await client.fetch(page.path, dict(cookies))
    if status != 200 or page.marker.encode() not in body:
        raise SystemExit(f"{page.label}: {page.path} answered {status} {location} without {page.marker!r}")
    raw = client.request_bytes(page.path, cookies)
    await hammer(client, raw, min(1.0, args.seconds / 4), args.clients, None)
    return raw


async def measure_round(
    client: Client, raw: bytes, seconds: float, clients: int, result: Result, master: int
) -> None:
    """One round of a page, its figures added to ``result``."""
    answered_before = len(result.latencies)
    cpu_before, client_before = cpu_seconds_of_server(master), time.process_time()
    database_before = cpu_seconds_of_postgresql()
    started = time.perf_counter()
    await hammer(client, raw, seconds, clients, result)
    elapsed = time.perf_counter() - started
    result.seconds += elapsed
    result.round_rps.append((len(result.latencies) - answered_before) / elapsed)
    result.server_cpu += cpu_seconds_of_server(master) - cpu_before
    result.database_cpu += cpu_seconds_of_postgresql() - database_before
    result.client_cpu += time.process_time() - client_before


async def load(
    args: argparse.Namespace, world: World, port: int, server: subprocess.Popen[bytes], log: Path
) -> tuple[list[Result], int]:
    """Each page's figures over the rounds, and how many workers were replaced during them."""
    client = Client(port)
    await wait_until_up(client, server, log)
    sessions: dict[str | None, dict[str, str]] = {
        None: {},
        "staff": await client.log_in(world.staff),
        "portal": await client.log_in(world.portal),
    }
    requests = {}
    for page in pages(world):
        requests[page] = await check_and_warm(client, page, sessions[page.role], args)
    results = {page: Result(page) for page in requests}
    workers = set(workers_of(server.pid))
    seconds = args.seconds / args.rounds
    for number in range(1, args.rounds + 1):
        print(
            f"  round {number} of {args.rounds}: each page, {args.clients} clients for {seconds:g} s",
            flush=True,
        )
        for page, raw in requests.items():
            await measure_round(client, raw, seconds, args.clients, results[page], server.pid)
    return list(results.values()), len(set(workers_of(server.pid)) - workers)


def report(
    results: list[Result], args: argparse.Namespace, world: World, database: str, *, replaced: int
) -> bool:
    ceiling = results[0].rps
    print(
        f"\n{world.customers:,} customers (built in {world.build_seconds:.0f} s), {database}; gunicorn "
        f"2 workers{f' x {args.threads} threads' if args.threads else ''} ({replaced} replaced during the "
        f"rounds), DATABASE_CONN_MAX_AGE="
        f"{args.conn_max_age}, {args.clients} clients, "
        f"{args.seconds:g} s a page in {args.rounds} rounds, {os.cpu_count()} CPUs\n"
    )
    header = (
        f"{'page':<26} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'vs min':>7} {'rounds':>11} {'srv CPU ms/req':>15} {'db CPU ms/req':>14} {'client CPU':>11}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for result in results:
        ratio = result.rps / ceiling if ceiling else 0.0
        cpu_ms = result.server_cpu * 1000 / result.answered if result.answered else float("nan")
        db_ms = result.database_cpu * 1000 / result.answered if result.answered else float("nan")
        errors = sum(result.errors.values())
        ratios = result.round_ratios(results[0])
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}" if ratios else "-"
        print(
            f"{result.page.label:<26} {result.rps:>8.1f} {result.percentile_ms(50):>8.1f} "
            f"{result.percentile_ms(95):>8.1f} {result.percentile_ms(99):>8.1f} {errors:>7} "
            f"{ratio:>6.2f}x {spread:>11} {cpu_ms:>15.1f} {db_ms:>14.1f} "
            f"{result.client_cpu / result.seconds:>10.0%}"
        )
        missed = []
        if errors:
            missed.append(f"errors {dict(result.errors)}")
        if not args.smoke and result is not results[0]:
            if ratio < MIN_RATIO:
                missed.append(f"throughput {ratio:.2f}x the minimal view (target >= {MIN_RATIO:.2f}x)")
            if result.percentile_ms(95) >= MAX_P95_MS:
                missed.append(f"p95 {result.percentile_ms(95):.0f} ms (target < {MAX_P95_MS:.0f} ms)")
        for miss in missed:
            print(f"    MISSED: {miss}")
        ok = ok and not missed
    print(
        "\nTargets: 0 errors"
        + ("" if args.smoke else f"; each page >= {MIN_RATIO:.2f}x the minimal view's req/s; p95 < 500 ms")
        + (" (smoke size: throughput and latency not checked)" if args.smoke else "")
    )
    print("All targets met." if ok else "A target was missed.")
    return ok


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    with tempfile.TemporaryDirectory(prefix="fusion-load-") as tmpdir:
        tmp = Path(tmpdir)
        set_run_keys(tmp)
        with django_environment(args.database_url, keep=args.keep) as database:
            world = build(args.customers)
            from django.db import connections

            connections.close_all()  # the server's workers need no competition from an idle connection
            port = free_port()
            env = production_env(tmp, args.database_url, port, args)
            collected = subprocess.run(
                [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if collected.returncode:
                raise SystemExit(f"collectstatic failed:\n{collected.stderr[-3000:]}")
            log = tmp / "gunicorn.log"
            with gunicorn(env, log) as process:
                results, replaced = asyncio.run(load(args, world, port, process, log))
            ok = report(results, args, world, database, replaced=replaced)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
