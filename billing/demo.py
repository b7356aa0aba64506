"""Demo billing data: a UK tariff, partner billing profiles, line rentals, two months of calls, and bill runs
(the earlier month finalised, the later calculated) so the variance report has something to compare."""

import csv
import datetime
import io
import random
from collections.abc import Callable
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Line, Partner, Role, User
from accounts.validation import national_phone_digits
from billing.models import (
    Band,
    BillRun,
    PartnerBillingProfile,
    Payment,
    Rate,
    RateCard,
    RecurringCharge,
    Tariff,
)
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_calculate_chunk,
    bill_run_create,
    bill_run_finalise,
    bill_run_start_calculation,
)
from billing.services.call_imports import call_import_run
from billing.services.payments import PaymentReceived, payments_record_many

# prefix, band, price per minute, connection charge, minimum charge, increment (seconds)
UK_RATES = [
    ("01", Band.GEOGRAPHIC, "0.0150", "0", "0", 1),
    ("02", Band.GEOGRAPHIC, "0.0150", "0", "0", 1),
    ("03", Band.GEOGRAPHIC, "0.0150", "0", "0", 1),
    ("07", Band.MOBILE, "0.0800", "0", "0.0100", 1),
    ("080", Band.FREEPHONE, "0", "0", "0", 1),
    ("084", Band.NON_GEOGRAPHIC, "0.0700", "0.0500", "0", 60),
    ("087", Band.NON_GEOGRAPHIC, "0.1000", "0.0500", "0", 60),
    ("09", Band.PREMIUM, "1.5000", "0.2500", "0.5000", 1),
    ("00", Band.INTERNATIONAL, "0.5000", "0.1000", "0", 1),
    ("00353", Band.INTERNATIONAL, "0.1200", "0", "0", 1),
    ("0035387", Band.INTERNATIONAL, "0.2500", "0", "0", 1),
]
MONTHLY_RENTAL = {
    Line.LineType.WLR_ANALOGUE: Decimal("12.50"),
    Line.LineType.ISDN: Decimal("22.00"),
    Line.LineType.SIP: Decimal("8.00"),
    Line.LineType.MOBILE: Decimal("15.00"),
    Line.LineType.BROADBAND: Decimal("25.00"),
}
DESTINATIONS = ["0113496", "0207946", "07700100", "0800157", "0845000", "00353", "0035387", "09011"]


def uk_tariff(
    *,
    name: str = "Business standard",
    partner: Partner | None = None,
    effective_from: datetime.datetime | None = None,
) -> Tariff:
    tariff = Tariff.objects.create(partner=partner, name=name)
    card = RateCard.objects.create(
        tariff=tariff, effective_from=effective_from or datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    )
    Rate.objects.bulk_create(
        Rate(
            rate_card=card,
            prefix=prefix,
            band=band,
            price_per_minute=Decimal(ppm),
            connection_charge=Decimal(connection),
            minimum_charge=Decimal(minimum),
            increment_seconds=increment,
        )
        for prefix, band, ppm, connection, minimum, increment in UK_RATES
    )
    return tariff


def billing_profile(partner: Partner, *, default_tariff: Tariff | None) -> PartnerBillingProfile:
    return PartnerBillingProfile.objects.create(
        partner=partner,
        default_tariff=default_tariff,
        legal_name=f"{partner.name}",
        address="1 Exchange Square\nLeeds\nLS1 4AP",
        vat_number=partner.vat_number or "GB123456789",
        invoice_prefix=f"{partner.code.upper().replace('-', '')[:9]}-",
        bacs_service_user_number="123456",
        bacs_sort_code="200000",
        bacs_account_number="55779911",
        bacs_account_name=partner.name.upper()[:18],
    )


def line_rentals(lines: list[Line]) -> None:
    """One monthly rental per line, from the line's start, at the demo price of its type."""
    with transaction.atomic():
        RecurringCharge.objects.bulk_create(
            (
                RecurringCharge(
                    customer_id=line.customer_id,
                    line=line,
                    description=f"{line.get_line_type_display()} rental",
                    monthly_amount=MONTHLY_RENTAL[Line.LineType(line.line_type)],
                    start_date=line.start_date,
                )
                for line in lines
            ),
            batch_size=2000,
        )


