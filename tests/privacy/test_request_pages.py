"""The privacy pages through the test client: the DPO queue, request pages and their steps, the new-request
form, scoping (another partner's request is 404), the portal, and the DSR register CSV."""

import csv
import datetime
import io
import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import AccessLog, Role
from billing.demo import uk_tariff
from fusion_site.spreadsheet import safe_cell
from privacy.models import TRANSITIONS, PrivacyRequest, State
from privacy.services.requests.carrying_out import privacy_request_complete
from privacy.services.requests.identity import (
    privacy_request_attest_identity,
    privacy_request_request_identity,
)
from privacy.services.requests.workflow import (
    privacy_request_approve,
    privacy_request_reject,
    privacy_request_start,
    privacy_request_submit_for_approval,
    privacy_request_withdraw,
)
from privacy.views import requests as request_views
from tests.billing.factories import billing_profile, calculated_run, month
from tests.chart_pages import chart_data, chart_table
from tests.privacy.conftest import receive

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

Kind = PrivacyRequest.Kind


def _detail(item) -> str:
    return reverse("privacy:request", args=[item.pk])


def _act(item, action) -> str:
    return reverse("privacy:request_action", args=[item.pk, action])


def _follow_post(client, url, data=None):
    response = client.post(url, data or {}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_queue_orders_by_due_date_highlights_and_draws_the_chart(
    client, dpo, customer, other_customer, django_assert_max_num_queries
):
    today = timezone.localdate()
    overdue = receive(dpo, customer=customer, received_on=today - datetime.timedelta(days=45))
    soon = receive(
        dpo, customer=other_customer, kind=Kind.ERASURE, received_on=today - datetime.timedelta(days=28)
    )
    later = receive(dpo, subject_email="pat@example.com", kind=Kind.PORTABILITY)
    closed = receive(dpo, customer=customer, kind=Kind.RECTIFICATION)
    privacy_request_withdraw(privacy_request=closed, actor=dpo, reason="Withdrawn by phone")
    client.force_login(dpo)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("privacy:queue"))
    assert response.status_code == 200
    html = response.content.decode()
    positions = [html.index(item.reference) for item in (overdue, soon, later)]
    assert positions == sorted(positions)
    assert closed.reference not in html
    assert re.search(rf'<tr class="overdue">\s*<td><a [^>]+>{overdue.reference}', html)
    assert re.search(rf'<tr class="due-soon">\s*<td><a [^>]+>{soon.reference}', html)
    assert re.search(rf'<tr class="">\s*<td><a [^>]+>{later.reference}', html)
    assert "1 overdue" in html and "1 due within a week" in html
    data = chart_data(html, "requests")
    assert (data["stacked"], data["y"]["label"]) == (True, "Received (requests)")
    this_month = data["labels"].index(f"{today:%b %y}")
    received = {series["label"]: series["values"][this_month] for series in data["series"]}
    assert (received["Portability"], received["Rectification"]) == (1, 1)
    table = chart_table(html, "requests")
    assert table[0][0] == "Month received" and len(table) == len(data["labels"]) + 1


def test_queue_query_count_does_not_grow_with_requests(client, dpo, customer, django_assert_num_queries):
    receive(dpo, customer=customer)
    client.force_login(dpo)
    with CaptureQueriesContext(connection) as one_request:
        client.get(reverse("privacy:queue"))
    for n in range(5):
        receive(dpo, customer=customer, kind=Kind.ERASURE if n % 2 else Kind.ACCESS)
    with django_assert_num_queries(len(one_request.captured_queries)):
        client.get(reverse("privacy:queue"))


def test_partner_staff_never_see_another_partners_requests(client, dpo, support, customer, other_customer):
    own = receive(support, customer=customer)
    other = receive(dpo, customer=other_customer)
    client.force_login(support)
    assert client.get(_detail(own)).status_code == 200
    assert client.get(_detail(other)).status_code == 404
    assert client.post(_act(other, "withdraw"), {"reason": "x"}).status_code == 404
    html = client.get(reverse("privacy:queue")).content.decode()
    assert own.reference in html and other.reference not in html


def test_pages_refuse_users_without_the_permission(client, make_user, customer, dpo):
    item = receive(dpo, customer=customer)
    client.force_login(make_user(Role.BILLING_AGENT))
    assert client.get(reverse("privacy:queue")).status_code == 403
    assert client.get(_detail(item)).status_code == 403
    assert client.get(reverse("privacy:request_new")).status_code == 403
    support = make_user(Role.SUPPORT_AGENT)
    client.force_login(support)
    # A support agent may look, and open requests, but not work them.
    assert client.post(_act(item, "withdraw"), {"reason": "x"}).status_code == 403
    assert client.post(reverse("privacy:register")).status_code == 403


