"""Importing call records: every bad line reported with its number and reason while the good lines load;
a file without the header fails as a whole; importing the same file twice imports nothing twice."""

import datetime
import io
import threading
import zoneinfo
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection

from accounts import services as accounts_services
from accounts.models import Role
from billing.demo import uk_tariff
from billing.importer import load, pipeline
from billing.importer.parse import ImportFileError
from billing.importer.pipeline import _Batch, _load_all, _read_ahead
from billing.models import CallImport, CallRecord
from billing.rating import RatingSnapshot
from billing.services.call_imports import call_import_run
from billing.services.tariffs import customer_set_tariff, line_set_tariff
from tests.billing.factories import (
    CSV_HEADER,
    Call,
    billing_profile,
    call,
    calls_csv,
    cli_of,
    import_calls,
    run_on_commit,
    simple_tariff,
)
from tests.factories import LineFactory, full_customer

UK = zoneinfo.ZoneInfo("Europe/London")

GOOD_DIALLED = "01134960000"


@pytest.fixture
def cli(customer):
    """The customer's line number as a CDR gives it (national digits)."""
    return "0" + cli_of(customer).removeprefix("+44")


def _good(cli: str, reference: str) -> str:
    return f"{cli},{GOOD_DIALLED},2025-01-15T10:00:00,60,voice,{reference}"


def _run(partner, text: str, *, file_name: str = "calls.csv") -> CallImport:
    return call_import_run(partner=partner, stream=io.StringIO(text), file_name=file_name, actor=None)


HEADER = ",".join(CSV_HEADER)

BAD_ROWS = [
    pytest.param(
        "not-a-phone,{dialled},2025-01-15T10:00:00,60,voice,BAD",
        "cli is not a valid phone number",
        id="bad-cli",
    ),
    pytest.param(
        "{cli},{dialled},yesterday,60,voice,BAD", "start_time is not an ISO 8601 date and time", id="bad-time"
    ),
    pytest.param(
        "{cli},{dialled},2025-13-01T10:00:00,60,voice,BAD",
        "start_time is not an ISO 8601 date and time",
        id="bad-month",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,-5,voice,BAD",
        "duration must be whole seconds between 0 and 86400",
        id="negative-duration",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,abc,voice,BAD",
        "duration must be whole seconds between 0 and 86400",
        id="non-numeric-duration",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,1.5,voice,BAD",
        "duration must be whole seconds between 0 and 86400",
        id="fractional-duration",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,86401,voice,BAD",
        "duration must be whole seconds between 0 and 86400",
        id="over-a-day",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,60,sms,BAD",
        "call_type must be one of data, fax, voice",
        id="unknown-call-type",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,60,voice", "wrong number of columns", id="missing-column"
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,60,voice,BAD,extra", "wrong number of columns", id="extra-column"
    ),
    pytest.param(
        "{cli},not-a-number,2025-01-15T10:00:00,60,voice,BAD",
        "dialled_number is not a telephone number",
        id="bad-dialled",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,60,voice,",
        "call_reference must be 1 to 64 characters",
        id="empty-reference",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,60,voice," + "R" * 65,
        "call_reference must be 1 to 64 characters",
        id="long-reference",
    ),
    pytest.param(
        "{cli},{dialled},2025-01-15T10:00:00,60,voice,GOOD-1",
        "call_reference repeats an earlier line of this file",
        id="repeated-reference",
    ),
]


@pytest.mark.parametrize(("bad_row", "reason"), BAD_ROWS)
def test_a_malformed_line_is_reported_with_its_number_and_reason_and_the_good_lines_import(
    partner, profile, cli, bad_row, reason
):
    text = "\n".join(
        [
            HEADER,
            _good(cli, "GOOD-1"),
            bad_row.format(cli=cli, dialled=GOOD_DIALLED),
            _good(cli, "GOOD-2"),
            "",
        ]
    )

    call_import = _run(partner, text)

    assert call_import.status == CallImport.Status.COMPLETED
    assert (call_import.lines_read, call_import.imported, call_import.rejected, call_import.duplicates) == (
        3,
        2,
        1,
        0,
    )
    assert list(call_import.errors.values_list("line_number", "reason")) == [(3, reason)]
    assert set(CallRecord.objects.values_list("call_reference", flat=True)) == {"GOOD-1", "GOOD-2"}
    assert set(CallRecord.objects.values_list("status", flat=True)) == {CallRecord.Status.RATED}


def test_every_bad_line_of_a_file_is_listed_in_line_order(partner, profile, cli):
    rows = [param.values[0].format(cli=cli, dialled=GOOD_DIALLED) for param in BAD_ROWS]
    text = "\n".join([HEADER, _good(cli, "GOOD-1"), *rows, _good(cli, "GOOD-2")]) + "\n"

    call_import = _run(partner, text)

    errors = list(call_import.errors.values_list("line_number", "reason"))
    assert errors == [(number, param.values[1]) for number, param in enumerate(BAD_ROWS, start=3)]
    assert (call_import.imported, call_import.rejected) == (2, len(BAD_ROWS))


