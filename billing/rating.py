"""Set-based rating of call records: a handful of SQL statements, whatever the number of calls.

1. Each pending call is matched to the line that owned its number on the day of the call (through the
   line's CLI blind index), which gives the customer.
2. Its tariff is the line's own, else the customer's, else the partner's default.
3. The rate card is the tariff's card effective at the call's start; the rate is the one with the
   longest prefix of the dialled number (candidate prefix lengths are joined, so matching is an equality
   join on (rate_card, prefix), not a LIKE scan).
4. Cost, in integer ten-thousandths of a pound so SQLite and PostgreSQL agree to the last unit:
   billable seconds = duration rounded up to the increment;
   usage = price per minute x billable seconds / 60, rounded half-up;
   cost = max(connection charge + usage, minimum charge).
Calls that cannot be rated go to suspense with the reason, never dropped.
"""

from dataclasses import dataclass

from django.db import connection

from billing.models import CallRecord

MAX_PREFIX_LENGTH = 8
CALLS_TABLE = "billing_callrecord"
STAGING_TABLE = "call_staging"
RATEABLE_TABLES = frozenset({CALLS_TABLE, STAGING_TABLE})
# Only the prefix lengths some rate has are tried: each length is one probe per call (UK cards have
# four or five, not eight).
_LENGTHS = "SELECT DISTINCT LENGTH(prefix) FROM billing_rate"
_UNITS = "CAST(ROUND({} * 10000) AS BIGINT)"


@dataclass(frozen=True)
class RatingResult:
    rated: int
    suspense: int


def _scope(alias: str, *, partner_id: int, call_import_id: int | None) -> tuple[str, list[int]]:
    where = f"{alias}.status = 'pending' AND {alias}.partner_id = %s"
    params = [partner_id]
    if call_import_id is not None:
        where += f" AND {alias}.call_import_id = %s"
        params.append(call_import_id)
    return where, params


def _match_lines(*, partner_id: int, call_import_id: int | None, table: str) -> None:
    scope, params = _scope(table, partner_id=partner_id, call_import_id=call_import_id)
    call_day = f"{table}.started_on"
    sql = f"""
        UPDATE {table}
        SET line_id = owner.id, customer_id = owner.customer_id
        FROM (
            SELECT l.id, l.customer_id, l.cli_index, l.start_date, l.end_date
            FROM accounts_line l JOIN accounts_customer cu ON cu.id = l.customer_id
            WHERE cu.partner_id = %s
        ) owner
        WHERE {scope}
          AND {table}.line_id IS NULL
          AND owner.cli_index = {table}.cli_index
          AND owner.start_date <= {call_day}
          AND (owner.end_date IS NULL OR owner.end_date >= {call_day})
    """  # noqa: S608 - only fixed fragments are interpolated
    with connection.cursor() as cursor:
        cursor.execute(sql, [partner_id, *params])


_TARIFF = "COALESCE(lt.tariff_id, ct.tariff_id, p.default_tariff_id)"
_TARIFF_JOINS = """
    LEFT JOIN billing_linetariff lt ON lt.line_id = c.line_id
    LEFT JOIN billing_customertariff ct ON ct.customer_id = c.customer_id
    LEFT JOIN billing_partnerbillingprofile p ON p.partner_id = c.partner_id
"""


