"""Every read of customers and their Site Details, scoped to what the user may see.

A user sees a customer when they hold the role permission *and* an object permission on that
customer (through their partner's group, or individually), or when their role may see every
partner's customers. Everything else — pages, admin, search — filters through ``customers_visible_to``
and fetches single customers through ``access_customer``, which answers 404 for the rest.
"""

import dataclasses
import enum
import functools
import itertools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connections, router
from django.db.models import (
    BooleanField,
    Count,
    Expression,
    F,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts import validation
from accounts.models import (
    Contact,
    Customer,
    CustomerGroupObjectPermission,
    CustomerUserObjectPermission,
    GrantTally,
    Line,
    NameToken,
    Partner,
    PaymentDetails,
    ProvisioningOrder,
    Site,
    User,
    name_index_digests,
)
from fusion_site.compiled_reads import CompiledRead, RowsRead, read_together
from fusion_site.crypto import blind_index
from fusion_site.fields import EncryptedTextField

VIEW_CUSTOMER = "accounts.view_customer"
VIEW_ALL_CUSTOMERS = "accounts.view_all_customers"


def customers_visible_to(user: User | AnonymousUser) -> QuerySet[Customer]:
    scope = _customer_scope(user)
    if scope is _Scope.NONE:
        return Customer.objects.none()
    if scope is _Scope.ALL:
        return Customer.objects.all()
    assert isinstance(user, User)  # GRANTED is a signed-in user's scope
    return _granted_customers(user.pk)


class _Scope(enum.Enum):
    NONE = "none"  # signed out, inactive, or without view_customer
    ALL = "all"  # view_all_customers: administrators and the DPO
    GRANTED = "granted"  # the customers the user holds view_customer on (HoldsViewGrant)


def _customer_scope(user: User | AnonymousUser) -> _Scope:
    if not user.is_authenticated or not user.is_active or not user.has_perm(VIEW_CUSTOMER):
        return _Scope.NONE
    return _Scope.ALL if user.has_perm(VIEW_ALL_CUSTOMERS) else _Scope.GRANTED


def _granted_customers(user_id: int) -> QuerySet[Customer]:
    return Customer.objects.filter(HoldsViewGrant(F("pk"), user_id=user_id))


class HoldsViewGrant(Expression):
    """True where the user holds ``view_customer`` on the customer ``column`` names, through one of their
    groups (a partner's staff) or in their own name (portal users, exceptions).

    The grants live in guardian's direct foreign-key tables. Asking them with correlated EXISTS lets the
    database check one customer, or one page, without listing every customer the user may see (which
    guardian's get_objects_for_user does with nested IN subqueries: ~10 ms against ~0.02 ms for one
    customer of a 9,000-customer partner, measured by bench/site_details.py). The permission is one id,
    found once per statement (an InitPlan), and the user's groups are read from the membership table
    alone: joined instead, through auth_permission, django_content_type and auth_group, the planner took
    the grants for one row and costed a partner's list high enough for PostgreSQL to JIT-compile it.

    Every scoped read on every page compiles this, so it is written as SQL once rather than built from
    querysets on each call: built from two Exists of filtered querysets it cost about 2 ms of CPU per
    statement to build and compile, about a tenth of a page (bench/load.py). The customer's column is an
    expression like any other, so it is relabelled when the scoped queryset is nested in another."""

    conditional = True

    def __init__(self, column: Any, *, user_id: int) -> None:
        super().__init__(output_field=BooleanField())
        self.column = column
        self.user_id = user_id

    def get_source_expressions(self) -> list[Any]:
        return [self.column]

    def set_source_expressions(self, exprs: Sequence[Any]) -> None:
        (self.column,) = exprs

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, tuple[Any, ...]]:
        column, column_params = compiler.compile(self.column)
        quote = connection.ops.quote_name
        permission = _PERMISSION_SQL.format(
            permissions=quote(Permission._meta.db_table), content_types=quote(ContentType._meta.db_table)
        )
        sql = _GRANT_SQL.format(
            column=column,
            permission=permission,
            memberships=quote(User.groups.through._meta.db_table),
            group_grants=quote(CustomerGroupObjectPermission._meta.db_table),
            user_grants=quote(CustomerUserObjectPermission._meta.db_table),
        )
        grant = _VIEW_CUSTOMER_GRANT
        return sql, (*column_params, *grant, self.user_id, *column_params, *grant, self.user_id)


# The permission's id, as nested lookups along the two unique indexes (content type by app and model, then
# permission by content type and codename): as a join of the two tables, PostgreSQL spent about 0.5 ms
# planning a single customer's access check against 0.35 ms (bench/load.py's database), on every page.
_PERMISSION_SQL = (
    "(SELECT p.id FROM {permissions} p WHERE p.codename = %s AND p.content_type_id ="
    " (SELECT ct.id FROM {content_types} ct WHERE ct.app_label = %s AND ct.model = %s))"
)
_VIEW_CUSTOMER_GRANT = ("view_customer", "accounts", "customer")
_GRANT_SQL = (
    "(EXISTS (SELECT 1 FROM {group_grants} g WHERE g.content_object_id = {column}"
    " AND g.permission_id = {permission}"
    " AND g.group_id IN (SELECT m.group_id FROM {memberships} m WHERE m.user_id = %s))"
    " OR EXISTS (SELECT 1 FROM {user_grants} u WHERE u.content_object_id = {column}"
    " AND u.permission_id = {permission} AND u.user_id = %s))"
)