def test_columns_may_come_in_any_order_and_numbers_in_any_format(partner, profile, customer):
    e164 = cli_of(customer)
    text = (
        "call_reference,duration,call_type,start_time,dialled_number,cli\n"
        f"A-1,61,Voice,2025-01-15T10:00:00+00:00,+44 113 496 0000,{e164}\n"
        f'A-2,60,fax,2025-01-15 11:00:00,(0113) 496-0000,"0{e164.removeprefix("+44")}"\n'
    )

    call_import = _run(partner, text)

    assert (call_import.imported, call_import.rejected) == (2, 0)
    first = CallRecord.objects.get(call_reference="A-1")
    assert (first.dialled_prefix, first.call_type, first.customer_id) == ("01134960", "voice", customer.pk)
    assert first.cost == Decimal("0.0153")
    assert CallRecord.objects.get(call_reference="A-2").status == CallRecord.Status.RATED


@pytest.mark.parametrize(
    ("text", "missing"),
    [
        pytest.param(
            "", "cli, dialled_number, start_time, duration, call_type, call_reference", id="empty-file"
        ),
        pytest.param(
            "+441134960000,01134960000,2025-01-15T10:00:00,60,voice,R1\n",
            "cli, dialled_number",
            id="no-header",
        ),
        pytest.param(
            "cli,dialled_number,start_time,duration,call_type\n", "call_reference", id="missing-column"
        ),
        pytest.param("CLI;Dialled;Start;Duration;Type;Ref\n", "cli, dialled_number", id="wrong-delimiter"),
    ],
)
def test_a_file_without_the_required_header_fails_clearly(partner, profile, text, missing):
    with pytest.raises(ImportFileError, match="The header must name the columns") as raised:
        _run(partner, text)

    assert f"missing: {missing}" in str(raised.value)
    call_import = CallImport.objects.get(partner=partner)
    assert call_import.status == CallImport.Status.FAILED
    assert call_import.finished_at is not None
    assert list(call_import.errors.values_list("line_number", flat=True)) == [0]
    assert "missing" in call_import.errors.get().reason
    assert not CallRecord.objects.exists()


def test_importing_the_same_file_twice_imports_nothing_the_second_time(partner, profile, customer):
    cli = cli_of(customer)
    text = calls_csv([Call(cli=cli), Call(cli=cli), Call(cli="020 7946 0123"), Call(cli="x")])

    first = _run(partner, text)
    second = _run(partner, text)

    assert (first.imported, first.duplicates, first.rejected, first.suspense) == (3, 0, 1, 1)
    assert (second.imported, second.duplicates, second.rejected, second.suspense) == (0, 3, 1, 0)
    assert CallRecord.objects.count() == 3
    assert CallRecord.objects.filter(call_import=first).count() == 3


def test_a_file_overlapping_an_earlier_one_imports_only_the_new_calls(partner, profile, customer):
    cli = cli_of(customer)
    calls = [Call(cli=cli) for _ in range(4)]
    _run(partner, calls_csv(calls[:3]))

    later = _run(partner, calls_csv(calls[1:]))

    assert (later.imported, later.duplicates) == (1, 2)
    assert CallRecord.objects.get(call_reference=calls[3].call_reference).call_import == later


# The management command ---------------------------------------------------------------------------


def _command(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_calls", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("encoding", "newline"), [("utf-8", "\n"), ("utf-8-sig", "\r\n")], ids=["plain", "excel-bom-crlf"]
)
def test_import_calls_command_prints_a_summary_and_lists_rejected_lines(
    partner, profile, cli, tmp_path, encoding, newline
):
    path = tmp_path / "calls.csv"
    rows = [HEADER, _good(cli, "C-1"), _good("bad", "C-2"), _good("020 7946 0123", "C-3"), _good(cli, "C-4")]
    path.write_bytes(newline.join([*rows, ""]).encode(encoding))

    out, err = _command(partner.code, str(path))

    call_import = CallImport.objects.get()
    assert f"Import #{call_import.pk}: 3 imported, 0 already imported, 1 rejected, 1 in suspense." in out
    assert "line 3: cli is not a valid phone number" in err
    assert call_import.file_name == "calls.csv"

    out, err = _command(partner.code, str(path))

    assert "0 imported, 3 already imported, 1 rejected, 0 in suspense." in out
    assert "line 3: cli is not a valid phone number" in err
    assert CallRecord.objects.count() == 3


