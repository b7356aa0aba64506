"""Posting to customers' ledgers: invoices and credit notes as they are issued, adjustments, write-offs
(asked for, then approved or rejected by another person, a finance manager), and the use of account
credit by open invoices.

Every write locks the customer's row first, so two writes to one account are serialised and the derived
amounts (outstanding per invoice, unallocated per payment) read inside the lock stay true until commit.
The rules kept here: no invoice's outstanding amount goes below zero or above its gross; no payment
allocates more than it brought in (less what was refunded); an entry is never changed.

Only this module writes entries and allocations, and every write brings the cached amounts derived from
them (``Invoice.amount_outstanding``, ``Payment.amount_unallocated``) back in line for the rows it named,
in the same transaction: ``refresh_cached_amounts`` recomputes them from the entries, and where a write's
effect is known exactly (allocations move money from a payment to an invoice; a payment just recorded has
all its money unallocated) ``apply_cached_deltas`` adds it in one statement instead. The readers (open
invoices, account credit, aged debt, dunning, retention) use the cached columns and their partial indexes
instead of summing a customer's whole history. The expressions below stay the definition, and the tests
hold the cache to them.
"""

import datetime
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import (
    Case,
    DecimalField,
    Exists,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, Round
from django.utils import timezone

from accounts.audit import AuditEntry, audit_record, audit_record_many
from accounts.models import Customer, User
from billing.models import (
    CreditNote,
    Invoice,
    LedgerEntry,
    Payment,
    PaymentAllocation,
    WriteOff,
)
from billing.services.errors import BillingError
from fusion_site.models import save_with_actor
from fusion_site.money import MONEY_DIGITS, to_money
from fusion_site.refusals import Refusal

ZERO = Decimal("0.00")
MONEY = DecimalField(max_digits=MONEY_DIGITS + 2, decimal_places=2)


def _sum_of(queryset: QuerySet[Any], group_by: str) -> Subquery:
    return Subquery(
        queryset.order_by().values(group_by).annotate(total=Sum("amount")).values("total")[:1],
        output_field=MONEY,
    )


def invoice_outstanding_expression() -> Combinable:
    """What is still owed on an invoice (``Invoice`` queryset annotation): what its documents charge (its
    own entry, less its credit notes and write-offs) less what payments settle."""
    charged = _sum_of(LedgerEntry.objects.filter(invoice=OuterRef("pk")), "invoice")
    settled = _sum_of(PaymentAllocation.objects.filter(invoice=OuterRef("pk")), "invoice")
    return Coalesce(charged, Value(ZERO), output_field=MONEY) - Coalesce(
        settled, Value(ZERO), output_field=MONEY
    )


def payment_unallocated_expression() -> Combinable:
    """What of a payment is still the customer's credit (``Payment`` queryset annotation): nothing once
    it came back unpaid; otherwise its amount less what it settles and what was refunded from it."""
    allocated = _sum_of(PaymentAllocation.objects.filter(payment=OuterRef("pk")), "payment")
    refunded = _sum_of(
        LedgerEntry.objects.filter(payment=OuterRef("pk"), kind=LedgerEntry.Kind.REFUND), "payment"
    )
    returned = Exists(
        LedgerEntry.objects.filter(payment=OuterRef("pk"), kind=LedgerEntry.Kind.UNPAID_REVERSAL)
    )
    return Case(
        When(returned, then=Value(ZERO)),
        default=(
            Coalesce("amount", Value(ZERO), output_field=MONEY)
            - Coalesce(allocated, Value(ZERO), output_field=MONEY)
            - Coalesce(refunded, Value(ZERO), output_field=MONEY)
        ),
        output_field=MONEY,
    )


def refresh_cached_amounts(
    *, invoice_ids: Iterable[int] = (), payment_ids: Iterable[int] = (), batch_size: int = 2000
) -> None:
    """Set the cached outstanding amount of these invoices and unallocated credit of these payments to
    what their entries and allocations say now: one UPDATE per batch, rounded to the penny (SQLite sums
    decimals as floating point)."""
    invoices = sorted(set(invoice_ids))
    for start in range(0, len(invoices), batch_size):
        Invoice.objects.filter(pk__in=invoices[start : start + batch_size]).update(
            amount_outstanding=Round(invoice_outstanding_expression(), 2)
        )
    payments = sorted(set(payment_ids))
    for start in range(0, len(payments), batch_size):
        Payment.objects.filter(pk__in=payments[start : start + batch_size]).update(
            amount_unallocated=Round(payment_unallocated_expression(), 2)
        )


def _add_to_cached(model: type[Invoice] | type[Payment], field: str, deltas: Mapping[int, Decimal]) -> None:
    """``field += delta`` for each row id in ``deltas``: one UPDATE joined to the ids and amounts (two arrays
    on PostgreSQL; on SQLite a VALUES list of 2,000 rows at a time, rounded to the penny as the
    recomputation is)."""
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(field)  # the cached amounts are plain fields named as their columns
    changed = sorted((pk, to_money(delta)) for pk, delta in deltas.items() if delta)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"UPDATE {table} SET {column} = {table}.{column} + delta.amount "  # noqa: S608
                f"FROM unnest(%s::bigint[], %s::numeric[]) AS delta(id, amount) WHERE {table}.id = delta.id",
                # Array literals of ints and quantised decimals: psycopg's client-side quoting of a
                # list of Decimals cost more than the UPDATE itself.
                [
                    "{" + ",".join(str(int(pk)) for pk, _delta in changed) + "}",
                    "{" + ",".join(str(delta) for _pk, delta in changed) + "}",
                ],
            )
            return
        for start in range(0, len(changed), 2000):
            rows = changed[start : start + 2000]
            values = ", ".join(["(CAST(%s AS BIGINT), CAST(%s AS NUMERIC))"] * len(rows))
            cursor.execute(
                f"UPDATE {table} SET {column} = ROUND({table}.{column} + delta.column2, 2) "  # noqa: S608
                f"FROM (VALUES {values}) AS delta WHERE {table}.id = delta.column1",
                [value for pk, delta in rows for value in (pk, str(delta))],
            )


