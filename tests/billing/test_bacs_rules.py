"""The rules of billing.bacs on their own, without the database: the Standard 18 layout (every record
parsed back field by field against the published tables written out below, independently of the writer),
the Bacs character set, exact pence, references, originator details and the three-day cycle against the
published calendar. tests/billing/test_bacs.py drives the same rules from finalised bill runs."""

import datetime
import re
import zoneinfo
from decimal import Decimal

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import bacs


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Zoë O\u2019Brien, Ltd.", "ZOE OBRIEN LTD."),  # a typographic apostrophe
        ("Łukasz Ærø", "LUKASZ AERO"),
        ("Straße 5 + Co", "STRASSE 5 CO"),
        ("Smith & Sons (Leeds) Ltd", "SMITH & SONS LEEDS LTD"),
        ("  ", ""),
    ],
)
def test_bacs_text_keeps_only_the_bacs_character_set(raw, clean):
    assert bacs.bacs_text(raw) == clean


def test_to_pence_is_exact_and_refuses_fractions_of_a_penny():
    assert bacs.to_pence(Decimal("1.87")) == 187
    assert bacs.to_pence(Decimal("0.10") + Decimal("0.20")) == 30
    with pytest.raises(ValueError, match="whole number of pence"):
        bacs.to_pence(Decimal("1.875"))


# The published layout, written out here from the Standard 18 tables (VOL1/HDR1/HDR2/UHL1/EOF1/EOF2/UTL1
# 80 characters, standard and contra records 100), independently of billing.bacs's writer: name, first
# and last position (1-based, inclusive), and the pattern the field must match.
DIGITS = r"[0-9]"
BACS_DAY = r" [0-9]{5}"
BACS_TEXT = r"[A-Z0-9.&/\- ]"
LABELS: dict[str, list[tuple[str, int, int, str]]] = {
    "VOL1": [
        ("label", 1, 4, "VOL1"),
        ("submission serial", 5, 10, r"[A-Z0-9]{6}"),
        ("accessibility", 11, 11, r"[ 0]"),
        ("reserved", 12, 31, " {20}"),
        ("reserved", 32, 37, " {6}"),
        ("reserved", 38, 41, " {4}"),
        ("owner (service user number)", 42, 47, DIGITS + "{6}"),
        ("reserved", 48, 51, " {4}"),
        ("reserved", 52, 79, " {28}"),
        ("label standard level", 80, 80, "1"),
    ],
    "HDR1": [
        ("label", 1, 4, "HDR1"),
        ("file identifier: A", 5, 5, "A"),
        ("file identifier: service user number", 6, 11, DIGITS + "{6}"),
        ("file identifier: S", 12, 12, "S"),
        ("file identifier: blanks", 13, 14, "  "),
        ("file identifier: 1", 15, 15, "1"),
        ("file identifier: service user number again", 16, 21, DIGITS + "{6}"),
        ("set identification", 22, 27, r"[A-Z0-9]{6}"),
        ("file section number", 28, 31, "0001"),
        # The file's place in its submission: 0001, 0002, ... (an AUDDIS file, then collection files).
        ("file sequence number", 32, 35, DIGITS + "{4}"),
        ("generation number", 36, 39, " {4}"),
        ("generation version number", 40, 41, " {2}"),
        ("creation date", 42, 47, BACS_DAY),
        ("expiration date", 48, 53, BACS_DAY),
        ("accessibility", 54, 54, r"[ 0]"),
        ("block count", 55, 60, "000000"),
        ("system code", 61, 73, " {13}"),
        ("reserved", 74, 80, " {7}"),
    ],
    "HDR2": [
        ("label", 1, 4, "HDR2"),
        ("record format", 5, 5, "F"),
        ("block length", 6, 10, "02000"),
        ("record length", 11, 15, "00100"),
        ("reserved for operating systems", 16, 50, " {35}"),
        ("buffer offset", 51, 52, "00"),
        ("reserved", 53, 80, " {28}"),
    ],
    "UHL1": [
        ("label", 1, 4, "UHL1"),
        ("processing date", 5, 10, BACS_DAY),
        ("receiving party identification", 11, 20, "999999    "),
        ("currency code", 21, 22, "00"),
        ("country code", 23, 28, "000000"),
        ("work code", 29, 37, "1 DAILY  "),
        ("file number", 38, 40, DIGITS + "{3}"),
        ("reserved", 41, 47, " {7}"),
        ("audit print identifier", 48, 54, " {7}"),
        ("reserved", 55, 80, " {26}"),
    ],
    "UTL1": [
        ("label", 1, 4, "UTL1"),
        ("debit value total", 5, 17, DIGITS + "{13}"),
        ("credit value total", 18, 30, DIGITS + "{13}"),
        ("debit item count", 31, 37, DIGITS + "{7}"),
        ("credit item count", 38, 44, DIGITS + "{7}"),
        # AUDDIS files count their Direct Debit Instructions here; collection files leave it blank.
        ("DDI count", 45, 51, DIGITS + "{7}| {7}"),
        ("reserved", 52, 52, " "),
        ("reserved", 53, 80, " {28}"),
    ],
}
LABELS["EOF1"] = [("label", 1, 4, "EOF1"), *LABELS["HDR1"][1:]]
LABELS["EOF2"] = [("label", 1, 4, "EOF2"), *LABELS["HDR2"][1:]]
DATA_RECORD = [
    ("destination sort code", 1, 6, DIGITS + "{6}"),
    ("destination account number", 7, 14, DIGITS + "{8}"),
    ("destination account type", 15, 15, "0"),
    # 17 a collection, 99 the contra; AUDDIS: 0N lodges a Direct Debit Instruction, 0C cancels one.
    ("transaction code", 16, 17, "17|99|0N|0C"),
    ("originating sort code", 18, 23, DIGITS + "{6}"),
    ("originating account number", 24, 31, DIGITS + "{8}"),
    ("free format", 32, 35, " {4}"),
    ("amount in pence", 36, 46, DIGITS + "{11}"),
    ("service user's name", 47, 64, BACS_TEXT + "{18}"),
    ("service user's reference", 65, 82, BACS_TEXT + "{18}"),
    ("destination account name", 83, 100, BACS_TEXT + "{18}"),
]
LABEL_WIDTH, DATA_WIDTH = 80, 100


