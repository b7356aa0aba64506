"""Bill runs through the services, as the pages drive them: calculate (in chunk tasks), review, approve,
finalise with gapless numbers; skipped customers, restrictions, resuming a crash, credit notes and
resuming billing after an objection."""

import datetime
import functools
import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from accounts import services as accounts_services
from accounts.models import Customer, Partner, Role, User
from billing import calculation, tasks
from billing.demo import uk_tariff
from billing.models import (
    BilledCall,
    BillRun,
    BillRunChunk,
    BillRunEvent,
    BillRunException,
    CallRecord,
    CreditNote,
    Invoice,
    PartnerBillingProfile,
)
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_calculate_chunk,
    bill_run_cancel,
    bill_run_create,
    bill_run_finalise,
    bill_run_lift_restriction,
    bill_run_restrict,
    bill_run_resume_calculation,
    bill_run_start_calculation,
)
from billing.services.billing_cease import BackBillPolicy, customer_lift_billing_cease
from billing.services.charges import one_off_charge_create
from billing.services.credit_notes import credit_note_issue
from billing.services.errors import BillingError
from billing.services.tariffs import customer_set_tariff
from tests.billing.factories import (
    UK_TIME,
    Call,
    billing_profile,
    calculated_run,
    cli_of,
    finalised_run,
    import_calls,
    january_charges,
    month,
    run_on_commit,
    uk,
)
from tests.factories import SiteFactory, UserFactory, full_customer

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

JANUARY, FEBRUARY, MARCH, APRIL = (month(2025, n) for n in (1, 2, 3, 4))


def _billable_customer(partner: Partner, agent: User, *, amount: str = "100.00", calls: int = 2) -> Customer:
    """A customer with a one-off charge, a rental and some calls in January 2025."""
    customer = january_charges(full_customer(partner), agent, installation=amount)
    import_calls(
        partner,
        [
            Call(cli=cli_of(customer), duration=str(61 * (n + 1)), start_time="2025-01-20T10:00")
            for n in range(calls)
        ],
    )
    return customer


def _events(bill_run: BillRun) -> list[str]:
    return list(bill_run.events.values_list("action", flat=True))


def _numbers(partner: Partner) -> list[int | None]:
    numbered = Invoice.objects.filter(partner=partner, sequence__isnull=False).order_by("sequence")
    return list(numbered.values_list("sequence", flat=True))


# Skipped customers -------------------------------------------------------------------------------


def _cease_billing(customer: Customer, actor: User, reason: str, at: datetime.datetime | None = None) -> None:
    customer.billing_ceased_at = at or timezone.now()
    customer.billing_ceased_by = actor
    customer.billing_ceased_reason = reason
    customer.full_clean()
    customer.save()


def _restrict_processing(customer: Customer, actor: User, reason: str) -> None:
    accounts_services.customer_restrict_processing(customer=customer, actor=actor, reason=reason)


@pytest.mark.parametrize(
    ("hold", "kind"),
    [
        (_cease_billing, BillRunException.Kind.BILLING_CEASED),
        (_restrict_processing, BillRunException.Kind.PROCESSING_RESTRICTED),
    ],
    ids=["billing-ceased", "processing-restricted"],
)
def test_held_customers_are_skipped_listed_with_the_reason_and_get_no_invoice(
    partner, profile, agent, dpo, hold, kind
):
    billed = _billable_customer(partner, agent)
    held = _billable_customer(partner, agent)
    hold(held, dpo, "Objection received by letter 3 Feb 2025")

    bill_run = calculated_run(partner, JANUARY, actor=agent)

    assert list(bill_run.invoices.values_list("customer_id", flat=True)) == [billed.pk]
    skipped = bill_run.exceptions.get(customer=held)
    assert (skipped.kind, skipped.detail) == (kind, "Objection received by letter 3 Feb 2025")
    assert not CallRecord.objects.filter(customer=held, billing__isnull=False).exists()
    assert not held.one_off_charges.exclude(invoice=None).exists()

    with run_on_commit():
        bill_run_start_calculation(bill_run=bill_run, actor=agent)

    assert bill_run.exceptions.filter(customer=held).count() == 1, "recalculation lists it once"
    assert bill_run.invoices.count() == 1


def test_the_checks_before_calculation_list_customers_without_a_tariff_and_calls_in_suspense(partner, agent):
    billing_profile(partner, default_tariff=None)
    on_tariff, without = full_customer(partner), full_customer(partner)
    customer_set_tariff(customer=on_tariff, tariff=uk_tariff(), actor=agent)
    import_calls(
        partner,
        [
            Call(cli=cli_of(without)),  # no tariff anywhere
            Call(cli=cli_of(on_tariff), dialled_number="05001234567"),  # no rate
            Call(cli="020 7946 0123"),  # no line
            Call(cli="020 7946 0124"),
            Call(cli=cli_of(on_tariff), start_time="2025-02-10T10:00"),  # after the period: not counted
        ],
    )

    bill_run = calculated_run(partner, JANUARY, actor=agent)

    found = {(e.kind, e.customer_id, e.count) for e in bill_run.exceptions.all()}
    assert found == {
        (BillRunException.Kind.NO_TARIFF, without.pk, 1),
        (BillRunException.Kind.SUSPENSE_CALLS, without.pk, 1),
        (BillRunException.Kind.SUSPENSE_CALLS, on_tariff.pk, 1),
        (BillRunException.Kind.UNKNOWN_CLI_CALLS, None, 2),
    }


