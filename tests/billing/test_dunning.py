"""Dunning: the daily job takes each partner's steps (reminder at 7 days overdue, final notice at 14,
suspension of outgoing calls at 28 by default) once per overdue episode, skips them when the balance is
paid, holds them when the customer's processing is restricted, and still sends debt recovery notices to a
customer who objected to billing (under the lawful basis it records). The steps pages are scoped to the
partner; the account page shows what was done."""

import datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import AuditEvent, Customer, ProvisioningOrder, Role, User
from accounts.services import customer_lift_processing_restriction, customer_restrict_processing
from billing.models import DunningAction, DunningStep, Invoice, Payment
from billing.services.dunning import (
    LAWFUL_BASIS_DEBT_RECOVERY,
    dunning_run,
    dunning_run_chunk,
    dunning_step_update,
    dunning_steps_ensure,
)
from billing.services.payments import payment_record
from billing.tasks import dunning_daily
from tests.billing.factories import billing_profile, issued_invoice, run_on_commit
from tests.factories import CustomerFactory, UserFactory, full_customer

pytestmark = pytest.mark.frozen_at("2026-05-01T09:00:00+00:00")

ISSUED = datetime.date(2026, 5, 1)  # due on 15 May (14 days' terms)
DUE = datetime.date(2026, 5, 15)
Outcome = DunningAction.Outcome


def issue_invoice(customer: Customer, net: str, *, issued: datetime.date = ISSUED) -> Invoice:
    """A finalised invoice as a bill run leaves it, posted to the ledger."""
    return issued_invoice(customer, net, issued=issued)


def on(clock, day: datetime.date) -> None:
    clock.move_to(datetime.datetime(day.year, day.month, day.day, 9, 0, tzinfo=datetime.UTC))


def run_job() -> dict[str, int]:
    with run_on_commit():
        return dunning_daily()


def days_after_due(days: int) -> datetime.date:
    return DUE + datetime.timedelta(days=days)


@pytest.fixture
def debtor(partner, profile) -> Customer:
    customer = full_customer(partner)
    issue_invoice(customer, "100.00")  # £120.00 with VAT
    return customer


def actions(customer: Customer) -> list[tuple[str, str]]:
    return list(
        DunningAction.objects.filter(customer=customer)
        .order_by("taken_at", "days_overdue")
        .values_list("kind", "outcome")
    )


def test_steps_fire_at_7_14_and_28_days_overdue_once_each(clock, debtor):
    line = debtor.lines.get()
    on(clock, days_after_due(6))
    assert run_job() == {}
    assert mail.outbox == []

    on(clock, days_after_due(7))
    assert run_job() == {Outcome.SENT: 1}
    assert run_job() == {}  # the same day again: nothing twice
    assert len(mail.outbox) == 1
    reminder = mail.outbox[0]
    assert reminder.subject == f"Reminder: your account {debtor.reference} is overdue"
    assert reminder.to == [debtor.contacts.get().email]
    assert "£120.00 on your account is overdue" in reminder.body
    assert "was due on 15 May 2026" in reminder.body
    assert "sort code 20-00-00, account 55779911, quoting " + debtor.reference in reminder.body

    on(clock, days_after_due(13))
    assert run_job() == {}
    on(clock, days_after_due(14))
    assert run_job() == {Outcome.SENT: 1}
    assert mail.outbox[1].subject.startswith("Final notice")
    assert "outgoing calls on your lines may be suspended" in mail.outbox[1].body

    on(clock, days_after_due(28))
    assert run_job() == {Outcome.SUSPENDED: 1}
    assert run_job() == {}
    order = ProvisioningOrder.objects.get(customer=debtor)
    assert (order.kind, order.line, order.status) == (
        ProvisioningOrder.Kind.MODIFY,
        line,
        ProvisioningOrder.Status.SUBMITTED,
    )
    assert "suspend outgoing calls" in order.notes
    assert actions(debtor) == [
        ("reminder_email", Outcome.SENT),
        ("final_notice_email", Outcome.SENT),
        ("suspend_outgoing_calls", Outcome.SUSPENDED),
    ]
    suspension = DunningAction.objects.get(customer=debtor, kind="suspend_outgoing_calls")
    assert suspension.provisioning_order_ids == [order.pk]
    assert len(mail.outbox) == 2


