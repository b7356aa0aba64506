"""The audit trail: what writes to it, and `verify_audit_chain` catching an edited, deleted or forged row,
whether the forger knows the HMAC key or not (the signed checkpoints outside the database)."""

import datetime
import hashlib
import hmac
import itertools
import json
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts import services
from accounts.audit import (
    GENESIS_HASH,
    AuditEntry,
    ChainProblem,
    audit_checkpoint_write,
    audit_record,
    audit_record_many,
    canonical_serialisation,
    verify_chain,
)
from accounts.audit_checkpoints import (
    CheckpointDirectoryError,
    checkpoint_sign,
    checkpoint_write_file,
    checkpoints_read,
)
from accounts.models import AccessLog, AuditChainHead, AuditEvent, Role
from accounts.tasks import verify_audit_chain_nightly, write_audit_checkpoint_nightly
from billing.demo import uk_tariff
from billing.services.bill_runs import bill_run_cancel
from privacy.models import PrivacyRequest
from privacy.services.requests.carrying_out import privacy_request_complete
from privacy.services.requests.identity import privacy_request_attest_identity
from privacy.services.requests.receiving import privacy_request_receive
from privacy.services.requests.workflow import (
    privacy_request_approve,
    privacy_request_start,
    privacy_request_submit_for_approval,
)
from tests.billing.factories import billing_profile, calculated_run, month
from tests.conftest import require_service
from tests.factories import PASSWORD

KEY = "audit-key-for-the-tests-0123456789abcdef"
NEW_KEY = "the-audit-key-after-rotation-0123456789"
WRONG_KEY = "a-key-the-servers-never-had-0123456789ab"
NIGHT = datetime.datetime(2026, 11, 30, 2, 45, tzinfo=datetime.UTC)