def visible_customer_count(user: User | AnonymousUser) -> int:
    """How many customers ``customers_visible_to(user)`` holds."""
    scope = _customer_scope(user)
    if scope is _Scope.NONE:
        return 0
    if scope is _Scope.ALL:
        return Customer.objects.count()
    assert isinstance(user, User)  # GRANTED is a signed-in user's scope
    return _Grants(user).count()


_COUNTS = ("site_count", "line_count")
# The columns of each of ``ListedCustomer``'s fields but the total, as values_list() names them.
_LISTED_COLUMNS = (
    "pk",
    "name",
    "partner__name",
    "status",
    "contract_start",
    "contract_end",
    "billing_ceased_at",
    "processing_restricted_at",
    *_COUNTS,
)


class ListedCustomer(NamedTuple):
    """A customer as the staff list (``accounts.customer_list``) shows it, read as a tuple: making each
    row's customer and partner instances was about a fifth of the list's CPU (py-spy under
    bench/load.py), for values that are only printed. ``listed_total``: a search's matches in all."""

    pk: int
    name: str
    partner_name: str
    status: str
    contract_start: date
    contract_end: date | None
    billing_ceased_at: datetime | None
    processing_restricted_at: datetime | None
    site_count: int
    line_count: int
    listed_total: int | None = None

    @property
    def reference(self) -> str:
        return Customer.reference_of(self.pk)


class CustomerList:
    """The staff list of ``user`` for ``query``: its rows (``customer_list``, built once if at all), their
    total, and a page of them; for a partner's staff with no search, the total and the pages are read from
    the grant tables (``_Grants``), and the rows' queryset is not built."""

    def __init__(self, user: User | AnonymousUser, *, query: str = "") -> None:
        self.user = user
        self.query = query
        self._searched = bool(query.strip())
        granted = not self._searched and _customer_scope(user) is _Scope.GRANTED
        self._grants = _Grants(user) if granted and isinstance(user, User) else None

    @functools.cached_property
    def rows(self) -> QuerySet[Customer]:
        return customer_list(self.user, query=self.query)

    def count(self) -> int:
        return self._grants.count() if self._grants else self.rows.count()

    def page_and_count(self, *, offset: int, limit: int) -> tuple[list[ListedCustomer], int] | None:
        """``page(offset=, limit=)`` with ``count()``, where the page's own statement can tell it: a search
        counts its matches in a window over them instead of a second statement the ORM builds and compiles
        (about a sixth of a search's CPU, py-spy under bench/load.py); from the grants, the page and the
        total go in one round trip (``read_together``). None where the total is read on its own: past
        the last match, or with no search of every partner's customers (a window over every customer kept
        them all in memory to count them: 5.6 ms against 1.1 ms for the count and the page at 10,000)."""
        if self._grants is not None:
            read, values = self._granted_page_read(offset=offset, limit=limit)
            counted, values_counted = self._grants.count_read()
            page, ((total,),) = read_together((read, values), (counted, values_counted))
            return (_listed_customers(page), int(total)) if page or offset == 0 else None
        if not self._searched:
            return None
        compiled = _search_page_read(self.user, self.query, offset=offset, limit=limit)
        if compiled is not None:
            read, values = compiled
            rows = _listed_customers(read(*values))
        else:
            windowed = _listed_rows(self.rows).annotate(listed_total=Window(Count("pk")))
            rows = _listed_customers(windowed[offset : offset + limit])
        if rows:
            return rows, int(rows[0].listed_total or 0)
        return (rows, 0) if offset == 0 else None

    def page(self, *, offset: int, limit: int) -> list[ListedCustomer]:
        """``rows[offset:offset + limit]``, as ``ListedCustomer``s; read from the grants, through SQL
        compiled once per process for each number of groups."""
        if self._grants is None:
            return _listed_customers(_listed_rows(self.rows)[offset : offset + limit])
        read, values = self._granted_page_read(offset=offset, limit=limit)
        return _listed_customers(read(*values))

    def _granted_page_read(
        self, *, offset: int, limit: int
    ) -> tuple[CompiledRead[tuple[Any, ...]], tuple[Any, ...]]:
        assert self._grants is not None
        group_ids = self._grants.group_ids
        return _granted_page(len(group_ids)), (
            self._grants.user.pk,
            offset + limit,
            limit,
            offset,
            *group_ids,
        )


def _listed_customers(rows: Iterable[tuple[Any, ...]]) -> list[ListedCustomer]:
    return [ListedCustomer(*row) for row in rows]