def test_a_missed_day_is_caught_up_in_order_and_every_notice_records_its_lawful_basis(clock, debtor):
    on(clock, days_after_due(20))

    assert run_job() == {Outcome.SENT: 2}

    assert [message.subject.split(":")[0] for message in mail.outbox] == ["Reminder", "Final notice"]
    assert set(DunningAction.objects.values_list("lawful_basis", flat=True)) == {LAWFUL_BASIS_DEBT_RECOVERY}


def test_a_paid_balance_skips_the_steps_still_to_come(clock, debtor, agent):
    on(clock, days_after_due(7))
    run_job()
    on(clock, days_after_due(10))
    payment_record(
        customer=debtor,
        method=Payment.Method.CARD,
        amount=Decimal("120.00"),
        received_on=days_after_due(10),
        actor=agent,
    )

    on(clock, days_after_due(14))
    assert run_job() == {Outcome.SKIPPED_PAID: 1}
    on(clock, days_after_due(28))
    assert run_job() == {Outcome.SKIPPED_PAID: 1}
    on(clock, days_after_due(40))
    assert run_job() == {}

    assert actions(debtor) == [
        ("reminder_email", Outcome.SENT),
        ("final_notice_email", Outcome.SKIPPED_PAID),
        ("suspend_outgoing_calls", Outcome.SKIPPED_PAID),
    ]
    assert len(mail.outbox) == 1
    assert not ProvisioningOrder.objects.filter(customer=debtor).exists()


def test_account_credit_covering_the_overdue_invoice_skips_the_step(clock, debtor, agent):
    # Money received but not allocated (a payment recorded before the invoice, say) leaves the invoice
    # open while the balance is nothing: no reminder for a debt the customer does not owe.
    Payment.objects.create(
        customer=debtor, method=Payment.Method.BANK_TRANSFER, amount=Decimal("120.00"), received_on=ISSUED
    )
    from billing.models import LedgerEntry

    LedgerEntry.objects.create(
        customer=debtor,
        kind=LedgerEntry.Kind.PAYMENT,
        amount=Decimal("-120.00"),
        effective_on=ISSUED,
        payment=Payment.objects.get(customer=debtor),
    )
    on(clock, days_after_due(7))

    assert run_job() == {Outcome.SKIPPED_PAID: 1}
    assert mail.outbox == []


def test_a_restricted_customer_is_held_and_its_suspension_order_is_held(clock, debtor, make_user):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    customer_restrict_processing(customer=debtor, actor=dpo, reason="Accuracy contested")

    on(clock, days_after_due(7))
    assert run_job() == {Outcome.HELD_RESTRICTED: 1}
    on(clock, days_after_due(28))
    assert run_job() == {Outcome.HELD_RESTRICTED: 2}

    assert mail.outbox == []
    held = DunningAction.objects.filter(customer=debtor, outcome=Outcome.HELD_RESTRICTED)
    assert held.count() == 3
    assert all(
        "Art. 18" in action.lawful_basis and "Accuracy contested" in action.lawful_basis for action in held
    )
    order = ProvisioningOrder.objects.get(customer=debtor)
    assert order.status == ProvisioningOrder.Status.HELD
    assert held.get(kind="suspend_outgoing_calls").provisioning_order_ids == [order.pk]


def test_a_customer_who_objected_to_billing_is_still_sent_debt_recovery_notices(clock, debtor):
    Customer.objects.filter(pk=debtor.pk).update(
        billing_ceased_at=datetime.datetime(2026, 5, 10, tzinfo=datetime.UTC),
        billing_ceased_reason="Objection to billing",
    )
    on(clock, days_after_due(7))

    assert run_job() == {Outcome.SENT: 1}
    assert DunningAction.objects.get(customer=debtor).lawful_basis == LAWFUL_BASIS_DEBT_RECOVERY
    assert len(mail.outbox) == 1


