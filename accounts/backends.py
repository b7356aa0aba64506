"""The authentication backend for passwords and role permissions."""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from accounts.models import MAX_ID, User
from fusion_site.compiled_reads import CompiledRead, Read, RowsRead, read_together

# The signed-in user, read on every page; compiled once per process (fusion_site/compiled_reads.py).
_USER_BY_ID = CompiledRead(lambda pk: User._default_manager.filter(pk=pk))

# A read asked for with the session's user (``reads_with_user``): the read, its values, and where its rows go.
_WITH_USER: ContextVar[tuple[Read, tuple[Any, ...], list[list[Any]]] | None] = ContextVar(
    "read_with_the_user", default=None
)


@contextlib.contextmanager
def reads_with_user(read: Read, values: tuple[Any, ...]) -> Iterator[list[list[Any]]]:
    """Within the block, ``RolePermissionsBackend.get_user`` sends ``read(*values)`` in the same round trip
    as the user it reads; the list yielded then holds its rows (one item), and stays empty where no user
    was read (none in the session, or loaded before the block)."""
    found: list[list[Any]] = []
    token = _WITH_USER.set((read, values, found))
    try:
        yield found
    finally:
        _WITH_USER.reset(token)


class RolePermissionsBackend(ModelBackend):
    """Django's ModelBackend (passwords, active users, permissions of the user and of their groups), with a
    user's permissions read in one statement instead of two.

    Every page asks ``has_perm`` of a user loaded afresh for the request, so ModelBackend read the user's
    own permissions and then their groups' on every page: two statements the ORM built and compiled each
    time, about 2.5 ms of CPU a page under production settings; this one statement takes about 0.4 ms.
    It reads the same tables, with the same answer (tests/accounts/test_backends.py checks it against
    ModelBackend). Superusers get every permission, as from ModelBackend."""

    def get_user(self, user_id: Any) -> User | None:
        """The session's user, as ModelBackend loads it (active users only), through SQL compiled once
        per process: every page asks for it before anything else. Its permissions come in the same
        round trip (``read_together``): every signed-in page asks for them too (the menu), in a round
        trip of their own before; so does a read asked for with it (``reads_with_user``: the session's
        second-factor device)."""
        if isinstance(user_id, str) and user_id.isascii() and user_id.isdecimal():
            user_id = int(user_id)
        if not isinstance(user_id, int) or isinstance(user_id, bool) or not 0 < user_id <= MAX_ID:
            return None
        asked = _WITH_USER.get()
        reads: list[tuple[Read, tuple[Any, ...]]] = [
            (_USER_BY_ID, (user_id,)),
            (_PERMISSIONS_OF, (user_id, user_id)),
        ]
        if asked is not None:
            reads.append((asked[0], asked[1]))
        found, permissions, *also = read_together(*reads)
        if asked is not None:
            asked[2][:] = also  # the asked read's rows
        if not found or not self.user_can_authenticate(found[0]):
            return None
        user: User = found[0]
        if not user.is_superuser:  # a superuser holds every permission, read as ModelBackend reads them
            user._perm_cache = _permission_names(permissions)  # type: ignore[attr-defined]
        return user

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if user_obj.is_superuser:
            return super().get_all_permissions(user_obj, obj)
        if not hasattr(user_obj, "_perm_cache"):
            user_obj._perm_cache = _permission_names(_PERMISSIONS_OF(user_obj.pk, user_obj.pk))
        permissions: set[str] = user_obj._perm_cache
        return permissions


def _permission_names(rows: list[tuple[Any, ...]]) -> set[str]:
    return {f"{app_label}.{codename}" for app_label, codename in rows}


def _permissions_sql(quote: Any) -> str:
    """The app label and codename of every permission granted to the user (the first parameter) directly
    or to one of their groups (the second, the same user)."""
    own = User.user_permissions.through._meta
    membership = User.groups.through._meta
    granted = Group.permissions.through._meta
    return _PERMISSIONS_SQL.format(
        permissions=quote(Permission._meta.db_table),
        content_types=quote(ContentType._meta.db_table),
        own=quote(own.db_table),
        own_user=quote(own.get_field("user").column),
        own_permission=quote(own.get_field("permission").column),
        membership=quote(membership.db_table),
        membership_user=quote(membership.get_field("user").column),
        membership_group=quote(membership.get_field("group").column),
        granted=quote(granted.db_table),
        granted_group=quote(granted.get_field("group").column),
        granted_permission=quote(granted.get_field("permission").column),
    )


_PERMISSIONS_SQL = (
    "SELECT ct.app_label, p.codename FROM {permissions} p"
    " INNER JOIN {content_types} ct ON ct.id = p.content_type_id"
    " WHERE p.id IN (SELECT o.{own_permission} FROM {own} o WHERE o.{own_user} = %s)"
    " OR p.id IN (SELECT g.{granted_permission} FROM {granted} g"
    " INNER JOIN {membership} m ON m.{membership_group} = g.{granted_group} WHERE m.{membership_user} = %s)"
)


# The user's permissions (the user's id twice), read with the user on every page (``get_user``).
_PERMISSIONS_OF = RowsRead(lambda connection: _permissions_sql(connection.ops.quote_name), arity=2)