def month_bounds(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    start = day.replace(day=1)
    following = (start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return start, following - datetime.timedelta(days=1)


def calls_csv(
    lines: list[Line], month: tuple[datetime.date, datetime.date], per_line: int, rng: random.Random
) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["cli", "dialled_number", "start_time", "duration", "call_type", "call_reference"])
    days = (month[1] - month[0]).days + 1
    for line in lines:
        cli = national_phone_digits(line.cli)
        for n in range(per_line):
            day = month[0] + datetime.timedelta(days=rng.randrange(days))
            at = datetime.datetime.combine(day, datetime.time(rng.randrange(8, 19), rng.randrange(60)))
            dialled = rng.choice(DESTINATIONS)
            dialled += "".join(str(rng.randrange(10)) for _ in range(11 - len(dialled)))
            writer.writerow(
                [
                    cli,
                    dialled,
                    at.isoformat(),
                    rng.randrange(5, 900),
                    "voice",
                    f"D{line.pk}-{month[0]:%Y%m}-{n}",
                ]
            )
    return out.getvalue()


def seed_partner(
    partner: Partner,
    *,
    tariff: Tariff,
    today: datetime.date,
    rng: random.Random,
    progress: Callable[[str], None],
) -> None:
    actor = User.objects.filter(partner=partner, groups__name=Role.BILLING_AGENT).first()
    finance = User.objects.filter(partner=partner, groups__name=Role.FINANCE_MANAGER).first()
    if actor is None or finance is None:
        raise RuntimeError("Run seed_demo first: the partner needs a billing agent and a finance manager.")
    billing_profile(partner, default_tariff=tariff)
    lines = list(Line.objects.filter(customer__partner=partner))
    line_rentals(lines)
    last_month = month_bounds(today.replace(day=1) - datetime.timedelta(days=1))
    month_before = month_bounds(last_month[0] - datetime.timedelta(days=1))
    for month, per_line in ((month_before, 6), (last_month, 8)):
        progress(f"{partner.name}: importing calls for {month[0]:%B %Y}")
        call_import_run(
            partner=partner,
            stream=io.StringIO(calls_csv(lines, month, per_line, rng)),
            file_name=f"demo-{month[0]:%Y-%m}.csv",
            actor=actor,
        )
    for month, finalise in ((month_before, True), (last_month, False)):
        progress(f"{partner.name}: bill run for {month[0]:%B %Y}")
        run = bill_run_create(partner=partner, period_start=month[0], period_end=month[1], actor=actor)
        bill_run_start_calculation(bill_run=run, actor=actor)
        # The chunks were queued on commit; inside a transaction (or without a worker) finish them here.
        # Chunks already done are skipped, so this never calculates anything twice.
        for chunk_id in run.chunks.filter(done_at__isnull=True).values_list("pk", flat=True):
            bill_run_calculate_chunk(chunk_id=chunk_id, actor_id=actor.pk)
        run.refresh_from_db()
        if finalise and run.status == BillRun.Status.CALCULATED:
            # The demo's earlier month is approved as if its finance manager had reviewed the exceptions.
            bill_run_approve(bill_run=run, actor=finance, exceptions_acknowledged=run.exceptions.count())
            bill_run_finalise(bill_run=run, actor=finance, issue_date=month[1] + datetime.timedelta(days=1))
            progress(f"{partner.name}: payments for {month[0]:%B %Y}")
            pay_most_invoices(run, actor=actor, today=today, rng=rng)


def pay_most_invoices(run: BillRun, *, actor: User, today: datetime.date, rng: random.Random) -> None:
    """Most customers pay the finalised run's invoice in full by bank transfer or card, some pay part, and
    the last few do not pay: the account pages show statements and credit, aged debt shows debtors."""
    invoices = list(run.invoices.filter(customer__isnull=False).order_by("customer_id"))
    paid_on = min(today, (run.issue_date or today) + datetime.timedelta(days=10))
    batch = []
    for number, invoice in enumerate(invoices):
        if number >= len(invoices) - max(1, len(invoices) // 10):
            break  # the last tenth owe it all
        assert invoice.customer_id is not None
        share = Decimal("0.5") if number % 7 == 3 else Decimal("1")  # a few pay half
        method = Payment.Method.CARD if rng.random() < 0.3 else Payment.Method.BANK_TRANSFER
        amount = (invoice.gross * share).quantize(Decimal("0.01"))
        if amount > 0:
            batch.append(
                PaymentReceived(invoice.customer_id, method, amount, paid_on, f"DEMO-{invoice.number}")
            )
    payments_record_many(payments=batch, actor=actor)


def seed(*, progress: Callable[[str], None], today: datetime.date | None = None) -> bool:
    """Seed every demo partner that has no billing profile yet. Returns False when nothing was left to do."""
    partners = list(
        Partner.objects.filter(code__startswith="demo-", billing_profile__isnull=True).order_by("code")
    )
    if not partners:
        return False
    tariff = Tariff.objects.filter(partner__isnull=True, name="Business standard").first() or uk_tariff()
    rng = random.Random(2026)
    for partner in partners:
        seed_partner(partner, tariff=tariff, today=today or timezone.localdate(), rng=rng, progress=progress)
    return True
