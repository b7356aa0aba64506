"""History: edits through the Site Details page and the admin are recorded with the user who made them."""

from accounts.models import Contact, Role, Site
from tests.factories import SiteFactory


def test_contact_correction_on_site_details_is_recorded_with_the_editor(client, make_user, customer):
    editor = make_user(Role.SUPPORT_AGENT)
    contact = customer.contacts.get()
    client.force_login(editor)
    response = client.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/",
        {
            "name": "Janet Smith",
            "email": "janet@example.com",
            "phone": "07700 100555",
            "role": "billing",
            "reason": "Customer rang to correct her name",
        },
    )
    assert response.status_code == 302
    latest = contact.history.latest()
    assert latest.history_user == editor
    assert latest.history_type == "~"
    assert latest.name == "Janet Smith"
    assert latest.prev_record.name == "Jane Smith"
    assert "Customer rang to correct her name" in latest.history_change_reason
    assert latest.phone == "+447700100555"


def test_portal_user_correction_is_recorded_as_the_customer(client, make_user):
    portal = make_user(Role.CUSTOMER)
    site = SiteFactory(customer=portal.customer)
    client.force_login(portal)
    response = client.post(
        f"/customers/{portal.customer.reference}/sites/{site.pk}/edit/",
        {"label": "Head office", "address_line1": "2 New Street", "town": "Leeds", "postcode": "ls2 7ew"},
    )
    assert response.status_code == 302
    latest = Site.history.filter(id=site.pk).latest()
    assert latest.history_user == portal
    assert latest.postcode == "LS2 7EW"
    assert "by the customer" in latest.history_change_reason


def test_admin_edit_is_recorded_with_the_user(client, make_user, customer):
    admin_user = make_user(Role.ADMINISTRATOR)
    contact = customer.contacts.get()
    client.force_login(admin_user)
    url = f"/admin/accounts/contact/{contact.pk}/change/"
    response = client.post(
        url,
        {
            "customer": customer.pk,
            "name": "Jane Doe",
            "email": contact.email,
            "phone": contact.phone,
            "role": "technical",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    latest = Contact.history.filter(id=contact.pk).latest()
    assert latest.history_user == admin_user
    assert (latest.name, latest.role) == ("Jane Doe", "technical")


def test_timeline_on_site_details_names_changed_fields_and_editor_without_values(client, make_user, customer):
    editor = make_user(Role.SUPPORT_AGENT, full_name="Edith Editor")
    contact = customer.contacts.get()
    client.force_login(editor)
    client.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/",
        {"name": "Janet Smith", "email": contact.email, "phone": contact.phone, "role": contact.role},
    )
    viewer = make_user(Role.SUPPORT_AGENT, cleared=False)
    client.force_login(viewer)
    page = client.get(f"/customers/{customer.reference}/")
    timeline = page.context["timeline"]
    change = next(
        entry for entry in timeline if entry.what == f"Contact #{contact.pk}" and entry.change == "changed"
    )
    assert change.user == editor
    assert change.changed_fields == ["name"]
    html = page.content.decode()
    assert "Edith Editor" in html
    assert "Janet Smith" not in html and "Jane Smith" not in html
