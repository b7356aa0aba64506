"""A privacy request from receipt to completion by two DPOs, in real Chromium: the first records it,
establishes identity, works it and submits it for approval; the page then refuses that DPO the approval,
saying why, where the button would be; the second DPO approves and completes it."""

import re

import pytest

from accounts.models import Role
from privacy.models import PrivacyRequest, State
from tests.browser.conftest import sign_in

# Chromium keeps the real clock: no frozen instant. serialized_rollback keeps the role groups.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

FOUR_EYES = "Four eyes: you submitted this request for approval, so another DPO must approve it."


def test_two_dpos_take_a_restriction_request_from_receipt_to_completion(browsing, make_user, customer):
    first = make_user(Role.DATA_PROTECTION_OFFICER, email="first.dpo@fusion.test")
    second = make_user(Role.DATA_PROTECTION_OFFICER, email="second.dpo@fusion.test")
    page = browsing.page
    sign_in(browsing, first)

    browsing.goto("/privacy/")
    page.get_by_role("link", name="Record a new request").click()
    page.get_by_label("Kind").select_option("restriction")
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Customer reference").fill(customer.reference)
    page.get_by_label("Details").fill("Please stop using my data while my dispute is looked at.")
    page.get_by_role("button", name="Record request").click()
    # "Received on" is prefilled with today: a date input shows only an ISO date (it was blank).
    page.wait_for_url(re.compile(r"/privacy/requests/\d+/$"))

    item = PrivacyRequest.objects.get()
    page.get_by_role("heading", name=item.reference).wait_for()
    page.get_by_label("Attest identity: How you verified the subject's identity").fill("Known caller")
    page.get_by_role("button", name="Attest identity").click()
    page.get_by_role("button", name="Start work").click()
    page.get_by_role("button", name="Submit for approval").click()
    page.get_by_text("Awaiting approval", exact=True).first.wait_for()

    # The same DPO is told why, where the button would be, and offered no Approve or Complete.
    steps = page.locator("section.actions")
    assert FOUR_EYES in steps.inner_text()
    assert page.get_by_role("button", name="Approve").count() == 0
    assert page.get_by_role("button", name="Complete").count() == 0
    item.refresh_from_db()
    assert (item.state, item.approved_by) == (State.AWAITING_APPROVAL, None)

    page.context.clear_cookies()
    sign_in(browsing, second)
    browsing.goto(f"/privacy/requests/{item.pk}/")
    assert FOUR_EYES not in page.locator("section.actions").inner_text()
    page.get_by_role("button", name="Approve").click()
    page.get_by_text(f"by {second.full_name}").first.wait_for()
    page.get_by_label("Complete: Outcome (no personal data)").fill("Processing restricted")
    page.get_by_role("button", name="Complete").click()
    page.get_by_text("Awaiting approval → Completed").wait_for()

    item.refresh_from_db()
    customer.refresh_from_db()
    assert (item.state, item.approved_by, item.submitted_for_approval_by) == (State.COMPLETED, second, first)
    assert customer.is_processing_restricted
    assert browsing.problems == []
