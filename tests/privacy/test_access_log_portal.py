"""The customer's "Who has seen my data" page in the portal and its "Ask about this" question to the DPO,
through the pages: staff named by role and organisation only, never by name or email; only the
customer's own entries; one open question per entry, linked to the entry and shown to the DPO with it."""

import datetime
import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.access_transparency import PROVIDER_ORGANISATION, YOU
from accounts.models import AccessLog, AuditEvent, Role
from accounts.services import access_log_record
from privacy.models import PrivacyRequest
from privacy.services.requests.access_questions import QUESTIONS_PER_DAY
from privacy.services.requests.workflow import privacy_request_reject

PAGE = reverse("privacy:my_access_log")
STAFF_NAME = "Priya Revealwell"
STAFF_EMAIL = "priya.revealwell@partner.test"
DPO_NAME = "Dorothy Provider-Officer"
DPO_EMAIL = "dorothy.officer@fusion.test"


def _ask(entry_id: int) -> str:
    return reverse("privacy:ask_about_access", args=[entry_id])


def _text(response) -> str:
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def _rows(page: str) -> list[str]:
    body = re.search(r'<table class="access-log">.*?<tbody>(.*?)</tbody>', page, re.DOTALL).group(1)
    return re.findall(r'<tr id="entry-\d+">(.*?)</tr>', body, re.DOTALL)


@pytest.fixture
def support(make_user):
    return make_user(Role.SUPPORT_AGENT, full_name=STAFF_NAME, email=STAFF_EMAIL)


@pytest.fixture
def portal(make_user, customer):
    return make_user(Role.CUSTOMER, customer=customer)


@pytest.fixture
def provider_dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER, full_name=DPO_NAME, email=DPO_EMAIL)


def _reveal_on_the_page(client, staff, customer, reason: str) -> AccessLog:
    client.force_login(staff)
    response = client.post(reverse("accounts:reveal", args=[customer.reference]), {"reason": reason})
    assert response.status_code == 200
    return AccessLog.objects.filter(user=staff, customer=customer).latest("id")


def test_the_customer_sees_role_organisation_and_reason_but_never_the_staff_name_or_email(
    client, clock, customer, support, provider_dpo, portal
):
    _reveal_on_the_page(client, support, customer, "Customer phoned about a missing payment")
    clock.shift(datetime.timedelta(minutes=5))
    access_log_record(
        user=provider_dpo,
        customer=customer,
        action=AccessLog.Action.CROSS_PARTNER_VIEW,
        fields=["site_details"],
        reason="Checked the account for a complaint",
    )
    clock.shift(datetime.timedelta(minutes=5))
    access_log_record(
        user=portal,
        customer=customer,
        action=AccessLog.Action.EXPORT_DOWNLOAD,
        fields=["export.contacts"],
        reason="The customer downloaded its own data portability export",
    )
    client.force_login(portal)

    page = _text(client.get(PAGE))

    rows = _rows(page)
    assert len(rows) == 3
    # Newest first: the customer's own download, the provider's DPO, then the partner's support agent.
    assert f"<strong>{YOU}</strong>" in rows[0] and "Downloaded an export of your data" in rows[0]
    assert "Ask about this" not in rows[0]  # nothing to ask about one's own download
    assert '<span class="role">Data protection officer</span>' in rows[1]
    assert f'<span class="organisation">{PROVIDER_ORGANISATION}</span>' in rows[1]
    assert "Checked the account for a complaint" in rows[1]
    assert '<span class="role">Support agent</span>' in rows[2]
    assert f'<span class="organisation">{customer.partner.name}</span>' in rows[2]
    assert "Revealed your masked data" in rows[2]
    assert "Customer phoned about a missing payment" in rows[2]
    assert "contacts" in rows[2] and "Ask about this" in rows[2]
    for secret in (STAFF_NAME, STAFF_EMAIL, DPO_NAME, DPO_EMAIL, "Priya", "revealwell"):
        assert secret.lower() not in page.lower()