def apply_cached_deltas(
    *, invoices: Mapping[int, Decimal] | None = None, payments: Mapping[int, Decimal] | None = None
) -> None:
    """Add these amounts to the cached outstanding amount of invoices and unallocated credit of payments
    (by id): for writes whose effect on them is exact, without re-reading every row's entries."""
    _add_to_cached(Invoice, "amount_outstanding", invoices or {})
    _add_to_cached(Payment, "amount_unallocated", payments or {})


def open_invoices_of(customer_ids: Iterable[int]) -> QuerySet[Invoice]:
    """Finalised invoices with something outstanding (``amount_outstanding``), oldest first (the order
    payments settle them)."""
    return Invoice.objects.filter(
        customer_id__any_of=list(customer_ids), status=Invoice.Status.FINALISED, amount_outstanding__gt=0
    ).order_by("issue_date", "pk")


def payments_with_credit_of(customer_ids: Iterable[int] | QuerySet[Any]) -> QuerySet[Payment]:
    """Payments with unallocated money (``amount_unallocated``), oldest first; ``customer_ids`` may be a
    subquery of ids."""
    if isinstance(customer_ids, QuerySet):
        chosen = Payment.objects.filter(customer_id__in=customer_ids)
    else:
        chosen = Payment.objects.filter(customer_id__any_of=list(customer_ids))
    return chosen.filter(amount_unallocated__gt=0).order_by("received_on", "pk")


def invoice_outstanding(invoice: Invoice) -> Decimal:
    value = (
        Invoice.objects.filter(pk=invoice.pk)
        .annotate(outstanding=invoice_outstanding_expression())
        .values_list("outstanding", flat=True)
        .get()
    )
    return to_money(Decimal(value))


def payment_unallocated(payment: Payment) -> Decimal:
    value = (
        Payment.objects.filter(pk=payment.pk)
        .annotate(unallocated=payment_unallocated_expression())
        .values_list("unallocated", flat=True)
        .get()
    )
    return to_money(Decimal(value))


def lock_customer(customer_id: int) -> Customer:
    """Serialise the ledger writes of one account (see the module's docstring)."""
    return Customer.objects.select_for_update().get(pk=customer_id)