@pytest.mark.parametrize(
    ("partner_code", "file_text", "message"),
    [
        ("no-such-partner", HEADER + "\n", "No partner with code 'no-such-partner'"),
        (None, "cli,dialled_number\n", "missing: start_time, duration, call_type, call_reference"),
    ],
    ids=["unknown-partner", "missing-header"],
)
def test_import_calls_command_fails_clearly(partner, tmp_path, partner_code, file_text, message):
    path = tmp_path / "calls.csv"
    path.write_text(file_text)

    with pytest.raises(CommandError, match=message):
        _command(partner_code or partner.code, str(path))


def test_import_calls_command_refuses_a_missing_file(partner, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        _command(partner.code, str(tmp_path / "absent.csv"))


# The staff upload page ---------------------------------------------------------------------------


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


def test_staff_upload_imports_the_file_and_the_import_page_shows_counts_and_errors(
    client, make_user, partner, profile, cli, media
):
    client.force_login(make_user(Role.BILLING_AGENT))
    text = "\n".join([HEADER, _good(cli, "U-1"), _good(cli, "U-1"), _good(cli, "U-2"), "x,y", ""])
    upload = SimpleUploadedFile("january.csv", text.encode(), content_type="text/csv")

    with run_on_commit():
        response = client.post("/billing/imports/", {"file": upload})

    call_import = CallImport.objects.get()
    assert response.status_code == 302
    assert response.url == f"/billing/imports/{call_import.pk}/"
    assert (call_import.status, call_import.partner, call_import.file_name) == (
        CallImport.Status.COMPLETED,
        partner,
        "january.csv",
    )
    assert (call_import.imported, call_import.rejected) == (2, 2)
    assert not list((media / "call-imports").iterdir()), "the uploaded file (personal data) is deleted"

    page = client.get(response.url)

    assert page.status_code == 200
    html = page.content.decode()
    assert "<dt>Imported</dt><dd>2</dd>" in html
    assert "<dt>Rejected</dt><dd>2</dd>" in html
    assert "call_reference repeats an earlier line of this file" in html
    assert "wrong number of columns" in html
    assert [(e.line_number, e.reason) for e in page.context["errors"]] == [
        (3, "call_reference repeats an earlier line of this file"),
        (5, "wrong number of columns"),
    ]
    listing = client.get("/billing/imports/")
    assert listing.status_code == 200
    assert call_import in listing.context["imports"]


def test_an_uploaded_file_without_the_header_shows_as_failed(client, make_user, partner, profile, media):
    client.force_login(make_user(Role.BILLING_AGENT))
    upload = SimpleUploadedFile("calls.csv", b"a,b,c\n1,2,3\n", content_type="text/csv")

    with run_on_commit():
        response = client.post("/billing/imports/", {"file": upload})

    call_import = CallImport.objects.get()
    assert call_import.status == CallImport.Status.FAILED
    page = client.get(response.url)
    assert page.status_code == 200
    assert "The header must name the columns" in page.content.decode()
    assert "<dd>Failed</dd>" in page.content.decode()


@pytest.mark.parametrize("name", ["calls.txt", "calls.xlsx", "calls.csv.exe"])
def test_the_upload_page_rejects_a_file_that_is_not_csv(client, make_user, partner, media, name):
    client.force_login(make_user(Role.BILLING_AGENT))
    upload = SimpleUploadedFile(name, b"cli\n", content_type="application/octet-stream")

    with run_on_commit():
        response = client.post("/billing/imports/", {"file": upload})

    assert response.status_code == 200
    assert response.context["form"].errors == {"file": ["Upload a .csv file."]}
    assert "Upload a .csv file." in response.content.decode()
    assert not CallImport.objects.exists()


@pytest.mark.parametrize(("role", "status"), [(Role.SUPPORT_AGENT, 403), (Role.FINANCE_MANAGER, 403)])
def test_only_roles_that_may_import_can_upload(client, make_user, partner, media, role, status):
    client.force_login(make_user(role))
    upload = SimpleUploadedFile("calls.csv", f"{HEADER}\n".encode(), content_type="text/csv")

    response = client.post("/billing/imports/", {"file": upload})

    assert response.status_code == status
    assert not CallImport.objects.exists()


def test_another_partners_import_page_is_not_found(client, make_user, other_partner, media):
    foreign = _run(other_partner, f"{HEADER}\n")
    client.force_login(make_user(Role.BILLING_AGENT))

    assert client.get(f"/billing/imports/{foreign.pk}/").status_code == 404
    assert foreign not in client.get("/billing/imports/").context["imports"]


def test_line_numbers_are_the_files_own_across_blank_lines_and_quoted_line_breaks(partner, profile, cli):
    text = "\n".join(
        [
            HEADER,
            _good(cli, "R1"),
            "",
            f'{cli},{GOOD_DIALLED},2025-01-15T10:00:00,60,"voice\nextra",R2',
            f"{cli},{GOOD_DIALLED},2025-01-15T10:00:00,60,sms,R3",
            _good(cli, "R4"),
        ]
    )

    call_import = _run(partner, text + "\n")

    assert list(call_import.errors.values_list("line_number", "reason")) == [
        (5, "call_type must be one of data, fax, voice"),
        (6, "call_type must be one of data, fax, voice"),
    ], "the quoted field spans lines 4-5; the blank line 3 is not a call"
    assert call_import.imported == 2
    assert call_import.lines_read == 4


def test_a_header_naming_a_column_twice_fails_clearly(partner, profile, cli):
    with pytest.raises(ImportFileError, match="names a column more than once"):
        _run(partner, f"{HEADER},cli\n{_good(cli, 'R1')},x\n")
    assert not CallRecord.objects.exists()


def test_the_read_ahead_thread_keeps_order_raises_its_errors_here_and_stops_when_the_loader_does():
    def batches(fail_after: int | None = None):
        for number in range(5):
            if number == fail_after:
                raise ValueError("unreadable")
            yield _Batch(rows=[number], lines_read=number, rejected=0)

    assert [batch.rows for batch in _read_ahead(batches())] == [[0], [1], [2], [3], [4]]

    with pytest.raises(ValueError, match="unreadable"):
        list(_read_ahead(batches(fail_after=3)))

    reading = _read_ahead(batches())
    assert next(reading).rows == [0]
    reading.close()  # the loader failed: the reader thread must end, not wait forever
    assert not any(thread.name == "call-import-reader" for thread in threading.enumerate())


def _loader_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("call-import-loader")]