def test_each_customer_follows_its_own_partners_steps(clock, debtor, other_partner, partner, finance):
    other_debtor = full_customer(other_partner)
    billing_profile(other_partner)
    issue_invoice(other_debtor, "50.00")
    dunning_steps_ensure(actor=None)
    reminder = DunningStep.objects.get(partner=partner, kind="reminder_email")
    dunning_step_update(
        step=reminder,
        actor=finance,
        days_overdue=10,
        kind=reminder.kind,
        effective_from=reminder.effective_from,
        active=True,
    )

    on(clock, days_after_due(7))
    run_job()
    assert actions(debtor) == []
    assert actions(other_debtor) == [("reminder_email", Outcome.SENT)]

    on(clock, days_after_due(10))
    run_job()
    assert actions(debtor) == [("reminder_email", Outcome.SENT)]
    assert DunningAction.objects.get(customer=debtor).step.partner == partner


def test_a_step_switched_off_or_not_yet_effective_is_not_taken(clock, debtor, partner, finance):
    dunning_steps_ensure(actor=None)
    reminder = DunningStep.objects.get(partner=partner, kind="reminder_email")
    dunning_step_update(
        step=reminder,
        actor=finance,
        days_overdue=7,
        kind=reminder.kind,
        effective_from=reminder.effective_from,
        active=False,
    )
    final = DunningStep.objects.get(partner=partner, kind="final_notice_email")
    dunning_step_update(
        step=final,
        actor=finance,
        days_overdue=14,
        kind=final.kind,
        effective_from=days_after_due(15),
        active=True,
    )

    on(clock, days_after_due(20))
    assert run_job() == {}


DEFAULT_STEP_DAYS = {"reminder_email": 7, "final_notice_email": 14, "suspend_outgoing_calls": 28}


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    run_days=st.lists(st.integers(min_value=0, max_value=45), min_size=1, max_size=8),
    paid_on=st.none() | st.integers(min_value=0, max_value=45),
)
def test_whenever_the_job_runs_each_step_is_taken_once_and_sent_only_while_unpaid(
    run_days, paid_on, clock, partner, profile, agent
):
    """The rule, stated apart from the code: a step of k days is recorded by the first run on or after
    day k (days after the due date), once however often the job runs; it is carried out if the balance
    was still owed at that run (a payment on day p comes before that day's run); once paid, the episode's
    later steps are recorded as skipped, and an episode paid before its first step leaves no trace.
    Steps whose day no run reached are not recorded."""
    actor = UserFactory(role=Role.ADMINISTRATOR)
    with transaction.atomic():
        customer = full_customer(partner)
        issue_invoice(customer, "100.00")
        for day in sorted({*run_days, *([paid_on] if paid_on is not None else [])}):
            on(clock, days_after_due(day))
            if day == paid_on:
                payment_record(
                    customer=customer,
                    method=Payment.Method.CARD,
                    amount=Decimal("120.00"),
                    received_on=days_after_due(day),
                    actor=agent,
                )
            for _ in range(run_days.count(day)):
                dunning_run(today=days_after_due(day), actor=actor)

        expected = {}
        started = False
        for kind, k in DEFAULT_STEP_DAYS.items():
            first_run = min((day for day in run_days if day >= k), default=None)
            if first_run is None:
                continue
            if paid_on is None or paid_on > first_run:
                expected[kind] = Outcome.SUSPENDED if kind == "suspend_outgoing_calls" else Outcome.SENT
                started = True
            elif started:
                expected[kind] = Outcome.SKIPPED_PAID
        recorded = list(DunningAction.objects.filter(customer=customer).values_list("kind", "outcome"))
        assert sorted(recorded) == sorted(expected.items())
        transaction.set_rollback(True)