def parse(record: str) -> dict[str, str]:
    """A record's fields by the layout above; fails on a wrong width or a field out of its pattern."""
    layout = LABELS.get(record[:4], DATA_RECORD)
    width = DATA_WIDTH if layout is DATA_RECORD else LABEL_WIDTH
    assert len(record) == width, f"{record[:4]!r} is {len(record)} characters, not {width}"
    parsed: dict[str, str] = {}
    for name, start, end, pattern in layout:
        value = record[start - 1 : end]
        assert re.fullmatch(pattern, value), f"{record[:4]} {name} ({start}-{end}) = {value!r}"
        parsed.setdefault(name, value)  # "reserved" repeats; the first is enough to keep
    return parsed


def from_bacs_day(value: str) -> datetime.date:
    return datetime.date(2000 + int(value[1:3]), 1, 1) + datetime.timedelta(days=int(value[3:]) - 1)


def test_the_layout_table_covers_every_position_once():
    for layout, width in [
        *((fields_, LABEL_WIDTH) for fields_ in LABELS.values()),
        (DATA_RECORD, DATA_WIDTH),
    ]:
        positions = [position for _name, start, end, _pattern in layout for position in range(start, end + 1)]
        assert positions == list(range(1, width + 1))


# Calendar and cycle, stated here from their sources and not from billing.bacs: Bacs works Monday to
# Friday except the bank holidays of England and Wales; day 1 (input) closes at 22:30 UK time, day 2 is
# the processing day in UHL1, day 3 the entry day on which the payer is debited.
LONDON = zoneinfo.ZoneInfo("Europe/London")
ENGLAND_AND_WALES = holidays.country_holidays("GB", subdiv="ENG", years=range(2023, 2036))


def bacs_works(day: datetime.date) -> bool:
    return day.isoweekday() <= 5 and day not in ENGLAND_AND_WALES


def first_working_on_or_after(day: datetime.date) -> datetime.date:
    while not bacs_works(day):
        day += datetime.timedelta(days=1)
    return day


def first_working_after(day: datetime.date) -> datetime.date:
    return first_working_on_or_after(day + datetime.timedelta(days=1))


def last_working_before(day: datetime.date) -> datetime.date:
    day -= datetime.timedelta(days=1)
    while not bacs_works(day):
        day -= datetime.timedelta(days=1)
    return day


def input_day_of(made_at: datetime.datetime) -> datetime.date:
    local = made_at.astimezone(LONDON)
    if bacs_works(local.date()) and (local.hour, local.minute) < (22, 30):
        return local.date()
    return first_working_after(local.date())


