"""Properties of the call import, checked against independent statements of its rules.

Numbers: ITU-T E.164 and Ofcom's National Telephone Numbering Plan. An international number is a country
code (1-3 digits, never starting with 0) and a national significant number (NSN); from the UK it is
dialled after the international access code 00. A UK number is +44 and an NSN that never starts with 0,
dialled within the UK as the trunk prefix 0 and the NSN. Its range is told by the NSN's first digits:
1, 2 and 3 geographic; 7 (but 70 and 76) mobile; 80 freephone; 84 and 87 non-geographic; 9 premium rate.

Files: the README's promise that every line ends in exactly one of imported (rated or in suspense),
already imported, or rejected with its number and reason; a file imported twice imports nothing twice.
"""

import datetime
import io
import itertools
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.importer.parse import normalise_dialled
from billing.models import CallImport, CallRecord
from tests.billing.factories import CSV_HEADER, cli_of

pytestmark = pytest.mark.date_sensitive  # lines in the future are judged against the frozen clock

DB_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# UK ranges by the NSN's leading digits (Ofcom), each with the band the UK tariff bills it in, and the
# NSN's length (10 digits, as every range used here has).
UK_RANGES = {
    "1": "geographic",
    "2": "geographic",
    "3": "geographic",
    "71": "mobile",
    "74": "mobile",
    "75": "mobile",
    "77": "mobile",
    "78": "mobile",
    "79": "mobile",
    "800": "freephone",
    "808": "freephone",
    "84": "non_geographic",
    "87": "non_geographic",
    "9": "premium",
}
# Country codes in service (ITU-T E.164 assignments), of one, two and three digits; 44 is the UK's.
OTHER_COUNTRY_CODES = ["1", "7", "20", "33", "34", "49", "61", "81", "86", "91", "353", "354", "880", "972"]


def digits(size_min: int, size_max: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=size_min, max_size=size_max)


@st.composite
def uk_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(NSN, band) of a UK number."""
    leading = draw(st.sampled_from(sorted(UK_RANGES)))
    return leading + draw(digits(10 - len(leading), 10 - len(leading))), UK_RANGES[leading]


@st.composite
def other_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """(country code, NSN) of a number outside the UK, at most 15 digits in all (E.164)."""
    country_code = draw(st.sampled_from(OTHER_COUNTRY_CODES))
    first = draw(st.sampled_from("123456789"))
    return country_code, first + draw(digits(4, 14 - len(country_code) - 1))


@st.composite
def grouped(draw: st.DrawFn, number: str) -> str:
    """``number`` split into groups joined by the separators people write: spaces, hyphens, dots."""
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(number) - 1)), max_size=4)))
    parts = [number[start:end] for start, end in itertools.pairwise([0, *cuts, len(number)])]
    separators = draw(
        st.lists(st.sampled_from([" ", "-", ".", "  "]), min_size=len(parts), max_size=len(parts))
    )
    return "".join(part + separator for part, separator in zip(parts, separators, strict=True)).rstrip(" -.")


@st.composite
def international_form(draw: st.DrawFn, country_code: str, nsn: str) -> str:
    """The number as written in any international form: + or 00 (with or without a space), the country
    code (perhaps bracketed with its +), the trunk 0 perhaps written in brackets (or, for the UK, bare)."""
    access = draw(st.sampled_from(["+", "00", "+ ", "00 "]))
    lead = f"({access.strip()}{country_code})" if draw(st.booleans()) else f"{access}{country_code}"
    trunk = draw(
        st.sampled_from(["", " ", " (0)", "(0)", " ( 0 ) ", *(["0", " 0"] if country_code == "44" else [])])
    )
    return f"{lead}{trunk}{draw(grouped(nsn))}"


@st.composite
def uk_written(draw: st.DrawFn) -> tuple[str, str, str]:
    """(as written, canonical, band) for a UK number, in national or international form."""
    nsn, band = draw(uk_numbers())
    national = "0" + nsn
    if draw(st.booleans()):
        written = draw(international_form("44", nsn))
    elif draw(st.booleans()):
        area = draw(st.integers(3, 5))
        written = f"({national[:area]}) {draw(grouped(national[area:]))}"
    else:
        written = draw(grouped(national))
    return written, national, band


@st.composite
def other_written(draw: st.DrawFn) -> tuple[str, str, str]:
    country_code, nsn = draw(other_numbers())
    return draw(international_form(country_code, nsn)), f"00{country_code}{nsn}", "international"


# The rule alone: no database --------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(number=st.one_of(uk_written(), other_written()))
def test_every_written_form_normalises_to_the_number_as_dialled_from_the_uk(number):
    written, canonical, _band = number

    assert normalise_dialled(written) == canonical


@settings(max_examples=100, deadline=None)
@given(uk=uk_numbers(), access=st.sampled_from(["+44", "0044", "+440", "0044(0)"]))
def test_a_uk_number_never_normalises_to_an_international_one(uk, access):
    nsn, _band = uk
    assert normalise_dialled(access + nsn) == "0" + nsn


# Through the import ------------------------------------------------------------------------------


_references = itertools.count()


def _reference() -> str:
    return f"P-{next(_references):08d}"


def _csv(rows: list[str]) -> str:
    return "\n".join([",".join(CSV_HEADER), *rows, ""])


def _import(partner, data: bytes) -> CallImport:
    """Through the import_calls command, the way an operator imports a file."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "calls.csv"
        path.write_bytes(data)
        call_command("import_calls", partner.code, str(path), stdout=io.StringIO(), stderr=io.StringIO())
    return CallImport.objects.filter(partner=partner).order_by("-pk").first()