def test_a_chunk_costs_the_same_queries_for_one_customer_as_for_many(clock, partner, profile):
    dunning_steps_ensure(actor=None)
    actor = UserFactory(role=Role.ADMINISTRATOR)

    def queries_for(count: int) -> int:
        customers = [full_customer(partner) for _ in range(count)]
        for customer in customers:
            issue_invoice(customer, "10.00")
        with CaptureQueriesContext(connection) as captured, run_on_commit():
            counts = dunning_run_chunk(
                customer_ids=[customer.pk for customer in customers], today=days_after_due(7), actor=actor
            )
        assert counts == {Outcome.SENT: count}
        return len(captured)

    assert queries_for(1) == queries_for(6)


def test_the_job_reports_progress_by_chunk(clock, partner, profile):
    for _ in range(3):
        issue_invoice(full_customer(partner), "10.00")
    seen: list[int] = []

    with run_on_commit():
        dunning_run(
            today=days_after_due(7),
            actor=UserFactory(role=Role.ADMINISTRATOR),
            progress=seen.append,
            chunk_size=2,
        )

    assert seen == [2, 3]
    assert len(mail.outbox) == 3


def test_new_partners_get_the_default_steps(partner):
    assert dunning_steps_ensure(actor=None) >= 3
    assert list(DunningStep.objects.filter(partner=partner).values_list("days_overdue", "kind")) == [
        (7, "reminder_email"),
        (14, "final_notice_email"),
        (28, "suspend_outgoing_calls"),
    ]
    assert dunning_steps_ensure(actor=None) == 0


# Pages.


def test_a_finance_manager_sees_and_changes_the_partners_steps(client, finance, partner):
    dunning_steps_ensure(actor=None)
    step = DunningStep.objects.get(partner=partner, kind="final_notice_email")
    client.force_login(finance)

    page = client.get(f"/billing/partners/{partner.pk}/dunning/")
    assert page.status_code == 200
    assert b"Final notice email" in page.content

    response = client.post(
        f"/billing/partners/{partner.pk}/dunning/{step.pk}/",
        {"days_overdue": "21", "kind": "final_notice_email", "effective_from": "2026-05-01", "active": "on"},
    )
    assert response.status_code == 302
    step.refresh_from_db()
    assert step.days_overdue == 21
    assert step.history.first().history_user == finance

    added = client.post(
        f"/billing/partners/{partner.pk}/dunning/",
        {"days_overdue": "3", "kind": "reminder_email", "effective_from": "2026-05-01", "active": "on"},
    )
    assert added.status_code == 302
    assert DunningStep.objects.filter(partner=partner, days_overdue=3).exists()


def test_a_duplicate_step_is_refused_on_the_form(client, finance, partner):
    dunning_steps_ensure(actor=None)
    client.force_login(finance)

    response = client.post(
        f"/billing/partners/{partner.pk}/dunning/",
        {"days_overdue": "7", "kind": "reminder_email", "effective_from": "2026-05-01", "active": "on"},
    )

    assert response.status_code == 200
    assert DunningStep.objects.filter(partner=partner, days_overdue=7).count() == 1
    assert b"already exists" in response.content


def test_another_partners_steps_are_not_found(client, finance, other_partner):
    dunning_steps_ensure(actor=None)
    step = DunningStep.objects.filter(partner=other_partner).first()
    client.force_login(finance)

    assert client.get(f"/billing/partners/{other_partner.pk}/dunning/").status_code == 404
    assert client.get(f"/billing/partners/{other_partner.pk}/dunning/{step.pk}/").status_code == 404
    posted = client.post(
        f"/billing/partners/{other_partner.pk}/dunning/{step.pk}/",
        {"days_overdue": "1", "kind": "reminder_email", "effective_from": "2026-05-01", "active": "on"},
    )
    assert posted.status_code == 404
    step.refresh_from_db()
    assert step.days_overdue != 1


def test_a_step_named_under_the_wrong_partner_is_not_found(client, finance, partner, other_partner):
    dunning_steps_ensure(actor=None)
    other_step = DunningStep.objects.filter(partner=other_partner).first()
    client.force_login(finance)

    assert client.get(f"/billing/partners/{partner.pk}/dunning/{other_step.pk}/").status_code == 404


