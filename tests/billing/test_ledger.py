"""The customer account ledger: invoices and credit notes post their entries as they are issued;
payments settle invoices oldest first and leave overpayments as credit the next invoice uses; refunds,
unpaid returns, re-allocations, adjustments and four-eyes write-offs; balances, statements and aged debt
derived from the entries. The invariants are checked for any sequence of these (Hypothesis)."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Customer, Role, User
from billing import selectors
from billing.models import (
    CreditNote,
    ImmutableRowError,
    Invoice,
    LedgerEntry,
    Payment,
    PaymentAllocation,
    WriteOff,
)
from billing.services.credit_notes import credit_note_issue
from billing.services.errors import BillingError
from billing.services.ledger import (
    adjustment_post,
    invoice_outstanding,
    payment_unallocated,
    write_off_approve,
    write_off_reject,
    write_off_request,
)
from billing.services.payments import (
    payment_reallocate,
    payment_record,
    payment_refund,
    payment_reverse_unpaid,
)
from fusion_site.money import vat_on
from tests.billing.factories import billing_profile, finalised_run, issued_invoice, month
from tests.factories import CustomerFactory, full_customer

pytestmark = pytest.mark.frozen_at("2026-06-30T12:00:00+00:00")

TODAY = datetime.date(2026, 6, 30)
CARD = Payment.Method.CARD


def issue_invoice(customer: Customer, net: str, *, issued: datetime.date, actor: User) -> Invoice:
    """A finalised invoice as a bill run leaves it, posted by the finalisation's own ledger step."""
    return issued_invoice(customer, net, issued=issued, actor=actor)


@pytest.fixture
def finance_2(make_user):
    return make_user(Role.FINANCE_MANAGER, email="second.finance@example.com")


@pytest.fixture
def account(partner, profile):
    return full_customer(partner)


def balance(customer: Customer) -> Decimal:
    return selectors.customer_balance(customer)


# Issue, pay, credit: the account as it moves.


def test_a_payment_settles_the_oldest_invoice_first_and_an_overpayment_waits_for_the_next(
    account, agent, finance
):
    older = issue_invoice(account, "10.00", issued=datetime.date(2026, 4, 1), actor=finance)  # gross 12.00
    newer = issue_invoice(account, "20.00", issued=datetime.date(2026, 5, 1), actor=finance)  # gross 24.00

    payment = payment_record(
        customer=account, method=CARD, amount=Decimal("40.00"), received_on=TODAY, actor=agent
    )

    assert [invoice_outstanding(older), invoice_outstanding(newer)] == [Decimal("0.00"), Decimal("0.00")]
    assert payment_unallocated(payment) == Decimal("4.00")
    assert balance(account) == Decimal("-4.00")
    later = issue_invoice(account, "5.00", issued=TODAY, actor=finance)  # gross 6.00
    assert invoice_outstanding(later) == Decimal("2.00")
    assert payment_unallocated(payment) == Decimal("0.00")
    assert balance(account) == Decimal("2.00")
    assert list(selectors.open_invoices(account)) == [later]


def test_a_payment_returned_unpaid_lets_the_credit_left_settle_the_invoice_again(account, agent, finance):
    # Found by the sequence property on PostgreSQL: the invoice stayed open while another payment's credit
    # waited beside it.
    invoice = issue_invoice(account, "10.00", issued=TODAY, actor=finance)  # gross 12.00
    first = payment_record(
        customer=account, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )
    second = payment_record(
        customer=account, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )
    assert payment_unallocated(second) == Decimal("12.00")

    payment_reverse_unpaid(payment=first, reason_code="refer to payer", actor=finance)

    assert invoice_outstanding(invoice) == Decimal("0.00")
    assert payment_unallocated(second) == Decimal("0.00")
    assert balance(account) == Decimal("0.00")