# Restricted runs -------------------------------------------------------------------------------


def _to_state(partner, agent, finance, state: str) -> BillRun:
    """A run ready for ``state``: draft to calculate, calculated to approve, approved to finalise."""
    if state == "calculate":
        return bill_run_create(partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent)
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    if state == "finalise":
        bill_run_approve(bill_run=bill_run, actor=finance)
        bill_run.refresh_from_db()
    return bill_run


def _step(action: str, bill_run: BillRun, agent: User, finance: User) -> BillRun:
    with run_on_commit():
        if action == "calculate":
            bill_run_start_calculation(bill_run=bill_run, actor=agent)
        elif action == "approve":
            bill_run_approve(bill_run=bill_run, actor=finance)
        else:
            bill_run_finalise(bill_run=bill_run, actor=finance)
    bill_run.refresh_from_db()
    return bill_run


AFTER = {"calculate": BillRun.Status.CALCULATED, "approve": BillRun.Status.APPROVED, "finalise": "finalised"}


@pytest.mark.parametrize("action", ["calculate", "approve", "finalise"])
def test_a_restricted_run_refuses_the_step_until_the_restriction_is_lifted(
    partner, profile, agent, finance, dpo, action
):
    _billable_customer(partner, agent)
    bill_run = _to_state(partner, agent, finance, action)
    status_before = bill_run.status
    bill_run_restrict(bill_run=bill_run, actor=dpo, reason="Complaint under investigation")

    with pytest.raises(BillingError, match=r"restricted \(Complaint under investigation\)"):
        _step(action, bill_run, agent, finance)

    bill_run.refresh_from_db()
    assert bill_run.status == status_before
    assert not Invoice.objects.filter(status=Invoice.Status.FINALISED).exists()

    bill_run_lift_restriction(bill_run=bill_run, actor=dpo, reason="Resolved")
    bill_run = _step(action, bill_run, agent, finance)

    assert bill_run.status == AFTER[action]
    assert not bill_run.is_restricted
    assert {"restricted", "restriction lifted"} <= set(_events(bill_run))


@pytest.mark.parametrize("action", ["calculate", "approve", "finalise"])
def test_each_refusal_of_a_restricted_run_is_recorded_as_an_event(
    partner, profile, agent, finance, dpo, action
):
    bill_run = _to_state(partner, agent, finance, action)
    bill_run_restrict(bill_run=bill_run, actor=dpo, reason="Complaint under investigation")

    with pytest.raises(BillingError):
        _step(action, bill_run, agent, finance)

    refusal = bill_run.events.get(action=f"{action} refused")
    assert "Complaint under investigation" in refusal.detail
    assert refusal.actor == (agent if action == "calculate" else finance)


def test_a_run_restricted_while_calculating_neither_calculates_nor_resumes(partner, profile, agent, dpo):
    _billable_customer(partner, agent)
    bill_run = bill_run_create(partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent)
    bill_run_start_calculation(bill_run=bill_run, actor=agent)  # chunks queued, never run
    bill_run_restrict(bill_run=bill_run, actor=dpo, reason="Hold")

    chunk = bill_run.chunks.get()
    assert bill_run_calculate_chunk(chunk_id=chunk.pk, actor_id=agent.pk) is False
    with pytest.raises(BillingError, match="restricted"):
        bill_run_resume_calculation(bill_run=bill_run, actor=agent)
    assert not bill_run.invoices.exists()


# Recalculation and crashes ----------------------------------------------------------------------


def test_recalculation_replaces_the_drafts_without_duplicates_or_double_claims(partner, profile, agent):
    customers = [_billable_customer(partner, agent, calls=n) for n in (1, 2, 3)]
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    before = {(i.customer_id, i.net, i.vat, i.gross) for i in bill_run.invoices.all()}
    lines_before = sorted(bill_run.invoices.values_list("customer_id", "lines__description", "lines__amount"))

    with run_on_commit():
        bill_run_start_calculation(bill_run=bill_run, actor=agent)

    bill_run.refresh_from_db()
    assert bill_run.status == BillRun.Status.CALCULATED
    invoices = list(bill_run.invoices.all())
    assert len(invoices) == len(customers) == len({i.customer_id for i in invoices})
    assert {(i.customer_id, i.net, i.vat, i.gross) for i in invoices} == before
    assert (
        sorted(bill_run.invoices.values_list("customer_id", "lines__description", "lines__amount"))
        == lines_before
    )
    assert Invoice.objects.count() == len(customers), "the first drafts are gone"
    claimed = CallRecord.objects.filter(status=CallRecord.Status.RATED)
    assert claimed.count() == 6
    assert sorted(claimed.values_list("billing__invoice_id", flat=True)) == sorted(
        i.pk for i in invoices for _call in i.calls.all()
    ), "each rated call is claimed once, by one of the new drafts"
    assert BilledCall.objects.count() == 6
    for invoice in invoices:
        assert invoice.calls.count() == invoice.lines.get(kind="usage").quantity
        assert all(call.customer_id == invoice.customer_id for call in invoice.calls.all())
    assert "recalculation started" in _events(bill_run)


