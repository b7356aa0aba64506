"""Demo billing data: a UK tariff, partner billing profiles, line rentals, two months of calls, and bill runs
(the earlier month finalised, the later calculated) so the variance report has something to compare; and
the payments pages' data, all through the services: a finalised run five months back that one customer
never paid (aged debt over 90 days), the recent run's invoices paid by bank transfer, card or Direct Debit
(a submission collecting from active mandates), one Direct Debit returned unpaid by an ARUDD report
imported through the Bacs report service, and the dunning steps the daily job takes for those who owe."""

import csv
import datetime
import io
import random
from collections.abc import Callable
from decimal import Decimal
from xml.etree import ElementTree

from django.db import transaction
from django.utils import timezone

from accounts import mandates
from accounts.models import Line, Partner, PaymentDetails, Role, User
from accounts.services import system_user
from accounts.validation import national_phone_digits
from billing.models import (
    Band,
    BillRun,
    DirectDebitCollection,
    Invoice,
    PartnerBillingProfile,
    Payment,
    Rate,
    RateCard,
    RecurringCharge,
    Tariff,
)
from billing.services.bacs_reports import bacs_report_import
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_calculate_chunk,
    bill_run_create,
    bill_run_finalise,
    bill_run_start_calculation,
)
from billing.services.call_imports import call_import_run
from billing.services.catalogue import product_create, product_price_add
from billing.services.direct_debit import direct_debit_export
from billing.services.dunning import DUNNING_JOB, dunning_run
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


# The line rental products each demo partner sells, with the date their first price took effect: what
# onboarding offers for a new line. The analogue line goes up on the first of next month (a second price
# version), so the product page shows an effective-dated change.
DEMO_PRODUCTS = (
    ("Analogue line rental", Decimal("12.50"), Decimal("13.25")),
    ("SIP channel", Decimal("8.00"), None),
)


