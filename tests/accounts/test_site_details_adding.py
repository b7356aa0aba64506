"""Adding a site, a contact and a line to an existing customer from its Site Details page, without the
admin: through the services, with history naming the actor, and only for roles that may add them."""

import datetime
from decimal import Decimal

import pytest

from accounts.models import Line, Role
from billing.models import LineProduct
from billing.services.catalogue import product_create


@pytest.fixture
def product(partner, agent):
    return product_create(
        partner=partner,
        name="Analogue line",
        monthly_price=Decimal("15.00"),
        valid_from=datetime.date(2026, 1, 1),
        actor=agent,
    )


def test_the_agent_adds_a_site_and_a_contact(client, agent, customer):
    client.force_login(agent)
    page = client.get(f"/customers/{customer.reference}/").content.decode()
    assert "Add a site" in page and "Add a contact" in page and "Add a line" in page
    response = client.post(
        f"/customers/{customer.reference}/sites/new/",
        {"label": "Warehouse", "address_line1": "2 Dock Road", "town": "Hull", "postcode": "hu1 1aa"},
    )
    assert response.url == f"/customers/{customer.reference}/"
    site = customer.sites.get(label="Warehouse")
    assert site.postcode == "HU1 1AA" and site.history.get().history_user == agent

    bad = client.post(
        f"/customers/{customer.reference}/contacts/new/",
        {"name": "Bo", "email": "not-an-email", "phone": "07700 100999", "role": "billing"},
    )
    assert bad.status_code == 200 and "Enter a valid email address." in bad.content.decode()
    client.post(
        f"/customers/{customer.reference}/contacts/new/",
        {"name": "Bo Smith", "email": "bo@example.com", "phone": "07700 100999", "role": "billing"},
    )
    contact = customer.contacts.get(email_index__isnull=False, role="billing")
    assert contact.history.get().history_user == agent


def test_the_agent_adds_a_line_rented_as_a_product_choosing_a_labelled_site(client, agent, customer, product):
    client.force_login(agent)
    site = customer.sites.get()
    form = client.get(f"/billing/customers/{customer.reference}/lines/new/").content.decode()
    # The customer's own sites only, told apart by reference, name, outward code and id.
    assert f"{customer.reference} {site.label}, {site.postcode.split()[0]} *** (site {site.pk})" in form
    response = client.post(
        f"/billing/customers/{customer.reference}/lines/new/",
        {
            "cli": "01947 600300",
            "line_type": "isdn",
            "product": product.pk,
            "site": site.pk,
            "start_date": "2026-11-30",
        },
    )
    assert response.status_code == 302, response.content.decode()
    line = Line.objects.get(customer=customer, line_type="isdn")
    assert line.site == site and line.history.get().history_user == agent
    assert LineProduct.objects.get(line=line).product == product


def test_a_site_of_another_customer_is_refused(client, agent, customer, product, partner):
    from tests.factories import full_customer

    someone_else = full_customer(partner)
    client.force_login(agent)
    response = client.post(
        f"/billing/customers/{customer.reference}/lines/new/",
        {
            "cli": "01947 600301",
            "line_type": "isdn",
            "product": product.pk,
            "site": someone_else.sites.get().pk,
            "start_date": "2026-11-30",
        },
    )
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not Line.objects.filter(line_type="isdn").exists()


@pytest.mark.parametrize("role", [Role.SUPPORT_AGENT, Role.FINANCE_MANAGER])
def test_roles_that_may_not_add_see_no_links_and_are_refused(client, make_user, role, customer):
    client.force_login(make_user(role))
    page = client.get(f"/customers/{customer.reference}/").content.decode()
    assert "Add a site" not in page and "Add a contact" not in page and "Add a line" not in page
    for url in ("sites/new/", "contacts/new/"):
        assert client.get(f"/customers/{customer.reference}/{url}").status_code == 403
    assert client.get(f"/billing/customers/{customer.reference}/lines/new/").status_code == 403
