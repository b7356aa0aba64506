"""Set-based rating of call records: one SQL statement, whatever the number of calls.

For each call, in one pass of hash joins (no sort, no window over the calls):
1. the line that owned its number on the day of the call (through the line's CLI blind index), which
   gives the customer;
2. its tariff: the line's own, else the customer's, else the partner's default;
3. the tariff's rate card in force at the call's start;
4. the rate with the longest prefix of the dialled number: one equality join on (rate card, prefix) per
   prefix length that some rate has, the longest match winning;
5. the cost, in integer ten-thousandths of a pound so SQLite and PostgreSQL agree to the last unit:
   billable seconds = duration rounded up to the increment;
   usage = price per minute x billable seconds / 60, rounded half-up;
   cost = max(connection charge + usage, minimum charge).
A call that cannot be rated goes to suspense with the reason (unknown CLI, no tariff, no rate), never
dropped.

The importer runs the same rating as part of its INSERT from the staging table, so a loaded call is
written once, rated; ``rate_pending_calls`` runs it as an UPDATE for calls already stored (SQLite's import,
calls put back from suspense).

On PostgreSQL the importer rates against a snapshot (``staged_rating_query``): each connection that loads
an import's batches first copies the partner's lines, each with its tariff already resolved (line's,
else customer's, else the partner's default), and those tariffs' rate cards and rates into temporary
tables named after the import, indexed on the join keys and analysed. Every batch then joins that
snapshot, a few narrow tables sized to the partner, instead of joining the live lines, customers and
tariff assignments again (at 100,000 customers that join was most of rating's time). The snapshot is
read once per import: a line, tariff assignment or rate card saved while an import runs rates that
import's calls from the next import on (``requeue_suspense`` and ``rate_pending_calls`` read the live
tables, as before).
"""

from dataclasses import dataclass

from django.db import connection

from billing.models import DIALLED_PREFIX_LENGTH, CallRecord

MAX_PREFIX_LENGTH = DIALLED_PREFIX_LENGTH
# What rating writes, in this order, as ``rating_query`` selects it.
RATED_COLUMNS = ("line_id", "customer_id", "rate_id", "band", "cost", "status", "suspense_reason")
_UNITS = "CAST(ROUND({} * 10000) AS BIGINT)"
_FAR_FUTURE = "'9999-12-31'"
# Each card's end is capped at the next card's start, so exactly one card is in force at any time even if
# two were ever saved overlapping (RateCard.clean refuses that): the newer card wins.
_CARDS_IN_FORCE = f"""
    SELECT id, tariff_id, effective_from, CASE WHEN next_from < until THEN next_from ELSE until END AS until
    FROM (
        SELECT id, tariff_id, effective_from, COALESCE(effective_to, {_FAR_FUTURE}) AS until,
               LEAD(effective_from) OVER (PARTITION BY tariff_id ORDER BY effective_from) AS next_from
        FROM billing_ratecard
    ) cards
"""  # noqa: S608 - only fixed fragments are interpolated
# Money in integer units, converted once per rate rather than once per call.
_RATES_IN_UNITS = f"""
    SELECT id, rate_card_id, prefix, band, increment_seconds, {_UNITS.format("price_per_minute")} AS price,
           {_UNITS.format("connection_charge")} AS connection_charge,
           {_UNITS.format("minimum_charge")} AS minimum_charge
    FROM billing_rate
"""  # noqa: S608 - only fixed fragments are interpolated


@dataclass(frozen=True)
class RatingResult:
    rated: int
    suspense: int


@dataclass(frozen=True)
class RatingQuery:
    """Fragments of a SELECT over the calls aliased ``c``: ``columns`` (RATED_COLUMNS, in order and so
    named) and ``joins`` (to follow ``FROM <calls> c``, taking ``params``)."""

    columns: str
    joins: str
    params: list[int]


