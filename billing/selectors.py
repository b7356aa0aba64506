"""Reads of billing data, scoped like the Site Details: a partner's staff see their partner's runs and
the invoices of customers they may see; administrators and the DPO see all; a portal user sees its own
finalised invoices. Billing data also needs ``billing.view_billing_data`` (staff)."""

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Sum, Window
from django.http import Http404

from accounts.models import Customer, Partner, PaymentDetails, User
from accounts.selectors import VIEW_ALL_CUSTOMERS, customers_visible_to, names_holding_words
from billing.models import (
    INVOICE_PAYMENT_TERMS_DAYS,
    BillRun,
    BillRunException,
    CallImport,
    CallRecord,
    CreditNote,
    DirectDebitSubmission,
    DunningAction,
    DunningStep,
    Invoice,
    InvoiceDelivery,
    LedgerEntry,
    Payment,
    Product,
    Tariff,
    WriteOff,
)
from billing.services.ledger import open_invoices_of
from fusion_site.money import to_money

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


def invoice_delivery_of(user: User | AnonymousUser, invoice: Invoice) -> InvoiceDelivery | None:
    """How the invoice (opened through ``access_invoice``) was emailed, for staff; a customer sees none."""
    if getattr(user, "is_portal_user", True) or not user.has_perm("billing.view_invoice"):
        return None
    return InvoiceDelivery.objects.filter(invoice=invoice).first()


def invoices_of_customer(user: User | AnonymousUser, customer: Customer) -> QuerySet[Invoice]:
    return invoices_visible_to(user).filter(customer=customer).order_by("-period_start")


def bill_run_invoices(bill_run: BillRun, *, query: str = "") -> QuerySet[Invoice]:
    """The invoices of a run already opened through ``access_bill_run`` (so all of one partner the user
    may see), in customer order, with the columns the run's page lists. ``query`` keeps those whose
    customer reference or invoice number holds it, or whose customer's name holds every word of it (the
    name is encrypted, on the invoice too: matched through the customer's name words, whole words only)."""
    invoices = bill_run.invoices.order_by("customer_reference", "pk").only(
        "pk", "customer_reference", "number", "status", "net", "vat", "gross", "bill_run_id", "partner_id"
    )
    query = query.strip()
    if not query:
        return invoices
    named = names_holding_words(query).filter(contact_id__isnull=True).values("customer_id")
    return invoices.filter(
        Q(customer_reference__icontains=query) | Q(number__icontains=query) | Q(customer_id__in=named)
    )


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


# The customer account ledger.

VIEW_LEDGER = "billing.view_ledgerentry"


def accounts_visible_to(user: User | AnonymousUser) -> QuerySet[Customer]:
    """Customers whose account (balance, statement, payments) the user may see: staff with the ledger
    permission see the customers they may see; a portal user its own account only."""
    if not isinstance(user, User) or not user.is_active or not user.has_perm(VIEW_LEDGER):
        return Customer.objects.none()
    if user.is_portal_user:
        return Customer.objects.filter(pk=user.customer_id) if user.customer_id else Customer.objects.none()
    if not user.has_perm(VIEW_BILLING_DATA):
        return Customer.objects.none()
    return customers_visible_to(user)


def access_account(user: User | AnonymousUser, reference: str) -> Customer:
    """The customer with this reference if the user may see its account; otherwise 404."""
    pk = Customer.pk_from_reference(reference)
    customer = accounts_visible_to(user).select_related("partner").filter(pk=pk).first() if pk else None
    if customer is None:
        raise Http404("No such customer.")
    return customer


def customer_balance(customer: Customer) -> Decimal:
    """What the customer owes (negative: account credit): the sum of its ledger entries."""
    total = LedgerEntry.objects.filter(customer=customer).aggregate(total=Sum("amount"))["total"]
    return to_money(Decimal(total)) if total is not None else Decimal("0.00")


@dataclass(frozen=True)
class StatementLine:
    entry: LedgerEntry
    balance: Decimal


