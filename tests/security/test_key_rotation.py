"""rotate_encryption_keys: every encrypted value of every table (history and call records included)
moves under the newest key, resumably; afterwards the old key can go and everything still decrypts."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from accounts.models import Customer
from accounts.selectors import search_customers
from fusion_site import crypto, key_rotation
from fusion_site.checks import old_encryption_keys_in_use
from tests.billing.factories import Call, billing_profile, cli_of, import_calls
from tests.factories import full_customer


@pytest.fixture
def old_key(settings):
    return settings.FIELD_ENCRYPTION_KEYS[0]


@pytest.fixture
def data(partner, old_key):
    """Site Details (with history rows) and call records, all written under the old key."""
    billing_profile(partner)
    customers = [full_customer(partner, sites=2, lines=2, contacts=2) for _ in range(3)]
    import_calls(partner, [Call(cli=cli_of(customer)) for customer in customers])
    return customers


def _all_stored_key_ids() -> dict[str, int]:
    return key_rotation.count_by_key_id()


def _read_everything() -> int:
    """Load every row of every encrypted table and touch each encrypted field: decrypts or raises."""
    values = 0
    for table in key_rotation.encrypted_tables():
        for row in table.model._base_manager.all().only("pk", *table.fields):
            for name in table.fields:
                getattr(row, name)
                values += 1
    return values


def test_the_covered_tables_include_history_and_call_records(db):
    tables = key_rotation.encrypted_tables()
    labels = {table.label for table in tables}
    # Chunks resume after the last integer primary key done.
    assert {table.model._meta.pk.get_internal_type() for table in tables} <= {"AutoField", "BigAutoField"}

    assert {"accounts.Contact", "accounts.HistoricalContact", "accounts.PaymentDetails"} <= labels
    assert "billing.CallRecord" in labels
    by_label = {table.label: table.fields for table in tables}
    assert "name" in by_label["accounts.Customer"] and "name" in by_label["accounts.HistoricalCustomer"]


def test_rotated_customer_names_stay_findable_by_word(settings, data, old_key):
    customer = data[0]
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]

    call_command("rotate_encryption_keys")

    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM accounts_customer UNION ALL SELECT name FROM accounts_historicalcustomer"
        )
        kids = {crypto.split_ciphertext(row[0])[1] for row in cursor.fetchall()}
    assert kids == {crypto.key_id(new_key)}
    # The words' blind index is keyed by BLIND_INDEX_KEY, which rotation leaves alone.
    first_word = customer.name.split()[0]
    assert customer in search_customers(Customer.objects.all(), first_word)


def test_rotation_moves_every_value_and_the_old_key_can_then_go(settings, data, old_key, capsys):
    old_id = crypto.key_id(old_key)
    before = _all_stored_key_ids()
    assert set(before) == {old_id}
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]

    call_command("rotate_encryption_keys", chunk_size=7)

    out = capsys.readouterr().out
    assert f"{crypto.key_id(new_key)} (newest): {sum(before.values())}" in out
    assert "Every value is under the newest key." in out
    assert _all_stored_key_ids() == {crypto.key_id(new_key): sum(before.values())}
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert _read_everything() == sum(before.values())
    # Bulk (AES-GCM) values stay bulk values.
    with connection.cursor() as cursor:
        cursor.execute("SELECT cli FROM billing_callrecord")
        assert all(row[0].startswith("enc2$") for row in cursor.fetchall())


def test_a_run_killed_midway_is_finished_by_a_rerun(settings, data, old_key, monkeypatch):
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    total = sum(_all_stored_key_ids().values())
    real_rotate_chunk = key_rotation._rotate_chunk
    calls = {"n": 0}

    def dies_after_the_first_chunk(table, pks):
        calls["n"] += 1
        if calls["n"] > 1:
            raise KeyboardInterrupt("killed")
        return real_rotate_chunk(table, pks)

    monkeypatch.setattr(key_rotation, "_rotate_chunk", dies_after_the_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        call_command("rotate_encryption_keys", chunk_size=3)
    partial = _all_stored_key_ids()
    assert 0 < partial[crypto.key_id(new_key)] < total  # the first chunk is committed, the rest is not
    monkeypatch.setattr(key_rotation, "_rotate_chunk", real_rotate_chunk)
    rewritten_on_rerun = []

    def counting(table, pks):
        rewritten_on_rerun.append(len(pks))
        return real_rotate_chunk(table, pks)

    monkeypatch.setattr(key_rotation, "_rotate_chunk", counting)

    call_command("rotate_encryption_keys", chunk_size=3)

    assert _all_stored_key_ids() == {crypto.key_id(new_key): total}
    # Rows already moved were skipped: the rerun rewrote fewer rows than there are.
    assert sum(rewritten_on_rerun) < sum(
        table.model._base_manager.count() for table in key_rotation.encrypted_tables()
    )
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert _read_everything() == total


def test_the_system_check_warns_while_values_remain_under_an_old_key(settings, data, old_key):
    assert old_encryption_keys_in_use() == []  # nothing counted yet
    call_command("rotate_encryption_keys", count_only=True)
    assert old_encryption_keys_in_use() == []  # everything under the one key

    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    stale = old_encryption_keys_in_use()
    assert [message.id for message in stale] == ["fusion_site.W001"]
    assert crypto.key_id(new_key) in stale[0].msg

    call_command("rotate_encryption_keys", count_only=True)
    warnings = old_encryption_keys_in_use()
    assert crypto.key_id(old_key) in warnings[0].msg

    call_command("rotate_encryption_keys")
    assert old_encryption_keys_in_use() == []
