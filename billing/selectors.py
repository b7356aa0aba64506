"""Reads of billing data, scoped like the Site Details: a partner's staff see their partner's runs and
the invoices of customers they may see; administrators and the DPO see all; a portal user sees its own
finalised invoices. Billing data also needs ``billing.view_billing_data`` (staff)."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db.models import Count, QuerySet, Sum
from django.http import Http404

from accounts.models import Customer, User
from accounts.selectors import VIEW_ALL_CUSTOMERS, customers_visible_to
from billing.models import (
    BillRun,
    BillRunException,
    CallImport,
    CallRecord,
    CreditNote,
    DirectDebitSubmission,
    Invoice,
)

VIEW_BILLING_DATA = "billing.view_billing_data"


def _is_staff_with(user: User | AnonymousUser, *perms: str) -> bool:
    return (
        isinstance(user, User)
        and user.is_active
        and not user.is_portal_user
        and all(user.has_perm(perm) for perm in (*perms, VIEW_BILLING_DATA))
    )


def bill_runs_visible_to(user: User | AnonymousUser) -> QuerySet[BillRun]:
    if not _is_staff_with(user, "billing.view_billrun"):
        return BillRun.objects.none()
    assert isinstance(user, User)
    runs = BillRun.objects.select_related("partner")
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return runs
    return runs.filter(partner_id=user.partner_id) if user.partner_id else BillRun.objects.none()


def access_bill_run(user: User | AnonymousUser, pk: int) -> BillRun:
    bill_run = bill_runs_visible_to(user).filter(pk=pk).first()
    if bill_run is None:
        raise Http404("No such bill run.")
    return bill_run


def direct_debit_submissions_of(
    user: User | AnonymousUser, bill_run: BillRun
) -> QuerySet[DirectDebitSubmission]:
    """A run's submissions the user may see, newest first, without the file's text (the page shows
    facts, not bytes)."""
    return (
        DirectDebitSubmission.objects.filter(bill_run=bill_run, bill_run__in=bill_runs_visible_to(user))
        .select_related("created_by", "cancelled_by")
        .defer("content")
    )


def invoices_visible_to(user: User | AnonymousUser) -> QuerySet[Invoice]:
    if not isinstance(user, User) or not user.is_active or not user.has_perm("billing.view_invoice"):
        return Invoice.objects.none()
    invoices = Invoice.objects.select_related("bill_run", "partner")
    if user.is_portal_user:
        return invoices.filter(customer=user.customer, status=Invoice.Status.FINALISED)
    if not user.has_perm(VIEW_BILLING_DATA):
        return Invoice.objects.none()
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return invoices
    return invoices.filter(customer__in=customers_visible_to(user).values("pk"))


def access_invoice(user: User | AnonymousUser, pk: int) -> Invoice:
    invoice = invoices_visible_to(user).filter(pk=pk).first()
    if invoice is None:
        raise Http404("No such invoice.")
    return invoice


def access_credit_note(user: User | AnonymousUser, pk: int) -> CreditNote:
    """A credit note, scoped by its invoice exactly as the invoice page is (another partner's: 404)."""
    note = (
        CreditNote.objects.select_related("invoice")
        .filter(pk=pk, invoice__in=invoices_visible_to(user).values("pk"))
        .first()
    )
    if note is None:
        raise Http404("No such credit note.")
    return note


def invoices_of_customer(user: User | AnonymousUser, customer: Customer) -> QuerySet[Invoice]:
    return invoices_visible_to(user).filter(customer=customer).order_by("-period_start")


def bill_run_summary(bill_run: BillRun) -> dict[str, Any]:
    totals = bill_run.invoices.aggregate(
        invoices=Count("id"), net=Sum("net"), vat=Sum("vat"), gross=Sum("gross")
    )
    return {key: value if value is not None else Decimal("0") for key, value in totals.items()}


@dataclass(frozen=True)
class VarianceRow:
    customer_reference: str
    previous: Decimal
    current: Decimal

    @property
    def change(self) -> Decimal:
        return self.current - self.previous

    @property
    def change_percent(self) -> Decimal | None:
        if not self.previous:
            return None
        return (self.change / self.previous * 100).quantize(Decimal("0.1"))


def previous_bill_run(bill_run: BillRun) -> BillRun | None:
    return (
        BillRun.objects.filter(
            partner_id=bill_run.partner_id,
            status=BillRun.Status.FINALISED,
            period_start__lt=bill_run.period_start,
        )
        .order_by("-period_start")
        .first()
    )


def variance(bill_run: BillRun, *, threshold_percent: Decimal) -> tuple[BillRun | None, list[VarianceRow]]:
    """Customers whose net total moved by more than the threshold since the partner's previous run
    (new and gone customers included), largest change first. Two queries."""
    previous = previous_bill_run(bill_run)
    if previous is None:
        return None, []
    now: dict[str, Decimal] = dict(bill_run.invoices.values_list("customer_reference", "net"))
    before: dict[str, Decimal] = dict(previous.invoices.values_list("customer_reference", "net"))
    rows = []
    for reference in sorted(set(now) | set(before)):
        current = now.get(reference, Decimal("0"))
        prior = before.get(reference, Decimal("0"))
        row = VarianceRow(reference, prior, current)
        moved = abs(row.change) > 0 and (not prior or abs(row.change) * 100 > abs(prior) * threshold_percent)
        if moved:
            rows.append(row)
    rows.sort(key=lambda row: abs(row.change), reverse=True)
    return previous, rows


def suspense_calls(user: User | AnonymousUser) -> QuerySet[CallRecord]:
    if not _is_staff_with(user, "billing.view_callrecord"):
        return CallRecord.objects.none()
    assert isinstance(user, User)
    calls = CallRecord.objects.filter(status=CallRecord.Status.SUSPENSE).select_related("partner")
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return calls
    return calls.filter(partner_id=user.partner_id) if user.partner_id else CallRecord.objects.none()


def call_imports_visible_to(user: User | AnonymousUser) -> QuerySet[CallImport]:
    if not _is_staff_with(user, "billing.view_callimport"):
        return CallImport.objects.none()
    assert isinstance(user, User)
    imports = CallImport.objects.select_related("partner", "uploaded_by")
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return imports
    return imports.filter(partner_id=user.partner_id) if user.partner_id else CallImport.objects.none()


def suspense_summary(calls: QuerySet[CallRecord]) -> list[tuple[str, int]]:
    labels = dict(CallRecord.SuspenseReason.choices)
    counts = calls.values_list("suspense_reason").annotate(n=Count("id")).order_by("suspense_reason")
    return [(labels.get(reason, reason), n) for reason, n in counts]


@dataclass(frozen=True)
class ExceptionGroup:
    """The exceptions of one kind as the run's page lists them. A call kind counts calls (an item is a
    customer's calls, or the calls no line owns); every other kind counts customers, one item each."""

    label: str
    items: list[BillRunException]
    counts_calls: bool

    @property
    def calls(self) -> int:
        return sum(item.count for item in self.items) if self.counts_calls else 0

    @property
    def customers(self) -> int:
        return len({item.customer_id for item in self.items if item.customer_id is not None})

    @property
    def summary(self) -> str:
        if not self.counts_calls:
            return _counted(self.customers, "customer")
        if not self.customers:
            return _counted(self.calls, "call")
        return f"{_counted(self.calls, 'call')} of {_counted(self.customers, 'customer')}"


def _counted(number: int, unit: str) -> str:
    return f"{number} {unit}{'' if number == 1 else 's'}"


def exceptions_by_kind(bill_run: BillRun) -> list[ExceptionGroup]:
    grouped: dict[str, list[BillRunException]] = {}
    for exception in bill_run.exceptions.select_related("customer").order_by("kind", "customer_id"):
        grouped.setdefault(exception.kind, []).append(exception)
    labels = dict(BillRunException.Kind.choices)
    return [
        ExceptionGroup(labels.get(kind, kind), items, counts_calls=kind in BillRunException.CALL_KINDS)
        for kind, items in grouped.items()
    ]