def test_a_billing_agent_sees_the_steps_but_may_not_change_them(client, agent, partner):
    dunning_steps_ensure(actor=None)
    step = DunningStep.objects.filter(partner=partner).first()
    client.force_login(agent)

    assert client.get(f"/billing/partners/{partner.pk}/dunning/").status_code == 200
    assert client.get(f"/billing/partners/{partner.pk}/dunning/{step.pk}/").status_code == 403
    refused = client.post(
        f"/billing/partners/{partner.pk}/dunning/",
        {"days_overdue": "3", "kind": "reminder_email", "effective_from": "2026-05-01", "active": "on"},
    )
    assert refused.status_code == 403


def test_the_account_page_shows_the_dunning_history(client, clock, debtor, agent):
    on(clock, days_after_due(7))
    run_job()
    client.force_login(agent)

    page = client.get(f"/billing/customers/{debtor.reference}/account/")

    assert page.status_code == 200
    section = page.content.decode().split('id="dunning"')[1].split("</table>")[0]
    assert "Reminder email (7 days)" in section
    assert "Sent" in section
    assert "£120.00" in section


def test_a_portal_user_does_not_see_the_dunning_history(client, clock, debtor, make_user):
    on(clock, days_after_due(7))
    run_job()
    portal: User = make_user(Role.CUSTOMER, customer=debtor)
    client.force_login(portal)

    page = client.get(f"/billing/customers/{debtor.reference}/account/")

    assert page.status_code == 200
    assert 'id="dunning"' not in page.content.decode()


def test_an_erased_customer_is_left_alone(clock, partner, profile):
    customer = CustomerFactory(partner=partner)
    issue_invoice(customer, "10.00")
    Customer.objects.filter(pk=customer.pk).update(
        erased_at=datetime.datetime(2026, 5, 2, tzinfo=datetime.UTC)
    )
    on(clock, days_after_due(30))

    assert run_job() == {}


def test_lifting_the_restriction_releases_the_held_suspension(clock, debtor, make_user):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    customer_restrict_processing(customer=debtor, actor=dpo, reason="Accuracy contested")
    on(clock, days_after_due(28))
    run_job()

    with run_on_commit():
        customer_lift_processing_restriction(customer=debtor, actor=dpo, reason="Resolved")

    assert ProvisioningOrder.objects.get(customer=debtor).status == ProvisioningOrder.Status.SUBMITTED