def lock_customers(customer_ids: Iterable[int]) -> None:
    """Lock several accounts, in id order so two writers never wait on each other crosswise."""
    ids = sorted(set(customer_ids))
    list(
        Customer.objects.select_for_update()
        .filter(pk__any_of=ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def require(actor: User, permission: str, action: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(f"You may not {action}.")


def post_entry(
    *,
    customer_id: int,
    kind: str,
    amount: Decimal,
    effective_on: datetime.date,
    actor: User | None,
    reason: str = "",
    invoice: Invoice | None = None,
    credit_note: CreditNote | None = None,
    payment: Payment | None = None,
    write_off: WriteOff | None = None,
) -> LedgerEntry:
    entry = LedgerEntry(
        customer_id=customer_id,
        kind=kind,
        amount=to_money(amount),
        effective_on=effective_on,
        actor=actor,
        reason=reason,
        invoice=invoice,
        credit_note=credit_note,
        payment=payment,
        write_off=write_off,
    )
    # The field shapes (no query: the keys are the caller's rows; the database checks the constraints).
    entry.clean_fields(exclude=["customer", "invoice", "credit_note", "payment", "write_off", "actor"])
    entry.save()
    refresh_cached_amounts(
        invoice_ids=[invoice.pk] if invoice is not None else [],
        payment_ids=[payment.pk] if payment is not None else [],
    )
    audit_record(
        actor=actor,
        action=f"ledger.{kind}",
        target=entry,
        detail={"customer": customer_id, "amount": str(entry.amount)},
    )
    return entry


def _rows_sql(queryset: QuerySet[Any], *, pounds: str, on: str) -> tuple[str, tuple[Any, ...]]:
    """The compiled SQL of ``queryset``'s rows as (row_id, row_customer, row_pounds, row_on), from the
    fields ``pounds`` and ``on``: the source of the set-based writes below (unordered: they order)."""
    sql, params = (
        queryset.order_by()
        .values(row_id=F("pk"), row_customer=F("customer_id"), row_pounds=F(pounds), row_on=F(on))
        .query.sql_with_params()
    )
    return sql, tuple(params)


def _post_from_payments(
    payment_ids: Sequence[int],
    *,
    kind: str,
    negate: bool,
    effective_on: datetime.date | None,
    reason: str,
    actor: User | None,
) -> dict[int, int]:
    """One entry of ``kind`` per payment, each with its audit event, by one INSERT ... SELECT from the
    stored payments (not a model instance per entry): the payment's amount (negated if ``negate``), on
    ``effective_on`` or, if None, the day it was received. Returns each payment's entry id."""
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(name)
        for name in ("customer_id", "kind", "amount", "effective_on", "actor_id", "payment_id", "reason")
    )
    stored_sql, stored_params = _rows_sql(
        Payment.objects.filter(pk__any_of=sorted(payment_ids)), pounds="amount", on="received_on"
    )
    sign = "-" if negate else ""
    on = "row_on" if effective_on is None else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(LedgerEntry._meta.db_table)} ({columns}, {quote('created_at')}) "  # noqa: S608
            f"SELECT row_customer, %s, {sign}row_pounds, {on}, %s, row_id, %s, %s "
            f"FROM ({stored_sql}) stored ORDER BY row_id RETURNING id, customer_id, amount, payment_id",
            [
                kind,
                *([] if effective_on is None else [effective_on]),
                getattr(actor, "pk", None),
                reason,
                connection.ops.adapt_datetimefield_value(timezone.now()),
                *stored_params,
            ],
        )
        posted = cursor.fetchall()
    label = LedgerEntry._meta.label_lower
    audit_record_many(
        actor=actor,
        entries=[
            AuditEntry(
                f"ledger.{kind}",
                (label, str(entry_id)),
                {"customer": customer_id, "amount": str(to_money(Decimal(str(amount))))},
            )
            for entry_id, customer_id, amount, _payment_id in posted
        ],
    )
    return {payment_id: entry_id for entry_id, _customer_id, _amount, payment_id in posted}


def post_payment_entries(*, payment_ids: Sequence[int], actor: User | None) -> int:
    """The ledger entries of payments just recorded in bulk, each with its audit event: each takes its
    amount off the customer's balance on the day it was received. Returns how many were posted."""
    ids = list(payment_ids)
    posted = _post_from_payments(
        ids, kind=LedgerEntry.Kind.PAYMENT, negate=True, effective_on=None, reason="", actor=actor
    )
    # Just recorded, a payment has settled nothing yet: all its money is the customer's credit.
    Payment.objects.filter(pk__any_of=ids).update(amount_unallocated=F("amount"))
    return len(posted)