def _apply_rates(*, partner_id: int, call_import_id: int | None, table: str) -> int:
    scope, params = _scope("c", partner_id=partner_id, call_import_id=call_import_id)
    price, connection_charge, minimum = (
        _UNITS.format("m.price_per_minute"),
        _UNITS.format("m.connection_charge"),
        _UNITS.format("m.minimum_charge"),
    )
    billable = "((m.duration_seconds + m.increment_seconds - 1) / m.increment_seconds) * m.increment_seconds"
    usage = f"(({price}) * ({billable}) * 2 + 60) / 120"
    charged = f"({connection_charge}) + {usage}"
    cost_units = f"CASE WHEN {charged} > {minimum} THEN {charged} ELSE {minimum} END"
    # The CTEs sit inside the FROM subquery: an UPDATE that starts with WITH reports no row count on
    # SQLite. Ties on prefix length go to the most recent card, should cards ever overlap.
    sql = f"""
        UPDATE {table}
        SET status = 'rated', suspense_reason = '', rate_id = m.rate_id, band = m.band,
            cost = ({cost_units}) / 10000.0
        FROM (
            WITH lengths(n) AS ({_LENGTHS}),
            candidates AS (
                SELECT c.id AS call_id, r.id AS rate_id, r.band, r.price_per_minute, r.connection_charge,
                       r.minimum_charge, r.increment_seconds, c.duration_seconds,
                       ROW_NUMBER() OVER (
                           PARTITION BY c.id ORDER BY lengths.n DESC, rc.effective_from DESC
                       ) AS pick
                FROM {table} c
                {_TARIFF_JOINS}
                JOIN billing_ratecard rc ON rc.tariff_id = {_TARIFF}
                     AND rc.effective_from <= c.started_at
                     AND (rc.effective_to IS NULL OR rc.effective_to > c.started_at)
                JOIN lengths ON lengths.n <= LENGTH(c.dialled_prefix)
                JOIN billing_rate r
                     ON r.rate_card_id = rc.id AND r.prefix = SUBSTR(c.dialled_prefix, 1, lengths.n)
                WHERE {scope} AND c.line_id IS NOT NULL
            )
            SELECT * FROM candidates WHERE pick = 1
        ) m
        WHERE m.call_id = {table}.id
    """  # noqa: S608 - only fixed fragments are interpolated
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def _to_suspense(*, partner_id: int, call_import_id: int | None, table: str) -> int:
    scope, params = _scope(table, partner_id=partner_id, call_import_id=call_import_id)
    no_tariff = f"""
        SELECT c.id FROM {table} c {_TARIFF_JOINS}
        WHERE c.partner_id = %s AND c.status = 'pending' AND {_TARIFF} IS NULL
    """  # noqa: S608
    statements = [
        ("unknown_cli", f"{table}.line_id IS NULL", []),
        ("no_tariff", f"{table}.id IN ({no_tariff})", [partner_id]),
        ("unrateable", "1 = 1", []),
    ]
    moved = 0
    with connection.cursor() as cursor:
        for reason, condition, extra in statements:
            cursor.execute(
                f"UPDATE {table} SET status = 'suspense', suspense_reason = %s, "  # noqa: S608
                f"rate_id = NULL, band = '', cost = NULL WHERE {scope} AND {condition}",
                [reason, *params, *extra],
            )
            moved += cursor.rowcount
    return moved


def rate_pending_calls(
    *, partner_id: int, call_import_id: int | None = None, table: str = CALLS_TABLE
) -> RatingResult:
    """Rate every pending call of the partner (or of one import) in ``table``: the call records, or the
    import's staging table, where rating a batch before it is inserted spares rewriting every stored row
    (and its indexes) once per step. Call inside a transaction."""
    if table not in RATEABLE_TABLES:
        raise ValueError(f"Cannot rate calls in {table!r}.")
    _match_lines(partner_id=partner_id, call_import_id=call_import_id, table=table)
    rated = _apply_rates(partner_id=partner_id, call_import_id=call_import_id, table=table)
    suspense = _to_suspense(partner_id=partner_id, call_import_id=call_import_id, table=table)
    return RatingResult(rated=rated, suspense=suspense)


def requeue_suspense(*, partner_id: int, call_ids: list[int] | None = None) -> int:
    """Put suspense calls back to pending (forgetting an unknown line) so rating tries them again."""
    queryset = CallRecord.objects.filter(partner_id=partner_id, status=CallRecord.Status.SUSPENSE)
    if call_ids is not None:
        queryset = queryset.filter(pk__in=call_ids)
    queryset.filter(suspense_reason=CallRecord.SuspenseReason.UNKNOWN_CLI).update(line=None, customer=None)
    return queryset.update(status=CallRecord.Status.PENDING, suspense_reason="")
