"""The personal data of billing's models: what each holds, how a customer's rows are found, erased or kept
under VAT law, for how long, and what the retention job does once their period has passed
(``fusion_site.personal_data``).

Erasure runs these statements before accounts' (calls are found through the history of the customer's
lines, which accounts deletes last): Direct Debit files first (found through the customer's invoices in
their runs), then the links of billed calls and the calls, tariffs and charges, and invoices never issued
(their lines first). Finalised invoices, their lines and credit notes stay for 6 years from issue; the
ledger (payments, entries, allocations, write-offs) stays under accounting law, its free text scrubbed.

Retention: an invoice goes once settled and 6 years old, with its ledger rows and the payments that settled
it, only as a whole group, so no balance changes (``_invoices_past_due``); a customer who owes money is kept
under the "debt" reason until the balance is paid or written off (``_keep``).
"""

from __future__ import annotations

import datetime
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Customer, Line
from accounts.personal_data import ACCOUNT_DATA, line_owner, lines_ever
from billing import partitions
from billing.models import (
    BilledCall,
    BillRun,
    BillRunException,
    CallRecord,
    CallReference,
    CreditNote,
    CustomerTariff,
    DirectDebitCollection,
    DirectDebitSubmission,
    DunningAction,
    Invoice,
    InvoiceDelivery,
    InvoiceLine,
    LedgerEntry,
    LineTariff,
    OneOffCharge,
    Payment,
    PaymentAllocation,
    RecurringCharge,
    WriteOff,
)
from billing.services.ledger import MONEY
from fusion_site.money import format_money
from fusion_site.personal_data import (
    Anchor,
    Category,
    CustomerChecks,
    Declaration,
    Erase,
    ErasureAction,
    KeepReason,
    Kept,
    LawfulBasis,
    LegalObligation,
    PersonalField,
    Purge,
    PurgeBlock,
    Retention,
    first_owner,
)

VAT_RECORDS = LegalObligation(
    "VAT records",
    "VAT Act 1994 Sch. 11 para 6 / HMRC VAT Notice 700 s.19: VAT invoices and credit notes kept "
    "6 years from issue",
)
SIX_YEARS_FROM_ISSUE = Retention("6 years from issue", Anchor.INVOICE_ISSUE, 72, policy="invoices")
# PECR reg. 7 lets traffic data be kept for billing "up to the end of the period during which legal
# proceedings may be brought in respect of payments due or alleged to be due": the dispute period runs from
# the bill, so a call is kept 12 months after the invoice that billed it. A call that was never billed has
# no bill to challenge; it counts from its own date (``_calls_past_due`` does both).
TRAFFIC_DATA = Retention(
    "12 months after the invoice that billed the call (12 months after the call if it was never billed): "
    "until the bill can no longer be challenged (PECR reg. 7)",
    Anchor.INVOICE_ISSUE,
    12,
    policy="call_records",
)
IMPORT_LOGS = Retention("3 months from the import", Anchor.CREATED, 3)
# The exact file is what a dispute of the collection is checked against. A payer has 13 months from the
# debit to tell their bank of an unauthorised or wrong payment (Payment Services Regulations 2017
# reg. 74(1)); the processing day is the working day before the debit, so 13 months from it covers that
# window. A later Direct Debit Guarantee indemnity claim (DDICA) itself names the payer, the date and the
# amount, so it is answered from the mandate and the submission's kept facts (serial, processing day,
# SHA-256, count, total), not from the file's text.
DIRECT_DEBIT_FILES = Retention(
    "13 months from the Bacs processing day, then the file's text (every payer's name, sort code and "
    "account number) is cleared; the serial, dates, SHA-256, count and total stay: the time a payer has "
    "to dispute the debit with their bank (Payment Services Regulations 2017 reg. 74(1))",
    Anchor.PROCESSING_DAY,
    13,
    policy="direct_debit_files",
)

ACCOUNTING_RECORDS = LegalObligation(
    "Accounting records",
    "Companies Act 2006 ss.386-388: records of the money received and paid and what for, kept from when "
    "they are made (6 years for a public company); HMRC record keeping (Finance Act 1998 Sch. 18 para 21, "
    "VAT Notice 700/21): business records kept 6 years",
)
LEDGER_RECORDS = Retention(
    "6 years from the entry's or payment's own date; the retention job removes them with the settled "
    "invoices they belong to, and the money on no invoice (account credit, its refunds and returns, "
    "adjustments) once all of a customer's is 6 years old and sums to nothing (policy ledger)",
    Anchor.CREATED,
    72,
    policy="ledger",
)
# Why a customer whose contract has ended is kept while they owe money (``_keep``): to recover the debt.
DEBT_RECORDS = Retention(
    "While the customer owes money after the contract ends: the account, its invoices and its ledger are "
    "kept until the balance is paid or written off (legitimate interests: establishing, exercising or "
    "defending legal claims, UK GDPR Art. 6(1)(f) and 17(3)(e); a debt can be sued for 6 years from "
    "falling due, Limitation Act 1980 s.5); call records are not kept beyond their own period",
    Anchor.INVOICE_ISSUE,
    72,
)
# Free text of a kept ledger row is replaced by this on erasure (a correction must keep saying it has a
# reason: the ledger's CHECKs).
ERASED_TEXT = "(erased)"