def test_beat_runs_the_job_daily(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["dunning"]

    assert entry["task"] == "billing.tasks.dunning_daily"
    assert entry["schedule"].hour == {8}
    assert dunning_daily.name == "billing.tasks.dunning_daily"
    assert dunning_daily.acks_late


def test_the_admin_changes_a_step_through_the_dunning_service(client, finance, partner):
    dunning_steps_ensure(actor=None)
    step = DunningStep.objects.get(partner=partner, kind="reminder_email")
    client.force_login(finance)

    response = client.post(
        f"/admin/billing/dunningstep/{step.pk}/change/",
        {"days_overdue": "9", "kind": "reminder_email", "effective_from": "2026-05-01", "active": "on"},
    )

    assert response.status_code == 302
    step.refresh_from_db()
    assert (step.days_overdue, step.history.first().history_user) == (9, finance)
    assert AuditEvent.objects.filter(action="dunning.step_changed", actor_id=finance.pk).exists()
    assert client.post(f"/admin/billing/dunningstep/{step.pk}/delete/", {"post": "yes"}).status_code == 403


# Steps held by a restriction, once it ends.


def test_notices_held_by_a_restriction_are_sent_once_after_it_is_lifted_while_still_owed(
    client, clock, debtor, make_user, agent
):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    customer_restrict_processing(customer=debtor, actor=dpo, reason="Accuracy contested")
    on(clock, days_after_due(7))
    assert run_job() == {Outcome.HELD_RESTRICTED: 1}
    on(clock, days_after_due(14))
    assert run_job() == {Outcome.HELD_RESTRICTED: 1}
    on(clock, days_after_due(16))
    assert run_job() == {}  # still restricted: still held
    assert mail.outbox == []

    customer_lift_processing_restriction(customer=debtor, actor=dpo, reason="Resolved")
    on(clock, days_after_due(17))
    assert run_job() == {"released_sent": 2}
    assert run_job() == {}  # once

    assert [message.subject.split(":")[0] for message in mail.outbox] == ["Reminder", "Final notice"]
    assert "£120.00 on your account is overdue" in mail.outbox[1].body
    held = DunningAction.objects.filter(customer=debtor).order_by("days_overdue")
    assert [(a.outcome, a.released_outcome) for a in held] == [(Outcome.HELD_RESTRICTED, Outcome.SENT)] * 2
    assert all(a.released_at == held[0].released_at is not None for a in held)
    assert all(a.lawful_basis == LAWFUL_BASIS_DEBT_RECOVERY and "Art. 18" in a.note for a in held)
    client.force_login(agent)
    section = client.get(f"/billing/customers/{debtor.reference}/account/").content.decode()
    assert "Held: processing restricted; then sent on 1 Jun 2026" in section.split('id="dunning"')[1]

    on(clock, days_after_due(28))  # the episode goes on: the next step is taken as usual
    assert run_job() == {Outcome.SUSPENDED: 1}
    assert len(mail.outbox) == 2


def test_a_debt_paid_while_restricted_sends_nothing_and_withdraws_the_held_suspension(
    clock, debtor, make_user, agent
):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    customer_restrict_processing(customer=debtor, actor=dpo, reason="Accuracy contested")
    on(clock, days_after_due(28))
    assert run_job() == {Outcome.HELD_RESTRICTED: 3}
    order = ProvisioningOrder.objects.get(customer=debtor)
    assert order.status == ProvisioningOrder.Status.HELD

    on(clock, days_after_due(29))
    payment_record(
        customer=debtor,
        method=Payment.Method.CARD,
        amount=Decimal("120.00"),
        received_on=days_after_due(29),
        actor=agent,
    )
    assert run_job() == {"released_skipped_paid": 3}
    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.WITHDRAWN
    assert order.history.first().history_change_reason.startswith("Withdrawn: Dunning")

    with run_on_commit():
        customer_lift_processing_restriction(customer=debtor, actor=dpo, reason="Resolved")
    on(clock, days_after_due(30))
    assert run_job() == {}
    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.WITHDRAWN  # the lift did not suspend a paid customer
    assert mail.outbox == []
    assert set(DunningAction.objects.filter(customer=debtor).values_list("released_outcome", flat=True)) == {
        Outcome.SKIPPED_PAID
    }


def test_a_held_suspension_released_by_the_lift_is_recorded_as_taken(clock, debtor, make_user):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    customer_restrict_processing(customer=debtor, actor=dpo, reason="Accuracy contested")
    on(clock, days_after_due(28))
    run_job()
    mail.outbox.clear()

    with run_on_commit():
        customer_lift_processing_restriction(customer=debtor, actor=dpo, reason="Resolved")
    on(clock, days_after_due(29))

    assert run_job() == {"released_sent": 2, "released_suspended": 1}
    assert run_job() == {}
    assert ProvisioningOrder.objects.get(customer=debtor).status == ProvisioningOrder.Status.SUBMITTED
    suspension = DunningAction.objects.get(customer=debtor, kind="suspend_outgoing_calls")
    assert suspension.released_outcome == Outcome.SUSPENDED
    assert "released when the restriction was lifted" in suspension.note
    assert len(mail.outbox) == 2


def test_an_episode_older_than_the_catch_up_window_is_not_taken_again(clock, debtor):
    """Steps taken for a debt overdue longer than the catch-up window (the last step's days and
    CATCH_UP_DAYS) stay taken: the next day's run records nothing (it used to record them again and fail on
    the unique constraint, stopping the job for everyone in the chunk)."""
    on(clock, days_after_due(100))
    assert run_job() == {Outcome.SENT: 2, Outcome.SUSPENDED: 1}

    on(clock, days_after_due(101))
    assert run_job() == {}
    assert len(mail.outbox) == 2
