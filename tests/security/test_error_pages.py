"""The 403, 404, 500 and CSRF failure pages with DEBUG off: in the product's layout, with a plain-text
title and a way back, and with a navigation only for a user who has passed the second factor."""

import re

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver

from accounts import two_factor
from accounts.models import Role, User
from fusion_site import error_views

TITLE = re.compile(r"<title>(.*?)</title>", re.S)
VERIFY = "/account/two-factor/"
ENROL = "/account/two-factor/enrol/"
# Links only the navigation holds (the pages' own way back links to "/" and the login page).
STAFF_MENU = ('href="/admin/"', 'href="/billing/runs/"', 'href="/privacy/"', "My account")


@pytest.fixture(autouse=True)
def _production_like(settings):
    settings.DEBUG = False


def _title(response) -> str:
    found = TITLE.search(response.content.decode())
    assert found is not None
    assert "<" not in found.group(1)
    return found.group(1)


def _menu_links(response) -> set[str]:
    html = response.content.decode()
    return {link for link in STAFF_MENU if link in html}


def test_the_sites_error_handlers_are_the_products_own():
    resolver = get_resolver()

    assert {code: resolver.resolve_error_handler(code) for code in (403, 404, 500)} == {
        403: error_views.permission_denied,
        404: error_views.page_not_found,
        500: error_views.server_error,
    }


def test_an_unknown_address_gives_the_404_page_without_a_menu_to_an_anonymous_visitor(db):
    response = Client().get("/no-such-page/")

    assert response.status_code == 404
    assert _title(response) == "Page not found · Fusion back office"
    html = response.content.decode()
    assert 'class="top"' in html  # the layout's header
    assert 'href="/login/"' in html and 'href="/site/"' in html  # ways back
    assert "<nav>" not in html and _menu_links(response) == set()


def test_the_404_page_offers_the_page_the_user_came_from(client, make_user):
    client.force_login(make_user(Role.BILLING_AGENT))

    response = client.get("/billing/runs/999999/", HTTP_REFERER="http://testserver/billing/runs/")

    assert response.status_code == 404
    html = response.content.decode()
    assert 'href="http://testserver/billing/runs/">Back to the previous page' in html
    assert 'href="/">Go to the home page' in html


def test_a_previous_page_on_another_site_is_not_offered(client, make_user):
    client.force_login(make_user(Role.BILLING_AGENT))

    response = client.get("/no-such-page/", HTTP_REFERER="https://evil.example/phish")

    assert "evil.example" not in response.content.decode()


def test_a_role_without_the_permission_gets_the_403_page_with_the_menu_it_may_use(client, make_user):
    client.force_login(make_user(Role.SUPPORT_AGENT))

    response = client.get("/billing/runs/")

    assert response.status_code == 403
    assert _title(response) == "Not allowed · Fusion back office"
    html = response.content.decode()
    assert "Your role does not allow this page or action." in html
    assert 'href="/">Go to the home page' in html
    # Signed in with both factors: the layout's navigation, as on every other page.
    assert 'href="/privacy/"' in html and 'href="/billing/runs/"' not in html


def test_the_403_page_says_why_when_the_refusal_says_it(client, make_user, customer):
    client.force_login(make_user(Role.SUPPORT_AGENT, cleared=False))

    response = client.post(f"/customers/{customer.reference}/reveal/", {"reason": "Caller asked"})

    assert response.status_code == 403
    assert "needs a signed confidentiality agreement and current training" in response.content.decode()


def test_a_failing_page_gives_the_500_page_without_context(settings, client, make_user):
    settings.ROOT_URLCONF = "tests.security.error_urls"
    client.raise_request_exception = False
    client.force_login(make_user(Role.ADMINISTRATOR))

    response = client.get("/test-only/broken/")

    assert response.status_code == 500
    assert _title(response) == "Something went wrong · Fusion back office"
    html = response.content.decode()
    assert 'href="/">Go to the home page' in html
    assert 'href="/static/css/site.css"' in html
    # Django renders it with an empty context: no user, so no menu even for a signed-in administrator.
    assert _menu_links(response) == set()


def test_the_500_page_needs_no_database():
    # No ``db`` fixture: any query would raise here.
    response = error_views.server_error(RequestFactory().get("/"))

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_a_form_sent_without_its_token_gets_the_csrf_page_in_the_layout(make_user):
    from tests.conftest import VerifiedClient

    client = VerifiedClient(enforce_csrf_checks=True)
    client.force_login(make_user(Role.ADMINISTRATOR))

    response = client.post("/billing/runs/", {"month": "2025-01"})

    assert response.status_code == 403
    assert _title(response) == "Form expired · Fusion back office"
    assert "sent without the security token" in response.content.decode()
    assert 'href="/admin/"' in response.content.decode()  # verified: the menu as usual


# A password alone ------------------------------------------------------------------------------------


def _password_only(user: User, *, enrolled: bool = True, **client_options) -> Client:
    """Signed in with the password, the second factor not yet passed (Django's plain client)."""
    if enrolled:
        two_factor.demo_authenticator(user)
    client = Client(**client_options)
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.DATA_PROTECTION_OFFICER, Role.CUSTOMER], ids=str)
def test_a_password_alone_shows_no_menu_on_the_second_factor_page(make_user, customer, role):
    extra = {"customer": customer} if role == Role.CUSTOMER else {}
    client = _password_only(make_user(role, **extra))

    response = client.get(VERIFY)

    assert response.status_code == 200
    assert _menu_links(response) == set()
    assert "Log out" in response.content.decode()  # the one way out


def test_a_password_alone_shows_no_menu_on_the_enrolment_page(make_user):
    client = _password_only(make_user(Role.ADMINISTRATOR), enrolled=False)

    response = client.get(ENROL)

    assert response.status_code == 200
    assert _menu_links(response) == set()


@pytest.mark.parametrize("role", [Role.ADMINISTRATOR, Role.CUSTOMER], ids=str)
def test_after_the_second_factor_the_same_page_shows_the_menu(client, make_user, customer, role):
    extra = {"customer": customer} if role == Role.CUSTOMER else {}
    client.force_login(make_user(role, **extra))

    response = client.get(VERIFY)

    expected = {'href="/admin/"', 'href="/billing/runs/"', 'href="/privacy/"'}
    assert _menu_links(response) == (expected if role == Role.ADMINISTRATOR else {"My account"})


def test_a_password_alone_shows_no_menu_on_an_error_page(make_user):
    # Static files are open before the second factor (the check page needs its stylesheet), so a missing
    # one is the error page such a session can reach; so is a refused form.
    client = _password_only(make_user(Role.ADMINISTRATOR), enforce_csrf_checks=True)

    missing = client.get("/static/no-such-file.css")
    refused = client.post(VERIFY, {"token": "123456"})

    assert missing.status_code == 404 and _title(missing) == "Page not found · Fusion back office"
    assert refused.status_code == 403 and _title(refused) == "Form expired · Fusion back office"
    assert _menu_links(missing) == set() and _menu_links(refused) == set()
