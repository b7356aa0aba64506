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
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", (*lhs_params, "{" + ",".join(map(str, ids)) + "}")
        if not ids:
            raise EmptyResultSet
        return f"{lhs} IN ({', '.join(['%s'] * len(ids))})", (*lhs_params, *ids)


# Related fields keep lookups of their own (they do not inherit Field's): register on both.
Field.register_lookup(AnyOf)
ForeignObject.register_lookup(AnyOf)
