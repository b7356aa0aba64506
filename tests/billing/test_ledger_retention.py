"""The retention job and the ledger: a settled invoice six years old goes with its entries, allocations,
write-offs and the payments that settled it, and no balance changes; an invoice still owed, or settled by a
payment that also settles something kept, stays."""

import datetime
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import selectors
from billing.models import Invoice, LedgerEntry, Payment, PaymentAllocation, WriteOff
from billing.services.credit_notes import credit_note_issue
from billing.services.ledger import (
    invoice_outstanding,
    payment_unallocated,
    write_off_approve,
    write_off_request,
)
from billing.services.payments import payment_record
from privacy.services.retention import retention_run
from tests.billing.test_ledger import issue_invoice
from tests.factories import full_customer

pytestmark = pytest.mark.frozen_at("2026-06-30T12:00:00+00:00")

TODAY = datetime.date(2026, 6, 30)  # the invoices' six years reach back to 30 June 2020
OLD = datetime.date(2020, 3, 1)
OLDER = datetime.date(2020, 2, 1)
NEW = datetime.date(2026, 5, 1)
TRANSFER = Payment.Method.BANK_TRANSFER


@pytest.fixture
def account(partner, profile):
    return full_customer(partner)


def pay(customer, amount: str, on: datetime.date, actor) -> Payment:
    return payment_record(
        customer=customer, method=TRANSFER, amount=Decimal(amount), received_on=on, actor=actor
    )


def exists(row) -> bool:
    return type(row).objects.filter(pk=row.pk).exists()


def test_an_old_settled_invoice_goes_with_its_payment_and_the_balance_stays(account, agent, finance):
    old = issue_invoice(account, "10.00", issued=OLD, actor=finance)  # gross 12.00
    paid = pay(account, "12.00", datetime.date(2020, 3, 20), agent)
    new = issue_invoice(account, "20.00", issued=NEW, actor=finance)  # gross 24.00, open
    before = selectors.customer_balance(account)
    assert before == Decimal("24.00")

    run = retention_run(today=TODAY)

    assert selectors.customer_balance(account) == before
    assert not exists(old) and not exists(paid) and not Payment.history.filter(id=paid.pk).exists()
    assert not PaymentAllocation.objects.filter(payment_id=paid.pk).exists()
    assert list(LedgerEntry.objects.filter(customer=account).values_list("kind", "invoice_id")) == [
        ("invoice", new.pk)
    ]
    assert invoice_outstanding(new) == Decimal("24.00")
    assert run.counts["invoices"]["billing.Invoice"] == 1
    assert run.counts["invoices"]["billing.Payment"] == 1
    assert run.counts["invoices"]["billing.LedgerEntry"] == 2


def test_an_old_invoice_still_owed_is_kept(account, agent, finance):
    owed = issue_invoice(account, "10.00", issued=OLD, actor=finance)
    pay(account, "5.00", datetime.date(2020, 3, 20), agent)

    retention_run(today=TODAY)

    assert exists(owed) and invoice_outstanding(owed) == Decimal("7.00")
    assert selectors.customer_balance(account) == Decimal("7.00")


def test_a_written_off_invoice_goes_with_its_write_off(account, agent, finance, make_user):
    from accounts.models import Role

    approver = make_user(Role.FINANCE_MANAGER, email="second.finance@example.com")
    old = issue_invoice(account, "10.00", issued=OLD, actor=finance)
    pay(account, "2.00", datetime.date(2020, 3, 20), agent)
    write_off = write_off_request(invoice=old, amount=Decimal("10.00"), reason="Uneconomic", actor=finance)
    write_off_approve(write_off=write_off, actor=approver)
    assert selectors.customer_balance(account) == Decimal("0.00")

    retention_run(today=TODAY)  # the invoice is six years old, the write-off (posted today) is not
    assert exists(old) and exists(write_off)
    retention_run(today=datetime.date(2032, 6, 30))

    assert not exists(old) and not WriteOff.objects.exists() and not WriteOff.history.exists()
    assert not LedgerEntry.objects.filter(customer=account).exists()
    assert selectors.customer_balance(account) == Decimal("0.00")


