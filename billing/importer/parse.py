"""Reading a call record CSV: the header, then each line parsed and checked into a call, or rejected with
its number and reason.

Columns (header required, in any order, names matched trimmed and case-insensitively): ``cli,
dialled_number, start_time, duration, call_type, call_reference`` — the fields of the UK industry standard
CDR this product needs. ``start_time`` is ISO 8601; without an offset it is read as UK local time; a call
that starts (or ends) after the import's clock plus CALL_IMPORT_CLOCK_SKEW_SECONDS is rejected.
``duration`` is whole seconds. The file is UTF-8, read line by line: a line that is not (or that the csv
module cannot read) is rejected with its number, and the rest of the file still loads.
"""

import _csv
import csv
import datetime
import io
import re
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.validation import normalise_phone
from fusion_site.crypto import blind_index, encrypt_bulk

REQUIRED_COLUMNS = ("cli", "dialled_number", "start_time", "duration", "call_type", "call_reference")
CALL_TYPES = frozenset({"voice", "fax", "data"})
MAX_DURATION_SECONDS = 24 * 3600
UK_TIME = zoneinfo.ZoneInfo("Europe/London")
_DIALLED_RE = re.compile(r"^[0-9]{3,20}$")
# Spaces, brackets, hyphens and dots only group the digits of a written number.
_DIALLED_SEPARATORS = re.compile(r"[\s().-]")
# "+44 (0)20 ...": the trunk prefix written in brackets after the country code, never dialled from abroad.
_BRACKETED_TRUNK = re.compile(r"\(\s*0\s*\)")
UK_COUNTRY_CODE = "44"


class ImportFileError(Exception):
    """The file as a whole cannot be read (no header, missing columns)."""


@dataclass(slots=True)
class ParsedCall:
    call_reference: str
    cli: str
    cli_index: str
    dialled_number: str
    started_at: datetime.datetime
    duration_seconds: int
    call_type: str
    line_number: int


@dataclass
class ImportCounts:
    lines_read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def normalise_dialled(value: str) -> str:
    """The number as dialled from the UK, the one form rating matches prefixes against.

    The rule (ITU-T E.164 and Ofcom's National Telephone Numbering Plan): an international number is a
    country code (never starting with 0) and a national significant number (NSN), written after ``+`` or
    after the UK's international access code ``00``; a UK number is +44 and an NSN that never starts with
    0, dialled within the UK as the trunk prefix 0 and the NSN. So every international form of a UK number
    ('+44 20 7946 0123', '0044 20 7946 0123', '+44 (0)20 7946 0123', '+440207946 0123') becomes
    '02079460123', like the national form, and any other country's becomes '00' + country code + NSN
    ('+353 (0)1 234 5678' -> '0035312345678'). Spaces, brackets, hyphens and dots are ignored."""
    if (
        3 <= len(value) <= 20
        and value.isdigit()
        and value.isascii()
        and (not value.startswith("00") or (value[2] != "0" and not value.startswith("0044")))
    ):
        return value  # already in the dialled-from-the-UK form, as most switches write it
    compact = _DIALLED_SEPARATORS.sub("", value)
    if compact.startswith("+"):
        international = compact[1:]
    elif compact.startswith("00"):
        international = compact[2:]
    else:
        international = None
    if international is not None:
        if "(" in value:
            international = _DIALLED_SEPARATORS.sub("", _BRACKETED_TRUNK.sub("", value)).removeprefix(
                "+" if compact.startswith("+") else "00"
            )
        if not international[:1].isdigit() or international.startswith("0"):
            raise ValueError("dialled_number is not a telephone number")
        if international.startswith(UK_COUNTRY_CODE):
            # A UK NSN never starts with 0: a 0 here is the trunk prefix written in by mistake.
            compact = "0" + international[len(UK_COUNTRY_CODE) :].removeprefix("0")
        else:
            compact = "00" + international
    if not _DIALLED_RE.match(compact):
        raise ValueError("dialled_number is not a telephone number")
    return compact


def text_stream(raw: IO[bytes]) -> IO[str]:
    """The file's bytes as text for ``run_import``: UTF-8 (an Excel byte order mark skipped), each byte
    that is not UTF-8 kept as a lone surrogate so that only its line is rejected, not the whole file."""
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")


