"""Payments: recording money received (and letting it settle open invoices, oldest first), moving it
between invoices, refunding account credit, and undoing a payment that came back unpaid (a Direct Debit
returned through ARUDD). Each posts its ledger entry and leaves the payment's history and an audit event;
the rules they keep are those of ``billing.services.ledger``."""

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Customer, User
from billing.models import Invoice, LedgerEntry, Payment, PaymentAllocation
from billing.services.errors import BillingError
from billing.services.ledger import (
    allocate_oldest_first,
    invoice_outstanding,
    live_allocations,
    lock_customer,
    lock_customers,
    payment_unallocated,
    post_entry,
    post_payment_entries,
    post_unpaid_reversals,
    release_allocations,
    release_payments,
    require,
    save_allocations,
)
from fusion_site.bulk import insert_rows_returning_ids, record_history_in_sql
from fusion_site.models import save_with_actor
from fusion_site.money import to_money

# The longest bank or card reference a payment keeps (its column's width).
REFERENCE_LENGTH = Payment._meta.get_field("reference").max_length or 60


@dataclass(frozen=True)
class PaymentReceived:
    """One payment of a batch (a bank statement, a card settlement, a Direct Debit collection day)."""

    customer_id: int
    method: str
    amount: Decimal
    received_on: datetime.date
    reference: str = ""


