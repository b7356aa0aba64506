"""The audit trail: what writes to it, and `verify_audit_chain` catching an edited or deleted row."""

import itertools
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.audit import AuditEntry, audit_record, audit_record_many, verify_chain
from accounts.models import AccessLog, AuditEvent, Role
from accounts.tasks import verify_audit_chain_nightly
from billing import services as run_services
from billing.demo import uk_tariff
from privacy.models import PrivacyRequest
from privacy.services import requests as privacy_services
from tests.billing.factories import billing_profile, calculated_run, month
from tests.conftest import require_service
from tests.factories import PASSWORD


def _three_events(actor):
    return [audit_record(actor=actor, action=f"test.event_{n}", detail={"n": n}) for n in range(3)]


def test_each_event_holds_the_hash_of_the_one_before(make_user):
    user = make_user(Role.ADMINISTRATOR)
    first, second, third = _three_events(user)

    assert second.previous_hash == first.hash
    assert third.previous_hash == second.hash
    assert [third.id - 1, third.id - 2] == [second.id, first.id]
    checked, problems = verify_chain()
    assert problems == []
    assert checked == AuditEvent.objects.count()


def test_a_batch_is_chained_as_if_appended_one_by_one_in_the_same_queries_however_long(make_user):
    user = make_user(Role.ADMINISTRATOR)
    first = audit_record(actor=user, action="test.before")
    queries = []
    batches = []
    for size in (2, 30):
        with CaptureQueriesContext(connection) as captured:
            batches.append(
                audit_record_many(
                    actor=user, entries=[AuditEntry(f"test.batch_{n}", user, {"n": n}) for n in range(size)]
                )
            )
        queries.append(len(captured))
    after = audit_record(actor=user, action="test.after")

    assert queries[0] == queries[1]
    events = [first, *batches[0], *batches[1], after]
    assert [event.pk for event in events] == list(range(first.pk, first.pk + 34))
    assert all(later.previous_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert batches[1][5].target_id == str(user.pk) and batches[1][5].detail == {"n": 5}
    assert audit_record_many(actor=user, entries=[]) == []
    checked, problems = verify_chain()
    assert problems == [] and checked == AuditEvent.objects.count()


def test_the_command_passes_an_intact_chain(make_user, capsys):
    _three_events(make_user(Role.ADMINISTRATOR))

    call_command("verify_audit_chain")

    assert "Audit chain intact" in capsys.readouterr().out


def test_a_raw_sql_update_is_detected_and_named(make_user, capsys):
    _, middle, _ = _three_events(make_user(Role.ADMINISTRATOR))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_auditevent SET action = %s WHERE id = %s", ["test.harmless", middle.id]
        )

    with pytest.raises(CommandError, match="Audit chain broken"):
        call_command("verify_audit_chain")

    assert f"event {middle.id}: edited" in capsys.readouterr().err


def test_a_raw_sql_delete_is_detected_and_named(make_user, capsys):
    _, middle, _ = _three_events(make_user(Role.ADMINISTRATOR))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent WHERE id = %s", [middle.id])

    with pytest.raises(CommandError):
        call_command("verify_audit_chain")

    assert f"event {middle.id}: deleted" in capsys.readouterr().err


def test_deleting_the_newest_event_is_detected_too(make_user):
    *_, last = _three_events(make_user(Role.ADMINISTRATOR))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent WHERE id = %s", [last.id])

    _, problems = verify_chain()

    assert [str(problem) for problem in problems] == [
        f"event {last.id}: deleted (events {last.id} are missing at the end)"
    ]


def test_rewriting_a_row_with_a_recomputed_hash_is_still_caught_by_the_next_link(make_user):
    first, second, _ = _three_events(make_user(Role.ADMINISTRATOR))
    from accounts.audit import event_hash

    forged = AuditEvent.objects.get(pk=first.pk)
    forged.action = "test.forged"
    forged_hash = event_hash(forged)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_auditevent SET action = %s, hash = %s WHERE id = %s",
            ["test.forged", forged_hash, first.id],
        )

    _, problems = verify_chain()

    assert [problem.event_id for problem in problems] == [second.id]


def test_the_orm_refuses_to_change_or_delete_an_event(make_user):
    event = audit_record(actor=make_user(Role.ADMINISTRATOR), action="test.event")
    event.action = "test.changed"

    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_the_nightly_task_reports_tampering_to_the_dpo_and_administrators(make_user, mailoutbox):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    _, middle, _ = _three_events(dpo)
    assert verify_audit_chain_nightly.delay().get()["problems"] == []
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent WHERE id = %s", [middle.id])

    result = verify_audit_chain_nightly.delay().get()

    assert result["problems"] == [f"event {middle.id}: deleted (events {middle.id} are missing)"]
    assert mailoutbox[-1].to == [dpo.email]
    assert str(middle.id) in mailoutbox[-1].body


def test_the_nightly_task_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["verify-audit-chain"]

    assert entry["task"] == verify_audit_chain_nightly.name


# What is audited ----------------------------------------------------------------------------------


def test_logins_and_failed_logins_are_audited_without_the_typed_username(make_user):
    user = make_user(Role.BILLING_AGENT)
    client = Client()
    client.post("/login/", {"username": user.email, "password": "wrong"})
    client.post("/login/", {"username": user.email, "password": PASSWORD})

    failed = AuditEvent.objects.get(action="auth.login_failed")
    login = AuditEvent.objects.get(action="auth.login")
    assert login.actor_id == user.pk
    assert user.email not in str(failed.detail)
    assert len(failed.detail["username_digest"]) == 64


