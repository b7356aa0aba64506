"""The public privacy request form, its verification link and the integration point it calls."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from privacy.models import PrivacyRequest, State, WebsiteSubmission
from privacy.website import services, verification

pytestmark = [pytest.mark.date_sensitive, pytest.mark.django_db]

Status = WebsiteSubmission.Status


def send_request(client, capture, **overrides):
    data = {
        "email": "subject@example.com",
        "request_kind": "erasure",
        "details": "Account C-000042",
        **overrides,
    }
    with capture(execute=True):
        return client.post(reverse("website:privacy_request"), data, follow=True)


def verify_path(message) -> str:
    found = re.search(r"http://testserver(/site/privacy-request/verify/[^/\s]+/)", message.body)
    assert found, message.body
    return found.group(1)


def test_request_is_pending_until_verified_then_delivered_once(
    client, notice, django_capture_on_commit_callbacks
):
    response = send_request(client, django_capture_on_commit_callbacks)
    assert "We have sent you an email" in response.content.decode()
    pending = WebsiteSubmission.objects.get()
    assert (pending.status, pending.request_kind, pending.message) == (
        Status.PENDING_VERIFICATION,
        "erasure",
        "Account C-000042",
    )
    path = verify_path(mail.outbox[0])
    assert "Confirm my request" in client.get(path).content.decode()
    assert "your request is confirmed" in client.post(path).content.decode()
    # Handed over to the DPO's queue; the pending website copy is gone, so it lives in one place.
    assert not WebsiteSubmission.objects.exists()
    delivered = PrivacyRequest.objects.get()
    assert (delivered.channel, delivered.kind, delivered.subject_email, delivered.details) == (
        PrivacyRequest.Channel.WEBSITE,
        "erasure",
        "subject@example.com",
        "Account C-000042",
    )
    assert delivered.state == State.RECEIVED and delivered.due_on is not None
    assert delivered.identity_verified_at is None, "an email address read is not proof of identity"
    assert delivered.events.get().action == "received"
    # A second click finds nothing left to verify and delivers nothing twice.
    second = client.post(path)
    assert second.status_code == 400
    assert "already been used" in second.content.decode()
    assert PrivacyRequest.objects.count() == 1


def test_bad_request_kind_and_email_are_refused_naming_the_field(
    client, db, django_capture_on_commit_callbacks
):
    response = send_request(
        client, django_capture_on_commit_callbacks, request_kind="launch-missiles", email="x"
    )
    page = response.content.decode()
    assert "Request: please choose one of the listed requests." in page
    assert "Email address: enter a valid email address" in page
    assert not WebsiteSubmission.objects.exists()
    assert mail.outbox == []


def test_deliver_verified_public_request_checks_the_kind_and_flags_a_duplicate(db):
    with pytest.raises(Exception, match="kind"):
        services.deliver_verified_public_request(email="a@example.com", kind="nonsense", details="")
    first = services.deliver_verified_public_request(
        email="a@example.com", kind="access", details="All of it"
    )
    again = services.deliver_verified_public_request(email="A@example.com", kind="access", details="Again")
    assert first.channel == PrivacyRequest.Channel.WEBSITE and first.duplicate_of is None
    assert again.duplicate_of == first
    objection = services.deliver_verified_public_request(
        email="b@example.com", kind="objection", details="No"
    )
    assert objection.objection_scope == PrivacyRequest.ObjectionScope.MARKETING


def test_verification_token_is_bound_to_purpose_and_email(db):
    token = verification.issue_verification_token(
        email="A@Example.com", purpose="privacy-request", reference="7"
    )
    checked = verification.check_verification_token(token=token, purpose="privacy-request")
    assert checked.reference == "7"
    assert checked.matches("a@example.com ")
    assert not checked.matches("b@example.com")
    assert "example" not in token
    with pytest.raises(verification.VerificationInvalid):
        verification.check_verification_token(token=token, purpose="mailing-list-confirm")
    with pytest.raises(verification.VerificationInvalid):
        verification.check_verification_token(token=token + "x", purpose="privacy-request")
