"""``ShortDates`` writes each date and moment as Django's ``date`` filter does in a template."""

import datetime
import zoneinfo

from django.template import Context, Template
from django.utils import timezone, translation
from hypothesis import given
from hypothesis import strategies as st

from fusion_site.short_dates import ShortDates

FILTERS = Template('{{ value|date:"j M Y" }}|{{ value|date:"j M Y H:i" }}')
DAY_FILTER = Template('{{ value|date:"j M Y" }}')
# Hypothesis takes naive bounds, and gives naive datetimes that the test then places in a zone.
EARLIEST, LATEST = datetime.datetime(1900, 1, 2), datetime.datetime(2200, 12, 30)  # noqa: DTZ001
days = st.dates(min_value=datetime.date(1900, 1, 1), max_value=datetime.date(2200, 12, 31))
zones = st.sampled_from(["Europe/London", "UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])


@given(
    moment=st.datetimes(min_value=EARLIEST, max_value=LATEST),
    zone=zones,
    shown_in=zones,
    language=st.sampled_from(["en-gb", "fr", "de", "cy"]),
)
def test_a_moment_is_written_as_the_date_filter_writes_it(moment, zone, shown_in, language):
    aware = moment.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    with translation.override(language), timezone.override(zoneinfo.ZoneInfo(shown_in)):
        day, minute = FILTERS.render(Context({"value": aware})).split("|")
        dates = ShortDates()
        assert (dates.day(aware), dates.moment(aware)) == (day, minute)


@given(day=days, language=st.sampled_from(["en-gb", "fr", "de"]))
def test_a_day_is_written_as_the_date_filter_writes_it(day, language):
    with translation.override(language):
        assert ShortDates().day(day) == DAY_FILTER.render(Context({"value": day}))


def test_nothing_is_written_for_none():
    assert ShortDates().day(None) == ShortDates().moment(None) == ""