def assert_cycle_holds(processing: datetime.date, *, made_at: datetime.datetime, promised: datetime.date):
    made_on = made_at.astimezone(LONDON).date()
    entry = first_working_after(processing)
    assert bacs_works(processing), f"{processing} is not a Bacs working day"
    assert processing > made_on
    assert processing > input_day_of(made_at)
    assert entry >= promised, f"entry day {entry} is before the promised {promised}"
    # And no earlier than it has to be: the working day before would miss the cycle or the notice.
    before = last_working_before(processing)
    assert before <= input_day_of(made_at) or first_working_after(before) < promised


@pytest.mark.parametrize(
    ("made_at", "promised", "processing"),
    [
        # Christmas 2026: Friday 25th, Monday 28th (Boxing Day substitute) are not Bacs days.
        ("2026-12-24T10:00:00+00:00", "2026-12-01", "2026-12-29"),
        # After the 22:30 cut-off on Thursday the 24th the input day is Tuesday the 29th.
        ("2026-12-24T22:45:00+00:00", "2026-12-01", "2026-12-30"),
        # A Saturday file: input Monday, processing Tuesday.
        ("2026-11-28T09:00:00+00:00", "2026-11-01", "2026-12-01"),
        # A promise on Saturday 12 December: debited Monday the 14th, so processed Friday the 11th.
        ("2026-11-30T12:00:00+00:00", "2026-12-12", "2026-12-11"),
        # 22:10 UTC on 24 October 2026 is 23:10 BST, after the cut-off: input Monday the 26th.
        ("2026-10-24T22:10:00+00:00", "2026-10-01", "2026-10-27"),
        # 21:45 UTC on a January Friday is 21:45 GMT, before the cut-off: input Friday, processing Monday.
        ("2027-01-08T21:45:00+00:00", "2027-01-01", "2027-01-11"),
    ],
)
def test_processing_days_on_the_published_calendar(made_at, promised, processing):
    instant = datetime.datetime.fromisoformat(made_at)
    promise = datetime.date.fromisoformat(promised)

    result = bacs.processing_day(made_at=instant, promised=promise)

    assert result == datetime.date.fromisoformat(processing)
    assert_cycle_holds(result, made_at=instant, promised=promise)


def _special_instants() -> list[datetime.datetime]:
    """Instants where a calendar rule turns: clock changes, the cut-off, month ends, bank holidays."""
    utc = datetime.UTC
    instants = []
    for year in range(2025, 2031):
        for month, day in [(3, 31), (10, 31), (12, 24), (12, 25), (12, 31), (2, 28), (4, 30), (8, 31)]:
            for hour, minute in [(0, 0), (0, 30), (1, 30), (21, 29), (21, 30), (22, 29), (22, 30), (23, 59)]:
                instants.append(datetime.datetime(year, month, day, hour, minute, tzinfo=utc))
    # The nights the clocks change in London (last Sunday of March and October, 01:00 UTC).
    for year in range(2025, 2031):
        for month in (3, 10):
            last = datetime.date(year, month, 31)
            sunday = last - datetime.timedelta(days=(last.isoweekday() % 7))
            for minutes in (-90, -61, -1, 0, 30, 59, 61, 90):
                instants.append(
                    datetime.datetime.combine(sunday, datetime.time(1, 0), tzinfo=utc)
                    + datetime.timedelta(minutes=minutes)
                )
    instants.append(datetime.datetime(2028, 2, 29, 22, 30, tzinfo=utc))
    return instants


