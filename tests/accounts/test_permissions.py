"""The permission matrix: every role against its own partner's customer and another partner's, viewing
and changing, through the pages and the admin as users reach them.

Partner staff (billing, support, finance) see their partner's customers; provider staff (administrator,
DPO) belong to no partner and see every customer, each Site Details view logged as cross-partner; a
portal user sees its own customer alone. Whatever a user may not see answers 404 and names nothing.
"""

import html
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from guardian.shortcuts import remove_perm

from accounts import services
from accounts.models import AccessLog, Contact, Customer, ProvisioningOrder, Role, Site
from tests.factories import full_customer

OWN_NAME = "Alder Own-Partner Telecom Ltd"
OTHER_NAME = "Zephyr Other-Partner Trading plc"
UNGRANTED_NAME = "Quokka Ungranted Holdings Ltd"

ROLES = list(Role)
STAFF_ROLES = [role for role in Role if role != Role.CUSTOMER]
PARTNER_STAFF_ROLES = [Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.FINANCE_MANAGER]
SEES_EVERY_PARTNER = {Role.ADMINISTRATOR, Role.DATA_PROTECTION_OFFICER}
# change_contact and change_site; a portal user on its own customer only.
CORRECTS_SITE_DETAILS = {
    Role.ADMINISTRATOR,
    Role.BILLING_AGENT,
    Role.SUPPORT_AGENT,
    Role.DATA_PROTECTION_OFFICER,
    Role.CUSTOMER,
}
PLACES_ORDERS = {Role.ADMINISTRATOR, Role.BILLING_AGENT}
WHOSE = ["own", "other"]


def _renamed(customer: Customer, name: str) -> Customer:
    return services.customer_update(customer=customer, actor=None, name=name)


@pytest.fixture
def customer(customer):
    """The conftest customer under a fixed name, so checks that a name is absent cannot collide."""
    return _renamed(customer, OWN_NAME)


@pytest.fixture
def other_customer(other_customer):
    return _renamed(other_customer, OTHER_NAME)


@pytest.fixture
def customers(customer, other_customer) -> dict[str, Customer]:
    return {"own": customer, "other": other_customer}


@pytest.fixture
def login(client, make_user, customer):
    """Log a new user in ``role`` into ``client``: partner staff work for ``customer``'s partner and a
    portal user belongs to ``customer``. ``None`` stays anonymous."""

    def log_in(role: Role | None, **fields):
        if role is None:
            return None
        if role == Role.CUSTOMER:
            fields["customer"] = customer
        user = make_user(role, **fields)
        client.force_login(user)
        return user

    return log_in


def may_see(role: Role | None, whose: str) -> bool:
    return role is not None and (whose == "own" or role in SEES_EVERY_PARTNER)


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def assert_names_nothing(response, customer: Customer) -> None:
    text = text_of(response)
    assert customer.name not in text
    assert customer.reference not in text


# Site Details page


@pytest.mark.parametrize("whose", WHOSE)
@pytest.mark.parametrize("role", ROLES)
def test_site_details_page(client, login, customers, role, whose):
    login(role)
    target = customers[whose]

    response = client.get(f"/customers/{target.reference}/")

    if may_see(role, whose):
        assert response.status_code == 200
        assert response.context["customer"].pk == target.pk
        assert target.name in text_of(response)
    else:
        assert response.status_code == 404
        assert_names_nothing(response, target)


@pytest.mark.parametrize("whose", WHOSE)
@pytest.mark.parametrize("role", ROLES)
def test_every_site_details_view_by_provider_staff_is_logged_as_cross_partner(
    client, login, customers, role, whose
):
    user = login(role)
    target = customers[whose]

    for _ in range(2):
        client.get(f"/customers/{target.reference}/")

    logged = AccessLog.objects.filter(user=user)
    if role in SEES_EVERY_PARTNER:
        assert (
            list(logged.values_list("action", "customer", "customer_reference"))
            == [(AccessLog.Action.CROSS_PARTNER_VIEW, target.pk, target.reference)] * 2
        )
    else:
        assert not logged.exists()


def test_portal_user_gets_404_for_another_customer_of_its_own_partner(client, login, partner):
    login(Role.CUSTOMER)
    neighbour = _renamed(full_customer(partner), "Neighbourly Same-Partner Ltd")

    response = client.get(f"/customers/{neighbour.reference}/")

    assert response.status_code == 404
    assert_names_nothing(response, neighbour)


@pytest.mark.parametrize("reference", ["C-999999", "C-000000", "nonsense"])
def test_unknown_reference_is_404(client, login, customer, reference):
    login(Role.ADMINISTRATOR)

    assert client.get(f"/customers/{reference}/").status_code == 404


