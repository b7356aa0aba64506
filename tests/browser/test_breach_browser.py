"""The DPO, in real Chromium, opens an incident from an unusual-access alert and sees the 72-hour clock,
with no console error or Content-Security-Policy violation."""

import re

import pytest

from accounts.models import AuditEvent, Role
from accounts.services import access_log_record
from privacy.models import BreachIncident
from tests.browser.conftest import sign_in

# Chromium keeps the real clock: relative times only. serialized_rollback keeps the role groups.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
LEFT = re.compile(r"7[12] h \d\d min left")


def test_the_dpo_opens_an_incident_from_an_alert_and_sees_the_clock(
    browsing, make_user, customer, settings, django_capture_on_commit_callbacks
):
    settings.ALERT_REVEALS_PER_WINDOW = 2
    agent = make_user(Role.SUPPORT_AGENT, email="agent.browsing@fusion.test")
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            access_log_record(
                user=agent, customer=customer, action="reveal", fields=["contact.email"], reason="x"
            )
    alert = AuditEvent.objects.get(action="alert.sent")
    sign_in(browsing, dpo)
    page = browsing.page

    browsing.goto("/privacy/")
    page.get_by_role("link", name="Breaches").click()
    page.get_by_role("link", name="Open an incident").click()
    title = page.locator("[name=title]").input_value()
    assert title.endswith("Many reveals of personal data by agent.browsing@fusion.test"), title
    assert page.locator("[name=suspect]").input_value() == str(agent.pk)
    page.get_by_label("No: UK GDPR Art. 33, the ICO within 72 hours").check()
    page.get_by_label("Contact details").check()
    page.fill("[name=approximate_records]", "2")
    page.fill("[name=approximate_subjects]", "1")
    page.fill("[name=likely_consequences]", "Being looked into")
    page.fill("[name=measures_taken]", "The agent's account is suspended")
    page.get_by_role("button", name="Record the incident").click()

    banner = page.locator("#clock")
    banner.wait_for()
    assert LEFT.search(banner.inner_text()), banner.inner_text()
    assert "Notify the ICO by" in banner.inner_text()
    incident = BreachIncident.objects.get()
    assert (incident.source_alert_event, incident.suspect_id) == (alert.pk, agent.pk)

    page.get_by_role("link", name="Affected customers").click()
    page.get_by_role("cell", name=customer.reference).wait_for()
    page.get_by_role("link", name=f"Back to {incident.reference}").click()
    page.get_by_role("link", name="Register").click()
    assert LEFT.search(page.locator("td.clock").first.inner_text())
    assert browsing.problems == []
