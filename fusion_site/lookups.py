"""``field__any_of=ids``: membership in a long list of ids as one parameter.

Django's ``__in`` writes ``IN (%s, %s, ...)``, one placeholder per id. psycopg binds parameters on the
client side, parsing every placeholder of a statement in Python, and caches that work only for statements
of at most 50 parameters: a ledger chunk's statements name 1,000 ids each, and parsing them cost as much
as running them. ``any_of`` writes ``= ANY(%s::bigint[])`` on PostgreSQL with the ids as one array
literal (ints only, so nothing but digits and commas reaches the SQL), and ``IN`` elsewhere.
"""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, ForeignObject, Lookup


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[int]:
        values: Iterable[Any] = self.rhs
        return [int(value) for value in values]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        ids: list[int] = self.rhs
        if connection.vendor != "postgresql" and not ids:
            raise EmptyResultSet
        sql, params = id_condition(lhs, ids, connection.vendor)
        return sql, (*lhs_params, *params)


def id_condition(column: str, ids: list[int], vendor: str) -> tuple[str, tuple[int | str, ...]]:
    """``column`` among ``ids`` as SQL and its parameters, as ``any_of`` writes it: for raw SQL too."""
    if vendor == "postgresql":
        return f"{column} = ANY(%s::bigint[])", (bigint_array(ids),)
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", tuple(ids)


def bigint_array(ids: Iterable[int]) -> str:
    """A PostgreSQL array literal of ints: only digits, minus signs and commas reach the SQL."""
    return "{" + ",".join(str(int(pk)) for pk in ids) + "}"


# Related fields keep lookups of their own (they do not inherit Field's): register on both.
Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)