making_instants = st.one_of(
    # Hypothesis takes naive bounds and attaches the zone itself.
    st.datetimes(
        min_value=datetime.datetime(2024, 1, 1),  # noqa: DTZ001
        max_value=datetime.datetime(2034, 12, 31),  # noqa: DTZ001
        timezones=st.just(datetime.UTC),
    ),
    st.sampled_from(_special_instants()),
    # Days the calendar names: bank holidays and the days either side, at any time.
    st.builds(
        lambda day, offset, seconds: (
            datetime.datetime.combine(day + datetime.timedelta(days=offset), datetime.time(0), tzinfo=LONDON)
            + datetime.timedelta(seconds=seconds)
        ),
        st.sampled_from(sorted(d for d in ENGLAND_AND_WALES if d.year <= 2034)),
        st.integers(-2, 2),
        st.integers(0, 86399),
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made_at=making_instants, notice_offset=st.integers(-60, 60))
def test_the_processing_day_keeps_the_three_day_cycle_and_the_notice(made_at, notice_offset):
    promised = made_at.astimezone(LONDON).date() + datetime.timedelta(days=notice_offset)

    processing = bacs.processing_day(made_at=made_at, promised=promised)

    assert_cycle_holds(processing, made_at=made_at, promised=promised)


# Files written from generated collections -------------------------------------------------------------

ORIGINATOR = bacs.Originator(
    service_user_number="123456", sort_code="200000", account_number="55779911", name="FUSION TEL"
)
CREATED = datetime.date(2024, 4, 2)
PROCESSING = datetime.date(2024, 4, 15)  # a Monday; day 106 of leap year 2024
PERIOD = datetime.date(2024, 3, 1)

digits = st.text("0123456789", min_size=1, max_size=1)
references = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=6, max_size=18).filter(
    lambda text: len(set(text)) > 1
)
holders = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40).filter(
    lambda text: bacs.bacs_text(text) != ""
)
payers = st.builds(
    bacs.Payer,
    sort_code=st.text("0123456789", min_size=6, max_size=6),
    account_number=st.text("0123456789", min_size=8, max_size=8),
    account_holder=holders,
)
collections = st.builds(
    bacs.Collection,
    customer_reference=st.from_regex(r"C-[0-9]{6}", fullmatch=True),
    amount_pence=st.integers(1, 10**9),
    mandate_reference=references,
    invoice_number=st.from_regex(r"INV-[0-9]{6}", fullmatch=True),
)
debit_lists = st.lists(st.tuples(collections, payers), max_size=8)


def write(debits, **overrides) -> bacs.Standard18File:
    arguments = {
        "debits": debits,
        "originator": ORIGINATOR,
        "processing_date": PROCESSING,
        "creation_date": CREATED,
        "serial": "A00042",
        "period_start": PERIOD,
    }
    return bacs.standard18(**(arguments | overrides))


@given(debit_lists)
def test_every_record_follows_the_published_layout_and_says_what_was_collected(debits):
    result = write(debits)

    assert result.content.split("\r\n") == result.records
    parsed = [parse(record) for record in result.records]
    vol1, hdr1, hdr2, uhl1, *data, eof1, eof2, utl1 = parsed
    assert [record["label"] for record in (vol1, hdr1, hdr2, uhl1, eof1, eof2, utl1)] == [
        "VOL1",
        "HDR1",
        "HDR2",
        "UHL1",
        "EOF1",
        "EOF2",
        "UTL1",
    ]
    assert vol1["submission serial"] == hdr1["set identification"] == "A00042"
    assert vol1["owner (service user number)"] == hdr1["file identifier: service user number"] == "123456"
    assert from_bacs_day(hdr1["creation date"]) == from_bacs_day(hdr1["expiration date"]) == CREATED
    assert from_bacs_day(uhl1["processing date"]) == PROCESSING
    assert result.records[-3] == "EOF1" + result.records[1][4:]
    assert result.records[-2] == "EOF2" + result.records[2][4:]

    total = sum(collection.amount_pence for collection, _payer in debits)
    details, contras = data[: len(debits)], data[len(debits) :]
    assert len(contras) == (1 if debits else 0)
    for detail, (collection, payer) in zip(details, debits, strict=True):
        assert detail["destination sort code"] == payer.sort_code
        assert detail["destination account number"] == payer.account_number
        assert detail["transaction code"] == "17"
        assert detail["originating sort code"] + detail["originating account number"] == "20000055779911"
        assert int(detail["amount in pence"]) == collection.amount_pence
        assert detail["service user's name"] == "FUSION TEL".ljust(18)
        assert detail["service user's reference"] == collection.mandate_reference.ljust(18)
        assert detail["destination account name"] == bacs.bacs_text(payer.account_holder)[:18].rstrip().ljust(
            18
        )
    for contra in contras:
        assert contra["destination sort code"] + contra["destination account number"] == "20000055779911"
        assert contra["transaction code"] == "99"
        assert int(contra["amount in pence"]) == total
        assert contra["service user's name"] == "DD MAR 2024".ljust(18)
        assert contra["service user's reference"] == "CONTRA".ljust(18)
        assert contra["destination account name"] == "FUSION TEL".ljust(18)
    assert int(utl1["debit value total"]) == total == result.total_pence
    assert int(utl1["credit value total"]) == (total if debits else 0)
    assert (int(utl1["debit item count"]), int(utl1["credit item count"])) == (len(debits), len(contras))
    assert result.collections == [collection for collection, _payer in debits]