def _search_page_read(
    user: User | AnonymousUser, query: str, *, offset: int, limit: int
) -> tuple[CompiledRead[tuple[Any, ...]], tuple[Any, ...]] | None:
    """A page of ``customer_list(user, query=query)`` as ``ListedCustomer`` tuples with the matches' total
    last (``listed_total``), as a compiled read and its values; None where there is nothing to compile (a
    user who sees no customer, or a search with no term to match).

    Building and compiling the search's queryset (scope, the union of the ways of matching, the counts)
    was about two fifths of a search page's CPU (py-spy on bench/load.py's data); the SQL only changes
    with the kind of search, the number of words and the ways of matching it can be normalised for, and
    the page's offset, so it is compiled once per process for each of those."""
    scope = _customer_scope(user)
    query = query.strip()
    if scope is _Scope.NONE or not query:
        return None
    pk = _searched_reference(query)
    terms: tuple[Any, ...]
    values: tuple[Any, ...]
    if pk is not None:
        terms, values = ("reference",), (pk,)
    else:
        digests = name_index_digests(query)
        index_filters = blind_index_filters(query, CUSTOMER_SEARCH_LOOKUPS)
        if not digests and not index_filters:
            return None
        lookups = tuple(lookup for index_filter in index_filters for lookup in index_filter)
        terms = (len(digests), lookups)
        values = (*digests, *(digest for index_filter in index_filters for digest in index_filter.values()))
    granted = scope is _Scope.GRANTED
    read = _search_page(granted, terms, offset, limit)
    return read, ((user.pk,) if granted else ()) + tuple(values)


@functools.lru_cache(maxsize=256)
def _search_page(
    granted: bool, terms: tuple[Any, ...], offset: int, limit: int
) -> CompiledRead[tuple[Any, ...]]:
    """The compiled read of ``_search_page_read``: its values are the user's id (for ``granted``), then the
    reference's id, or each word's digest and each way of matching's digest, in order."""
    reference = terms == ("reference",)
    matched = 1 if reference else terms[0] + len(terms[1])

    def build(*values: Any) -> QuerySet[Customer, tuple[Any, ...]]:
        scoped = _granted_customers(values[0]) if granted else Customer.objects.all()
        values = values[1:] if granted else values
        if reference:
            found = scoped.filter(pk=values[0])
        else:
            words, lookups = terms
            filters = [{lookup: digest} for lookup, digest in zip(lookups, values[words:], strict=True)]
            found = scoped.filter(pk__in=_matching_ids(list(values[:words]), filters))
        return _listed_rows(found).annotate(listed_total=Window(Count("pk")))[offset : offset + limit]

    return CompiledRead(build, arity=(1 if granted else 0) + matched)


@functools.lru_cache(maxsize=32)
def _granted_page(groups: int) -> CompiledRead[tuple[Any, ...]]:
    """A page of the staff list of a user in ``groups`` groups with no search, as ``ListedCustomer``
    tuples of ``customer_list``'s rows, its ids from the grant tables (``_Grants``). The ORM compiled it on
    every page, about a tenth of the page's CPU (py-spy under bench/load.py); its values are the user's
    id, each holder's first ``first`` ids, the page's limit and offset, and the group ids.

    The ids are those of the user's own grants and of the groups read for this request, the
    ``view_customer`` grants ``HoldsViewGrant`` tests: testing each row with it again doubled the
    statement's planning and took it from about 0.8 to 1.5 ms of PostgreSQL's time a page (EXPLAIN
    ANALYZE on bench/load.py's data)."""

    def build(
        user_id: int, first: int, limit: int, offset: int, *group_ids: int
    ) -> QuerySet[Customer, tuple[Any, ...]]:
        ids = _ids_page_sql(
            _grants_connection(), user_id, list(group_ids), first=first, limit=limit, offset=offset
        )
        return _listed_rows(Customer.objects.filter(pk__in=RawSQL(*ids)))  # noqa: S611 - fixed fragments

    return CompiledRead(build, arity=4 + groups)


class _Grants:
    """The customers a partner's staff member holds ``view_customer`` on, read from the grant tables
    alone, each of the user's groups and the user's own grants in customer id order along their unique
    index (holder, permission, customer).

    Each grant's customer is a foreign key, deleted with it, so the distinct customers the grants name
    are the visible ones. Counted or paged through ``HoldsViewGrant`` instead, the database tested every
    customer against a hash of all the partner's grants (bench/load.py, 9,000 of 10,000 customers: the
    total took 3.7 ms against 1.2 ms, page 1 3.1 ms against 1.0 ms, page 81 14.3 ms against 2.4 ms).

    On PostgreSQL the total is read from the grant tally (``GrantTally``) where at most one of the user's
    holders holds any grant, as a partner's staff member does (their partner's group; their role's group
    and their own name hold none): then no customer is counted twice, and the tally's figure is the
    total, however many customers the partner has. Otherwise the grants are counted, distinct."""

    def __init__(self, user: User) -> None:
        self.user = user
        self.connection = _grants_connection()

    def count(self) -> int:
        read, values = self.count_read()
        ((count,),) = read(*values)
        return int(count)

    def count_read(self) -> tuple[RowsRead, tuple[Any, ...]]:
        """The read of ``count()`` with its values, to send beside others."""
        _sources, params = _grant_sources(self.connection, self.user.pk, self.group_ids, first=None)
        if self.connection.vendor == "postgresql":
            holders = (*self.group_ids, self.user.pk, *_VIEW_CUSTOMER_GRANT)
            return _tallied_count(len(self.group_ids)), (*holders, *params)
        return _granted_count(len(self.group_ids)), tuple(params)

    @functools.cached_property
    def group_ids(self) -> list[int]:
        return [group.pk for group in _GROUPS_OF(self.user.pk)]


@functools.lru_cache(maxsize=32)
def _granted_count(groups: int) -> RowsRead:
    """How many customers a user in ``groups`` groups holds grants on (``_Grants.count``), written once per
    process for each number of groups; its values are each holder's id and the permission's names."""

    def sql(connection: Any) -> str:
        return _distinct_grants_sql(connection, groups)

    return RowsRead(sql, arity=(groups + 1) * (1 + len(_VIEW_CUSTOMER_GRANT)))