def read_header(reader: "_csv.Reader") -> dict[str, int]:
    """The position of each column the header names, by its name trimmed and in lower case (' CLI' is
    cli). Raises ImportFileError when a required column is missing or a name repeats."""
    header = [name.strip().lstrip("\ufeff").strip().lower() for name in next(reader, [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ImportFileError(
            f"The header must name the columns {', '.join(REQUIRED_COLUMNS)}; missing: {', '.join(missing)}."
        )
    if len(set(header)) != len(header):
        raise ImportFileError("The header names a column more than once.")
    return {name: position for position, name in enumerate(header)}


def latest_start(now: datetime.datetime) -> datetime.datetime:
    """The latest a call may start (or end) and still be a call that happened: now, plus the skew the
    partner's switch clock is allowed over ours."""
    return now + datetime.timedelta(seconds=settings.CALL_IMPORT_CLOCK_SKEW_SECONDS)


def _undecodable_reason(row: list[str]) -> str | None:
    """Why the line is rejected if it holds bytes that are not UTF-8 (kept as lone surrogates)."""
    try:
        "".join(row).encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(exc.object[exc.start]) - 0xDC00
        if 0x80 <= byte <= 0xFF:
            return f"line is not UTF-8 text (byte 0x{byte:02x})"
        return "line is not UTF-8 text"
    return None


def _parse_time(value: str) -> datetime.datetime:
    """``value`` is already stripped; without an offset it is UK local time."""
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError("start_time is not an ISO 8601 date and time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UK_TIME)


class _CliCache:
    """CLIs repeat across a month's calls: normalise, index and encrypt each distinct one once.
    Reusing the ciphertext reveals only what the blind index already does (that two calls share a CLI)."""

    def __init__(self) -> None:
        self._known: dict[str, tuple[str, str, str]] = {}

    def get(self, raw: str) -> tuple[str, str, str]:
        cached = self._known.get(raw)
        if cached is None:
            if not raw.isprintable():
                # phonenumbers would skip an undecodable byte or a control character after the digits.
                raise ValueError("cli is not a valid phone number")
            try:
                e164 = normalise_phone(raw)
            except ValidationError as exc:
                raise ValueError("cli is not a valid phone number") from exc
            cached = (e164, blind_index("phone", e164), encrypt_bulk(e164))
            self._known[raw] = cached
        return cached


def _rows(reader: "_csv.Reader", counts: ImportCounts) -> Iterator[list[str]]:
    """The reader's rows; a line the csv module cannot read (a field over its size limit) is rejected
    with its number and reading goes on at the next line."""
    failed_at = -1
    while True:
        try:
            yield from reader  # no Python per row here: the reader's own loop
            return
        except csv.Error as exc:
            if reader.line_num == failed_at:
                raise  # nothing consumed since the last error: the file fails as a whole
            failed_at = reader.line_num
            counts.lines_read += 1
            counts.rejected += 1
            counts.errors.append((reader.line_num, f"line cannot be read as CSV: {exc}"[:300]))


def parse_rows(
    reader: "_csv.Reader",
    columns: dict[str, int],
    counts: ImportCounts,
    *,
    latest: datetime.datetime,
) -> Iterator[tuple[ParsedCall, str]]:
    """Yield (call, encrypted cli) for good rows; record (line number, reason) for bad ones. ``reader`` is
    a csv.reader past the header, ``columns`` the position of each header name (``read_header``),
    ``latest`` the latest a call may start or end (``latest_start``). Blank lines are skipped; line
    numbers are the file's own (a quoted field may span lines)."""
    clis = _CliCache()
    seen: set[str] = set()
    width = len(columns)
    cli_at, dialled_at, time_at, duration_at, type_at, reference_at = (
        columns[name] for name in REQUIRED_COLUMNS
    )
    # Only a call starting this late may end after ``latest``: one comparison for all the others.
    may_end_late = latest - datetime.timedelta(seconds=MAX_DURATION_SECONDS)
    # Comparing datetimes of two zones costs a UTC offset lookup each (0.6 us a call, on the reader
    # thread). An ISO 8601 date sorts as text in date order, and a written offset moves the instant by
    # less than a day, so a call written with an earlier date than this started well before
    # ``may_end_late``: the datetime comparison is left for the few calls of the last days.
    recent_day = (may_end_late - datetime.timedelta(days=2)).astimezone(datetime.UTC).date().isoformat()
    for row in _rows(reader, counts):
        if not row:
            continue
        line_number = reader.line_num
        counts.lines_read += 1
        try:
            if len(row) != width:
                raise ValueError("wrong number of columns")
            reference = row[reference_at].strip()
            if not reference or len(reference) > 64:
                raise ValueError("call_reference must be 1 to 64 characters")
            if not reference.isprintable():
                raise ValueError("call_reference must be printable characters")
            if reference in seen:
                raise ValueError("call_reference repeats an earlier line of this file")
            e164, cli_index, encrypted_cli = clis.get(row[cli_at])
            dialled = normalise_dialled(row[dialled_at])
            time_text = row[time_at].strip()
            started_at = _parse_time(time_text)
            duration_text = row[duration_at].strip()
            if not duration_text.isdigit() or int(duration_text) > MAX_DURATION_SECONDS:
                raise ValueError("duration must be whole seconds between 0 and 86400")
            if time_text >= recent_day and started_at > may_end_late:
                if started_at > latest:
                    raise ValueError("start_time is in the future")
                if started_at + datetime.timedelta(seconds=int(duration_text)) > latest:
                    raise ValueError("the call ends in the future (start_time plus duration)")
            call_type = row[type_at].strip().lower()
            if call_type not in CALL_TYPES:
                raise ValueError(f"call_type must be one of {', '.join(sorted(CALL_TYPES))}")
        except ValueError as exc:
            counts.rejected += 1
            counts.errors.append((line_number, _undecodable_reason(row) or str(exc)))
            continue
        seen.add(reference)
        call = ParsedCall(
            reference, e164, cli_index, dialled, started_at, int(duration_text), call_type, line_number
        )
        yield call, encrypted_cli