def test_parallel_loaders_yield_every_batch_raise_an_error_here_and_stop():
    batches = [_Batch(rows=[number], lines_read=number, rejected=0) for number in range(7)]
    loaded = list(_load_all(iter(batches), lambda batch: batch.rows[0] * 10, loaders=2))
    assert sorted((batch.rows[0], inserted) for batch, inserted in loaded) == [(n, n * 10) for n in range(7)]
    assert not _loader_threads()

    def fail_on_three(batch: _Batch) -> int:
        if batch.rows[0] == 3:
            raise ValueError("batch 3 failed")
        return 1

    with pytest.raises(ValueError, match="batch 3 failed"):
        list(_load_all(iter(batches), fail_on_three, loaders=2))
    assert not _loader_threads(), "the loader threads ended after the error"


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: parallel loading is for PostgreSQL only"
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_import_outside_a_transaction_loads_its_batches_in_parallel_and_counts_every_line(monkeypatch):
    partner = accounts_services.partner_create(code="parallel", name="Parallel Ltd", actor=None)
    billing_profile(partner, default_tariff=uk_tariff(name="Parallel"))
    customer = full_customer(partner)
    number = "0" + cli_of(customer).removeprefix("+44")
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 3)
    loaded_by: set[str] = set()
    load_postgresql = load.load_postgresql

    def recording_load(rows, **kwargs):
        loaded_by.add(threading.current_thread().name)
        return load_postgresql(rows, **kwargs)

    monkeypatch.setattr(load, "load_postgresql", recording_load)
    lines = [_good(number, f"PAR-{n:03d}") for n in range(20)]
    lines[7] = f"{number},{GOOD_DIALLED},yesterday,60,voice,PAR-BAD"  # line 9 of the file

    first = _run(partner, "\n".join([HEADER, *lines]))
    again = _run(partner, "\n".join([HEADER, *lines]))

    assert loaded_by == {"call-import-loader-0", "call-import-loader-1"}
    first.refresh_from_db()
    assert (first.status, first.lines_read, first.imported, first.duplicates, first.rejected) == (
        CallImport.Status.COMPLETED,
        20,
        19,
        0,
        1,
    )
    assert list(first.errors.values_list("line_number", "reason")) == [
        (9, "start_time is not an ISO 8601 date and time")
    ]
    assert CallRecord.objects.filter(call_import=first, status=CallRecord.Status.RATED).count() == 19
    again.refresh_from_db()
    assert (again.imported, again.duplicates) == (0, 19)
    assert not _loader_threads()


# Issue 14: call import and rating -----------------------------------------------------------------


