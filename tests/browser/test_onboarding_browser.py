"""A billing agent, in real Chromium, takes on a customer through the pages: the sections, the review with
the bank details masked, and the confirmation landing on the new customer's Site Details, with no console
error or Content-Security-Policy violation."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Customer, Role
from billing.models import LineProduct
from billing.services.catalogue import product_create
from tests.browser.test_breach_browser import sign_in

# Chromium keeps the real clock: relative times only. serialized_rollback keeps the role groups.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_an_agent_onboards_a_customer_through_the_pages(browsing, make_user, partner, profile):
    agent = make_user(Role.BILLING_AGENT)
    today = timezone.localdate()
    product_create(
        partner=partner,
        name="Analogue line rental",
        monthly_price=Decimal("12.50"),
        valid_from=today - datetime.timedelta(days=365),
        actor=agent,
    )
    sign_in(browsing, agent)
    page = browsing.page

    browsing.goto("/")
    page.get_by_role("link", name="New customer").click()
    page.fill("[name=customer-name]", "Harbour Bakery Ltd")
    page.fill("[name=customer-contract_start]", today.isoformat())
    page.fill("[name=site-address_line1]", "1 Quay Street")
    page.fill("[name=site-town]", "Whitby")
    page.fill("[name=site-postcode]", "YO21 1AA")
    page.fill("[name=contact-name]", "Ann Baker")
    page.fill("[name=contact-email]", "ann@harbour.example")
    page.fill("[name=contact-phone]", "07700 100456")
    page.fill("[name=lines-0-cli]", "01947 600100")
    page.select_option("[name=lines-0-product]", label="Analogue line rental")
    page.fill("[name=bank-account_holder]", "Harbour Bakery")
    page.fill("[name=bank-sort_code]", "08-99-99")
    # A mistyped account number first: named, and nothing saved.
    page.fill("[name=bank-account_number]", "66374959")
    page.get_by_role("button", name="Review").click()
    errors = page.locator("#onboarding-errors")
    errors.wait_for()
    assert "Direct Debit account number: This account number is not valid" in errors.inner_text()
    assert not Customer.objects.exists()

    page.fill("[name=bank-account_number]", "66374958")
    page.get_by_role("button", name="Review").click()
    page.get_by_role("heading", name="Review the new customer").wait_for()
    summary = page.locator("main").inner_text()
    assert "****4958" in summary and "66374958" not in summary
    assert "£12.50" in summary

    page.get_by_role("button", name="Confirm and save").click()
    page.get_by_role("heading", name="Harbour Bakery Ltd").wait_for()
    customer = Customer.objects.get(partner=partner)
    assert page.url.endswith(f"/customers/{customer.reference}/")
    assert LineProduct.objects.get(line__customer=customer).product.name == "Analogue line rental"
    assert browsing.problems == []
