"""Billing test data built through the services, with a realistic UK tariff."""

import csv
import datetime
import io
import itertools
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from decimal import Decimal

from django.test import TestCase

from accounts.models import Customer, Partner, User
from billing.models import (
    Band,
    BillRun,
    CallImport,
    CallRecord,
    Invoice,
    PartnerBillingProfile,
    Rate,
    RateCard,
    Tariff,
)
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_create,
    bill_run_finalise,
    bill_run_start_calculation,
)
from billing.services.call_imports import call_import_run
from billing.services.charges import one_off_charge_create, recurring_charge_create
from billing.services.ledger import ledger_post_invoices
from fusion_site.money import vat_on

UK_TIME = zoneinfo.ZoneInfo("Europe/London")
CSV_HEADER = ("cli", "dialled_number", "start_time", "duration", "call_type", "call_reference")


def billing_profile(
    partner: Partner,
    *,
    default_tariff: Tariff | None = None,
    invoice_prefix: str | None = None,
    next_invoice_number: int = 1,
) -> PartnerBillingProfile:
    return PartnerBillingProfile.objects.create(
        next_invoice_number=next_invoice_number,
        partner=partner,
        default_tariff=default_tariff,
        legal_name=f"{partner.name} Trading Ltd",
        address="1 Exchange Square\nLeeds\nLS1 4AP",
        vat_number="GB123456789",
        invoice_prefix=invoice_prefix or f"{partner.code[:6].upper()}-",
        bacs_service_user_number="123456",
        bacs_sort_code="200000",
        bacs_account_number="55779911",
        bacs_account_name="PARTNER COLLECT",
    )


def uk(text: str) -> datetime.datetime:
    """'2025-03-01 00:30' as UK local time (GMT or BST as the date says)."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UK_TIME)


def month(year: int, number: int) -> tuple[datetime.date, datetime.date]:
    start = datetime.date(year, number, 1)
    following = (start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return start, following - datetime.timedelta(days=1)


@dataclass(frozen=True)
class RateSpec:
    prefix: str
    price_per_minute: str
    connection_charge: str = "0"
    minimum_charge: str = "0"
    increment_seconds: int = 1
    band: str = Band.GEOGRAPHIC


def add_rate_card(
    tariff: Tariff,
    rates: Iterable[RateSpec],
    *,
    effective_from: datetime.datetime,
    effective_to: datetime.datetime | None = None,
) -> RateCard:
    card = RateCard.objects.create(tariff=tariff, effective_from=effective_from, effective_to=effective_to)
    Rate.objects.bulk_create(
        Rate(
            rate_card=card,
            prefix=spec.prefix,
            band=spec.band,
            price_per_minute=Decimal(spec.price_per_minute),
            connection_charge=Decimal(spec.connection_charge),
            minimum_charge=Decimal(spec.minimum_charge),
            increment_seconds=spec.increment_seconds,
        )
        for spec in rates
    )
    return card


def simple_tariff(
    price_per_minute: str = "0.0150",
    *,
    name: str = "Simple",
    partner: Partner | None = None,
    prefix: str = "01",
    increment_seconds: int = 1,
) -> Tariff:
    """One rate card from 2020 with a single rate for ``prefix``."""
    tariff = Tariff.objects.create(name=name, partner=partner)
    rate = RateSpec(prefix, price_per_minute, increment_seconds=increment_seconds)
    add_rate_card(tariff, [rate], effective_from=uk("2020-01-01 00:00"))
    return tariff


@dataclass(frozen=True)
class Call:
    cli: str
    dialled_number: str = "01134960999"
    start_time: str = "2025-01-15T10:00:00"
    duration: str = "60"
    call_type: str = "voice"
    call_reference: str = field(default_factory=lambda: f"REF-{uuid.uuid4().hex[:16]}")

    def row(self) -> list[str]:
        return [
            self.cli,
            self.dialled_number,
            self.start_time,
            self.duration,
            self.call_type,
            self.call_reference,
        ]


def calls_csv(calls: Sequence[Call], *, header: Sequence[str] = CSV_HEADER) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for item in calls:
        writer.writerow(item.row())
    return out.getvalue()


def import_calls(partner: Partner, calls: Sequence[Call], *, actor: User | None = None) -> CallImport:
    return call_import_run(
        partner=partner, stream=io.StringIO(calls_csv(calls)), file_name="calls.csv", actor=actor
    )


def call(reference: str) -> CallRecord:
    return CallRecord.objects.get(call_reference=reference)


def january_charges(customer: Customer, agent: User, *, installation: str = "100.00") -> Customer:
    """A one-off installation charge on 5 January 2025 and a £12.50 monthly rental of the customer's line
    (from 2024), as a bill run of January 2025 bills them."""
    one_off_charge_create(
        customer=customer,
        description="Installation",
        amount=Decimal(installation),
        charge_date=datetime.date(2025, 1, 5),
        actor=agent,
    )
    recurring_charge_create(
        customer=customer,
        line=customer.lines.get(),
        description="Line rental",
        monthly_amount=Decimal("12.50"),
        start_date=datetime.date(2024, 1, 1),
        actor=agent,
    )
    return customer


def cli_of(customer: Customer) -> str:
    return customer.lines.order_by("pk").first().cli


def run_on_commit() -> AbstractContextManager[list[Callable[[], object]]]:
    """Run the tasks a service queues on commit (the test transaction never commits)."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def calculated_run(partner: Partner, period: tuple[datetime.date, datetime.date], *, actor: User) -> BillRun:
    bill_run = bill_run_create(partner=partner, period_start=period[0], period_end=period[1], actor=actor)
    with run_on_commit():
        bill_run_start_calculation(bill_run=bill_run, actor=actor)
    bill_run.refresh_from_db()
    assert bill_run.status == BillRun.Status.CALCULATED, bill_run.status
    return bill_run


