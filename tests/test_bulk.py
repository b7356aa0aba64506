"""fusion_site.bulk: rows written in SQL, with history copied from what was stored."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import OneOffCharge
from fusion_site import bulk
from tests.conftest import require_service
from tests.factories import CustomerFactory, UserFactory

FIELDS = ("created_at", "updated_at", "customer", "description", "amount", "charge_date")


def _rows(customer_id: int, count: int) -> list[tuple[object, ...]]:
    stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    return [
        (stamp, stamp, customer_id, f"Handset {n}", Decimal(f"{n}.05"), datetime.date(2025, 1, n + 1))
        for n in range(count)
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["insert_rows", "multi-row INSERT"])
def test_rows_are_stored_as_the_orm_reads_them(path, monkeypatch):
    customer = CustomerFactory()
    if path == "insert_rows":
        bulk.insert_rows(OneOffCharge, FIELDS, _rows(customer.pk, 5))
    else:  # the path every database but PostgreSQL takes, two rows a statement
        monkeypatch.setattr(bulk, "ROWS_PER_STATEMENT", 2)
        with CaptureQueriesContext(connection) as queries:
            bulk._insert_statements(
                OneOffCharge._meta.db_table,
                ", ".join(OneOffCharge._meta.get_field(name).column for name in FIELDS),  # type: ignore[misc]
                _rows(customer.pk, 5),
                per_statement=2,
            )
        assert len(queries) == 3

    stored = list(customer.one_off_charges.order_by("charge_date"))
    assert [(c.description, c.amount, c.charge_date) for c in stored] == [
        (f"Handset {n}", Decimal(f"{n}.05"), datetime.date(2025, 1, n + 1)) for n in range(5)
    ]
    assert all(timezone.is_aware(c.created_at) for c in stored)


@pytest.mark.django_db
def test_history_copies_the_stored_rows_with_the_actor_and_reason():
    customer, actor = CustomerFactory(), UserFactory()
    bulk.insert_rows(OneOffCharge, FIELDS, _rows(customer.pk, 3))
    when = timezone.now()

    bulk.record_history_in_sql(
        OneOffCharge.objects.filter(customer_id=customer.pk), actor=actor, reason="Imported", when=when
    )

    for charge in customer.one_off_charges.all():
        (record,) = charge.history.all()
        assert (record.history_type, record.history_user, record.history_change_reason) == (
            "+",
            actor,
            "Imported",
        )
        assert record.history_date == when
        assert (record.description, record.amount, record.charge_date) == (
            charge.description,
            charge.amount,
            charge.charge_date,
        )


@pytest.mark.django_db
def test_the_ids_come_back_in_the_order_of_the_rows():
    customer = CustomerFactory()
    rows = _rows(customer.pk, 7)

    ids = bulk.insert_rows_returning_ids(OneOffCharge, FIELDS, rows)

    stored = OneOffCharge.objects.in_bulk(ids)
    assert [stored[pk].description for pk in ids] == [f"Handset {n}" for n in range(7)]
    assert bulk.insert_rows_returning_ids(OneOffCharge, FIELDS, []) == []


@pytest.mark.django_db
def test_new_ids_name_their_rows_in_order_and_a_later_row_takes_the_next_id():
    customer = CustomerFactory()

    ids = bulk.insert_rows_with_new_ids(OneOffCharge, FIELDS, _rows(customer.pk, 7))

    stored = OneOffCharge.objects.in_bulk(ids)
    assert [stored[pk].description for pk in ids] == [f"Handset {n}" for n in range(7)]
    assert len(set(ids)) == 7
    assert bulk.insert_rows_with_new_ids(OneOffCharge, FIELDS, []) == []
    # The sequence moved past the ids taken, so the ORM's next row does not collide with them.
    (later,) = bulk.insert_rows_returning_ids(OneOffCharge, FIELDS, _rows(customer.pk, 1))
    assert later > max(ids)


@pytest.mark.django_db
def test_a_change_is_recorded_after_the_creation_and_only_the_two_kinds_are_accepted():
    customer, actor = CustomerFactory(), UserFactory()
    bulk.insert_rows(OneOffCharge, FIELDS, _rows(customer.pk, 2))
    charges = OneOffCharge.objects.filter(customer_id=customer.pk)
    bulk.record_history_in_sql(charges, actor=actor, reason="Imported", when=timezone.now())
    charges.update(description="Corrected")

    bulk.record_history_in_sql(
        charges, actor=actor, reason="Corrected in bulk", when=timezone.now(), history_type="~"
    )

    for charge in charges:
        newest, oldest = charge.history.order_by("-history_id")
        assert oldest.history_type == "+" and oldest.description.startswith("Handset")
        assert (newest.history_type, newest.history_change_reason, newest.description) == (
            "~",
            "Corrected in bulk",
            "Corrected",
        )
    with pytest.raises(ValueError, match="'-'"):
        bulk.record_history_in_sql(charges, actor=actor, reason="Gone", when=timezone.now(), history_type="-")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_settings_last_for_the_transaction_only():
    require_service("PostgreSQL", connection.vendor == "postgresql", "SET LOCAL is PostgreSQL's")

    def work_mem() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW work_mem")
            return cursor.fetchone()[0]

    before = work_mem()
    with transaction.atomic():
        bulk.set_for_transaction(work_mem="48MB", jit="off")
        assert work_mem() == "48MB"
    assert work_mem() == before, "a committed transaction leaves the session's settings as they were"