TRAF, FIN = Category.TRAFFIC, Category.FINANCIAL
# Sums of money compare within half a penny of zero: SQLite adds decimals as floating point, so an invoice
# of 84.13 credited 1.20 and paid 82.93 sums to 1.4e-14 there.
HALF_PENNY = Decimal("0.005")
OWNER = "erasure_owner"


def _raw_delete(queryset: QuerySet[Any]) -> int:
    # No signals, no cascade collection, no "deleted" history row that would copy the data once more.
    return int(queryset._raw_delete(queryset.db))


def _of_customers(manager: Any) -> Any:
    return lambda ids: manager.filter(customer_id__in=ids)


def _calls(customer_ids: Sequence[int]) -> QuerySet[CallRecord]:
    """Every call of the customers: attributed to them, from any line they ever had, and unmatched calls
    from their numbers unless another customer's line has that number now."""
    lines = lines_ever(customer_ids)
    return CallRecord.objects.filter(
        Q(customer_id__in=customer_ids)
        | Q(line_id__in=lines.values("id"))
        | (
            Q(
                customer__isnull=True,
                line__isnull=True,
                cli_index__in=lines.exclude(cli_index="").values("cli_index"),
            )
            & ~Q(cli_index__in=Line.objects.exclude(customer_id__in=customer_ids).values("cli_index"))
        )
    )


def _call_owner(customer_ids: Sequence[int]) -> Case:
    lines = lines_ever(customer_ids)
    return Case(
        When(customer_id__in=customer_ids, then=F("customer_id")),
        When(line_id__in=lines.values("id"), then=line_owner(customer_ids)),
        default=first_owner(lines.filter(cli_index=OuterRef("cli_index"))),
        output_field=BigIntegerField(),
    )


def _drafts(customer_ids: Sequence[int]) -> QuerySet[Invoice]:
    return Invoice.objects.filter(customer_id__in=customer_ids).exclude(status=Invoice.Status.FINALISED)


def _issued(customer_ids: Sequence[int]) -> QuerySet[Invoice]:
    return Invoice.objects.filter(customer_id__in=customer_ids, status=Invoice.Status.FINALISED)


def _with_history(model: Any, note: str, history_note: str, **options: Any) -> tuple[Erase, Erase]:
    return (
        Erase(_of_customers(model.objects), note, **options),
        Erase(_of_customers(model.history), history_note, **options),
    )


def _line_tariffs(manager: Any) -> Any:
    return lambda ids: manager.filter(line_id__in=lines_ever(ids).values("id"))


# Retention: what is past its period, and removing it


def _settled_past_due(cutoff: datetime.date, held: QuerySet[Any]) -> QuerySet[Invoice]:
    """Finalised invoices issued on or before ``cutoff`` whose every credit note is too (a credit note
    PROTECTs its invoice and keeps its own 6 years), of no held customer, with nothing outstanding: an
    invoice still owed is the debt's record and stays (``_keep`` keeps its customer too)."""
    return (
        Invoice.objects.filter(status=Invoice.Status.FINALISED, issue_date__lte=cutoff)
        .exclude(credit_notes__issue_date__gt=cutoff)
        .exclude(customer_id__in=held)
        # Its ledger entries (its credit notes', write-offs') keep 6 years from their own date too.
        .exclude(ledger_entries__effective_on__gt=cutoff)
        .filter(amount_outstanding=0)
    )