def _distinct_grants_sql(connection: Any, groups: int) -> str:
    sources, _params = _grant_sources(connection, 0, [0] * groups, first=None)
    return f"SELECT COUNT(DISTINCT granted.customer_id) FROM ({sources}) AS granted"  # noqa: S608 - fixed fragments


@functools.lru_cache(maxsize=32)
def _tallied_count(groups: int) -> RowsRead:
    """``_granted_count`` from the grant tally where the user's holders' grants cannot overlap (at most one
    holder has any), else as ``_granted_count`` (PostgreSQL runs only the branch it takes). Its values are
    the group ids, the user's id and the permission's names, then ``_granted_count``'s."""

    def sql(connection: Any) -> str:
        quote = connection.ops.quote_name
        permission = _PERMISSION_SQL.format(
            permissions=quote(Permission._meta.db_table), content_types=quote(ContentType._meta.db_table)
        )
        holders = [f"(t.holder = '{GrantTally.Holder.USER}' AND t.holder_id = %s)"]
        if groups:
            ids = ", ".join(["%s"] * groups)
            holders.insert(0, f"(t.holder = '{GrantTally.Holder.GROUP}' AND t.holder_id IN ({ids}))")
        return _TALLIED_COUNT_SQL.format(
            tally=quote(GrantTally._meta.db_table),
            holders=" OR ".join(holders),
            permission=permission,
            distinct=_distinct_grants_sql(connection, groups),
        )

    holders_and_permission = groups + 1 + len(_VIEW_CUSTOMER_GRANT)
    return RowsRead(sql, arity=holders_and_permission + (groups + 1) * (1 + len(_VIEW_CUSTOMER_GRANT)))


_TALLIED_COUNT_SQL = (
    "WITH held AS (SELECT t.grants FROM {tally} t WHERE ({holders}) AND t.permission_id = {permission})"
    " SELECT CASE WHEN (SELECT COUNT(*) FROM held WHERE held.grants > 0) <= 1"
    " THEN (SELECT COALESCE(SUM(held.grants), 0) FROM held) ELSE ({distinct}) END"
)


# The groups of a user, in id order: read on every page of the staff list, compiled once per process.
_GROUPS_OF = CompiledRead(lambda pk: Group.objects.filter(user=pk).only("id").order_by("id"))


def _grants_connection() -> Any:
    return connections[router.db_for_read(Customer)]


def _ids_page_sql(
    connection: Any, user_id: int, group_ids: list[int], *, first: int, limit: int, offset: int
) -> tuple[str, list[Any]]:
    """The ids of ``customers_visible_to(user).order_by("id")[offset:offset + limit]``, as a subquery, with
    ``first`` = offset + limit. Each holder gives at most its first ``first`` ids: the first
    ``offset + limit`` distinct ids of all of them are among those, since fewer ids than that come before
    any of them."""
    sources, params = _grant_sources(connection, user_id, group_ids, first=first)
    sql = (
        f"SELECT DISTINCT granted.customer_id FROM ({sources}) AS granted"  # noqa: S608 - fixed fragments
        " ORDER BY granted.customer_id LIMIT %s OFFSET %s"
    )
    return sql, [*params, limit, offset]


def _grant_sources(
    connection: Any, user_id: int, group_ids: list[int], *, first: int | None
) -> tuple[str, list[Any]]:
    """Each holder's (each group's, then the user's own) granted customers in id order (its first
    ``first``, if given), as UNION ALL."""
    quote = connection.ops.quote_name
    permission = _PERMISSION_SQL.format(
        permissions=quote(Permission._meta.db_table), content_types=quote(ContentType._meta.db_table)
    )
    limit = "" if first is None else " LIMIT %s"
    holders: list[tuple[type[Model], str, int]] = [
        (CustomerGroupObjectPermission, "group_id", group_id) for group_id in group_ids
    ]
    holders.append((CustomerUserObjectPermission, "user_id", user_id))
    sources: list[str] = []
    params: list[Any] = []
    for model, column, holder in holders:
        sources.append(
            _GRANTED_SOURCE_SQL.format(
                grants=quote(model._meta.db_table), holder=column, permission=permission, limit=limit
            )
        )
        params += [holder, *_VIEW_CUSTOMER_GRANT] + ([] if first is None else [first])
    return " UNION ALL ".join(sources), params


# One holder's granted customers in id order, read along the unique index (holder, permission, customer);
# wrapped in a subquery so that its ORDER BY and LIMIT are its own under UNION ALL.
_GRANTED_SOURCE_SQL = (
    "SELECT * FROM (SELECT t.content_object_id AS customer_id FROM {grants} t"
    " WHERE t.{holder} = %s AND t.permission_id = {permission}"
    " ORDER BY t.content_object_id{limit}) AS source"
)


def customer_ids_visible_to(user: User | AnonymousUser) -> QuerySet[Customer, Any]:
    """The visible customers as a subquery, for filtering their children."""
    return customers_visible_to(user).values("pk")