def catalogue(partner: Partner, *, actor: User, today: datetime.date) -> None:
    first_of_next_month = (today.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    for name, price, next_price in DEMO_PRODUCTS:
        product = product_create(
            partner=partner, name=name, monthly_price=price, valid_from=datetime.date(2020, 1, 1), actor=actor
        )
        if next_price is not None:
            product_price_add(
                product=product,
                valid_from=first_of_next_month,
                monthly_price=next_price,
                actor=actor,
                reason="Annual price review",
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
    catalogue(partner, actor=actor, today=today)
    lines = list(Line.objects.filter(customer__partner=partner))
    line_rentals(lines)
    last_month = month_bounds(today.replace(day=1) - datetime.timedelta(days=1))
    month_before = month_bounds(last_month[0] - datetime.timedelta(days=1))
    # Five months back: rentals only (no calls), issued long enough ago that an unpaid invoice is over 90
    # days overdue (aged debt's last bucket).
    long_ago = month_bounds(month_before[0] - datetime.timedelta(days=1))
    for _ in range(3):
        long_ago = month_bounds(long_ago[0] - datetime.timedelta(days=1))
    for month, per_line in ((month_before, 6), (last_month, 8)):
        progress(f"{partner.name}: importing calls for {month[0]:%B %Y}")
        call_import_run(
            partner=partner,
            stream=io.StringIO(calls_csv(lines, month, per_line, rng)),
            file_name=f"demo-{month[0]:%Y-%m}.csv",
            actor=actor,
        )
    for month, finalise in ((long_ago, True), (month_before, True), (last_month, False)):
        progress(f"{partner.name}: bill run for {month[0]:%B %Y}")
        run = bill_run_create(partner=partner, period_start=month[0], period_end=month[1], actor=actor)
        bill_run_start_calculation(bill_run=run, actor=actor)
        # The chunks were queued on commit; inside a transaction (or without a worker) finish them here.
        # Chunks already done are skipped, so this never calculates anything twice.
        for chunk_id in run.chunks.filter(done_at__isnull=True).values_list("pk", flat=True):
            bill_run_calculate_chunk(chunk_id=chunk_id, actor_id=actor.pk)
        run.refresh_from_db()
        if finalise and run.status == BillRun.Status.CALCULATED:
            # The demo's earlier months are approved as if the finance manager had reviewed the exceptions.
            bill_run_approve(bill_run=run, actor=finance, exceptions_acknowledged=run.exceptions.count())
            # Issued months ago in the demo's story: no email is sent for them now.
            run = bill_run_finalise(
                bill_run=run,
                actor=finance,
                issue_date=month[1] + datetime.timedelta(days=1),
                email_invoices=False,
            )
            progress(f"{partner.name}: payments for {month[0]:%B %Y}")
            if month == long_ago:
                pay_all_but_the_last(run, actor=actor, today=today)
            else:
                by_direct_debit = collect_by_direct_debit(run, finance=finance, today=today)
                pay_most_invoices(run, actor=actor, today=today, rng=rng, skip=by_direct_debit)
    progress(f"{partner.name}: dunning")
    dunning_run(today=today, actor=system_user(job=DUNNING_JOB))


def _unpaid_customers(invoices: list[Invoice]) -> set[int]:
    """Whose invoices the demo leaves unpaid: the last tenth of the run's customers (by id)."""
    customer_ids = sorted({invoice.customer_id for invoice in invoices if invoice.customer_id is not None})
    return set(customer_ids[len(customer_ids) - max(1, len(customer_ids) // 10) :])


def pay_all_but_the_last(run: BillRun, *, actor: User, today: datetime.date) -> None:
    """Everyone pays the old run's invoice in full except the last customer, the aged debtor."""
    invoices = list(run.invoices.filter(customer__isnull=False).order_by("customer_id"))
    debtor = max((invoice.customer_id for invoice in invoices if invoice.customer_id), default=None)
    paid_on = min(today, (run.issue_date or today) + datetime.timedelta(days=10))
    payments_record_many(
        payments=[
            PaymentReceived(
                invoice.customer_id,
                Payment.Method.BANK_TRANSFER,
                invoice.gross,
                paid_on,
                f"DEMO-{invoice.number}",
            )
            for invoice in invoices
            if invoice.customer_id is not None and invoice.customer_id != debtor and invoice.gross > 0
        ],
        actor=actor,
    )


def collect_by_direct_debit(run: BillRun, *, finance: User, today: datetime.date) -> set[int]:
    """A third of the customers who pay have active mandates (lodged by a bureau long ago): the run's
    Direct Debit submission collects their invoices, and an ARUDD report returns the first collection
    unpaid ("refer to payer"). Returns the customers whose invoices the submission collected."""
    invoices = list(run.invoices.filter(customer__isnull=False).order_by("customer_id"))
    unpaid = _unpaid_customers(invoices)
    payers = [
        invoice.customer_id
        for number, invoice in enumerate(invoices)
        if number % 3 == 1
        and invoice.customer_id is not None
        and invoice.customer_id not in unpaid
        and invoice.gross > 0
    ]
    lodged_on = today - datetime.timedelta(days=120)
    for mandate in PaymentDetails.objects.filter(customer_id__in=payers, status=PaymentDetails.Status.NEW):
        mandate = mandates.mandate_lodge(
            mandate=mandate,
            actor=finance,
            submission_id=None,
            lodged_at=datetime.datetime.combine(lodged_on, datetime.time(9), tzinfo=datetime.UTC),
            processing_date=lodged_on,
        )
        mandates.mandate_activate(mandate=mandate, actor=finance, today=today)
    submission = direct_debit_export(bill_run=run, actor=finance)
    collections = list(submission.collection_rows.order_by("pk"))
    if collections:
        returned = collections[0]
        bacs_report_import(
            data=arudd_report(returned, partner=run.partner),
            filename=f"demo-arudd-{returned.processing_date:%Y-%m-%d}.xml",
            actor=finance,
        )
    return {collection.customer_id for collection in collections}


def arudd_report(collection: DirectDebitCollection, *, partner: Partner) -> bytes:
    """An ARUDD report, as Bacs publishes it (the schema in billing/bacs_reports.py), returning
    ``collection`` unpaid with reason 0, refer to payer, on its debit day."""
    mandate = PaymentDetails.objects.get(pk=collection.mandate_id)
    root = ElementTree.Element("BACSDocument")
    report = ElementTree.SubElement(ElementTree.SubElement(root, "Data"), "ARUDD")
    ElementTree.SubElement(
        report,
        "Header",
        reportType="REFT1234",
        adviceNumber=f"{collection.pk % 1000:03d}",
        currentProcessingDate=collection.debit_date.isoformat(),
    )
    ElementTree.SubElement(
        report,
        "ServiceLicenseInformation",
        userName=partner.name.upper()[:18],
        userNumber=partner.billing_profile.bacs_service_user_number,
    )
    record = ElementTree.SubElement(
        ElementTree.SubElement(ElementTree.SubElement(report, "Advice"), "OriginatingAccountRecords"),
        "OriginatingAccountRecord",
    )
    ElementTree.SubElement(
        record,
        "ReturnedDebitItem",
        ref=mandate.mandate_reference,
        transCode=collection.transaction_code,
        returnCode="0",
        returnDescription="REFER TO PAYER",
        originalProcessingDate=collection.processing_date.isoformat(),
        valueOf=f"{collection.amount_pence // 100}.{collection.amount_pence % 100:02d}",
        currency="GBP",
    )
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def pay_most_invoices(
    run: BillRun, *, actor: User, today: datetime.date, rng: random.Random, skip: set[int] | None = None
) -> None:
    """Most customers pay the finalised run's invoice in full by bank transfer or card, some pay part, and
    the last few do not pay: the account pages show statements and credit, aged debt shows debtors.
    Customers in ``skip`` paid otherwise (by Direct Debit)."""
    invoices = list(run.invoices.filter(customer__isnull=False).order_by("customer_id"))
    unpaid = _unpaid_customers(invoices)
    paid_on = min(today, (run.issue_date or today) + datetime.timedelta(days=10))
    batch = []
    for number, invoice in enumerate(invoices):
        assert invoice.customer_id is not None
        if invoice.customer_id in unpaid or invoice.customer_id in (skip or set()):
            continue  # the last tenth owe it all
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
