"""The grant tally: PostgreSQL's triggers keep, for every group and user, how many customers they hold each
permission on, whatever changes the grants (one grant or many at once, revoked, a customer erased with
its grants, a group deleted, a grant moved to another holder or permission, the table truncated); and
the staff list's total reads it only where it is the total.

The oracle counts the grant tables themselves. The tally is kept only on PostgreSQL (migration 0015)."""

from collections import Counter

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, connection, transaction
from guardian.shortcuts import assign_perm, remove_perm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import (
    Customer,
    CustomerGroupObjectPermission,
    CustomerUserObjectPermission,
    GrantTally,
    Role,
)
from accounts.selectors import visible_customer_count
from accounts.services import CUSTOMER_VISIBILITY_PERMISSION
from tests.factories import CustomerFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: the grant tally is kept by its triggers"
)

PERMISSIONS = ["accounts.view_customer", "accounts.change_customer"]


def counted_grants() -> Counter[tuple[str, int, int]]:
    """What the tally must say: the grants per holder and permission, counted from the grant tables."""
    counted: Counter[tuple[str, int, int]] = Counter()
    for group_id, permission_id in CustomerGroupObjectPermission.objects.values_list(
        "group_id", "permission_id"
    ):
        counted[(GrantTally.Holder.GROUP, group_id, permission_id)] += 1
    for user_id, permission_id in CustomerUserObjectPermission.objects.values_list(
        "user_id", "permission_id"
    ):
        counted[(GrantTally.Holder.USER, user_id, permission_id)] += 1
    return counted


def tally() -> Counter[tuple[str, int, int]]:
    rows = GrantTally.objects.values_list("holder", "holder_id", "permission_id", "grants")
    return Counter(
        {(holder, holder_id, permission): grants for holder, holder_id, permission, grants in rows}
    )


# Each way the grants change, as the product or a person at the database would change them.
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.integers(0, 2), st.integers(0, 4), st.sampled_from(PERMISSIONS)),
        st.tuples(
            st.just("grant to user"), st.integers(0, 1), st.integers(0, 4), st.sampled_from(PERMISSIONS)
        ),
        st.tuples(
            st.just("grant many"), st.integers(0, 2), st.sets(st.integers(0, 4)), st.sampled_from(PERMISSIONS)
        ),
        st.tuples(st.just("revoke"), st.integers(0, 2), st.integers(0, 4), st.sampled_from(PERMISSIONS)),
        st.tuples(
            st.just("revoke from user"), st.integers(0, 1), st.integers(0, 4), st.sampled_from(PERMISSIONS)
        ),
        st.tuples(st.just("delete customer"), st.integers(0, 4)),
        st.tuples(st.just("delete group"), st.integers(0, 2)),
        st.tuples(st.just("move grants"), st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("change permission"), st.sampled_from(PERMISSIONS)),
        st.tuples(st.just("truncate"), st.sampled_from(["group", "user"])),
    ),
    max_size=8,
)


@pytest.mark.django_db
def test_the_tally_counts_the_grants_however_they_change(make_user, partner):
    users = [make_user(Role.BILLING_AGENT), make_user(Role.BILLING_AGENT)]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(operations=OPERATIONS)
    def check(operations):
        with transaction.atomic():  # each example starts from the same database
            run(operations)
            kept = tally()
            assert +kept == counted_grants()  # every positive figure is a count of grants
            assert all(grants >= 0 for grants in kept.values())  # and none is below zero
            transaction.set_rollback(True)

    def run(operations):
        customers = [CustomerFactory(partner=partner) for _ in range(5)]
        groups = [Group.objects.create(name=f"Tally {n}") for n in range(3)]
        for operation, *arguments in operations:
            try:
                with transaction.atomic():  # a statement that fails must leave the tally as it was
                    apply(operation, arguments, customers, groups)
            except IntegrityError:
                pass  # a grant moved onto one its new holder or permission already has

    def apply(operation, arguments, customers, groups):
        match operation, arguments:
            case "grant", [group, customer, permission]:
                assign_perm(permission, groups[group], customers[customer])
            case "grant to user", [user, customer, permission]:
                assign_perm(permission, users[user], customers[customer])
            case "grant many", [group, chosen, permission]:  # guardian's bulk_create: one statement
                picked = Customer.objects.filter(pk__in=[customers[n].pk for n in chosen])
                assign_perm(permission, groups[group], picked)
            case "revoke", [group, customer, permission]:
                remove_perm(permission, groups[group], customers[customer])
            case "revoke from user", [user, customer, permission]:
                remove_perm(permission, users[user], customers[customer])
            case "delete customer", [customer]:  # its grants go with it (CASCADE)
                Customer.objects.filter(pk=customers[customer].pk).delete()
            case "delete group", [group]:
                Group.objects.filter(pk=groups[group].pk).delete()
            case "move grants", [source, target]:  # one UPDATE of the holder of many grants
                CustomerGroupObjectPermission.objects.filter(group=groups[source]).update(
                    group=groups[target]
                )
            case "change permission", [permission]:  # one UPDATE of the permission of every grant
                app_label, codename = permission.split(".")
                changed = Permission.objects.get(content_type__app_label=app_label, codename=codename)
                CustomerGroupObjectPermission.objects.update(permission=changed)
                CustomerUserObjectPermission.objects.update(permission=changed)
            case "truncate", [holder]:
                model = CustomerGroupObjectPermission if holder == "group" else CustomerUserObjectPermission
                with connection.cursor() as cursor:
                    # The foreign keys' deferred checks first, as a transaction of its own would have.
                    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    cursor.execute(f"TRUNCATE {model._meta.db_table}")

    check()


@pytest.mark.django_db
def test_the_list_total_is_the_tally_where_one_holder_holds_the_grants(make_user, partner):
    agent = make_user(Role.BILLING_AGENT)
    customers = [CustomerFactory(partner=partner) for _ in range(3)]
    assert visible_customer_count(agent) == 3
    # Read from the tally: a figure set there is the total shown.
    GrantTally.objects.filter(holder=GrantTally.Holder.GROUP, holder_id=partner.staff_group.pk).update(
        grants=41
    )
    assert visible_customer_count(agent) == 41
    # Once the agent's own name also holds a grant, the two may name the same customer: the grants
    # themselves are counted, each customer once, and the tally is not used.
    assign_perm(CUSTOMER_VISIBILITY_PERMISSION, agent, customers[0])
    agent = type(agent).objects.get(pk=agent.pk)
    assert visible_customer_count(agent) == 3
