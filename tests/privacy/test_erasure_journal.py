"""The erasure journal (privacy.erasure_journal): an erasure that commits is journaled outside the database,
with ids and times only; one rolled back is not; a lost entry is written again from the database; and
``manage.py reapply_erasures`` carries the journaled erasures out again on a restored database.

The restored database is simulated here: the journal holds an entry for a customer whom this database
has not erased, as after restoring a backup taken before the erasure. tests/privacy/test_erasure_restore.py
does it for real on PostgreSQL with pg_dump and pg_restore."""

import datetime
import json
import logging
import os
import stat
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import transaction

from accounts.audit import verify_chain
from accounts.models import AuditEvent, Contact, Customer, Site
from accounts.signed_files import FILE_MODE
from privacy import tasks
from privacy.erasure import customer_erase, customers_erase
from privacy.erasure_journal import (
    JournalDirectoryError,
    journal_directory,
    journal_entry_sign,
    journal_read,
    journal_write,
)
from privacy.models import ErasureRecord, LegalHold
from privacy.services.retention import legal_hold_set
from tests.factories import full_customer
from tests.privacy.conftest import build_subject

BACKUP_AT = datetime.datetime(2026, 11, 30, 1, 30, tzinfo=datetime.UTC)
ERASED_AT = datetime.datetime(2026, 11, 30, 9, 15, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def _fresh_alerts():
    """An alert is mailed once a day per problem (a cache key); record ids repeat between tests."""
    cache.clear()


def journal_files() -> list[str]:
    directory = journal_directory()
    return sorted(os.listdir(directory)) if directory.exists() else []


def journal_erasure(customer: Customer, *, at: datetime.datetime = ERASED_AT, record_id: int = 9001) -> str:
    """The entry an erasure after the backup left in the journal (its record is not in this database)."""
    entry = journal_entry_sign(record_id=record_id, customer_id=customer.pk, erased_at=at)
    journal_write(directory=journal_directory(), entries=[entry])
    return entry.filename


def reapply(*args: str) -> str:
    out = StringIO()
    call_command("reapply_erasures", *args, stdout=out)
    return out.getvalue()


# Writing the journal -------------------------------------------------------------------------------


def test_a_committed_erasure_is_journaled_with_ids_and_times_only(
    partner, profile, agent, finance, dpo, django_capture_on_commit_callbacks
):
    subject = build_subject(partner, agent=agent, finance=finance, dpo=dpo)
    with django_capture_on_commit_callbacks(execute=True):
        record = customer_erase(
            customer=subject.customer, actor=dpo, reason="Erasure request", request_reference="DSR-000042"
        )

    [name] = journal_files()
    path = journal_directory() / name
    text = path.read_text()
    assert json.loads(text) == {
        "format": "fusion-erasure-journal/1",
        "record_id": record.pk,
        "customer_id": subject.customer.pk,
        "erased_at": record.erased_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "request_reference": "DSR-000042",
        "key_id": json.loads(text)["key_id"],
        "hmac": json.loads(text)["hmac"],
    }
    assert [value for value in subject.values if value in text] == []
    assert subject.customer.reference not in text
    assert stat.S_IMODE(path.stat().st_mode) == FILE_MODE
    assert stat.S_IMODE(journal_directory().stat().st_mode) == 0o700
    [entry], problems = journal_read(journal_directory())
    assert problems == [] and entry.key == (record.pk, subject.customer.pk, record.erased_at)


def test_a_chunk_of_customers_gets_an_entry_each(partner, dpo, django_capture_on_commit_callbacks):
    customers = [full_customer(partner) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        erased = customers_erase(customer_ids=[c.pk for c in customers], actor=dpo, reason="Retention")

    entries, _ = journal_read(journal_directory())
    assert sorted(entry.customer_id for entry in entries) == sorted(c.pk for c in customers)
    assert {entry.record_id for entry in entries} == {record.pk for record in erased.records}


def test_a_rolled_back_erasure_is_not_journaled(customer, dpo, django_capture_on_commit_callbacks):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        customer_erase(customer=customer, actor=dpo, reason="Erasure request")
        raise RuntimeError("the request's completion failed after the erasure")

    assert callbacks == []
    assert journal_files() == []
    assert not Customer.objects.get(pk=customer.pk).is_erased


def test_a_journal_task_that_cannot_be_queued_is_logged_and_the_reconciliation_writes_it(
    customer, dpo, django_capture_on_commit_callbacks, monkeypatch, caplog, clock, mailoutbox
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(tasks.write_erasure_journal, "delay", broker_down)
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True):
        record = customer_erase(customer=customer, actor=dpo, reason="Erasure request")

    # The erasure stands; the journal lacks it, and the log says so loudly.
    assert Customer.objects.get(pk=customer.pk).is_erased
    assert journal_files() == []
    assert f"could not write the entries of erasure records {record.pk}" in caplog.text

    clock.shift(datetime.timedelta(minutes=11))
    out = StringIO()
    with caplog.at_level(logging.ERROR):
        call_command("reconcile_erasure_journal", stdout=out)

    assert "1 missing entr(y/ies) written" in out.getvalue()
    assert "1 erasure record(s) had not been journaled" in caplog.text
    [mail] = mailoutbox
    assert dpo.email in mail.to and f"erasure records {record.pk}." in mail.body
    [entry], _ = journal_read(journal_directory())
    assert entry.key == (record.pk, customer.pk, record.erased_at)
    # A second reconciliation has nothing to add.
    call_command("reconcile_erasure_journal", stdout=StringIO())
    assert len(journal_files()) == 1


def test_an_entry_is_never_replaced_and_the_directory_must_be_the_owners_alone(customer):
    entry = journal_entry_sign(record_id=1, customer_id=customer.pk, erased_at=ERASED_AT)
    directory = journal_directory()
    assert len(journal_write(directory=directory, entries=[entry])) == 1
    assert journal_write(directory=directory, entries=[entry]) == []

    os.chmod(directory, 0o770)  # noqa: S103 - the mistake the check is there to catch
    with pytest.raises(JournalDirectoryError, match="writable by its group or others"):
        journal_write(
            directory=directory, entries=[journal_entry_sign(record_id=2, customer_id=1, erased_at=ERASED_AT)]
        )
    os.chmod(directory, 0o700)


# Re-applying after a restore -----------------------------------------------------------------------


def test_reapply_erases_a_customer_erased_after_the_backup_and_says_so_in_the_audit_trail(
    partner, profile, agent, finance, dpo, clock
):
    subject = build_subject(partner, agent=agent, finance=finance, dpo=dpo)
    journal_erasure(subject.customer)
    clock.move_to(datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC))

    output = reapply("--since", BACKUP_AT.isoformat())

    customer = Customer.objects.get(pk=subject.customer.pk)
    assert customer.is_erased and customer.name == f"Erased customer {customer.reference}"
    assert not Contact.objects.filter(customer=customer).exists()
    assert not Site.objects.filter(customer=customer).exists()
    record = ErasureRecord.objects.get(customer_pk=customer.pk)
    assert (
        record.reason == "Re-applied after a restore (backup of 2026-11-30 01:30 UTC)" and not record.repeat
    )
    assert record.erased_at - datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC) < datetime.timedelta(
        minutes=1
    )
    event = AuditEvent.objects.get(action="customer.erasure_reapplied")
    assert event.detail["journal_records"] == [9001] and event.detail["record"] == record.pk
    assert event.detail["backup_taken_at"] == BACKUP_AT.isoformat()
    assert verify_chain()[1] == []
    assert f"erase: customer {customer.pk} ({customer.reference})" in output
    assert "1 customer(s) journaled since then: 1 erased, 0 already erased" in output
    # The re-applied erasure is journaled in its turn, beside the entry it came from.
    assert len(journal_files()) == 2