def test_another_customers_entries_are_never_shown_nor_asked_about(
    client, customer, other_customer, support, provider_dpo, portal
):
    mine = _reveal_on_the_page(client, support, customer, "Mine: phoned about a bill")
    theirs = access_log_record(
        user=provider_dpo,
        customer=other_customer,
        action=AccessLog.Action.REVEAL,
        fields=["contact.email"],
        reason="Theirs: a reason only the other customer may read",
    )
    client.force_login(portal)

    page = _text(client.get(PAGE))

    assert "Mine: phoned about a bill" in page
    assert "Theirs:" not in page and f'id="entry-{theirs.pk}"' not in page
    assert client.post(_ask(theirs.pk)).status_code == 404
    assert client.post(_ask(theirs.pk + 1000)).status_code == 404
    assert not PrivacyRequest.objects.exists()
    assert f'id="entry-{mine.pk}"' in page


def test_the_list_is_paged_newest_first_and_filtered_by_kind(client, customer, support, portal):
    now = timezone.now()
    actions = [AccessLog.Action.REVEAL, AccessLog.Action.EDIT_FORM, AccessLog.Action.EXPORT]
    AccessLog.objects.bulk_create(
        AccessLog(
            at=now - datetime.timedelta(minutes=n),
            user=support,
            customer=customer,
            customer_reference=customer.reference,
            action=actions[n % 3],
            fields=["contact.email"],
            reason=f"Reason number {n:02d}",
        )
        for n in range(60)
    )
    client.force_login(portal)

    first = _text(client.get(PAGE))
    last = _text(client.get(PAGE, {"page": 3}))
    reveals = _text(client.get(PAGE, {"kind": "revealed"}))
    corrections_page_2 = _text(client.get(PAGE, {"kind": "corrected", "page": 2}))

    assert len(_rows(first)) == 25 and len(_rows(last)) == 10
    assert re.findall(r"Reason number (\d\d)", first)[:3] == ["00", "01", "02"]
    assert "Reason number 59" in last and "Page 3 of 3" in last
    assert len(_rows(reveals)) == 20 and '<nav class="pages"' not in reveals
    assert all("Revealed your masked data" in row for row in _rows(reveals))
    assert {int(n) % 3 for n in re.findall(r"Reason number (\d\d)", reveals)} == {0}
    # 20 corrections fit on one page: asking for page 2 shows the last page there is, still filtered.
    assert len(_rows(corrections_page_2)) == 20
    assert all("Opened your details to correct them" in row for row in _rows(corrections_page_2))
    assert 'href="?page=2"' in first and 'href="?page=3"' in first


def test_the_page_costs_the_same_queries_for_a_page_of_five_or_twenty_five(
    client, customer, support, provider_dpo, portal, make_user
):
    def log(user, n):
        for _ in range(n):
            access_log_record(user=user, customer=customer, action="reveal", fields=["x.y"], reason="r")

    log(support, 5)
    client.force_login(portal)
    client.post(_ask(AccessLog.objects.filter(customer=customer).first().pk))
    with CaptureQueriesContext(connection) as five:
        client.get(PAGE)
    log(provider_dpo, 10)
    log(make_user(Role.BILLING_AGENT), 10)
    with CaptureQueriesContext(connection) as twenty_five:
        client.get(PAGE)

    assert len(twenty_five.captured_queries) == len(five.captured_queries)