def test_what_was_written_off_cannot_be_credited_as_well(account, agent, finance, finance_2):
    # Found by the sequence property on PostgreSQL: a credit after a write-off left the invoice owing -0.48.
    invoice = issue_invoice(account, "0.40", issued=TODAY, actor=finance)  # gross 0.48
    request = write_off_request(invoice=invoice, amount=Decimal("0.48"), reason="Uncollectable", actor=agent)
    write_off_approve(write_off=request, actor=finance_2)

    with pytest.raises(ValidationError) as refused:
        credit_note_issue(invoice=invoice, actor=finance, reason="Goodwill", net=Decimal("0.40"))

    assert refused.value.message_dict["net"] == [
        "0.48 of this invoice was written off; a credit may take at most 0.00 gross (VAT included) "
        "of what is left."
    ]
    assert invoice_outstanding(invoice) == Decimal("0.00")
    assert balance(account) == Decimal("0.00")
    assert not invoice.credit_notes.exists()


def test_finalising_a_bill_run_posts_every_invoice_and_uses_account_credit(partner, profile, agent, finance):
    from tests.billing.factories import january_charges

    customer = january_charges(full_customer(partner), agent, installation="50.00")
    credit = payment_record(
        customer=customer,
        method=Payment.Method.BANK_TRANSFER,
        amount=Decimal("10.00"),
        received_on=TODAY,
        actor=agent,
    )
    run = finalised_run(partner, month(2025, 1), agent=agent, finance=finance)

    invoice = Invoice.objects.get(bill_run=run, customer=customer)
    entry = LedgerEntry.objects.get(invoice=invoice, kind=LedgerEntry.Kind.INVOICE)
    assert (entry.amount, entry.effective_on, entry.actor) == (invoice.gross, invoice.issue_date, finance)
    assert invoice_outstanding(invoice) == invoice.gross - Decimal("10.00")
    assert payment_unallocated(credit) == Decimal("0.00")
    assert balance(customer) == invoice.gross - Decimal("10.00")


def test_a_credit_note_on_a_paid_invoice_turns_the_excess_into_credit_for_the_next_open_invoice(
    account, agent, finance
):
    paid = issue_invoice(account, "10.00", issued=datetime.date(2026, 4, 1), actor=finance)
    payment = payment_record(
        customer=account, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )
    unpaid = issue_invoice(account, "20.00", issued=datetime.date(2026, 5, 1), actor=finance)

    note = credit_note_issue(invoice=paid, actor=finance, reason="Goodwill", net=Decimal("5.00"))

    assert LedgerEntry.objects.get(credit_note=note).amount == Decimal("-6.00")
    assert invoice_outstanding(paid) == Decimal("0.00")
    assert invoice_outstanding(unpaid) == Decimal("18.00")
    assert payment_unallocated(payment) == Decimal("0.00")
    assert balance(account) == Decimal("18.00")
    # The moved money is reversed and allocated again, never edited.
    reversal = PaymentAllocation.objects.get(payment=payment, amount=Decimal("-12.00"))
    assert reversal.reverses.amount == Decimal("12.00")
    assert "Goodwill" not in reversal.reason and note.number in reversal.reason


def test_an_unpaid_direct_debit_reopens_what_it_settled_and_a_second_report_changes_nothing(
    account, agent, finance
):
    invoice = issue_invoice(account, "10.00", issued=datetime.date(2026, 5, 1), actor=finance)
    payment = payment_record(
        customer=account,
        method=Payment.Method.DIRECT_DEBIT,
        amount=Decimal("12.00"),
        received_on=TODAY,
        actor=agent,
    )
    assert balance(account) == Decimal("0.00")

    first = payment_reverse_unpaid(payment=payment, reason_code="0 refer to payer", actor=finance)
    again = payment_reverse_unpaid(payment=payment, reason_code="0 refer to payer", actor=finance)

    assert first == again
    assert LedgerEntry.objects.filter(kind=LedgerEntry.Kind.UNPAID_REVERSAL).count() == 1
    assert (first.amount, first.reason) == (Decimal("12.00"), "Returned unpaid: 0 refer to payer")
    assert invoice_outstanding(invoice) == Decimal("12.00")
    assert payment_unallocated(payment) == Decimal("0.00")
    assert balance(account) == Decimal("12.00")


