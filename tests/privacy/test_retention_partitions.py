"""Retention of call records by month on PostgreSQL: a month whose calls are all past their period goes
whole (its partition detached and dropped), a held customer's calls of it are kept and still read, and a
month holding a call still within its period stays."""

import datetime
import json

import pytest
from django.db import connection

from billing import partitions
from billing.models import BilledCall, CallRecord, CallReference
from fusion_site import personal_data
from privacy.models import LegalHold
from privacy.services.retention import retention_run
from tests.billing.factories import Call, calculated_run, cli_of, import_calls
from tests.billing.test_call_partitions import _relations
from tests.factories import full_customer
from tests.privacy.test_retention import hold

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: only there are calls partitioned by month",
    ),
    pytest.mark.frozen_at("2026-11-30T12:00:00+00:00"),
]

JANUARY, FEBRUARY = datetime.date(2025, 1, 1), datetime.date(2025, 2, 1)


def _months(*months: datetime.date) -> None:
    for month in months:
        partitions.create_month_partition(month)


def test_a_month_past_retention_is_dropped_whole_and_a_held_customers_calls_of_it_survive(
    partner, profile, dpo
):
    _months(JANUARY, FEBRUARY)
    customer, held = full_customer(partner), full_customer(partner)
    import_calls(
        partner,
        [
            Call(cli=cli_of(customer), start_time="2025-01-10T10:00", call_reference="GONE"),
            Call(cli=cli_of(held), start_time="2025-01-11T10:00", call_reference="HELD"),
            Call(cli=cli_of(customer), start_time="2025-02-20T10:00", call_reference="FEBRUARY"),
        ],
    )
    hold(held, dpo)
    # 15 February 2026: calls never billed go a year after their day, so all of January is past and
    # February is not (the 20th is still within its period).
    today = datetime.date(2026, 2, 15)

    dry = retention_run(today=today, dry_run=True)
    assert dry.counts == {} and JANUARY in partitions.month_partitions()
    run = retention_run(today=today)

    assert run.counts["call_records"] == {"billing.CallRecord": 1}
    assert sorted(partitions.month_partitions()) == [FEBRUARY]
    assert sorted(CallRecord.objects.values_list("call_reference", flat=True)) == ["FEBRUARY", "HELD"]
    # The held call is still read by the app, from the default partition, with its reference.
    kept = CallRecord.objects.get(customer=held)
    assert kept.started_on == datetime.date(2025, 1, 11)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM billing_callrecord WHERE id = %s", [kept.pk])
        assert cursor.fetchone() == (partitions.DEFAULT_PARTITION,)
    assert sorted(CallReference.objects.values_list("call_reference", flat=True)) == ["FEBRUARY", "HELD"]
    # A second run finds nothing more of January.
    assert "call_records" not in retention_run(today=today).counts


def test_a_month_with_a_call_still_within_its_period_is_not_dropped(partner, profile, agent):
    december = datetime.date(2024, 12, 1)
    _months(december, JANUARY)
    customer = full_customer(partner)
    import_calls(
        partner,
        [
            Call(cli=cli_of(customer), start_time="2024-12-20T10:00", call_reference="LATE"),
            Call(cli=cli_of(customer), start_time="2025-01-10T10:00", call_reference="JANUARY"),
        ],
    )
    # January's run bills December's late call too, on an invoice still in draft: within its period.
    calculated_run(partner, (JANUARY, datetime.date(2025, 1, 31)), actor=agent)
    assert BilledCall.objects.count() == 2

    run = retention_run(today=datetime.date(2026, 3, 1))

    assert sorted(partitions.month_partitions()) == [december, JANUARY]
    assert CallRecord.objects.count() == 2 and BilledCall.objects.count() == 2
    assert run.counts.get("call_records", {}).get("billing.CallRecord", 0) == 0


def test_the_calls_purged_one_by_one_are_read_only_from_the_months_ending_by_the_cutoff(partner, profile):
    # A year kept: the row-by-row purge must not read the newer months' partitions, only those that can
    # hold a call past its period (a billed call was made before its invoice was issued).
    _months(JANUARY, FEBRUARY, datetime.date(2025, 3, 1), datetime.date(2025, 4, 1))
    declared = personal_data.declaration(CallRecord._meta.label)
    assert declared is not None and declared.purge is not None
    calls = declared.purge
    cutoff = datetime.date(2025, 2, 10)

    plan = json.loads(
        calls.due(cutoff, LegalHold.objects.none().values("customer_id")).explain(format="json")
    )

    read = {name for name in _relations(plan) if name.startswith("billing_callrecord")}
    assert read == {
        partitions.DEFAULT_PARTITION,
        "billing_callrecord_y2025m01",
        "billing_callrecord_y2025m02",
    }
