"""The call import's line rules (billing.importer.parse) on their own, without the database: the header,
each reason a line is rejected, with its line number and the exact words the import report shows, and
the dialled-number forms. tests/billing/test_import.py and test_import_properties.py drive the same rules
through the page, the command and the worker."""

import csv
import datetime
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.importer.parse import (
    ImportCounts,
    ImportFileError,
    latest_start,
    normalise_dialled,
    parse_rows,
    read_header,
    text_stream,
)
from tests.billing.test_import_properties import other_written, uk_written

HEADER = "cli,dialled_number,start_time,duration,call_type,call_reference"
NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
GOOD = "02079460123,01134960001,2026-11-02T09:15:00+00:00,61,voice,R-1"


def parse(*lines: str, header: str = HEADER, latest: datetime.datetime = NOW):
    """Parse a file of ``lines`` under ``header``: (the calls, the counts with their errors)."""
    reader = csv.reader(io.StringIO("\n".join([header, *lines]) + "\n"))
    columns = read_header(reader)
    counts = ImportCounts()
    calls = [call for call, _encrypted in parse_rows(reader, columns, counts, latest=latest)]
    return calls, counts


def test_a_good_line_becomes_a_call_with_its_line_number():
    calls, counts = parse(GOOD)
    (call,) = calls
    assert (
        call.call_reference,
        call.cli,
        call.dialled_number,
        call.duration_seconds,
        call.call_type,
        call.line_number,
    ) == (
        "R-1",
        "+442079460123",
        "01134960001",
        61,
        "voice",
        2,
    )
    assert call.started_at == datetime.datetime(2026, 11, 2, 9, 15, tzinfo=datetime.UTC)
    assert (counts.lines_read, counts.rejected, counts.errors) == (1, 0, [])


def test_a_time_with_an_offset_keeps_it_even_in_summer():
    (call,), _counts = parse("02079460123,01134960001,2026-07-01T09:15:00+00:00,61,voice,R-1")
    assert call.started_at == datetime.datetime(2026, 7, 1, 9, 15, tzinfo=datetime.UTC)


def test_a_time_without_an_offset_is_uk_local_time():
    (call,), _counts = parse("02079460123,01134960001,2026-07-01T09:15:00,61,VOICE,R-1")
    assert call.started_at == datetime.datetime(2026, 7, 1, 8, 15, tzinfo=datetime.UTC)  # BST
    assert call.call_type == "voice"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("02079460123,01134960001,2026-11-02T09:15:00+00:00,61,voice", "wrong number of columns"),
        (
            "02079460123,01134960001,2026-11-02T09:15:00+00:00,61,voice, ",
            "call_reference must be 1 to 64 characters",
        ),
        (
            f"02079460123,01134960001,2026-11-02T09:15:00+00:00,61,voice,{'R' * 65}",
            "call_reference must be 1 to 64 characters",
        ),
        (
            "02079460123,01134960001,2026-11-02T09:15:00+00:00,61,voice,R\x07",
            "call_reference must be printable characters",
        ),
        (
            "not a number,01134960001,2026-11-02T09:15:00+00:00,61,voice,R-2",
            "cli is not a valid phone number",
        ),
        (
            "0207946012\x00,01134960001,2026-11-02T09:15:00+00:00,61,voice,R-2",
            "cli is not a valid phone number",
        ),
        (
            "02079460123,+0 12,2026-11-02T09:15:00+00:00,61,voice,R-2",
            "dialled_number is not a telephone number",
        ),
        ("02079460123,01134960001,2 Nov 2026,61,voice,R-2", "start_time is not an ISO 8601 date and time"),
        (
            "02079460123,01134960001,2026-11-02T09:15:00+00:00,-1,voice,R-2",
            "duration must be whole seconds between 0 and 86400",
        ),
        (
            "02079460123,01134960001,2026-11-02T09:15:00+00:00,86401,voice,R-2",
            "duration must be whole seconds between 0 and 86400",
        ),
        (
            "02079460123,01134960001,2026-11-02T09:15:00+00:00,1.5,voice,R-2",
            "duration must be whole seconds between 0 and 86400",
        ),
        ("02079460123,01134960001,2026-11-30T12:00:01+00:00,0,voice,R-2", "start_time is in the future"),
        (
            "02079460123,01134960001,2026-11-30T11:59:00+00:00,61,voice,R-2",
            "the call ends in the future (start_time plus duration)",
        ),
        (
            "02079460123,01134960001,2026-11-02T09:15:00+00:00,61,sms,R-2",
            "call_type must be one of data, fax, voice",
        ),
        (
            "02079460123,01134960001,2026-11-02T09:15:00+00:00,61,voice,R-1",
            "call_reference repeats an earlier line of this file",
        ),
    ],
)
def test_each_bad_line_is_rejected_with_its_number_and_reason(line, reason):
    calls, counts = parse(GOOD, line, GOOD.replace("R-1", "R-3"))
    assert [call.call_reference for call in calls] == ["R-1", "R-3"]
    assert (counts.lines_read, counts.rejected, counts.errors) == (3, 1, [(3, reason)])