def test_chunks_of_several_customers_bill_claim_and_snapshot_only_their_own_customers(
    partner, profile, agent, dpo, monkeypatch
):
    # Chunks of two: each chunk's statements select its customers by a list of ids (one array parameter
    # on PostgreSQL), which must reach exactly those customers, and only the billable ones for the calls.
    monkeypatch.setattr(calculation, "plan_chunks", functools.partial(calculation.plan_chunks, size=2))
    customers = [_billable_customer(partner, agent, calls=n + 1) for n in range(5)]
    held = customers[2]
    _cease_billing(held, dpo, "Objection received")

    bill_run = calculated_run(partner, JANUARY, actor=agent)
    with run_on_commit():
        bill_run_start_calculation(bill_run=bill_run, actor=agent)  # recalculated: replaces, same rows

    assert bill_run.chunks.count() == 3
    invoices = {invoice.customer_id: invoice for invoice in bill_run.invoices.all()}
    assert set(invoices) == {c.pk for c in customers if c != held}
    assert bill_run.exceptions.filter(customer=held).count() == 1
    assert not CallRecord.objects.filter(customer=held, billing__isnull=False).exists()
    for customer in customers:
        if customer == held:
            continue
        invoice = invoices[customer.pk]
        site = customer.sites.order_by("pk").first()
        calls = list(invoice.calls.values_list("customer_id", flat=True))
        assert calls == [customer.pk] * (customers.index(customer) + 1)
        assert invoice.lines.get(kind="usage").quantity == len(calls)
        assert (invoice.customer_name, invoice.customer_reference) == (customer.name, customer.reference)
        assert invoice.customer_address == "\n".join(
            part for part in (site.address_line1, site.address_line2, site.town, site.postcode) if part
        )
        assert invoice.net == sum(line.amount for line in invoice.lines.all())
        assert list(invoice.history.values_list("history_type", "net", "customer_name")) == [
            ("+", invoice.net, customer.name)
        ]
    assert (Invoice.objects.count(), BilledCall.objects.count()) == (4, 1 + 2 + 4 + 5)


@pytest.mark.parametrize("chunks_done_before_crash", [0, 1, 2])
def test_a_crashed_calculation_resumes_the_unfinished_chunks(
    partner, profile, agent, monkeypatch, chunks_done_before_crash
):
    monkeypatch.setattr(calculation, "plan_chunks", functools.partial(calculation.plan_chunks, size=1))
    customers = [_billable_customer(partner, agent) for _ in range(3)]
    bill_run = bill_run_create(partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent)
    # The chunk tasks are queued on commit; not running the callbacks is the worker dying before them.
    bill_run_start_calculation(bill_run=bill_run, actor=agent)
    chunks = list(bill_run.chunks.order_by("number"))
    for chunk in chunks[:chunks_done_before_crash]:
        assert bill_run_calculate_chunk(chunk_id=chunk.pk, actor_id=agent.pk)
    bill_run.refresh_from_db()
    assert (bill_run.status, bill_run.chunks_total, bill_run.chunks_done) == (
        BillRun.Status.CALCULATING,
        3,
        chunks_done_before_crash,
    )

    with run_on_commit():
        queued = bill_run_resume_calculation(bill_run=bill_run, actor=agent)

    assert queued == 3 - chunks_done_before_crash
    bill_run.refresh_from_db()
    assert (bill_run.status, bill_run.chunks_done, bill_run.progress_percent) == (
        BillRun.Status.CALCULATED,
        3,
        100,
    )
    assert sorted(bill_run.invoices.values_list("customer_id", flat=True)) == [c.pk for c in customers]
    assert set(BillRunChunk.objects.filter(bill_run=bill_run).values_list("attempts", flat=True)) == {1}
    assert CallRecord.objects.filter(billing__isnull=True).count() == 0
    # A chunk task delivered twice does nothing the second time.
    assert bill_run_calculate_chunk(chunk_id=chunks[0].pk, actor_id=agent.pk) is False
    assert bill_run.invoices.count() == 3
    with pytest.raises(BillingError, match="Only a run that is calculating"):
        bill_run_resume_calculation(bill_run=bill_run, actor=agent)