def test_a_payment_that_also_settles_a_kept_invoice_keeps_every_invoice_tied_to_it(account, agent, finance):
    older = issue_invoice(account, "10.00", issued=OLDER, actor=finance)  # gross 12.00
    old = issue_invoice(account, "10.00", issued=OLD, actor=finance)  # gross 12.00
    first = pay(account, "18.00", datetime.date(2020, 3, 20), agent)  # older, and half of old
    newer = issue_invoice(account, "20.00", issued=NEW, actor=finance)  # gross 24.00
    second = pay(account, "10.00", TODAY, agent)  # the rest of old, and part of the new invoice
    assert [invoice_outstanding(i) for i in (older, old, newer)] == [0, 0, Decimal("20.00")]
    before = selectors.customer_balance(account)

    retention_run(today=TODAY)

    # ``older`` shares ``first`` with ``old``, which shares ``second`` with the invoice kept: all stay.
    assert all(exists(row) for row in (older, old, newer, first, second))
    assert selectors.customer_balance(account) == before == Decimal("20.00")
    # Once the new invoice is six years old and paid, the whole group goes together.
    pay(account, "20.00", TODAY, agent)
    retention_run(today=datetime.date(2032, 6, 29))  # the payments of today are not six years old yet
    assert Invoice.objects.filter(customer=account).count() == 3
    retention_run(today=datetime.date(2032, 6, 30))
    assert not Invoice.objects.filter(customer=account).exists() and not Payment.objects.exists()
    assert selectors.customer_balance(account) == Decimal("0.00")


def test_a_payment_with_account_credit_left_keeps_the_invoice_it_settled(account, agent, finance):
    old = issue_invoice(account, "10.00", issued=OLD, actor=finance)
    credit = pay(account, "15.00", datetime.date(2020, 3, 20), agent)  # 3.00 left as credit

    retention_run(today=TODAY)

    assert exists(old) and exists(credit)
    assert selectors.customer_balance(account) == Decimal("-3.00")


# For any history of invoices, payments and credit notes, the purge removes only whole settled groups.

START = datetime.date(2019, 6, 1)
movements = st.lists(
    st.tuples(
        st.sampled_from(["invoice", "pay", "credit"]),
        st.integers(min_value=1, max_value=60).map(lambda pounds: Decimal(pounds)),
        st.integers(min_value=0, max_value=120),  # days after the previous movement
    ),
    min_size=1,
    max_size=12,
)


def _snapshot(customer) -> tuple[Decimal, dict[int, Decimal], dict[int, Decimal]]:
    invoices = {i.pk: invoice_outstanding(i) for i in Invoice.objects.filter(customer=customer)}
    payments = {p.pk: payment_unallocated(p) for p in Payment.objects.filter(customer=customer)}
    return selectors.customer_balance(customer), invoices, payments


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=movements)
def test_the_purge_never_changes_a_balance_or_what_stays(steps, partner, profile, agent, finance):
    with transaction.atomic():
        customer = full_customer(partner)
        day = START
        for kind, amount, gap in steps:
            day += datetime.timedelta(days=gap)
            if kind == "invoice":
                issue_invoice(customer, str(amount), issued=day, actor=finance)
            elif kind == "pay":
                pay(customer, str(amount), day, agent)
            else:
                open_invoice = selectors.open_invoices(customer).first()
                if open_invoice is not None and open_invoice.amount_outstanding >= amount * Decimal("1.2"):
                    note = credit_note_issue(
                        invoice=open_invoice, actor=finance, reason="Goodwill", net=amount
                    )
                    assert note is not None
        balance, invoices, payments = _snapshot(customer)
        issued: dict[int, datetime.date] = dict(
            Invoice.objects.filter(customer=customer, issue_date__isnull=False).values_list(
                "pk", "issue_date"
            )
        )

        retention_run(today=TODAY)

        after_balance, after_invoices, after_payments = _snapshot(customer)
        assert after_balance == balance
        # What stays is unchanged; what went was settled and six years old, and went with its payments.
        assert {pk: invoices[pk] for pk in after_invoices} == after_invoices
        assert {pk: payments[pk] for pk in after_payments} == after_payments
        gone = set(invoices) - set(after_invoices)
        assert all(invoices[pk] == 0 for pk in gone)
        assert not LedgerEntry.objects.filter(invoice_id__in=gone).exists()
        for pk in gone:
            assert not PaymentAllocation.objects.filter(invoice_id=pk).exists()
        assert all(issued[pk] <= datetime.date(2020, 6, 30) for pk in gone)
        transaction.set_rollback(True)