# Staff home


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_staff_home_lists_only_visible_customers(client, login, customer, other_customer, role):
    login(role)

    response = client.get("/")

    assert response.status_code == 200
    listed = {c.pk for c in response.context["page"].object_list}
    text = text_of(response)
    assert customer.pk in listed
    assert customer.name in text
    if role in SEES_EVERY_PARTNER:
        assert other_customer.pk in listed
        assert other_customer.name in text
    else:
        assert other_customer.pk not in listed
        assert_names_nothing(response, other_customer)


@pytest.mark.parametrize("query", ["name", "reference", "email", "postcode"])
@pytest.mark.parametrize("role", STAFF_ROLES)
def test_staff_search_finds_another_partners_customer_only_for_provider_staff(
    client, login, other_customer, role, query
):
    login(role)
    terms = {
        "name": other_customer.name,
        "reference": other_customer.reference,
        "email": other_customer.contacts.get().email,
        "postcode": other_customer.sites.get().postcode,
    }

    response = client.get("/", {"q": terms[query]})

    assert response.status_code == 200
    found = other_customer.pk in {c.pk for c in response.context["page"].object_list}
    assert found == (role in SEES_EVERY_PARTNER)


def test_portal_user_at_home_is_redirected_to_its_own_site_details(client, login, customer):
    login(Role.CUSTOMER)

    response = client.get("/", follow=True)

    assert response.redirect_chain[-1][0] == f"/customers/{customer.reference}/"
    assert response.status_code == 200
    assert response.context["customer"].pk == customer.pk


# Anonymous users


ANONYMOUS_REQUESTS = [
    ("get", "/"),
    ("get", "/my-account/"),
    ("get", "/customers/{ref}/"),
    ("post", "/customers/{ref}/reveal/"),
    ("get", "/customers/{ref}/contacts/{contact}/edit/"),
    ("post", "/customers/{ref}/contacts/{contact}/edit/"),
    ("get", "/customers/{ref}/sites/{site}/edit/"),
    ("post", "/customers/{ref}/orders/new/"),
]


@pytest.mark.parametrize(("method", "path"), ANONYMOUS_REQUESTS)
def test_anonymous_user_is_sent_to_login(client, customer, method, path):
    url = path.format(
        ref=customer.reference, contact=customer.contacts.get().pk, site=customer.sites.get().pk
    )
    data = {"reason": "Curious", "kind": "provide", "name": "Mallory", "phone": "07700 100666"}

    response = client.post(url, data) if method == "post" else client.get(url)

    assert response.status_code == 302
    assert response.url == f"/login/?next={url}"
    assert not AccessLog.objects.exists()
    assert not ProvisioningOrder.objects.exists()
    assert customer.contacts.get().name != "Mallory"


# Correcting Site Details


class Correction(NamedTuple):
    url: str
    record: Callable[[Customer], Any]
    post: dict[str, str]
    saved: Callable[[Any], bool]


CORRECTIONS = {
    "contact": Correction(
        url="/customers/{ref}/contacts/{id}/edit/",
        record=lambda customer: customer.contacts.get(),
        post={
            "name": "Janet Smythe",
            "email": "janet.smythe@example.com",
            "phone": "07700 100999",
            "role": "billing",
            "reason": "Customer rang to correct her details",
        },
        saved=lambda record: (record.name, record.phone) == ("Janet Smythe", "+447700100999"),
    ),
    "site": Correction(
        url="/customers/{ref}/sites/{id}/edit/",
        record=lambda customer: customer.sites.get(),
        post={
            "label": "Head office",
            "address_line1": "2 New Street",
            "address_line2": "",
            "town": "Leeds",
            "postcode": "ls2 7ew",
            "reason": "Customer moved",
        },
        saved=lambda record: (record.address_line1, record.postcode) == ("2 New Street", "LS2 7EW"),
    ),
}


def correction_status(role: Role, whose: str, *, allowed: int) -> int:
    if not may_see(role, whose):
        return 404
    return allowed if role in CORRECTS_SITE_DETAILS else 403


@pytest.mark.parametrize("what", list(CORRECTIONS))
@pytest.mark.parametrize("whose", WHOSE)
@pytest.mark.parametrize("role", ROLES)
def test_correction_form(client, login, customers, role, whose, what):
    login(role)
    target = customers[whose]
    correction = CORRECTIONS[what]
    record = correction.record(target)

    response = client.get(correction.url.format(ref=target.reference, id=record.pk))

    assert response.status_code == correction_status(role, whose, allowed=200)
    if response.status_code == 404:
        assert_names_nothing(response, target)


