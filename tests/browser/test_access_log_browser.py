"""In real Chromium: a support agent reveals a customer's data with a reason; that customer then opens
"Who has seen my data" in the portal and sees the reveal with the agent's role, organisation and reason
(never the agent's name or email), and asks the DPO about it, with no console error or CSP violation."""

import pytest

from accounts.models import AccessLog, Role
from privacy.models import PrivacyRequest
from tests.conftest import VerifiedClient

# Chromium keeps the real clock: relative times only. serialized_rollback keeps the role groups.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

AGENT_NAME = "Sandeep Browsewell"
AGENT_EMAIL = "sandeep.browsewell@partner.test"
REASON = "Customer rang about a duplicated Direct Debit"


def sign_in(browsing, user) -> None:
    """The session of a verified login (password and second factor), handed to the browser."""
    client = VerifiedClient()
    client.force_login(user)
    browsing.page.context.clear_cookies()
    browsing.page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": browsing.base_url}]
    )


def test_a_reveal_with_a_reason_appears_in_the_customers_portal_by_role(browsing, make_user, customer):
    agent = make_user(Role.SUPPORT_AGENT, full_name=AGENT_NAME, email=AGENT_EMAIL)
    portal = make_user(Role.CUSTOMER, customer=customer)
    page = browsing.page

    sign_in(browsing, agent)
    browsing.goto(f"/customers/{customer.reference}/")
    page.get_by_label("Reason to reveal").fill(REASON)
    page.get_by_role("button", name="Reveal").click()
    page.get_by_text("your reveal was recorded in the access log").wait_for()
    entry = AccessLog.objects.get(customer=customer, user=agent, action=AccessLog.Action.REVEAL)

    sign_in(browsing, portal)
    browsing.goto("/my-account/")
    page.locator("dl.facts").get_by_role("link", name="Who has seen my data").click()
    row = page.locator(f"#entry-{entry.pk}")
    row.wait_for()
    text = row.inner_text()
    assert "Revealed your masked data" in text
    assert f"Support agent, {customer.partner.name}" in text
    assert REASON in text
    content = page.content()
    assert AGENT_NAME not in content and AGENT_EMAIL not in content

    row.get_by_text("Ask about this").click()
    row.get_by_label("Your question (optional)").fill("Was this needed?")
    row.get_by_role("button", name="Send to our data protection officer").click()
    page.get_by_text("Your question is DSR-").wait_for()
    asked = PrivacyRequest.objects.get(access_log_entry_id=entry.pk)
    assert asked.customer_id == customer.pk
    assert f"Asked: {asked.reference}" in page.locator(f"#entry-{entry.pk}").inner_text()
    assert browsing.problems == []