def _compiled(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    return sql, tuple(params)


def _tied_to_kept_money(cutoff: datetime.date, held: QuerySet[Any]) -> RawSQL:
    """Ids of old invoices that cannot go without changing a balance: settled by a payment that also
    settles an invoice which stays (too young, still owed, held) or that is not wholly allocated (account
    credit), and, transitively, any invoice sharing a payment with such an invoice. An invoice goes only
    with every payment that settled it, and a payment only with every invoice it settled, so the entries
    removed always sum to zero. One recursive query over the allocations of old invoices."""
    allocation = PaymentAllocation._meta.db_table
    old = Invoice.objects.filter(issue_date__lte=cutoff).values("pk")
    settling_old = Payment.objects.filter(
        Exists(PaymentAllocation.objects.filter(payment=OuterRef("pk"), invoice__issue_date__lte=cutoff))
    )
    # A payment with account credit left, younger than the cutoff (kept 6 years from its own date, as its
    # refunds and returns), or settling an invoice that stays, ties what it settled.
    tying = settling_old.filter(
        Q(received_on__gt=cutoff)
        | Exists(LedgerEntry.objects.filter(payment=OuterRef("pk"), effective_on__gt=cutoff))
        | ~Q(amount_unallocated=0)
        | Exists(
            PaymentAllocation.objects.filter(payment=OuterRef("pk")).exclude(
                invoice_id__in=_settled_past_due(cutoff, held).values("pk")
            )
        )
    ).values("pk")
    tying_sql, tying_params = _compiled(tying)
    old_sql, old_params = _compiled(old)
    # Only the table's name and SQL Django compiled are formatted in; every value is a parameter.
    sql = (
        f"WITH RECURSIVE tied(invoice_id) AS ("  # noqa: S608 - only compiled SQL and a table name
        f"SELECT a.invoice_id FROM {allocation} a WHERE a.payment_id IN ({tying_sql}) "
        f"AND a.invoice_id IN ({old_sql}) "
        f"UNION "
        f"SELECT a2.invoice_id FROM tied t "
        f"JOIN {allocation} a1 ON a1.invoice_id = t.invoice_id "
        f"JOIN {allocation} a2 ON a2.payment_id = a1.payment_id "
        f"WHERE a2.invoice_id IN ({old_sql})"
        f") SELECT invoice_id FROM tied"
    )
    return RawSQL(sql, tying_params + old_params + old_params)  # noqa: S611


def _invoices_past_due(cutoff: datetime.date, held: QuerySet[Any]) -> QuerySet[Invoice]:
    """Settled invoices past their 6 years that can go with the payments that settled them."""
    return _settled_past_due(cutoff, held).exclude(pk__in=_tied_to_kept_money(cutoff, held))


def _with_their_money(ids: list[int], due: QuerySet[Any]) -> tuple[list[int], list[int]]:
    """The due invoices of the chunk's customers (a payment and the invoices it settled are one
    customer's, so each chunk takes whole groups: no payment is left half allocated between chunks),
    read again under the chunk's transaction (a hold or a payment since wins), and the payments that
    settled them (by ``_tied_to_kept_money``, wholly allocated to these invoices)."""
    customers = Invoice.objects.filter(pk__in=ids).values("customer_id")
    invoice_ids = list(
        due.filter(Q(pk__in=ids) | Q(customer_id__in=customers)).order_by().values_list("pk", flat=True)
    )
    payment_ids = list(
        PaymentAllocation.objects.filter(invoice_id__in=invoice_ids)
        .order_by()
        .values_list("payment_id", flat=True)
        .distinct()
    )
    return invoice_ids, payment_ids


def _delete_invoices(ids: list[int], due: QuerySet[Any]) -> dict[str, int]:
    """A settled invoice goes with its credit notes, lines, call links, ledger entries, allocations and
    write-offs, and the payments that settled it with their entries: what goes sums to zero on the
    ledger, so no balance changes. A fixed number of statements per chunk."""
    ids, payment_ids = _with_their_money(ids, due)
    counts = {}
    # What hangs from the invoice or its payments and goes with them: the dunning steps taken while it was
    # overdue, and its Direct Debit collections (re-presentations first, they point at the first one).
    counts[DunningAction._meta.label] = _raw_delete(DunningAction.objects.filter(invoice_id__in=ids))
    collections = DirectDebitCollection.objects.filter(Q(invoice_id__in=ids) | Q(payment_id__in=payment_ids))
    _raw_delete(DirectDebitCollection.history.filter(Q(invoice_id__in=ids) | Q(payment_id__in=payment_ids)))
    _raw_delete(collections.filter(represents__isnull=False))
    counts[DirectDebitCollection._meta.label] = _raw_delete(collections)
    counts[PaymentAllocation._meta.label] = _raw_delete(PaymentAllocation.objects.filter(invoice_id__in=ids))
    counts[LedgerEntry._meta.label] = _raw_delete(
        LedgerEntry.objects.filter(Q(invoice_id__in=ids) | Q(payment_id__in=payment_ids))
    )
    _raw_delete(WriteOff.history.filter(invoice_id__in=ids))
    counts[WriteOff._meta.label] = _raw_delete(WriteOff.objects.filter(invoice_id__in=ids))
    _raw_delete(Payment.history.filter(id__in=payment_ids))
    counts[Payment._meta.label] = _raw_delete(Payment.objects.filter(pk__in=payment_ids))
    _raw_delete(CreditNote.history.filter(invoice_id__in=ids))
    counts[CreditNote._meta.label] = _raw_delete(CreditNote.objects.filter(invoice_id__in=ids))
    _raw_delete(BilledCall.objects.filter(invoice_id__in=ids))
    counts[InvoiceLine._meta.label] = _raw_delete(InvoiceLine.objects.filter(invoice_id__in=ids))
    OneOffCharge.objects.filter(invoice_id__in=ids).update(invoice=None)
    # How it was emailed goes with it (a masked address, a status and times).
    _raw_delete(InvoiceDelivery.objects.filter(invoice_id__in=ids))
    _raw_delete(Invoice.history.filter(id__in=ids))
    counts[Invoice._meta.label] = _raw_delete(Invoice.objects.filter(pk__in=ids))
    return counts


def _invoices_to_delete(ids: list[int]) -> dict[str, int]:
    payments = PaymentAllocation.objects.filter(invoice_id__in=ids).values("payment_id")
    return {
        Invoice._meta.label: len(ids),
        CreditNote._meta.label: CreditNote.objects.filter(invoice_id__in=ids).count(),
        InvoiceLine._meta.label: InvoiceLine.objects.filter(invoice_id__in=ids).count(),
        LedgerEntry._meta.label: LedgerEntry.objects.filter(
            Q(invoice_id__in=ids) | Q(payment_id__in=payments)
        ).count(),
        Payment._meta.label: Payment.objects.filter(pk__in=payments).count(),
    }


def _on_no_invoice() -> Q:
    """Ledger entries that belong to no invoice: adjustments, and the entries of payments that never
    settled one (no allocation, no Direct Debit collection): account credit, its refunds and returns.
    Only documents name an invoice (``ledger_invoice_only_on_documents``), so such a payment's entries all
    qualify together."""
    settled_something = Exists(PaymentAllocation.objects.filter(payment_id=OuterRef("payment_id"))) | Exists(
        DirectDebitCollection.objects.filter(payment_id=OuterRef("payment_id"))
    )
    return Q(invoice__isnull=True) & (Q(payment__isnull=True) | ~settled_something)


def _money_on_no_invoice_past_due(cutoff: datetime.date, held: QuerySet[Any]) -> QuerySet[LedgerEntry]:
    """The entries on no invoice of customers (not held) whose every such entry is dated on or before
    ``cutoff`` and whose sum is nothing: removing them leaves every balance as it was. Account credit still
    owed to a customer (a sum below zero), or an adjustment still owed, stays until an entry settles it
    (a refund, or an adjustment posted by finance), and then 6 years from that entry."""
    loose = LedgerEntry.objects.filter(_on_no_invoice())
    customers = (
        loose.exclude(customer_id__in=held)
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"), latest=Max("effective_on"))
        .filter(latest__lte=cutoff, total__gt=-HALF_PENNY, total__lt=HALF_PENNY)
        .values("customer_id")
    )
    return loose.filter(customer_id__in=customers)


def _delete_money_on_no_invoice(ids: list[int], due: QuerySet[Any]) -> dict[str, int]:
    """Whole customers' groups (read again under the chunk's transaction: a payment since wins), with
    the payments whose entries they are and those payments' history."""
    customers = LedgerEntry.objects.filter(pk__in=ids).values("customer_id")
    entries = due.filter(customer_id__in=customers)
    entry_ids = list(entries.order_by().values_list("pk", flat=True))
    payment_ids = list(
        LedgerEntry.objects.filter(pk__in=entry_ids, payment__isnull=False)
        .order_by()
        .values_list("payment_id", flat=True)
        .distinct()
    )
    counts = {LedgerEntry._meta.label: _raw_delete(LedgerEntry.objects.filter(pk__in=entry_ids))}
    _raw_delete(Payment.history.filter(id__in=payment_ids))
    counts[Payment._meta.label] = _raw_delete(Payment.objects.filter(pk__in=payment_ids))
    return counts


def _money_on_no_invoice_to_delete(ids: list[int]) -> dict[str, int]:
    return {
        LedgerEntry._meta.label: len(ids),
        Payment._meta.label: Payment.objects.filter(ledger_entries__pk__in=ids).distinct().count(),
    }


def _calls_past_due(cutoff: datetime.date, held: QuerySet[Any]) -> QuerySet[CallRecord]:
    billed_long_ago = Q(
        billing__invoice__status=Invoice.Status.FINALISED, billing__invoice__issue_date__lte=cutoff
    )
    # A call is billed after it was made, so one billed by an invoice issued on or before the cutoff was
    # made on or before it too: bounding every due call by its day lets PostgreSQL read only the month
    # partitions that end by the cutoff (once months go whole, the oldest one or two), not the year kept.
    return (
        CallRecord.objects.filter(started_on__lte=cutoff)
        .filter(billed_long_ago | Q(billing__isnull=True))
        .exclude(customer_id__in=held)
    )


def _call_months_past_due(cutoff: datetime.date, held: QuerySet[Any]) -> list[PurgeBlock]:
    """On PostgreSQL, the months of calls that go whole, as partitions: oldest first, each ending on or
    before ``cutoff`` and holding no call that is still within its period (one billed by an invoice that
    is not finalised or was issued after ``cutoff``), except the held customers', which are moved out of
    the month and kept. The first month that is not wholly past stops the list, so the months kept are
    always the newest (and a call kept in the default partition is older than every partition). Empty on
    SQLite, and where rows are then purged one by one."""
    if not partitions.partitioned():
        return []
    blocks = []
    for month in sorted(partitions.month_partitions()):
        after = partitions.next_month(month)
        if after - datetime.timedelta(days=1) > cutoff:
            break
        in_month = CallRecord.objects.filter(started_on__gte=month, started_on__lt=after).exclude(
            customer_id__in=held
        )
        within_period = in_month.filter(billing__isnull=False).exclude(
            billing__invoice__status=Invoice.Status.FINALISED, billing__invoice__issue_date__lte=cutoff
        )
        if within_period.exists():
            break
        kept = list(held.filter(customer_id__isnull=False).values_list("customer_id", flat=True).distinct())
        blocks.append(_month_block(month, kept))
    return blocks


def _month_block(month: datetime.date, kept: list[int]) -> PurgeBlock:
    def counts(result: partitions.MonthDropped) -> dict[str, int]:
        return {CallRecord._meta.label: result.calls}

    return PurgeBlock(
        f"calls of {month:%B %Y}, their month dropped whole"
        + (f" ({len(kept)} held customers' calls kept)" if kept else ""),
        run=lambda: counts(partitions.drop_month_partition(month, kept)),
        preview=lambda: counts(partitions.month_partition_calls(month, kept)),
    )


def _delete_calls(ids: list[int], due: QuerySet[Any]) -> dict[str, int]:
    _raw_delete(BilledCall.objects.filter(call_id__in=ids))
    _raw_delete(CallReference.objects.filter(call_id__in=ids))
    return {CallRecord._meta.label: _raw_delete(CallRecord.objects.filter(pk__in=ids))}


def _direct_debit_files_past_due(
    cutoff: datetime.date, held: QuerySet[Any]
) -> QuerySet[DirectDebitSubmission]:
    """Submissions whose file text is still kept and whose processing day is on or before the cutoff,
    except those of a run that billed a held customer (a dispute may need the file)."""
    held_runs = Invoice.objects.filter(customer_id__in=held).values("bill_run_id")
    # A file also collects earlier invoices and re-presentations of customers outside its run.
    held_collections = DirectDebitCollection.objects.filter(customer_id__in=held).values("submission_id")
    return (
        DirectDebitSubmission.objects.filter(content_cleared_at__isnull=True, processing_date__lte=cutoff)
        .exclude(bill_run_id__in=held_runs)
        .exclude(pk__in=held_collections)
    )


def _clear_direct_debit_files(ids: list[int], due: QuerySet[Any]) -> dict[str, int]:
    """Every payer's bank details go, the submission's facts (serial, dates, SHA-256, count, total) stay.
    Filtered by ``due`` again under the chunk's transaction: a hold set since the ids were read wins."""
    now = timezone.now()
    rows = due.filter(pk__in=ids).update(
        content="",
        content_cleared_at=now,
        content_cleared_for=DirectDebitSubmission.ContentCleared.RETENTION,
        updated_at=now,
    )
    return {DirectDebitSubmission._meta.label: rows}


# Erasure: what blocks it, what the approver reads, and why retention waits


def _blockers(customer_ids: Collection[int]) -> dict[int, list[str]]:
    """A draft invoice in an open bill run: erasing would remove a run's invoice while it is reviewed or
    leave a run billing an erased account; the run is finalised (the invoice is then kept) or cancelled."""
    blockers: dict[int, list[str]] = {}
    open_runs = (
        BillRun.objects.filter(invoices__customer_id__in=customer_ids, status__in=BillRun.OPEN_STATUSES)
        .annotate(blocked_customer_id=F("invoices__customer_id"))
        .select_related("partner")
        .order_by("blocked_customer_id", "-period_start", "partner", "pk")
        .distinct()
    )
    for run in open_runs:
        blockers.setdefault(run.blocked_customer_id, []).append(
            f"Bill run {run} ({run.get_status_display().lower()}) has a draft invoice for this customer: "
            "finalise the run (the invoice is then kept) or cancel it before erasing."
        )
    return blockers


def _balance_of_customer() -> Subquery:
    """The balance of the customer ``OuterRef("pk")`` (the sum of its ledger entries), for an annotation."""
    return Subquery(
        LedgerEntry.objects.filter(customer_id=OuterRef("pk"))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .values("total")[:1],
        output_field=MONEY,
    )


def _oldest_unpaid_of_customer() -> Subquery:
    """The issue date of the customer's oldest invoice with something outstanding, for an annotation."""
    return Subquery(
        Invoice.objects.filter(
            customer_id=OuterRef("pk"), status=Invoice.Status.FINALISED, amount_outstanding__gt=0
        )
        .order_by("issue_date", "pk")
        .values("issue_date")[:1]
    )


def with_debt(customers: QuerySet[Any]) -> QuerySet[Any]:
    """The customers who owe money (ledger balance above zero), annotated with ``balance`` and
    ``oldest_unpaid`` (issue date of the oldest invoice still owed; None when what is owed is on no
    invoice, an adjustment or a payment returned unpaid)."""
    return (
        customers.annotate(balance=_balance_of_customer())
        .filter(balance__gte=HALF_PENNY)
        .annotate(oldest_unpaid=_oldest_unpaid_of_customer())
    )


def _warnings(customer: Customer) -> list[str]:
    warnings = []
    debt = with_debt(Customer.objects.filter(pk=customer.pk)).values("balance", "oldest_unpaid").first()
    if debt is not None:
        since = f" (oldest unpaid invoice issued {debt['oldest_unpaid']})" if debt["oldest_unpaid"] else ""
        warnings.append(
            f"The customer owes {format_money(debt['balance'])}{since}. Erasing removes the contact details "
            "needed to recover it (the account, invoices and ledger are kept): confirm with finance that the "
            "debt is settled or written off first."
        )
    unbilled = CallRecord.objects.filter(customer=customer, billing__isnull=True).aggregate(
        calls=Count("id"), cost=Sum("cost")
    )
    if unbilled["calls"]:
        cost = format_money(unbilled["cost"] or 0)
        warnings.append(
            f"{unbilled['calls']} call(s) never invoiced (rated cost {cost}) are deleted unbilled: confirm "
            "with finance that they need no bill."
        )
    return warnings


DEBT = "debt"


def _keep(today: datetime.date) -> list[KeepReason]:
    """A draft invoice in an open bill run (erasure would refuse), and money owed: the ledger's balance
    above zero keeps the customer until it is paid or written off (``DEBT_RECORDS``)."""
    owes = (
        LedgerEntry.objects.filter(customer_id=OuterRef("pk"))
        .order_by()
        .values("customer_id")
        .annotate(total=Sum("amount"))
        .filter(total__gte=HALF_PENNY)
    )
    return [
        KeepReason(
            "open_bill_run",
            Exists(
                Invoice.objects.filter(customer_id=OuterRef("pk"), bill_run__status__in=BillRun.OPEN_STATUSES)
            ),
            "draft invoice in an open bill run",
        ),
        KeepReason(
            DEBT,
            Exists(owes),
            "owes money (ledger balance above zero): kept to recover the debt until it is paid or written "
            "off (legitimate interests: legal claims; Limitation Act 1980 s.5)",
        ),
    ]


def _account_data(
    model: Any, purpose: str, fields: tuple[PersonalField, ...], *erasure: Erase
) -> Declaration:
    return Declaration(
        model._meta.label,
        "end customers",
        purpose,
        ErasureAction.DELETE,
        (ACCOUNT_DATA,),
        LawfulBasis.CONTRACT,
        fields,
        erasure=erasure,
    )


def _vat_record(
    model: Any, purpose: str, fields: tuple[PersonalField, ...], recipients: tuple[str, ...], **options: Any
) -> Declaration:
    return Declaration(
        model._meta.label,
        "end customers",
        purpose,
        ErasureAction.KEEP,
        (SIX_YEARS_FROM_ISSUE,),
        LawfulBasis.LEGAL_OBLIGATION,
        fields,
        recipients,
        kept_under=VAT_RECORDS,
        **options,
    )


def _ledger_record(
    model: Any,
    purpose: str,
    fields: tuple[PersonalField, ...],
    kept: Kept,
    *erasure: Erase,
    purge: Purge | None = None,
) -> Declaration:
    """A row of the customer's ledger: kept under accounting law, its free text scrubbed on erasure."""
    return Declaration(
        model._meta.label,
        "end customers (account holders)",
        purpose,
        ErasureAction.KEEP,
        (LEDGER_RECORDS, DEBT_RECORDS),
        LawfulBasis.LEGAL_OBLIGATION,
        fields,
        ("hosting",),
        kept_under=ACCOUNTING_RECORDS,
        kept=kept,
        erasure=erasure,
        purge=purge,
    )


def _scrubbed(
    rows: Any, field: str, note: str, *, blank: bool = False, owner: str = "customer_id"
) -> tuple[Erase]:
    """Replace the free text ``field`` of the customers' rows: with nothing where it may be blank, else
    with ``ERASED_TEXT`` (a correction, a reversal or a write-off must keep a reason)."""
    text = "" if blank else ERASED_TEXT
    owner_filter = f"{owner}__in"
    return (
        Erase(
            lambda ids: rows.filter(**{owner_filter: ids}),
            note,
            lambda ids, now: {field: text},
            ~Q(**{field: ""}) & ~Q(**{field: text}),
            owner=owner,
        ),
    )


def _traffic(name: str, purpose: str) -> PersonalField:
    return PersonalField(name, TRAF, purpose)


DECLARATIONS: tuple[Declaration, ...] = (
    Declaration(
        "billing.DirectDebitSubmission",
        "account holders of the customers' bank accounts (every payer collected in the file)",
        "Submit a bill run's Direct Debit collections to Bacs once, and show what was submitted",
        # The row stays (its facts are not personal); the text goes for any payer's erasure.
        ErasureAction.ANONYMISE,
        (DIRECT_DEBIT_FILES,),
        LawfulBasis.CONTRACT,
        (
            PersonalField(
                "content", FIN, "The Bacs file as submitted, so a repeated download cannot collect twice"
            ),
        ),
        ("hosting", "bacs"),
        # A Direct Debit file names every payer of its run: the text goes whole (it is encrypted, so the
        # customer's records cannot be cut out in SQL, and an edited file would no longer be what was
        # submitted); the submission's facts stay. Found through the customers' invoices in the run, so
        # before any invoice goes, and through their collections (a file also collects earlier invoices
        # and re-presentations of customers outside its run; a re-presentation file has no run).
        erasure=(
            Erase(
                lambda ids: DirectDebitSubmission.objects.filter(
                    Q(bill_run_id__in=Invoice.objects.filter(customer_id__in=ids).values("bill_run_id"))
                    | Q(
                        pk__in=DirectDebitCollection.objects.filter(customer_id__in=ids).values(
                            "submission_id"
                        )
                    )
                ),
                "Direct Debit files of the customer's bill runs: the file's text (every payer's bank "
                "details) is cleared; serial, dates, SHA-256, count and total stay",
                lambda ids, now: {
                    "content": "",
                    "content_cleared_at": now,
                    "content_cleared_for": DirectDebitSubmission.ContentCleared.ERASURE,
                    "updated_at": now,
                },
                Q(content_cleared_at__isnull=True),
                owner=lambda ids: Coalesce(
                    first_owner(
                        Invoice.objects.filter(customer_id__in=ids, bill_run_id=OuterRef("bill_run_id"))
                    ),
                    first_owner(
                        DirectDebitCollection.objects.filter(customer_id__in=ids, submission=OuterRef("pk"))
                    ),
                ),
            ),
        ),
        purge=Purge(
            _direct_debit_files_past_due,
            _clear_direct_debit_files,
            lambda ids: {DirectDebitSubmission._meta.label: len(ids)},
            "Direct Debit files processed on or before {cutoff}",
            ErasureAction.ANONYMISE,
        ),
    ),
    Declaration(
        "billing.CallRecord",
        "end customers and the people they call",
        "Bill calls (traffic data)",
        ErasureAction.DELETE,
        (TRAFFIC_DATA,),
        LawfulBasis.CONTRACT,
        (
            _traffic("cli", "Calling line"),
            _traffic("cli_index", "Blind index matching the call to its line"),
            _traffic("dialled_number", "Number called: the called person's data too"),
            _traffic("dialled_prefix", "Leading digits of the number called, for rating"),
            _traffic("started_at", "When the call was made"),
            _traffic("duration_seconds", "How long it lasted"),
        ),
        ("hosting",),
        erasure=(
            # Which invoice billed each call: the invoice keeps its usage lines, the links go with the calls.
            Erase(
                lambda ids: BilledCall.objects.filter(call__in=_calls(ids).values("pk")),
                "Links of billed calls to invoices",
                owner=lambda ids: first_owner(
                    CallRecord.objects.filter(pk=OuterRef("call_id")).annotate(**{OWNER: _call_owner(ids)}),
                    OWNER,
                ),
            ),
            # The network's reference of each call, kept only to refuse a second import: it goes with its
            # call.
            Erase(
                lambda ids: CallReference.objects.filter(call__in=_calls(ids).values("pk")),
                "References of the calls, kept to refuse a second import",
                owner=lambda ids: first_owner(
                    CallRecord.objects.filter(pk=OuterRef("call_id")).annotate(**{OWNER: _call_owner(ids)}),
                    OWNER,
                ),
            ),
            Erase(
                _calls, "Traffic data: every call from the customer's lines, billed or not", owner=_call_owner
            ),
        ),
        purge=Purge(
            _calls_past_due,
            _delete_calls,
            lambda ids: {CallRecord._meta.label: len(ids)},
            "calls billed or made on or before {cutoff}",
            blocks=_call_months_past_due,
        ),
        of_customer=lambda customer: CallRecord.objects.filter(customer=customer),
    ),
    _account_data(
        LineTariff,
        "Price the customer's lines",
        (),
        Erase(_line_tariffs(LineTariff.objects), "Tariffs of the customer's lines", owner=line_owner),
        Erase(_line_tariffs(LineTariff.history), "History of line tariffs", owner=line_owner),
    ),
    _account_data(
        RecurringCharge,
        "Bill line rentals",
        (PersonalField("description", FIN, "What the customer rents (may name a line)"),),
        *_with_history(RecurringCharge, "Rentals", "History of rentals"),
    ),
    _account_data(
        OneOffCharge,
        "Bill one-off charges",
        (PersonalField("description", FIN, "What was charged (free text)"),),
        *_with_history(
            OneOffCharge,
            "One-off charges (invoiced ones stay as invoice lines)",
            "History of one-off charges",
        ),
    ),
    _account_data(
        CustomerTariff,
        "Price the customer's calls",
        (),
        *_with_history(CustomerTariff, "The customer's tariff", "History of the customer's tariff"),
    ),
    _vat_record(
        InvoiceLine,
        "Describe the supply on a VAT invoice",
        (PersonalField("description", FIN, "Description of the services supplied"),),
        ("hosting", "hmrc"),
        erasure=(
            Erase(
                lambda ids: InvoiceLine.objects.filter(invoice__in=_drafts(ids)),
                "Lines of invoices never issued",
                owner="invoice__customer_id",
            ),
        ),
        kept=Kept(
            lambda ids: InvoiceLine.objects.filter(invoice__in=_issued(ids)),
            "Description and amount of each supply",
            owner="invoice__customer_id",
            anchor_field="invoice__issue_date",
        ),
        of_customer=lambda customer: InvoiceLine.objects.filter(invoice__in=_issued([customer.pk])),
    ),
    _vat_record(
        Invoice,
        "Issue VAT invoices",
        (
            PersonalField("customer_name", FIN, "Customer's name as invoiced (VAT Notice 700 s.16.3)"),
            PersonalField("customer_address", FIN, "Customer's address as invoiced (VAT Notice 700 s.16.3)"),
            PersonalField("customer_reference", FIN, "Account the invoice was issued to"),
        ),
        ("hosting", "mail", "hmrc"),
        erasure=(
            Erase(_drafts, "Invoices never issued (drafts of cancelled runs)"),
            Erase(
                lambda ids: Invoice.history.filter(customer_id__in=ids).exclude(
                    id__in=_issued(ids).values("id")
                ),
                "History of invoices never issued",
            ),
        ),
        kept=Kept(
            _issued,
            "Number, dates, supplier, the customer's name and address as invoiced, amounts",
            anchor_field="issue_date",
        ),
        purge=Purge(
            _invoices_past_due, _delete_invoices, _invoices_to_delete, "invoices issued on or before {cutoff}"
        ),
        of_customer=lambda customer: _issued([customer.pk]),
    ),
    _vat_record(
        CreditNote,
        "Issue VAT credit notes",
        (PersonalField("reason", FIN, "Why the credit was given"),),
        ("hosting", "hmrc"),
        kept=Kept(
            lambda ids: CreditNote.objects.filter(invoice__in=_issued(ids)),
            "Number, date, reason, amounts",
            owner="invoice__customer_id",
            anchor_field="issue_date",
        ),
        of_customer=lambda customer: CreditNote.objects.filter(invoice__customer=customer),
    ),
    _ledger_record(
        Payment,
        "Record the money the customer paid, and how",
        (PersonalField("reference", FIN, "Bank or card reference: may name the payer"),),
        Kept(
            lambda ids: Payment.objects.filter(customer_id__in=ids),
            "Amount, method and date of each payment",
            anchor_field="received_on",
        ),
        *_scrubbed(Payment.objects, "reference", "Payments: the bank or card reference", blank=True),
        *_scrubbed(Payment.history, "reference", "History of payments: the reference", blank=True),
    ),
    _ledger_record(
        LedgerEntry,
        "Keep the customer's account: what was charged, paid, refunded and written off",
        (
            PersonalField(
                "amount",
                FIN,
                "What the customer owes: kept after the contract ends while unpaid, to recover it",
                LawfulBasis.LEGITIMATE_INTERESTS,
            ),
            PersonalField("reason", FIN, "Why a correction was posted (free text)"),
        ),
        Kept(
            lambda ids: LedgerEntry.objects.filter(customer_id__in=ids),
            "Every entry's kind, amount and date (the balance)",
            anchor_field="effective_on",
        ),
        # Entries are immutable in use; scrubbing the free text on erasure is the one change allowed,
        # through the plain queryset.
        *_scrubbed(QuerySet(LedgerEntry), "reason", "Ledger entries: the free-text reason"),
        purge=Purge(
            _money_on_no_invoice_past_due,
            _delete_money_on_no_invoice,
            _money_on_no_invoice_to_delete,
            "payments and adjustments on no invoice, of customers whose are all dated on or before {cutoff} "
            "and sum to nothing",
        ),
    ),
    _ledger_record(
        PaymentAllocation,
        "Say which invoices each payment settles, and why it was moved",
        (PersonalField("reason", FIN, "Why an allocation was moved (free text)"),),
        Kept(
            lambda ids: PaymentAllocation.objects.filter(payment__customer_id__in=ids),
            "Which invoice each payment settled, and how much",
            owner="payment__customer_id",
            anchor_field="created_at",
        ),
        *_scrubbed(
            QuerySet(PaymentAllocation),
            "reason",
            "Allocations: the free-text reason of a move",
            owner="payment__customer_id",
        ),
    ),
    _ledger_record(
        WriteOff,
        "Stop collecting a debt, approved by a second finance manager",
        (
            PersonalField("reason", FIN, "Why the write-off was asked for (free text)"),
            PersonalField("decision_reason", FIN, "Why it was approved or rejected (free text)"),
        ),
        Kept(
            lambda ids: WriteOff.objects.filter(customer_id__in=ids),
            "Amount, invoice, who asked and who decided, when",
            anchor_field="requested_at",
        ),
        *_scrubbed(WriteOff.objects, "reason", "Write-offs: the reason asked"),
        *_scrubbed(WriteOff.objects, "decision_reason", "Write-offs: the decision's reason", blank=True),
        *_scrubbed(WriteOff.history, "reason", "History of write-offs: the reason asked"),
        *_scrubbed(WriteOff.history, "decision_reason", "History of write-offs: the decision", blank=True),
    ),
    Declaration(
        "billing.BillRunException",
        "end customers",
        "Tell reviewers why a customer was skipped by a bill run",
        ErasureAction.ANONYMISE,
        (ACCOUNT_DATA,),
        LawfulBasis.CONTRACT,
        (PersonalField("detail", FIN, "The objection or restriction reason, copied"),),
        erasure=(
            Erase(
                _of_customers(BillRunException.objects),
                "Bill run exceptions: the copied objection or restriction reason",
                lambda ids, now: {"detail": ""},
                ~Q(detail=""),
            ),
        ),
    ),
    Declaration(
        "billing.CallImportError",
        "end customers (indirectly: a rejected line of a call file)",
        "Tell staff which lines of a call file were refused",
        ErasureAction.DELETE,
        (IMPORT_LOGS,),
        LawfulBasis.LEGITIMATE_INTERESTS,
        (
            PersonalField(
                "reason",
                Category.TECHNICAL,
                "Fixed texts only: the rejected line itself is never stored, so nothing of a person",
            ),
        ),
    ),
)

CHECKS = CustomerChecks(blockers=_blockers, warnings=_warnings, keep=_keep)
