"""The request page offers only the steps the user may take now and says why the others are refused, in
the words the service refuses a POST with (``privacy.services.requests.workflow.privacy_request_refusal``):
four eyes on approval, an approval before completion, the DPO's role."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from accounts.models import Role
from privacy.models import PrivacyRequest, State
from privacy.services.requests.identity import privacy_request_attest_identity
from privacy.services.requests.workflow import (
    privacy_request_approve,
    privacy_request_start,
    privacy_request_submit_for_approval,
)
from tests.privacy.conftest import receive

pytestmark = pytest.mark.date_sensitive

SUBMITTED = "Four eyes: you submitted this request for approval, so another DPO must approve it."
RECEIVED = "Four eyes: you received this request, so another DPO must approve it."


def _awaiting_approval(received_by, submitted_by, customer, kind=PrivacyRequest.Kind.RESTRICTION):
    item = receive(received_by, customer=customer, kind=kind)
    privacy_request_attest_identity(privacy_request=item, actor=received_by, reason="Known caller")
    privacy_request_start(privacy_request=item, actor=submitted_by)
    return privacy_request_submit_for_approval(privacy_request=item, actor=submitted_by)


def _page(client, user, item) -> str:
    client.force_login(user)
    response = client.get(reverse("privacy:request", args=[item.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _post(client, item, action, **data):
    return client.post(reverse("privacy:request_action", args=[item.pk, action]), data, follow=True)


def _messages(response) -> list[str]:
    return [message.message for message in response.context["messages"]]


def test_the_dpo_who_submitted_the_request_sees_why_not_instead_of_approve_and_is_refused_alike(
    client, dpo, customer
):
    item = _awaiting_approval(dpo, dpo, customer)

    page = _page(client, dpo, item)
    assert "<button>Approve</button>" not in page
    assert f"<strong>Approve:</strong> {escape(SUBMITTED)}" in page
    assert "<button>Complete</button>" not in page
    not_yet = f"{item.reference} needs another DPO&#x27;s approval first."
    assert f"<strong>Complete:</strong> {not_yet}" in page

    refused = _post(client, item, "approve")
    assert _messages(refused) == [SUBMITTED]
    refused = _post(client, item, "complete", reason="Done")
    assert _messages(refused) == [f"{item.reference} needs another DPO's approval first."]
    item.refresh_from_db()
    assert (item.state, item.approved_by) == (State.AWAITING_APPROVAL, None)


def test_the_dpo_who_received_the_request_may_not_approve_it_either(client, dpo, second_dpo, customer):
    item = _awaiting_approval(dpo, second_dpo, customer)

    assert f"<strong>Approve:</strong> {escape(RECEIVED)}" in _page(client, dpo, item)
    assert _messages(_post(client, item, "approve")) == [RECEIVED]
    # The one who submitted it is refused for that reason first.
    assert f"<strong>Approve:</strong> {escape(SUBMITTED)}" in _page(client, second_dpo, item)


def test_another_dpo_is_offered_approve_then_complete(client, dpo, second_dpo, customer):
    item = _awaiting_approval(dpo, dpo, customer)

    page = _page(client, second_dpo, item)
    assert "<button>Approve</button>" in page and "<strong>Approve:</strong>" not in page
    _post(client, item, "approve")

    page = _page(client, second_dpo, item)
    assert "<button>Complete</button>" in page and "<strong>Complete:</strong>" not in page
    _post(client, item, "complete", reason="Processing restricted")
    item.refresh_from_db()
    assert item.state == State.COMPLETED and item.approved_by == second_dpo


def test_staff_who_may_only_read_requests_see_why_and_are_refused_with_a_403(
    client, dpo, make_user, customer
):
    support = make_user(Role.SUPPORT_AGENT)
    item = receive(support, customer=customer)

    page = _page(client, support, item)
    assert "<button>" not in page.split("<h2>Next steps</h2>", 1)[1].split("</section>", 1)[0]
    assert "Only a DPO may work privacy requests." in page

    refused = client.post(reverse("privacy:request_action", args=[item.pk, "attest"]), {"reason": "Known"})
    assert refused.status_code == 403
    assert "Only a DPO may work privacy requests." in refused.content.decode()


def test_completing_an_erasure_is_refused_to_a_worker_who_may_not_erase(client, dpo, second_dpo, customer):
    item = _awaiting_approval(dpo, dpo, customer, kind=PrivacyRequest.Kind.ERASURE)
    privacy_request_approve(privacy_request=item, actor=second_dpo)
    erase = second_dpo.groups.get().permissions.get(codename="erase_customer")
    second_dpo.groups.get().permissions.remove(erase)
    refusal = "Only a DPO may erase a customer, which completing this erasure request does."

    page = _page(client, second_dpo, item)
    assert "<button>Complete</button>" not in page and f"<strong>Complete:</strong> {refusal}" in page
    response = client.post(reverse("privacy:request_action", args=[item.pk, "complete"]), {"reason": "x"})
    assert response.status_code == 403 and refusal in response.content.decode()
    item.refresh_from_db()
    assert item.state == State.AWAITING_APPROVAL
    second_dpo.groups.get().permissions.add(erase)
