"""Customer and contact names: encrypted at rest (history and every table included), yet staff find a
customer by any word of its name or of a contact's name, within their own partner only, and contact
names stay masked for staff who may not reveal them."""

import datetime
import os
import shutil
import subprocess

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.templatetags.admin_list import result_headers
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from accounts import services
from accounts.demo import DemoBuilder
from accounts.models import Contact, Customer, NameToken, Role, name_index_digests
from accounts.selectors import names_holding_words, search_customers
from tests.conftest import require_service
from tests.factories import ContactFactory, CustomerFactory, LineFactory

CUSTOMER_NAME = "Quintessa Vexley-Marchbanks"
CONTACT_NAME = "Ottoline Fairweather-Grimsdyke"
FIRST_CUSTOMER_NAME = "Quintessa Vexley Interiors"
FIRST_CONTACT_NAME = "Ottoline Fairweather"


def _found(client, query: str) -> list[int]:
    """The ids of the customers the staff list's search for ``query`` shows, in order."""
    response = client.get("/", {"q": query})
    assert response.status_code == 200
    return [row.pk for row in response.context["page"].object_list]


def _pg_dump() -> str:
    """The data of the test database as pg_dump writes it (the test's rows must be committed)."""
    database = connection.settings_dict
    command = [
        "pg_dump",
        "--data-only",
        "-h",
        database["HOST"] or "127.0.0.1",
        "-p",
        str(database["PORT"] or 5432),
        "-U",
        database["USER"] or "postgres",
        database["NAME"],
    ]
    environment = {**os.environ, "PGPASSWORD": str(database["PASSWORD"] or "")}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)  # noqa: S603
    return done.stdout


