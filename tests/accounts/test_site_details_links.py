"""The links that billing and privacy add to a customer's Site Details page, shown to exactly the roles
whose permissions reach the page they lead to, in the page's order.

Accounts names none of these pages: billing and privacy register the links from their AppConfig.ready()
(``accounts.site_details_links``), so these tests go through the real page with the real registrations.
"""

import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import site_details_links
from accounts.models import Customer, Role

RESUME = "Resume billing…"
INVOICES = "View invoices"
EXPORTS = "Portability exports"
ACCOUNT = "Account and payments"
ACCESS_LOG = "Who has seen my data"

# From the role grants: billing.calculate_billrun (resume), billing.view_invoice (invoices),
# billing.view_ledgerentry (the account), privacy.view_dataexport for staff (a portal user downloads its
# own data from "Download my data"); privacy.add_privacyrequest for the customer's own portal user, who
# may ask about an entry of its access log.
LINKS_BY_ROLE = {
    Role.ADMINISTRATOR: {INVOICES, ACCOUNT},
    Role.BILLING_AGENT: {RESUME, INVOICES, ACCOUNT},
    Role.SUPPORT_AGENT: set(),
    Role.FINANCE_MANAGER: {INVOICES, ACCOUNT},
    Role.DATA_PROTECTION_OFFICER: {EXPORTS, INVOICES, ACCOUNT},
    Role.CUSTOMER: {ACCESS_LOG, INVOICES, ACCOUNT},
}


def _cease_billing(customer: Customer) -> None:
    customer.billing_ceased_at = timezone.now()
    customer.billing_ceased_reason = "Objection upheld"
    customer.save()


def _facts(client, customer: Customer) -> str:
    response = client.get(reverse("accounts:site_details", args=[customer.reference]))
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    return re.search(r'<dl class="facts">(.*?)</dl>', page, re.DOTALL).group(1)


def _expected_fragments(customer: Customer) -> dict[str, str]:
    reference = customer.reference
    return {
        RESUME: (
            f': Objection upheld <a href="{reverse("billing:lift_cease", args=[reference])}">'
            f"{RESUME}</a></dd>"
        ),
        EXPORTS: (
            f'<dt>Data exports</dt><dd><a href="{reverse("privacy:customer_exports", args=[reference])}">'
            f"{EXPORTS}</a></dd>"
        ),
        ACCESS_LOG: (
            f'<dt>Access to your data</dt><dd><a href="{reverse("privacy:my_access_log")}">'
            f"{ACCESS_LOG}</a></dd>"
        ),
        INVOICES: (
            f'<dt>Invoices</dt><dd><a href="{reverse("billing:customer_invoices", args=[reference])}">'
            f"{INVOICES}</a></dd>"
        ),
        ACCOUNT: (
            f'<dt>Account</dt><dd><a href="{reverse("billing:account", args=[reference])}">{ACCOUNT}</a></dd>'
        ),
    }


@pytest.mark.parametrize("role", list(Role))
def test_each_role_gets_the_links_its_permissions_allow(client, make_user, customer, role):
    _cease_billing(customer)
    client.force_login(make_user(role, customer=customer) if role == Role.CUSTOMER else make_user(role))

    facts = _facts(client, customer)

    shown = {text for text, fragment in _expected_fragments(customer).items() if fragment in facts}
    assert shown == LINKS_BY_ROLE[role]
    assert facts.count("<a href=") == len(LINKS_BY_ROLE[role])


def test_links_keep_the_page_order_between_billing_ceased_and_processing_restricted(client, dpo, customer):
    _cease_billing(customer)
    customer.processing_restricted_at = timezone.now()
    customer.processing_restricted_reason = "Accuracy contested"
    customer.save()
    client.force_login(dpo)

    facts = _facts(client, customer)

    order = ["Billing ceased", "Data exports", "Invoices", "Account", "Processing restricted"]
    positions = [facts.index(f"<dt>{heading}</dt>") for heading in order]
    assert positions == sorted(positions)


def test_no_resume_link_while_billing_runs(client, agent, customer):
    client.force_login(agent)

    facts = _facts(client, customer)

    assert "Billing ceased" not in facts
    assert RESUME not in facts
    assert _expected_fragments(customer)[INVOICES] in facts


@pytest.fixture
def registrations(monkeypatch):
    """The hook's registrations as the apps made them, restored after the test."""
    monkeypatch.setattr(site_details_links, "_registrations", dict(site_details_links._registrations))


def test_a_registered_link_shows_once_in_its_order_for_whom_it_gives_one(
    client, dpo, make_user, customer, registrations
):
    def contract_link(customer, user):
        if not user.has_perm("privacy.view_dataexport"):
            return None
        return site_details_links.SiteDetailsLink("Contract file", f"/contracts/{customer.reference}/")

    for _ in range(2):  # as a second ready() would: the key is replaced, not added again
        site_details_links.register_site_details_link(
            key="tests.contract",
            slot=site_details_links.Slot.FACTS,
            heading="Framework agreement",
            order=15,
            link_for=contract_link,
        )
    client.force_login(dpo)

    facts = _facts(client, customer)

    row = f'<dt>Framework agreement</dt><dd><a href="/contracts/{customer.reference}/">Contract file</a></dd>'
    assert facts.count(row) == 1
    assert facts.index("<dt>Data exports</dt>") < facts.index(row) < facts.index("<dt>Invoices</dt>")
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert "Framework agreement" not in _facts(client, customer)


def test_a_fact_needs_a_heading_and_only_a_fact_has_one(registrations):
    with pytest.raises(ValueError, match="heading"):
        site_details_links.register_site_details_link(
            key="tests.bare",
            slot=site_details_links.Slot.FACTS,
            order=1,
            link_for=lambda customer, user: None,
        )
    with pytest.raises(ValueError, match="heading"):
        site_details_links.register_site_details_link(
            key="tests.action",
            slot=site_details_links.Slot.BILLING_CEASED,
            heading="Resume",
            order=1,
            link_for=lambda customer, user: None,
        )