def _path_to(model: type[Model], target: type[Model], *, depth: int = 4) -> str | None:
    """The shortest chain of forward foreign keys from ``model`` to ``target`` ("line__customer"). Links to
    users are not followed: they name who acted (``created_by``), not whose the row is."""
    paths: list[tuple[type[Model], str]] = [(model, "")]
    for _ in range(depth):
        next_paths = []
        for current, prefix in paths:
            for link in current._meta.concrete_fields:
                related = link.related_model
                if not (link.many_to_one or link.one_to_one) or related is None or related is User:
                    continue
                path = f"{prefix}__{link.name}" if prefix else link.name
                if related is target:
                    return path
                next_paths.append((related, path))
        paths = next_paths
    return None


def owner_path(model: type[Model]) -> tuple[type[Model], str] | None:
    """Whose a row of ``model`` is: (Customer, path) for rows of a customer, (Partner, path) for rows of a
    partner, None for rows of nobody (privacy notices, groups). Found from the foreign keys, so a new model
    is scoped by what it links to without anyone listing it."""
    if model is Customer or model is Partner:
        return model, "pk"
    for owner in (Customer, Partner):
        path = _path_to(model, owner)
        if path is not None:
            return owner, path
    return None


def is_partner_owned(model: type[Model]) -> bool:
    return model is User or owner_path(model) is not None


def scope_of(user: User | AnonymousUser, model: type[Model]) -> Q | None:
    """The filter that leaves the rows of ``model`` the user may see, or None when nobody owns its rows.

    Rows of a customer follow ``customers_visible_to``; rows of a partner are the user's partner's, or
    everyone's for roles that see every partner. A row whose link to its partner is empty is the
    provider's, shared with every partner (a tariff with no partner is the standard one)."""
    if model is User:
        if _sees_every_partner(user):
            return Q()
        partner_id = getattr(user, "partner_id", None)
        own_staff = Q(partner_id=partner_id) if partner_id else Q(pk__in=[])
        return own_staff | Q(customer__in=customer_ids_visible_to(user))
    owner = owner_path(model)
    if owner is None:
        return None
    owner_model, path = owner
    if _sees_every_partner(user) and (owner_model is Partner or user.has_perm(VIEW_CUSTOMER)):
        return Q()  # as the pages do: every row, those of erased customers (no customer link) too
    if owner_model is Customer:
        return Q(**{f"{path}__in": customer_ids_visible_to(user)})
    partner_id = getattr(user, "partner_id", None)
    scope = Q(**{path: partner_id}) if partner_id else Q(pk__in=[])
    if path != "pk" and _last_link_nullable(model, path):
        scope |= Q(**{f"{path}__isnull": True})
    return scope


def rows_visible_to(user: User | AnonymousUser, model: type[Model]) -> QuerySet[Any]:
    """Every row of ``model`` the user may see (all of them when nobody owns its rows)."""
    scope = scope_of(user, model)
    rows = model._default_manager.all()
    return rows if scope is None else rows.filter(scope)


def _sees_every_partner(user: User | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.has_perm(VIEW_ALL_CUSTOMERS))


def _last_link_nullable(model: type[Model], path: str) -> bool:
    current: Any = model
    link: Any = None
    for name in path.split("__"):
        link = current._meta.get_field(name)
        current = link.related_model
    return bool(link is not None and link.null)


# The reads behind access_customer, one per scope that can see anything, compiled once per process
# (fusion_site/compiled_reads.py): every Site Details page opens with one.
_ANY_CUSTOMER = CompiledRead(lambda pk: Customer.objects.filter(pk=pk).select_related("partner"))
_GRANTED_CUSTOMER = CompiledRead(
    lambda user_id, pk: _granted_customers(user_id).filter(pk=pk).select_related("partner")
)


def _access_read(
    user: User | AnonymousUser, reference: str
) -> tuple[CompiledRead[Customer], tuple[Any, ...]]:
    """The read of ``access_customer`` for this user and reference, with its values; Http404 where no
    read could find the customer (no such reference, or a user who sees no customer)."""
    pk = Customer.pk_from_reference(reference)
    scope = _customer_scope(user)
    if pk is not None and scope is _Scope.ALL:
        return _ANY_CUSTOMER, (pk,)
    if pk is not None and scope is _Scope.GRANTED:
        return _GRANTED_CUSTOMER, (user.pk, pk)
    raise Http404("No such customer.")


def access_customer(user: User | AnonymousUser, reference: str) -> Customer:
    """The customer with this public reference, if the user may see it; otherwise 404. Scoped as
    ``customers_visible_to`` scopes, through the same conditions."""
    read, values = _access_read(user, reference)
    found = read(*values)
    if not found:
        raise Http404("No such customer.")
    return found[0]


def is_outside_users_partner(user: User, customer: Customer) -> bool:
    """An administrator or DPO looking at a customer of a partner they do not work for."""
    return not user.is_portal_user and user.partner_id != customer.partner_id


def search_customers(queryset: QuerySet[Customer], query: str) -> QuerySet[Customer]:
    """Match a reference; or every word of the customer's name or of one contact's name; or exactly a
    phone number, email or postcode; each through its blind index (names are encrypted)."""
    query = query.strip()
    if not query:
        return queryset
    pk = _searched_reference(query)
    if pk is not None:
        return queryset.filter(pk=pk)
    # Each way of matching is its own indexed read of customer ids, and their union is one subquery the
    # database starts from: the few matching customers, then each one's grants. OR-ed across joins to
    # contacts and lines, the database joined every visible customer's contacts and lines to test them;
    # OR-ed as separate subqueries, it could not tell how few they were and read the grants of every
    # visible customer for each search (bench/load.py: 3.6 ms against 0.8 ms at 10,000 customers).
    return queryset.filter(
        pk__in=_matching_ids(name_index_digests(query), blind_index_filters(query, CUSTOMER_SEARCH_LOOKUPS))
    )