@pytest.mark.parametrize(
    "written",
    [
        "0044 20 7946 0123",
        "00442079460123",
        "+44 20 7946 0123",
        "+44 (0)20 7946 0123",
        "0044 (0) 20-7946-0123",
        "+4402079460123",
        "(+44) 20 7946 0123",
        "(020) 7946-0123",
        "020.7946.0123",
    ],
)
def test_a_uk_number_in_any_written_form_rates_as_the_uk_number(partner, profile, cli, written):
    text = "\n".join(
        [
            HEADER,
            f"{cli},02079460123,2025-01-15T10:00:00,60,voice,NATIONAL",
            f'{cli},"{written}",2025-01-15T10:00:00,60,voice,WRITTEN',
            "",
        ]
    )

    call_import = _run(partner, text)

    assert (call_import.imported, call_import.rejected) == (2, 0)
    national, as_written = (
        CallRecord.objects.get(call_reference="NATIONAL"),
        CallRecord.objects.get(call_reference="WRITTEN"),
    )
    assert (as_written.dialled_number, as_written.dialled_prefix) == ("02079460123", "02079460")
    assert (as_written.band, as_written.rate.prefix, as_written.cost) == (
        "geographic",
        "02",
        Decimal("0.0150"),
    )
    assert (as_written.band, as_written.rate_id, as_written.cost) == (
        national.band,
        national.rate_id,
        national.cost,
    )


@pytest.mark.parametrize(
    ("written", "dialled", "prefix"),
    [
        ("+353 (0)87 123 4567", "00353871234567", "0035387"),
        ("00 353 1 234 5678", "0035312345678", "00353"),
        ("+33 (0)1 23 45 67 89", "0033123456789", "00"),
    ],
)
def test_an_international_number_written_with_its_trunk_zero_rates_by_its_country(
    partner, profile, cli, written, dialled, prefix
):
    call_import = _run(partner, f'{HEADER}\n{cli},"{written}",2025-01-15T10:00:00,60,voice,INTL\n')

    assert call_import.imported == 1
    stored = CallRecord.objects.get(call_reference="INTL")
    assert (stored.band, stored.rate.prefix) == ("international", prefix)
    assert stored.dialled_number == dialled, "the bracketed trunk 0 is not dialled from abroad"


@pytest.mark.parametrize("written", ["+0044 20 7946 0123", "000 44 20", "+", "00", "0044"])
def test_an_international_prefix_without_a_country_code_is_rejected(partner, profile, cli, written):
    call_import = _run(partner, f'{HEADER}\n{cli},"{written}",2025-01-15T10:00:00,60,voice,R1\n')

    assert list(call_import.errors.values_list("line_number", "reason")) == [
        (2, "dialled_number is not a telephone number")
    ]
    assert not CallRecord.objects.exists()


def _iso(instant) -> str:
    return instant.isoformat()


def _uk_local(instant) -> str:
    return instant.astimezone(UK).replace(tzinfo=None).isoformat()


@pytest.mark.date_sensitive
def test_a_call_in_the_future_is_rejected_with_its_line_number(partner, profile, cli, tmp_path, settings):
    """The clock skew allowed is 300 s by default; margins of a minute keep the ticking clock out of it."""
    from django.utils import timezone

    settings.CALL_IMPORT_CLOCK_SKEW_SECONDS = 300
    now = timezone.now()
    minutes = datetime.timedelta(minutes=1)
    rows = [
        HEADER,
        f"{cli},{GOOD_DIALLED},{_iso(now - 60 * minutes)},60,voice,PAST",
        f"{cli},{GOOD_DIALLED},{_iso(now + 4 * minutes)},0,voice,WITHIN-SKEW",
        f"{cli},{GOOD_DIALLED},{_iso(now + 6 * minutes)},60,voice,FUTURE",
        f"{cli},{GOOD_DIALLED},{_iso(now + datetime.timedelta(days=400))},60,voice,NEXT-YEAR",
        f"{cli},{GOOD_DIALLED},{_iso(now - 10 * minutes)},3600,voice,STILL-ON-THE-LINE",
        # A naive time is UK local: tomorrow, whatever the offset of the day.
        f"{cli},{GOOD_DIALLED},{_uk_local(now + datetime.timedelta(days=1))},60,voice,TOMORROW-LOCAL",
    ]
    path = tmp_path / "calls.csv"
    path.write_text("\n".join([*rows, ""]))

    out, err = _command(partner.code, str(path))

    call_import = CallImport.objects.get()
    assert list(call_import.errors.values_list("line_number", "reason")) == [
        (4, "start_time is in the future"),
        (5, "start_time is in the future"),
        (6, "the call ends in the future (start_time plus duration)"),
        (7, "start_time is in the future"),
    ]
    assert "line 4: start_time is in the future" in err
    assert "2 imported, 0 already imported, 4 rejected, 0 in suspense." in out
    assert set(CallRecord.objects.values_list("call_reference", flat=True)) == {"PAST", "WITHIN-SKEW"}


@pytest.mark.date_sensitive
def test_the_clock_skew_allowed_is_a_setting(partner, profile, cli, settings):
    from django.utils import timezone

    settings.CALL_IMPORT_CLOCK_SKEW_SECONDS = 0
    ahead = timezone.now() + datetime.timedelta(minutes=2)

    call_import = _run(partner, f"{HEADER}\n{cli},{GOOD_DIALLED},{_iso(ahead)},0,voice,AHEAD\n")

    assert list(call_import.errors.values_list("line_number", "reason")) == [
        (2, "start_time is in the future")
    ]
    assert not CallRecord.objects.exists()


