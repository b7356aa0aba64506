"""Hostile and oversized input: refused with the field named, or shown escaped, never executed."""

import pytest

from accounts import services
from accounts.models import Role
from fusion_site.spreadsheet import safe_cell

SCRIPT = '<script>alert("x")</script>'


def test_an_oversized_name_is_refused_naming_the_field(client, make_user, customer):
    client.force_login(make_user(Role.SUPPORT_AGENT))
    contact = customer.contacts.first()

    response = client.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/",
        {"name": "x" * 5000, "email": contact.email, "phone": contact.phone, "role": "primary"},
    )

    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    contact.refresh_from_db()
    assert contact.name != "x" * 5000


def test_an_oversized_reveal_reason_is_refused(client, make_user, customer):
    client.force_login(make_user(Role.SUPPORT_AGENT))

    response = client.post(f"/customers/{customer.reference}/reveal/", {"reason": "r" * 5000})

    assert "reason" in response.context["reveal_form"].errors


def test_html_in_names_and_notes_is_shown_escaped(client, make_user, customer):
    agent = make_user(Role.BILLING_AGENT)
    services.customer_update(customer=customer, actor=agent, name=SCRIPT)
    services.provisioning_order_create(customer=customer, kind="provide", actor=agent, notes=SCRIPT)
    client.force_login(agent)

    pages = [
        client.get("/").content.decode(),
        client.get(f"/customers/{customer.reference}/").content.decode(),
    ]

    for page in pages:
        assert SCRIPT not in page
        assert "&lt;script&gt;" in page


def test_html_in_a_contact_name_is_escaped_when_revealed(client, make_user, customer):
    agent = make_user(Role.SUPPORT_AGENT)
    contact = customer.contacts.first()
    services.contact_update(contact=contact, actor=agent, name=SCRIPT)
    client.force_login(agent)

    page = client.post(f"/customers/{customer.reference}/reveal/", {"reason": "call"}).content.decode()

    assert SCRIPT not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+44 113 496 0000", "'+44 113 496 0000"),
        ("-1+2", "'-1+2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("Acme Ltd", "Acme Ltd"),
        ("", ""),
    ],
)
def test_spreadsheet_cells_never_start_a_formula(value, cell):
    assert safe_cell(value) == cell