def kid(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass
class AuditSettings:
    settings: Any
    configured: list[str]

    def use_keys(self, *newest: str) -> None:
        """``newest`` first, then the keys configured outside the test, which signed the events the flush
        after a transactional test leaves behind (its post_migrate handlers are audited)."""
        self.settings.AUDIT_HMAC_KEYS = [*newest, *self.configured]

    @property
    def checkpoint_dir(self) -> Path:
        return Path(self.settings.AUDIT_CHECKPOINT_DIR)


@pytest.fixture(autouse=True)
def audit_settings(settings, tmp_path):
    """A known key, and checkpoints in a directory of the test's own (never the developer's .local/)."""
    audit = AuditSettings(settings, [key for key in settings.AUDIT_HMAC_KEYS if key not in (KEY, NEW_KEY)])
    audit.use_keys(KEY)
    settings.AUDIT_CHECKPOINT_DIR = tmp_path / "audit-checkpoints"
    return audit


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


# The key and the checkpoints ----------------------------------------------------------------------


def _signer(key: str) -> Callable[[bytes], str]:
    return lambda message: hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def _unkeyed(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()


def _serialised(row: AuditEvent, previous_hash: str) -> bytes:
    return canonical_serialisation(
        event_id=row.pk,
        at=row.at,
        actor_id=row.actor_id,
        actor_label=row.actor_label,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        detail=row.detail,
        previous_hash=previous_hash,
    )


def _forge_tail(from_id: int, *, sign: Callable[[bytes], str], key_id: str | None = None) -> list[int]:
    """What someone who can write to the database does: rewrite every event from ``from_id`` on with raw
    SQL, re-link and re-sign each with ``sign``, and move the head row to the new last hash."""
    rows = list(AuditEvent.objects.filter(pk__gte=from_id).order_by("pk"))
    previous = rows[0].previous_hash
    with connection.cursor() as cursor:
        for row in rows:
            row.action = "test.forged"
            row.key_id = row.key_id if key_id is None else key_id
            digest = sign(_serialised(row, previous))
            cursor.execute(
                "UPDATE accounts_auditevent SET action = %s, previous_hash = %s, hash = %s, key_id = %s "
                "WHERE id = %s",
                [row.action, previous, digest, row.key_id, row.pk],
            )
            previous = digest
        cursor.execute("UPDATE accounts_auditchainhead SET last_hash = %s WHERE id = 1", [previous])
    return [row.pk for row in rows]


def test_each_event_is_signed_with_hmac_sha256_under_the_newest_key(make_user):
    event = audit_record(actor=make_user(Role.ADMINISTRATOR), action="test.signed", detail={"n": 1})
    stored = AuditEvent.objects.get(pk=event.pk)

    assert stored.key_id == kid(KEY)
    assert stored.hash == _signer(KEY)(_serialised(stored, stored.previous_hash))
    assert stored.hash != _unkeyed(_serialised(stored, stored.previous_hash))


@pytest.mark.parametrize(
    ("sign", "key_id", "problem"),
    [
        (_unkeyed, None, "edited (its content no longer matches its hash)"),
        (_unkeyed, "", "signed with key (none), which is not configured (unknown key id)"),
        (_signer(WRONG_KEY), None, "edited (its content no longer matches its hash)"),
        (
            _signer(WRONG_KEY),
            kid(WRONG_KEY),
            f"signed with key {kid(WRONG_KEY)}, which is not configured (unknown key id)",
        ),
    ],
    ids=["sha256", "sha256-as-unkeyed", "wrong-key", "wrong-key-own-id"],
)
def test_a_tail_and_head_forged_without_the_key_are_named_event_by_event(make_user, sign, key_id, problem):
    user = make_user(Role.ADMINISTRATOR)
    _, second, _, _ = [audit_record(actor=user, action=f"test.event_{n}") for n in range(4)]

    forged = _forge_tail(second.pk + 1, sign=sign, key_id=key_id)

    _, problems = verify_chain()
    assert len(forged) == 2
    assert [str(p) for p in problems] == [f"event {pk}: {problem}" for pk in forged]


def test_a_tail_rewritten_with_the_right_key_after_a_checkpoint_is_named_by_the_checkpoint(make_user):
    user = make_user(Role.ADMINISTRATOR)
    _three_events(user)
    first, _ = audit_checkpoint_write(actor=user, now=NIGHT)
    _three_events(user)
    second, _ = audit_checkpoint_write(actor=user, now=NIGHT + datetime.timedelta(days=1))
    assert verify_chain()[1] == []

    forged = _forge_tail(first.last_event_id + 2, sign=_signer(KEY))

    _, problems = verify_chain()
    assert second.last_event_id in forged
    assert problems == [
        ChainProblem(
            second.last_event_id,
            f"differs from the checkpoint of 2026-12-01 02:45 UTC ({second.filename}); the events after "
            f"{first.last_event_id}, the last that matches a checkpoint, may have been rewritten",
        )
    ]


def test_a_tail_cut_with_its_head_row_after_a_checkpoint_is_named_by_the_checkpoint(make_user):
    user = make_user(Role.ADMINISTRATOR)
    *_, before, checkpointed = [audit_record(actor=user, action=f"test.event_{n}") for n in range(4)]
    checkpoint, _ = audit_checkpoint_write(actor=user, now=NIGHT)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent WHERE id > %s", [before.pk])
        cursor.execute(
            "UPDATE accounts_auditchainhead SET last_event_id = %s, last_hash = %s WHERE id = 1",
            [before.pk, before.hash],
        )

    _, problems = verify_chain()

    assert checkpoint.last_event_id == checkpointed.pk
    assert [str(p) for p in problems] == [
        f"event {checkpointed.pk}: missing: the checkpoint of 2026-11-30 02:45 UTC ({checkpoint.filename}) "
        f"records the chain up to this event, but it now ends at event {before.pk}"
    ]


def test_a_checkpoint_is_a_signed_read_only_file_that_is_never_replaced(make_user, audit_settings):
    user = make_user(Role.ADMINISTRATOR)
    *_, last = _three_events(user)
    directory = audit_settings.checkpoint_dir

    checkpoint, path = audit_checkpoint_write(actor=user, now=NIGHT)

    assert path == directory / f"checkpoint-20261130T024500Z-event-{last.pk}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    signed = {name: value for name, value in data.items() if name != "hmac"}
    assert signed == {
        "format": "fusion-audit-checkpoint/1",
        "last_event_id": last.pk,
        "last_hash": last.hash,
        "written_at": "2026-11-30T02:45:00.000000Z",
        "key_id": kid(KEY),
    }
    assert data["hmac"] == _signer(KEY)(json.dumps(signed, sort_keys=True, separators=(",", ":")).encode())
    recorded = AuditEvent.objects.get(action="audit.checkpoint_written")
    assert recorded.detail == {"event": last.pk, "file": path.name, "key_id": kid(KEY)}
    assert checkpoints_read(directory) == ([checkpoint], [])

    content = path.read_bytes()
    with pytest.raises(FileExistsError):
        checkpoint_write_file(directory=directory, checkpoint=checkpoint)
    forged = checkpoint_sign(last_event_id=last.pk, last_hash="f" * 64, at=NIGHT)
    with pytest.raises(FileExistsError):
        checkpoint_write_file(directory=directory, checkpoint=forged)
    assert path.read_bytes() == content
    assert sorted(os.listdir(directory)) == [path.name]


def test_no_checkpoint_is_written_into_a_directory_others_may_write(make_user, audit_settings):
    audit_settings.checkpoint_dir.mkdir(mode=0o700)
    audit_settings.checkpoint_dir.chmod(0o770)
    user = make_user(Role.ADMINISTRATOR)

    with pytest.raises(CheckpointDirectoryError, match="writable by its group or others"):
        audit_checkpoint_write(actor=user, now=NIGHT)

    assert os.listdir(audit_settings.checkpoint_dir) == []
    assert not AuditEvent.objects.filter(action="audit.checkpoint_written").exists()


def test_a_forged_foreign_or_unreadable_checkpoint_file_is_a_problem(make_user, audit_settings, monkeypatch):
    user = make_user(Role.ADMINISTRATOR)
    *_, last = _three_events(user)
    directory = audit_settings.checkpoint_dir
    _, edited = audit_checkpoint_write(actor=user, now=NIGHT)
    data = json.loads(edited.read_text())
    edited.chmod(0o640)
    edited.write_text(json.dumps({**data, "last_hash": "f" * 64}))
    audit_settings.use_keys(WRONG_KEY)
    _, foreign = audit_checkpoint_write(actor=user, now=NIGHT + datetime.timedelta(hours=1))
    audit_settings.use_keys(KEY)
    (directory / "checkpoint-garbage.json").write_text("{not json")

    _, problems = verify_chain()

    assert [str(p) for p in problems] == [
        f"checkpoint file checkpoint-20261130T024500Z-event-{last.pk}.json: its signature does not verify "
        "(forged or corrupted)",
        f"checkpoint file {foreign.name}: is signed with key {kid(WRONG_KEY)}, which is not configured",
        "checkpoint file checkpoint-garbage.json: is not a checkpoint in the expected format",
        # The event recording the foreign checkpoint was signed with the wrong key as well.
        f"event {last.pk + 2}: signed with key {kid(WRONG_KEY)}, which is not configured (unknown key id)",
    ]

    def unreadable(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "scandir", unreadable)
    assert checkpoints_read(directory) == (
        [],
        [f"the checkpoint directory {directory} cannot be read (Permission denied)"],
    )


def test_no_checkpoint_directory_yet_is_no_problem(make_user, audit_settings):
    _three_events(make_user(Role.ADMINISTRATOR))

    assert not audit_settings.checkpoint_dir.exists()
    assert verify_chain()[1] == []


def test_the_nightly_checkpoint_is_written_and_mailed_to_the_dpo_group(make_user, mailoutbox, audit_settings):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    make_user(Role.ADMINISTRATOR)
    *_, last = _three_events(dpo)

    filename = write_audit_checkpoint_nightly.delay().get()

    checkpoints, problems = checkpoints_read(audit_settings.checkpoint_dir)
    assert problems == [] and [c.filename for c in checkpoints] == [filename]
    assert (checkpoints[0].last_event_id, checkpoints[0].last_hash) == (last.pk, last.hash)
    assert [mail.to for mail in mailoutbox] == [[dpo.email]]
    assert filename in mailoutbox[0].body and last.hash in mailoutbox[0].body
    recorded = AuditEvent.objects.get(action="audit.checkpoint_written")
    assert recorded.actor_label == "audit-checkpoint@system.fusion.invalid"
    assert verify_chain()[1] == []


def test_the_nightly_checkpoint_is_on_the_beat_schedule_after_the_verification(settings):
    checkpoint = settings.CELERY_BEAT_SCHEDULE["audit-checkpoint"]
    verification = settings.CELERY_BEAT_SCHEDULE["verify-audit-chain"]

    assert checkpoint["task"] == write_audit_checkpoint_nightly.name
    assert (checkpoint["schedule"].hour, checkpoint["schedule"].minute) == ({2}, {45})
    assert (verification["schedule"].hour, verification["schedule"].minute) == ({2}, {15})


def test_the_command_mails_the_dpo_and_administrators_and_fails_on_a_break(make_user, mailoutbox, capsys):
    dpo, administrator = make_user(Role.DATA_PROTECTION_OFFICER), make_user(Role.ADMINISTRATOR)
    make_user(Role.SUPPORT_AGENT)
    _, middle, _ = _three_events(administrator)
    call_command("verify_audit_chain")
    assert mailoutbox == []
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_auditevent SET action = %s WHERE id = %s", ["test.harmless", middle.pk]
        )

    with pytest.raises(CommandError, match="Audit chain broken"):
        call_command("verify_audit_chain")

    assert [sorted(mail.to) for mail in mailoutbox] == [sorted([dpo.email, administrator.email])]
    assert f"event {middle.pk}: edited" in mailoutbox[0].body
    assert "Mailed to 2" in capsys.readouterr().err


def test_events_under_an_old_key_verify_while_it_stays_configured(make_user, audit_settings, capsys):
    user = make_user(Role.ADMINISTRATOR)
    _three_events(user)
    audit_settings.use_keys(NEW_KEY, KEY)

    after = _three_events(user)

    under_old = list(AuditEvent.objects.filter(key_id=kid(KEY)).values_list("pk", flat=True))
    assert under_old and {event.key_id for event in after} == {kid(NEW_KEY)}
    assert verify_chain()[1] == []
    call_command("verify_audit_chain")
    out = capsys.readouterr().out
    assert f"  {kid(NEW_KEY)} (newest): 3\n" in out and f"  {kid(KEY)}: {len(under_old)}\n" in out
    audit_settings.use_keys(NEW_KEY)
    assert [p.event_id for p in verify_chain()[1]] == under_old


def test_a_retired_key_cannot_sign_an_event_after_a_newer_one(make_user, audit_settings):
    """Someone holding the old key (say, leaked after a rotation) appends an event signed with it."""
    user = make_user(Role.ADMINISTRATOR)
    audit_settings.use_keys(NEW_KEY, KEY)
    *_, last = _three_events(user)
    forged = AuditEvent(
        id=last.pk + 1,
        at=last.at,
        actor_label="anonymous",
        action="test.forged",
        previous_hash=last.hash,
        key_id=kid(KEY),
    )
    forged.hash = _signer(KEY)(_serialised(forged, last.hash))
    AuditEvent.objects.bulk_create([forged])
    AuditChainHead.objects.filter(pk=1).update(last_event_id=forged.pk, last_hash=forged.hash)

    _, problems = verify_chain()

    assert [str(p) for p in problems] == [
        f"event {forged.pk}: signed with the retired key {kid(KEY)}, though event {last.pk} before it was "
        "signed with a newer key"
    ]


# Migration 0007: events recorded before the chain was keyed -----------------------------------------


def _legacy_chain(apps, count: int) -> None:
    """Events as the unkeyed code wrote them, through the models of migration 0006."""
    Event = apps.get_model("accounts", "AuditEvent")
    previous = GENESIS_HASH
    for pk in range(1, count + 1):
        event = Event(
            id=pk, at=NIGHT, actor_label="anonymous", action=f"test.legacy_{pk}", previous_hash=previous
        )
        event.hash = _unkeyed(_serialised(event, previous))
        event.save()
        previous = event.hash
    apps.get_model("accounts", "AuditChainHead").objects.update_or_create(
        pk=1, defaults={"last_event_id": count, "last_hash": previous}
    )


def _migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


BEFORE, KEYED = ("accounts", "0006_security_role_permissions"), ("accounts", "0007_audit_key_id")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrations_restored")
def test_the_migration_re_signs_an_intact_unkeyed_chain_with_the_newest_key():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent")
    old_apps = _migrate(BEFORE)
    _legacy_chain(old_apps, 5)
    legacy = dict(old_apps.get_model("accounts", "AuditEvent").objects.values_list("pk", "hash"))

    _migrate(KEYED)

    checked, problems = verify_chain()
    assert (checked, problems) == (5, [])
    rows = list(AuditEvent.objects.order_by("pk"))
    assert {row.key_id for row in rows} == {kid(KEY)}
    assert all(row.hash != legacy[row.pk] for row in rows)
    assert AuditChainHead.objects.get().last_hash == rows[-1].hash

    _migrate(BEFORE)  # and back: the unkeyed hashes again
    assert dict(old_apps.get_model("accounts", "AuditEvent").objects.values_list("pk", "hash")) == legacy
    _migrate(KEYED)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrations_restored")
def test_the_migration_refuses_to_re_sign_an_unkeyed_chain_that_was_tampered_with():
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM accounts_auditevent")
    old_apps = _migrate(BEFORE)
    _legacy_chain(old_apps, 4)
    old_apps.get_model("accounts", "AuditEvent").objects.filter(pk=3).update(action="test.edited")

    with pytest.raises(RuntimeError, match="Audit event 3 was edited"):
        _migrate(KEYED)

    old_apps.get_model("accounts", "AuditEvent").objects.all().delete()
    _migrate(KEYED)


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
    request = privacy_request_receive(
        kind=PrivacyRequest.Kind.ERASURE,
        channel=PrivacyRequest.Channel.EMAIL,
        details="Secret words of the subject",
        actor=dpo,
        customer=customer,
    )
    privacy_request_attest_identity(privacy_request=request, actor=dpo, reason="Known caller")
    privacy_request_start(privacy_request=request, actor=dpo)
    privacy_request_submit_for_approval(privacy_request=request, actor=dpo)
    privacy_request_approve(privacy_request=request, actor=second)
    bill_run_cancel(bill_run=run, actor=make_user(Role.BILLING_AGENT), reason="Erasure first")
    with django_capture_on_commit_callbacks(execute=True):
        privacy_request_complete(privacy_request=request, actor=second, reason="Erased")

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