def test_a_reference_another_partner_used_is_imported_for_this_partner(
    partner, profile, cli, other_partner, other_customer
):
    other_cli = "0" + cli_of(other_customer).removeprefix("+44")
    _run(other_partner, f"{HEADER}\n{_good(other_cli, 'SHARED-1')}\n")

    mine = _run(partner, f"{HEADER}\n{_good(cli, 'SHARED-1')}\n{_good(cli, 'MINE-2')}\n")

    assert (mine.lines_read, mine.imported, mine.duplicates, mine.rejected) == (2, 2, 0, 0)
    assert CallRecord.objects.filter(call_reference="SHARED-1").count() == 2
    stored = CallRecord.objects.get(call_reference="SHARED-1", partner=partner)
    assert (stored.call_import, stored.customer_id, stored.status) == (
        mine,
        cli_of_customer(partner),
        "rated",
    )

    again = _run(partner, f"{HEADER}\n{_good(cli, 'SHARED-1')}\n{_good(cli, 'MINE-2')}\n")

    assert (again.imported, again.duplicates) == (0, 2), "this partner's own reference is already imported"
    assert CallRecord.objects.filter(partner=partner).count() == 2


def cli_of_customer(partner) -> int:
    return partner.customers.get().pk


def test_a_reference_another_partner_used_for_a_call_in_suspense_is_imported_too(
    partner, profile, other_partner
):
    _run(other_partner, f"{HEADER}\n{_good('020 7946 0123', 'SUSPENDED-1')}\n")
    assert CallRecord.objects.get(call_reference="SUSPENDED-1").status == CallRecord.Status.SUSPENSE

    mine = _run(partner, f"{HEADER}\n{_good('020 7946 0123', 'SUSPENDED-1')}\n")

    assert (mine.imported, mine.duplicates, mine.suspense) == (1, 0, 1)
    assert set(CallRecord.objects.values_list("partner_id", "status")) == {
        (other_partner.pk, CallRecord.Status.SUSPENSE),
        (partner.pk, CallRecord.Status.SUSPENSE),
    }


def test_an_undecodable_byte_rejects_only_its_line_through_the_command(partner, profile, cli, tmp_path):
    path = tmp_path / "calls.csv"
    path.write_bytes(
        b"\r\n".join(
            [
                HEADER.encode(),
                _good(cli, "C-1").encode(),
                _good(cli, "C-2").encode() + b"\xff",
                f"{cli},{GOOD_DIALLED},2025-01-15T10:00:00,60,voice,Caf\xe9".encode("latin-1"),
                _good(cli, "C-4").encode(),
                b"",
            ]
        )
    )

    out, err = _command(partner.code, str(path))

    call_import = CallImport.objects.get()
    assert list(call_import.errors.values_list("line_number", "reason")) == [
        (3, "line is not UTF-8 text (byte 0xff)"),
        (4, "line is not UTF-8 text (byte 0xe9)"),
    ]
    assert "line 3: line is not UTF-8 text (byte 0xff)" in err
    assert "2 imported, 0 already imported, 2 rejected, 0 in suspense." in out
    assert (call_import.status, call_import.lines_read) == (CallImport.Status.COMPLETED, 4)
    assert set(CallRecord.objects.values_list("call_reference", flat=True)) == {"C-1", "C-4"}


def test_an_undecodable_byte_rejects_only_its_line_through_the_upload_page(
    client, make_user, partner, profile, cli, media
):
    client.force_login(make_user(Role.BILLING_AGENT))
    body = "\n".join([HEADER, _good(cli, "U-1"), _good(cli, "U-2"), ""]).encode()
    body = body.replace(b"U-2", b"U-\x80\x812")  # a cp1252 export's bytes in the reference

    with run_on_commit():
        response = client.post("/billing/imports/", {"file": SimpleUploadedFile("calls.csv", body)})

    call_import = CallImport.objects.get()
    assert (call_import.status, call_import.imported, call_import.rejected) == (
        CallImport.Status.COMPLETED,
        1,
        1,
    )
    page = client.get(response.url)
    assert [(e.line_number, e.reason) for e in page.context["errors"]] == [
        (3, "line is not UTF-8 text (byte 0x80)")
    ]


def test_a_line_the_csv_module_cannot_read_is_rejected_and_the_rest_load(partner, profile, cli):
    huge = "9" * 200_000  # over the csv module's field size limit
    text = "\n".join(
        [HEADER, _good(cli, "R1"), f"{cli},{huge},2025-01-15T10:00:00,60,voice,R2", _good(cli, "R3")]
    )

    call_import = _run(partner, text + "\n")

    [(line_number, reason)] = call_import.errors.values_list("line_number", "reason")
    assert line_number == 3
    assert reason.startswith("line cannot be read as CSV: field larger than field limit")
    assert (call_import.lines_read, call_import.imported, call_import.rejected) == (3, 2, 1)