def customer_statement(customer: Customer) -> list[StatementLine]:
    """The account's entries in date order, each with the balance after it. One query: the running
    balance is a window sum, so a long statement costs no more queries than a short one."""
    running = Window(Sum("amount"), order_by=[F("effective_on").asc(), F("id").asc()])
    entries = (
        LedgerEntry.objects.filter(customer=customer)
        .select_related("invoice", "credit_note", "payment", "write_off")
        .annotate(running_balance=running)
        .order_by("effective_on", "id")
    )
    return [StatementLine(entry, to_money(Decimal(entry.running_balance))) for entry in entries]


def open_invoices(customer: Customer) -> QuerySet[Invoice]:
    """The customer's issued invoices with something outstanding (``amount_outstanding``), oldest first."""
    return open_invoices_of([customer.pk]).select_related("partner")


def customer_payments(customer: Customer) -> QuerySet[Payment]:
    """The customer's payments, newest first, each with whether it was
    ``returned`` unpaid."""
    returned = LedgerEntry.objects.filter(payment=OuterRef("pk"), kind=LedgerEntry.Kind.UNPAID_REVERSAL)
    return (
        Payment.objects.filter(customer=customer)
        .select_related("recorded_by")
        .annotate(returned=Exists(returned))
        .order_by("-received_on", "-pk")
    )


def customer_write_offs(customer: Customer) -> QuerySet[WriteOff]:
    return WriteOff.objects.filter(customer=customer).select_related("invoice", "requested_by", "decided_by")


AGED_DEBT_BUCKETS: tuple[tuple[str, str, int | None, int | None], ...] = (
    # (key, label, fewest days overdue, most days overdue)
    ("current", "Current", None, 0),
    ("days_1_30", "1-30 days", 1, 30),
    ("days_31_60", "31-60 days", 31, 60),
    ("days_61_90", "61-90 days", 61, 90),
    ("over_90", "Over 90 days", 91, None),
)


@dataclass(frozen=True)
class AgedDebtRow:
    partner: Partner
    buckets: dict[str, Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), Decimal("0.00"))


def _bucket_filter(as_of: datetime.date, fewest: int | None, most: int | None) -> Q:
    """Invoices ``fewest``..``most`` days past their due date on ``as_of``, as a range of issue dates."""
    condition = Q()
    if most is not None:
        # Overdue by at most ``most`` days: due on or after as_of - most, issued on or after that - terms.
        condition &= Q(issue_date__gte=as_of - datetime.timedelta(days=most + INVOICE_PAYMENT_TERMS_DAYS))
    if fewest is not None:
        condition &= Q(issue_date__lte=as_of - datetime.timedelta(days=fewest + INVOICE_PAYMENT_TERMS_DAYS))
    return condition


def aged_debt(
    user: User | AnonymousUser, *, as_of: datetime.date, partner: Partner | None = None
) -> list[AgedDebtRow]:
    """What is outstanding on the invoices the user may see, per partner, by how long overdue each invoice
    is on ``as_of`` (due ``INVOICE_PAYMENT_TERMS_DAYS`` after issue). Two queries however many invoices
    and partners: one grouped sum, one for the partners."""
    invoices = invoices_visible_to(user).filter(
        status=Invoice.Status.FINALISED, issue_date__lte=as_of, customer__isnull=False
    )
    if partner is not None:
        invoices = invoices.filter(partner=partner)
    sums = {
        key: Sum("amount_outstanding", filter=_bucket_filter(as_of, fewest, most))
        for key, _label, fewest, most in AGED_DEBT_BUCKETS
    }
    grouped = (
        invoices.filter(amount_outstanding__gt=0)
        .order_by()
        .values("partner_id")
        .annotate(**sums)
        .order_by("partner_id")
    )
    totals: dict[int, dict[str, Any]] = {row["partner_id"]: dict(row) for row in grouped}
    partners = Partner.objects.in_bulk(list(totals))
    rows = [
        AgedDebtRow(
            partners[partner_id],
            {key: to_money(Decimal(row[key] or 0)) for key, *_rest in AGED_DEBT_BUCKETS},
        )
        for partner_id, row in totals.items()
    ]
    return sorted(rows, key=lambda row: row.partner.name)


