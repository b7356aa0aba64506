"""Encryption at rest: raw SQL sees only ciphertext, in the live tables and in their history tables."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError
from django.db import connection

from accounts.models import Contact, Customer, Line, PaymentDetails, Role, Site
from fusion_site import crypto
from fusion_site.fields import encrypted_fields
from tests.factories import (
    ContactFactory,
    CustomerFactory,
    LineFactory,
    PaymentDetailsFactory,
    SiteFactory,
)

PLAINTEXTS = {
    "name": "Gwendolyn Featherstonehaugh",
    "email": "gwendolyn.f@example.org",
    "phone_e164": "+447700100987",
    "phone_national": "07700100987",
    "address": "17 Quillfeather Lane",
    "town": "Much Wenlock",
    "postcode": "TF13 6AQ",
    "sort_code": "204060",
    "account_number": "31226819",
    "mandate": "DDQX998877",
    "cli": "+441134960555",
}
ENCRYPTED_MODELS = [Site, Contact, Line, PaymentDetails]


@pytest.fixture
def stored_customer(db):
    customer = CustomerFactory()
    site = SiteFactory(
        customer=customer, address_line1=PLAINTEXTS["address"], town=PLAINTEXTS["town"], postcode="tf136aq"
    )
    contact = ContactFactory(
        customer=customer, name=PLAINTEXTS["name"], email=PLAINTEXTS["email"], phone="07700 100987"
    )
    LineFactory(customer=customer, site=site, cli="0113 496 0555")
    PaymentDetailsFactory(
        customer=customer,
        account_holder=PLAINTEXTS["name"],
        sort_code="20-40-60",
        account_number=PLAINTEXTS["account_number"],
        mandate_reference=PLAINTEXTS["mandate"],
    )
    # An edit, so the history tables hold more than the first version.
    contact.name = PLAINTEXTS["name"] + " Jr"
    contact.save()
    return customer


def _raw_rows(table: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
        return cursor.fetchall()


@pytest.mark.parametrize("model", ENCRYPTED_MODELS, ids=lambda m: m.__name__)
def test_raw_sql_of_table_and_history_shows_no_plaintext(stored_customer, model):
    history_table = model.history.model._meta.db_table
    for table in (model._meta.db_table, history_table):
        rows = _raw_rows(table)
        assert rows, f"{table} is empty, so the check would prove nothing"
        dump = repr(rows)
        for label, plaintext in PLAINTEXTS.items():
            assert plaintext not in dump, f"{label} stored in clear in {table}"
            assert plaintext.lower() not in dump.lower(), f"{label} stored in clear in {table}"


@pytest.mark.parametrize("model", ENCRYPTED_MODELS, ids=lambda m: m.__name__)
def test_every_encrypted_column_holds_ciphertext_under_the_current_key(stored_customer, model, settings):
    primary = crypto.key_id(settings.FIELD_ENCRYPTION_KEYS[0])
    columns = [str(field.column) for field in encrypted_fields(model)]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(columns)} FROM {model._meta.db_table}")
        values = [value for row in cursor.fetchall() for value in row if value is not None]
    assert values
    for value in values:
        prefix, kid, _token = crypto.split_ciphertext(value)
        assert (prefix, kid) == (crypto.CIPHERTEXT_PREFIX, primary)


def test_values_decrypt_back_through_the_orm(stored_customer):
    contact = Contact.objects.get(customer=stored_customer)
    assert contact.email == PLAINTEXTS["email"]
    assert contact.phone == PLAINTEXTS["phone_e164"]
    assert Site.objects.get(customer=stored_customer).postcode == PLAINTEXTS["postcode"]
    assert PaymentDetails.objects.get(customer=stored_customer).sort_code == PLAINTEXTS["sort_code"]


def test_wrong_key_fails_loudly(stored_customer, settings):
    settings.FIELD_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError, match="not configured"):
        list(Contact.objects.filter(customer=stored_customer))


def test_tampered_ciphertext_fails_loudly(stored_customer):
    contact = Contact.objects.get(customer=stored_customer)
    column = Contact._meta.get_field("email").column
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM accounts_contact WHERE id = %s", [contact.pk])
        stored = cursor.fetchone()[0]
        cursor.execute(
            f"UPDATE accounts_contact SET {column} = %s WHERE id = %s",
            [stored[:-6] + "AAAAAA", contact.pk],
        )
    with pytest.raises(crypto.DecryptionError, match="failed verification"):
        Contact.objects.get(pk=contact.pk)


def test_old_key_still_decrypts_after_a_new_key_is_added(stored_customer, settings):
    old_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, *old_keys]
    contact = Contact.objects.get(customer=stored_customer)
    assert contact.email == PLAINTEXTS["email"]
    contact.save()
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM accounts_contact WHERE id = %s", [contact.pk])
        _prefix, kid, _token = crypto.split_ciphertext(cursor.fetchone()[0])
    assert kid == crypto.key_id(new_key)


def test_querying_an_encrypted_field_is_refused(db):
    with pytest.raises(FieldError, match="blind index"):
        Contact.objects.filter(email="someone@example.com").count()


def test_blind_index_is_keyed_and_purpose_separated(settings):
    phone_digest = crypto.blind_index("phone", "+447700100987")
    assert phone_digest != crypto.blind_index("email", "+447700100987")
    settings.BLIND_INDEX_KEY = "another-key"
    assert crypto.blind_index("phone", "+447700100987") != phone_digest


@pytest.mark.parametrize(
    "query", ["07700 100987", "+44 7700 100987", "(07700) 100-987", "447700100987", "+447700100987"]
)
def test_staff_search_finds_contact_from_differently_formatted_phone(client, make_user, partner, query):
    customer = CustomerFactory(partner=partner, name="Zebra Holdings")
    ContactFactory(customer=customer, phone="07700100987")
    CustomerFactory(partner=partner, name="Unrelated Ltd")
    client.force_login(make_user(Role.SUPPORT_AGENT))
    response = client.get("/", {"q": query})
    assert [row.pk for row in response.context["page"].object_list] == [customer.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [("GWEN.F@EXAMPLE.ORG", "email"), ("tf13 6aq", "postcode"), ("0113 496 0555", "cli")],
)
def test_staff_search_by_email_postcode_and_line_number(client, make_user, partner, query, field):
    customer = CustomerFactory(partner=partner, name="Zebra Holdings")
    ContactFactory(customer=customer, email="gwen.f@example.org")
    SiteFactory(customer=customer, postcode="TF13 6AQ")
    LineFactory(customer=customer, cli="01134960555")
    CustomerFactory(partner=partner, name="Unrelated Ltd")
    client.force_login(make_user(Role.SUPPORT_AGENT))
    response = client.get("/", {"q": query})
    assert [row.pk for row in response.context["page"].object_list] == [customer.pk], field


def test_search_never_reaches_another_partners_customer(client, make_user, other_partner):
    theirs = CustomerFactory(partner=other_partner)
    ContactFactory(customer=theirs, phone="07700100987")
    client.force_login(make_user(Role.SUPPORT_AGENT))
    response = client.get("/", {"q": "07700 100987"})
    assert list(response.context["page"].object_list) == []


@pytest.mark.parametrize(
    ("url", "query"),
    [
        ("/admin/accounts/contact/", "07700 100987"),
        ("/admin/accounts/contact/", "Gwen.F@example.org"),
        ("/admin/accounts/site/", "tf136aq"),
        ("/admin/accounts/line/", "+441134960555"),
        ("/admin/accounts/customer/", "07700100987"),
    ],
)
def test_admin_search_through_blind_index(client, make_user, partner, url, query):
    customer = CustomerFactory(partner=partner, name="Zebra Holdings")
    ContactFactory(customer=customer, phone="07700100987", email="gwen.f@example.org")
    SiteFactory(customer=customer, postcode="TF13 6AQ")
    LineFactory(customer=customer, cli="01134960555")
    decoy = CustomerFactory(partner=partner, name="Unrelated Ltd")
    ContactFactory(customer=decoy)
    client.force_login(make_user(Role.BILLING_AGENT))
    response = client.get(url, {"q": query})
    assert response.status_code == 200
    results = list(response.context["cl"].result_list)
    assert len(results) == 1
    found = results[0]
    assert (found if isinstance(found, Customer) else found.customer) == customer