@pytest.mark.services
# Committed, so pg_dump (another connection) sees the rows; serialized_rollback restores the migrated
# data (role groups, content types) the flush after a transactional test removes, as elsewhere.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_no_name_appears_anywhere_in_a_dump_of_the_database(client, make_user, partner):
    require_service(
        "PostgreSQL",
        connection.vendor == "postgresql",
        "the dump is pg_dump's; this run's DATABASE_URL is not PostgreSQL (SQLite)",
    )
    require_service("pg_dump", shutil.which("pg_dump") is not None, "the pg_dump client is not installed")
    staff = make_user(Role.ADMINISTRATOR)
    client.force_login(staff)
    # Entered as staff do: the customer and a contact in the admin, then both corrected.
    response = client.post(
        "/admin/accounts/customer/add/",
        {
            "partner": partner.pk,
            "name": FIRST_CUSTOMER_NAME,
            "status": Customer.Status.ACTIVE,
            "contract_start": "2024-01-01",
            "sites-TOTAL_FORMS": "0",
            "sites-INITIAL_FORMS": "0",
            "sites-MIN_NUM_FORMS": "0",
            "sites-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    customer = Customer.objects.get()
    response = client.post(
        "/admin/accounts/contact/add/",
        {
            "customer": customer.pk,
            "name": FIRST_CONTACT_NAME,
            "email": "o.f@example.org",
            "phone": "07700 100555",
            "role": "billing",
        },
    )
    assert response.status_code == 302
    contact = customer.contacts.get()
    services.customer_update(customer=customer, actor=staff, name=CUSTOMER_NAME, reason="Trading name")
    response = client.post(
        reverse("accounts:contact_edit", args=[customer.reference, contact.pk]),
        {"name": CONTACT_NAME, "email": "o.f@example.org", "phone": "07700 100555", "role": "billing"},
    )
    assert response.status_code == 302
    assert (Customer.objects.get().name, Contact.objects.get().name) == (CUSTOMER_NAME, CONTACT_NAME)
    assert Customer.history.filter(id=customer.pk).count() == 2
    assert Contact.history.filter(id=contact.pk).count() == 2

    dump = _pg_dump().casefold()

    # The dump holds this test's rows (so finding no name in it means something): the ciphertext, and
    # the keyed hashes of the names' words.
    assert "enc1$" in dump
    assert all(digest in dump for digest in name_index_digests(CUSTOMER_NAME + " " + CONTACT_NAME))
    words = {word for name in (CUSTOMER_NAME, CONTACT_NAME, FIRST_CUSTOMER_NAME) for word in name.split()}
    for needle in {CUSTOMER_NAME, CONTACT_NAME, FIRST_CUSTOMER_NAME, FIRST_CONTACT_NAME, *words}:
        assert needle.casefold() not in dump, f"{needle!r} is stored in clear"
    for needle in ("vexley", "marchbanks", "quintessa", "ottoline", "grimsdyke", "fairweather"):
        assert needle not in dump, f"{needle!r} is stored in clear"


@pytest.fixture
def named(partner):
    customer = CustomerFactory(partner=partner, name=CUSTOMER_NAME)
    ContactFactory(customer=customer, name=CONTACT_NAME)
    ContactFactory(customer=customer, name="Jane Smith")
    decoy = CustomerFactory(partner=partner, name="Vexford Plumbing Ltd")
    ContactFactory(customer=decoy, name="Otto Fairbairn")
    return customer


@pytest.mark.parametrize(
    "query",
    [
        "quintessa",
        "QUINTESSA",
        "Quíntéssa",
        "marchbanks",
        "vexley-marchbanks",
        "Marchbanks, Vexley",
        "  vexley   QUINTESSA ",
        # A contact's name finds its customer too.
        "Ottoline",
        "fairweather grimsdyke",
        "GRÍMSDYKE",
        "O'ttoline",
    ],
)
def test_staff_find_a_customer_by_any_word_of_its_or_a_contacts_name(client, make_user, named, query):
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert _found(client, query) == [named.pk]


@pytest.mark.parametrize(
    "query",
    [
        "quint",  # whole words only: the index holds words, not substrings
        "quintessa ottoline",  # every word in one name: the customer's and a contact's are not mixed
        "quintessa smith",
        "vexleymarchbanks",
    ],
)
def test_a_name_search_matches_whole_words_of_one_name(client, make_user, named, query):
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert _found(client, query) == []


def test_another_partners_customer_of_the_same_name_is_not_found(client, make_user, named, other_partner):
    theirs = CustomerFactory(partner=other_partner, name=CUSTOMER_NAME)
    ContactFactory(customer=theirs, name=CONTACT_NAME)

    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert _found(client, "Quintessa") == [named.pk]
    assert _found(client, "Ottoline") == [named.pk]
    # Provider staff see every partner: both are found, so the partner agent's search was scoped.
    client.force_login(make_user(Role.ADMINISTRATOR))
    assert _found(client, "Quintessa") == [named.pk, theirs.pk]


def test_a_corrected_name_is_found_by_its_new_words_only(named, make_user):
    staff = make_user(Role.BILLING_AGENT)
    services.customer_update(customer=named, actor=staff, name="Zanzibar Tiles", reason="Renamed")
    contact = next(c for c in named.contacts.all() if c.name == CONTACT_NAME)
    services.contact_update(contact=contact, actor=staff, name="Ottilie Brandwood", reason="Married")
    everyone = Customer.objects.all()

    assert list(search_customers(everyone, "zanzibar")) == [named]
    assert list(search_customers(everyone, "brandwood")) == [named]
    assert list(search_customers(everyone, "quintessa")) == []
    assert list(search_customers(everyone, "grimsdyke")) == []
    # Three names indexed for the customer: its own and two contacts'.
    assert NameToken.objects.filter(customer=named).values("contact_id").distinct().count() == 3


def test_deleting_a_contact_removes_its_words(named):
    contact = next(c for c in named.contacts.all() if c.name == CONTACT_NAME)
    contact.delete()
    assert not names_holding_words("ottoline").exists()
    assert list(search_customers(Customer.objects.all(), "quintessa")) == [named]


@pytest.mark.parametrize(
    ("url", "query", "expected"),
    [
        ("/admin/accounts/customer/", "Ottoline", "customer"),
        ("/admin/accounts/customer/", "vexley", "customer"),
        ("/admin/accounts/contact/", "ottoline fairweather-grimsdyke", "contact"),
        ("/admin/accounts/contact/", "QUINTESSA", "contacts of the customer"),
        ("/admin/accounts/line/", "marchbanks", "lines of the customer"),
        ("/admin/accounts/paymentdetails/", "marchbanks", "mandate of the customer"),
    ],
)
def test_admin_searches_names_by_word(client, make_user, named, url, query, expected):
    LineFactory(customer=named)
    services.payment_details_set(
        customer=named,
        actor=None,
        account_holder=CUSTOMER_NAME,
        sort_code="20-40-60",
        account_number="31226819",
        mandate_reference="DDQX998877",
    )
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.get(url, {"q": query})
    assert response.status_code == 200
    results = list(response.context["cl"].result_list)
    model = response.context["cl"].model
    if model is Customer:
        assert results == [named]
    elif expected == "contact":
        assert [c.name for c in results] == [CONTACT_NAME]
    else:
        assert results and {row.customer_id for row in results} == {named.pk}
        assert len(results) == model.objects.filter(customer=named).count()


def test_admin_customer_list_cannot_sort_by_the_encrypted_name(client, make_user, named):
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.get("/admin/accounts/customer/")
    assert response.status_code == 200
    headers = {header["text"]: header["sortable"] for header in result_headers(response.context["cl"])}
    assert headers["Name"] is False and headers["Reference"] is True
    assert CUSTOMER_NAME in response.content.decode()


def test_contact_names_stay_masked_unless_revealed_by_cleared_staff(client, make_user, named):
    page = reverse("accounts:site_details", args=[named.reference])
    client.force_login(make_user(Role.SUPPORT_AGENT, cleared=False))
    masked = client.get(page).content.decode()
    assert CONTACT_NAME not in masked and "O***" in masked
    assert (
        client.post(reverse("accounts:reveal", args=[named.reference]), {"reason": "Call"}).status_code == 403
    )

    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert CONTACT_NAME not in client.get(page).content.decode()
    revealed = client.post(reverse("accounts:reveal", args=[named.reference]), {"reason": "Customer called"})
    assert revealed.status_code == 200 and CONTACT_NAME in revealed.content.decode()


def test_the_admin_masks_contact_names_for_staff_not_cleared(client, make_user, named):
    contact = next(c for c in named.contacts.all() if c.name == CONTACT_NAME)
    client.force_login(make_user(Role.SUPPORT_AGENT, cleared=False))
    page = client.get(f"/admin/accounts/contact/{contact.pk}/change/").content.decode()
    assert CONTACT_NAME not in page and "O***" in page


def test_the_admin_change_log_names_a_customer_by_reference_only(client, make_user, named):
    client.force_login(make_user(Role.ADMINISTRATOR))
    form = {
        "name": "Quintessa Vexley Studio",
        "status": Customer.Status.ACTIVE,
        "contract_start": "2024-01-01",
        **{f"sites-{key}": value for key, value in {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0}.items()},
    }
    response = client.post(f"/admin/accounts/customer/{named.pk}/change/", form)
    assert response.status_code == 302
    entry = LogEntry.objects.get(object_id=str(named.pk), content_type__model="customer")
    assert entry.object_repr == named.reference and entry.action_flag == CHANGE
    assert entry.get_change_message() == "Changed Name."


def _migrations_around_encryption() -> tuple[tuple[str, str], tuple[str, str]]:
    """(the migration before it, the latest) of accounts, found by name so renumbering does not matter."""
    graph = MigrationExecutor(connection).loader.graph
    (encrypt,) = [key for key in graph.nodes if key[0] == "accounts" and key[1].endswith("_encrypt_names")]
    (before,) = [key for key in graph.node_map[encrypt].parents if key[0] == "accounts"]
    return before, graph.leaf_nodes("accounts")[0]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.usefixtures("migrations_restored")
def test_the_migration_encrypts_existing_names_and_history_and_indexes_their_words():
    before, latest = _migrations_around_encryption()
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    old = executor.loader.project_state(before).apps
    group = old.get_model("auth", "Group").objects.create(name="partner:old")
    partner = old.get_model("accounts", "Partner").objects.create(code="old", name="Old", staff_group=group)
    customer = old.get_model("accounts", "Customer").objects.create(
        partner=partner, name="Zoë O'Brien-Quayle", contract_start=datetime.date(2024, 1, 1)
    )
    old.get_model("accounts", "Customer").objects.create(
        partner=partner,
        name="Erased customer C-000002",
        contract_start=datetime.date(2024, 1, 1),
        erased_at=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
    )
    at = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    old.get_model("accounts", "HistoricalCustomer").objects.create(
        id=customer.pk,
        partner_id=partner.pk,
        name="Zoë O'Brien",
        status="active",
        contract_start=datetime.date(2024, 1, 1),
        created_at=at,
        updated_at=at,
        history_date=at,
        history_type="+",
    )
    old.get_model("accounts", "Contact").objects.create(
        customer=customer, name="Marguerite Quillon", email="m@example.com", phone="+447700900123"
    )

    MigrationExecutor(connection).migrate([latest])

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM accounts_customer UNION ALL SELECT name FROM accounts_historicalcustomer"
        )
        stored = [row[0] for row in cursor.fetchall()]
    assert len(stored) == 3 and all(value.startswith("enc1$") for value in stored)
    assert Customer.objects.get(pk=customer.pk).name == "Zoë O'Brien-Quayle"
    assert Customer.history.get(id=customer.pk).name == "Zoë O'Brien"
    everyone = Customer.objects.all()
    assert [c.pk for c in search_customers(everyone, "zoe obrien")] == [customer.pk]
    assert [c.pk for c in search_customers(everyone, "QUILLON")] == [customer.pk]
    assert list(search_customers(everyone, "erased")) == []  # an erased placeholder is not indexed


def test_demo_customers_and_contacts_written_in_bulk_are_findable_by_name(db):
    builder = DemoBuilder(seed=7)
    (partner,) = builder.partners(1)
    builder.customers(partner, 3)
    everyone = Customer.objects.all()
    for customer in Customer.objects.filter(partner=partner):
        assert customer in search_customers(everyone, customer.name)
        for contact in customer.contacts.all():
            assert customer in search_customers(everyone, contact.name)
    assert NameToken.objects.filter(contact__isnull=False).values("contact_id").distinct().count() == 6
