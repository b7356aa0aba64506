"""Call record import: read a CSV line by line, report every bad line, load the good ones in bulk.

Columns (header required, in any order, names matched trimmed and case-insensitively): ``cli,
dialled_number, start_time, duration, call_type, call_reference`` — the fields of the UK industry standard
CDR this product needs. ``start_time`` is ISO 8601; without an offset it is read as UK local time; a call
that starts (or ends) after the import's clock plus CALL_IMPORT_CLOCK_SKEW_SECONDS is rejected.
``duration`` is whole seconds. The file is UTF-8, read line by line: a line that is not (or that the csv
module cannot read) is rejected with its number, and the rest of the file still loads.

Every line ends in exactly one of: imported (rated or in suspense), already imported (the partner
already has its call reference), rejected (listed with its number and reason).

Loading is COPY into a temporary table and one INSERT ... ON CONFLICT DO NOTHING on PostgreSQL
(psycopg 3), and bulk_create(ignore_conflicts=True) elsewhere; either way a call reference the partner
already has is skipped, so importing a file twice imports nothing twice. References are unique per
partner: two partners' networks may well use the same reference for different calls.
"""

import _csv
import csv
import datetime
import io
import queue
import re
import threading
import zoneinfo
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from accounts.validation import normalise_phone
from billing.models import CallImport, CallImportError, CallRecord
from billing.rating import MAX_PREFIX_LENGTH, RATED_COLUMNS, rate_pending_calls, rating_query
from fusion_site.bulk import set_for_transaction
from fusion_site.crypto import blind_index, encrypt_bulk, keyring

REQUIRED_COLUMNS = ("cli", "dialled_number", "start_time", "duration", "call_type", "call_reference")
CALL_TYPES = frozenset({"voice", "fax", "data"})
# Each batch's rating joins the partner's lines afresh and its store touches each index once: fewer,
# larger batches spend less on both (rating 10.1 s -> 9.0 s for a million calls) for about 25 MB more
# memory (the reader keeps one batch ahead of each loader).
BATCH_SIZE = 40_000
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


@dataclass
class _Batch:
    """Good lines ready to load, with how far into the file the reader was when it cut the batch."""

    rows: list[Any]
    lines_read: int
    rejected: int
    # The file's line number of each row, to report a row the database turns away.
    line_numbers: list[int] = field(default_factory=list)


def _batches(
    parsed: Iterator[tuple[ParsedCall, str]], counts: ImportCounts, prepare: Callable[[list[Any]], list[Any]]
) -> Generator[_Batch, None, None]:
    batch: list[tuple[ParsedCall, str]] = []
    for item in parsed:
        batch.append(item)
        if len(batch) == BATCH_SIZE:
            yield _batch(batch, counts, prepare)
            batch = []
    if batch:
        yield _batch(batch, counts, prepare)


def _batch(
    batch: list[tuple[ParsedCall, str]], counts: ImportCounts, prepare: Callable[[list[Any]], list[Any]]
) -> _Batch:
    line_numbers = [call.line_number for call, _cli in batch]
    return _Batch(prepare(batch), counts.lines_read, counts.rejected, line_numbers)


_DONE = object()


def _read_ahead(batches: Iterator[_Batch]) -> Generator[_Batch, None, None]:
    """Run ``batches`` in a thread one batch ahead of the caller. Parsing and encrypting are Python work,
    loading is the database's: a thread that reads while the loader waits on PostgreSQL (psycopg releases
    the GIL while it waits) puts the second core to work instead of taking turns. At most two batches
    are in memory; an error in the reader is raised in the caller; leaving early stops the reader."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for batch in batches:
                if not offer(batch):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed over, and raised in the caller's thread
            offer(exc)

    reader = threading.Thread(target=read, name="call-import-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


# What the reader thread parses per call, in the staging table's column order. The import's partner and
# the call's UK date are added in SQL, and rating, as the rows go from staging into the call records.
_STAGED = (
    "call_reference, cli, cli_index, dialled_number, dialled_prefix, started_at, duration_seconds, call_type"
)
_STAGING_TABLE = """
    CREATE TEMP TABLE IF NOT EXISTS call_staging (
        call_reference varchar(64), cli text, cli_index varchar(64), dialled_number text,
        dialled_prefix varchar(8), started_at timestamptz, duration_seconds integer, call_type varchar(20)
    ) ON COMMIT DROP