def test_an_old_settled_invoice_goes_with_the_dunning_steps_it_once_needed(account, agent, finance):
    from billing.models import DunningAction
    from billing.services.dunning import dunning_steps_ensure

    old = issue_invoice(account, "10.00", issued=OLD, actor=finance)  # gross 12.00
    dunning_steps_ensure(actor=None, partner_ids=[account.partner_id])
    step = account.partner.dunning_steps.order_by("days_overdue").first()
    reminder = DunningAction.objects.create(
        customer=account,
        step=step,
        kind=step.kind,
        days_overdue=step.days_overdue,
        due_on=OLD + datetime.timedelta(days=14),
        invoice=old,
        overdue_amount=Decimal("12.00"),
        outcome=DunningAction.Outcome.SENT,
        taken_at=datetime.datetime(2020, 3, 22, 9, tzinfo=datetime.UTC),
    )
    pay(account, "12.00", datetime.date(2020, 3, 25), agent)
    kept = issue_invoice(account, "20.00", issued=NEW, actor=finance)

    run = retention_run(today=TODAY)

    assert not exists(old) and not exists(reminder)
    assert exists(kept) and selectors.customer_balance(account) == Decimal("24.00")
    assert run.counts["invoices"]["billing.DunningAction"] == 1


# Money on no invoice: account credit, its refunds and returns, adjustments (policy "ledger").


def test_old_money_on_no_invoice_that_sums_to_nothing_goes_and_the_balance_stays(
    partner, profile, account, agent, finance
):
    from billing.services.ledger import adjustment_post
    from billing.services.payments import payment_refund

    # Account credit paid in and refunded, and an adjustment corrected by another, all over 6 years old.
    credit = pay(account, "20.00", OLD, agent)
    payment_refund(payment=credit, amount=Decimal("20.00"), reason="Left", actor=finance, refunded_on=OLD)
    adjustment_post(customer=account, amount=Decimal("5.00"), reason="Fee", actor=finance, effective_on=OLDER)
    adjustment_post(
        customer=account, amount=Decimal("-5.00"), reason="Fee waived", actor=finance, effective_on=OLD
    )
    # Another customer's credit still owed to them stays, however old; a third's is too young to go.
    creditor = full_customer(partner)
    owed = pay(creditor, "15.00", OLD, agent)
    recent = full_customer(partner)
    young = pay(recent, "9.00", OLD, agent)
    payment_refund(
        payment=young,
        amount=Decimal("9.00"),
        reason="Left",
        actor=finance,
        refunded_on=datetime.date(2021, 1, 4),
    )
    balances = {c.pk: selectors.customer_balance(c) for c in (account, creditor, recent)}

    run = retention_run(today=TODAY)

    assert run.counts["ledger"] == {"billing.LedgerEntry": 4, "billing.Payment": 1}
    assert not LedgerEntry.objects.filter(customer=account).exists()
    assert not exists(credit) and not Payment.history.filter(id=credit.pk).exists()
    assert exists(owed) and exists(young)
    assert LedgerEntry.objects.filter(customer=recent).count() == 2
    assert {c.pk: selectors.customer_balance(c) for c in (account, creditor, recent)} == balances
    assert balances[creditor.pk] == Decimal("-15.00")
    assert "ledger" not in retention_run(today=TODAY + datetime.timedelta(days=1)).counts


def test_money_on_no_invoice_is_kept_beside_the_invoices_it_does_not_touch(account, agent, finance):
    """A payment that settled an invoice is the invoice purge's (with it, or not at all), never this one's."""
    invoice = issue_invoice(account, "10.00", issued=OLD, actor=finance)  # gross 12.00, settled below
    settling = pay(account, "12.00", datetime.date(2020, 3, 20), agent)
    new = issue_invoice(account, "20.00", issued=NEW, actor=finance)

    run = retention_run(today=TODAY)

    assert "billing.Payment" not in run.counts.get("ledger", {})
    assert not exists(invoice) and not exists(settling)  # gone with its invoice (policy invoices)
    assert exists(new) and selectors.customer_balance(account) == Decimal("24.00")