def finalised_run(
    partner: Partner,
    period: tuple[datetime.date, datetime.date],
    *,
    agent: User,
    finance: User,
) -> BillRun:
    bill_run = calculated_run(partner, period, actor=agent)
    # The approver has reviewed whatever exceptions the run has (tests of that step use the page).
    bill_run_approve(bill_run=bill_run, actor=finance, exceptions_acknowledged=bill_run.exceptions.count())
    bill_run_finalise(bill_run=bill_run, actor=finance, issue_date=period[1] + datetime.timedelta(days=1))
    bill_run.refresh_from_db()
    return bill_run


_invoice_numbers = itertools.count()


def issued_invoice(
    customer: Customer, net: str, *, issued: datetime.date, actor: User | None = None
) -> Invoice:
    """A finalised invoice (VAT at the standard rate) as a bill run of its own leaves it, posted to the ledger
    by the finalisation's own ledger step."""
    n = next(_invoice_numbers)
    start = datetime.date(2000 + n // 12, n % 12 + 1, 1)
    run = BillRun.objects.create(
        partner=customer.partner,
        period_start=start,
        period_end=start + datetime.timedelta(days=27),
        status=BillRun.Status.FINALISED,
        issue_date=issued,
    )
    amount = Decimal(net)
    vat = vat_on(amount)
    invoice = Invoice.objects.create(
        bill_run=run,
        partner=customer.partner,
        customer=customer,
        status=Invoice.Status.FINALISED,
        sequence=10_000 + n,
        number=f"T{n:06d}",
        issue_date=issued,
        tax_point=issued,
        period_start=run.period_start,
        period_end=run.period_end,
        supplier_name="Supplier",
        supplier_address="Leeds",
        supplier_vat_number="GB123456789",
        customer_reference=customer.reference,
        customer_name="Customer",
        customer_address="Leeds",
        net=amount,
        vat=vat,
        gross=amount + vat,
    )
    ledger_post_invoices(invoices=[invoice], actor=actor)
    return invoice
