"""A batch of payments (a bank statement, a collection day) recorded at once: the same ledger as recording
them one by one, all or nothing, and a number of queries that does not grow with the batch."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent, Role
from billing import selectors
from billing.models import LedgerEntry, Payment, PaymentAllocation
from billing.services.ledger import invoice_outstanding, payment_unallocated
from billing.services.payments import PaymentReceived, payment_record, payments_record_many
from tests.billing.test_ledger import issue_invoice
from tests.factories import full_customer

pytestmark = pytest.mark.frozen_at("2026-06-30T12:00:00+01:00")

ISSUED = (datetime.date(2026, 4, 1), datetime.date(2026, 5, 1))
RECEIVED = datetime.date(2026, 6, 29)


def _accounts(partner, finance, count):
    """Customers each with two open invoices (gross 12.00 then 24.00)."""
    accounts = []
    for _ in range(count):
        customer = full_customer(partner)
        for net, issued in zip(("10.00", "20.00"), ISSUED, strict=True):
            issue_invoice(customer, net, issued=issued, actor=finance)
        accounts.append(customer)
    return accounts


def _ledger_of(customer):
    """What the account's ledger says, without ids: balance, each invoice's outstanding, payments' credit."""
    return (
        selectors.customer_balance(customer),
        [invoice_outstanding(invoice) for invoice in customer.invoices.order_by("issue_date")],
        [payment_unallocated(payment) for payment in Payment.objects.filter(customer=customer)],
    )


def test_a_batch_leaves_the_ledger_that_recording_one_by_one_leaves(partner, profile, agent, finance):
    amounts = [Decimal("5.00"), Decimal("12.00"), Decimal("30.00"), Decimal("50.00")]
    one_by_one = _accounts(partner, finance, len(amounts))
    batched = _accounts(partner, finance, len(amounts))
    for customer, amount in zip(one_by_one, amounts, strict=True):
        payment_record(customer=customer, method=Payment.Method.BANK_TRANSFER, amount=amount,
                       received_on=RECEIVED, actor=agent)  # fmt: skip

    recorded = payments_record_many(
        payments=[
            PaymentReceived(customer.pk, Payment.Method.BANK_TRANSFER, amount, RECEIVED, f"STMT-{n}")
            for n, (customer, amount) in enumerate(zip(batched, amounts, strict=True))
        ],
        actor=agent,
        chunk_size=3,
    )

    assert recorded == len(amounts)
    assert [_ledger_of(c) for c in batched] == [_ledger_of(c) for c in one_by_one]
    # 5.00 part-pays the older invoice; 50.00 pays both and leaves 14.00 of credit.
    assert _ledger_of(batched[0]) == (
        Decimal("31.00"),
        [Decimal("7.00"), Decimal("24.00")],
        [Decimal("0.00")],
    )
    assert _ledger_of(batched[3]) == (
        Decimal("-14.00"),
        [Decimal("0.00"), Decimal("0.00")],
        [Decimal("14.00")],
    )
    payment = Payment.objects.get(customer=batched[1])
    assert payment.reference == "STMT-1"
    assert payment.history.get().history_user_id == agent.pk
    entry = LedgerEntry.objects.get(payment=payment)
    assert AuditEvent.objects.filter(action="ledger.payment", target_id=str(entry.pk)).count() == 1


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"amount": Decimal("0.00")}, "amount", "Payment 2: a payment is more than 0."),
        (
            {"received_on": datetime.date(2026, 7, 1)},
            "received_on",
            "Payment 2: a payment cannot be received",
        ),
        ({"method": "bitcoin"}, "method", "Payment 2: 'bitcoin' is not a payment method."),
        ({"customer_id": 10**9}, "customer", "Payment 2: no such customer."),
        ({"reference": "R" * 61}, "reference", "Payment 2: a reference is at most 60 characters."),
    ],
)
def test_a_bad_payment_is_refused_by_its_position_and_nothing_of_the_batch_is_stored(
    partner, profile, agent, finance, change, field, words
):
    first, second = _accounts(partner, finance, 2)
    good = {"method": Payment.Method.CARD, "amount": Decimal("5.00"), "received_on": RECEIVED}
    batch = [
        PaymentReceived(customer_id=first.pk, **good),
        PaymentReceived(**{"customer_id": second.pk, **good, **change}),
    ]
    entries = LedgerEntry.objects.count()

    with pytest.raises(ValidationError) as refused:
        payments_record_many(payments=batch, actor=agent)

    assert words in refused.value.message_dict[field][0]
    assert Payment.objects.count() == 0
    assert LedgerEntry.objects.count() == entries
    assert PaymentAllocation.objects.count() == 0


def test_recording_payments_needs_the_permission(partner, profile, make_user, finance):
    (customer,) = _accounts(partner, finance, 1)
    support = make_user(Role.SUPPORT_AGENT, email="support.batch@example.com")

    with pytest.raises(PermissionDenied):
        payments_record_many(
            payments=[PaymentReceived(customer.pk, Payment.Method.CARD, Decimal("1.00"), RECEIVED)],
            actor=support,
        )
    assert not Payment.objects.exists()


def test_the_queries_do_not_grow_with_the_batch(partner, profile, agent, finance):
    def queries_for(customers):
        batch = [PaymentReceived(c.pk, Payment.Method.CARD, Decimal("20.00"), RECEIVED) for c in customers]
        with CaptureQueriesContext(connection) as captured:
            payments_record_many(payments=batch, actor=agent, chunk_size=100)
        return len(captured)

    queries_for(_accounts(partner, finance, 1))  # the first also fills the user's permission cache
    assert queries_for(_accounts(partner, finance, 2)) == queries_for(_accounts(partner, finance, 6))
