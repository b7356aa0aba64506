"""The Site Details page and the staff home page run a fixed number of queries, whatever the size."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from fusion_site.compiled_reads import statement_of
from tests.factories import CustomerFactory, full_customer


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_site_details_queries_do_not_grow_with_sites_lines_or_contacts(client, make_user, partner):
    small = full_customer(partner, sites=1, lines=1, contacts=1)
    large = full_customer(partner, sites=6, lines=15, contacts=5)
    client.force_login(make_user(Role.BILLING_AGENT))
    client.get("/")  # the first request of a session fills per-process caches (content types)
    small_count = _queries(client, f"/customers/{small.reference}/")
    large_count = _queries(client, f"/customers/{large.reference}/")
    assert small_count == large_count
    assert large_count <= 20


def test_revealed_site_details_queries_are_constant_too(client, make_user, partner):
    small = full_customer(partner, sites=1, lines=1)
    large = full_customer(partner, sites=5, lines=12, contacts=4)
    client.force_login(make_user(Role.FINANCE_MANAGER))
    client.get("/")

    def reveal(customer) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.post(
                f"/customers/{customer.reference}/reveal/", {"reason": "Query", "include_payment": "on"}
            )
        assert response.status_code == 200 and response.context["visibility"].payment
        return len(captured)

    assert reveal(small) == reveal(large)


def test_staff_home_queries_do_not_grow_with_customers(client, make_user, partner):
    client.force_login(make_user(Role.SUPPORT_AGENT))
    client.get("/")
    for _ in range(3):
        full_customer(partner, sites=2, lines=3)
    few = _queries(client, "/")
    for _ in range(12):
        CustomerFactory(partner=partner)
    full_customer(partner, sites=4, lines=8)
    many = _queries(client, "/")
    assert few == many
    assert many <= 10


def test_admin_changelists_are_constant_in_queries(client, make_user, partner):
    client.force_login(make_user(Role.ADMINISTRATOR))
    client.get("/")  # the session's first request records its activity (a write), the next minute's do not
    full_customer(partner, sites=2, lines=2)
    urls = [
        "/admin/accounts/customer/",
        "/admin/accounts/contact/",
        "/admin/accounts/line/",
        "/admin/accounts/site/",
        "/admin/accounts/paymentdetails/",
    ]
    before = [_queries(client, url) for url in urls]
    for _ in range(5):
        full_customer(partner, sites=2, lines=3, contacts=2)
    after = [_queries(client, url) for url in urls]
    assert before == after


def test_the_portal_layout_links_to_the_customer_without_loading_it_again(client, make_user):
    user = make_user(Role.CUSTOMER)
    reference = user.customer.reference
    client.force_login(user)
    client.get("/my-account/")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(f"/customers/{reference}/")
    assert response.status_code == 200
    assert f'href="{reverse("billing:customer_invoices", args=[reference])}"' in response.content.decode()
    statements = [statement_of(query["sql"]) for query in captured]
    customer_reads = [
        sql for sql in statements if sql.startswith("SELECT") and 'FROM "accounts_customer"' in sql
    ]
    assert len(customer_reads) == 1, customer_reads  # the page's own access check, nothing for the layout