def test_a_refund_pays_back_only_unallocated_credit(account, agent, finance):
    issue_invoice(account, "10.00", issued=datetime.date(2026, 5, 1), actor=finance)
    payment = payment_record(
        customer=account, method=CARD, amount=Decimal("20.00"), received_on=TODAY, actor=agent
    )

    with pytest.raises(ValidationError) as refused:
        payment_refund(payment=payment, amount=Decimal("8.01"), reason="Overpaid", actor=finance)
    assert "at most 8.00" in str(refused.value)
    with pytest.raises(PermissionDenied):
        payment_refund(payment=payment, amount=Decimal("8.00"), reason="Overpaid", actor=agent)
    refund = payment_refund(payment=payment, amount=Decimal("8.00"), reason="Overpaid", actor=finance)

    assert refund.amount == Decimal("8.00")
    assert balance(account) == Decimal("0.00")
    with pytest.raises(BillingError, match="refunded"):
        payment_reverse_unpaid(payment=payment, reason_code="cheque bounced", actor=finance)


def test_re_allocation_moves_money_between_invoices_with_who_and_why(account, agent, finance):
    first = issue_invoice(account, "10.00", issued=datetime.date(2026, 4, 1), actor=finance)
    second = issue_invoice(account, "10.00", issued=datetime.date(2026, 5, 1), actor=finance)
    payment = payment_record(
        customer=account, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )
    assert [invoice_outstanding(first), invoice_outstanding(second)] == [Decimal("0.00"), Decimal("12.00")]

    moved = payment_reallocate(
        payment=payment,
        from_invoice=first,
        to_invoice=second,
        amount=Decimal("5.00"),
        reason="Customer's remittance named the May invoice",
        actor=agent,
    )

    assert sorted(row.amount for row in moved) == [Decimal("-12.00"), Decimal("5.00"), Decimal("7.00")]
    assert {row.actor for row in moved} == {agent}
    assert {row.reason for row in moved} == {"Customer's remittance named the May invoice"}
    assert [invoice_outstanding(first), invoice_outstanding(second)] == [Decimal("5.00"), Decimal("7.00")]
    with pytest.raises(ValidationError, match=r"Only 7\.00 of this payment settles that invoice"):
        payment_reallocate(
            payment=payment,
            from_invoice=first,
            to_invoice=second,
            amount=Decimal("7.01"),
            reason="Too much",
            actor=agent,
        )


def test_another_customers_invoice_cannot_take_a_payment(account, partner, agent, finance):
    own = issue_invoice(account, "10.00", issued=datetime.date(2026, 4, 1), actor=finance)
    stranger = issue_invoice(full_customer(partner), "10.00", issued=datetime.date(2026, 4, 1), actor=finance)
    payment = payment_record(
        customer=account, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )

    with pytest.raises(ValidationError, match="its own customer"):
        payment_reallocate(
            payment=payment,
            from_invoice=own,
            to_invoice=stranger,
            amount=Decimal("1.00"),
            reason="x",
            actor=agent,
        )


def test_a_payment_is_positive_and_not_from_the_future(account, agent):
    with pytest.raises(ValidationError, match="more than 0"):
        payment_record(customer=account, method=CARD, amount=Decimal("0"), received_on=TODAY, actor=agent)
    with pytest.raises(ValidationError, match="future"):
        payment_record(
            customer=account,
            method=CARD,
            amount=Decimal("1"),
            received_on=TODAY + datetime.timedelta(days=1),
            actor=agent,
        )
    assert not Payment.objects.exists() and not LedgerEntry.objects.exists()


# Write-offs: four eyes.