def test_a_run_restricted_while_a_chunk_calculates_keeps_nothing_of_that_chunk(
    partner, profile, agent, dpo, monkeypatch
):
    monkeypatch.setattr(calculation, "plan_chunks", functools.partial(calculation.plan_chunks, size=1))
    _billable_customer(partner, agent)
    bill_run = bill_run_create(partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent)
    bill_run_start_calculation(bill_run=bill_run, actor=agent)
    (chunk,) = bill_run.chunks.all()
    calculate = calculation.calculate_chunk

    def restricted_meanwhile(**kwargs):
        created = calculate(**kwargs)
        bill_run_restrict(bill_run=bill_run, actor=dpo, reason="Complaint received")
        return created

    monkeypatch.setattr(calculation, "calculate_chunk", restricted_meanwhile)

    assert bill_run_calculate_chunk(chunk_id=chunk.pk, actor_id=agent.pk) is False

    bill_run.refresh_from_db()
    chunk.refresh_from_db()
    assert (bill_run.status, bill_run.chunks_done, chunk.done_at) == (BillRun.Status.CALCULATING, 0, None)
    assert bill_run.invoices.count() == 0
    assert BilledCall.objects.count() == 0
    # The chunk's rollback took the restriction made in the same transaction with it; a real one comes
    # from another request and stays. Either way the chunk left nothing.


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: SQLite takes one write lock for the whole database, so two chunks can never "
    "be calculated at once there",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_workers_calculate_two_chunks_of_one_run_at_once(monkeypatch):
    partner = accounts_services.partner_create(code="two-workers", name="Two Workers Ltd", actor=None)
    billing_profile(partner, default_tariff=uk_tariff(name="Two workers"))
    agent = _staff_with(partner, "calculate_billrun")
    customers = [_billable_customer(partner, agent) for _ in range(2)]
    monkeypatch.setattr(calculation, "plan_chunks", functools.partial(calculation.plan_chunks, size=1))
    bill_run = bill_run_create(partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent)
    # The workers here are the test's two threads, not the tasks queued on commit.
    monkeypatch.setattr(tasks.calculate_bill_run_chunk, "delay", lambda *args: None)
    bill_run_start_calculation(bill_run=bill_run, actor=agent)
    first, second = bill_run.chunks.order_by("number")
    in_first, second_done = threading.Event(), threading.Event()
    calculate = calculation.calculate_chunk

    def calculate_holding_the_first(**kwargs):
        created = calculate(**kwargs)
        if kwargs["chunk"].pk == first.pk:
            in_first.set()
            # The first chunk's transaction stays open until the second chunk has committed.
            assert second_done.wait(timeout=20), "the second chunk waited for the first one's transaction"
        return created

    monkeypatch.setattr(calculation, "calculate_chunk", calculate_holding_the_first)
    results: list[object] = []

    def work(chunk_id: int, before: threading.Event | None, after: threading.Event | None) -> None:
        try:
            if before is not None:
                assert before.wait(timeout=20)
            results.append(bill_run_calculate_chunk(chunk_id=chunk_id, actor_id=agent.pk))
            if after is not None:
                after.set()
        except Exception as exc:  # reported by the test
            results.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=work, args=(first.pk, None, None)),
        threading.Thread(target=work, args=(second.pk, in_first, second_done)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert results == [True, True]
    bill_run.refresh_from_db()
    assert (bill_run.status, bill_run.chunks_done) == (BillRun.Status.CALCULATED, 2)
    assert sorted(bill_run.invoices.values_list("customer_id", flat=True)) == sorted(c.pk for c in customers)


# Approval and finalisation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.FINANCE_MANAGER, True),
        (Role.BILLING_AGENT, False),
        (Role.SUPPORT_AGENT, False),
        (Role.ADMINISTRATOR, False),
        (Role.DATA_PROTECTION_OFFICER, False),
    ],
)
def test_approval_needs_the_approve_permission(partner, profile, agent, make_user, role, allowed):
    _billable_customer(partner, agent)
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    user = make_user(role)

    if allowed:
        bill_run_approve(bill_run=bill_run, actor=user)
    else:
        with pytest.raises(PermissionDenied):
            bill_run_approve(bill_run=bill_run, actor=user)

    bill_run.refresh_from_db()
    assert bill_run.status == (BillRun.Status.APPROVED if allowed else BillRun.Status.CALCULATED)
    assert bill_run.approved_by == (user if allowed else None)


@pytest.mark.parametrize("role", [Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.DATA_PROTECTION_OFFICER])
def test_finalisation_needs_the_finalise_permission(partner, profile, agent, finance, make_user, role):
    _billable_customer(partner, agent)
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    bill_run_approve(bill_run=bill_run, actor=finance)

    with pytest.raises(PermissionDenied):
        bill_run_finalise(bill_run=bill_run, actor=make_user(role))

    assert not Invoice.objects.exclude(sequence=None).exists()


@pytest.mark.parametrize(
    ("status_step", "message"),
    [("draft", "Only a calculated bill run can be approved"), ("approved", "Only a calculated")],
)
def test_only_a_calculated_run_can_be_approved(partner, profile, agent, finance, status_step, message):
    if status_step == "draft":
        bill_run = bill_run_create(
            partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent
        )
    else:
        bill_run = calculated_run(partner, JANUARY, actor=agent)
        bill_run_approve(bill_run=bill_run, actor=finance)

    with pytest.raises(BillingError, match=message):
        bill_run_approve(bill_run=bill_run, actor=finance)


def test_a_calculated_but_unapproved_run_cannot_be_finalised(partner, profile, agent, finance):
    bill_run = calculated_run(partner, JANUARY, actor=agent)

    with pytest.raises(BillingError, match="Only an approved bill run"):
        bill_run_finalise(bill_run=bill_run, actor=finance)