def test_support_agent_records_a_request_for_a_customer_it_sees(client, support, customer, other_customer):
    client.force_login(support)
    form = {
        "kind": Kind.ACCESS,
        "channel": PrivacyRequest.Channel.PHONE,
        "customer_reference": other_customer.reference,
        "received_on": timezone.localdate().isoformat(),
        "details": "Caller asked for a copy of the call records",
    }
    response = client.post(reverse("privacy:request_new"), form)
    assert response.status_code == 200
    assert response.context["form"].errors["customer_reference"] == ["No such customer."]
    form["customer_reference"] = customer.reference
    response = client.post(reverse("privacy:request_new"), form)
    created = PrivacyRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == _detail(created)
    assert (created.customer, created.channel, created.received_by) == (customer, "phone", support)


def test_new_request_errors_name_the_field(client, dpo):
    client.force_login(dpo)
    response = client.post(
        reverse("privacy:request_new"),
        {
            "kind": Kind.OBJECTION,
            "channel": "email",
            "subject_email": "pat@example.com",
            "received_on": timezone.localdate().isoformat(),
            "details": "Stop the marketing",
        },
    )
    assert response.status_code == 200
    assert "objection_scope" in response.context["form"].errors
    assert not PrivacyRequest.objects.exists()


def test_steps_are_posted_from_the_request_page_with_four_eyes(client, dpo, second_dpo, customer):
    item = receive(dpo, customer=customer, kind=Kind.RESTRICTION)
    client.force_login(dpo)
    html = client.get(_detail(item)).content.decode()
    assert f'action="{_act(item, "attest")}"' in html and "csrfmiddlewaretoken" in html
    assert client.get(_act(item, "start")).status_code == 405  # steps are POST only

    html = _follow_post(client, _act(item, "start"))
    assert "Establish the subject&#x27;s identity first" in html
    _follow_post(client, _act(item, "attest"), {"reason": "Known caller, security questions answered"})
    _follow_post(client, _act(item, "start"))
    html = _follow_post(client, _act(item, "hold"), {"reason": ""})
    assert "Give the clarification asked for." in html
    _follow_post(client, _act(item, "submit_for_approval"))
    html = _follow_post(client, _act(item, "approve"))
    assert "Four eyes: you submitted this request for approval" in html
    item.refresh_from_db()
    assert item.state == State.AWAITING_APPROVAL and item.approved_by is None

    client.force_login(second_dpo)
    _follow_post(client, _act(item, "approve"))
    html = _follow_post(client, _act(item, "complete"), {"reason": "Processing restricted"})
    item.refresh_from_db()
    customer.refresh_from_db()
    assert item.state == State.COMPLETED and customer.is_processing_restricted
    assert "Received → In progress" in html and "Awaiting approval → Completed" in html
    assert f'action="{_act(item, "lift_restriction")}"' in html


# The page's buttons that move a request take their URL action from the transition's name, except this one.
ACTION_OF_TRANSITION = {"verify_identity": "verify_code"}


@pytest.mark.parametrize("state", list(State))
def test_the_page_offers_exactly_the_moves_the_workflow_table_allows_from_each_state(
    client, dpo, second_dpo, customer, state
):
    item = receive(dpo, customer=customer)
    # Approved by a second DPO, so completing is not refused for want of four eyes (tested on its own).
    PrivacyRequest.objects.filter(pk=item.pk).update(
        state=state, outcome="Outcome recorded", approved_by=second_dpo
    )
    item.refresh_from_db()
    client.force_login(dpo)  # a DPO may take every step

    html = client.get(_detail(item)).content.decode()

    posted = set(re.findall(rf'action="/privacy/requests/{item.pk}/(\w+)/"', html))
    moves = {ACTION_OF_TRANSITION.get(name, name) for name in TRANSITIONS}
    allowed = {ACTION_OF_TRANSITION.get(name, name) for name in item.allowed_actions()}
    assert posted & moves == allowed


def test_each_move_button_is_derived_from_the_workflow_table_once_per_state():
    for name, transition in TRANSITIONS.items():
        offered = [step.states for step in request_views.STEPS if step.transition == name]
        assert frozenset().union(*offered) == transition.sources, name
        assert sum(map(len, offered)) == len(transition.sources), f"{name} offered twice from one state"


