"""Writing many rows at once in SQL, with their history, where building a model instance per row
costs more than the write.

``bulk_create`` prepares every value of every instance through its field (about 8 µs a value), and
simple-history's ``bulk_history_create`` builds a second instance per row: 0.45 ms per invoice of a bill
run. Here the caller hands rows already in database form (ciphertext for encrypted fields, Python
dates and decimals, which both database drivers adapt), and the history rows are copied from the
stored rows by one INSERT ... SELECT, so they hold exactly what was written.
"""

import datetime
from collections.abc import Sequence
from typing import Any

from django.db import connection, models

# Rows per INSERT: psycopg and SQLite both take this many rows of a dozen values in one statement.
ROWS_PER_STATEMENT = 1000


def insert_rows(model: type[models.Model], field_names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (values in the order of ``field_names``, already as the database stores them)
    into ``model``'s table: by COPY on PostgreSQL, by multi-row INSERTs elsewhere. No signals, no
    history, no per-value preparation: the caller encrypts what the model encrypts."""
    if not rows:
        return
    fields = [model._meta.get_field(name) for name in field_names]
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)  # type: ignore[union-attr]
    per_statement = min(ROWS_PER_STATEMENT, connection.ops.bulk_batch_size(fields, rows) or len(rows))
    table = connection.ops.quote_name(model._meta.db_table)
    if connection.vendor == "postgresql":
        _copy_rows(table, columns, rows)
    else:
        _insert_statements(table, columns, rows, per_statement=per_statement)


def insert_rows_returning_ids(
    model: type[models.Model], field_names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """``insert_rows`` for rows whose new ids the caller needs: multi-row INSERTs with RETURNING (PostgreSQL,
    and SQLite 3.35+), which give the ids back in the order of the rows, as ``bulk_create`` relies on."""
    if not rows:
        return []
    fields = [model._meta.get_field(name) for name in field_names]
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)  # type: ignore[union-attr]
    per_statement = min(ROWS_PER_STATEMENT, connection.ops.bulk_batch_size(fields, rows) or len(rows))
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(str(model._meta.pk.column))
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_sql] * len(part))} "  # noqa: S608
                f"RETURNING {pk}",
                [value for row in part for value in row],
            )
            ids.extend(int(row[0]) for row in cursor.fetchall())
    return ids


def insert_rows_with_new_ids(
    model: type[models.Model], field_names: Sequence[str], rows: Sequence[Sequence[Any]]
) -> list[int]:
    """``insert_rows`` for rows whose new ids the caller needs, in the order of the rows, so it need not
    query them back (a query that, with the table's statistics behind a fast-growing table, PostgreSQL
    may answer by reading far more rows than it returns). On PostgreSQL the ids are drawn from the
    primary key's sequence in one statement and the rows COPied with them; elsewhere by
    ``insert_rows_returning_ids``."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return insert_rows_returning_ids(model, field_names, rows)
    pk = model._meta.pk
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, pk.column, len(rows)],
        )
        ids = [int(row[0]) for row in cursor.fetchall()]
    insert_rows(
        model, [pk.name, *field_names], [(pk_value, *row) for pk_value, row in zip(ids, rows, strict=True)]
    )
    return ids


def _copy_rows(table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
    # COPY: psycopg adapts each value in C; a parameterised INSERT quotes each one in Python.
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _insert_statements(
    table: str, columns: str, rows: Sequence[Sequence[Any]], *, per_statement: int
) -> None:
    row_sql = "(" + ", ".join(["%s"] * len(rows[0])) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([row_sql] * len(part))}",  # noqa: S608
                [value for row in part for value in row],
            )


def set_for_transaction(**settings: str) -> None:
    """PostgreSQL planner and memory settings (``SET LOCAL``) for the rest of the current transaction
    only; nothing elsewhere. For bulk statements whose shape the defaults misjudge, each call site says
    what it measured."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name, value in settings.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def record_history_in_sql(
    queryset: models.QuerySet[Any],
    *,
    actor: Any,
    reason: str,
    when: datetime.datetime,
    history_type: str = "+",
) -> None:
    """One history row per row of ``queryset`` (simple-history's '+' for a creation, '~' for a change),
    copied from the stored row in one INSERT ... SELECT and attributed to ``actor`` with ``reason``, as
    ``save_with_actor`` would have recorded it."""
    if history_type not in ("+", "~"):
        raise ValueError(f"History rows in SQL record a creation or a change, not {history_type!r}.")
    model = queryset.model
    history = model.history.model
    # The fields the history keeps (a model may exclude some, as a cached amount).
    kept = {field.attname for field in history._meta.concrete_fields}
    fields = [field for field in model._meta.concrete_fields if field.attname in kept]
    columns = [field.column for field in fields]
    names = [field.attname for field in fields]
    select, params = queryset.order_by().values_list(*names).query.sql_with_params()
    quote = connection.ops.quote_name
    history_columns = [*columns, "history_date", "history_change_reason", "history_type", "history_user_id"]
    constants = [
        connection.ops.adapt_datetimefield_value(when),
        reason,
        history_type,
        getattr(actor, "pk", None),
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(history._meta.db_table)} ({', '.join(quote(c) for c in history_columns)}) "  # noqa: S608
            f"SELECT stored.*, %s, %s, %s, %s FROM ({select}) stored",
            [*constants, *params],
        )