def aged_debt_partners(user: User | AnonymousUser) -> QuerySet[Partner]:
    """Partners whose aged debt the user may ask for."""
    if not _is_staff_with(user, "billing.view_invoice", VIEW_LEDGER):
        return Partner.objects.none()
    assert isinstance(user, User)
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return Partner.objects.order_by("name")
    return Partner.objects.filter(pk=user.partner_id) if user.partner_id else Partner.objects.none()


# Dunning.

VIEW_DUNNING_STEPS = "billing.view_dunningstep"


def dunning_partners_visible_to(user: User | AnonymousUser) -> QuerySet[Partner]:
    """Partners whose dunning steps the user may see: its own partner's (staff with the permission), or
    every partner's for the provider's staff."""
    if not _is_staff_with(user, VIEW_DUNNING_STEPS):
        return Partner.objects.none()
    assert isinstance(user, User)
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return Partner.objects.order_by("name")
    return Partner.objects.filter(pk=user.partner_id) if user.partner_id else Partner.objects.none()


def access_dunning_partner(user: User | AnonymousUser, pk: int) -> Partner:
    partner = dunning_partners_visible_to(user).filter(pk=pk).first()
    if partner is None:
        raise Http404("No such partner.")
    return partner


def dunning_steps_of(partner: Partner) -> QuerySet[DunningStep]:
    return DunningStep.objects.filter(partner=partner).order_by("days_overdue", "pk")


def access_dunning_step(user: User | AnonymousUser, partner_pk: int, pk: int) -> DunningStep:
    """A step of a partner the user may see (another partner's step, or a step named under the wrong
    partner, is 404)."""
    partner = access_dunning_partner(user, partner_pk)
    step = dunning_steps_of(partner).filter(pk=pk).select_related("partner").first()
    if step is None:
        raise Http404("No such step.")
    return step


def customer_dunning_history(customer: Customer) -> QuerySet[DunningAction]:
    """The customer's dunning actions, newest first, with the invoice each was about (one query)."""
    return DunningAction.objects.filter(customer=customer).select_related("invoice")


@dataclass(frozen=True)
class DirectDebitHold:
    held_at: datetime.datetime
    reason: str


def direct_debit_hold(customer: Customer) -> DirectDebitHold | None:
    """The hold on the customer's Direct Debit mandate, if collections under it are held (one query; the
    mandate's bank details are not read)."""
    row = (
        PaymentDetails.objects.filter(customer=customer, collection_held_at__isnull=False)
        .values_list("collection_held_at", "collection_held_reason")
        .first()
    )
    if row is None or row[0] is None:
        return None
    return DirectDebitHold(held_at=row[0], reason=row[1])


def products_visible_to(user: User | AnonymousUser) -> QuerySet[Product]:
    """The catalogue a staff user keeps or reads: their partner's products; every partner's for the
    provider's staff who see every customer."""
    if not _is_staff_with(user, "billing.view_product"):
        return Product.objects.none()
    assert isinstance(user, User)
    products = Product.objects.select_related("partner")
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return products
    return products.filter(partner_id=user.partner_id) if user.partner_id else Product.objects.none()


def access_product(user: User | AnonymousUser, pk: int) -> Product:
    product = products_visible_to(user).filter(pk=pk).first()
    if product is None:
        raise Http404("No such product.")
    return product


def products_offered(partner: Partner) -> QuerySet[Product]:
    """The products a new line of the partner's customers may be rented as: its own, still offered, with a
    price."""
    return (
        Product.objects.filter(partner=partner, active=True, prices__isnull=False).distinct().order_by("name")
    )


def tariffs_usable_by(partner: Partner) -> QuerySet[Tariff]:
    """The partner's own tariffs and the provider's shared ones."""
    return Tariff.objects.filter(Q(partner=partner) | Q(partner__isnull=True)).order_by("name")


def product_price_versions(product: Product) -> list[tuple[datetime.date, Decimal]]:
    return list(product.prices.order_by("valid_from").values_list("valid_from", "monthly_price"))
