"""Dates as the templates print them with ``|date:"j M Y"`` and ``|date:"j M Y H:i"``, formatted in Python.

A page that prints many dates paid Django's ``date`` filter for each (its format string parsed and each
letter looked up, the value resolved through the template first): about 15-20 us a value, a tenth of
the staff list's rows and a twentieth of a Site Details page (py-spy under bench/load.py). ``ShortDates``
looks the active language's month abbreviations up once and writes each value as the filter would: the
day without a leading zero, the month's abbreviation, the year, and for a moment its hour and minute in
the current time zone. tests/test_short_dates.py compares it with the filter.
"""

import datetime

from django.utils import timezone
from django.utils.dates import MONTHS_3


class ShortDates:
    """Made once per page (the month names are the language active then)."""

    def __init__(self) -> None:
        self.months = {number: str(MONTHS_3[number]).title() for number in MONTHS_3}

    def day(self, value: datetime.date | None) -> str:
        """``|date:"j M Y"``; "" for None. A datetime is taken in the current time zone."""
        if value is None:
            return ""
        if isinstance(value, datetime.datetime) and timezone.is_aware(value):
            value = timezone.localtime(value)
        return f"{value.day} {self.months[value.month]} {value.year}"

    def moment(self, value: datetime.datetime | None) -> str:
        """``|date:"j M Y H:i"``; "" for None."""
        if value is None:
            return ""
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return f"{value.day} {self.months[value.month]} {value.year} {value.hour:02d}:{value.minute:02d}"
