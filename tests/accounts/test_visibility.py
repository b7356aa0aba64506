"""``customers_visible_to``: a customer is seen through a view grant held by one of the user's groups or by
the user, and by nothing else; the same when the scoped queryset is nested in another."""

from django.contrib.auth.models import Group
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import Customer, Line, Role
from accounts.selectors import customer_ids_visible_to, customers_visible_to
from tests.factories import LineFactory


def test_staff_see_the_customers_granted_to_their_partners_group_only(make_user, customer, other_customer):
    agent = make_user(Role.BILLING_AGENT)

    assert list(customers_visible_to(agent)) == [customer]
    assert set(customers_visible_to(make_user(Role.ADMINISTRATOR))) == {customer, other_customer}


def test_a_grant_to_the_user_alone_shows_that_customer_and_no_other(make_user, customer, other_customer):
    portal = make_user(Role.CUSTOMER)

    assert list(customers_visible_to(portal)) == [portal.customer]
    assign_perm("accounts.view_customer", portal, other_customer)
    assert set(customers_visible_to(portal)) == {portal.customer, other_customer}


def test_grants_of_another_permission_or_to_another_group_show_nothing(make_user, partner, other_customer):
    agent = make_user(Role.BILLING_AGENT)
    assign_perm("accounts.change_customer", agent, other_customer)
    assign_perm("accounts.change_customer", partner.staff_group, other_customer)
    assign_perm("accounts.view_customer", Group.objects.create(name="not the agent's"), other_customer)

    assert not customers_visible_to(agent).exists()


def test_leaving_the_group_or_losing_the_grant_hides_the_customer(make_user, partner, customer):
    agent = make_user(Role.BILLING_AGENT)
    other_agent = make_user(Role.BILLING_AGENT)

    agent.groups.remove(partner.staff_group)
    remove_perm("accounts.view_customer", partner.staff_group, customer)

    assert not customers_visible_to(agent).exists()
    assert not customers_visible_to(other_agent).exists()


def test_nested_in_another_query_it_still_reads_the_inner_customer(make_user, customer, other_customer):
    agent = make_user(Role.BILLING_AGENT)
    mine, theirs = LineFactory(customer=customer), LineFactory(customer=other_customer)

    lines = Line.objects.filter(customer__in=customer_ids_visible_to(agent))
    assert mine in lines
    assert theirs not in lines
    # Joined to the customer too, the grant still reads the nested query's own customer column.
    assert set(
        Customer.objects.filter(lines__in=lines, pk__in=customer_ids_visible_to(agent)).distinct()
    ) == {customer}
