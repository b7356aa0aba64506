"""Choosing a line or a line's site in the admin: a line is found by its number (its blind index) and named
by account reference, type and masked number; the line form offers only its own customer's sites, named
so that many "Head office" sites can be told apart."""

from accounts import validation
from tests.factories import SiteFactory, full_customer


def test_the_line_form_offers_only_its_customers_sites_labelled(client, agent, customer, partner):
    other = full_customer(partner)  # another "Site 0" of the same partner
    SiteFactory(customer=customer, label="Head office")
    client.force_login(agent)
    line = customer.lines.get()
    page = client.get(f"/admin/accounts/line/{line.pk}/change/").content.decode()
    for site in customer.sites.all():
        outward = site.postcode.split()[0]
        assert f"{customer.reference} {site.label}, {outward} *** (site {site.pk})" in page
    assert f"(site {other.sites.get().pk})" not in page


def test_the_add_form_opened_for_a_customer_offers_its_sites_only(client, agent, customer, partner):
    other = full_customer(partner)
    client.force_login(agent)
    page = client.get(f"/admin/accounts/line/add/?customer={customer.pk}").content.decode()
    assert f"(site {customer.sites.get().pk})" in page
    assert f"(site {other.sites.get().pk})" not in page


def test_a_line_is_found_by_its_number_where_one_is_chosen(client, agent, customer, partner):
    full_customer(partner)
    client.force_login(agent)
    line = customer.lines.get()
    national = validation.national_phone_digits(line.cli)
    response = client.get(
        "/admin/autocomplete/",
        {"app_label": "billing", "model_name": "recurringcharge", "field_name": "line", "term": national},
    )
    results = response.json()["results"]
    masked = f"{national[:2]}*** ***{national[-3:]}"
    assert results == [{"id": str(line.pk), "text": f"{customer.reference} Analogue line (WLR) {masked}"}]