def test_a_write_off_needs_a_finance_manager_who_did_not_ask_for_it(account, agent, finance, finance_2):
    invoice = issue_invoice(account, "10.00", issued=datetime.date(2026, 1, 1), actor=finance)
    request = write_off_request(
        invoice=invoice, amount=Decimal("12.00"), reason="Customer deceased", actor=finance
    )
    assert balance(account) == Decimal("12.00")  # asking moves nothing

    with pytest.raises(BillingError, match="Four eyes"):
        write_off_approve(write_off=request, actor=finance)
    with pytest.raises(PermissionDenied):
        write_off_approve(write_off=request, actor=agent)
    approved = write_off_approve(write_off=request, actor=finance_2, reason="Probate confirmed none")

    assert (approved.status, approved.decided_by) == (WriteOff.Status.APPROVED, finance_2)
    entry = LedgerEntry.objects.get(write_off=approved)
    assert (entry.kind, entry.amount, entry.invoice, entry.actor) == (
        "write_off",
        Decimal("-12.00"),
        invoice,
        finance_2,
    )
    assert invoice_outstanding(invoice) == Decimal("0.00") and balance(account) == Decimal("0.00")
    assert [h.history_user for h in approved.history.order_by("history_id")] == [finance, finance_2]
    with pytest.raises(BillingError, match="already approved"):
        write_off_reject(write_off=approved, actor=finance_2, reason="Changed my mind")