@pytest.mark.parametrize("first_number", [1, 41, 999_999])
def test_finalisation_numbers_invoices_gaplessly_from_the_profiles_next_number(
    partner, agent, finance, dpo, first_number
):
    billing_profile(
        partner, default_tariff=uk_tariff(), invoice_prefix="ACME-", next_invoice_number=first_number
    )
    customers = [_billable_customer(partner, agent) for _ in range(3)]
    _cease_billing(_billable_customer(partner, agent), dpo, "Objection")  # skipped: takes no number

    bill_run = finalised_run(partner, JANUARY, agent=agent, finance=finance)

    invoices = list(bill_run.invoices.order_by("sequence"))
    assert [i.customer_id for i in invoices] == [c.pk for c in customers]
    assert [i.sequence for i in invoices] == [first_number, first_number + 1, first_number + 2]
    assert [i.number for i in invoices] == [f"ACME-{n:06d}" for n in range(first_number, first_number + 3)]
    assert {(i.status, i.issue_date) for i in invoices} == {
        (Invoice.Status.FINALISED, datetime.date(2025, 2, 1))
    }
    assert PartnerBillingProfile.objects.get(partner=partner).next_invoice_number == first_number + 3
    assert bill_run.status == BillRun.Status.FINALISED

    # The next month carries on where January stopped.
    february = finalised_run(partner, FEBRUARY, agent=agent, finance=finance)
    assert list(february.invoices.order_by("sequence").values_list("sequence", flat=True)) == list(
        range(first_number + 3, first_number + 6)
    )


def test_finalising_twice_changes_nothing(partner, profile, agent, finance):
    for _ in range(2):
        _billable_customer(partner, agent)
    bill_run = finalised_run(partner, JANUARY, agent=agent, finance=finance)
    numbers = list(bill_run.invoices.order_by("pk").values_list("number", "sequence", "issue_date"))
    history = Invoice.history.count()

    again = bill_run_finalise(bill_run=bill_run, actor=finance, issue_date=datetime.date(2025, 3, 1))

    assert again.status == BillRun.Status.FINALISED
    assert list(bill_run.invoices.order_by("pk").values_list("number", "sequence", "issue_date")) == numbers
    assert PartnerBillingProfile.objects.get(partner=partner).next_invoice_number == 3
    assert Invoice.history.count() == history
    assert _events(bill_run).count("finalised") == 1


def test_two_partners_finalise_independently_with_their_own_sequences(partner, other_partner, agent, finance):
    billing_profile(partner, default_tariff=uk_tariff(), invoice_prefix="AAA-", next_invoice_number=10)
    billing_profile(other_partner, default_tariff=uk_tariff(), invoice_prefix="BBB-", next_invoice_number=500)
    other_agent = UserFactory(role=Role.BILLING_AGENT, partner=other_partner)
    other_finance = UserFactory(role=Role.FINANCE_MANAGER, partner=other_partner)
    for _ in range(2):
        _billable_customer(partner, agent)
    for _ in range(3):
        _billable_customer(other_partner, other_agent)

    finalised_run(partner, JANUARY, agent=agent, finance=finance)
    finalised_run(other_partner, JANUARY, agent=other_agent, finance=other_finance)
    finalised_run(partner, FEBRUARY, agent=agent, finance=finance)

    assert _numbers(partner) == [10, 11, 12, 13]
    assert _numbers(other_partner) == [500, 501, 502]
    assert set(Invoice.objects.filter(partner=partner).values_list("number", flat=True)) == {
        "AAA-000010",
        "AAA-000011",
        "AAA-000012",
        "AAA-000013",
    }


@pytest.mark.parametrize(
    ("period", "last_in", "first_out"),
    [
        pytest.param(JANUARY, "2025-01-31T23:59:59", "2025-02-01T00:00:00", id="gmt"),
        pytest.param(
            month(2025, 6),
            "2025-06-30T23:59:59",
            "2025-07-01T00:30:00",
            id="bst",
        ),
    ],
)
def test_a_run_bills_the_calls_made_up_to_midnight_uk_time_at_the_end_of_its_period(
    partner, customer, profile, agent, period, last_in, first_out
):
    inside, outside = (
        Call(cli=cli_of(customer), start_time=last_in),
        Call(cli=cli_of(customer), start_time=first_out),
    )
    import_calls(partner, [inside, outside])

    bill_run = calculated_run(partner, period, actor=agent)

    assert list(bill_run.invoices.get().calls.values_list("call_reference", flat=True)) == [
        inside.call_reference
    ]
    assert not CallRecord.objects.get(call_reference=outside.call_reference).invoices.exists()


def test_a_partner_has_one_open_run_at_a_time(partner, profile, agent):
    bill_run_create(partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent)

    with pytest.raises(BillingError, match="already has an open bill run"):
        bill_run_create(partner=partner, period_start=FEBRUARY[0], period_end=FEBRUARY[1], actor=agent)


@pytest.mark.parametrize(("amount", "calls"), [("100.00", 2), ("0.01", 0), ("12345.67", 5)])
def test_invoice_totals_are_the_sum_of_their_lines_and_gross_is_net_plus_vat(
    partner, profile, agent, finance, amount, calls
):
    _billable_customer(partner, agent, amount=amount, calls=calls)
    _billable_customer(partner, agent, amount="0.05", calls=1)

    bill_run = finalised_run(partner, JANUARY, agent=agent, finance=finance)

    for invoice in bill_run.invoices.all():
        lines = list(invoice.lines.all())
        assert {line.kind for line in lines} >= {"rental", "one_off"}
        assert invoice.net == sum((line.amount for line in lines), Decimal("0"))
        assert invoice.vat == (invoice.net * Decimal("0.2")).quantize(Decimal("0.01"), "ROUND_HALF_UP")
        assert invoice.gross == invoice.net + invoice.vat
        assert invoice.supplier_vat_number == "GB123456789"
        # Continuous supplies (rentals in advance, calls): tax point = issue date (VAT Notice 700 s.14).
        assert invoice.tax_point == invoice.issue_date == bill_run.issue_date
    summary_net = sum(bill_run.invoices.values_list("net", flat=True), Decimal("0"))
    assert summary_net == sum(bill_run.invoices.values_list("lines__amount", flat=True), Decimal("0"))


