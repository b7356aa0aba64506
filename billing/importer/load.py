"""Storing parsed calls, rated, in bulk; and finding the references the partner already had for another call.

Loading is COPY into a temporary table and one statement on PostgreSQL (psycopg 3), bulk_create
elsewhere. Either way the batch's references go into CallReference first, unique per partner, and only
the calls whose reference was new are stored: importing a file twice imports nothing twice, and two
partners' networks may well use the same reference for different calls. (The call records, partitioned
by month on PostgreSQL, cannot hold that unique key themselves.)
"""

import datetime
from collections.abc import Callable

from django.db import connection

from billing.importer.parse import UK_TIME, ParsedCall
from billing.models import CallRecord, CallReference
from billing.rating import MAX_PREFIX_LENGTH, RATED_COLUMNS, rating_snapshot, staged_rating_query
from fusion_site.bulk import set_for_transaction

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


def load_postgresql(rows: list[tuple[object, ...]], *, call_import_id: int, partner_id: int) -> int:
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
    """The staged calls as they will be stored, rated against the import's snapshot of the partner's
    lines and tariffs (copied at this connection's first batch), in the temporary table call_rated."""
    query = staged_rating_query(
        snapshot=rating_snapshot(partner_id=partner_id, call_import_id=call_import_id)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS call_rated ON COMMIT DROP AS "  # noqa: S608
            f"SELECT id, {_STORED} FROM billing_callrecord WITH NO DATA"
        )
        cursor.execute("TRUNCATE call_rated")
        # The sequence is named once for the batch: pg_get_serial_sequence in the SELECT ran for every call.
        cursor.execute("SELECT pg_get_serial_sequence('billing_callrecord', 'id')")
        (sequence,) = cursor.fetchone()
        # Each call's id is drawn here, so its reference can name it before the call is stored.
        cursor.execute(
            f"""
            INSERT INTO call_rated (id, {_STORED})
            SELECT nextval(CAST(%s AS regclass)),
                   {", ".join(f"c.{name}" for name in _STAGED_NAMES)}, c.started_on,
                   c.partner_id, %s, {query.columns}
            FROM (
                SELECT s.*, CAST((s.started_at AT TIME ZONE 'Europe/London') AS date) AS started_on,
                       CAST(%s AS bigint) AS partner_id
                FROM call_staging s
            ) c {query.joins}
            """,  # noqa: S608 - only fixed fragments are interpolated
            [sequence, call_import_id, partner_id, *query.params],
        )


def _store_rated() -> int:
    """The batch's references first, then the calls whose reference was new, in one statement. A
    reference the partner already has is skipped (and counted as already imported); another partner's
    reference is no conflict. Calls go in by customer: a bill run reads calls customer by customer, and a
    customer's calls then sit on a few pages of each batch instead of one page each."""
    stored = ", ".join(f"r.{name}" for name in _STORED.split(", "))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH new_reference AS (
                INSERT INTO billing_callreference (call_id, partner_id, call_reference, started_on)
                SELECT id, partner_id, call_reference, started_on FROM call_rated
                ON CONFLICT (partner_id, call_reference) DO NOTHING
                RETURNING call_id
            )
            INSERT INTO billing_callrecord (id, {_STORED})
            SELECT r.id, {stored} FROM call_rated r JOIN new_reference n ON n.call_id = r.id
            ORDER BY r.customer_id, r.started_at
            """  # noqa: S608 - only fixed fragments are interpolated
        )
        return cursor.rowcount


# A reference the partner already has, on a call that is not this one, is reported, not skipped in silence:
# a switch that reuses its references would otherwise lose calls without a word.
REFERENCE_CONFLICT = "call_reference already imported for a different call (start, duration, line or number)"
# What makes two records of a reference the same call. The dialled number is encrypted with a random
# nonce, so its stored prefix stands for it.
_SAME_CALL = ("cli_index", "started_at", "duration_seconds", "dialled_prefix", "call_type")


def conflicts_postgresql(*, partner_id: int) -> set[str]:
    """References of the batch just stored (still in call_rated) that the partner had for another call."""
    stored = ", ".join(f"c.{name}" for name in _SAME_CALL)
    staged = ", ".join(f"r.{name}" for name in _SAME_CALL)
    with connection.cursor() as cursor:
        # Through the reference to its call: by key, in the partition of the call's month.
        cursor.execute(
            f"""
            SELECT r.call_reference FROM call_rated r
            JOIN billing_callreference k
              ON k.partner_id = %s AND k.call_reference = r.call_reference AND k.call_id <> r.id
            JOIN billing_callrecord c ON c.id = k.call_id AND c.started_on = k.started_on
            WHERE ({stored}) IS DISTINCT FROM ({staged})
            """,  # noqa: S608 - only fixed fragments are interpolated
            [partner_id],
        )
        return {reference for (reference,) in cursor.fetchall()}


def conflicts_generic(batch: list[tuple[ParsedCall, str]], *, partner_id: int) -> set[str]:
    calls = {call.call_reference: call for call, _cli in batch}
    references = list(calls)
    conflicts = set()
    for start in range(0, len(references), 500):  # SQLite's limit on a statement's parameters
        known = CallReference.objects.filter(
            partner_id=partner_id, call_reference__in=references[start : start + 500]
        ).values("call_id")
        stored = CallRecord.objects.filter(pk__in=known).values_list("call_reference", *_SAME_CALL)
        for reference, cli_index, started_at, *rest in stored:
            call = calls[reference]
            staged = (call.duration_seconds, call.dialled_number[:MAX_PREFIX_LENGTH], call.call_type)
            # In UTC: Python never finds a time in the repeated hour of October equal to one in another zone.
            same_start = started_at.astimezone(datetime.UTC) == call.started_at.astimezone(datetime.UTC)
            if not (cli_index == call.cli_index and same_start and tuple(rest) == staged):
                conflicts.add(reference)
    return conflicts


def staged_row(call: ParsedCall, encrypted_cli: str, encrypt: Callable[[str], str]) -> tuple[object, ...]:
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


def load_generic(batch: list[tuple[ParsedCall, str]], *, call_import_id: int, partner_id: int) -> int:
    """The calls whose reference the partner does not have yet, then their references (SQLite allows one
    writer at a time, so nothing comes between the two). Call in a transaction."""
    references = [call.call_reference for call, _encrypted_cli in batch]
    known: set[str] = set()
    for start in range(0, len(references), 500):  # SQLite's limit on a statement's parameters
        known.update(
            CallReference.objects.filter(
                partner_id=partner_id, call_reference__in=references[start : start + 500]
            ).values_list("call_reference", flat=True)
        )
    stored = CallRecord.objects.bulk_create(
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
            if call.call_reference not in known
        ],
        batch_size=2000,
    )
    CallReference.objects.bulk_create(
        [
            CallReference(
                call_id=call.pk,
                partner_id=partner_id,
                call_reference=call.call_reference,
                started_on=call.started_on,
            )
            for call in stored
        ],
        batch_size=2000,
    )
    return len(stored)