@pytest.mark.parametrize("reference", ["NUL\x00REF", "TAB\tREF", "BELL\x07"], ids=["nul", "tab", "control"])
def test_a_reference_with_control_characters_is_rejected(partner, profile, cli, reference):
    """PostgreSQL cannot store a NUL in text: one such line would fail its whole batch there."""
    call_import = _run(partner, f"{HEADER}\n{_good(cli, 'R1')}\n{_good(cli, reference)}\n")

    assert list(call_import.errors.values_list("line_number", "reason")) == [
        (3, "call_reference must be printable characters")
    ]
    assert call_import.imported == 1


@pytest.mark.parametrize(
    "header",
    [
        "CLI,Dialled_Number,Start_Time,DURATION,Call_Type,Call_Reference",
        " cli , Dialled_Number,start_time ,duration,call_type,call_reference",
        "\ufeffCli,dialled_number,start_time,duration,call_type,call_reference",
    ],
    ids=["upper-and-mixed-case", "padded", "byte-order-mark"],
)
def test_header_names_are_matched_trimmed_and_case_insensitively(partner, profile, cli, tmp_path, header):
    path = tmp_path / "calls.csv"
    path.write_text(f"{header}\n{_good(cli, 'H-1')}\n", encoding="utf-8")

    out, _err = _command(partner.code, str(path))

    assert "1 imported, 0 already imported, 0 rejected, 0 in suspense." in out
    assert CallRecord.objects.get().call_reference == "H-1"


def test_a_header_naming_a_column_twice_in_different_cases_fails_clearly(partner, profile, cli):
    with pytest.raises(ImportFileError, match="names a column more than once"):
        _run(partner, f"{HEADER},CLI\n{_good(cli, 'R1')},x\n")


@pytest.mark.parametrize(
    ("changed", "line"),
    [
        ("start", "{cli},01134960000,2025-02-15T10:00:00,60,voice,REUSED"),
        ("duration", "{cli},01134960000,2025-01-15T10:00:00,61,voice,REUSED"),
        ("dialled", "{cli},07700900123,2025-01-15T10:00:00,60,voice,REUSED"),
        ("cli", "020 7946 0123,01134960000,2025-01-15T10:00:00,60,voice,REUSED"),
    ],
)
def test_a_reference_the_partner_reused_for_another_call_is_rejected_not_dropped(
    partner, profile, cli, changed, line
):
    _run(partner, f"{HEADER}\n{_good(cli, 'REUSED')}\n")

    later = _run(partner, f"{HEADER}\n{_good(cli, 'NEW-1')}\n{line.format(cli=cli)}\n{_good(cli, 'NEW-3')}\n")

    assert (later.lines_read, later.imported, later.duplicates, later.rejected) == (3, 2, 0, 1)
    assert list(later.errors.values_list("line_number", "reason")) == [
        (3, "call_reference already imported for a different call (start, duration, line or number)")
    ]
    assert CallRecord.objects.get(call_reference="REUSED").duration_seconds == 60, "the first call stays"


def test_the_same_call_again_is_already_imported_even_in_the_hour_the_clocks_go_back(partner, profile, cli):
    """01:30 on 26 October 2025 happened twice in the UK; the second import must still recognise it."""
    text = f"{HEADER}\n{cli},{GOOD_DIALLED},2025-10-26T01:30:00,60,voice,AMBIGUOUS\n"
    _run(partner, text)

    again = _run(partner, text)

    assert (again.imported, again.duplicates, again.rejected) == (0, 1, 0)


@pytest.mark.date_sensitive
def test_a_call_in_the_future_is_rejected_in_every_iso_8601_form(partner, profile, cli):
    """The check skips the exact comparison for calls written with a date well before today: a call
    written with an earlier date but a far-west offset, or in the basic format, must still be caught."""
    from django.utils import timezone

    now = timezone.now()
    in_an_hour = now + datetime.timedelta(hours=1)
    far_west = datetime.timezone(datetime.timedelta(hours=-14))
    # A naive time is UK local, and in the hour the clocks go back it names the earlier of its two
    # instants: two hours ahead is in the future at any instant CI runs this at.
    local = _uk_local(now + datetime.timedelta(hours=2))
    forms = [
        in_an_hour.astimezone(far_west).isoformat(),  # yesterday's date there, for most of the day
        (now + datetime.timedelta(days=1)).astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ"),
        " " + local,
        local.replace("T", " "),
    ]
    rows = [f"{cli},{GOOD_DIALLED},{form},0,voice,F-{n}" for n, form in enumerate(forms)]

    call_import = _run(partner, "\n".join([HEADER, *rows, _good(cli, "PAST")]) + "\n")

    assert list(call_import.errors.values_list("line_number", "reason")) == [
        (line, "start_time is in the future") for line in range(2, 2 + len(forms))
    ]
    assert call_import.imported == 1


