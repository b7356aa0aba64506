"""Reads a page makes on every request, compiled by the ORM once per process instead of every time.

A Site Details page reads the same shapes of query for every customer: the customer's sites, contacts,
lines, orders, payment details and six histories. Building and compiling each queryset cost about as much
as running it (py-spy on a gunicorn worker under bench/load.py), and a raw queryset re-derives its columns
and converters on every call. ``CompiledRead`` keeps what does not change between calls (the SQL from the
ORM's own compiler, the attribute names of the columns, the converters Django applies to them, such as
decrypting an encrypted field, and the populators of ``select_related`` models) and, per call, only runs
the SQL and builds the instances with ``Model.from_db``, as the ORM's own iterable does.

The queryset is built twice for sentinel values, and each value must come back as a parameter of the same SQL
(as itself, or as its text where it is compared with a text column, such as a digest): a value folded into the
SQL text, or dropped from it, is refused when first compiled rather than run wrong. ``select_related``
models are populated by Django's own populators, and ``annotate()``d values set on each instance, as the
ORM's iterable does. A queryset of ``values_list()`` reads tuples, converted as the ORM converts them, and
makes no instance at all: for a page that only prints its rows, building fifty customers and their partners
was about a fifth of the staff list's CPU (py-spy under bench/load.py). ``values()``, ``flat`` and
``named`` querysets are refused.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, ValuesListIterable, get_related_populators

# What a read returns for each row: the model instance, or the tuple of a values_list() queryset.
M = TypeVar("M")

# Ids no row has: the builder's queryset is compiled with them, and the values a call passes take their
# places among the compiled parameters. Two sets, so that a value folded into the SQL is caught. Within
# a 32-bit integer's range: Django compiles a lookup on an IntegerField (AutoField ids, as django-otp's
# devices have) past its database's range to no SQL at all.
_SENTINELS = (-1_734_029_113, -1_591_800_427)


@dataclass(frozen=True)
class _Compiled:
    model: type[Model]
    sql: str
    # Each parameter of the SQL: the index of the call's value it takes, or a constant of the queryset's.
    params: list[tuple[int | None, Any]]
    columns: slice  # the model's own columns in each row
    attnames: list[str]
    # (column index, the converters the ORM applies to it in order, the expression they are given)
    converters: list[tuple[int, list[Any], Any]]
    related: list[Any]  # Django's own populators of select_related() models
    annotations: list[tuple[str, int]]  # (attribute, column index) of each annotate()d value
    tuples: bool  # a values_list() read: each row a tuple of its converted columns, ``columns`` of them


class CompiledRead(Generic[M]):
    """``read(*values)``: the instances ``build(*values)`` would return, with the SQL compiled once per
    database alias. ``build`` returns a queryset of one model, and depends on nothing but its values:
    whatever else its SQL holds (a permission's codename) is kept as it was when first compiled."""

    def __init__(
        self,
        build: Callable[..., QuerySet[Any, M]],
        *,
        arity: int | None = None,
        keep_ciphertext: bool = False,
    ) -> None:
        """``arity``: how many values ``build`` takes, when its signature does not say (``*values``).
        ``keep_ciphertext``: encrypted fields keep their stored ciphertext instead of being decrypted on
        the way out, for a reader that decrypts only the values it uses (``field.from_db_value``); such
        instances must never be shown or saved as they are."""
        self._build = build
        self._keep_ciphertext = keep_ciphertext
        self._arity = len(inspect.signature(build).parameters) if arity is None else arity
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def queryset(self, *values: Any) -> QuerySet[Any, M]:
        """The ORM's own queryset for ``values``: what a read must return (and what tests compare with)."""
        return self._build(*values)

    def __call__(self, *values: Any, using: str = "default") -> list[M]:
        compiled, params = self._prepared(values, using)
        with connections[using].cursor() as cursor:
            cursor.execute(_sent(using, compiled.sql, params), params)
            rows = cursor.fetchall()
        return self._instances(compiled, rows, using)

    def _prepared(self, values: tuple[Any, ...], using: str) -> tuple[_Compiled, list[Any]]:
        if len(values) != self._arity:
            raise TypeError(f"expected {self._arity} values, got {len(values)}")
        compiled = self._compiled.get(using)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(using) or self._compile(using)
                self._compiled[using] = compiled
        params = [values[index] if index is not None else constant for index, constant in compiled.params]
        return compiled, params

    @staticmethod
    def _instances(compiled: _Compiled, rows: list[Any], using: str) -> list[M]:
        connection = connections[using]
        instances: list[Any] = []
        for row in rows:
            values_of_row = list(row)
            for index, converters, expression in compiled.converters:
                for converter in converters:
                    values_of_row[index] = converter(values_of_row[index], expression, connection)
            if compiled.tuples:
                instances.append(tuple(values_of_row[compiled.columns]))
                continue
            instance = compiled.model.from_db(using, compiled.attnames, values_of_row[compiled.columns])
            for populator in compiled.related:
                populator.populate(values_of_row, instance)
            for attribute, position in compiled.annotations:
                setattr(instance, attribute, values_of_row[position])
            instances.append(instance)
        return instances

    def _sql(self, using: str, base: int) -> tuple[QuerySet[Any, M], Any, str, list[Any]]:
        sentinels = [base - position for position in range(self._arity)]
        queryset = self._build(*sentinels).using(using)
        compiler = queryset.query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        texts = [str(sentinel) for sentinel in sentinels]

        def slot(param: Any) -> int | tuple[None, Any]:
            if isinstance(param, int) and not isinstance(param, bool) and param in sentinels:
                return sentinels.index(param)
            if isinstance(param, str) and param in texts:  # a value given to a text column, as its text
                return texts.index(param)
            return (None, param)

        return queryset, compiler, sql, [slot(param) for param in params]

    def _kept_as_stored(self, converter: Any) -> bool:
        return self._keep_ciphertext and getattr(getattr(converter, "__self__", None), "encrypted", False)

    def _compile(self, using: str) -> _Compiled:
        queryset, compiler, sql, slots = self._sql(using, _SENTINELS[0])
        name = queryset.model.__name__
        iterable = queryset._iterable_class
        if iterable not in (ModelIterable, ValuesListIterable) or (
            iterable is ModelIterable and queryset._fields is not None  # type: ignore[attr-defined]
        ):
            raise ValueError(f"{name}: only a queryset of model rows or of values_list() tuples")
        _other_queryset, _other, other_sql, other_slots = self._sql(using, _SENTINELS[1])
        if other_sql != sql or other_slots != slots:
            raise ValueError(f"{name}: a value changes the SQL itself, not only its parameters")
        used = {slot for slot in slots if isinstance(slot, int)}
        if used != set(range(self._arity)):
            raise ValueError(f"{name}: every value must be a parameter of the query, got {slots!r}")
        select = compiler.select
        expressions = [expression for expression, _sql, _alias in select]
        tuples = iterable is ValuesListIterable
        if tuples:
            # The columns the ORM's tuples hold (``col_count``), not those selected only to order by.
            columns = slice(0, compiler.col_count)
            if compiler.has_composite_fields(expressions[columns]):
                raise ValueError(f"{name}: a composite primary key in values_list() is not read")
        else:
            klass_info = compiler.klass_info
            fields = klass_info["select_fields"]
            columns = slice(fields[0], fields[-1] + 1)
        return _Compiled(
            model=queryset.model,
            sql=sql,
            params=[(slot, None) if isinstance(slot, int) else slot for slot in slots],
            columns=columns,
            attnames=[] if tuples else [expression.target.attname for expression in expressions[columns]],
            converters=[
                (index, kept, expression)
                for index, (found, expression) in compiler.get_converters(
                    expressions[columns] if tuples else expressions
                ).items()
                if (kept := [converter for converter in found if not self._kept_as_stored(converter)])
            ],
            related=[] if tuples else get_related_populators(klass_info, select, using),  # type: ignore[call-arg]
            annotations=[] if tuples else list(compiler.annotation_col_map.items()),
            tuples=tuples,
        )


@dataclass(frozen=True)
class _Statement:
    sql: str


class RowsRead:
    """``read(*values)``: the rows, as tuples, of one hand-written statement, for ``read_together`` to send
    beside compiled reads. ``sql(connection)`` writes it for a database (its quoted names), with one
    ``%s`` for each of the ``arity`` values in order; it is written once per database alias."""

    def __init__(self, sql: Callable[[Any], str], *, arity: int) -> None:
        self._sql_of = sql
        self._arity = arity
        self._statements: dict[str, _Statement] = {}

    def __call__(self, *values: Any, using: str = "default") -> list[tuple[Any, ...]]:
        statement, params = self._prepared(values, using)
        with connections[using].cursor() as cursor:
            cursor.execute(_sent(using, statement.sql, params), params)
            return self._instances(statement, cursor.fetchall(), using)

    def _prepared(self, values: tuple[Any, ...], using: str) -> tuple[_Statement, list[Any]]:
        if len(values) != self._arity:
            raise TypeError(f"expected {self._arity} values, got {len(values)}")
        statement = self._statements.get(using)
        if statement is None:
            statement = self._statements[using] = _Statement(self._sql_of(connections[using]))
        return statement, list(values)

    @staticmethod
    def _instances(statement: _Statement, rows: list[Any], using: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in rows]


Read = CompiledRead[Any] | RowsRead


def read_together(
    *reads: tuple[Read, tuple[Any, ...]], using: str = "default", gated: bool = False
) -> list[list[Any]]:
    """Each ``(read, values)``'s instances (rows, for a ``RowsRead``), as ``read(*values)`` returns them,
    in the order given. ``gated``: the first read decides whether the others are used; where it finds
    nothing, the others come back empty, their rows never turned into instances (nor decrypted).

    On PostgreSQL with client-side binding (Django's default for psycopg 3), the statements go in one
    round trip, each its own result, instead of one round trip each: a Site Details page's thirteen reads
    cost a gunicorn worker about 55 us of Python each and PostgreSQL a wake-up each (bench/load.py).
    Elsewhere (SQLite, server-side binding, which allows one statement per call) they run one by one."""
    connection = connections[using]
    prepared = [(read, *read._prepared(values, using)) for read, values in reads]
    if len(prepared) < 2 or not _batches_statements(connection):
        answered = _one_by_one(prepared, using, gated=gated)
        found = [read._instances(compiled, rows, using) for read, compiled, rows in answered]
        return found + [[] for _unread in prepared[len(found) :]]
    results: list[list[Any]] = []
    with connection.cursor() as cursor:
        cursor.execute(
            ";\n".join(_sent(using, compiled.sql, params) for _read, compiled, params in prepared),
            [param for _read, _compiled, params in prepared for param in params],
        )
        # The driver's own cursor, its errors turned into Django's once for all the results: through
        # Django's wrapper, each nextset() and fetchall() was wrapped anew (functools.wraps), about 4% of
        # a Site Details page's CPU for its seventeen results (py-spy, bench/load.py's data).
        driver_cursor = cursor.cursor
        with connection.wrap_database_errors:
            for position, (read, compiled, _params) in enumerate(prepared):
                if position and not driver_cursor.nextset():
                    raise RuntimeError(f"{len(prepared)} statements sent, {position} results came back")
                rows = driver_cursor.fetchall()
                if gated and position and not results[0]:
                    results.append([])
                    continue
                results.append(read._instances(compiled, rows, using))
    return results


def _one_by_one(
    prepared: list[tuple[Read, Any, list[Any]]], using: str, *, gated: bool
) -> list[tuple[Read, Any, list[Any]]]:
    """Each statement's rows, in order; ``gated``, none after a first that found nothing."""
    answered = []
    with connections[using].cursor() as cursor:
        for read, compiled, params in prepared:
            cursor.execute(_sent(using, compiled.sql, params), params)
            answered.append((read, compiled, cursor.fetchall()))
            if gated and not answered[0][2]:
                break
    return answered


def _batches_statements(connection: Any) -> bool:
    return connection.vendor == "postgresql" and not connection.settings_dict.get("OPTIONS", {}).get(
        "server_side_binding", False
    )


# Prepared reads. PostgreSQL plans every statement it is sent; a Site Details page's seventeen statements
# cost it 2.2-3.0 ms of CPU a page planned each time and 0.6-0.8 ms as EXECUTEs of statements prepared
# on the connection (500 pages of bench/load.py's statements, backend CPU from /proc). So each compiled
# read is PREPAREd once per database connection, on first use, and sent as EXECUTE with its values
# bound by the client as before; a statement PostgreSQL will not prepare is sent as it is, and logged.
# Prepared statements belong to the server connection: behind a pooler that hands one client's
# statements to other connections (PgBouncer in transaction mode), set DATABASE_PREPARED_READS=false.

logger = logging.getLogger(__name__)

_statement_names = itertools.count(1)
_names_lock = threading.Lock()
# Each statement's name, the same on every connection of the process, and the SQL each name stands for.
_name_of: dict[tuple[str, tuple[str, ...]], str] = {}
_sql_named: dict[str, str] = {}
# Per open DB-API connection (a new one after a reconnect): each name prepared there -> whether
# PostgreSQL prepared it (False: it refused, and the statement is sent as it is).
_prepared_on: weakref.WeakKeyDictionary[Any, dict[str, bool]] = weakref.WeakKeyDictionary()


def statement_of(sent: str) -> str:
    """``sent`` (a query log's statement) with each ``EXECUTE fusion_read_N`` replaced by the SQL that
    prepared read runs (its values stay after it, in brackets). For reading logs, and for tests that look
    at what a page asked."""
    return _EXECUTED.sub(lambda found: _sql_named.get(found[1], found[0]), sent)


_EXECUTED = re.compile(r"EXECUTE (fusion_read_\d+)")


def prepares_reads(using: str = "default") -> bool:
    """Whether reads on ``using`` are sent as EXECUTEs of prepared statements (PostgreSQL with the
    client-side binding this module batches with, and ``PREPARED_READS`` on)."""
    return getattr(settings, "PREPARED_READS", False) and _batches_statements(connections[using])


def _sent(using: str, sql: str, params: list[Any]) -> str:
    """What to send for ``sql`` and its ``params``: where reads are prepared, an EXECUTE of the statement
    prepared for it on this connection (preparing it first if it is new there)."""
    if not prepares_reads(using):
        return sql
    connection = connections[using]
    if connection.needs_rollback:  # a broken transaction: Django refuses the statement itself
        return sql
    connection.ensure_connection()
    types = tuple(_parameter_type(param) for param in params)
    name = _name_of.get((sql, types)) or _new_name(sql, types)
    prepared = _prepared_on.setdefault(connection.connection, {})
    usable = prepared.get(name)
    if usable is None:
        usable = prepared[name] = _prepare(using, name, sql, types)
    if not usable:
        return sql
    return f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}"