def test_reapply_twice_does_nothing_more(customer, dpo):
    journal_erasure(customer)
    reapply("--since", BACKUP_AT.isoformat())
    records = ErasureRecord.objects.count()
    events = AuditEvent.objects.count()

    output = reapply("--since", BACKUP_AT.isoformat())

    assert ErasureRecord.objects.count() == records and AuditEvent.objects.count() == events
    assert f"already erased: customer {customer.pk}" in output
    assert "0 erased, 1 already erased" in output


def test_reapply_catches_up_a_repeat_erasure_of_a_customer_erased_before_the_backup(customer, dpo, clock):
    clock.move_to(BACKUP_AT - datetime.timedelta(days=1))
    customer_erase(customer=customer, actor=dpo, reason="Erasure request")
    clock.move_to(ERASED_AT)
    journal_erasure(customer)

    reapply("--since", BACKUP_AT.isoformat())

    assert ErasureRecord.objects.filter(customer_pk=customer.pk, repeat=True).count() == 1


def test_an_erasure_journaled_before_the_backup_is_left_alone(customer, dpo):
    journal_erasure(customer, at=BACKUP_AT - datetime.timedelta(minutes=1))

    output = reapply("--since", BACKUP_AT.isoformat())

    assert not Customer.objects.get(pk=customer.pk).is_erased
    assert "0 customer(s) journaled since then" in output


def test_dry_run_lists_and_changes_nothing(customer, dpo):
    journal_erasure(customer)

    output = reapply("--since", "2026-11-30T01:30:00Z", "--dry-run")

    assert (
        f"would erase: customer {customer.pk} ({customer.reference}), erased 2026-11-30 09:15:00 UTC"
        in output
    )
    assert "1 to erase" in output
    assert not Customer.objects.get(pk=customer.pk).is_erased
    assert not ErasureRecord.objects.exists()


def test_a_customer_not_in_the_restored_database_is_reported_not_an_error(customer, dpo):
    journal_erasure(customer)
    missing = Customer(pk=customer.pk + 1000)
    journal_erasure(missing, record_id=9002)

    output = reapply("--since", BACKUP_AT.isoformat())

    assert f"not in this database: customer {customer.pk + 1000}, erased" in output
    assert Customer.objects.get(pk=customer.pk).is_erased