def _searched_reference(query: str) -> int | None:
    """The customer id of a search typed as a reference ("C-000123", any case), or None."""
    return Customer.pk_from_reference(query) if query.upper().startswith(Customer.REFERENCE_PREFIX) else None


def _matching_ids(digests: list[str], index_filters: list[dict[str, str]]) -> QuerySet[Any, Any]:
    """The ids of the customers whose name or a contact's holds every word of ``digests``, or matching one
    of ``index_filters`` exactly (``search_customers``)."""
    names = _names_holding(digests).values("customer_id")
    indexed = [
        Customer.objects.filter(**index_filter).order_by().values("pk") for index_filter in index_filters
    ]
    return names.union(*indexed)


def names_holding_words(query: str) -> QuerySet[NameToken, Any]:
    """The names (a customer's own, ``contact_id`` empty, or a contact's) holding every word of ``query``,
    as rows of ``customer_id`` and ``contact_id``: one indexed exact match per word, grouped by name.
    Whole words only: "Acme" finds "Acme Plumbing Ltd", "Acm" does not. Not scoped: filter a scoped
    queryset by these ids."""
    return _names_holding(name_index_digests(query))


def _names_holding(digests: list[str]) -> QuerySet[NameToken, Any]:
    if not digests:
        return NameToken.objects.none().values("customer_id", "contact_id")
    return (
        NameToken.objects.filter(name_index__in=digests)
        .values("customer_id", "contact_id")
        .annotate(words=Count("name_index", distinct=True))
        .filter(words=len(digests))
        .order_by()
    )


_NORMALISERS = {
    "email": validation.normalise_email,
    "phone": validation.normalise_phone,
    "postcode": validation.normalise_postcode,
}
CUSTOMER_SEARCH_LOOKUPS = {
    "email": ["contacts__email_index"],
    "phone": ["contacts__phone_index", "lines__cli_index"],
    "postcode": ["sites__postcode_index"],
}


def blind_index_filters(query: str, lookups: dict[str, list[str]]) -> list[dict[str, str]]:
    """Exact-match filters for a search term on every blind index it can be normalised for: the term
    '07700 100123' becomes the HMAC of '+447700100123' on each phone lookup, and so on."""
    filters: list[dict[str, str]] = []
    for purpose, index_lookups in lookups.items():
        try:
            digest = blind_index(purpose, _NORMALISERS[purpose](query))
        except ValidationError:
            continue
        filters += [{lookup: digest} for lookup in index_lookups]
    return filters


def customer_list(user: User | AnonymousUser, *, query: str = "") -> QuerySet[Customer]:
    """The staff home list: visible customers matching the search, with their counts in the same query."""
    return _listed(search_customers(customers_visible_to(user), query))


def _listed(customers: QuerySet[Customer]) -> QuerySet[Customer]:
    # Searching adds no join (each match is a subquery of ids), so the counts annotate the scoped rows
    # themselves: no second pass over the customers by id.
    # Only the columns the list shows: every row's other timestamps and its partner's whole row were
    # parsed into objects nobody read, about a tenth of the page's CPU.
    return (
        customers.select_related("partner")
        .only(*(column for column in _LISTED_COLUMNS if column not in _COUNTS))
        .annotate(site_count=_count_of(Site), line_count=_count_of(Line))
        .order_by("id")
    )


def _listed_rows(customers: QuerySet[Customer]) -> QuerySet[Customer, tuple[Any, ...]]:
    """``_listed(customers)`` as the tuples ``ListedCustomer`` is made of."""
    return _listed(customers).values_list(*_LISTED_COLUMNS)


def _count_of(model: type[Site] | type[Line]) -> Coalesce:
    """A correlated count of the customer's rows in ``model``; no join fan-out across the page."""
    counts = model.objects.filter(customer=OuterRef("pk")).order_by().values("customer")
    return Coalesce(Subquery(counts.annotate(n=Count("id")).values("n")), 0)


@dataclass(frozen=True)
class SiteDetailsRows:
    """A customer's rows as its Site Details page (and its access report) show them."""

    sites: list[Site]
    contacts: list[Contact]
    lines: list[Line]
    orders: list[ProvisioningOrder]
    payment: PaymentDetails | None


# Compiled once per process (fusion_site/compiled_reads.py): each page reads the same five shapes.
_SITES_OF = CompiledRead(lambda pk: Site.objects.filter(customer_id=pk).order_by("id"))
_CONTACTS_OF = CompiledRead(lambda pk: Contact.objects.filter(customer_id=pk).order_by("id"))
_LINES_OF = CompiledRead(lambda pk: Line.objects.filter(customer_id=pk).order_by("site_id", "id"))
_ORDERS_OF = CompiledRead(
    lambda pk: ProvisioningOrder.objects.filter(customer_id=pk).order_by("-created_at", "-id")
)
_PAYMENT_OF = CompiledRead(lambda pk: PaymentDetails.objects.filter(customer_id=pk).order_by("id")[:1])