def test_what_was_skipped_is_handed_back_to_the_caller():
    assert write([], skipped=[("C-000001", bacs.SKIP_NO_MANDATE)]).skipped == [
        ("C-000001", bacs.SKIP_NO_MANDATE)
    ]
    assert write([]).skipped == []


@pytest.mark.parametrize("serial", ["000000", "12345", "abc123", "1234567", "A0004!"])
def test_a_malformed_serial_is_refused(serial):
    with pytest.raises(
        ValueError, match=r"^The submission serial must be 6 of A-Z and 0-9, and not all zeros\.$"
    ):
        write([], serial=serial)


@pytest.mark.parametrize(
    "processing",
    [
        datetime.date(2024, 4, 13),
        datetime.date(2024, 4, 2),
        datetime.date(2024, 4, 1),
        datetime.date(2024, 3, 29),
    ],
    ids=["saturday", "the day it is made", "easter monday", "good friday, before it is made"],
)
def test_a_processing_day_that_is_not_a_working_day_after_the_file_is_made_is_refused(processing):
    message = (
        f"^The processing day {processing:%d %B %Y} is not a Bacs working day after the day the file is made "
        r"\(02 April 2024\)\.$"
    )
    with pytest.raises(ValueError, match=message):
        write([], processing_date=processing)
    write([], processing_date=datetime.date(2024, 4, 3))  # the next working day is accepted


def test_collections_one_contra_cannot_carry_are_refused():
    payer = bacs.Payer(sort_code="123456", account_number="12345678", account_holder="A PAYER")
    collection = bacs.Collection("C-000001", 10**11 - 1, "REF0001", "INV-000001")
    write([(collection, payer)])  # the largest amount one record carries
    with pytest.raises(
        ValueError, match=r"^The collections total more than one contra record can carry; split"
    ):
        write([(collection, payer), (bacs.Collection("C-000002", 1, "REF0002", "INV-000002"), payer)])


def test_a_field_that_does_not_fit_is_refused_rather_than_cut():
    payer = bacs.Payer(sort_code="123456", account_number="12345678", account_holder="A PAYER")
    with pytest.raises(ValueError, match=r"^'REFERENCE-OF-19-CHR' does not fit a field of 18 characters\.$"):
        write([(bacs.Collection("C-000001", 100, "REFERENCE-OF-19-CHR", "INV-1"), payer)])
    # Amounts and counts: the total check above comes first for a whole file, so the field writer is asked.
    with pytest.raises(ValueError, match=r"^100000000000 does not fit a field of 11 digits\.$"):
        bacs._number(10**11, 11)
    with pytest.raises(ValueError, match=r"^-1 does not fit a field of 11 digits\.$"):
        bacs._number(-1, 11)
    assert bacs._number(0, 3) == "000"


def test_bacs_days_are_a_space_the_year_and_the_day_of_the_year():
    assert bacs.bacs_day(datetime.date(2024, 4, 15)) == " 24106"
    assert bacs.bacs_day(datetime.date(2025, 1, 1)) == " 25001"
    assert bacs.bacs_day(datetime.date(2024, 12, 31)) == " 24366"


# What can be collected from ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "accepted"),
    [
        ("DD000123", True),
        ("A.B/C-1&2 3", True),
        ("ABCDEFGHIJKLMNOPQR", True),  # 18, the field's width
        ("ABCDEFGHIJKLMNOPQRS", False),  # 19
        ("AB1-2.3", False),  # five letters or digits; Bacs wants six
        ("AB12-34", True),
        ("AAAAAA", False),  # one character repeated
        ("AAAAAB", True),
        ("DD00012£", False),  # outside the Bacs character set
        ("dd000123", False),  # lower case is not in the set (callers upper-case first)
    ],
)
def test_a_mandate_reference_is_a_bacs_reference(reference, accepted):
    assert bacs.is_bacs_reference(reference) is accepted


