"""Call record import: read a CSV line by line (``parse``), report every bad line, load the good ones in
bulk (``load``) in batches, a reader thread one batch ahead of the loaders, then rate what was imported.

Every line ends in exactly one of: imported (rated or in suspense), already imported (the partner
already has its call reference), rejected (listed with its number and reason).
"""

import csv
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import IO, Any

from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from billing.importer import load
from billing.importer.load import REFERENCE_CONFLICT
from billing.importer.parse import ImportCounts, ParsedCall, latest_start, parse_rows, read_header
from billing.models import CallImport, CallImportError, CallRecord
from billing.rating import drop_rating_snapshot, rate_pending_calls
from fusion_site.crypto import keyring

# Each batch's store touches each index once and its rating joins the import's snapshot of the partner's
# lines: fewer, larger batches spend less on both (rating 10.1 s -> 9.0 s for a million calls, measured
# when each batch still joined the live lines) for about 25 MB more memory (the reader keeps one batch
# ahead of each loader).
BATCH_SIZE = 40_000


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
    same file loads the rest (references already stored are skipped).

    On PostgreSQL the partner's lines, tariff assignments and rate cards are read once per import (a
    snapshot each loader connection copies at its first batch, ``billing.rating.rating_snapshot``): a
    line or tariff saved while the import runs applies to calls from the next import on, and a call it
    leaves in suspense (unknown CLI) is rated by putting it back from suspense."""
    reader = csv.reader(stream)
    columns = read_header(reader)
    counts = ImportCounts()
    partner_id = call_import.partner_id
    # The import's one reading of the clock: every line is judged against the same instant.
    latest = latest_start(timezone.now())
    if connection.vendor == "postgresql":
        store: Callable[..., int] = load.load_postgresql

        def conflicts_of(rows: list[Any]) -> set[str]:
            return load.conflicts_postgresql(partner_id=partner_id)

        def reference_of(row: Any) -> str:
            return str(row[0])

        # The key ring, looked up once for the import rather than through settings for every call.
        encrypt = keyring().encrypt_bulk

        def prepare(batch: list[tuple[ParsedCall, str]]) -> list[Any]:
            # Encrypting each dialled number is the reader thread's work too.
            return [load.staged_row(call, cli, encrypt) for call, cli in batch]

        batches = _read_ahead(_batches(parse_rows(reader, columns, counts, latest=latest), counts, prepare))
    else:
        # SQLite allows one writer and the ORM encrypts on save: nothing to overlap.
        store = load.load_generic

        def conflicts_of(rows: list[Any]) -> set[str]:
            return load.conflicts_generic(rows, partner_id=partner_id)

        def reference_of(row: Any) -> str:
            return str(row[0].call_reference)

        batches = _batches(parse_rows(reader, columns, counts, latest=latest), counts, lambda batch: batch)

    conflicts: list[tuple[int, str]] = []  # lines the database turned away, from every loader thread

    def load_batch(batch: _Batch) -> int:
        """One batch in one transaction, with the import's counts, so a failure part way keeps what was
        loaded and says how far it got."""
        with transaction.atomic():
            inserted = store(batch.rows, call_import_id=call_import.pk, partner_id=partner_id)
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
    if connection.vendor == "postgresql" and loaders == 1:
        # Loaded on this connection, which outlives the import: its snapshot goes now. (Loader threads'
        # connections close, and their snapshots with them.)
        drop_rating_snapshot(call_import_id=call_import.pk)
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
