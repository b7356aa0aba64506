"""The call records partitioned by month on PostgreSQL: the beat task creates months ahead and moves what
the default partition caught, and a bill run reads only the months it bills (partition pruning)."""

import datetime
import json
import logging
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import partitions
from billing.models import CallRecord, CallReference
from billing.tasks import call_partitions_ahead_daily
from tests.billing.factories import Call, calculated_run, cli_of, import_calls, january_charges
from tests.factories import full_customer

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: the call records are partitioned only there"
)


def _partition_of(reference: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM billing_callrecord WHERE call_reference = %s", [reference]
        )
        (name,) = cursor.fetchone()
    return str(name)


def test_the_call_records_are_partitioned_by_month_with_a_default_partition(db):
    assert partitions.partitioned()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_partkeydef(to_regclass('billing_callrecord')), "
            "pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'billing_callrecord_pkey'"
        )
        key, primary_key = cursor.fetchone()
    assert key == "RANGE (started_on)"
    assert primary_key == "PRIMARY KEY (id, started_on)"
    assert partitions.default_partition_rows() == 0


def test_the_beat_task_creates_months_ahead_once_and_moves_rows_the_default_caught(
    partner, profile, customer, caplog
):
    cli = cli_of(customer)
    # Calls imported before their month's partition exists land in the default partition.
    with time_machine.travel(datetime.datetime(2031, 5, 10, 12, tzinfo=datetime.UTC), tick=False):
        import_calls(
            partner,
            [
                Call(cli=cli, start_time="2031-05-09T10:00", call_reference="MAY"),
                Call(cli=cli, start_time="2031-03-02T10:00", call_reference="MARCH"),
            ],
        )
        assert _partition_of("MAY") == partitions.DEFAULT_PARTITION

        with caplog.at_level(logging.WARNING, logger="billing.partitions"):
            first = call_partitions_ahead_daily.apply().get()
            second = call_partitions_ahead_daily.apply().get()

    assert first == {"created": 3, "moved_from_default": 1, "left_in_default": 1}
    assert second == {"created": 0, "moved_from_default": 0, "left_in_default": 1}
    assert sorted(partitions.month_partitions())[-3:] == [
        datetime.date(2031, 5, 1),
        datetime.date(2031, 6, 1),
        datetime.date(2031, 7, 1),
    ]
    assert _partition_of("MAY") == "billing_callrecord_y2031m05"
    # A month older than any partition stays in the default, and the task says so every time.
    assert _partition_of("MARCH") == partitions.DEFAULT_PARTITION
    assert sum("default call partition holds 1 rows" in message for message in caplog.messages) == 2
    # The moved call is the same row, still found by its reference.
    assert CallRecord.objects.get(call_reference="MAY").started_on == datetime.date(2031, 5, 9)
    assert CallReference.objects.filter(call_reference__in=["MAY", "MARCH"]).count() == 2


@pytest.mark.parametrize(
    "name", ["billing_callrecord; DROP TABLE x", "Billing", 'billing_callrecord_default"']
)
def test_partition_ddl_refuses_a_name_it_did_not_build(name):
    with pytest.raises(ValueError, match="not a table name"):
        partitions.quoted(name)


def _relations(plan: object) -> set[str]:
    found = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for item in plan:
            found |= _relations(item)
    return found


def test_a_bill_run_reads_only_the_partitions_of_the_months_it_bills(partner, profile, agent, settings):
    settings.BILL_RUN_LATE_CALL_MONTHS = 1
    for month in (datetime.date(2024, 11, 1), datetime.date(2024, 12, 1), datetime.date(2025, 1, 1)):
        partitions.create_month_partition(month)
    partitions.create_month_partition(datetime.date(2025, 2, 1))
    customer = january_charges(full_customer(partner), agent)
    cli = cli_of(customer)
    import_calls(
        partner,
        [
            Call(cli=cli, start_time=day)
            for day in ("2024-11-20T10:00", "2024-12-20T10:00", "2025-01-20T10:00")
        ],
    )

    with CaptureQueriesContext(connection) as queries:
        bill_run = calculated_run(
            partner, (datetime.date(2025, 1, 1), datetime.date(2025, 1, 31)), actor=agent
        )

    # What the run billed: December's late call and January's, not November's (over a month late).
    assert sorted(
        CallRecord.objects.filter(billing__invoice__bill_run=bill_run).values_list("started_on", flat=True)
    ) == [
        datetime.date(2024, 12, 20),
        datetime.date(2025, 1, 20),
    ]
    (statement,) = [
        query["sql"]
        for query in queries.captured_queries
        if "CREATE TEMPORARY TABLE chunk_calls" in query["sql"]
    ]
    select = re.split(r"chunk_calls AS", statement, maxsplit=1)[1]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {select}")
        (plan,) = cursor.fetchone()
    read = {
        name
        for name in _relations(plan if isinstance(plan, list) else json.loads(plan))
        if name.startswith("billing_callrecord")
    }
    assert read == {"billing_callrecord_y2024m12", "billing_callrecord_y2025m01"}