def test_role_changes_are_audited_with_the_acting_user(client, make_user):
    from django.contrib.auth.models import Group

    administrator = make_user(Role.ADMINISTRATOR)
    agent = make_user(Role.SUPPORT_AGENT)
    group = Group.objects.get(name=Role.FINANCE_MANAGER.value)
    client.force_login(administrator)
    data = {
        "email": agent.email,
        "full_name": agent.full_name,
        "is_active": "on",
        "is_staff": "on",
        "groups": [g.pk for g in agent.groups.all()] + [group.pk],
        "date_joined_0": "2025-01-01",
        "date_joined_1": "00:00:00",
    }
    response = client.post(f"/admin/accounts/user/{agent.pk}/change/", data)
    assert response.status_code == 302, response.content[:2000]

    event = AuditEvent.objects.filter(
        action="permissions.user_groups_changed", target_id=str(agent.pk)
    ).last()
    assert event.actor_id == administrator.pk
    assert event.detail["change"] == "add"
    assert group.pk in event.detail["ids"]


def test_granting_and_revoking_one_customer_to_a_user_is_audited(make_user, customer):
    from guardian.shortcuts import assign_perm, remove_perm

    user = make_user(Role.SUPPORT_AGENT, partner=None)
    assign_perm("accounts.view_customer", user, customer)
    remove_perm("accounts.view_customer", user, customer)

    events = AuditEvent.objects.filter(target_type="accounts.customer", target_id=str(customer.pk))
    granted = events.get(action="permissions.customer_access_granted", detail__user=user.pk)
    revoked = events.get(action="permissions.customer_access_revoked", detail__user=user.pk)
    assert granted.id < revoked.id


def test_restricting_processing_is_audited(make_user, customer):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)

    services.customer_restrict_processing(customer=customer, actor=dpo, reason="Accuracy contested")
    services.customer_lift_processing_restriction(customer=customer, actor=dpo, reason="Resolved")

    actions = list(
        AuditEvent.objects.filter(
            target_type="accounts.customer", target_id=str(customer.pk), action__startswith="customer."
        ).values_list("action", flat=True)
    )
    assert actions == ["customer.processing_restricted", "customer.processing_restriction_lifted"]


def test_a_reveal_is_audited_with_its_access_log_entry(client, make_user, customer):
    agent = make_user(Role.SUPPORT_AGENT)
    client.force_login(agent)

    client.post(f"/customers/{customer.reference}/reveal/", {"reason": "Customer on the phone"})

    entry = AccessLog.objects.get(action=AccessLog.Action.REVEAL)
    event = AuditEvent.objects.get(action="access.reveal")
    assert event.actor_id == agent.pk
    assert event.detail["access_log"] == entry.pk


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_writers_keep_one_chain(make_user):
    require_service(
        "PostgreSQL",
        connection.vendor == "postgresql",
        "SQLite has one writer at a time, so writers cannot race there",
    )
    actor = make_user(Role.ADMINISTRATOR)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                audit_record(actor=actor, action="test.concurrent", detail={"thread": n, "i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    checked, problems = verify_chain()
    assert problems == []
    assert checked == AuditEvent.objects.count()
    assert AuditEvent.objects.filter(action="test.concurrent").count() == 40


def test_privacy_request_steps_bill_run_steps_and_erasure_are_chained_without_free_text(
    customer, make_user, django_capture_on_commit_callbacks
):
    dpo, second = make_user(Role.DATA_PROTECTION_OFFICER), make_user(Role.DATA_PROTECTION_OFFICER)
    billing_profile(customer.partner, default_tariff=uk_tariff())
    run = calculated_run(customer.partner, month(2025, 1), actor=make_user(Role.BILLING_AGENT))
    request = privacy_services.privacy_request_receive(
        kind=PrivacyRequest.Kind.ERASURE,
        channel=PrivacyRequest.Channel.EMAIL,
        details="Secret words of the subject",
        actor=dpo,
        customer=customer,
    )
    privacy_services.privacy_request_attest_identity(
        privacy_request=request, actor=dpo, reason="Known caller"
    )
    privacy_services.privacy_request_start(privacy_request=request, actor=dpo)
    privacy_services.privacy_request_submit_for_approval(privacy_request=request, actor=dpo)
    privacy_services.privacy_request_approve(privacy_request=request, actor=second)
    run_services.bill_run_cancel(bill_run=run, actor=make_user(Role.BILLING_AGENT), reason="Erasure first")
    with django_capture_on_commit_callbacks(execute=True):
        privacy_services.privacy_request_complete(privacy_request=request, actor=second, reason="Erased")

    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert {"bill_run.created", "bill_run.cancelled"} <= set(actions)
    for step in ("received", "identity_attested", "start", "submit_for_approval", "approved", "complete"):
        assert any(a == f"privacy_request.{step}" for a in actions), (step, actions)
    assert "customer.erased" in actions
    assert not any(
        "Secret words" in str(detail) for detail in AuditEvent.objects.values_list("detail", flat=True)
    )
    checked, problems = verify_chain()
    assert problems == [] and checked == len(actions)