@pytest.mark.parametrize(
    ("sort_code", "account_number", "holder", "reference", "problem"),
    [
        ("123456", "12345678", "Zoë O'Brien", "DD000123", None),
        ("12345", "12345678", "A PAYER", "DD000123", bacs.SKIP_BANK_DETAILS),
        ("1234567", "12345678", "A PAYER", "DD000123", bacs.SKIP_BANK_DETAILS),
        ("12345a", "12345678", "A PAYER", "DD000123", bacs.SKIP_BANK_DETAILS),
        ("123456", "1234567", "A PAYER", "DD000123", bacs.SKIP_BANK_DETAILS),
        ("123456", "123456789", "A PAYER", "DD000123", bacs.SKIP_BANK_DETAILS),
        ("123456", "12345678", "A PAYER", "AAAAAA", bacs.SKIP_REFERENCE),
        ("123456", "12345678", "!!! ???", "DD000123", bacs.SKIP_ACCOUNT_NAME),
    ],
)
def test_why_a_mandate_cannot_be_collected_from(sort_code, account_number, holder, reference, problem):
    payer = bacs.Payer(sort_code=sort_code, account_number=account_number, account_holder=holder)
    assert bacs.payer_problem(payer, reference) == problem


def originator(**changes: str) -> bacs.Originator:
    details = {
        "service_user_number": " 123456 ",
        "sort_code": "200000",
        "account_number": "55779911",
        "account_name": "Fusion Telecom Services Ltd",
    }
    return bacs.originator(owner="Acme Resellers", **(details | changes))


def test_the_originator_is_trimmed_and_its_name_put_in_the_bacs_character_set():
    assert originator() == bacs.Originator(
        service_user_number="123456", sort_code="200000", account_number="55779911", name="FUSION TELECOM SER"
    )
    assert originator(account_name="Ab Cdefghijklmnop Qrs").name == "AB CDEFGHIJKLMNOP"  # no trailing space


def test_missing_originator_details_are_named():
    message = r"^The billing profile of Acme Resellers lacks Bacs originator details: sort code, account name"
    with pytest.raises(ValueError, match=message):
        originator(sort_code=" ", account_name="?!")


def test_malformed_originator_details_are_named_with_their_lengths():
    message = (
        r"^The Bacs details in the billing profile of Acme Resellers are wrong: service user number must be "
        r"6 digits; sort code must be 6 digits; account number must be 8 digits\.$"
    )
    with pytest.raises(ValueError, match=message):
        originator(service_user_number="12345", sort_code="20-00-00", account_number="5577991")


def test_the_working_days_around_a_bank_holiday_weekend():
    good_friday, easter_monday = datetime.date(2024, 3, 29), datetime.date(2024, 4, 1)
    assert bacs.working_day_after(datetime.date(2024, 3, 28)) == datetime.date(2024, 4, 2)
    assert bacs.working_day_after(good_friday) == datetime.date(2024, 4, 2)
    assert bacs.working_day_before(datetime.date(2024, 4, 2)) == datetime.date(2024, 3, 28)
    assert bacs.working_day_before(easter_monday) == datetime.date(2024, 3, 28)
    assert bacs.working_day_after(datetime.date(2024, 4, 2)) == datetime.date(2024, 4, 3)
    assert bacs.working_day_before(datetime.date(2024, 4, 4)) == datetime.date(2024, 4, 3)


@pytest.mark.parametrize(
    ("made_at", "input_day"),
    [
        ("2024-04-02T22:29:59+01:00", datetime.date(2024, 4, 2)),  # before the cut-off, UK time
        ("2024-04-02T22:30:00+01:00", datetime.date(2024, 4, 3)),  # at the cut-off: the next working day
        ("2024-04-02T21:29:59+00:00", datetime.date(2024, 4, 2)),  # 22:29:59 BST given in UTC
        ("2024-04-02T21:30:00+00:00", datetime.date(2024, 4, 3)),  # 22:30 BST given in UTC
        ("2024-03-29T09:00:00+00:00", datetime.date(2024, 4, 2)),  # Good Friday
        ("2024-04-06T09:00:00+01:00", datetime.date(2024, 4, 8)),  # Saturday
    ],
)
def test_the_input_day_closes_at_half_past_ten_uk_time_on_working_days(made_at, input_day):
    assert bacs.input_day(datetime.datetime.fromisoformat(made_at)) == input_day


@given(st.decimals(min_value=-(10**7), max_value=10**7, places=2, allow_nan=False, allow_infinity=False))
def test_pence_are_the_amount_times_a_hundred_exactly(amount):
    assert bacs.to_pence(amount) == int(amount * 100)
    assert isinstance(bacs.to_pence(amount), int)


