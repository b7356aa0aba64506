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

The importer runs the same query as part of its INSERT from the staging table, so a loaded call is
written once, rated; ``rate_pending_calls`` runs it as an UPDATE for calls already stored (SQLite's import,
calls put back from suspense).
"""

from dataclasses import dataclass

from django.db import connection

from billing.models import DIALLED_PREFIX_LENGTH, CallRecord

MAX_PREFIX_LENGTH = DIALLED_PREFIX_LENGTH
# What rating writes, in this order, as ``rating_query`` selects it.
RATED_COLUMNS = ("line_id", "customer_id", "rate_id", "band", "cost", "status", "suspense_reason")
_UNITS = "CAST(ROUND({} * 10000) AS BIGINT)"
_FAR_FUTURE = "'9999-12-31'"


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
    # The longest match; the two typed NULLs keep COALESCE valid with no rates (SQLite wants two arguments).
    best = ", ".join([*(f"r{n}.id" for n in lengths), "CAST(NULL AS bigint)", "CAST(NULL AS bigint)"])
    # Each card's end is capped at the next card's start, so exactly one card is in force at any time
    # even if two were ever saved overlapping (RateCard.clean refuses that): the newer card wins.
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
        LEFT JOIN (
            SELECT id, tariff_id, effective_from,
                   CASE WHEN next_from < until THEN next_from ELSE until END AS until
            FROM (
                SELECT id, tariff_id, effective_from, COALESCE(effective_to, {_FAR_FUTURE}) AS until,
                       LEAD(effective_from) OVER (PARTITION BY tariff_id ORDER BY effective_from) AS next_from
                FROM billing_ratecard
            ) cards
        ) rc ON {line} IS NOT NULL AND rc.tariff_id = {tariff}
               AND rc.effective_from <= c.started_at AND rc.until > c.started_at
        {prefix_joins}
        LEFT JOIN (
            SELECT id, band, increment_seconds, {_UNITS.format("price_per_minute")} AS price,
                   {_UNITS.format("connection_charge")} AS connection_charge,
                   {_UNITS.format("minimum_charge")} AS minimum_charge
            FROM billing_rate
        ) r ON r.id = COALESCE({best})
    """  # noqa: S608 - only fixed fragments are interpolated
    # Money in integer units, converted once per rate above rather than once per call.
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
    columns = ", ".join(
        f"{expression} AS {name}" for expression, name in zip(expressions, RATED_COLUMNS, strict=True)
    )
    return RatingQuery(columns=columns, joins=joins, params=[partner_id])


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