def test_the_edges_of_the_rules_are_accepted():
    calls, counts = parse(
        "02079460123,01134960001,2026-11-02T09:15:00+00:00,86400,voice,R-1",  # a whole day
        "02079460123,01134960001,2026-11-02T09:15:00+00:00,0,voice," + "R" * 64,  # 64 characters
        "02079460123,01134960001,2026-11-30T12:00:00+00:00,0,fax,R-3",  # starting now, lasting nothing
        "02079460123,01134960001,2026-11-30T11:59:00+00:00,60,data,R-4",  # ending now
    )
    assert counts.errors == []
    assert [call.duration_seconds for call in calls] == [86400, 0, 0, 60]


def test_a_call_may_start_within_the_allowed_clock_skew():
    latest = latest_start(NOW)
    assert latest == NOW + datetime.timedelta(seconds=300)
    calls, counts = parse("02079460123,01134960001,2026-11-30T12:04:59+00:00,1,voice,R-1", latest=latest)
    assert len(calls) == 1 and counts.errors == []


def test_blank_lines_are_skipped_and_line_numbers_are_the_files_own():
    calls, counts = parse("", GOOD, "", "02079460123,01134960001,bad,61,voice,R-2")
    assert [call.line_number for call in calls] == [3]
    assert counts.lines_read == 2
    assert counts.errors == [(5, "start_time is not an ISO 8601 date and time")]


def test_an_undecodable_byte_rejects_only_its_line_and_names_the_byte():
    data = "\n".join([HEADER, GOOD, "02079460123,0113\udce9,2026-11-02T09:15:00+00:00,61,voice,R-2", ""])
    raw = io.BytesIO(data.encode("utf-8", "surrogateescape"))
    reader = csv.reader(text_stream(raw))
    counts = ImportCounts()
    calls = list(parse_rows(reader, read_header(reader), counts, latest=NOW))
    assert len(calls) == 1
    assert counts.errors == [(3, "line is not UTF-8 text (byte 0xe9)")]


@pytest.mark.parametrize("byte", [0x80, 0xC3, 0xFF])
def test_each_byte_that_is_not_utf8_is_named_from_0x80_to_0xff(byte):
    data = f"{HEADER}\n02079460123,0113{chr(0xDC00 + byte)},2026-11-02T09:15:00+00:00,61,voice,R-2\n"
    reader = csv.reader(text_stream(io.BytesIO(data.encode("utf-8", "surrogateescape"))))
    counts = ImportCounts()
    assert list(parse_rows(reader, read_header(reader), counts, latest=NOW)) == []
    assert counts.errors == [(2, f"line is not UTF-8 text (byte 0x{byte:02x})")]


def test_text_that_cannot_be_utf8_from_another_source_is_rejected_without_a_byte():
    calls, counts = parse("02079460123,0113\ud800,2026-11-02T09:15:00+00:00,61,voice,R-2")
    assert calls == []
    assert counts.errors == [(2, "line is not UTF-8 text")]


def test_the_stream_drops_a_byte_order_mark_and_keeps_the_files_own_line_endings():
    """csv reads the line endings itself (a quoted field may hold one); Excel starts its UTF-8 with a BOM."""
    assert text_stream(io.BytesIO(b'\xef\xbb\xbfcli\r\n1,"a\r\nb"\n')).read() == 'cli\r\n1,"a\r\nb"\n'


def test_a_line_the_csv_module_cannot_read_is_rejected_and_reading_goes_on():
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(100)
        calls, counts = parse(GOOD, f'02079460123,"{"1" * 200}",x,1,voice,R-2', GOOD.replace("R-1", "R-3"))
    finally:
        csv.field_size_limit(limit)
    assert [call.call_reference for call in calls] == ["R-1", "R-3"]
    assert counts.rejected == 1 and counts.lines_read == 3
    assert counts.errors[0][0] == 3
    assert counts.errors[0][1].startswith("line cannot be read as CSV: field larger than field limit")


