"""Working days in England and Wales, from the maintained ``holidays`` library (bank holidays change by
proclamation; a hand-kept list would go stale)."""

import datetime
from functools import lru_cache

import holidays


@lru_cache(maxsize=64)
def _bank_holidays(year: int) -> frozenset[datetime.date]:
    return frozenset(holidays.UK(subdiv="ENG", years=year))


def is_working_day(day: datetime.date) -> bool:
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def next_working_day(day: datetime.date) -> datetime.date:
    """``day`` itself if it is a working day, else the first working day after it."""
    while not is_working_day(day):
        day += datetime.timedelta(days=1)
    return day


def working_days_after(day: datetime.date, count: int) -> datetime.date:
    """The ``count``-th working day strictly after ``day`` (``day`` itself need not be a working day):
    ``working_days_after(friday, 1)`` is the next Monday that is not a bank holiday."""
    if count < 1:
        raise ValueError("Count at least one working day.")
    while count:
        day += datetime.timedelta(days=1)
        if is_working_day(day):
            count -= 1
    return day