def post_unpaid_reversals(
    reasons: Mapping[int, str], *, effective_on: datetime.date, actor: User | None
) -> dict[int, int]:
    """The unpaid-reversal entries of payments (by id, each with its reason) whose allocations were all
    released (``release_payments``): the account owes each amount again, and a returned payment holds no
    credit. One INSERT ... SELECT per distinct reason; returns each payment's entry id."""
    by_reason: dict[str, list[int]] = {}
    for payment_id, why in reasons.items():
        by_reason.setdefault(why, []).append(payment_id)
    posted: dict[int, int] = {}
    for why, payment_ids in sorted(by_reason.items()):
        posted.update(
            _post_from_payments(
                payment_ids,
                kind=LedgerEntry.Kind.UNPAID_REVERSAL,
                negate=False,
                effective_on=effective_on,
                reason=why,
                actor=actor,
            )
        )
    Payment.objects.filter(pk__any_of=list(reasons)).update(amount_unallocated=ZERO)
    return posted


def post_entries(entries: Sequence[LedgerEntry], *, actor: User | None) -> list[LedgerEntry]:
    """Post entries built by the caller as ``post_entry`` posts one (cached amounts, an audit event each),
    with a fixed number of queries however many."""
    saved = LedgerEntry.objects.bulk_create(entries, batch_size=1000)
    refresh_cached_amounts(
        invoice_ids=[entry.invoice_id for entry in saved if entry.invoice_id is not None],
        payment_ids=[entry.payment_id for entry in saved if entry.payment_id is not None],
    )
    audit_record_many(
        actor=actor,
        entries=[
            AuditEntry(
                f"ledger.{entry.kind}", entry, {"customer": entry.customer_id, "amount": str(entry.amount)}
            )
            for entry in saved
        ],
    )
    return saved


def save_allocations(allocations: Sequence[PaymentAllocation]) -> list[PaymentAllocation]:
    """Write allocations (one insert) and bring the cached amounts of their invoices and payments in line."""
    saved = PaymentAllocation.objects.bulk_create(allocations, batch_size=1000)
    # Each row moves its amount from the payment's credit to the invoice (a reversal, negative, back).
    invoices: dict[int, Decimal] = {}
    payments: dict[int, Decimal] = {}
    for row in saved:
        invoices[row.invoice_id] = invoices.get(row.invoice_id, ZERO) - row.amount
        payments[row.payment_id] = payments.get(row.payment_id, ZERO) - row.amount
    apply_cached_deltas(invoices=invoices, payments=payments)
    return saved


# Allocation: the mechanics shared by payments, credit notes and finalisation.


def allocate_oldest_first(*, customer_ids: Sequence[int], actor: User | None, reason: str = "") -> int:
    """Let unallocated payment money of these (locked) customers settle their open invoices, oldest
    invoice first, oldest payment first. Returns how many allocations were written; three queries however
    many customers, and no row read into Python but the allocations written.

    First in, first out is an overlap of intervals: lay a customer's payment credit end to end in the
    order it is used, and its open invoices end to end in the order they are settled; each payment then
    settles of each invoice exactly the stretch their two intervals share. Both are counted in pence, so
    the sums are exact on SQLite (which adds decimals as floating point) as on PostgreSQL."""
    if not customer_ids:
        return 0
    credit_sql, credit_params = _rows_sql(
        payments_with_credit_of(customer_ids), pounds="amount_unallocated", on="received_on"
    )
    owed_sql, owed_params = _rows_sql(
        open_invoices_of(customer_ids), pounds="amount_outstanding", on="issue_date"
    )
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("payment_id", "invoice_id", "amount", "actor_id", "reason"))
    stretch = (
        "(CASE WHEN credit.hi < owed.hi THEN credit.hi ELSE owed.hi END) "
        "- (CASE WHEN credit.lo > owed.lo THEN credit.lo ELSE owed.lo END)"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            # The first-in order of each side is its running total's order. Only compiled SQL and names:
            "WITH credit_pence AS (SELECT row_id AS id, row_customer AS customer_id, row_on AS received_on, "  # noqa: S608
            f"CAST(ROUND(row_pounds * 100) AS BIGINT) AS pence FROM ({credit_sql}) credit_rows), "
            "credit AS (SELECT id, customer_id, received_on, "
            "SUM(pence) OVER (PARTITION BY customer_id ORDER BY received_on, id) - pence AS lo, "
            "SUM(pence) OVER (PARTITION BY customer_id ORDER BY received_on, id) AS hi FROM credit_pence), "
            "owed_pence AS (SELECT row_id AS id, row_customer AS customer_id, row_on AS issue_date, "
            f"CAST(ROUND(row_pounds * 100) AS BIGINT) AS pence FROM ({owed_sql}) owed_rows), "
            "owed AS (SELECT id, customer_id, issue_date, "
            "SUM(pence) OVER (PARTITION BY customer_id ORDER BY issue_date, id) - pence AS lo, "
            "SUM(pence) OVER (PARTITION BY customer_id ORDER BY issue_date, id) AS hi FROM owed_pence) "
            f"INSERT INTO {quote(PaymentAllocation._meta.db_table)} ({columns}, {quote('created_at')}) "
            f"SELECT credit.id, owed.id, ({stretch}) / 100.0, %s, %s, %s FROM credit JOIN owed "
            "ON owed.customer_id = credit.customer_id AND credit.lo < owed.hi AND owed.lo < credit.hi "
            "ORDER BY credit.received_on, credit.id, owed.issue_date, owed.id "
            "RETURNING payment_id, invoice_id, amount",
            [
                *credit_params,
                *owed_params,
                getattr(actor, "pk", None),
                reason,
                connection.ops.adapt_datetimefield_value(timezone.now()),
            ],
        )
        written = cursor.fetchall()
    invoices: dict[int, Decimal] = {}
    payments: dict[int, Decimal] = {}
    for payment_id, invoice_id, amount in written:
        money = to_money(Decimal(str(amount)))
        invoices[invoice_id] = invoices.get(invoice_id, ZERO) - money
        payments[payment_id] = payments.get(payment_id, ZERO) - money
    apply_cached_deltas(invoices=invoices, payments=payments)
    return len(written)