@DB_SETTINGS
@given(number=st.one_of(uk_written(), other_written()))
def test_a_number_in_any_written_form_is_stored_and_rated_as_its_canonical_form(
    partner, profile, customer, number
):
    written, canonical, band = number
    cli = cli_of(customer)
    as_written, as_canonical = _reference(), _reference()
    rows = [
        f'{cli},"{written}",2025-01-15T10:00:00,60,voice,{as_written}',
        f"{cli},{canonical},2025-01-15T10:00:00,60,voice,{as_canonical}",
    ]

    call_import = _import(customer.partner, _csv(rows).encode())

    assert (call_import.imported, call_import.rejected) == (2, 0)
    stored = CallRecord.objects.get(call_reference=as_written)
    reference = CallRecord.objects.get(call_reference=as_canonical)
    assert stored.dialled_number == canonical
    assert (stored.dialled_prefix, stored.band, stored.rate_id, stored.cost) == (
        reference.dialled_prefix,
        reference.band,
        reference.rate_id,
        reference.cost,
    )
    assert stored.band == band


# Lines as the generator writes them, each with what must become of it.
GOOD, SUSPENSE, BAD = "good", "suspense", "bad"
BAD_LINES = {
    "bad-cli": b"not-a-phone,01134960000,2025-01-15T10:00:00,60,voice,{ref}",
    "bad-duration": b"{cli},01134960000,2025-01-15T10:00:00,-1,voice,{ref}",
    "bad-dialled": b"{cli},0044,2025-01-15T10:00:00,60,voice,{ref}",
    "future": b"{cli},01134960000,{future},60,voice,{ref}",
    "undecodable": b"{cli},01134960000,2025-01-15T10:00:00,60,voice,{ref}\xff",
    "latin-1": b"{cli},01134960000,2025-01-15T10:00:00,60,voice,{ref}-caf\xe9",
    "columns": b"{cli},01134960000,2025-01-15T10:00:00,60,{ref}",
    "control": b"{cli},01134960000,2025-01-15T10:00:00,60,voice,{ref}\x00",
    # The reference of a call the partner imported before, on another call.
    "reused": b"{cli},01134960000,2025-03-01T09:00:00,60,voice,{reused}",
}
LINE_KINDS = st.one_of(
    st.just((GOOD, "")),
    st.just((SUSPENSE, "")),
    st.sampled_from(sorted(BAD_LINES)).map(lambda kind: (BAD, kind)),
)


def _line(kind: str, detail: str, *, cli: str, dialled: str, reused: str) -> bytes:
    reference = _reference().encode()
    future = (timezone.now() + datetime.timedelta(days=2)).isoformat().encode()
    if kind == GOOD:
        return b"%s,%s,2025-01-15T10:00:00,60,voice,%s" % (cli.encode(), dialled.encode(), reference)
    if kind == SUSPENSE:  # no line of any partner has this number
        return b"020 7946 0999,%s,2025-01-15T10:00:00,60,voice,%s" % (dialled.encode(), reference)
    template = BAD_LINES[detail]
    for name, value in {
        "cli": cli,
        "ref": reference.decode(),
        "future": future.decode(),
        "reused": reused,
    }.items():
        template = template.replace(b"{%s}" % name.encode(), value.encode())
    return template


@DB_SETTINGS
@given(
    kinds=st.lists(LINE_KINDS, min_size=1, max_size=25),
    dialled=st.one_of(uk_written(), other_written()).map(lambda number: number[0]),
    crlf=st.booleans(),
)
def test_every_line_is_stored_rejected_or_in_suspense_and_a_second_import_stores_nothing(
    partner, profile, customer, kinds, dialled, crlf
):
    cli = cli_of(customer)
    reused = _reference()
    _import(customer.partner, _csv([f"{cli},01134960000,2025-01-15T10:00:00,60,voice,{reused}"]).encode())
    quoted = f'"{dialled}"'
    lines = [_line(kind, detail, cli=cli, dialled=quoted, reused=reused) for kind, detail in kinds]
    data = (b"\r\n" if crlf else b"\n").join([",".join(CSV_HEADER).encode(), *lines, b""])
    stored_before = CallRecord.objects.count()

    first = _import(customer.partner, data)

    calls = CallRecord.objects.filter(call_import=first)
    rated = calls.filter(status=CallRecord.Status.RATED).count()
    in_suspense = calls.filter(status=CallRecord.Status.SUSPENSE).count()
    assert rated + in_suspense + first.rejected == len(lines)
    assert (rated, in_suspense) == (kinds.count((GOOD, "")), kinds.count((SUSPENSE, "")))
    assert (first.lines_read, first.imported, first.duplicates, first.suspense) == (
        len(lines),
        rated + in_suspense,
        0,
        in_suspense,
    )
    bad_lines = [number for number, (kind, _detail) in enumerate(kinds, start=2) if kind == BAD]
    assert list(first.errors.values_list("line_number", flat=True)) == bad_lines
    assert CallRecord.objects.count() == stored_before + rated + in_suspense

    second = _import(customer.partner, data)

    assert (second.imported, second.duplicates, second.rejected) == (0, first.imported, first.rejected)
    assert CallRecord.objects.count() == stored_before + rated + in_suspense
