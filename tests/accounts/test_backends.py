"""``accounts.backends.RolePermissionsBackend`` answers as Django's ModelBackend does, in one statement."""

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.backends import RolePermissionsBackend
from accounts.models import Role, User

permission_picks = st.lists(st.integers(min_value=0, max_value=10_000), max_size=6)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    own=permission_picks,
    groups=st.lists(permission_picks, max_size=3),
    member_of=st.lists(st.booleans(), min_size=3, max_size=3),
    roles=st.lists(st.sampled_from(list(Role)), max_size=2, unique=True),
    active=st.booleans(),
)
def test_the_same_permissions_as_model_backend(make_user, own, groups, member_of, roles, active):
    permissions = list(Permission.objects.order_by("pk"))
    user = make_user(Role.BILLING_AGENT)
    User.objects.filter(pk=user.pk).update(is_active=active)
    user.user_permissions.set([permissions[i % len(permissions)] for i in own])
    for index, picks in enumerate(groups):
        group = Group.objects.create(name=f"extra-{user.pk}-{index}")
        group.permissions.set([permissions[i % len(permissions)] for i in picks])
        if member_of[index]:
            user.groups.add(group)
    user.groups.add(*Group.objects.filter(name__in=roles))

    ours = RolePermissionsBackend().get_all_permissions(User.objects.get(pk=user.pk))

    assert ours == ModelBackend().get_all_permissions(User.objects.get(pk=user.pk))
    if not active:
        assert ours == set()
    signed_in = RolePermissionsBackend().get_user(user.pk)
    assert (signed_in is not None) is active
    if signed_in is not None:  # the session's user comes with its permissions: no statement to ask them
        with CaptureQueriesContext(connection) as asked:
            assert RolePermissionsBackend().get_all_permissions(signed_in) == ours
        assert len(asked) == 0


def test_the_session_user_and_its_permissions_are_one_round_trip_on_postgresql(make_user):
    agent = make_user(Role.BILLING_AGENT)

    with CaptureQueriesContext(connection) as queries:
        signed_in = RolePermissionsBackend().get_user(str(agent.pk))

    assert signed_in == agent
    assert len(queries) == (1 if connection.vendor == "postgresql" else 2)
    assert signed_in.has_perm("accounts.view_customer")


def test_a_superuser_signed_in_still_holds_every_permission(make_user):
    user = make_user(Role.SUPPORT_AGENT)
    User.objects.filter(pk=user.pk).update(is_superuser=True)

    signed_in = RolePermissionsBackend().get_user(user.pk)

    assert signed_in is not None
    held = RolePermissionsBackend().get_all_permissions(signed_in)
    assert held == {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()}


def test_one_statement_for_a_user_and_none_once_known(make_user):
    agent = User.objects.get(pk=make_user(Role.BILLING_AGENT).pk)
    backend = RolePermissionsBackend()

    with CaptureQueriesContext(connection) as first:
        assert "accounts.view_customer" in backend.get_all_permissions(agent)
    with CaptureQueriesContext(connection) as again:
        assert backend.has_perm(agent, "accounts.view_customer")
    assert len(first) == 1
    assert len(again) == 0


@pytest.mark.parametrize("role", [Role.SUPPORT_AGENT, Role.CUSTOMER])
def test_a_role_without_a_permission_does_not_get_it(make_user, role):
    user = User.objects.get(pk=make_user(role).pk)

    assert not user.has_perm("accounts.view_all_customers")
    assert not user.has_perm("auth.change_permission")


def test_a_superuser_holds_every_permission(make_user):
    user = make_user(Role.BILLING_AGENT)
    User.objects.filter(pk=user.pk).update(is_superuser=True)

    held = RolePermissionsBackend().get_all_permissions(User.objects.get(pk=user.pk))

    assert held == {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()}