def test_the_database_refuses_a_write_off_decided_by_its_requester(account, finance):
    invoice = issue_invoice(account, "10.00", issued=datetime.date(2026, 1, 1), actor=finance)
    request = write_off_request(
        invoice=invoice, amount=Decimal("1.00"), reason="Small balance", actor=finance
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        WriteOff.objects.filter(pk=request.pk).update(
            status=WriteOff.Status.APPROVED, decided_by=finance, decided_at=request.requested_at
        )


def test_a_write_off_paid_meanwhile_is_refused_and_a_rejection_posts_nothing(
    account, agent, finance, finance_2
):
    invoice = issue_invoice(account, "10.00", issued=datetime.date(2026, 1, 1), actor=finance)
    request = write_off_request(invoice=invoice, amount=Decimal("12.00"), reason="Gone away", actor=agent)
    payment_record(customer=account, method=CARD, amount=Decimal("5.00"), received_on=TODAY, actor=agent)

    with pytest.raises(BillingError, match=r"Only 7\.00 is outstanding"):
        write_off_approve(write_off=request, actor=finance)
    rejected = write_off_reject(write_off=request, actor=finance_2, reason="Customer is paying")

    assert rejected.status == WriteOff.Status.REJECTED
    assert not LedgerEntry.objects.filter(kind=LedgerEntry.Kind.WRITE_OFF).exists()
    with pytest.raises(ValidationError, match=r"at most 7\.00"):
        write_off_request(invoice=invoice, amount=Decimal("7.01"), reason="Gone away", actor=agent)


# Immutability.


def test_entries_and_allocations_are_never_changed_or_deleted(account, agent, finance):
    issue_invoice(account, "10.00", issued=datetime.date(2026, 5, 1), actor=finance)
    payment_record(customer=account, method=CARD, amount=Decimal("5.00"), received_on=TODAY, actor=agent)
    entry = LedgerEntry.objects.filter(kind=LedgerEntry.Kind.PAYMENT).get()
    allocation = PaymentAllocation.objects.get()

    entry.amount = Decimal("-500.00")
    with pytest.raises(ImmutableRowError):
        entry.save()
    with pytest.raises(ImmutableRowError):
        LedgerEntry.objects.filter(pk=entry.pk).update(amount=Decimal("-1.00"))
    with pytest.raises(ImmutableRowError):
        entry.delete()
    with pytest.raises(ImmutableRowError):
        LedgerEntry.objects.all().delete()
    allocation.amount = Decimal("1.00")
    with pytest.raises(ImmutableRowError):
        allocation.save()
    with pytest.raises(ImmutableRowError):
        PaymentAllocation.objects.update(amount=Decimal("1.00"))
    assert LedgerEntry.objects.get(pk=entry.pk).amount == Decimal("-5.00")


def test_an_adjustment_needs_a_reason_and_the_permission(account, agent, finance):
    with pytest.raises(PermissionDenied):
        adjustment_post(customer=account, amount=Decimal("1.00"), reason="Late fee", actor=agent)
    with pytest.raises(ValidationError, match="why"):
        adjustment_post(customer=account, amount=Decimal("1.00"), reason=" ", actor=finance)
    adjustment_post(
        customer=account, amount=Decimal("-2.50"), reason="Goodwill for the outage", actor=finance
    )
    assert balance(account) == Decimal("-2.50")


# Statement and aged debt.


def test_the_statement_gives_the_running_balance_in_one_query(
    account, agent, finance, django_assert_num_queries
):
    issue_invoice(account, "10.00", issued=datetime.date(2026, 4, 1), actor=finance)
    payment_record(
        customer=account,
        method=CARD,
        amount=Decimal("5.00"),
        received_on=datetime.date(2026, 4, 20),
        actor=agent,
    )
    issue_invoice(account, "20.00", issued=datetime.date(2026, 5, 1), actor=finance)

    with django_assert_num_queries(1):
        lines = selectors.customer_statement(account)

    assert [(line.entry.kind, line.entry.amount, line.balance) for line in lines] == [
        ("invoice", Decimal("12.00"), Decimal("12.00")),
        ("payment", Decimal("-5.00"), Decimal("7.00")),
        ("invoice", Decimal("24.00"), Decimal("31.00")),
    ]


def test_aged_debt_buckets_by_days_past_due_in_constant_queries(
    partner, profile, other_partner, agent, finance, make_user, django_assert_num_queries
):
    billing_profile(other_partner)
    customer = full_customer(partner)
    # Due 14 days after issue; on 30 June: due 30 June (current), due 29 June (1 day), due 31 May (30 days),
    # due 30 May (31), due 1 April (90), due 31 March (91).
    for issued in ["2026-06-16", "2026-06-15", "2026-05-17", "2026-05-16", "2026-03-18", "2026-03-17"]:
        issue_invoice(customer, "10.00", issued=datetime.date.fromisoformat(issued), actor=finance)
    paid = issue_invoice(customer, "10.00", issued=datetime.date(2026, 1, 1), actor=finance)
    payment = payment_record(
        customer=customer, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )
    assert PaymentAllocation.objects.get(payment=payment).invoice == paid
    issue_invoice(full_customer(other_partner), "99.00", issued=datetime.date(2026, 6, 1), actor=finance)
    admin = make_user(Role.ADMINISTRATOR)
    for user in (agent, admin):  # their permissions are read once per request, not per report
        user.get_all_permissions()

    with django_assert_num_queries(2):
        own = selectors.aged_debt(agent, as_of=TODAY)
    with django_assert_num_queries(2):
        everyone = selectors.aged_debt(admin, as_of=TODAY)

    assert [row.partner for row in own] == [partner]
    assert own[0].buckets == {
        "current": Decimal("12.00"),
        "days_1_30": Decimal("24.00"),
        "days_31_60": Decimal("12.00"),
        "days_61_90": Decimal("12.00"),
        "over_90": Decimal("12.00"),
    }
    assert own[0].total == Decimal("72.00")
    assert {row.partner for row in everyone} == {partner, other_partner}


def test_another_partners_account_is_not_found(partner, other_partner, profile, agent, make_user):
    from django.http import Http404

    stranger = full_customer(other_partner)
    own = full_customer(partner)
    portal = make_user(Role.CUSTOMER, customer=own)

    assert selectors.access_account(agent, own.reference) == own
    assert selectors.access_account(portal, own.reference) == own
    for user, reference in [(agent, stranger.reference), (portal, full_customer(partner).reference)]:
        with pytest.raises(Http404):
            selectors.access_account(user, reference)


# The opening entries of invoices issued before the ledger.


def test_the_data_migration_posts_issued_invoices_and_credit_notes_once_and_reverses(account, finance):
    import importlib

    migration = importlib.import_module("billing.migrations.0011_ledger_opening_entries")
    invoice = issue_invoice(account, "10.00", issued=datetime.date(2026, 5, 1), actor=finance)
    credit_note_issue(invoice=invoice, actor=finance, reason="Billed twice", net=Decimal("2.00"))
    LedgerEntry.objects.filter(pk__in=LedgerEntry.objects.values("pk"))._raw_delete(connection.alias)

    migration.post_opening_entries(django_apps, connection.schema_editor())

    assert sorted((e.kind, e.amount) for e in LedgerEntry.objects.all()) == [
        ("credit_note", Decimal("-2.40")),
        ("invoice", Decimal("12.00")),
    ]
    assert balance(account) == Decimal("9.60")
    migration.remove_opening_entries(django_apps, connection.schema_editor())
    assert not LedgerEntry.objects.exists()


# Any sequence of money movements keeps the ledger's invariants.


@dataclass
class Expected:
    """What the account should owe, computed from the operations alone (not from the ledger)."""

    balance: Decimal = Decimal("0.00")
    invoices: list[Invoice] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)