@pytest.mark.parametrize("what", list(CORRECTIONS))
@pytest.mark.parametrize("whose", WHOSE)
@pytest.mark.parametrize("role", ROLES)
def test_correction_is_saved_only_by_those_who_may_make_it(client, login, customers, role, whose, what):
    user = login(role)
    target = customers[whose]
    correction = CORRECTIONS[what]
    record = correction.record(target)

    response = client.post(correction.url.format(ref=target.reference, id=record.pk), correction.post)

    expected = correction_status(role, whose, allowed=302)
    assert response.status_code == expected
    record.refresh_from_db()
    assert correction.saved(record) == (expected == 302)
    if expected == 302:
        assert response.url == f"/customers/{target.reference}/"
        assert record.history.latest().history_user == user


@pytest.mark.parametrize("what", ["contact", "site", "order line"])
def test_records_of_another_partners_customer_are_404_under_own_reference(
    client, login, customer, other_customer, what
):
    login(Role.BILLING_AGENT)
    foreign_contact: Contact = other_customer.contacts.get()
    foreign_site: Site = other_customer.sites.get()
    requests = {
        "contact": (f"contacts/{foreign_contact.pk}/edit/", CORRECTIONS["contact"].post),
        "site": (f"sites/{foreign_site.pk}/edit/", CORRECTIONS["site"].post),
        "order line": ("orders/new/", {"kind": "cease", "line": other_customer.lines.get().pk}),
    }
    path, data = requests[what]

    response = client.post(f"/customers/{customer.reference}/{path}", data)

    assert response.status_code == 404
    foreign_contact.refresh_from_db()
    foreign_site.refresh_from_db()
    assert foreign_contact.name != "Janet Smythe"
    assert foreign_site.address_line1 != "2 New Street"
    assert not ProvisioningOrder.objects.exists()


# Provisioning orders


@pytest.mark.parametrize("whose", WHOSE)
@pytest.mark.parametrize("role", ROLES)
def test_provisioning_order(client, login, customers, role, whose):
    user = login(role)
    target = customers[whose]

    response = client.post(f"/customers/{target.reference}/orders/new/", {"kind": "provide", "notes": "New"})

    orders = ProvisioningOrder.objects.filter(customer=target)
    if not may_see(role, whose):
        assert response.status_code == 404
        assert_names_nothing(response, target)
        assert not orders.exists()
    elif role in PLACES_ORDERS:
        assert response.status_code == 302
        assert response.url == f"/customers/{target.reference}/"
        order = orders.get()
        assert (order.kind, order.requested_by) == (ProvisioningOrder.Kind.PROVIDE, user)
    else:
        assert response.status_code == 403
        assert not orders.exists()


# The admin


ADMIN_PAGES = {
    "customer change": lambda c: f"/admin/accounts/customer/{c.pk}/change/",
    "customer history": lambda c: f"/admin/accounts/customer/{c.pk}/history/",
    "contact change": lambda c: f"/admin/accounts/contact/{c.contacts.get().pk}/change/",
    "contact history": lambda c: f"/admin/accounts/contact/{c.contacts.get().pk}/history/",
}


@pytest.mark.parametrize("page", list(ADMIN_PAGES))
@pytest.mark.parametrize("whose", WHOSE)
@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "anonymous"])
def test_admin_object_page(client, login, customers, role, whose, page):
    login(role)
    target = customers[whose]
    url = ADMIN_PAGES[page](target)

    response = client.get(url)

    if role in {None, Role.CUSTOMER}:
        assert response.status_code == 302
        assert response.url == f"/admin/login/?next={url}"
    elif may_see(role, whose):
        assert response.status_code == 200
        shown = response.context.get("original") or response.context.get("object")
        expected = target if page.startswith("customer") else target.contacts.get()
        assert (type(shown), shown.pk) == (type(expected), expected.pk)
    else:
        assert response.status_code == 404
        assert_names_nothing(response, target)


ADMIN_CHANGELISTS = {
    "customer": lambda row: row.pk,
    "contact": lambda row: row.customer_id,
    "site": lambda row: row.customer_id,
    "line": lambda row: row.customer_id,
}


