"""The statutory deadline, against answers worked by hand with a calendar and the England & Wales bank
holidays (2025: Christmas Thu 25 Dec, Boxing Day Fri 26 Dec; 2026: New Year Thu 1 Jan; 2027: Good Friday
26 Mar, Easter Monday 29 Mar, Christmas and Boxing Day observed Mon 27 and Tue 28 Dec)."""

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privacy.deadlines import add_calendar_months, clock_stopped_days, may_extend, statutory_deadline

D = datetime.date


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (D(2025, 9, 3), 1, D(2025, 10, 3)),  # the corresponding date
        (D(2025, 1, 31), 1, D(2025, 2, 28)),  # no 31 Feb: the month's last day
        (D(2024, 1, 31), 1, D(2024, 2, 29)),  # leap year
        (D(2025, 3, 31), 1, D(2025, 4, 30)),
        (D(2025, 12, 31), 1, D(2026, 1, 31)),  # across the year end
        (D(2025, 1, 31), 3, D(2025, 4, 30)),
        (D(2023, 11, 30), 3, D(2024, 2, 29)),
        (D(2025, 11, 15), 3, D(2026, 2, 15)),
    ],
)
def test_calendar_months(start, months, expected):
    assert add_calendar_months(start, months) == expected


@pytest.mark.parametrize(
    ("received", "expected", "why"),
    [
        (D(2025, 9, 3), D(2025, 10, 3), "Fri 3 Oct is a working day"),
        (D(2025, 1, 31), D(2025, 2, 28), "Fri 28 Feb: month end, working day"),
        (D(2024, 1, 31), D(2024, 2, 29), "Thu 29 Feb 2024: leap year"),
        (D(2027, 1, 30), D(2027, 3, 1), "28 Feb 2027 is a Sunday: Monday 1 March"),
        (D(2025, 10, 8), D(2025, 11, 10), "Sat 8 Nov: Monday 10 Nov"),
        (D(2025, 11, 25), D(2025, 12, 29), "Christmas Thu, Boxing Day Fri, weekend: Mon 29 Dec"),
        (D(2025, 12, 1), D(2026, 1, 2), "New Year's Day Thu 1 Jan 2026: Fri 2 Jan"),
        (D(2027, 2, 26), D(2027, 3, 30), "Good Friday 26 Mar 2027, weekend, Easter Monday: Tue 30 Mar"),
        (D(2027, 2, 28), D(2027, 3, 30), "Sun 28 Mar 2027, Easter Monday: Tue 30 Mar"),
        (D(2027, 11, 25), D(2027, 12, 29), "Sat 25 Dec 2027, Sun, two observed holidays: Wed 29 Dec"),
        (D(2025, 6, 7), D(2025, 7, 7), "received on a Saturday still counts from that day"),
    ],
)
def test_one_month_deadline(received, expected, why):
    assert statutory_deadline(clock_started_on=received) == expected, why


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        (D(2025, 9, 3), D(2025, 12, 3)),  # Wed 3 Dec
        (D(2025, 1, 31), D(2025, 4, 30)),  # three months from receipt, not 28 Feb + 2 months (28 Apr)
        (D(2023, 11, 30), D(2024, 2, 29)),  # leap day
        (D(2025, 11, 30), D(2026, 3, 2)),  # Sat 28 Feb 2026: Monday 2 March
        (D(2024, 9, 25), D(2024, 12, 27)),  # Christmas Wed, Boxing Day Thu: Fri 27 Dec 2024
    ],
)
def test_extended_deadline_is_three_months_from_receipt(received, expected):
    assert statutory_deadline(clock_started_on=received, extended=True) == expected


@pytest.mark.parametrize(
    ("received", "days_on_hold", "extended", "expected"),
    [
        (D(2025, 9, 3), 5, False, D(2025, 10, 8)),  # 3 Oct + 5 days
        (D(2025, 9, 3), 1, False, D(2025, 10, 6)),  # Sat 4 Oct: Monday
        (D(2027, 2, 22), 5, False, D(2027, 3, 30)),  # 22 Mar + 5 = Sat 27 Mar, Sun, Easter Mon: Tue 30
        (D(2025, 9, 3), 10, True, D(2025, 12, 15)),  # 3 Dec + 10 = Sat 13 Dec: Monday 15 Dec
        (D(2025, 9, 3), 0, False, D(2025, 10, 3)),
    ],
)
def test_clock_stopped_for_clarification_moves_the_deadline(received, days_on_hold, extended, expected):
    assert (
        statutory_deadline(clock_started_on=received, extended=extended, days_on_hold=days_on_hold)
        == expected
    )