def test_asking_about_an_entry_opens_one_linked_request_the_dpo_sees_with_the_entry(
    client, customer, support, portal, provider_dpo
):
    entry = _reveal_on_the_page(client, support, customer, "Customer phoned about a missing payment")
    client.force_login(portal)

    first = client.post(_ask(entry.pk), {"question": "Who asked for this?", "kind": "revealed", "page": "1"})
    second = client.post(_ask(entry.pk), {"question": "Asking again"})

    assert first.status_code == 302 and first["Location"] == f"{PAGE}?kind=revealed&page=1"
    assert second.status_code == 302
    item = PrivacyRequest.objects.get()
    assert (item.kind, item.channel, item.customer_id) == ("access", "portal", customer.pk)
    assert item.access_log_entry_id == entry.pk
    assert item.identity_verified_at is not None and item.duplicate_of is None
    assert AuditEvent.objects.filter(
        action="privacy_request.access_question", target_id=str(item.pk), detail__access_log=entry.pk
    ).exists()
    listed = _text(client.get(PAGE))
    assert f"Asked: {item.reference} (received)" in listed and "Ask about this" not in listed
    assert item.reference in _text(client.get(reverse("privacy:my_requests")))

    client.force_login(provider_dpo)
    detail = _text(client.get(reverse("privacy:request", args=[item.pk])))
    facts = re.search(r'<dd class="asked-entry">(.*?)</dd>', detail, re.DOTALL).group(1)
    assert f"#{entry.pk}" in facts and "Revealed masked data" in facts
    assert STAFF_NAME in facts and "Support agent" in facts and customer.partner.name in facts
    assert "Customer phoned about a missing payment" in facts and "contact.email" in facts
    assert "Who asked for this?" in detail
    queue = _text(client.get(reverse("privacy:queue")))
    assert f"About access log entry #{entry.pk}" in queue


def test_a_second_ask_says_it_is_already_open_and_a_closed_question_may_be_asked_again(
    client, customer, support, portal, provider_dpo
):
    entry = _reveal_on_the_page(client, support, customer, "Checked a bill")
    client.force_login(portal)
    client.post(_ask(entry.pk))

    again = _text(client.post(_ask(entry.pk), follow=True))

    item = PrivacyRequest.objects.get()
    assert f"You have already asked about this entry: {item.reference} is open." in again
    privacy_request_reject(privacy_request=item, actor=provider_dpo, reason="Answered by phone")
    reopened = _text(client.post(_ask(entry.pk), follow=True))
    assert PrivacyRequest.objects.filter(access_log_entry_id=entry.pk).count() == 2
    assert f"Answered: {item.reference}" not in reopened  # the new question is open again
    assert "Your question is DSR-" in reopened


def test_a_customer_asks_at_most_the_days_limit(client, customer, support, portal):
    for n in range(QUESTIONS_PER_DAY + 1):
        access_log_record(user=support, customer=customer, action="reveal", fields=["a.b"], reason=f"r{n}")
    entries = list(AccessLog.objects.filter(customer=customer).order_by("id"))
    client.force_login(portal)
    for entry in entries[:QUESTIONS_PER_DAY]:
        client.post(_ask(entry.pk))

    refused = _text(client.post(_ask(entries[-1].pk), follow=True))

    assert PrivacyRequest.objects.count() == QUESTIONS_PER_DAY
    assert "Please ask again tomorrow" in refused


def test_only_the_customers_portal_user_may_ask_and_only_by_post(client, customer, support, portal):
    entry = _reveal_on_the_page(client, support, customer, "Checked a bill")
    client.force_login(portal)
    assert client.get(_ask(entry.pk)).status_code == 405
    client.force_login(support)
    assert client.post(_ask(entry.pk)).status_code == 403
    assert client.get(PAGE).status_code == 403
    assert not PrivacyRequest.objects.exists()


def test_the_ask_form_is_csrf_protected(customer, support, portal):
    from tests.conftest import VerifiedClient

    entry = access_log_record(user=support, customer=customer, action="reveal", fields=["a.b"], reason="r")
    strict = VerifiedClient(enforce_csrf_checks=True)
    strict.force_login(portal)

    assert strict.post(_ask(entry.pk)).status_code == 403
    assert not PrivacyRequest.objects.exists()
