"""Reads a page makes on every request, compiled by the ORM once per process instead of every time.

A Site Details page reads the same shapes of query for every customer: the customer's sites, contacts,
lines, orders, payment details and six histories. Building and compiling each queryset cost about as much
as running it (py-spy on a gunicorn worker under bench/load.py), and a raw queryset re-derives its columns
and converters on every call. ``CompiledRead`` keeps what does not change between calls (the SQL from the
ORM's own compiler, the attribute names of the columns, the converters Django applies to them, such as
decrypting an encrypted field) and, per call, only runs the SQL and builds the instances with
``Model.from_db``, as the ORM's own iterable does.

The queryset is built for one sentinel value, and its compiled parameters must be exactly that value:
anything else (a second parameter, a value folded into the SQL) is refused when first compiled rather than
run wrong. Querysets with ``select_related``, annotations or ``values()`` are refused too: their rows are
not one model's columns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model, QuerySet
from django.db.models.expressions import Col

M = TypeVar("M", bound=Model)

# An id no row has: the builder's queryset is compiled with it, and it must come back as the only parameter.
SENTINEL = -7_340_291_113


@dataclass(frozen=True)
class _Compiled:
    model: type[Model]
    sql: str
    attnames: list[str]
    # (column index, the converters the ORM applies to it in order, the expression they are given)
    converters: list[tuple[int, list[Any], Any]]


class CompiledRead(Generic[M]):
    """``read(value)``: the instances ``build(value)`` would return, with the SQL compiled once per
    database alias. ``build`` takes the value and returns a queryset of one model filtered by it."""

    def __init__(self, build: Callable[[Any], QuerySet[M]]) -> None:
        self._build = build
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def queryset(self, value: Any) -> QuerySet[M]:
        """The ORM's own queryset for ``value``: what a read must return (and what tests compare with)."""
        return self._build(value)

    def __call__(self, value: Any, *, using: str = "default") -> list[M]:
        compiled = self._compiled.get(using)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(using) or self._compile(using)
                self._compiled[using] = compiled
        model = compiled.model
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, [value])
            rows = cursor.fetchall()
        instances = []
        for row in rows:
            values = list(row)
            for index, converters, expression in compiled.converters:
                for converter in converters:
                    values[index] = converter(values[index], expression, connection)
            instances.append(model.from_db(using, compiled.attnames, values))
        return instances  # type: ignore[return-value]

    def _compile(self, using: str) -> _Compiled:
        queryset = self._build(SENTINEL).using(using)
        query = queryset.query
        if query.select_related or query.annotations or queryset._fields is not None:  # type: ignore[attr-defined]
            raise ValueError(f"{queryset.model.__name__}: only a plain queryset of the model's own columns")
        compiler = query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        if list(params) != [SENTINEL]:
            raise ValueError(
                f"{queryset.model.__name__}: the value must be the query's only parameter, got {params!r}"
            )
        expressions = [expression for expression, _sql, _alias in compiler.select]
        attnames = []
        for expression in expressions:
            if not isinstance(expression, Col):
                raise ValueError(f"{queryset.model.__name__}: selects {expression!r}, not a column")
            attnames.append(expression.target.attname)
        converters = [
            (index, list(found), expression)
            for index, (found, expression) in compiler.get_converters(expressions).items()
        ]
        return _Compiled(model=queryset.model, sql=sql, attnames=attnames, converters=converters)