def test_each_draft_has_one_history_row_by_the_actor_and_encrypted_snapshots(partner, profile, agent):
    customer = _billable_customer(partner, agent)
    site = customer.sites.get()
    SiteFactory(customer=customer, label="Second site")  # the snapshot is the first site's address

    bill_run = calculated_run(partner, JANUARY, actor=agent)

    draft = bill_run.invoices.get()
    (record,) = draft.history.all()
    assert (record.history_type, record.history_user, record.history_change_reason) == (
        "+",
        agent,
        "Draft calculated",
    )
    assert (record.net, record.gross, record.customer_name) == (draft.net, draft.gross, customer.name)
    assert draft.customer_reference == customer.reference
    assert draft.customer_address == "\n".join(
        part for part in (site.address_line1, site.address_line2, site.town, site.postcode) if part
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_name, customer_address FROM billing_invoice WHERE id = %s", [draft.pk]
        )
        stored = cursor.fetchone()
    assert all(value.startswith("enc2$") for value in stored)
    assert customer.name not in stored[0]


# Credit notes ----------------------------------------------------------------------------------


@pytest.fixture
def invoice(partner, profile, agent, finance) -> Invoice:
    customer = full_customer(partner)
    one_off_charge_create(
        customer=customer,
        description="Handsets",
        amount=Decimal("100.00"),
        charge_date=datetime.date(2025, 1, 5),
        actor=agent,
    )
    bill_run = finalised_run(partner, JANUARY, agent=agent, finance=finance)
    found = bill_run.invoices.get()
    assert (found.net, found.vat, found.gross) == (Decimal("100.00"), Decimal("20.00"), Decimal("120.00"))
    return found


def _frozen(invoice: Invoice) -> tuple[object, ...]:
    invoice.refresh_from_db()
    return (invoice.status, invoice.number, invoice.sequence, invoice.net, invoice.vat, invoice.gross)


def test_a_full_credit_note_credits_the_whole_invoice_and_leaves_it_unchanged(invoice, finance):
    frozen = _frozen(invoice)

    note = credit_note_issue(invoice=invoice, actor=finance, reason="Billed in error")

    assert (note.net, note.vat, note.gross) == (Decimal("100.00"), Decimal("20.00"), Decimal("120.00"))
    assert note.number == f"{invoice.partner.billing_profile.invoice_prefix}CN000001"
    assert (note.issued_by, note.reason) == (finance, "Billed in error")
    assert _frozen(invoice) == frozen
    with pytest.raises(ValidationError) as raised:
        credit_note_issue(invoice=invoice, actor=finance, reason="Again")
    assert "net" in raised.value.message_dict


@pytest.mark.parametrize(
    ("parts", "vats"),
    [
        (["10.00", None], ["2.00", "18.00"]),
        (["33.33", "33.33", None], ["6.67", "6.67", "6.66"]),  # the last credit takes the VAT left
        (["0.03", "99.97"], ["0.01", "19.99"]),
    ],
)
def test_partial_credit_notes_add_up_to_the_invoice_and_are_numbered_gaplessly(invoice, finance, parts, vats):
    frozen = _frozen(invoice)

    notes = [
        credit_note_issue(
            invoice=invoice, actor=finance, reason="Goodwill", net=Decimal(part) if part else None
        )
        for part in parts
    ]

    assert [note.vat for note in notes] == [Decimal(vat) for vat in vats]
    assert sum((n.net for n in notes), Decimal("0")) == invoice.net
    assert sum((n.vat for n in notes), Decimal("0")) == invoice.vat
    assert all(note.gross == note.net + note.vat for note in notes)
    assert [note.sequence for note in notes] == list(range(1, len(parts) + 1))
    assert (
        PartnerBillingProfile.objects.get(partner=invoice.partner).next_credit_note_number == len(parts) + 1
    )
    assert _frozen(invoice) == frozen


@pytest.mark.parametrize(
    ("earlier", "amount"),
    [(None, "100.01"), (None, "0"), (None, "-5.00"), (None, "0.004"), ("60.00", "40.01"), ("100.00", "0.01")],
)
def test_over_crediting_is_rejected_naming_net_and_takes_no_number(invoice, finance, earlier, amount):
    if earlier:
        credit_note_issue(invoice=invoice, actor=finance, reason="Part", net=Decimal(earlier))
    next_number = PartnerBillingProfile.objects.get(partner=invoice.partner).next_credit_note_number
    frozen = _frozen(invoice)

    with pytest.raises(ValidationError) as raised:
        credit_note_issue(invoice=invoice, actor=finance, reason="Too much", net=Decimal(amount))

    assert list(raised.value.message_dict) == ["net"]
    assert "at most" in raised.value.message_dict["net"][0]
    assert PartnerBillingProfile.objects.get(partner=invoice.partner).next_credit_note_number == next_number
    assert CreditNote.objects.count() == (1 if earlier else 0)
    assert _frozen(invoice) == frozen