def test_a_fraction_of_a_penny_is_refused_naming_the_amount():
    with pytest.raises(ValueError, match=r"^£1\.875 is not a whole number of pence\.$"):
        bacs.to_pence(Decimal("1.875"))


# Submissions of several files: AUDDIS instructions, then collections on their own days --------------------

instructions = st.builds(
    bacs.Instruction,
    customer_reference=st.from_regex(r"C-[0-9]{6}", fullmatch=True),
    transaction_code=st.sampled_from(["0N", "0C"]),
    mandate_reference=references,
)
# Working days after CREATED (2 April 2024), Easter Monday and the May bank holidays excluded.
COLLECTION_DAYS = [
    day for day in (CREATED + datetime.timedelta(days=offset) for offset in range(1, 45)) if bacs_works(day)
]


def files_of(records: list[str]) -> list[list[str]]:
    """The files of a submission: after VOL1, each from its HDR1 to its UTL1."""
    assert records[0].startswith("VOL1")
    files: list[list[str]] = []
    for record in records[1:]:
        if record.startswith("HDR1"):
            files.append([])
        files[-1].append(record)
    assert all(file[-1].startswith("UTL1") for file in files)
    return files


@settings(max_examples=150, deadline=None)
@given(
    lodged=st.lists(st.tuples(instructions, payers), max_size=6),
    by_day=st.dictionaries(
        st.sampled_from(COLLECTION_DAYS),
        st.lists(st.tuples(collections, payers), min_size=1, max_size=4),
        max_size=3,
    ),
)
def test_a_submission_of_auddis_and_collection_files_parses_back_against_the_layout(lodged, by_day):
    batches = [bacs.Batch(COLLECTION_DAYS[0], instructions=lodged)] if lodged else []
    batches += [bacs.Batch(day, debits=debits) for day, debits in sorted(by_day.items())]
    if not batches:
        return

    result = bacs.standard18_submission(
        batches=batches, originator=ORIGINATOR, creation_date=CREATED, serial="A00042", period_start=PERIOD
    )

    assert result.content.split("\r\n") == result.records
    assert sum(record.startswith("VOL1") for record in result.records) == 1
    files = files_of(result.records)
    assert len(files) == len(batches)
    for number, (file, batch) in enumerate(zip(files, batches, strict=True), start=1):
        hdr1, hdr2, uhl1, *data, eof1, eof2, utl1 = [parse(record) for record in file]
        assert [hdr1["label"], hdr2["label"], uhl1["label"], eof1["label"], eof2["label"]] == [
            "HDR1",
            "HDR2",
            "UHL1",
            "EOF1",
            "EOF2",
        ]
        assert hdr1["file sequence number"] == eof1["file sequence number"] == f"{number:04d}"
        assert uhl1["file number"] == f"{number:03d}"
        assert hdr1["set identification"] == "A00042"
        assert from_bacs_day(uhl1["processing date"]) == batch.processing_date
        if batch.instructions:
            # An AUDDIS file: one record a Direct Debit Instruction, amount zero, no contra.
            assert len(data) == len(batch.instructions)
            for record, (instruction, payer) in zip(data, batch.instructions, strict=True):
                assert record["transaction code"] == instruction.transaction_code
                assert record["amount in pence"] == "0" * 11
                assert record["destination sort code"] + record["destination account number"] == (
                    payer.sort_code + payer.account_number
                )
                assert record["service user's reference"] == instruction.mandate_reference.ljust(18)
            assert int(utl1["debit value total"]) == int(utl1["credit value total"]) == 0
            assert int(utl1["debit item count"]) == int(utl1["credit item count"]) == 0
            assert int(utl1["DDI count"]) == len(batch.instructions)
        else:
            details, [contra] = data[:-1], data[-1:]
            assert [d["transaction code"] for d in details] == ["17"] * len(batch.debits)
            assert contra["transaction code"] == "99"
            total = sum(collection.amount_pence for collection, _payer in batch.debits)
            assert int(contra["amount in pence"]) == int(utl1["debit value total"]) == total
            assert utl1["DDI count"] == " " * 7
    assert result.instructions == [instruction for instruction, _payer in lodged]
    assert result.processing_dates == [batch.processing_date for batch in batches]
    assert result.total_pence == sum(c.amount_pence for debits in by_day.values() for c, _payer in debits)