def test_identity_code_entered_by_staff_on_the_page(
    client, dpo, customer, django_capture_on_commit_callbacks
):
    item = receive(dpo, customer=customer)
    client.force_login(dpo)
    with django_capture_on_commit_callbacks(execute=True):
        _follow_post(client, _act(item, "request_identity"))
    code = re.search(r"Your code: (\d{6})\n", mail.outbox[0].body).group(1)
    html = _follow_post(client, _act(item, "verify_code"), {"code": "not-it"})
    assert "The code is wrong; 4 attempts left." in html
    _follow_post(client, _act(item, "verify_code"), {"code": code})
    item.refresh_from_db()
    assert item.state == State.IN_PROGRESS and item.identity_method == "code"


def test_detail_masks_the_subject_for_uncleared_staff(client, make_user, customer, dpo):
    item = receive(
        dpo, customer=customer, subject_email="pat.public@example.com", details="All my call records"
    )
    uncleared = make_user(Role.DATA_PROTECTION_OFFICER, cleared=False)
    client.force_login(uncleared)
    html = client.get(_detail(item)).content.decode()
    assert "pat.public@example.com" not in html and "All my call records" not in html
    assert "p***@e***.com" in html
    client.force_login(dpo)
    html = client.get(_detail(item)).content.decode()
    assert "pat.public@example.com" in html and "All my call records" in html
    assert customer.access_log_entries.filter(user=dpo, reason__contains=item.reference).exists()


def test_duplicate_is_shown_on_the_page_and_in_the_queue(client, dpo, customer):
    first = receive(dpo, customer=customer)
    second = receive(dpo, customer=customer)
    client.force_login(dpo)
    assert f"Possible duplicate of {first.reference}" in client.get(reverse("privacy:queue")).content.decode()
    html = client.get(_detail(second)).content.decode()
    assert "Possible duplicate" in html and first.reference in html
    assert second.reference in client.get(_detail(first)).content.decode()


def test_portal_user_submits_and_sees_only_its_own_requests(client, make_user, customer, dpo):
    someone_elses = receive(dpo, customer=customer)
    portal = make_user(Role.CUSTOMER)
    client.force_login(portal)
    home = client.get(reverse("privacy:my_requests"))
    assert home.status_code == 200
    assert f'href="{reverse("privacy:my_requests")}"' in home.content.decode()  # in the portal navigation
    response = client.post(
        reverse("privacy:my_requests"),
        {"kind": Kind.ERASURE, "details": "Please delete my account"},
        follow=True,
    )
    created = PrivacyRequest.objects.get(customer=portal.customer)
    assert created.channel == PrivacyRequest.Channel.PORTAL
    assert created.identity_method == PrivacyRequest.IdentityMethod.PORTAL_LOGIN
    html = response.content.decode()
    assert created.reference in html and someone_elses.reference not in html
    assert client.get(reverse("privacy:queue")).status_code == 403
    assert client.get(_detail(created)).status_code == 403


def test_staff_navigation_links_the_queue(client, dpo, make_user):
    client.force_login(dpo)
    assert f'href="{reverse("privacy:queue")}"' in client.get(reverse("privacy:queue")).content.decode()
    client.force_login(make_user(Role.BILLING_AGENT))
    assert f'href="{reverse("privacy:queue")}"' not in client.get(reverse("accounts:home")).content.decode()


# The DSR register ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1", "'+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Copy sent = done", "Copy sent = done"),
        ("", ""),
        (None, ""),
        (3, "3"),
    ],
)
def test_register_escapes_formulas(value, expected):
    assert safe_cell(value) == expected


