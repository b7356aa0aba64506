"""The call records' monthly partitions on PostgreSQL: naming, creating ahead, dropping a month.

``billing_callrecord`` is partitioned by RANGE of ``started_on`` (the call's UK date), one partition a
calendar month (``billing_callrecord_y2026m01``), and a DEFAULT partition that catches a call of a month
with no partition of its own. The default should stay empty: the beat task creates each month's
partition ahead of its calls, and moves into a partition it creates any rows of that month the default
caught (a call imported with a date months old, or before the task first ran). A month's partition is
dropped whole by retention once all its calls are past their period (privacy's retention decides which;
``drop_month_partition`` only does the DDL).

Every name that reaches SQL is built here from a date or checked against ``_SAFE_NAME``: no caller's text
is ever interpolated into DDL. On SQLite the table is a plain table and every function here is a no-op
that says so (``partitioned()`` is False).
"""

import datetime
import logging
import re
from dataclasses import dataclass

from django.db import connection, transaction

logger = logging.getLogger(__name__)

PARENT = "billing_callrecord"
DEFAULT_PARTITION = f"{PARENT}_default"
# Months created ahead of today's by the beat task (this month's included).
MONTHS_AHEAD = 3
_SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_MONTH_NAME = re.compile(rf"^{PARENT}_y(\d{{4}})m(\d{{2}})$")


@dataclass(frozen=True)
class PartitionsEnsured:
    created: list[str]
    moved_from_default: int
    left_in_default: int


def month_start(day: datetime.date) -> datetime.date:
    return day.replace(day=1)


def next_month(month: datetime.date) -> datetime.date:
    return datetime.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: datetime.date) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def quoted(name: str) -> str:
    """``name`` quoted for SQL, once checked to be a plain lower-case identifier."""
    if not _SAFE_NAME.match(name):
        raise ValueError(f"not a table name this module builds: {name!r}")
    return connection.ops.quote_name(name)


def partitioned() -> bool:
    """Whether the call records are a partitioned table (PostgreSQL, after migration 0024)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


def month_partitions() -> dict[datetime.date, str]:
    """The monthly partitions attached now, by first day of the month."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)",
            [PARENT],
        )
        names = [name for (name,) in cursor.fetchall()]
    months = {}
    for name in names:
        if match := _MONTH_NAME.match(name):
            months[datetime.date(int(match[1]), int(match[2]), 1)] = name
    return months


def default_partition_rows() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {quoted(DEFAULT_PARTITION)}")  # noqa: S608 - a checked name
        (rows,) = cursor.fetchone()
    return int(rows)


def create_month_partition(month: datetime.date) -> int:
    """Create the partition of ``month`` if it does not exist, moving into it the rows of that month the
    default partition holds; the rows moved. One transaction: the default is locked while it is checked."""
    month = month_start(month)
    if month in month_partitions():
        return 0
    name = quoted(partition_name(month))
    parent, default = quoted(PARENT), quoted(DEFAULT_PARTITION)
    bounds = [month.isoformat(), next_month(month).isoformat()]
    with transaction.atomic(), connection.cursor() as cursor:
        # A new table like the parent (columns, NOT NULL, checks), filled from the default partition, then
        # attached: attaching builds the parent's indexes and primary key on it, and checks the default
        # holds no row of the month any more.
        cursor.execute(f"CREATE TABLE {name} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {default} WHERE started_on >= %s AND started_on < %s "  # noqa: S608
            f"RETURNING *) INSERT INTO {name} SELECT * FROM moved",
            bounds,
        )
        moved = cursor.rowcount
        # Bounds are dates formatted here, never text from elsewhere.
        cursor.execute(
            f"ALTER TABLE {parent} ATTACH PARTITION {name} FOR VALUES FROM ('{bounds[0]}') TO ('{bounds[1]}')"
        )
    if moved:
        logger.warning("call partition %s created with %d rows moved from the default partition", name, moved)
    return moved


def ensure_partitions_ahead(today: datetime.date, months: int = MONTHS_AHEAD) -> PartitionsEnsured:
    """This month's partition and the next ``months - 1``; idempotent. Warns if the default partition
    still holds rows (calls of a month with no partition: older than any partition created)."""
    if not partitioned():
        return PartitionsEnsured(created=[], moved_from_default=0, left_in_default=0)
    existing = month_partitions()
    created, moved = [], 0
    month = month_start(today)
    for _ in range(months):
        if month not in existing:
            moved += create_month_partition(month)
            created.append(partition_name(month))
        month = next_month(month)
    left = default_partition_rows()
    if left:
        older = kept_in_default_before(min(month_partitions()))
        logger.warning(
            "the default call partition holds %d rows: calls of months with no partition of their own (%d "
            "older than every partition: kept by a legal hold when retention dropped their month, or "
            "imported after it)",
            left,
            older,
        )
    return PartitionsEnsured(created=created, moved_from_default=moved, left_in_default=left)


@dataclass(frozen=True)
class MonthDropped:
    calls: int  # the calls dropped with the partition
    kept: int  # the calls of kept customers moved into the default partition first


def month_partition_calls(month: datetime.date, keep_customer_ids: list[int]) -> MonthDropped:
    """What ``drop_month_partition`` would drop and keep, counted."""
    name = quoted(partition_name(month_start(month)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FILTER (WHERE customer_id = ANY(%s)), COUNT(*) FROM {name}",  # noqa: S608
            [keep_customer_ids],
        )
        kept, total = cursor.fetchone()
    return MonthDropped(calls=int(total) - int(kept), kept=int(kept))


def drop_month_partition(month: datetime.date, keep_customer_ids: list[int]) -> MonthDropped:
    """Detach ``month``'s partition, move the calls of ``keep_customer_ids`` (a legal hold) back into the
    call records (the default partition, the month having none now, where the app still reads them and
    row by row retention finds them once the hold is lifted), delete the other calls' claims and
    references, and drop the partition: one transaction. The caller has decided every other call of the
    month is past its period."""
    month = month_start(month)
    name, parent = quoted(partition_name(month)), quoted(PARENT)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {parent} DETACH PARTITION {name}")
        cursor.execute(
            f"INSERT INTO {parent} SELECT * FROM {name} WHERE customer_id = ANY(%s)",  # noqa: S608
            [keep_customer_ids],
        )
        kept = cursor.rowcount
        dropped = f"SELECT id FROM {name} WHERE customer_id IS NULL OR NOT customer_id = ANY(%s)"  # noqa: S608
        cursor.execute(f"DELETE FROM billing_billedcall WHERE call_id IN ({dropped})", [keep_customer_ids])  # noqa: S608
        cursor.execute(f"DELETE FROM billing_callreference WHERE call_id IN ({dropped})", [keep_customer_ids])  # noqa: S608
        cursor.execute(f"SELECT COUNT(*) FROM {name}")  # noqa: S608
        (total,) = cursor.fetchone()
        cursor.execute(f"DROP TABLE {name}")
    logger.info("call partition %s dropped: %d calls, %d kept", name, total - kept, kept)
    return MonthDropped(calls=int(total) - kept, kept=kept)


def kept_in_default_before(month: datetime.date) -> int:
    """Rows of the default partition older than ``month`` (the oldest month partition): calls retention
    kept when it dropped their month (a legal hold), or calls imported older than every partition."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {quoted(DEFAULT_PARTITION)} WHERE started_on < %s",  # noqa: S608
            [month],
        )
        (rows,) = cursor.fetchone()
    return int(rows)