def test_instructions_and_collections_never_share_a_file():
    instruction = bacs.Instruction("C-000001", "0N", "DDREF0001")
    payer = bacs.Payer("400515", "31926819", "Jane Smith")
    collection = bacs.Collection("C-000001", 100, "DDREF0001", "INV-000001")
    with pytest.raises(ValueError, match="AUDDIS instructions go in a file of their own"):
        bacs.standard18_submission(
            batches=[
                bacs.Batch(PROCESSING, debits=[(collection, payer)], instructions=[(instruction, payer)])
            ],
            originator=ORIGINATOR,
            creation_date=CREATED,
            serial="A00042",
            period_start=PERIOD,
        )
    with pytest.raises(ValueError, match="not an AUDDIS transaction code"):
        write([], instructions=[(bacs.Instruction("C-000001", "17", "DDREF0001"), payer)])


def test_one_collection_file_is_the_single_day_file_byte_for_byte():
    debits = [
        (bacs.Collection("C-000001", 187, "DDREF0001", "INV-000001"), bacs.Payer("400515", "31926819", "J"))
    ]
    assert (
        write(debits).content
        == bacs.standard18_submission(
            batches=[bacs.Batch(PROCESSING, debits=debits)],
            originator=ORIGINATOR,
            creation_date=CREATED,
            serial="A00042",
            period_start=PERIOD,
        ).content
    )


# Advance notice: 10 working days (the Direct Debit Guarantee), counted on the published calendar ---------


def working_days_between(after: datetime.date, until: datetime.date) -> int:
    """Bacs working days in (after, until], counted one by one."""
    return sum(
        bacs_works(after + datetime.timedelta(days=offset)) for offset in range(1, (until - after).days + 1)
    )


notice_days = st.one_of(
    st.dates(min_value=datetime.date(2024, 1, 1), max_value=datetime.date(2034, 12, 31)),
    st.builds(
        lambda holiday, offset: holiday + datetime.timedelta(days=offset),
        st.sampled_from(sorted(d for d in ENGLAND_AND_WALES if d.year <= 2034)),
        st.integers(-14, 3),
    ),
)


@settings(max_examples=400, deadline=None)
@given(sent_on=notice_days, promise_offset=st.integers(-30, 40))
def test_the_notified_debit_date_gives_ten_working_days_and_keeps_the_promise(sent_on, promise_offset):
    promised = sent_on + datetime.timedelta(days=promise_offset)

    day = bacs.notified_debit_date(sent_on=sent_on, promised=promised)

    assert bacs_works(day)
    assert working_days_between(sent_on, day) >= 10
    assert day >= promised
    # And no later than it must be: the working day before breaks the notice or the promise.
    before = last_working_before(day)
    assert working_days_between(sent_on, before) < 10 or before < promised


@settings(max_examples=200, deadline=None)
@given(made_at=making_instants, promise_offset=st.integers(-30, 40))
def test_a_notice_sent_as_the_file_is_made_gives_a_date_the_file_can_meet(made_at, promise_offset):
    sent_on = made_at.astimezone(LONDON).date()
    day = bacs.notified_debit_date(
        sent_on=sent_on, promised=sent_on + datetime.timedelta(days=promise_offset), made_at=made_at
    )

    processing = bacs.processing_day(made_at=made_at, promised=day)

    assert first_working_after(processing) == day  # debited on the notified date exactly
    assert_cycle_holds(processing, made_at=made_at, promised=day)


@pytest.mark.parametrize(
    ("sent_on", "earliest"),
    [
        # Christmas 2026: Friday 25th, Monday 28th (Boxing Day substitute), Friday 1 January are holidays.
        ("2026-12-18", "2027-01-06"),
        # Easter 2025: Good Friday 18 April and Easter Monday 21 April.
        ("2025-04-11", "2025-04-29"),
        # Sent on a Saturday: the first of the ten is Monday.
        ("2024-06-01", "2024-06-14"),
        # Across the early May and spring bank holidays of 2028 (1 May, 29 May).
        ("2028-04-28", "2028-05-15"),
    ],
)
def test_the_earliest_debit_after_a_notice_on_the_published_calendar(sent_on, earliest):
    day = bacs.earliest_debit_after_notice(datetime.date.fromisoformat(sent_on))
    assert day == datetime.date.fromisoformat(earliest)
    assert working_days_between(datetime.date.fromisoformat(sent_on), day) == 10
