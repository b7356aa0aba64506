"""Statutory deadlines of data subject requests: pure functions of dates, no database.

How we read the ICO's guidance on the time limit ("Right of access: time limits for responding"):

- The month runs from the day the request is received, whether or not that is a working day, to the
  *corresponding calendar date* of the next month: received 3 September, due 3 October.
- When the next month has no corresponding date (received 31 January), the deadline is the *last day*
  of that month (28 or 29 February).
- When that date is a weekend or a bank holiday, the controller has until the *next working day*. We
  use the bank holidays of England and Wales (``fusion_site.working_days``), where the business is.
- The deadline may be extended *once* by up to two further months where requests are complex or
  numerous. We compute the extended deadline the same way, three calendar months from the day the
  clock started (not two months from the first deadline, which can differ at month ends: 30 Nov + 1
  month = 30 Dec, + 2 more = 28/29 Feb, the same as 30 Nov + 3 months; 31 Jan + 1 = 28 Feb, + 2 = 28
  Apr, but 31 Jan + 3 = 30 Apr, the later date, which the guidance's "three months from receipt"
  gives). The subject must be told of the extension, with reasons, within the first month.
- Identity: where we need proof of identity, the time limit starts only when we receive it. The month
  then counts from the day identity was verified, not from receipt.
- Clarification ("stop the clock"): UK GDPR Article 12A, inserted by the Data (Use and Access) Act
  2025 s. 76 (in force 5 February 2026, SI 2026/82). Where the controller reasonably requires further
  information to identify the information or processing a request relates to, it may ask for it, and
  "the period beginning with the day on which the controller makes the request and ending with the day
  on which the controller receives the information" does not count towards the response period (nor
  towards the month in which an extension must be notified). That is the wording of the parallel
  provision the same Act put in the DPA 2018, s. 54(3C), checked against legislation.gov.uk; the
  paragraph number inside Article 12A was not verified here. "Beginning with" and "ending with" include
  both days in UK drafting, so the days excluded are counted *inclusively* (``clock_stopped_days``):
  asked and answered the same day excludes 1 day, answered the next day 2, held Monday and resumed
  Thursday 4. The shift is applied to the calendar deadline before the working-day rule, so a paused
  request never gets a deadline on a holiday.
"""

import calendar
import datetime

from fusion_site.working_days import next_working_day

ONE_MONTH = 1
EXTENDED_MONTHS = 3  # the first month and two further months


def add_calendar_months(day: datetime.date, months: int) -> datetime.date:
    """The corresponding date ``months`` later, or the last day of that month if it has no such date."""
    if months < 0:
        raise ValueError("months must not be negative")
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last_day = calendar.monthrange(year, month)[1]
    return datetime.date(year, month, min(day.day, last_day))


def statutory_deadline(
    *, clock_started_on: datetime.date, extended: bool = False, days_on_hold: int = 0
) -> datetime.date:
    """The day by which the response is due.

    ``clock_started_on`` is the day of receipt, or the day identity was verified when it had to be;
    ``days_on_hold`` counts the calendar days the clock was stopped for clarification, both ends
    included (``clock_stopped_days``).
    """
    if days_on_hold < 0:
        raise ValueError("days_on_hold must not be negative")
    months = EXTENDED_MONTHS if extended else ONE_MONTH
    calendar_deadline = add_calendar_months(clock_started_on, months)
    return next_working_day(calendar_deadline + datetime.timedelta(days=days_on_hold))


def may_extend(
    *, today: datetime.date, clock_started_on: datetime.date, days_on_hold: int = 0, already_extended: bool
) -> bool:
    """An extension is possible once, and only while the first month has not run out."""
    if already_extended:
        return False
    first_deadline = statutory_deadline(clock_started_on=clock_started_on, days_on_hold=days_on_hold)
    return today <= first_deadline


def clock_stopped_days(*, asked_on: datetime.date, answered_on: datetime.date) -> int:
    """Days that do not count towards the response period: from the day clarification was asked for to
    the day it arrived, both included (UK GDPR Art. 12A as inserted by DUAA 2025 s. 76; see above)."""
    if answered_on < asked_on:
        raise ValueError("the answer cannot arrive before the question was asked")
    return (answered_on - asked_on).days + 1
