"""``customers_visible_to``: a customer is seen through a view grant held by one of the user's groups or by
the user, and by nothing else; the same when the scoped queryset is nested in another."""

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import connection
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm, remove_perm
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.models import Customer, Line, Role
from accounts.selectors import (
    access_customer,
    access_site_details,
    customer_ids_visible_to,
    customers_visible_to,
    site_details_page_reads,
)
from tests.factories import LineFactory, full_customer


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


# What a URL's reference can be: the customers' own, in any case and with spaces, numbers past the id
# column's range, other digits (superscripts, Arabic-Indic), and anything else.
def _references(customers: list[Customer]) -> st.SearchStrategy[str]:
    own = st.sampled_from([c.reference for c in customers])
    return st.one_of(
        own,
        own.map(lambda ref: f"  {ref.lower()} "),
        st.integers(min_value=-(2**70), max_value=2**70).map(lambda n: f"C-{n}"),
        st.integers(min_value=0, max_value=2**70).map(str),
        st.sampled_from(["C-\u00b2", "C-\u0661\u0662", "C-" + "9" * 30, "C-0", "C-", ""]),
        st.text(max_size=25).map(lambda text: f"C-{text}"),
        st.text(max_size=25),
    )


def test_access_customer_opens_exactly_what_the_visible_customers_hold_and_404s_the_rest(
    make_user, customer, other_customer
):
    inactive = make_user(Role.BILLING_AGENT)
    inactive.is_active = False
    inactive.save()
    people = [
        make_user(Role.BILLING_AGENT),
        make_user(Role.ADMINISTRATOR),
        make_user(Role.CUSTOMER),
        inactive,
        AnonymousUser(),
    ]
    customers = [customer, other_customer, people[2].customer]

    @settings(max_examples=150, deadline=None)
    @given(user=st.sampled_from(people), reference=_references(customers))
    def check(user, reference):
        visible = {c.pk: c for c in customers_visible_to(user)}
        expected = visible.get(Customer.pk_from_reference(reference) or 0)
        if expected is None:
            with pytest.raises(Http404):
                access_customer(user, reference)
            with pytest.raises(Http404):
                access_site_details(user, reference)
        else:
            opened = access_customer(user, reference)
            assert opened == expected
            assert opened.partner.name == expected.partner.name
            # The Site Details page's access check, read with the page's rows: the same customer and rows.
            with_rows, rows, history = access_site_details(user, reference)
            assert (with_rows, with_rows.partner.name) == (opened, opened.partner.name)
            alone_rows, alone_history = site_details_page_reads(opened)
            assert rows == alone_rows
            assert _entries(history) == _entries(alone_history)

    check()


def _entries(history):
    return [(entry.at, entry.user, entry.what, entry.change, entry.changed_fields) for entry in history]


def test_the_site_details_access_check_and_reads_are_one_round_trip_on_postgresql(make_user, customer):
    agent = make_user(Role.BILLING_AGENT)
    agent.get_all_permissions()  # read with the user on a page (RolePermissionsBackend.get_user)

    with CaptureQueriesContext(connection) as queries:
        opened, _rows, history = access_site_details(agent, customer.reference)

    assert opened == customer and history
    assert len(queries) == (1 if connection.vendor == "postgresql" else 14)


def test_another_partners_site_details_is_a_404_with_none_of_its_values_decrypted(
    make_user, other_partner, decryptions
):
    """The page's reads go with the access check, but a customer it does not find is never decrypted."""
    hidden = full_customer(other_partner, sites=2, lines=2, contacts=2)
    agent = make_user(Role.BILLING_AGENT)
    decrypted = decryptions

    with pytest.raises(Http404):
        access_site_details(agent, hidden.reference)
    assert decrypted == []
    opened, rows, _history = access_site_details(make_user(Role.ADMINISTRATOR), hidden.reference)
    assert opened == hidden and len(rows.sites) == 2 and decrypted  # what is opened is read and decrypted
