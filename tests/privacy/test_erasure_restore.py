"""End to end on PostgreSQL, as deploy/GUIDE.md's restore procedure does it: a customer with personal data is
backed up with pg_dump (custom format), erased, the dump is restored into a fresh database with pg_restore,
``manage.py reapply_erasures --since <backup time>`` runs against the restored database in its own process,
and a plain-SQL pg_dump of the result holds nothing of the customer: not the stored (encrypted) values of
its rows, not their blind indexes, not the plaintext, and no row of its own in its tables. The same dump
taken before re-applying holds them all, so the test can fail.

Runs in CI and wherever DATABASE_URL names a PostgreSQL and pg_dump and pg_restore are installed; skipped
elsewhere, saying why.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from accounts import validation
from accounts.models import Contact, Customer, Line, NameToken, PaymentDetails, Site, name_index_digests
from fusion_site.crypto import blind_index
from privacy.erasure import customer_erase
from privacy.erasure_journal import journal_directory, journal_read
from tests.conftest import require_service
from tests.factories import ContactFactory, CustomerFactory, LineFactory, PaymentDetailsFactory, SiteFactory

ROOT = Path(__file__).resolve().parents[2]

# pg_dump and the command run on the real clock, in other processes.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

NAME = "Ottoline Wrenfeather Joinery"
CONTACT_NAME = "Ottoline Wrenfeather"
EMAIL = "ottoline.wren@wrenmail.example"
PHONE = "07700 100873"
CLI = "0113 496 0873"
ADDRESS = "23 Wrenfeather Row"
TOWN = "Kestrelby"
POSTCODE = "LS27 4WR"
# A pair that passes the modulus check (the subject of tests/privacy/conftest.py has it too).
SORT_CODE = "40-47-84"
ACCOUNT_NUMBER = "34206819"


@pytest.fixture(autouse=True)
def _postgresql_tools() -> None:
    """Before any data is made: without PostgreSQL and its tools there is nothing to run."""
    require_service(
        "PostgreSQL",
        connection.vendor == "postgresql",
        "pg_dump and pg_restore need the tests' database on PostgreSQL (DATABASE_URL=postgres://...)",
    )
    missing = [tool for tool in ("pg_dump", "pg_restore") if shutil.which(tool) is None]
    require_service("PostgreSQL client tools", not missing, f"{', '.join(missing)} not on PATH")


def _libpq_env() -> dict[str, str]:
    db = connection.settings_dict
    env = {
        **os.environ,
        "PGHOST": db["HOST"] or "127.0.0.1",
        "PGPORT": str(db["PORT"] or 5432),
        "PGUSER": db["USER"] or "postgres",
    }
    if db["PASSWORD"]:
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 - the PostgreSQL tools and our own manage.py
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout}\n{result.stderr}"
    return result


def _admin_connection() -> psycopg.Connection:
    env = _libpq_env()
    return psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env.get("PGPASSWORD"),
        dbname="postgres",
        autocommit=True,
    )


def _plain_dump(database: str) -> str:
    return _run(["pg_dump", "--format=plain", "--no-owner", database], _libpq_env()).stdout


def _stored_values(customer: Customer) -> list[str]:
    """The customer's values as stored: ciphertexts and blind indexes, read past the ORM's decryption."""
    models = [Customer, Site, Contact, Line, PaymentDetails, NameToken]
    values = []
    with connection.cursor() as cursor:
        for model in models:
            columns = [
                field.column
                for field in model._meta.concrete_fields
                if type(field).__name__ == "EncryptedTextField" or field.name.endswith("_index")
            ]
            owner = "id" if model is Customer else "customer_id"
            table = connection.ops.quote_name(model._meta.db_table)
            quoted = ", ".join(connection.ops.quote_name(column) for column in columns)
            cursor.execute(f"SELECT {quoted} FROM {table} WHERE {owner} = %s", [customer.pk])
            values += [value for row in cursor.fetchall() for value in row if value]
    return values


def _subject() -> tuple[Customer, list[str]]:
    """A customer whose every value is its own, and every trace of it a dump could hold."""
    customer = CustomerFactory(name=NAME)
    site = SiteFactory(customer=customer, address_line1=ADDRESS, town=TOWN, postcode=POSTCODE)
    ContactFactory(customer=customer, name=CONTACT_NAME, email=EMAIL, phone=PHONE)
    LineFactory(customer=customer, site=site, cli=CLI)
    PaymentDetailsFactory(
        customer=customer, account_holder=CONTACT_NAME, sort_code=SORT_CODE, account_number=ACCOUNT_NUMBER
    )
    phones = [validation.normalise_phone(PHONE), validation.normalise_phone(CLI)]
    indexes = [
        blind_index("email", EMAIL),
        blind_index("postcode", validation.normalise_postcode(POSTCODE)),
        *[blind_index("phone", phone) for phone in phones],
        *name_index_digests(NAME),
        *name_index_digests(CONTACT_NAME),
    ]
    stored = _stored_values(customer)
    assert set(indexes) <= set(stored), "the blind indexes are computed as the models compute them"
    return customer, stored


def _owned_rows(database: str, customer_id: int) -> dict[str, int]:
    env = _libpq_env()
    counts = {}
    with psycopg.connect(
        host=env["PGHOST"],
        port=env["PGPORT"],
        user=env["PGUSER"],
        password=env.get("PGPASSWORD"),
        dbname=database,
    ) as restored:
        for model in (Site, Contact, Line, PaymentDetails, NameToken):
            table = model._meta.db_table
            row = restored.execute(
                f'SELECT count(*) FROM "{table}" WHERE customer_id = %s',
                [customer_id],
            ).fetchone()
            counts[table] = row[0] if row else -1
        erased = restored.execute(
            "SELECT erased_at FROM accounts_customer WHERE id = %s", [customer_id]
        ).fetchone()
        counts["erased"] = int(bool(erased and erased[0]))
    return counts


def _command_env(database: str) -> dict[str, str]:
    db = connection.settings_dict
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "CELERY_BROKER_URL"}}
    env.update(
        DATABASE_URL=f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{host}/{database}",
        FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS),
        BLIND_INDEX_KEY=settings.BLIND_INDEX_KEY,
        AUDIT_HMAC_KEYS=",".join(settings.AUDIT_HMAC_KEYS),
        AUDIT_CHECKPOINT_DIR=str(settings.AUDIT_CHECKPOINT_DIR),
        ERASURE_JOURNAL_DIR=str(journal_directory()),
        CELERY_TASK_ALWAYS_EAGER="true",
        CELERY_BROKER_URL="",
    )
    return env


def test_a_restored_backup_gets_the_erasures_done_since_it_was_taken(dpo, tmp_path):
    database = connection.settings_dict["NAME"]
    customer, stored = _subject()
    plaintext = [NAME, CONTACT_NAME, EMAIL, ADDRESS, TOWN, POSTCODE, ACCOUNT_NUMBER, PHONE, CLI]
    plaintext += [validation.normalise_phone(PHONE), validation.normalise_phone(CLI)]

    backup_at = timezone.now()
    dump = tmp_path / "backup.dump"
    _run(["pg_dump", "--format=custom", f"--file={dump}", database], _libpq_env())
    customer_erase(customer=customer, actor=dpo, reason="Erasure request", request_reference="DSR-000073")
    # The erasure committed (a transactional test), so its task journaled it.
    [entry], problems = journal_read(journal_directory())
    assert problems == [] and entry.customer_id == customer.pk

    restored = f"{database}_restored"
    with _admin_connection() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{restored}"')
    try:
        _run(["pg_restore", f"--dbname={restored}", "--no-owner", "--exit-on-error", str(dump)], _libpq_env())
        before = _plain_dump(restored)
        # The restore brought the customer back: every stored value is there again, and its rows.
        assert [value for value in stored if value not in before] == []
        assert _owned_rows(restored, customer.pk) == {
            "accounts_site": 1,
            "accounts_contact": 1,
            "accounts_line": 1,
            "accounts_paymentdetails": 1,
            "accounts_nametoken": len(name_index_digests(NAME)) + len(name_index_digests(CONTACT_NAME)),
            "erased": 0,
        }

        result = _run(
            [sys.executable, "manage.py", "reapply_erasures", "--since", backup_at.isoformat()],
            _command_env(restored),
        )

        assert f"erase: customer {customer.pk} ({customer.reference})" in result.stdout
        after = _plain_dump(restored)
        assert [value for value in stored if value in after] == []
        assert [value for value in plaintext if value in after] == []
        assert _owned_rows(restored, customer.pk) == {
            "accounts_site": 0,
            "accounts_contact": 0,
            "accounts_line": 0,
            "accounts_paymentdetails": 0,
            "accounts_nametoken": 0,
            "erased": 1,
        }
        assert "customer.erasure_reapplied" in after
        # Run again: nothing more to do.
        again = _run(
            [sys.executable, "manage.py", "reapply_erasures", "--since", backup_at.isoformat()],
            _command_env(restored),
        )
        assert "0 erased, 1 already erased" in again.stdout
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