# Who requested the customer's orders (read with them: each order names its requester without a query).
_REQUESTERS_OF = CompiledRead(
    lambda pk: User._base_manager.filter(
        pk__in=ProvisioningOrder.objects.filter(customer_id=pk).values("requested_by_id")
    ).order_by("id")
)
_SITE_DETAILS_READS: tuple[CompiledRead[Any], ...] = (
    _SITES_OF,
    _CONTACTS_OF,
    _LINES_OF,
    _ORDERS_OF,
    _PAYMENT_OF,
    _REQUESTERS_OF,
)


def customer_site_details(customer: Customer) -> SiteDetailsRows:
    """Everything the Site Details page shows of the customer's rows, in a fixed number of queries
    whatever their number: one per kind of row, and one for the users who requested its orders, sent
    together (``fusion_site.compiled_reads.read_together``). Each row knows its customer without a query.
    Lines name their site from the sites read here, not a join that would decrypt every address again
    for each line."""
    return _site_details_rows(
        customer, read_together(*[(read, (customer.pk,)) for read in _SITE_DETAILS_READS])
    )


def _site_details_rows(customer: Customer, results: list[list[Any]]) -> SiteDetailsRows:
    sites, contacts, lines, orders, payment, requesters = results
    for row in itertools.chain(sites, contacts, lines, orders, payment):
        type(row).customer.field.set_cached_value(row, customer)
    by_id = {user.pk: user for user in requesters}
    for order in orders:
        if order.requested_by_id is not None:
            order.requested_by = by_id[order.requested_by_id]
    return SiteDetailsRows(
        sites=sites, contacts=contacts, lines=lines, orders=orders, payment=payment[0] if payment else None
    )


def site_of(customer: Customer, site_id: int) -> Site:
    site = Site.objects.filter(customer=customer, pk=site_id).first()
    if site is None:
        raise Http404("No such site.")
    return site


def contact_of(customer: Customer, contact_id: int) -> Contact:
    contact = Contact.objects.filter(customer=customer, pk=contact_id).first()
    if contact is None:
        raise Http404("No such contact.")
    return contact


def line_of(customer: Customer, line_id: int) -> Line:
    line = Line.objects.filter(customer=customer, pk=line_id).first()
    if line is None:
        raise Http404("No such line.")
    return line


@dataclass(frozen=True)
class FieldChange:
    """One field a history entry changed, with its values before and after (as stored: clear text).
    ``name`` is ``<row>.<field>``, as the Site Details page and the access log name fields."""

    name: str
    before: Any
    after: Any
    encrypted: bool = False


@dataclass(frozen=True)
class TimelineEntry:
    at: Any
    user: User | None
    what: str
    change: str
    changed_fields: list[str] = field(default_factory=list)
    reason: str = ""
    changes: list[FieldChange] = field(default_factory=list)


_CHANGE_WORDS = {"+": "created", "~": "changed", "-": "deleted"}
_HISTORY_SKIPPED_FIELDS = {
    "history_id",
    "history_date",
    "history_change_reason",
    "history_type",
    "history_user",
    "history_user_id",
    "updated_at",
    "created_at",
    "id",
}


# The historical models, looked up once: ``Model.history`` builds a new manager class on every access
# (simple-history's descriptor), about 0.3 ms each, six times a page.
_HISTORY_MODELS: dict[type[Model], Any] = {
    model: model.history.model for model in (Customer, Site, Contact, Line, PaymentDetails, ProvisioningOrder)
}


# Each tracked model's history: its label on the timeline, its row's name in field names, and the column
# of the historical rows naming the customer.
_TIMELINE_SOURCES: tuple[tuple[str, str, type[Model], str], ...] = (
    ("Customer", "customer", Customer, "id"),
    ("Site", "site", Site, "customer_id"),
    ("Contact", "contact", Contact, "customer_id"),
    ("Line", "line", Line, "customer_id"),
    ("Payment details", "payment", PaymentDetails, "customer_id"),
    ("Provisioning order", "order", ProvisioningOrder, "customer_id"),
)


def _newest(historical: type[Model], column: str, pk: Any, limit: int) -> QuerySet[Any, Any]:
    return historical._default_manager.filter(**{column: pk}).order_by("-history_date", "-history_id")[:limit]


@functools.lru_cache(maxsize=64)
def _newest_history(historical: type[Model], column: str, limit: int) -> CompiledRead[Any]:
    """One customer's newest ``limit`` rows of a history, compiled by the ORM once per process, not six
    times a Site Details page (fusion_site/compiled_reads.py). Encrypted values stay as stored: the
    timeline decrypts only those it compares (``_timeline``); most rows record a creation, whose values
    were decrypted and never read, about 25 of a page's 42 decryptions (bench/load.py)."""
    return CompiledRead(lambda pk: _newest(historical, column, pk, limit), keep_ciphertext=True)


@functools.lru_cache(maxsize=64)
def _history_actors(limit: int) -> CompiledRead[User]:
    """The users who made any of the newest ``limit`` changes of each history: a superset of the actors of
    the timeline's newest ``limit`` entries, read beside the histories rather than after them."""
    return CompiledRead(
        lambda pk: User.objects.filter(
            functools.reduce(
                operator.or_,
                (
                    Q(pk__in=_newest(_HISTORY_MODELS[model], column, pk, limit).values("history_user_id"))
                    for _label, _row_name, model, column in _TIMELINE_SOURCES
                ),
            )
        ).order_by("id")
    )