def test_register_csv_holds_the_register_without_personal_data(
    client, dpo, second_dpo, customer, other_customer
):
    completed = receive(
        dpo, customer=customer, subject_email="pat.public@example.com", details="Secret details"
    )
    privacy_request_attest_identity(privacy_request=completed, actor=dpo, reason="Known")
    privacy_request_start(privacy_request=completed, actor=dpo)
    privacy_request_submit_for_approval(privacy_request=completed, actor=dpo)
    privacy_request_approve(privacy_request=completed, actor=second_dpo)
    privacy_request_complete(privacy_request=completed, actor=second_dpo, reason="=cmd|' /C calc'!A0")
    rejected = receive(dpo, subject_email="sam@example.com", kind=Kind.ERASURE)
    privacy_request_reject(privacy_request=rejected, actor=dpo, reason="-Manifestly unfounded")
    client.force_login(dpo)
    assert client.get(reverse("privacy:register")).status_code == 405, "an export only by POST"
    response = client.post(reverse("privacy:register"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="dsr-register-')
    content = response.content.decode()
    for personal in ("pat.public", "example.com", "Secret details", "Jane Smith", customer.name):
        assert personal not in content
    rows = list(csv.DictReader(io.StringIO(content)))
    by_reference = {row["reference"]: row for row in rows}
    assert set(by_reference) == {completed.reference, rejected.reference}
    row = by_reference[completed.reference]
    today = timezone.localdate().isoformat()
    assert row == {
        "reference": completed.reference,
        "kind": "access",
        "channel": "email",
        "customer_reference": customer.reference,
        "received_on": today,
        "identity_method": "attestation",
        "clock_started_on": today,
        "days_on_hold": "0",
        "extended": "no",
        "due_on": completed.due_on.isoformat(),
        "state": "completed",
        "closed_on": today,
        "duplicate_of": "",
        "outcome": "'=cmd|' /C calc'!A0",
    }
    assert by_reference[rejected.reference]["outcome"] == "'-Manifestly unfounded"
    assert by_reference[rejected.reference]["customer_reference"] == ""


def test_subject_enters_the_emailed_code_without_logging_in(
    client, dpo, customer, django_capture_on_commit_callbacks
):
    item = receive(dpo, customer=customer)
    other = receive(dpo, customer=customer, kind=Kind.ERASURE)  # received, not awaiting a code
    with django_capture_on_commit_callbacks(execute=True):
        privacy_request_request_identity(privacy_request=item, actor=dpo)
    body = mail.outbox[0].body
    url = reverse("privacy:verify_identity")
    assert url in body
    code = re.search(r"Your code: (\d{6})\n", body).group(1)

    assert client.get(url).status_code == 200
    for reference in ("DSR-999999", other.reference, "nonsense"):
        response = client.post(url, {"reference": reference, "code": code})
        assert "That reference and code do not match" in response.content.decode()
    response = client.post(url, {"reference": item.reference, "code": "123"})
    assert response.context["form"].errors["code"] == ["The code is wrong; 4 attempts left."]
    response = client.post(url, {"reference": item.reference.lower(), "code": code})
    assert "your identity is confirmed" in response.content.decode()
    item.refresh_from_db()
    assert item.state == State.IN_PROGRESS
    event = item.events.get(action="verify_identity")
    assert event.actor.email.startswith("subject-identity-check@")


# The Art. 15 report ------------------------------------------------------------------------------


def test_the_access_report_shows_the_data_and_what_art_15_requires(client, customer, make_user):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    contact = customer.contacts.get()
    client.force_login(dpo)

    response = client.get(reverse("privacy:access_report", args=[customer.reference]))

    assert response.status_code == 200
    page = response.content.decode()
    assert contact.email in page, "a cleared DPO sees the data in clear"
    for heading in ("How we use it", "Where it came from", "Automated decisions", "Your rights"):
        assert heading in page
    assert "Information Commissioner" in page and "Traffic data" in page
    # The Direct Debit file sent to the Bacs bureau is processing of the payer's bank details too.
    assert "DirectDebitSubmission" in page and "Payment Services Regulations 2017 reg. 74(1)" in page
    assert AccessLog.objects.filter(
        user=dpo, customer=customer, action=AccessLog.Action.REVEAL, reason__icontains="Art. 15"
    ).exists()


def test_the_access_report_is_masked_for_staff_who_may_not_reveal_and_scoped_by_partner(
    client, customer, other_customer, make_user
):
    support = make_user(Role.SUPPORT_AGENT, cleared=False)
    client.force_login(support)
    page = client.get(reverse("privacy:access_report", args=[customer.reference])).content.decode()
    assert customer.contacts.get().email not in page and "masked" in page
    assert not AccessLog.objects.filter(user=support).exists()
    other = client.get(reverse("privacy:access_report", args=[other_customer.reference]))
    assert other.status_code == 404


def test_a_customer_reads_its_own_access_report_from_the_portal(client, customer, other_customer, make_user):
    portal_user = make_user(Role.CUSTOMER, customer=customer)
    client.force_login(portal_user)
    page = client.get(reverse("privacy:my_access_report")).content.decode()
    assert customer.contacts.get().email in page
    assert other_customer.reference not in page
    staff_url = reverse("privacy:access_report", args=[customer.reference])
    assert client.get(staff_url).status_code == 403


def test_a_restriction_request_links_the_partners_open_bill_runs_to_restrict(client, customer, make_user):
    billing_profile(customer.partner, default_tariff=uk_tariff())
    agent = make_user(Role.BILLING_AGENT)
    run = calculated_run(customer.partner, month(2025, 1), actor=agent)
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    request = receive(dpo, customer=customer, kind=PrivacyRequest.Kind.RESTRICTION)
    client.force_login(dpo)

    page = client.get(reverse("privacy:request", args=[request.pk])).content.decode()

    assert reverse("billing:bill_run", args=[run.pk]) in page


def test_the_new_request_form_prefills_today_in_the_only_form_a_date_input_shows(client, dpo):
    """A browser's date input shows only an ISO date; today as 30/11/2026 left "Received on" blank."""
    client.force_login(dpo)
    page = client.get(reverse("privacy:request_new")).content.decode()
    today = timezone.localdate()
    assert f'<input type="date" name="received_on" value="{today:%Y-%m-%d}"' in page


def _bulk_requests(customer, *, today: datetime.date, **groups: tuple[int, str, str, int | None]) -> None:
    """Requests straight into the table (counts are what is tested, not how requests are received):
    ``name=(how many, kind, state, due in days or None)``."""
    rows = [
        PrivacyRequest(
            kind=kind,
            state=state,
            channel=PrivacyRequest.Channel.EMAIL,
            customer=customer,
            details=f"Bulk {name}",
            received_on=today - datetime.timedelta(days=20),
            clock_started_on=today - datetime.timedelta(days=20),
            due_on=None if due_in is None else today + datetime.timedelta(days=due_in),
        )
        for name, (count, kind, state, due_in) in groups.items()
        for _ in range(count)
    ]
    PrivacyRequest.objects.bulk_create(rows, batch_size=200)


def _queue_rows(page: str) -> list[str]:
    body = re.search(r'<table class="queue">.*?<tbody>(.*?)</tbody>', page, re.DOTALL).group(1)
    return re.findall(r"<tr class=\"[^\"]*\">", body)


def test_queue_counts_every_open_request_in_the_database_and_pages_fifty_at_a_time(
    client, dpo, customer, django_assert_max_num_queries
):
    today = timezone.localdate()
    _bulk_requests(
        customer,
        today=today,
        overdue=(130, Kind.ACCESS, State.IN_PROGRESS, -3),
        soon=(70, Kind.ERASURE, State.RECEIVED, 3),
        held=(40, Kind.ACCESS, State.ON_HOLD, -1),  # the clock is stopped: neither overdue nor due soon
        later=(280, Kind.PORTABILITY, State.IN_PROGRESS, 20),
        identity=(10, Kind.RECTIFICATION, State.AWAITING_IDENTITY, None),
        closed=(30, Kind.ACCESS, State.COMPLETED, -30),  # not in the queue at all
    )
    client.force_login(dpo)

    with django_assert_max_num_queries(12):
        first = client.get(reverse("privacy:queue")).content.decode()
    last = client.get(reverse("privacy:queue"), {"page": 11}).content.decode()
    erasures = client.get(reverse("privacy:queue"), {"kind": Kind.ERASURE}).content.decode()
    overdue_page_3 = client.get(reverse("privacy:queue"), {"due": "overdue", "page": 3}).content.decode()
    this_week = client.get(reverse("privacy:queue"), {"due": "week"}).content.decode()

    assert "530 open" in first and "130 overdue" in first and "70 due within a week" in first
    assert "Page 1 of 11" in first and len(_queue_rows(first)) == 50
    assert all(row == '<tr class="overdue">' for row in _queue_rows(first))  # soonest deadline first
    assert "Page 11 of 11" in last and len(_queue_rows(last)) == 30
    assert "awaiting identity" in last  # no deadline yet: last
    # The figures are the whole queue's, whatever the filter; the filter says how many it shows.
    assert "530 open" in erasures and "70 of 530 shown" in erasures and len(_queue_rows(erasures)) == 50
    assert 'href="?kind=erasure&amp;page=2"' in erasures
    assert "Page 3 of 3" in overdue_page_3 and len(_queue_rows(overdue_page_3)) == 30
    assert set(_queue_rows(overdue_page_3)) == {'<tr class="overdue">'}
    assert "70 of 530 shown" in this_week and set(_queue_rows(this_week)) == {'<tr class="due-soon">'}