@pytest.mark.parametrize("model", list(ADMIN_CHANGELISTS))
@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "anonymous"])
def test_admin_changelist_shows_only_visible_customers(client, login, customer, other_customer, role, model):
    login(role)
    url = f"/admin/accounts/{model}/"

    response = client.get(url)

    if role in {None, Role.CUSTOMER}:
        assert response.status_code == 302
        assert response.url == f"/admin/login/?next={url}"
        return
    assert response.status_code == 200
    customer_of = ADMIN_CHANGELISTS[model]
    listed = {customer_of(row) for row in response.context["cl"].result_list}
    assert customer.pk in listed
    assert customer.reference in text_of(response)
    if role in SEES_EVERY_PARTNER:
        assert other_customer.pk in listed
    else:
        assert other_customer.pk not in listed
        assert_names_nothing(response, other_customer)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_admin_customer_autocomplete_offers_only_visible_customers(
    client, login, customer, other_customer, role
):
    login(role)

    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "accounts", "model_name": "contact", "field_name": "customer"},
    )

    assert response.status_code == 200
    offered = {int(result["id"]) for result in json.loads(response.content)["results"]}
    assert customer.pk in offered
    assert (other_customer.pk in offered) == (role in SEES_EVERY_PARTNER)


ADMIN_CONTACT_EDITORS = CORRECTS_SITE_DETAILS - {Role.CUSTOMER}


@pytest.mark.parametrize("whose", WHOSE)
@pytest.mark.parametrize("role", STAFF_ROLES)
def test_admin_contact_change_is_saved_only_by_those_who_may_make_it(client, login, customers, role, whose):
    login(role)
    target = customers[whose]
    contact = target.contacts.get()

    response = client.post(
        f"/admin/accounts/contact/{contact.pk}/change/",
        {
            "customer": target.pk,
            "name": "Janet Smythe",
            "email": contact.email,
            "phone": contact.phone,
            "role": "technical",
        },
    )

    contact.refresh_from_db()
    if not may_see(role, whose):
        assert response.status_code == 404
        assert_names_nothing(response, target)
    elif role in ADMIN_CONTACT_EDITORS:
        assert response.status_code == 302
    else:
        assert response.status_code == 403
    assert (contact.name == "Janet Smythe") == (response.status_code == 302)


# Role permission without the object permission


@pytest.fixture
def ungranted_customer(partner):
    """A customer of the agents' own partner whose grant to the partner's staff group was withdrawn."""
    ungranted = _renamed(full_customer(partner), UNGRANTED_NAME)
    remove_perm("accounts.view_customer", partner.staff_group, ungranted)
    return ungranted


UNGRANTED_REQUESTS = {
    "site details": ("get", lambda c: f"/customers/{c.reference}/"),
    "reveal": ("post", lambda c: f"/customers/{c.reference}/reveal/"),
    "contact edit": ("get", lambda c: f"/customers/{c.reference}/contacts/{c.contacts.get().pk}/edit/"),
    "site edit": ("get", lambda c: f"/customers/{c.reference}/sites/{c.sites.get().pk}/edit/"),
    "order": ("post", lambda c: f"/customers/{c.reference}/orders/new/"),
    **{f"admin {page}": ("get", url) for page, url in ADMIN_PAGES.items()},
}


@pytest.mark.parametrize("request_name", list(UNGRANTED_REQUESTS))
def test_role_permission_without_object_grant_is_404(client, login, ungranted_customer, request_name):
    login(Role.BILLING_AGENT)
    method, url = UNGRANTED_REQUESTS[request_name]

    response = getattr(client, method)(url(ungranted_customer), {"reason": "Checking", "kind": "provide"})

    assert response.status_code == 404
    assert_names_nothing(response, ungranted_customer)
    assert not AccessLog.objects.exists()
    assert not ProvisioningOrder.objects.exists()


@pytest.mark.parametrize(
    "url",
    ["/", "/?q={ref}", "/?q={name}", "/admin/accounts/customer/", "/admin/accounts/contact/"],
)
def test_role_permission_without_object_grant_is_absent_from_lists(
    client, login, customer, ungranted_customer, url
):
    login(Role.BILLING_AGENT)

    response = client.get(url.format(ref=ungranted_customer.reference, name=ungranted_customer.name))

    assert response.status_code == 200
    if "?q=" in url:  # the search box echoes the query; nothing may match it
        assert response.context["page"].paginator.count == 0
    else:
        assert_names_nothing(response, ungranted_customer)
        assert customer.reference in text_of(response)


@pytest.mark.parametrize("role", PARTNER_STAFF_ROLES)
def test_admin_customer_changelist_does_not_name_other_partners(client, login, other_customer, role):
    """The partner filter offers only the partners of visible customers, not every reseller."""
    login(role)

    response = client.get("/admin/accounts/customer/")

    assert response.status_code == 200
    assert other_customer.partner.name not in text_of(response)