def live_allocations(**filters: object) -> QuerySet[PaymentAllocation]:
    """Allocations not (yet) reversed, newest first: the order money is taken back in."""
    return PaymentAllocation.objects.filter(
        reverses__isnull=True, reversed_by__isnull=True, **filters
    ).order_by("-created_at", "-pk")


def release_allocations(
    allocations: Iterable[PaymentAllocation],
    *,
    amount: Decimal | None,
    actor: User | None,
    reason: str | Mapping[int, str],
) -> Decimal:
    """Take back ``amount`` (all, if None) from these live allocations in their order: each is reversed in
    full and what of it is kept is allocated again, so every row stays as written. ``reason`` is the rows'
    reason, or each payment's by its id. Returns how much was taken back."""
    taken = ZERO
    rows: list[PaymentAllocation] = []
    for allocation in allocations:
        if amount is not None and taken >= amount:
            break
        why = reason if isinstance(reason, str) else reason[allocation.payment_id]
        rows.append(
            PaymentAllocation(
                payment_id=allocation.payment_id,
                invoice_id=allocation.invoice_id,
                amount=-allocation.amount,
                reverses=allocation,
                actor=actor,
                reason=why,
            )
        )
        take = allocation.amount if amount is None else min(allocation.amount, amount - taken)
        kept = allocation.amount - take
        if kept > 0:
            rows.append(
                PaymentAllocation(
                    payment_id=allocation.payment_id,
                    invoice_id=allocation.invoice_id,
                    amount=kept,
                    actor=actor,
                    reason=why,
                )
            )
        taken += take
    save_allocations(rows)
    return taken


def release_payments(reasons: Mapping[int, str], *, actor: User | None) -> int:
    """Take back everything these payments (of locked customers; by id, each with the reason its rows
    give) settle: each live allocation is reversed in full, newest first, as ``release_allocations`` with
    no amount does, but in one INSERT ... SELECT per distinct reason instead of a model instance per row.
    Returns how many allocations were reversed."""
    by_reason: dict[str, list[int]] = {}
    for payment_id, why in reasons.items():
        by_reason.setdefault(why, []).append(payment_id)
    quote = connection.ops.quote_name
    table = quote(PaymentAllocation._meta.db_table)
    columns = ", ".join(
        quote(name) for name in ("payment_id", "invoice_id", "amount", "reverses_id", "actor_id", "reason")
    )
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    written: list[tuple[int, int, Any]] = []
    with connection.cursor() as cursor:
        for why, payment_ids in sorted(by_reason.items()):
            live_sql, live_params = (
                live_allocations(payment_id__any_of=sorted(payment_ids))
                .values(row_id=F("pk"), row_payment=F("payment_id"), row_invoice=F("invoice_id"))
                .annotate(row_pounds=F("amount"), row_at=F("created_at"))
                .query.sql_with_params()
            )
            cursor.execute(
                f"INSERT INTO {table} ({columns}, {quote('created_at')}) "  # noqa: S608 - compiled SQL, names
                "SELECT row_payment, row_invoice, -row_pounds, row_id, %s, %s, %s "
                f"FROM ({live_sql}) live ORDER BY row_at DESC, row_id DESC "
                "RETURNING payment_id, invoice_id, amount",
                [getattr(actor, "pk", None), why, now, *live_params],
            )
            written.extend(cursor.fetchall())
    invoices: dict[int, Decimal] = {}
    payments: dict[int, Decimal] = {}
    for payment_id, invoice_id, amount in written:
        money = to_money(Decimal(str(amount)))
        invoices[invoice_id] = invoices.get(invoice_id, ZERO) - money
        payments[payment_id] = payments.get(payment_id, ZERO) - money
    apply_cached_deltas(invoices=invoices, payments=payments)
    return len(written)