amounts = st.integers(min_value=1, max_value=50_000).map(lambda pence: Decimal(pence) / 100)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), amounts),
        st.tuples(st.just("payment"), amounts),
        st.tuples(st.just("credit"), st.integers(0, 20), amounts),
        st.tuples(st.just("refund"), st.integers(0, 20), amounts),
        st.tuples(st.just("reverse"), st.integers(0, 20)),
        st.tuples(st.just("write_off"), st.integers(0, 20), amounts),
        st.tuples(st.just("reallocate"), st.integers(0, 20), st.integers(0, 20), amounts),
        st.tuples(st.just("adjust"), amounts, st.booleans()),
    ),
    max_size=14,
)


def _apply(
    op: tuple, customer: Customer, expected: Expected, agent: User, finance: User, approver: User
) -> None:
    kind = op[0]
    if kind == "invoice":
        invoice = issue_invoice(customer, str(op[1]), issued=TODAY, actor=finance)
        expected.invoices.append(invoice)
        expected.balance += invoice.gross
    elif kind == "payment":
        expected.payments.append(
            payment_record(customer=customer, method=CARD, amount=op[1], received_on=TODAY, actor=agent)
        )
        expected.balance -= op[1]
    elif kind == "credit" and expected.invoices:
        invoice = expected.invoices[op[1] % len(expected.invoices)]
        remaining = invoice.net - sum((n.net for n in invoice.credit_notes.all()), Decimal("0"))
        written_off = sum((w.amount for w in invoice.write_offs.filter(status="approved")), Decimal("0"))
        creditable = (
            invoice.gross - sum((n.gross for n in invoice.credit_notes.all()), Decimal("0")) - written_off
        )
        if remaining > 0:
            net = min(op[2], remaining)
            gross = net + (invoice.vat - sum((n.vat for n in invoice.credit_notes.all()), Decimal("0"))
                           if net == remaining else vat_on(net, invoice.vat_rate))  # fmt: skip
            if written_off and gross > creditable:
                # What was written off cannot be credited too: refused, and nothing moves.
                with pytest.raises(ValidationError, match="written off"):
                    credit_note_issue(invoice=invoice, actor=finance, reason="Credit", net=net)
                return
            note = credit_note_issue(invoice=invoice, actor=finance, reason="Credit", net=net)
            expected.balance -= note.gross
    elif kind == "refund" and expected.payments:
        payment = expected.payments[op[1] % len(expected.payments)]
        available = payment_unallocated(payment)
        if available > 0 and not payment.ledger_entries.filter(kind="unpaid_reversal").exists():
            payment_refund(payment=payment, amount=min(op[2], available), reason="Refund", actor=finance)
            expected.balance += min(op[2], available)
    elif kind == "reverse" and expected.payments:
        payment = expected.payments[op[1] % len(expected.payments)]
        if not payment.ledger_entries.filter(kind__in=["refund", "unpaid_reversal"]).exists():
            payment_reverse_unpaid(payment=payment, reason_code="refer to payer", actor=finance)
            expected.balance += payment.amount
    elif kind == "write_off" and expected.invoices:
        invoice = expected.invoices[op[1] % len(expected.invoices)]
        outstanding = invoice_outstanding(invoice)
        if outstanding > 0:
            amount = min(op[2], outstanding)
            request = write_off_request(invoice=invoice, amount=amount, reason="Uncollectable", actor=agent)
            write_off_approve(write_off=request, actor=approver)
            expected.balance -= amount
    elif kind == "reallocate" and expected.payments and len(expected.invoices) > 1:
        payment = expected.payments[op[1] % len(expected.payments)]
        target = expected.invoices[op[2] % len(expected.invoices)]
        settled = PaymentAllocation.objects.filter(payment=payment).exclude(invoice=target)
        source = next((a.invoice for a in settled if sum_on(payment, a.invoice) > 0), None)
        if source is not None:
            amount = min(op[3], sum_on(payment, source), invoice_outstanding(target))
            if amount > 0:
                payment_reallocate(
                    payment=payment,
                    from_invoice=source,
                    to_invoice=target,
                    amount=amount,
                    reason="Moved",
                    actor=agent,
                )
    elif kind == "adjust":
        amount = op[1] if op[2] else -op[1]
        adjustment_post(customer=customer, amount=amount, reason="Correction", actor=finance)
        expected.balance += amount