def test_every_bad_line_is_counted_and_listed():
    calls, counts = parse(
        "02079460123,01134960001,bad,61,voice,R-2",
        GOOD,
        "02079460123,01134960001,2026-11-02T09:15:00+00:00,61,sms,R-3",
        "02079460123,01134960001,2026-11-02T09:15:00+00:00,61,voice",
    )
    assert len(calls) == 1
    assert (counts.lines_read, counts.rejected) == (4, 3)
    assert [line for line, _reason in counts.errors] == [2, 4, 5]


def test_several_lines_the_csv_module_cannot_read_are_each_rejected():
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(100)
        too_long = f'02079460123,"{"1" * 200}",x,1,voice,R-2'
        calls, counts = parse(too_long, GOOD, too_long.replace("R-2", "R-4"))
    finally:
        csv.field_size_limit(limit)
    assert len(calls) == 1
    assert (counts.lines_read, counts.rejected) == (3, 2)
    assert [line for line, _reason in counts.errors] == [2, 4]


class _StuckReader:
    """A reader that fails on the same line again without reading on (a broken source)."""

    line_num = 7

    def __iter__(self):
        return self

    def __next__(self):
        raise csv.Error("stuck")


def test_a_reader_that_fails_twice_on_one_line_fails_the_file_rather_than_looping():
    counts = ImportCounts()
    with pytest.raises(csv.Error, match="stuck"):
        list(
            parse_rows(
                _StuckReader(), {name: n for n, name in enumerate(HEADER.split(","))}, counts, latest=NOW
            )
        )
    assert counts.errors == [(7, "line cannot be read as CSV: stuck")]


@pytest.mark.parametrize(
    "header",
    [
        "CLI, Dialled_Number ,START_TIME,duration,call_type,call_reference",
        "\ufeffcli,dialled_number,start_time,duration,call_type,call_reference",
        "call_reference,call_type,duration,start_time,dialled_number,cli,notes",
    ],
)
def test_header_names_are_matched_trimmed_and_without_case_in_any_order(header):
    reader = csv.reader(io.StringIO(header + "\n"))
    columns = read_header(reader)
    names = [name.strip().lstrip("\ufeff").lower() for name in header.split(",")]
    assert columns == {name: names.index(name) for name in names}


def test_a_header_without_a_required_column_names_what_is_missing():
    message = (
        r"^The header must name the columns cli, dialled_number, start_time, duration, call_type, "
        r"call_reference; missing: duration, call_reference\.$"
    )
    with pytest.raises(ImportFileError, match=message):
        read_header(csv.reader(io.StringIO("cli,dialled_number,start_time,call_type\n")))
    with pytest.raises(ImportFileError, match="missing: cli, dialled_number"):
        read_header(csv.reader(io.StringIO("")))


def test_a_header_naming_a_column_twice_is_refused():
    with pytest.raises(ImportFileError, match=r"^The header names a column more than once\.$"):
        read_header(csv.reader(io.StringIO(HEADER + ",CLI\n")))


@settings(max_examples=300, deadline=None)
@given(number=st.one_of(uk_written(), other_written()))
def test_every_written_form_is_the_number_as_dialled_from_the_uk(number):
    written, canonical, _band = number
    assert normalise_dialled(written) == canonical
    assert normalise_dialled(canonical) == canonical


@pytest.mark.parametrize(
    ("written", "dialled"),
    [
        ("123", "123"),  # the shortest a number may be
        ("1" * 20, "1" * 20),  # the longest
        ("+44 (0)20 7946 0123", "02079460123"),
        ("0044(0)2079460123", "02079460123"),
        ("(+353) (0)1 234 5678", "0035312345678"),
        ("00353 1 234 5678", "0035312345678"),
        ("00442079460123", "02079460123"),  # all digits, but a UK number written internationally
        ("0035312345678", "0035312345678"),
        ("999", "999"),
    ],
)
def test_dialled_numbers_worked_by_hand(written, dialled):
    assert normalise_dialled(written) == dialled


@pytest.mark.parametrize(
    "written",
    ["12", "1" * 21, "0002079460123", "+0 20", "000 20", "+", "00", "+ (0)", "abc", "٠١٢٣", "+44x20"],
)
def test_what_is_not_a_telephone_number_is_refused(written):
    with pytest.raises(ValueError, match=r"^dialled_number is not a telephone number$"):
        normalise_dialled(written)