# Documents issued by billing.


def ledger_post_invoices(*, invoices: Sequence[Invoice], actor: User | None) -> int:
    """Post just-finalised invoices (a bill run's) and let account credit settle them. Set-based: one
    insert for the entries, then a constant number of queries for the few customers holding credit."""
    entries = [
        LedgerEntry(
            customer_id=invoice.customer_id,
            kind=LedgerEntry.Kind.INVOICE,
            amount=invoice.gross,
            effective_on=invoice.issue_date,
            invoice=invoice,
            actor=actor,
        )
        for invoice in invoices
        if invoice.customer_id is not None and invoice.gross > 0 and invoice.issue_date is not None
    ]
    LedgerEntry.objects.bulk_create(entries, batch_size=1000)
    refresh_cached_amounts(invoice_ids=[entry.invoice_id for entry in entries if entry.invoice_id])
    # The accounts of the runs' invoices, as a subquery: a run bills tens of thousands of customers, more
    # than a list of parameters may hold on SQLite.
    billed = Invoice.objects.filter(
        bill_run_id__in={invoice.bill_run_id for invoice in invoices}, customer__isnull=False
    ).values("customer_id")
    in_credit = sorted(set(payments_with_credit_of(billed).values_list("customer_id", flat=True)))
    if in_credit:
        lock_customers(in_credit)
        allocate_oldest_first(customer_ids=in_credit, actor=actor, reason="Account credit used at issue")
    return len(entries)


def ledger_post_credit_note(*, credit_note: CreditNote, actor: User) -> LedgerEntry | None:
    """Post a credit note against its invoice. If payments had settled more than the invoice now charges,
    the excess goes back to the payments as account credit, which then settles other open invoices."""
    invoice = credit_note.invoice
    if invoice.customer_id is None:
        return None
    lock_customer(invoice.customer_id)
    entry = post_entry(
        customer_id=invoice.customer_id,
        kind=LedgerEntry.Kind.CREDIT_NOTE,
        amount=-credit_note.gross,
        effective_on=credit_note.issue_date,
        actor=actor,
        invoice=invoice,
        credit_note=credit_note,
    )
    overpaid = -invoice_outstanding(invoice)
    if overpaid > 0:
        release_allocations(
            live_allocations(invoice=invoice),
            amount=overpaid,
            actor=actor,
            reason=f"Credit note {credit_note.number} left the invoice overpaid",
        )
        allocate_oldest_first(customer_ids=[invoice.customer_id], actor=actor, reason="Account credit")
    return entry


# Adjustments and write-offs.