"""
_STAGED_NAMES = [name.strip() for name in _STAGED.split(",")]
_STAGED_TYPES = ["varchar", "text", "varchar", "text", "varchar", "timestamptz", "int4", "varchar"]
_STORED = f"{_STAGED}, started_on, partner_id, call_import_id, {', '.join(RATED_COLUMNS)}"


def _load_postgresql(rows: list[tuple[object, ...]], *, call_import_id: int, partner_id: int) -> int:
    """COPY the batch into an unindexed temporary table, rate it there into a second one, then store it
    with one INSERT ... SELECT: every stored row is written once, already rated."""
    # Compiling the store's statement to machine code (JIT, which its estimated cost triggers) takes
    # longer than running it, and its sort of the batch by customer (about 20 MB) spilled to disk at the
    # default work_mem of 4 MB.
    set_for_transaction(jit="off", work_mem="32MB")
    _copy_to_staging(rows)
    _rate_staged(call_import_id=call_import_id, partner_id=partner_id)
    return _store_rated()


def _copy_to_staging(rows: list[tuple[object, ...]]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(_STAGING_TABLE)
        cursor.execute("TRUNCATE call_staging")
        raw = cursor.cursor  # the psycopg 3 cursor, for COPY
        # Binary COPY: half the Python work per row of the text format (measured), on the GIL the
        # reader thread needs too.
        with raw.copy(f"COPY call_staging ({_STAGED}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_STAGED_TYPES)
            for row in rows:
                copy.write_row(row)


def _rate_staged(*, call_import_id: int, partner_id: int) -> None:
    """The staged calls as they will be stored, rated, in the temporary table call_rated."""
    query = rating_query(partner_id=partner_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS call_rated ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {_STORED} FROM billing_callrecord WITH NO DATA"
        )
        cursor.execute("TRUNCATE call_rated")
        cursor.execute(
            f"""
            INSERT INTO call_rated ({_STORED})
            SELECT {", ".join(f"c.{name}" for name in _STAGED_NAMES)}, c.started_on,
                   c.partner_id, %s, {query.columns}
            FROM (
                SELECT s.*, CAST((s.started_at AT TIME ZONE 'Europe/London') AS date) AS started_on,
                       CAST(%s AS bigint) AS partner_id, CAST(NULL AS bigint) AS line_id,
                       CAST(NULL AS bigint) AS customer_id
                FROM call_staging s
            ) c {query.joins}
            """,  # noqa: S608 - only fixed fragments are interpolated
            [call_import_id, partner_id, *query.params],
        )


def _store_rated() -> int:
    """Rows go in by customer: a bill run reads calls customer by customer, and a customer's calls then
    sit on a few pages of each batch instead of one page each. A reference the partner already has is
    skipped (and counted as already imported); another partner's reference is no conflict."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO billing_callrecord ({_STORED}) SELECT {_STORED} FROM call_rated "  # noqa: S608
            "ORDER BY customer_id, started_at ON CONFLICT (partner_id, call_reference) DO NOTHING"
        )
        return cursor.rowcount


# A reference the partner already has, on a call that is not this one, is reported, not skipped in silence:
# a switch that reuses its references would otherwise lose calls without a word.
REFERENCE_CONFLICT = "call_reference already imported for a different call (start, duration, line or number)"
# What makes two records of a reference the same call. The dialled number is encrypted with a random
# nonce, so its stored prefix stands for it.
_SAME_CALL = ("cli_index", "started_at", "duration_seconds", "dialled_prefix", "call_type")


