"""The admin's forms refuse what its lists hide: another partner's customers cannot be written to."""

from accounts.models import Role
from tests.factories import SiteFactory


def test_admin_add_contact_refuses_another_partners_customer(client, make_user, other_customer):
    client.force_login(make_user(Role.BILLING_AGENT))
    response = client.post(
        "/admin/accounts/contact/add/",
        {
            "customer": other_customer.pk,
            "name": "Mallory",
            "email": "m@example.com",
            "phone": "07700100555",
            "role": "primary",
        },
    )
    assert response.status_code == 200
    assert "customer" in response.context["adminform"].form.errors
    assert other_customer.contacts.count() == 1


def test_admin_add_contact_for_own_customer(client, make_user, customer):
    client.force_login(make_user(Role.BILLING_AGENT))
    response = client.post(
        "/admin/accounts/contact/add/",
        {
            "customer": customer.pk,
            "name": "Jo Bloggs",
            "email": "Jo@Example.com",
            "phone": "07700 100555",
            "role": "technical",
        },
    )
    assert response.status_code == 302
    added = customer.contacts.get(role="technical")
    assert (added.email, added.phone) == ("jo@example.com", "+447700100555")


def test_admin_line_cannot_point_at_another_partners_site(client, make_user, customer, other_customer):
    foreign_site = SiteFactory(customer=other_customer)
    line = customer.lines.get()
    client.force_login(make_user(Role.BILLING_AGENT))
    response = client.post(
        f"/admin/accounts/line/{line.pk}/change/",
        {
            "customer": customer.pk,
            "site": foreign_site.pk,
            "cli": line.cli,
            "line_type": line.line_type,
            "start_date": "2024-01-01",
        },
    )
    assert response.status_code == 200
    assert "site" in response.context["adminform"].form.errors
    line.refresh_from_db()
    assert line.site_id != foreign_site.pk


def test_nobody_deletes_customers_from_the_admin(client, make_user, customer):
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.post(f"/admin/accounts/customer/{customer.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert type(customer).objects.filter(pk=customer.pk).exists()