def test_credit_notes_need_a_finalised_invoice_a_reason_and_the_permission(partner, profile, agent, finance):
    _billable_customer(partner, agent)
    draft = calculated_run(partner, JANUARY, actor=agent).invoices.get()

    with pytest.raises(BillingError, match="Only a finalised invoice"):
        credit_note_issue(invoice=draft, actor=finance, reason="Early")
    bill_run_approve(bill_run=draft.bill_run, actor=finance)
    bill_run_finalise(bill_run=draft.bill_run, actor=finance)
    with pytest.raises(PermissionDenied):
        credit_note_issue(invoice=draft, actor=agent, reason="Not mine to give")
    with pytest.raises(ValidationError) as raised:
        credit_note_issue(invoice=draft, actor=finance, reason="  ")
    assert "reason" in raised.value.message_dict
    assert not CreditNote.objects.exists()


# Resuming billing after an objection -------------------------------------------------------------

CEASED_AT = "2025-03-15 12:00"
CALLS_AROUND_THE_CEASE = {
    "before": "2025-03-10T10:00:00",  # made while billed, not yet invoiced when billing ceased
    "ceased-early": "2025-03-20T10:00:00",
    "ceased-late": "2025-04-10T10:00:00",
}


@pytest.mark.parametrize(
    ("policy", "from_date", "waived"),
    [
        pytest.param(BackBillPolicy.NONE, None, {"ceased-early", "ceased-late"}, id="none"),
        pytest.param(BackBillPolicy.CATCH_UP, None, set(), id="catch-up"),
        pytest.param(
            BackBillPolicy.FROM_DATE,
            datetime.date(2025, 4, 1),
            {"ceased-early"},
            id="from-date",
        ),
    ],
)
def test_lifting_a_cease_waives_or_keeps_the_ceased_periods_calls_by_policy(
    partner, profile, agent, finance, dpo, policy, from_date, waived
):
    customer = full_customer(partner)
    calls = {name: Call(cli=cli_of(customer), start_time=at) for name, at in CALLS_AROUND_THE_CEASE.items()}
    import_calls(partner, list(calls.values()))
    _cease_billing(customer, dpo, "Objection to processing", at=uk(CEASED_AT))
    march = calculated_run(partner, MARCH, actor=agent)
    assert not march.invoices.exists()
    bill_run_cancel(bill_run=march, actor=agent, reason="Redo after the objection is resolved")

    customer_lift_billing_cease(
        customer=customer, actor=agent, policy=policy, reason="Objection withdrawn", from_date=from_date
    )

    customer.refresh_from_db()
    assert (customer.billing_ceased_at, customer.billing_ceased_reason) == (None, "")
    status = {
        name: CallRecord.objects.get(call_reference=c.call_reference).status for name, c in calls.items()
    }
    assert {name for name, value in status.items() if value == CallRecord.Status.WAIVED} == waived
    april = finalised_run(partner, APRIL, agent=agent, finance=finance)
    invoiced = set(april.invoices.get().calls.values_list("call_reference", flat=True))
    assert invoiced == {c.call_reference for name, c in calls.items() if name not in waived}
    assert customer.history.first().history_change_reason.startswith(f"Billing resumed ({policy}")


@pytest.mark.parametrize(
    ("ceased", "policy", "from_date", "error"),
    [
        (False, BackBillPolicy.NONE, None, "Billing is not ceased"),
        (True, "everything", None, "policy"),
        (True, BackBillPolicy.FROM_DATE, None, "from_date"),
    ],
)
def test_lifting_a_cease_needs_a_cease_and_a_complete_policy(
    partner, customer, agent, dpo, ceased, policy, from_date, error
):
    if ceased:
        _cease_billing(customer, dpo, "Objection")

    with pytest.raises(ValidationError) as raised:
        customer_lift_billing_cease(
            customer=customer, actor=agent, policy=policy, reason="r", from_date=from_date
        )

    assert error in str(raised.value)
    customer.refresh_from_db()
    assert customer.is_billing_ceased is ceased


# Concurrency (PostgreSQL) -----------------------------------------------------------------------


def _staff_with(partner: Partner, *codenames: str) -> User:
    user = User.objects.create_user(
        f"{'-'.join(codenames)}@{partner.code}.test", full_name="Staff", partner=partner, is_staff=True
    )
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="billing", codename__in=codenames)
    )
    return user