def _parameter_type(value: Any) -> str:
    """The type a parameter is prepared with. A whole number is a bigint, as the literal the client binds
    is: inferred from an integer column instead, an id past its range would be an error where the SQL
    itself finds no row. Anything else takes the type its place in the SQL gives it."""
    if isinstance(value, bool):
        return "boolean"
    return "bigint" if isinstance(value, int) else "unknown"


def _new_name(sql: str, types: tuple[str, ...]) -> str:
    with _names_lock:
        if (sql, types) not in _name_of:
            name = f"fusion_read_{next(_statement_names)}"
            _sql_named[name] = sql
            _name_of[sql, types] = name
        return _name_of[sql, types]


def _prepare(using: str, name: str, sql: str, types: tuple[str, ...]) -> bool:
    """PREPARE ``sql`` as ``name`` with its parameters' ``types`` on the connection; False where
    PostgreSQL refuses (a parameter whose type it cannot infer), inside a savepoint in a transaction so
    that a refusal leaves it usable. Sent on the DB-API connection itself: it is not one of the page's
    reads (nor counted among a test's queries), and runs once per connection."""
    import psycopg

    connection = connections[using]
    raw = connection.connection
    in_transaction = not connection.get_autocommit()
    declared = f" ({', '.join(types)})" if types else ""
    try:
        if in_transaction:
            raw.execute(f"SAVEPOINT {name}")
        raw.execute(f"PREPARE {name}{declared} AS {_numbered(sql)}")
    except psycopg.Error:
        logger.warning("compiled read not prepared; it is sent as it is", exc_info=True)
        if in_transaction:
            raw.execute(f"ROLLBACK TO SAVEPOINT {name}")
        return False
    finally:
        if in_transaction:
            raw.execute(f"RELEASE SAVEPOINT {name}")
    return True


def _numbered(sql: str) -> str:
    """``sql`` with its client-side placeholders (``%s``) numbered for PREPARE (``$1``, ``$2``...) and
    its escaped percent signs (``%%``) as they are sent."""
    numbers = itertools.count(1)
    parts = sql.split("%%")
    numbered = []
    for part in parts:
        pieces = part.split("%s")
        numbered.append(
            "".join(piece if at == 0 else f"${next(numbers)}{piece}" for at, piece in enumerate(pieces))
        )
    return "%".join(numbered)