def payments_record_many(
    *,
    payments: Sequence[PaymentReceived],
    actor: User,
    chunk_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Record a batch of payments as ``payment_record`` records one (history, ledger entry, audit event,
    oldest invoice first), set-based: a fixed number of queries per chunk of ``chunk_size``, all in one
    transaction, so a batch is stored whole or not at all. Every payment is checked before anything is
    written; a bad one is refused naming its position. Returns how many were recorded."""
    require(actor, "billing.add_payment", "record payments")
    today = timezone.localdate()
    methods = set(Payment.Method.values)
    for number, received in enumerate(payments, start=1):
        if received.method not in methods:
            raise ValidationError(
                {"method": f"Payment {number}: {received.method!r} is not a payment method."}
            )
        if to_money(received.amount) <= 0:
            raise ValidationError({"amount": f"Payment {number}: a payment is more than 0."})
        if received.received_on > today:
            raise ValidationError(
                {"received_on": f"Payment {number}: a payment cannot be received in the future."}
            )
        if len(received.reference) > REFERENCE_LENGTH:
            raise ValidationError(
                {"reference": f"Payment {number}: a reference is at most {REFERENCE_LENGTH} characters."}
            )
    known = set(
        Customer.objects.filter(pk__any_of={received.customer_id for received in payments}).values_list(
            "pk", flat=True
        )
    )
    unknown = [
        number for number, received in enumerate(payments, start=1) if received.customer_id not in known
    ]
    if unknown:
        raise ValidationError({"customer": f"Payment {unknown[0]}: no such customer."})
    recorded = 0
    with transaction.atomic():
        for start in range(0, len(payments), chunk_size):
            chunk = payments[start : start + chunk_size]
            lock_customers(received.customer_id for received in chunk)
            # Rows in database form, not model instances: a statement's batch is 100,000 payments.
            stamp = connection.ops.adapt_datetimefield_value(timezone.now())
            made = insert_rows_returning_ids(
                Payment,
                ("customer", "method", "amount", "received_on", "reference", "recorded_by", "created_at"),
                [
                    (
                        received.customer_id,
                        received.method,
                        to_money(received.amount),
                        received.received_on,
                        received.reference,
                        actor.pk,
                        stamp,
                    )
                    for received in chunk
                ],
            )
            record_history_in_sql(
                Payment.objects.filter(pk__any_of=made),
                actor=actor,
                reason="Recorded",
                when=timezone.now(),
            )
            post_payment_entries(payment_ids=made, actor=actor)
            allocate_oldest_first(
                customer_ids=sorted({received.customer_id for received in chunk}),
                actor=actor,
                reason="Oldest invoice first",
            )
            recorded += len(made)
            if progress is not None:
                progress(recorded, len(payments))
    return recorded


@transaction.atomic
def payment_record(
    *,
    customer: Customer,
    method: str,
    amount: Decimal,
    received_on: datetime.date,
    actor: User,
    reference: str = "",
    allocate: bool = True,
) -> Payment:
    """Record money received. By default it settles the customer's open invoices, oldest first; what is
    left (an overpayment) stays as account credit, which the next invoice uses when it is issued."""
    require(actor, "billing.add_payment", "record payments")
    if received_on > timezone.localdate():
        raise ValidationError({"received_on": "A payment cannot be received in the future."})
    lock_customer(customer.pk)
    payment = Payment(
        customer=customer,
        method=method,
        amount=to_money(amount) if amount is not None else amount,
        received_on=received_on,
        reference=reference,
        recorded_by=actor,
    )
    if payment.amount is not None and payment.amount <= 0:
        raise ValidationError({"amount": "A payment is more than 0."})
    save_with_actor(payment, actor=actor, reason="Recorded")
    post_entry(
        customer_id=customer.pk,
        kind=LedgerEntry.Kind.PAYMENT,
        amount=-payment.amount,
        effective_on=received_on,
        actor=actor,
        payment=payment,
    )
    if allocate:
        allocate_oldest_first(customer_ids=[customer.pk], actor=actor, reason="Oldest invoice first")
    return payment


@transaction.atomic
def payment_reallocate(
    *,
    payment: Payment,
    from_invoice: Invoice | None,
    to_invoice: Invoice | None,
    amount: Decimal,
    reason: str,
    actor: User,
) -> list[PaymentAllocation]:
    """Move ``amount`` of a payment from one invoice (or from its unallocated credit, if None) to another
    (or back to credit, if None). The rows moved are reversed, never edited; the reason is kept."""
    require(actor, "billing.reallocate_payment", "re-allocate payments")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the payment is moved."})
    if from_invoice is None and to_invoice is None:
        raise ValidationError({"to_invoice": "Choose where the money goes."})
    lock_customer(payment.customer_id)
    amount = to_money(amount)
    if amount <= 0:
        raise ValidationError({"amount": "Move more than 0."})
    for invoice in (from_invoice, to_invoice):
        if invoice is not None and (
            invoice.customer_id != payment.customer_id or invoice.status != Invoice.Status.FINALISED
        ):
            raise ValidationError(
                {"to_invoice": "A payment settles only its own customer's issued invoices."}
            )
    if from_invoice is not None and from_invoice == to_invoice:
        raise ValidationError({"to_invoice": "Choose another invoice to move the money to."})
    before = set(PaymentAllocation.objects.filter(payment=payment).values_list("pk", flat=True))
    if from_invoice is not None:
        on_invoice = sum(
            (a.amount for a in PaymentAllocation.objects.filter(payment=payment, invoice=from_invoice)),
            Decimal("0"),
        )
        if amount > on_invoice:
            raise ValidationError({"amount": f"Only {on_invoice} of this payment settles that invoice."})
        release_allocations(
            live_allocations(payment=payment, invoice=from_invoice), amount=amount, actor=actor, reason=reason
        )
    elif amount > payment_unallocated(payment):
        raise ValidationError(
            {"amount": f"Only {payment_unallocated(payment)} of this payment is unallocated."}
        )
    if to_invoice is not None:
        owed = invoice_outstanding(to_invoice)
        if amount > owed:
            raise ValidationError({"amount": f"Only {owed} is outstanding on invoice {to_invoice.number}."})
        save_allocations(
            [
                PaymentAllocation(
                    payment=payment, invoice=to_invoice, amount=amount, actor=actor, reason=reason
                )
            ]
        )
    audit_record(
        actor=actor,
        action="ledger.payment_reallocated",
        target=payment,
        detail={
            "from_invoice": from_invoice.pk if from_invoice else None,
            "to_invoice": to_invoice.pk if to_invoice else None,
            "amount": str(amount),
        },
    )
    return list(PaymentAllocation.objects.filter(payment=payment).exclude(pk__in=before))


@transaction.atomic
def payment_refund(
    *,
    payment: Payment,
    amount: Decimal,
    reason: str,
    actor: User,
    refunded_on: datetime.date | None = None,
) -> LedgerEntry:
    """Pay back (part of) a payment's unallocated credit to the customer."""
    require(actor, "billing.refund_payment", "refund payments")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the money is refunded."})
    lock_customer(payment.customer_id)
    amount = to_money(amount)
    available = payment_unallocated(payment)
    if amount <= 0 or amount > available:
        raise ValidationError(
            {"amount": f"Refund more than 0 and at most {available} (this payment's unallocated credit)."}
        )
    return post_entry(
        customer_id=payment.customer_id,
        kind=LedgerEntry.Kind.REFUND,
        amount=amount,
        effective_on=refunded_on or timezone.localdate(),
        actor=actor,
        reason=reason,
        payment=payment,
    )


@transaction.atomic
def payment_reverse_unpaid(
    *,
    payment: Payment,
    reason_code: str,
    actor: User,
    returned_on: datetime.date | None = None,
) -> LedgerEntry:
    """The payment never arrived (a Direct Debit returned unpaid, a bounced cheque): its allocations are
    reversed, so the invoices it settled are open again, and the account owes its amount again.

    Idempotent: a payment already returned gives back its reversal (a report imported twice changes
    nothing twice)."""
    entry_id = payments_reverse_unpaid_many(
        returns=[(payment, reason_code)], actor=actor, returned_on=returned_on
    )[payment.pk]
    return LedgerEntry.objects.get(pk=entry_id)


def payments_partly_refunded(payment_ids: Iterable[int]) -> set[int]:
    """The payments of these that had money refunded from them: they cannot simply come back unpaid."""
    return set(
        LedgerEntry.objects.filter(
            payment_id__any_of=list(payment_ids), kind=LedgerEntry.Kind.REFUND
        ).values_list("payment_id", flat=True)
    )


@transaction.atomic
def payments_reverse_unpaid_many(
    *,
    returns: Sequence[tuple[Payment, str]],
    actor: User,
    returned_on: datetime.date | None = None,
) -> dict[int, int]:
    """``payment_reverse_unpaid`` for each (payment, reason code), with a fixed number of queries however
    many (an ARUDD report returns thousands): the accounts locked in id order, every live allocation of
    the payments reversed, one unpaid-reversal entry each, then the credit the customers still hold
    settles what is open again (no credit waits while an invoice is owed). Returns the id of each
    payment's reversal entry, the one already posted for a payment returned before."""
    require(actor, "billing.reverse_payment", "record unpaid payments")
    for _payment, reason_code in returns:
        if not reason_code.strip():
            raise ValidationError({"reason_code": "Give the reason the payment came back unpaid."})
    if not returns:
        return {}
    lock_customers(payment.customer_id for payment, _code in returns)
    ids = [payment.pk for payment, _code in returns]
    existing: dict[int, int] = {
        int(payment_id or 0): entry_id
        for entry_id, payment_id in LedgerEntry.objects.filter(
            payment_id__any_of=ids, kind=LedgerEntry.Kind.UNPAID_REVERSAL
        ).values_list("pk", "payment_id")
    }
    fresh = {
        payment.pk: (payment, reason_code) for payment, reason_code in returns if payment.pk not in existing
    }
    refunded = payments_partly_refunded(fresh)
    if refunded:
        raise BillingError(
            f"Part of payment {min(refunded)} was refunded, so it cannot simply be returned unpaid: "
            "post an adjustment for what the customer owes."
        )
    reasons = {pk: f"Returned unpaid: {reason_code}" for pk, (_payment, reason_code) in fresh.items()}
    release_payments(reasons, actor=actor)
    posted = post_unpaid_reversals(reasons, effective_on=returned_on or timezone.localdate(), actor=actor)
    allocate_oldest_first(
        customer_ids=sorted({payment.customer_id for payment, _code in fresh.values()}),
        actor=actor,
        reason="Oldest invoice first",
    )
    return {**existing, **posted}
