"""Double opt-in end to end through the pages and django's mail outbox."""

import datetime
import re

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Contact
from privacy import selectors
from privacy.models import PrivacyRequest, WebsiteSubmission
from privacy.services.requests.carrying_out import privacy_request_complete
from privacy.services.requests.identity import privacy_request_attest_identity
from privacy.services.requests.workflow import (
    privacy_request_approve,
    privacy_request_start,
    privacy_request_submit_for_approval,
)
from privacy.website import verification
from tests.privacy.conftest import receive

pytestmark = [pytest.mark.date_sensitive, pytest.mark.django_db]

Status = WebsiteSubmission.Status
Kind = PrivacyRequest.Kind


def sign_up(client, django_capture_on_commit_callbacks, email="reader@example.com", **extra):
    data = {"name": "Reader", "email": email, "consent": "on", **extra}
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("website:mailing_list"), data, follow=True)


def links(message) -> tuple[str, str]:
    confirm = re.search(r"http://testserver(/site/mailing-list/confirm/[^/\s]+/)", message.body)
    unsubscribe = re.search(r"http://testserver(/site/mailing-list/unsubscribe/[^/\s]+/)", message.body)
    return (confirm.group(1) if confirm else ""), (unsubscribe.group(1) if unsubscribe else "")


def test_sign_up_confirm_then_unsubscribe(client, notice, django_capture_on_commit_callbacks):
    response = sign_up(client, django_capture_on_commit_callbacks)
    assert "we have sent you an email" in response.content.decode()
    entry = WebsiteSubmission.objects.get()
    assert (entry.status, entry.notice, entry.email) == (
        Status.PENDING_CONFIRMATION,
        notice,
        "reader@example.com",
    )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["reader@example.com"]
    confirm_path, unsubscribe_path = links(message)
    assert confirm_path and unsubscribe_path
    assert message.extra_headers["List-Unsubscribe"] == f"<http://testserver{unsubscribe_path}>"
    # The link carries no email address in clear (it is only base64, not encrypted).
    assert "reader" not in confirm_path

    # Opening the link shows a button; only the POST confirms (mail scanners follow links).
    assert "Confirm my subscription" in client.get(confirm_path).content.decode()
    entry.refresh_from_db()
    assert entry.status == Status.PENDING_CONFIRMATION
    assert "subscription is confirmed" in client.post(confirm_path).content.decode()
    entry.refresh_from_db()
    assert entry.status == Status.CONFIRMED and entry.confirmed_at is not None

    response = client.post(unsubscribe_path)
    assert "You have been unsubscribed" in response.content.decode()
    entry.refresh_from_db()
    assert entry.status == Status.UNSUBSCRIBED and entry.unsubscribed_at is not None
    reasons = list(entry.history.order_by("history_date").values_list("history_change_reason", flat=True))
    assert reasons[-1] == "Unsubscribed through the link in a mail"


def test_expired_confirmation_link_is_refused(client, notice, django_capture_on_commit_callbacks, clock):
    sign_up(client, django_capture_on_commit_callbacks)
    confirm_path, unsubscribe_path = links(mail.outbox[0])
    clock.shift(datetime.timedelta(days=4))
    assert datetime.timedelta(days=4) > verification.DEFAULT_MAX_AGE
    response = client.post(confirm_path)
    assert response.status_code == 400
    assert "This link has expired" in response.content.decode()
    assert WebsiteSubmission.objects.get().status == Status.PENDING_CONFIRMATION
    # An unsubscribe link never expires.
    assert "You have been unsubscribed" in client.post(unsubscribe_path).content.decode()


def test_tampered_or_cross_purpose_token_is_refused(client, notice, django_capture_on_commit_callbacks):
    sign_up(client, django_capture_on_commit_callbacks)
    confirm_path, unsubscribe_path = links(mail.outbox[0])
    token = unsubscribe_path.rstrip("/").rsplit("/", 1)[1]
    # An unsubscribe token must not confirm, and a changed token must not verify.
    assert client.post(reverse("website:mailing_list_confirm", args=[token])).status_code == 400
    assert client.post(confirm_path[:-3] + "xx/").status_code == 400
    assert WebsiteSubmission.objects.get().status == Status.PENDING_CONFIRMATION


def test_signing_up_twice_keeps_one_entry_and_a_confirmed_address_gets_a_notice_not_a_new_entry(
    client, notice, django_capture_on_commit_callbacks
):
    sign_up(client, django_capture_on_commit_callbacks)
    sign_up(client, django_capture_on_commit_callbacks, email="Reader@Example.com")
    assert WebsiteSubmission.objects.count() == 1
    confirm_path, _ = links(mail.outbox[1])
    client.post(confirm_path)
    response = sign_up(client, django_capture_on_commit_callbacks)
    # The page says the same thing whatever the address's state: no finding out who subscribed.
    assert "we have sent you an email" in response.content.decode()
    assert WebsiteSubmission.objects.count() == 1
    assert mail.outbox[-1].subject == "You are already on our mailing list"
    assert links(mail.outbox[-1])[1]  # every mail has an unsubscribe link


def test_sign_up_without_consent_or_with_bad_email_sends_nothing(
    client, notice, django_capture_on_commit_callbacks
):
    response = sign_up(client, django_capture_on_commit_callbacks, consent="")
    assert "Consent: please tick the box" in response.content.decode()
    response = sign_up(client, django_capture_on_commit_callbacks, email="reader@")
    assert "Email address: enter a valid email address" in response.content.decode()
    assert not WebsiteSubmission.objects.exists()
    assert mail.outbox == []


# An objection to marketing outranks a later sign-up ------------------------------------------------

CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def _objected_to_marketing(customer, dpo, second_dpo) -> str:
    """Carry an objection to direct marketing through to completion; the subject's email address."""
    contact = Contact.objects.get(customer=customer)
    objection = receive(
        dpo, contact=contact, kind=Kind.OBJECTION, objection_scope=PrivacyRequest.ObjectionScope.MARKETING
    )
    privacy_request_attest_identity(privacy_request=objection, actor=dpo, reason="Known")
    privacy_request_start(privacy_request=objection, actor=dpo)
    privacy_request_submit_for_approval(privacy_request=objection, actor=dpo)
    privacy_request_approve(privacy_request=objection, actor=second_dpo)
    privacy_request_complete(privacy_request=objection, actor=second_dpo, reason="Suppress")
    assert selectors.is_suppressed(channel="email", value=contact.email)
    return contact.email


def test_an_address_that_objected_to_marketing_is_never_mailed_and_the_page_does_not_tell(
    client, notice, customer, dpo, second_dpo, django_capture_on_commit_callbacks
):
    objected = _objected_to_marketing(customer, dpo, second_dpo)
    mail.outbox.clear()
    submissions_before = WebsiteSubmission.objects.count()

    # The same address in another case, as anyone filling in the form might type it.
    suppressed_page = sign_up(client, django_capture_on_commit_callbacks, email=objected.upper())
    assert mail.outbox == []
    assert WebsiteSubmission.objects.count() == submissions_before == 0

    other_page = sign_up(Client(), django_capture_on_commit_callbacks, email="new.reader@example.com")
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.reader@example.com"]
    assert (suppressed_page.status_code, suppressed_page.redirect_chain) == (
        other_page.status_code,
        other_page.redirect_chain,
    )
    suppressed_html = CSRF_TOKEN.sub("", suppressed_page.content.decode())
    assert "we have sent you an email" in suppressed_html
    assert suppressed_html == CSRF_TOKEN.sub("", other_page.content.decode())