def test_clock_counts_from_identity_verification_not_receipt():
    # Received Wed 3 Sep 2025, identity verified Wed 10 Sep: due Fri 10 Oct, not Fri 3 Oct.
    assert statutory_deadline(clock_started_on=D(2025, 9, 10)) == D(2025, 10, 10)


@pytest.mark.parametrize(
    ("today", "days_on_hold", "already_extended", "allowed"),
    [
        (D(2025, 9, 20), 0, False, True),
        (D(2025, 10, 3), 0, False, True),  # the last day of the first month
        (D(2025, 10, 4), 0, False, False),  # one day late
        (D(2025, 10, 8), 5, False, True),  # the hold moved the first month's end to 8 Oct
        (D(2025, 10, 9), 5, False, False),
        (D(2025, 9, 20), 0, True, False),  # only once
    ],
)
def test_extension_only_once_and_within_the_first_month(today, days_on_hold, already_extended, allowed):
    result = may_extend(
        today=today,
        clock_started_on=D(2025, 9, 3),
        days_on_hold=days_on_hold,
        already_extended=already_extended,
    )
    assert result is allowed


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="days_on_hold"):
        statutory_deadline(clock_started_on=D(2025, 9, 3), days_on_hold=-1)
    with pytest.raises(ValueError, match="months"):
        add_calendar_months(D(2025, 9, 3), -1)


def test_clock_stop_counts_the_day_asked_and_the_day_answered():
    # UK GDPR Art. 12A (DUAA 2025 s. 76): "beginning with the day ... ending with the day": both included.
    assert clock_stopped_days(asked_on=D(2025, 9, 3), answered_on=D(2025, 9, 3)) == 1
    assert clock_stopped_days(asked_on=D(2025, 9, 3), answered_on=D(2025, 9, 4)) == 2
    assert clock_stopped_days(asked_on=D(2025, 9, 8), answered_on=D(2025, 9, 11)) == 4  # Mon to Thu
    assert clock_stopped_days(asked_on=D(2025, 12, 31), answered_on=D(2026, 1, 1)) == 2


@given(asked_on=st.dates(), waited=st.integers(min_value=0, max_value=400))
def test_clock_stop_is_the_number_of_calendar_days_in_the_closed_period(asked_on, waited):
    """Against the statute's own words: every day from the asking day to the answering day is excluded."""
    answered_on = asked_on + datetime.timedelta(days=waited)
    if answered_on > datetime.date.max - datetime.timedelta(days=1):
        return
    days_in_period = 0
    day = asked_on
    while day <= answered_on:
        days_in_period += 1
        day += datetime.timedelta(days=1)
    assert clock_stopped_days(asked_on=asked_on, answered_on=answered_on) == days_in_period


def test_clock_stop_refuses_an_answer_before_the_question():
    with pytest.raises(ValueError, match="before"):
        clock_stopped_days(asked_on=D(2025, 9, 8), answered_on=D(2025, 9, 3))


def test_no_months_later_is_the_same_day():
    assert add_calendar_months(D(2025, 1, 31), 0) == D(2025, 1, 31)


def test_each_refusal_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"^months must not be negative$"):
        add_calendar_months(D(2025, 1, 1), -1)
    with pytest.raises(ValueError, match=r"^days_on_hold must not be negative$"):
        statutory_deadline(clock_started_on=D(2025, 1, 1), days_on_hold=-1)
    with pytest.raises(ValueError, match=r"^the answer cannot arrive before the question was asked$"):
        clock_stopped_days(asked_on=D(2025, 1, 2), answered_on=D(2025, 1, 1))


def test_a_request_never_held_may_be_extended_up_to_its_first_deadline_and_not_after():
    started = D(2025, 9, 3)  # first deadline Friday 3 October 2025
    assert may_extend(today=D(2025, 10, 3), clock_started_on=started, already_extended=False)
    assert not may_extend(today=D(2025, 10, 4), clock_started_on=started, already_extended=False)