def sum_on(payment: Payment, invoice: Invoice) -> Decimal:
    return sum(
        (a.amount for a in PaymentAllocation.objects.filter(payment=payment, invoice=invoice)), Decimal("0")
    )


def _check_invariants(customer: Customer, expected: Expected) -> None:
    entries = list(LedgerEntry.objects.filter(customer=customer))
    ledger_sum = sum((e.amount for e in entries), Decimal("0.00"))
    assert selectors.customer_balance(customer) == ledger_sum == expected.balance
    total_outstanding = Decimal("0.00")
    for invoice in expected.invoices:
        outstanding = invoice_outstanding(invoice)
        assert Decimal("0.00") <= outstanding <= invoice.gross, (invoice.gross, outstanding)
        credited = sum((n.gross for n in CreditNote.objects.filter(invoice=invoice)), Decimal("0"))
        written_off = sum(
            (w.amount for w in WriteOff.objects.filter(invoice=invoice, status="approved")), Decimal("0")
        )
        settled = sum((a.amount for a in PaymentAllocation.objects.filter(invoice=invoice)), Decimal("0"))
        assert outstanding == invoice.gross - credited - written_off - settled
        # The cached amount the readers use says what the entries say.
        assert Invoice.objects.get(pk=invoice.pk).amount_outstanding == outstanding
        total_outstanding += outstanding
    total_credit = Decimal("0.00")
    for payment in expected.payments:
        allocated = sum((a.amount for a in payment.allocations.all()), Decimal("0"))
        refunded = sum((e.amount for e in payment.ledger_entries.filter(kind="refund")), Decimal("0"))
        returned = payment.ledger_entries.filter(kind="unpaid_reversal").exists()
        assert Decimal("0") <= allocated <= payment.amount - refunded
        if returned:
            assert allocated == 0
        credit = payment_unallocated(payment)
        assert credit == (Decimal("0.00") if returned else payment.amount - allocated - refunded)
        assert Payment.objects.get(pk=payment.pk).amount_unallocated == credit
        total_credit += credit
    adjustments = sum((e.amount for e in entries if e.kind == "adjustment"), Decimal("0.00"))
    # What the account owes is what its invoices still owe, less its unused credit, plus adjustments.
    assert expected.balance == total_outstanding - total_credit + adjustments
    # Credit never waits while an invoice of the account is open (oldest first, used at issue).
    assert total_credit == 0 or total_outstanding == 0
    statement = selectors.customer_statement(customer)
    assert (statement[-1].balance if statement else Decimal("0.00")) == expected.balance


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=operations)
def test_any_sequence_of_movements_keeps_the_ledger_invariants(
    steps, partner, profile, agent, finance, finance_2
):
    with transaction.atomic():
        customer = CustomerFactory(partner=partner)
        expected = Expected()
        for step in steps:
            _apply(step, customer, expected, agent, finance, finance_2)
            _check_invariants(customer, expected)
        transaction.set_rollback(True)