def test_a_held_customer_is_reported_and_the_command_fails_after_erasing_the_others(
    partner, customer, dpo, finance
):
    held = full_customer(partner)
    legal_hold_set(
        customer=held,
        kind=LegalHold.Kind.LITIGATION,
        reason="Claim 2026-CL-118",
        owner=dpo,
        review_on=datetime.date(2027, 6, 1),
        actor=dpo,
    )
    assert LegalHold.objects.filter(customer=held).exists()
    journal_erasure(customer)
    journal_erasure(held, record_id=9002)

    with pytest.raises(CommandError, match="1 customer\\(s\\) could not be erased"):
        reapply("--since", BACKUP_AT.isoformat())

    assert Customer.objects.get(pk=customer.pk).is_erased
    assert not Customer.objects.get(pk=held.pk).is_erased


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("yesterday", "--since 'yesterday' is not an ISO 8601 time"),
        ("2026-11-30T01:30:00", "has no UTC offset"),
    ],
)
def test_a_bad_time_is_refused(customer, since, message):
    journal_erasure(customer)
    with pytest.raises(CommandError, match=message):
        reapply("--since", since)
    assert not Customer.objects.get(pk=customer.pk).is_erased


def test_a_missing_journal_is_refused(customer, settings, tmp_path):
    settings.ERASURE_JOURNAL_DIR = str(tmp_path / "nowhere")
    with pytest.raises(CommandError, match=f"{tmp_path / 'nowhere'} does not exist; nothing was changed"):
        reapply("--since", BACKUP_AT.isoformat())


def _rewrite(name: str, text: str) -> None:
    path = journal_directory() / name
    os.chmod(path, 0o640)
    path.write_text(text)


def test_a_tampered_entry_stops_everything_and_is_named(customer, other_customer, dpo):
    journal_erasure(customer)
    name = journal_erasure(other_customer, record_id=9002)
    forged = json.loads((journal_directory() / name).read_text())
    forged["customer_id"] = customer.pk + 77
    _rewrite(name, json.dumps(forged))

    with pytest.raises(CommandError, match=f"erasure journal file {name}: its signature does not verify"):
        reapply("--since", BACKUP_AT.isoformat())

    # Not even the good entry is acted on: the journal is explained first.
    assert not Customer.objects.filter(erased_at__isnull=False).exists()


def test_an_entry_signed_with_an_unknown_key_is_refused(customer, settings):
    settings.AUDIT_HMAC_KEYS = ["someone-elses-key-" + "x" * 32]
    name = journal_erasure(customer)
    settings.AUDIT_HMAC_KEYS = ["the-deployments-own-key-" + "y" * 32]

    with pytest.raises(CommandError, match=f"{name}: is signed with key .* which is not configured"):
        reapply("--since", BACKUP_AT.isoformat())
    assert not Customer.objects.get(pk=customer.pk).is_erased


def test_a_file_that_is_not_json_is_named_with_its_line(customer):
    name = journal_erasure(customer)
    _rewrite(name, '{\n  "format": "fusion-erasure-journal/1",\n  oops\n}')

    with pytest.raises(CommandError, match=f"{name}: line 3: is not JSON"):
        reapply("--since", BACKUP_AT.isoformat())
    assert not Customer.objects.get(pk=customer.pk).is_erased


def test_a_renamed_entry_is_refused(customer):
    name = journal_erasure(customer)
    os.rename(
        journal_directory() / name, journal_directory() / "erasure-20261130T000000000000Z-record-1.json"
    )

    with pytest.raises(CommandError, match=f"holds the entry of {name}"):
        reapply("--since", BACKUP_AT.isoformat())


def test_retentions_erasures_are_journaled_too(partner, django_capture_on_commit_callbacks):
    due = full_customer(partner)
    Customer.objects.filter(pk=due.pk).update(
        contract_start=datetime.date(2018, 1, 1), contract_end=datetime.date(2019, 12, 31)
    )
    current = full_customer(partner)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_retention", stdout=StringIO(), stderr=StringIO())

    entries, problems = journal_read(journal_directory())
    assert problems == []
    assert [entry.customer_id for entry in entries] == [due.pk]
    assert Customer.objects.get(pk=due.pk).is_erased and not Customer.objects.get(pk=current.pk).is_erased


def test_the_reconciliation_names_a_tampered_file_and_mails_it_once_a_day(customer, dpo, mailoutbox):
    name = journal_erasure(customer)
    _rewrite(name, (journal_directory() / name).read_text().replace('"record_id": 9001', '"record_id": 9009'))

    for _ in range(2):
        with pytest.raises(CommandError, match=f"{name}: its signature does not verify"):
            call_command("reconcile_erasure_journal", stdout=StringIO())

    [mail] = mailoutbox
    assert "1 file(s) do not verify" in mail.subject and name in mail.body