# Rating against the import's snapshot of the partner's lines and tariffs ---------------------------


def _snapshot_exists(call_import: CallImport) -> bool:
    """Whether this connection still holds the import's snapshot (PostgreSQL's temporary tables)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [RatingSnapshot.of(call_import.pk).lines])
        return bool(cursor.fetchone()[0])


def test_each_batch_rates_its_calls_to_the_lines_customer_and_tariff(partner, agent, monkeypatch):
    billing_profile(partner, default_tariff=simple_tariff("0.0100", name="Partner default"))
    on_default = full_customer(partner)
    with_tariffs = full_customer(partner, lines=2)
    first, second = with_tariffs.lines.order_by("pk")
    customer_set_tariff(
        customer=with_tariffs, tariff=simple_tariff("0.0200", name="Customer", partner=partner), actor=agent
    )
    line_set_tariff(line=first, tariff=simple_tariff("0.0300", name="Line", partner=partner), actor=agent)
    # Batches of two: the later batches rate against the snapshot the first one copied.
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 2)
    lines = [(on_default.lines.get(), "0.0100"), (first, "0.0300"), (second, "0.0200")] * 2
    made = [Call(cli=line.cli, call_reference=f"SNAP-{n}") for n, (line, _cost) in enumerate(lines)]
    made.append(Call(cli="020 7946 0123", call_reference="SNAP-UNKNOWN"))

    call_import = import_calls(partner, made)

    assert (call_import.imported, call_import.suspense) == (7, 1)
    rated = {c.call_reference: c for c in CallRecord.objects.filter(call_import=call_import)}
    assert [
        (rated[c.call_reference].line_id, rated[c.call_reference].customer_id, rated[c.call_reference].cost)
        for c in made[:-1]
    ] == [(line.pk, line.customer_id, Decimal(cost)) for line, cost in lines]
    unknown = rated["SNAP-UNKNOWN"]
    assert (unknown.status, unknown.suspense_reason, unknown.customer_id) == ("suspense", "unknown_cli", None)
    if connection.vendor == "postgresql":
        assert not _snapshot_exists(call_import), "the import dropped its snapshot from this connection"


def test_each_import_rates_against_its_own_snapshot(partner, profile, customer, other_partner, agent):
    billing_profile(other_partner, default_tariff=simple_tariff("0.0100", name="Other default"))
    number = "020 7946 0123"
    first = import_calls(partner, [Call(cli=cli_of(customer), call_reference="OWN-1")])
    # Another partner's import on the same connection knows only that partner's lines.
    foreign = import_calls(other_partner, [Call(cli=cli_of(customer), call_reference="OWN-2")])
    newcomer = full_customer(partner, lines=0)
    line = LineFactory(customer=newcomer, cli=number)

    later = import_calls(partner, [Call(cli=number, call_reference="OWN-3")])

    assert call("OWN-1").customer_id == customer.pk
    held = CallRecord.objects.get(call_import=foreign)
    assert (held.status, held.suspense_reason) == (CallRecord.Status.SUSPENSE, "unknown_cli")
    assert (call("OWN-3").status, call("OWN-3").line_id, call("OWN-3").customer_id) == (
        CallRecord.Status.RATED,
        line.pk,
        newcomer.pk,
    ), "the later import copied the partner's lines afresh, the new line among them"
    if connection.vendor == "postgresql":
        assert not any(_snapshot_exists(made) for made in (first, foreign, later))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the snapshot is PostgreSQL's import path")
def test_a_line_added_while_an_import_runs_rates_from_the_next_import(
    partner, profile, customer, monkeypatch
):
    number = "020 7946 0123"
    monkeypatch.setattr(pipeline, "BATCH_SIZE", 1)
    load_postgresql = load.load_postgresql
    added: list[object] = []

    def add_a_line_after_the_first_batch(rows, **kwargs):
        inserted = load_postgresql(rows, **kwargs)
        if not added:
            added.append(LineFactory(customer=customer, cli=number))
        return inserted

    monkeypatch.setattr(load, "load_postgresql", add_a_line_after_the_first_batch)
    running = import_calls(partner, [Call(cli=cli_of(customer)), Call(cli=number, call_reference="MID-1")])
    next_import = import_calls(partner, [Call(cli=number, call_reference="MID-2")])

    assert running.suspense == 1
    assert (call("MID-1").status, call("MID-1").suspense_reason) == (
        CallRecord.Status.SUSPENSE,
        "unknown_cli",
    )
    assert (call("MID-2").status, call("MID-2").customer_id) == (CallRecord.Status.RATED, customer.pk)
    assert next_import.suspense == 0