def _timeline_reads(limit: int) -> list[CompiledRead[Any]]:
    return [
        *(
            _newest_history(_HISTORY_MODELS[model], column, limit)
            for _label, _row, model, column in _TIMELINE_SOURCES
        ),
        _history_actors(limit),
    ]


class _ClearValues:
    """The values of history records in clear: each encrypted one decrypted when first compared, at most
    once (the records are read with their ciphertext, ``_newest_history``)."""

    def __init__(self, encrypted: dict[str, Any]) -> None:
        self.encrypted = encrypted
        self.clear: dict[tuple[Any, str], Any] = {}

    def __call__(self, record: Any, attname: str) -> Any:
        field = self.encrypted.get(attname)
        if field is None:
            return getattr(record, attname)
        key = (record.pk, attname)
        if key not in self.clear:
            self.clear[key] = field.from_db_value(getattr(record, attname), None, None)
        return self.clear[key]


@functools.cache
def _history_fields(historical: type[Model]) -> tuple[dict[str, EncryptedTextField], list[str]]:
    """A history model's encrypted fields by attribute name, and the attributes a change is looked for
    in (not the history's own columns, nor blind indexes)."""
    encrypted = {f.attname: f for f in historical._meta.concrete_fields if isinstance(f, EncryptedTextField)}
    compared = [
        f.attname
        for f in historical._meta.concrete_fields
        if f.attname not in _HISTORY_SKIPPED_FIELDS and not f.attname.endswith("_index")
    ]
    return encrypted, compared


def _timeline(results: list[list[Any]], limit: int) -> list[TimelineEntry]:
    """The entries from each history's newest rows (in ``_TIMELINE_SOURCES`` order) and the actors."""
    *histories, actor_rows = results
    entries: list[tuple[TimelineEntry, int | None]] = []  # each with its actor's id
    for (label, row_name, model, _column), records in zip(_TIMELINE_SOURCES, histories, strict=True):
        encrypted, compared = _history_fields(_HISTORY_MODELS[model])
        value = _ClearValues(encrypted)

        by_object = itertools.groupby(
            sorted(records, key=lambda r: (r.id, r.history_date)), key=lambda r: r.id
        )
        for _object_id, versions in by_object:
            previous = None
            for record in versions:
                changed: list[str] = []
                if previous is not None and record.history_type == "~":
                    changed = [name for name in compared if value(record, name) != value(previous, name)]
                changes = [
                    FieldChange(
                        name=f"{row_name}.{attname}",
                        before=value(previous, attname),
                        after=value(record, attname),
                        encrypted=attname in encrypted,
                    )
                    for attname in changed
                ]
                entry = TimelineEntry(
                    at=record.history_date,
                    user=None,
                    what=f"{label} #{record.id}" if label != "Customer" else "Account",
                    change=_CHANGE_WORDS.get(record.history_type, record.history_type),
                    changed_fields=changed,
                    reason=record.history_change_reason or "",
                    changes=changes,
                )
                entries.append((entry, record.history_user_id))
                previous = record
    entries.sort(key=lambda pair: pair[0].at, reverse=True)
    actors = {user.pk: user for user in actor_rows}
    return [
        dataclasses.replace(entry, user=actors.get(actor) if actor is not None else None)
        for entry, actor in entries[:limit]
    ]


def access_site_details(
    user: User | AnonymousUser, reference: str, *, limit: int = 50
) -> tuple[Customer, SiteDetailsRows, list[TimelineEntry]]:
    """``access_customer`` and ``site_details_page_reads`` in one round trip: the access check goes first
    among the page's reads, and a customer it does not find is a 404 whose other reads (of that id's
    rows) are dropped unread: never made instances or decrypted (``gated``). Apart, the check was a round
    trip of its own on every Site Details page."""
    access, values = _access_read(user, reference)
    pk = values[-1]
    page_reads: list[CompiledRead[Any]] = [*_SITE_DETAILS_READS, *_timeline_reads(limit)]
    found, *results = read_together((access, values), *[(read, (pk,)) for read in page_reads], gated=True)
    if not found:
        raise Http404("No such customer.")
    customer = found[0]
    split = len(_SITE_DETAILS_READS)
    return customer, _site_details_rows(customer, results[:split]), _timeline(results[split:], limit)


def site_details_page_reads(
    customer: Customer, *, limit: int = 50
) -> tuple[SiteDetailsRows, list[TimelineEntry]]:
    """``customer_site_details`` and the customer's change history, their reads sent together: one round
    trip to PostgreSQL for the page's rows and change history, not thirteen.

    The history is of the customer and its Site Details, newest first: each change with the fields it
    changed and their values before and after, in clear. Whoever shows them masks them
    (``accounts.site_details.timeline_rows``): this read does not know who is looking. One read per
    tracked model, each bounded by ``limit``, and one for the users who acted, so the page stays constant
    in queries whatever the history's length."""
    reads: list[CompiledRead[Any]] = [*_SITE_DETAILS_READS, *_timeline_reads(limit)]
    results = read_together(*[(read, (customer.pk,)) for read in reads])
    split = len(_SITE_DETAILS_READS)
    return _site_details_rows(customer, results[:split]), _timeline(results[split:], limit)
