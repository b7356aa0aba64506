"""The staff list, scoped: what ``customer_list`` finds is what a plain scan of the decrypted Site Details
finds, among the customers the user may see, for any term a user might type; and the list's total is
the number of customers the user may see, however the grants overlap.

The oracle decrypts every customer's name, contacts, lines and sites and compares them with the term in
Python, as the search's docstring states the rule; the list answers from blind indexes and grant tables
in SQL. Values are shared across partners on purpose (a phone number, a postcode, name words), so a
search that lost its scope would find another partner's customer."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Window
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import validation, views
from accounts.customer_list import CustomerListPaginator
from accounts.models import Customer, CustomerGroupObjectPermission, CustomerUserObjectPermission, Role
from accounts.selectors import (
    CustomerList,
    ListedCustomer,
    _search_page_read,
    customer_list,
    customers_visible_to,
    visible_customer_count,
)
from accounts.services import CUSTOMER_VISIBILITY_PERMISSION
from tests.factories import ContactFactory, CustomerFactory, LineFactory, PartnerFactory, SiteFactory

SHARED_PHONE = "07700 100123"
SHARED_POSTCODE = "LS1 4AP"


@pytest.fixture
def world(partner, make_user):
    other = PartnerFactory()
    customers = [
        CustomerFactory(partner=partner, name="Acme Plumbing Ltd"),
        CustomerFactory(partner=partner, name="Brandwood Dairy"),
        CustomerFactory(partner=partner, name="Quintessa Roofing"),
        CustomerFactory(partner=other, name="Acme Roofing Ltd"),
        CustomerFactory(partner=other, name="Zanzibar Trading"),
    ]
    contacts = [
        ("Jane Smith", "jane@acme.example", SHARED_PHONE),
        ("Omar Quillon", "omar@brandwood.example", "0113 496 0001"),
        ("Jane Brandwood", "JANE@quintessa.example", "+44 113 496 0002"),
        ("Jane Smith", "jane@acme-roofing.example", SHARED_PHONE),
        ("Zoe O'Brien", "zoe@zanzibar.example", "020 7946 0003"),
    ]
    for customer, (name, email, phone) in zip(customers, contacts, strict=True):
        ContactFactory(customer=customer, name=name, email=email, phone=phone)
    postcodes = [SHARED_POSTCODE, "BS1 4DJ", "M1 1AE", SHARED_POSTCODE, "EH1 1YZ"]
    for number, (customer, postcode) in enumerate(zip(customers, postcodes, strict=True)):
        site = SiteFactory(customer=customer, postcode=postcode)
        # A line's number is another customer's contact's phone: a phone search finds both.
        LineFactory(
            customer=customer, site=site, cli="0113 496 0001" if number == 4 else f"0161 496 {number:04d}"
        )
    agent = make_user(Role.BILLING_AGENT)
    other_agent = make_user(Role.BILLING_AGENT, partner=other)
    # An exception granted in the user's own name: the other partner's agent may see one of ours.
    assign_perm(CUSTOMER_VISIBILITY_PERMISSION, other_agent, customers[1])
    users = [
        agent,
        other_agent,
        make_user(Role.ADMINISTRATOR),
        make_user(Role.CUSTOMER, customer=customers[2]),
    ]
    return customers, users


def _terms(customers: list[Customer]) -> list[str]:
    """What a user might type: each reference, name and word of it, contact, email, phone and postcode as
    stored and in other formats."""
    terms = []
    for customer in customers:
        terms += [customer.reference, customer.reference.lower(), customer.name, *customer.name.split()]
        for contact in customer.contacts.all():
            terms += [contact.name, contact.email, contact.email.upper(), contact.phone]
            terms.append(validation.normalise_phone(contact.phone))
        terms += [line.cli for line in customer.lines.all()]
        terms += [site.postcode.lower().replace(" ", "") for site in customer.sites.all()]
    return terms


def _normalised(normalise, value: str) -> str | None:
    try:
        return normalise(value)
    except ValidationError:
        return None


def _matches(customer: Customer, term: str) -> bool:
    """The rule, on decrypted values: a reference; every word of the customer's name or of one contact's
    name; or exactly a phone number, email or postcode."""
    term = term.strip()
    if not term:
        return True
    if term.upper().startswith(Customer.REFERENCE_PREFIX) and Customer.pk_from_reference(term) is not None:
        return Customer.pk_from_reference(term) == customer.pk
    words = set(validation.name_words(term))
    contacts = list(customer.contacts.all())
    names = [customer.name, *(contact.name for contact in contacts)]
    if words and any(words <= set(validation.name_words(name)) for name in names):
        return True
    phone = _normalised(validation.normalise_phone, term)
    phones = [c.phone for c in contacts] + [line.cli for line in customer.lines.all()]
    if phone is not None and phone in {_normalised(validation.normalise_phone, p) for p in phones}:
        return True
    email = _normalised(validation.normalise_email, term)
    if email is not None and email in {validation.normalise_email(c.email) for c in contacts}:
        return True
    postcode = _normalised(validation.normalise_postcode, term)
    postcodes = {validation.normalise_postcode(site.postcode) for site in customer.sites.all()}
    return postcode is not None and postcode in postcodes


@pytest.mark.django_db
def test_search_finds_what_a_scan_of_the_decrypted_details_finds_among_the_visible(world):
    customers, users = world
    terms = _terms(customers)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        user=st.sampled_from(users),
        term=st.sampled_from(terms) | st.text(max_size=12) | st.just("Jane Acme"),
    )
    def check(user, term):
        visible = set(customers_visible_to(user))
        expected = [c.pk for c in customers if c in visible and _matches(c, term)]

        found = [c.pk for c in customer_list(user, query=term)]

        assert found == expected

    check()
    # The world is one where scope matters: some term finds a customer one user may not see.
    hidden = [
        (user, term)
        for user in users
        for term in terms
        if any(_matches(c, term) and c not in set(customers_visible_to(user)) for c in customers)
    ]
    assert hidden


@pytest.mark.django_db
def test_total_and_pages_are_the_visible_customers_however_grants_overlap(partner, make_user):
    """Grants through several groups and in the user's own name, on the same customers or not, of other
    permissions, and to other users and groups: the total counts each visible customer once, and each
    page holds the visible customers of its place in id order."""
    customers = [CustomerFactory(partner=partner) for _ in range(7)]
    for n, customer in enumerate(customers[:4]):  # counts of sites and lines for the rows to show
        for _ in range(n):
            LineFactory(customer=customer, site=SiteFactory(customer=customer))
    agent, other = make_user(Role.BILLING_AGENT), make_user(Role.BILLING_AGENT)
    groups = [Group.objects.create(name=f"Exceptions {n}") for n in range(2)] + [partner.staff_group]
    role_groups = [group for group in agent.groups.all() if group not in groups]  # its role's permissions
    pairs = st.sets(st.tuples(st.integers(0, len(groups) - 1), st.integers(0, len(customers) - 1)))
    own = st.sets(st.integers(0, len(customers) - 1))
    permissions = st.sampled_from(["accounts.view_customer", "accounts.change_customer"])

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        memberships=st.sets(st.integers(0, len(groups) - 1)),
        group_grants=st.lists(st.tuples(pairs, permissions), max_size=2),
        user_grants=st.lists(st.tuples(own, permissions, st.booleans()), max_size=3),
        offset=st.integers(0, len(customers) + 1),
        limit=st.integers(1, 4),
    )
    def check(memberships, group_grants, user_grants, offset, limit):
        CustomerGroupObjectPermission.objects.all().delete()
        CustomerUserObjectPermission.objects.all().delete()
        agent.groups.set([*role_groups, *(groups[n] for n in memberships)])
        for chosen, permission in group_grants:
            for group, customer in chosen:
                assign_perm(permission, groups[group], customers[customer])
        for chosen, permission, to_agent in user_grants:
            for customer in chosen:
                assign_perm(permission, agent if to_agent else other, customers[customer])
        agent.refresh_from_db()  # a fresh user: no permissions cached from the last example
        visible = list(customers_visible_to(agent).order_by("id").values_list("pk", flat=True))

        listing = CustomerList(agent)
        assert visible_customer_count(agent) == listing.count() == len(visible)
        shown = {c.pk: (c.name, c.partner.name, c.site_count, c.line_count) for c in customer_list(agent)}
        assert [
            (c.pk, c.name, c.partner_name, c.site_count, c.line_count)
            for c in listing.page(offset=offset, limit=limit)
        ] == [(pk, *shown[pk]) for pk in visible[offset : offset + limit]]

    check()


def test_the_total_for_those_who_see_every_customer_or_none(make_user, customer, other_customer):
    assert visible_customer_count(make_user(Role.ADMINISTRATOR)) == Customer.objects.count() == 2
    left = make_user(Role.BILLING_AGENT)
    left.is_active = False
    assert visible_customer_count(left) == 0
    assert visible_customer_count(make_user(Role.BILLING_AGENT)) == 1


def test_the_pages_show_the_total_and_their_customers(client, agent, partner, other_partner, monkeypatch):
    monkeypatch.setattr(views, "CUSTOMERS_PER_PAGE", 2)
    ours = [CustomerFactory(partner=owner) for owner in (partner, other_partner, partner, partner)]
    client.force_login(agent)

    first, second = (client.get("/", {"page": number}) for number in (1, 2))

    assert [c.pk for c in first.context["page"].object_list] == [ours[0].pk, ours[2].pk]
    assert [c.pk for c in second.context["page"].object_list] == [ours[3].pk]
    assert "3 customers." in second.content.decode()
    assert "Page 2 of 2" in second.content.decode()


def test_pages_read_with_their_total_are_djangos_own_pages_of_the_list(world):
    """A search (and an administrator's list) reads its total in the page's statement: whatever is typed
    and whichever page is asked for (none, past the end, not a number), the page, its number and the total
    are what Django's Paginator makes of the whole list."""
    customers, users = world
    terms = ["", "Jane", "Acme", "nothing like it", SHARED_PHONE, *_terms(customers[:2])]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        user=st.sampled_from(users),
        term=st.sampled_from(terms),
        number=st.sampled_from([None, "", "1", "2", "3", "7", "0", "-1", "x"]),
        per_page=st.integers(1, 3),
    )
    def check(user, term, number, per_page):
        user.refresh_from_db()
        ours = CustomerListPaginator(user, query=term, per_page=per_page)
        theirs = Paginator(list(customer_list(user, query=term)), per_page)
        page, expected = ours.get_page(number), theirs.get_page(number)
        assert (page.number, [c.pk for c in page], ours.count, ours.num_pages) == (
            expected.number,
            [c.pk for c in expected],
            theirs.count,
            theirs.num_pages,
        )

    check()