def prefix_lengths() -> list[int]:
    """Lengths of the prefixes some rate has, longest first. A prefix longer than the stored dialled
    prefix could never match; each length is one join, so only those that exist are tried (UK cards have
    four or five, not eight)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT LENGTH(prefix) FROM billing_rate WHERE LENGTH(prefix) <= %s",
            [MAX_PREFIX_LENGTH],
        )
        return sorted((length for (length,) in cursor.fetchall()), reverse=True)


def _longest_match(lengths: list[int]) -> str:
    """The id of the longest prefix's rate; the two typed NULLs keep COALESCE valid with no rates (SQLite
    wants two arguments)."""
    return ", ".join([*(f"r{n}.id" for n in lengths), "CAST(NULL AS bigint)", "CAST(NULL AS bigint)"])


def rating_query(*, partner_id: int) -> RatingQuery:
    """The rating of each call of ``c`` (a partner's calls, stored or staged)."""
    lengths = prefix_lengths()
    line = "COALESCE(c.line_id, owner.id)"
    customer = "COALESCE(c.customer_id, owner.customer_id)"
    tariff = "COALESCE(lt.tariff_id, ct.tariff_id, p.default_tariff_id)"
    prefix_joins = "".join(
        f"""
        LEFT JOIN billing_rate r{n}
               ON r{n}.rate_card_id = rc.id AND r{n}.prefix = SUBSTR(c.dialled_prefix, 1, {n})"""
        for n in lengths
    )
    best = _longest_match(lengths)
    joins = f"""
        LEFT JOIN (
            SELECT l.id, l.customer_id, l.cli_index, l.start_date, l.end_date
            FROM accounts_line l JOIN accounts_customer cu ON cu.id = l.customer_id
            WHERE cu.partner_id = %s
        ) owner ON c.line_id IS NULL AND owner.cli_index = c.cli_index
               AND owner.start_date <= c.started_on
               AND (owner.end_date IS NULL OR owner.end_date >= c.started_on)
        LEFT JOIN billing_linetariff lt ON lt.line_id = {line}
        LEFT JOIN billing_customertariff ct ON ct.customer_id = {customer}
        LEFT JOIN billing_partnerbillingprofile p ON p.partner_id = c.partner_id
        LEFT JOIN ({_CARDS_IN_FORCE}) rc ON {line} IS NOT NULL AND rc.tariff_id = {tariff}
               AND rc.effective_from <= c.started_at AND rc.until > c.started_at
        {prefix_joins}
        LEFT JOIN ({_RATES_IN_UNITS}) r ON r.id = COALESCE({best})
    """  # noqa: S608 - only fixed fragments are interpolated
    columns = _rated_columns(line=line, customer=customer, tariff=tariff)
    return RatingQuery(columns=columns, joins=joins, params=[partner_id])


@dataclass(frozen=True)
class RatingSnapshot:
    """The temporary tables holding one import's copy of its partner's rating inputs, on one connection:
    ``lines`` (id, customer_id, cli_index, start_date, end_date and the line's tariff_id), ``cards`` (the
    cards of those tariffs, each with the end it is in force until) and ``rates`` (those cards' rates, in
    units)."""

    lines: str
    cards: str
    rates: str

    @classmethod
    def of(cls, call_import_id: int) -> "RatingSnapshot":
        # An int, so the names need no quoting; pg_temp, so no table of the schema can stand in for them.
        number = int(call_import_id)
        return cls(
            lines=f"pg_temp.rating_lines_{number}",
            cards=f"pg_temp.rating_cards_{number}",
            rates=f"pg_temp.rating_rates_{number}",
        )


def rating_snapshot(*, partner_id: int, call_import_id: int) -> RatingSnapshot:
    """The import's snapshot on this connection, copied now if this connection has none yet (PostgreSQL).

    Temporary tables belong to their connection: each loader connection copies the snapshot once, at its
    first batch, and keeps it for the rest of the import (they outlive the batch's transaction; the
    connection's end drops them, or ``drop_rating_snapshot``). A batch whose transaction rolls back takes
    a snapshot it copied with it, and the next batch copies it again."""
    snapshot = RatingSnapshot.of(call_import_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [snapshot.lines])
        if cursor.fetchone()[0]:
            return snapshot
        cursor.execute(
            f"""
            CREATE TEMP TABLE {snapshot.lines} AS
            SELECT l.id, l.customer_id, l.cli_index, l.start_date, l.end_date,
                   COALESCE(lt.tariff_id, ct.tariff_id, p.default_tariff_id) AS tariff_id
            FROM accounts_line l
            JOIN accounts_customer cu ON cu.id = l.customer_id
            LEFT JOIN billing_linetariff lt ON lt.line_id = l.id
            LEFT JOIN billing_customertariff ct ON ct.customer_id = l.customer_id
            LEFT JOIN billing_partnerbillingprofile p ON p.partner_id = cu.partner_id
            WHERE cu.partner_id = %s
            """,  # noqa: S608 - only fixed fragments are interpolated
            [partner_id],
        )
        cursor.execute(
            f"""
            CREATE TEMP TABLE {snapshot.cards} AS
            SELECT * FROM ({_CARDS_IN_FORCE}) cards
            WHERE tariff_id IN (SELECT tariff_id FROM {snapshot.lines})
            """  # noqa: S608 - only fixed fragments are interpolated
        )
        cursor.execute(
            f"""
            CREATE TEMP TABLE {snapshot.rates} AS
            SELECT * FROM ({_RATES_IN_UNITS}) rates
            WHERE rate_card_id IN (SELECT id FROM {snapshot.cards}) AND LENGTH(prefix) <= %s
            """,  # noqa: S608 - only fixed fragments are interpolated
            [MAX_PREFIX_LENGTH],
        )
        for table, key in (
            (snapshot.lines, "cli_index"),
            (snapshot.cards, "tariff_id"),
            (snapshot.rates, "rate_card_id, prefix"),
        ):
            cursor.execute(f"CREATE INDEX ON {table} ({key})")
            # Temporary tables are never analysed by autovacuum: without statistics the planner guesses
            # their size, and a wrong guess at the lines' turns the batch's hash join into a nested loop.
            cursor.execute(f"ANALYZE {table}")
    return snapshot


def drop_rating_snapshot(*, call_import_id: int) -> None:
    """Drop the import's snapshot from this connection, if it has one (a connection that loaded batches
    itself, rather than through loader threads whose connections close)."""
    snapshot = RatingSnapshot.of(call_import_id)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {snapshot.rates}, {snapshot.cards}, {snapshot.lines}")


def staged_rating_query(*, snapshot: RatingSnapshot) -> RatingQuery:
    """The rating of each call of ``c`` (staged calls, with no line or customer yet) against an import's
    snapshot: the same rating as ``rating_query``, with the line's tariff resolved in the snapshot."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT LENGTH(prefix) FROM {snapshot.rates}")  # noqa: S608
        lengths = sorted((length for (length,) in cursor.fetchall()), reverse=True)
    prefix_joins = "".join(
        f"""
        LEFT JOIN {snapshot.rates} r{n}
               ON r{n}.rate_card_id = rc.id AND r{n}.prefix = SUBSTR(c.dialled_prefix, 1, {n})"""
        for n in lengths
    )
    joins = f"""
        LEFT JOIN {snapshot.lines} owner ON owner.cli_index = c.cli_index
               AND owner.start_date <= c.started_on
               AND (owner.end_date IS NULL OR owner.end_date >= c.started_on)
        LEFT JOIN {snapshot.cards} rc ON rc.tariff_id = owner.tariff_id
               AND rc.effective_from <= c.started_at AND rc.until > c.started_at
        {prefix_joins}
        LEFT JOIN {snapshot.rates} r ON r.id = COALESCE({_longest_match(lengths)})
    """
    columns = _rated_columns(line="owner.id", customer="owner.customer_id", tariff="owner.tariff_id")
    return RatingQuery(columns=columns, joins=joins, params=[])


def _rated_columns(*, line: str, customer: str, tariff: str) -> str:
    """RATED_COLUMNS, in order and so named, from the expressions giving a call's line, customer and
    tariff, and its best rate joined as ``r`` (id, band, increment_seconds and the three charges in units)."""
    billable = "((c.duration_seconds + r.increment_seconds - 1) / r.increment_seconds) * r.increment_seconds"
    charged = "r.connection_charge + (r.price * " + billable + " * 2 + 60) / 120"
    # The larger of the two in SQL both databases read alike (PostgreSQL's GREATEST is SQLite's MAX).
    cost = f"CASE WHEN {charged} > r.minimum_charge THEN {charged} ELSE r.minimum_charge END / 10000.0"
    reason = (
        f"CASE WHEN {line} IS NULL THEN 'unknown_cli' WHEN {tariff} IS NULL THEN 'no_tariff' "
        "WHEN r.id IS NULL THEN 'unrateable' ELSE '' END"
    )
    expressions = (
        line,
        customer,
        "r.id",
        "COALESCE(r.band, '')",
        f"CASE WHEN r.id IS NULL THEN NULL ELSE {cost} END",
        "CASE WHEN r.id IS NULL THEN 'suspense' ELSE 'rated' END",
        reason,
    )
    return ", ".join(
        f"{expression} AS {name}" for expression, name in zip(expressions, RATED_COLUMNS, strict=True)
    )


def rate_pending_calls(*, partner_id: int, call_import_id: int | None = None) -> RatingResult:
    """Rate every pending call of the partner (or of one import) already stored. Call in a transaction."""
    query = rating_query(partner_id=partner_id)
    scope = "c.status = 'pending' AND c.partner_id = %s"
    params = [*query.params, partner_id]
    if call_import_id is not None:
        scope += " AND c.call_import_id = %s"
        params.append(call_import_id)
    assignments = ", ".join(f"{name} = m.{name}" for name in RATED_COLUMNS)
    sql = f"""
        UPDATE billing_callrecord SET {assignments}
        FROM (
            SELECT c.id AS call_id, c.started_on AS call_started_on, {query.columns}
            FROM billing_callrecord c {query.joins}
            WHERE {scope}
        ) m
        -- The whole key: on PostgreSQL it is (id, started_on), and the day finds the call's month.
        WHERE m.call_id = billing_callrecord.id AND billing_callrecord.started_on = m.call_started_on
        RETURNING billing_callrecord.status
    """  # noqa: S608 - only fixed fragments are interpolated
    rated = suspense = 0
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(5000):
            for (status,) in rows:
                if status == CallRecord.Status.RATED:
                    rated += 1
                else:
                    suspense += 1
    return RatingResult(rated=rated, suspense=suspense)


def requeue_suspense(*, partner_id: int, call_ids: list[int] | None = None) -> int:
    """Put suspense calls back to pending so rating tries them again. A call whose CLI was unknown has no
    line or customer (rating wrote NULL for both), so rating looks its line up afresh."""
    queryset = CallRecord.objects.filter(partner_id=partner_id, status=CallRecord.Status.SUSPENSE)
    if call_ids is not None:
        queryset = queryset.filter(pk__in=call_ids)
    return queryset.update(status=CallRecord.Status.PENDING, suspense_reason="")