def test_the_property_sees_a_broken_rule(account, agent, finance):
    """The invariant check fails on a ledger that breaks a rule (an allocation beyond the invoice)."""
    invoice = issue_invoice(account, "10.00", issued=TODAY, actor=finance)
    payment = payment_record(
        customer=account, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent
    )
    PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal("1.00"))

    with pytest.raises(AssertionError):
        _check_invariants(account, Expected(balance=Decimal("0.00"), invoices=[invoice], payments=[payment]))


def test_the_property_sees_a_stale_cached_amount(account, agent, finance):
    """The invariant check fails when a row is written around the ledger's services, so the cached
    outstanding amount no longer says what the entries say (here: a payment entry but no allocation
    refresh)."""
    invoice = issue_invoice(account, "10.00", issued=TODAY, actor=finance)
    payment = payment_record(
        customer=account, method=CARD, amount=Decimal("12.00"), received_on=TODAY, actor=agent, allocate=False
    )
    PaymentAllocation.objects.create(payment=payment, invoice=invoice, amount=Decimal("12.00"))
    assert Invoice.objects.get(pk=invoice.pk).amount_outstanding == Decimal("12.00")

    with pytest.raises(AssertionError):
        _check_invariants(account, Expected(balance=Decimal("0.00"), invoices=[invoice], payments=[payment]))


LEDGER_WRITER = "billing/services/ledger.py"
LEDGER_ROWS = {"LedgerEntry", "PaymentAllocation"}
WRITES = {"create", "bulk_create", "get_or_create", "update_or_create", "save"}


def ledger_writes_outside_the_ledger(sources: dict[str, str]) -> list[str]:
    """Where a ledger entry or an allocation is written other than by the ledger module (which keeps the
    cached amounts in line): ``LedgerEntry.objects.create(...)``, ``PaymentAllocation(...).save()``."""
    import ast

    found = []
    for path, text in sources.items():
        if path == LEDGER_WRITER:
            continue
        for node in ast.walk(ast.parse(text)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr not in WRITES:
                continue
            receiver = node.func.value
            if isinstance(receiver, ast.Attribute) and receiver.attr == "objects":
                receiver = receiver.value
            elif isinstance(receiver, ast.Call):
                receiver = receiver.func
            if isinstance(receiver, ast.Name) and receiver.id in LEDGER_ROWS:
                found.append(f"{path}:{node.lineno}")
    return found


def test_only_the_ledger_module_writes_entries_and_allocations():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sources = {
        str(path.relative_to(root)): path.read_text()
        for app in ("accounts", "billing", "privacy", "fusion_site")
        for path in (root / app).rglob("*.py")
        if "migrations" not in path.parts
    }
    assert LEDGER_WRITER in sources
    assert ledger_writes_outside_the_ledger(sources) == []
    # The check finds each way of writing around the ledger.
    assert ledger_writes_outside_the_ledger(
        {
            "billing/a.py": "LedgerEntry.objects.create(amount=1)",
            "billing/b.py": "PaymentAllocation(amount=1).save()",
            "billing/c.py": "PaymentAllocation.objects.bulk_create(rows)",
        }
    ) == ["billing/a.py:1", "billing/b.py:1", "billing/c.py:1"]