def test_a_partners_list_reads_a_page_with_its_total_in_one_round_trip_on_postgresql(make_user, partner):
    ours = [CustomerFactory(partner=partner) for _ in range(3)]
    agent = make_user(Role.BILLING_AGENT)
    agent.get_all_permissions()  # read with the user on a page (RolePermissionsBackend.get_user)

    with CaptureQueriesContext(connection) as queries:
        paginator = CustomerListPaginator(agent, query="", per_page=2)
        page = paginator.get_page("2")
        total = paginator.count

    assert (page.number, [c.pk for c in page], total) == (2, [ours[2].pk], 3)
    # The user's groups, then the page and the total: together on PostgreSQL.
    assert len(queries) == (2 if connection.vendor == "postgresql" else 3)


def test_a_search_page_is_read_through_sql_compiled_once_for_its_kind_of_search(world):
    """Each kind of search (a reference, words, a phone, an email, a postcode) is read by a compiled
    read, not the ORM's queryset: the same rows and total as the queryset, and the SQL compiled once."""
    customers, users = world
    for term in ["Acme", "Jane Smith", SHARED_PHONE, SHARED_POSTCODE, *_terms(customers[:1])]:
        for user in users:
            user.refresh_from_db()
            compiled = _search_page_read(user, term, offset=0, limit=3)
            if not customers_visible_to(user).exists():
                continue
            assert compiled is not None, term
            read, values = compiled
            expected = list(customer_list(user, query=term).annotate(listed_total=Window(Count("pk")))[:3])
            rows = [ListedCustomer(*row) for row in read(*values)]
            assert [(c.pk, c.name, c.site_count, c.line_count, c.listed_total) for c in rows] == [
                (c.pk, c.name, c.site_count, c.line_count, c.listed_total) for c in expected
            ], term
    assert _search_page_read(users[0], "   ", offset=0, limit=3) is None
