"""Bad input is rejected with a message naming the field, and nothing partial is saved."""

from typing import cast

import pytest
from django.core.exceptions import ValidationError

from accounts import services
from accounts.models import Contact, Customer, Line, NameToken, PaymentDetails, Role, Site
from tests.factories import CustomerFactory


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("email", "not-an-email", "Enter a valid email address."),
        ("phone", "12345", "Enter a valid phone number."),
        ("phone", "+44 20 7946 01", "Enter a valid phone number."),
    ],
)
def test_contact_rejects_bad_values_naming_the_field(db, field, value, message):
    customer = CustomerFactory()
    values = {"name": "Jane", "email": "jane@example.com", "phone": "07700 100123", field: value}
    with pytest.raises(ValidationError) as raised:
        services.contact_create(customer=customer, actor=None, **values)
    assert raised.value.message_dict == {field: [message]}
    assert not Contact.objects.exists()


@pytest.mark.parametrize("postcode", ["SW1A", "12345", "QQ1 1AA", "SW1A 1AAA", ""])
def test_site_rejects_invalid_uk_postcode(db, postcode):
    customer = CustomerFactory()
    with pytest.raises(ValidationError) as raised:
        services.site_create(
            customer=customer,
            actor=None,
            label="HQ",
            address_line1="1 High St",
            town="Leeds",
            postcode=postcode,
        )
    assert "postcode" in raised.value.message_dict
    assert not Site.objects.exists()


@pytest.mark.parametrize("postcode", ["sw1a1aa", "SW1A 1AA", " ec1a 1bb ", "M1 1AE", "GIR 0AA"])
def test_site_accepts_and_normalises_valid_postcodes(db, postcode):
    site = services.site_create(
        customer=CustomerFactory(),
        actor=None,
        label="HQ",
        address_line1="1 High St",
        town="London",
        postcode=postcode,
    )
    compact = postcode.replace(" ", "").upper()
    assert Site.objects.get(pk=site.pk).postcode == f"{compact[:-3]} {compact[-3:]}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sort_code", "12345"),
        ("sort_code", "12-34-5x"),
        ("account_number", "1234567"),
        ("account_number", "123456789"),
        ("account_number", "abcdefgh"),
    ],
)
def test_payment_details_reject_bad_bank_details(db, field, value):
    customer = CustomerFactory()
    values = {
        "account_holder": "Jane",
        "sort_code": "12-34-56",
        "account_number": "12345678",
        "mandate_reference": "DD1",
        field: value,
    }
    with pytest.raises(ValidationError) as raised:
        services.payment_details_set(customer=customer, actor=None, **values)
    assert list(raised.value.message_dict) == [field]
    assert not PaymentDetails.objects.exists()


def test_failed_update_keeps_what_was_stored(db):
    customer = CustomerFactory()
    details = services.payment_details_set(
        customer=customer,
        actor=None,
        account_holder="Jane",
        sort_code="123456",
        account_number="12345678",
        mandate_reference="DD1",
    )
    with pytest.raises(ValidationError):
        services.payment_details_set(
            customer=customer,
            actor=None,
            account_holder="Jane Doe",
            sort_code="123456",
            account_number="1",
            mandate_reference="DD1",
        )
    stored = PaymentDetails.objects.get(pk=details.pk)
    assert (stored.account_holder, stored.account_number) == ("Jane", "12345678")
    assert stored.history.count() == 1


def test_line_rejects_bad_cli_and_end_before_start(db):
    import datetime

    customer = CustomerFactory()
    with pytest.raises(ValidationError) as raised:
        services.line_create(
            customer=customer,
            cli="999",
            line_type=Line.LineType.SIP,
            start_date=datetime.date(2024, 1, 1),
            actor=None,
        )
    assert list(raised.value.message_dict) == ["cli"]
    with pytest.raises(ValidationError):
        services.line_create(
            customer=customer,
            cli="0113 496 0000",
            line_type=Line.LineType.SIP,
            start_date=datetime.date(2024, 1, 1),
            end_date=datetime.date(2023, 1, 1),
            actor=None,
        )
    assert not Line.objects.exists()


def test_customer_contract_must_end_after_it_starts(db):
    import datetime

    existing = cast(Customer, CustomerFactory())
    with pytest.raises(ValidationError):
        services.customer_create(
            partner=existing.partner,
            name="Backwards Ltd",
            contract_start=datetime.date(2024, 5, 1),
            contract_end=datetime.date(2024, 4, 1),
            actor=None,
        )
    assert list(Customer.objects.all()) == [existing]
    assert not NameToken.objects.exclude(customer=existing).exists()


def test_site_details_form_shows_error_on_the_field_and_saves_nothing(client, make_user, customer):
    contact = customer.contacts.get()
    before = (contact.name, contact.email, contact.phone)
    client.force_login(make_user(Role.SUPPORT_AGENT))
    response = client.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/",
        {"name": "New Name", "email": "broken@", "phone": "0113 496 0000", "role": "primary"},
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Enter a valid email address."]}
    contact.refresh_from_db()
    assert (contact.name, contact.email, contact.phone) == before
    assert contact.history.count() == 1


def test_admin_rejects_bad_postcode_naming_the_field(client, make_user, customer):
    site = customer.sites.get()
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.post(
        f"/admin/accounts/site/{site.pk}/change/",
        {
            "customer": customer.pk,
            "label": "HQ",
            "address_line1": "1 High St",
            "address_line2": "",
            "town": "Leeds",
            "postcode": "NOT A POSTCODE",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"postcode": ["Enter a valid UK postcode."]}
    assert Site.objects.get(pk=site.pk).postcode == "LS1 4AP"


def test_a_number_belongs_to_one_line_at_a_time(db):
    import datetime

    first = CustomerFactory()
    services.line_create(
        customer=first,
        cli="0113 496 0777",
        line_type=Line.LineType.SIP,
        start_date=datetime.date(2024, 1, 1),
        end_date=datetime.date(2024, 6, 30),
        actor=None,
    )
    other = CustomerFactory()
    with pytest.raises(ValidationError) as raised:
        services.line_create(
            customer=other,
            cli="+441134960777",
            line_type=Line.LineType.SIP,
            start_date=datetime.date(2024, 6, 1),
            actor=None,
        )
    assert list(raised.value.message_dict) == ["cli"]
    ported = services.line_create(
        customer=other,
        cli="+441134960777",
        line_type=Line.LineType.SIP,
        start_date=datetime.date(2024, 7, 1),
        actor=None,
    )
    assert ported.customer == other
