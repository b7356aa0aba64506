"""How far back a bill run reaches for calls no earlier run billed (BILL_RUN_LATE_CALL_MONTHS): far enough
that no call retention still keeps unbilled is left out, and not so far that a billed call retention
deleted, imported again from an old file, is billed twice."""

import datetime

from django.conf import settings

from billing.calculation import earliest_billable_day
from billing.models import CallRecord
from billing.personal_data import TRAFFIC_DATA
from tests.billing.factories import Call, calculated_run, cli_of, import_calls, january_charges
from tests.factories import full_customer


def test_the_default_reach_is_one_month_short_of_how_long_calls_are_kept():
    # A never-billed call is kept TRAFFIC_DATA.months after it was made, a billed one as long after its
    # invoice (issued the month after the call at the earliest).
    reach = settings.BILL_RUN_LATE_CALL_MONTHS
    assert reach == TRAFFIC_DATA.months - 1
    assert earliest_billable_day(datetime.date(2025, 1, 1)) == datetime.date(2024, 2, 1)
    assert earliest_billable_day(datetime.date(2025, 12, 1)) == datetime.date(2025, 1, 1)


def test_a_run_bills_a_late_call_from_eleven_months_before_and_not_one_from_twelve(partner, profile, agent):
    customer = january_charges(full_customer(partner), agent)
    cli = cli_of(customer)
    import_calls(
        partner,
        [
            Call(cli=cli, start_time=day)
            for day in ("2024-01-31T10:00", "2024-02-01T10:00", "2024-12-31T10:00", "2025-01-20T10:00")
        ],
    )

    bill_run = calculated_run(partner, (datetime.date(2025, 1, 1), datetime.date(2025, 1, 31)), actor=agent)

    billed = CallRecord.objects.filter(billing__invoice__bill_run=bill_run)
    assert sorted(billed.values_list("started_on", flat=True)) == [
        datetime.date(2024, 2, 1),
        datetime.date(2024, 12, 31),
        datetime.date(2025, 1, 20),
    ]