def _in_thread(results: list[object], barrier: threading.Barrier, step) -> threading.Thread:
    def work() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(step())
        except Exception as exc:  # reported by the test
            results.append(exc)
        finally:
            connection.close()

    return threading.Thread(target=work)


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs PostgreSQL: SQLite has no row locks (select_for_update is a no-op) and takes one write "
    "lock for the whole database, so concurrent finalisations cannot race there",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_finalisations_of_two_partners_and_a_retry_leave_gapless_unique_numbers():
    # A transactional test starts from whatever the previous one left: possibly a flushed database without
    # the role groups the migrations made. So the actors hold the permissions they need directly.
    parties = []
    for n, (prefix, first) in enumerate((("AAA-", 1), ("BBB-", 700))):
        partner = accounts_services.partner_create(code=f"race-{n}", name=f"Race {n} Ltd", actor=None)
        billing_profile(
            partner,
            default_tariff=uk_tariff(name=f"Race {n}"),
            invoice_prefix=prefix,
            next_invoice_number=first,
        )
        agent = _staff_with(partner, "calculate_billrun")
        finance = _staff_with(partner, "approve_billrun", "finalise_billrun")
        for _ in range(5):
            _billable_customer(partner, agent, calls=1)
        parties.append((partner, agent, finance, first))

    for period in (JANUARY, FEBRUARY):
        runs = []
        for partner, agent, finance, _first in parties:
            bill_run = calculated_run(partner, period, actor=agent)
            bill_run_approve(bill_run=bill_run, actor=finance)
            runs.append((bill_run, finance))
        # Each partner's run finalised twice at once (a retried request) while the other partner's runs.
        steps = [
            functools.partial(bill_run_finalise, bill_run=bill_run, actor=finance)
            for bill_run, finance in runs * 2
        ]
        results: list[object] = []
        barrier = threading.Barrier(len(steps))
        threads = [_in_thread(results, barrier, step) for step in steps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert len(results) == len(steps), "a finalisation hung"
        assert not any(isinstance(result, Exception) for result in results), results
        assert all(result.status == BillRun.Status.FINALISED for result in results)

    for partner, _agent, _finance, first in parties:
        assert _numbers(partner) == list(range(first, first + 10))
        numbers = list(Invoice.objects.filter(partner=partner).values_list("number", flat=True))
        assert len(set(numbers)) == 10
        assert PartnerBillingProfile.objects.get(partner=partner).next_invoice_number == first + 10
        assert BillRunEvent.objects.filter(bill_run__partner=partner, action="finalised").count() == 2


# The usage month must have ended ---------------------------------------------------------------------


def _month_of(day: datetime.date) -> tuple[datetime.date, datetime.date]:
    return month(day.year, day.month)


def _first_moment_after(period: tuple[datetime.date, datetime.date]) -> datetime.datetime:
    """Midnight UK time at the end of the period, when its calls stop."""
    following = period[1] + datetime.timedelta(days=1)
    return datetime.datetime(following.year, following.month, following.day, tzinfo=UK_TIME)


def test_a_run_for_the_month_under_way_is_refused_on_the_page_naming_the_month(
    client, partner, profile, agent
):
    _billable_customer(partner, agent)
    today = timezone.localdate()
    client.force_login(agent)

    response = client.post("/billing/runs/", {"month": f"{today:%Y-%m}"})

    assert response.status_code == 200
    assert response.context["form"].errors["month"] == [
        f"Usage month: The usage month {today:%B %Y} has not ended: bill it from "
        f"1 {_first_moment_after(_month_of(today)):%B %Y}."
    ]
    assert "has not ended" in response.content.decode()
    assert not BillRun.objects.exists()


def test_the_service_refuses_a_run_for_the_month_under_way_naming_its_end(partner, profile, agent):
    current = _month_of(timezone.localdate())

    with pytest.raises(BillingError) as refused:
        bill_run_create(partner=partner, period_start=current[0], period_end=current[1], actor=agent)

    assert list(refused.value.message_dict) == ["period_end"]
    assert not BillRun.objects.exists()


def test_calculating_a_run_of_the_month_under_way_is_refused_and_recorded(client, partner, profile, agent):
    """A draft made before the check existed (the December run created on 4 December) cannot be calculated."""
    _billable_customer(partner, agent)
    current = _month_of(timezone.localdate())
    bill_run = BillRun.objects.create(
        partner=partner, period_start=current[0], period_end=current[1], created_by=agent
    )
    client.force_login(agent)

    with run_on_commit():
        response = client.post(f"/billing/runs/{bill_run.pk}/calculate/", follow=True)

    bill_run.refresh_from_db()
    assert bill_run.status == BillRun.Status.DRAFT
    assert not bill_run.invoices.exists() and not bill_run.chunks.exists()
    assert [m.message for m in response.context["messages"]] == [
        f"The usage month {current[0]:%B %Y} has not ended: bill it from "
        f"1 {_first_moment_after(current):%B %Y}."
    ]
    refusal = bill_run.events.get()
    assert (refusal.action, refusal.actor) == ("calculate refused", agent)
    assert "has not ended" in refusal.detail


@pytest.mark.parametrize(
    ("offset", "allowed"), [(-datetime.timedelta(minutes=1), False), (datetime.timedelta(0), True)]
)
def test_a_month_becomes_billable_at_midnight_uk_time_after_its_last_day(
    client, clock, partner, profile, agent, offset, allowed
):
    _billable_customer(partner, agent)
    period = JANUARY
    clock.move_to(_first_moment_after(period) + offset)
    client.force_login(agent)

    created = client.post("/billing/runs/", {"month": "2025-01"})

    assert (created.status_code == 302) is allowed
    assert BillRun.objects.exists() is allowed