def _conflicts_postgresql(*, partner_id: int) -> set[str]:
    """References of the batch just stored (still in call_rated) that the partner had for another call."""
    stored = ", ".join(f"c.{name}" for name in _SAME_CALL)
    staged = ", ".join(f"r.{name}" for name in _SAME_CALL)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.call_reference FROM call_rated r
            JOIN billing_callrecord c ON c.partner_id = %s AND c.call_reference = r.call_reference
            WHERE ({stored}) IS DISTINCT FROM ({staged})
            """,  # noqa: S608 - only fixed fragments are interpolated
            [partner_id],
        )
        return {reference for (reference,) in cursor.fetchall()}


def _conflicts_generic(batch: list[tuple[ParsedCall, str]], *, partner_id: int) -> set[str]:
    calls = {call.call_reference: call for call, _cli in batch}
    references = list(calls)
    conflicts = set()
    for start in range(0, len(references), 500):  # SQLite's limit on a statement's parameters
        stored = CallRecord.objects.filter(
            partner_id=partner_id, call_reference__in=references[start : start + 500]
        ).values_list("call_reference", *_SAME_CALL)
        for reference, cli_index, started_at, *rest in stored:
            call = calls[reference]
            staged = (call.duration_seconds, call.dialled_number[:MAX_PREFIX_LENGTH], call.call_type)
            # In UTC: Python never finds a time in the repeated hour of October equal to one in another zone.
            same_start = started_at.astimezone(datetime.UTC) == call.started_at.astimezone(datetime.UTC)
            if not (cli_index == call.cli_index and same_start and tuple(rest) == staged):
                conflicts.add(reference)
    return conflicts


def _row(call: ParsedCall, encrypted_cli: str, encrypt: Callable[[str], str]) -> tuple[object, ...]:
    return (
        call.call_reference,
        encrypted_cli,
        call.cli_index,
        encrypt(call.dialled_number),
        call.dialled_number[:MAX_PREFIX_LENGTH],
        call.started_at,
        call.duration_seconds,
        call.call_type,
    )


def _load_generic(batch: list[tuple[ParsedCall, str]], *, call_import_id: int, partner_id: int) -> int:
    before = CallRecord.objects.count()
    CallRecord.objects.bulk_create(
        [
            CallRecord(
                call_reference=call.call_reference,
                call_import_id=call_import_id,
                partner_id=partner_id,
                cli=call.cli,
                cli_index=call.cli_index,
                dialled_number=call.dialled_number,
                dialled_prefix=call.dialled_number[:MAX_PREFIX_LENGTH],
                started_at=call.started_at,
                started_on=call.started_at.astimezone(UK_TIME).date(),
                duration_seconds=call.duration_seconds,
                call_type=call.call_type,
            )
            for call, _encrypted_cli in batch
        ],
        batch_size=2000,
        ignore_conflicts=True,
    )
    return CallRecord.objects.count() - before


LOADERS = 2  # PostgreSQL backends loading batches at once, one per core of the machine it was tuned on


def _load_all(
    batches: Iterator[_Batch], load_batch: Callable[[_Batch], int], *, loaders: int
) -> Iterator[tuple[_Batch, int]]:
    """Load each batch with ``load_batch``, yielding (batch, rows inserted) as each finishes. With more
    than one loader, batches go to that many threads, at most one each at a time, and finish in any
    order; an error in one is raised here once the others have finished their batch."""
    if loaders == 1:
        for batch in batches:
            yield batch, load_batch(batch)
        return
    todo: queue.Queue[Any] = queue.Queue()
    finished: queue.Queue[Any] = queue.Queue()

    def loader() -> None:
        try:
            while (batch := todo.get()) is not _DONE:
                try:
                    finished.put((batch, load_batch(batch)))
                except BaseException as exc:  # handed over, and raised in the caller's thread
                    finished.put(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=loader, name=f"call-import-loader-{n}") for n in range(loaders)]
    for thread in threads:
        thread.start()

    def next_finished() -> tuple[_Batch, int]:
        item = finished.get()
        if isinstance(item, BaseException):
            raise item
        return item

    in_flight = 0
    try:
        for batch in batches:
            todo.put(batch)
            in_flight += 1
            if in_flight == loaders:
                in_flight -= 1
                yield next_finished()
        while in_flight:
            in_flight -= 1
            yield next_finished()
    finally:
        for _ in threads:
            todo.put(_DONE)
        for thread in threads:
            thread.join()


def run_import(
    *, call_import: CallImport, stream: IO[str], progress: Callable[[int], object] = lambda lines: None
) -> ImportCounts:
    """Import every good line of ``stream`` into ``call_import``, then rate what was imported.

    Each batch commits on its own, so a failure part way keeps what was already loaded; rerunning the
    same file loads the rest (references already stored are skipped)."""
    reader = csv.reader(stream)
    columns = read_header(reader)
    counts = ImportCounts()
    partner_id = call_import.partner_id
    # The import's one reading of the clock: every line is judged against the same instant.
    latest = latest_start(timezone.now())
    if connection.vendor == "postgresql":
        load: Callable[..., int] = _load_postgresql

        def conflicts_of(rows: list[Any]) -> set[str]:
            return _conflicts_postgresql(partner_id=partner_id)

        def reference_of(row: Any) -> str:
            return str(row[0])

        # The key ring, looked up once for the import rather than through settings for every call.
        encrypt = keyring().encrypt_bulk

        def prepare(batch: list[tuple[ParsedCall, str]]) -> list[Any]:
            # Encrypting each dialled number is the reader thread's work too.
            return [_row(call, cli, encrypt) for call, cli in batch]

        batches = _read_ahead(_batches(parse_rows(reader, columns, counts, latest=latest), counts, prepare))
    else:
        # SQLite allows one writer and the ORM encrypts on save: nothing to overlap.
        load = _load_generic

        def conflicts_of(rows: list[Any]) -> set[str]:
            return _conflicts_generic(rows, partner_id=partner_id)

        def reference_of(row: Any) -> str:
            return str(row[0].call_reference)

        batches = _batches(parse_rows(reader, columns, counts, latest=latest), counts, lambda batch: batch)

    conflicts: list[tuple[int, str]] = []  # lines the database turned away, from every loader thread

    def load_batch(batch: _Batch) -> int:
        """One batch in one transaction, with the import's counts, so a failure part way keeps what was
        loaded and says how far it got."""
        with transaction.atomic():
            inserted = load(batch.rows, call_import_id=call_import.pk, partner_id=partner_id)
            turned_away: list[tuple[int, str]] = []
            if inserted < len(batch.rows):  # only then can a reference be another call's
                references = conflicts_of(batch.rows)
                turned_away = [
                    (line_number, REFERENCE_CONFLICT)
                    for row, line_number in zip(batch.rows, batch.line_numbers, strict=True)
                    if reference_of(row) in references
                ]
            CallImport.objects.filter(pk=call_import.pk).update(
                imported=F("imported") + inserted,
                duplicates=F("duplicates") + len(batch.rows) - inserted - len(turned_away),
                lines_read=Greatest("lines_read", Value(batch.lines_read)),
                rejected=Greatest("rejected", Value(batch.rejected)),
                updated_at=timezone.now(),
            )
        conflicts.extend(turned_away)
        return inserted

    # Several PostgreSQL backends load batches at once, each in a thread with its own connection; the
    # caller's transaction, if any, would be invisible to them, so then batches load in turn on its own.
    loaders = LOADERS if connection.vendor == "postgresql" and not connection.in_atomic_block else 1
    reported_lines = 0
    with closing(batches):  # an error while loading stops the reader thread at once
        for batch, inserted in _load_all(batches, load_batch, loaders=loaders):
            counts.imported += inserted
            counts.duplicates += len(batch.rows) - inserted
            if batch.lines_read > reported_lines:
                progress(batch.lines_read - reported_lines)
                reported_lines = batch.lines_read
    # The reader is done: its counts are final.
    progress(counts.lines_read - reported_lines)
    counts.duplicates -= len(conflicts)
    counts.rejected += len(conflicts)
    counts.errors = sorted([*counts.errors, *conflicts])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Fresh statistics, or the planner takes a million new rows for one and rates them by nested loop.
            cursor.execute("ANALYZE billing_callrecord")
    with transaction.atomic():
        # Calls still pending: every call on SQLite, none on PostgreSQL (rated while staged).
        rate_pending_calls(partner_id=partner_id, call_import_id=call_import.pk)
        CallImportError.objects.bulk_create(
            [CallImportError(call_import=call_import, line_number=n, reason=r) for n, r in counts.errors],
            batch_size=5000,
        )
        call_import.suspense = CallRecord.objects.filter(
            call_import=call_import, status=CallRecord.Status.SUSPENSE
        ).count()
        call_import.status = CallImport.Status.COMPLETED
        call_import.finished_at = timezone.now()
        _record_progress(call_import, counts)
    return counts


def _record_progress(call_import: CallImport, counts: ImportCounts) -> None:
    call_import.lines_read = counts.lines_read
    call_import.imported = counts.imported
    call_import.duplicates = counts.duplicates
    call_import.rejected = counts.rejected
    call_import.save(
        update_fields=[
            "lines_read",
            "imported",
            "duplicates",
            "rejected",
            "suspense",
            "status",
            "finished_at",
            "updated_at",
        ]
    )