@transaction.atomic
def adjustment_post(
    *,
    customer: Customer,
    amount: Decimal,
    reason: str,
    actor: User,
    effective_on: datetime.date | None = None,
) -> LedgerEntry:
    """A correction of the account's balance (positive: the customer owes more). It names no invoice."""
    require(actor, "billing.post_adjustment", "post adjustments")
    amount = to_money(amount)
    if amount == 0:
        raise ValidationError({"amount": "An adjustment moves the balance: give an amount other than 0."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the balance is adjusted."})
    lock_customer(customer.pk)
    return post_entry(
        customer_id=customer.pk,
        kind=LedgerEntry.Kind.ADJUSTMENT,
        amount=amount,
        effective_on=effective_on or timezone.localdate(),
        actor=actor,
        reason=reason,
    )


@transaction.atomic
def write_off_request(*, invoice: Invoice, amount: Decimal, reason: str, actor: User) -> WriteOff:
    """Ask for (part of) an invoice's outstanding amount to be written off; a finance manager other than
    the requester decides."""
    require(actor, "billing.add_writeoff", "ask for write-offs")
    if invoice.status != Invoice.Status.FINALISED or invoice.customer_id is None:
        raise BillingError("Only a finalised invoice of an account can be written off.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the debt should be written off."})
    lock_customer(invoice.customer_id)
    amount = to_money(amount)
    outstanding = invoice_outstanding(invoice)
    if amount <= 0 or amount > outstanding:
        raise ValidationError({"amount": f"Write off more than 0 and at most {outstanding} (outstanding)."})
    write_off = WriteOff(
        customer_id=invoice.customer_id,
        invoice=invoice,
        amount=amount,
        reason=reason,
        requested_by=actor,
        requested_at=timezone.now(),
    )
    save_with_actor(write_off, actor=actor, reason="Requested")
    audit_record(
        actor=actor,
        action="ledger.write_off_requested",
        target=write_off,
        detail={"customer": invoice.customer_id, "invoice": invoice.pk, "amount": str(amount)},
    )
    return write_off


ONLY_FINANCE_DECIDES_WRITE_OFFS = "Only a finance manager may approve or reject a write-off."


def write_off_refusal(*, actor: User, write_off: WriteOff) -> Refusal | None:
    """Why ``actor`` may not decide (approve or reject) the requested write-off, or None: the rule
    ``write_off_approve`` and ``write_off_reject`` apply, so the account page says why instead of
    offering buttons that fail."""
    if not actor.has_perm("billing.approve_writeoff"):
        return Refusal(ONLY_FINANCE_DECIDES_WRITE_OFFS, forbidden=True)
    if write_off.requested_by_id == actor.pk:
        return Refusal("Four eyes: you asked for this write-off, so another finance manager must decide it.")
    return None


def _decide(write_off: WriteOff, actor: User) -> tuple[WriteOff, Invoice]:
    if not actor.has_perm("billing.approve_writeoff"):
        raise PermissionDenied(ONLY_FINANCE_DECIDES_WRITE_OFFS)
    lock_customer(write_off.customer_id)
    write_off = WriteOff.objects.select_for_update().select_related("invoice").get(pk=write_off.pk)
    if write_off.status != WriteOff.Status.REQUESTED:
        raise BillingError(f"This write-off is already {write_off.get_status_display().lower()}.")
    refusal = write_off_refusal(actor=actor, write_off=write_off)
    if refusal is not None:
        raise BillingError(refusal.reason)
    return write_off, write_off.invoice


@transaction.atomic
def write_off_approve(*, write_off: WriteOff, actor: User, reason: str = "") -> WriteOff:
    write_off, invoice = _decide(write_off, actor)
    outstanding = invoice_outstanding(invoice)
    if write_off.amount > outstanding:
        raise BillingError(
            f"Only {outstanding} is outstanding on the invoice now (it was paid or credited since the "
            "request): reject this write-off and ask again."
        )
    write_off.status = WriteOff.Status.APPROVED
    write_off.decided_by, write_off.decided_at = actor, timezone.now()
    write_off.decision_reason = reason
    save_with_actor(write_off, actor=actor, reason="Approved")
    post_entry(
        customer_id=write_off.customer_id,
        kind=LedgerEntry.Kind.WRITE_OFF,
        amount=-write_off.amount,
        effective_on=timezone.localdate(),
        actor=actor,
        reason=write_off.reason,
        invoice=invoice,
        write_off=write_off,
    )
    return write_off


@transaction.atomic
def write_off_reject(*, write_off: WriteOff, actor: User, reason: str) -> WriteOff:
    if not reason.strip():
        raise ValidationError({"reason": "Say why the write-off is rejected."})
    write_off, _invoice = _decide(write_off, actor)
    write_off.status = WriteOff.Status.REJECTED
    write_off.decided_by, write_off.decided_at = actor, timezone.now()
    write_off.decision_reason = reason
    save_with_actor(write_off, actor=actor, reason="Rejected")
    audit_record(
        actor=actor,
        action="ledger.write_off_rejected",
        target=write_off,
        detail={"customer": write_off.customer_id, "invoice": write_off.invoice_id},
    )
    return write_off
