"""The breach register (UK GDPR Art. 33 and 34, PECR reg. 5A): the 72-hour clock in real hours under
both (PECR's since 20 August 2025: Data (Use and Access) Act 2025 s.111, SI 2025/904 reg. 2(p)), reminders
sent once, the affected customers exactly as the evidence shows them, decisions with who and when,
corrections with history, no deletion, and only the DPO and administrators at the door."""

import csv
import datetime
import io
import re

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import example, given
from hypothesis import strategies as st

from accounts.audit import audit_record
from accounts.models import AccessLog, AuditEvent, Role
from accounts.services import access_log_record
from privacy.breaches import affected_subjects, clock_of
from privacy.models import BreachIncident, BreachReminder
from privacy.services.breaches import breach_ico_decide, breach_incident_create
from privacy.tasks import send_breach_reminders
from tests.conftest import LONDON
from tests.factories import CustomerFactory

OFFICE = {Role.DATA_PROTECTION_OFFICER, Role.ADMINISTRATOR}


def london(year: int, month: int, day: int, hour: int, minute: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=LONDON)


def record(dpo, *, aware: datetime.datetime, **extra) -> BreachIncident:
    facts = {
        "title": "Laptop left on a train",
        "pecr": False,
        "occurred_at": aware - datetime.timedelta(hours=2),
        "became_aware_at": aware,
        "description": "An unencrypted spreadsheet of accounts was on it.",
        "data_categories": ["contact", "financial"],
        "subject_categories": ["customers"],
        "approximate_records": 40,
        "approximate_subjects": 12,
        "likely_consequences": "Phishing by email to the contacts.",
        "measures_taken": "Reported to the rail company; passwords reset.",
        "handler": dpo,
    }
    facts.update(extra)
    return breach_incident_create(actor=dpo, **facts)


@pytest.fixture
def dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


# The clock ---------------------------------------------------------------------------------------------


@pytest.mark.frozen_at("2026-11-27T17:00:00+00:00")  # a Friday, GMT
def test_the_clock_runs_through_the_weekend(dpo, client, clock):
    incident = record(dpo, aware=london(2026, 11, 27, 17, 0))

    deadline = clock_of(incident, now=london(2026, 11, 27, 17, 0)).deadline
    assert deadline.astimezone(LONDON) == london(2026, 11, 30, 17, 0)  # Monday, no pause for the weekend

    clock.move_to(london(2026, 11, 29, 12, 0))  # Sunday noon: 29 hours left
    client.force_login(dpo)
    page = client.get("/privacy/breaches/").content.decode()
    assert "Mon 30 Nov 2026 17:00 GMT" in page
    assert re.search(r"(29 h 00|28 h 59) min left", page)  # the frozen clock still ticks

    clock.move_to(london(2026, 11, 30, 17, 30))
    client.force_login(dpo)  # the idle session timed out meanwhile
    page = client.get("/privacy/breaches/").content.decode()
    assert "overdue by 0 h 30 min" in page
    assert 'class="overdue"' in page


@pytest.mark.frozen_at("2026-10-23T09:00:00+00:00")  # Friday 10:00 BST; the clocks go back on Sunday
def test_the_clock_counts_72_real_hours_across_the_october_clock_change(dpo, client, clock):
    aware = london(2026, 10, 23, 10, 0)
    incident = record(dpo, aware=aware)

    deadline = incident.notification_deadline
    assert deadline - aware == datetime.timedelta(hours=72)
    # 72 real hours end at 09:00 GMT on Monday: a wall-clock "same time three days later" (10:00) is wrong.
    assert deadline.astimezone(LONDON) == london(2026, 10, 26, 9, 0)
    assert deadline.astimezone(LONDON).tzname() == "GMT"

    clock.move_to(london(2026, 10, 25, 10, 0))  # Sunday 10:00 GMT: 49 real hours after awareness
    assert clock_of(incident, now=london(2026, 10, 25, 10, 0)).remaining == datetime.timedelta(hours=23)
    client.force_login(dpo)
    page = client.get(f"/privacy/breaches/{incident.pk}/").content.decode()
    assert "Mon 26 Oct 2026 09:00 GMT" in page
    assert re.search(r"(23 h 00|22 h 59) min left", page)


@given(
    aware=st.datetimes(
        # Hypothesis takes naive bounds and attaches ``timezones`` itself.
        min_value=datetime.datetime(2020, 1, 1),  # noqa: DTZ001
        max_value=datetime.datetime(2035, 12, 31),  # noqa: DTZ001
        timezones=st.just(LONDON),
    ),
    pecr=st.booleans(),
)
# The days before each change of the clocks, which a wall-clock sum gets wrong by an hour, in both regimes.
@example(aware=datetime.datetime(2026, 10, 23, 10, 0, tzinfo=LONDON), pecr=False)
@example(aware=datetime.datetime(2027, 3, 26, 10, 0, tzinfo=LONDON), pecr=False)
@example(aware=datetime.datetime(2026, 10, 23, 10, 0, tzinfo=LONDON), pecr=True)
@example(aware=datetime.datetime(2027, 3, 26, 10, 0, tzinfo=LONDON), pecr=True)
def test_the_deadline_is_always_72_elapsed_hours_after_awareness_in_both_regimes(aware, pecr):
    """Art. 33(1) counts hours, not wall-clock days, and so does PECR reg. 5A(2) as amended by the Data (Use
    and Access) Act 2025 s.111 (in force 20 August 2025): whatever the instant (a clock change, a weekend,
    an ambiguous hour of October) and whichever the regime, the elapsed time between awareness and deadline
    is exactly 72 hours."""
    incident = BreachIncident(occurred_at=aware, became_aware_at=aware, pecr=pecr)
    elapsed = incident.notification_deadline.timestamp() - aware.timestamp()
    assert elapsed == 72 * 3600


def test_the_clock_stops_when_the_ico_is_notified_or_the_decision_is_not_to(dpo, clock):
    later = london(2026, 12, 3, 20, 0)  # 80 hours on
    incident = record(dpo, aware=london(2026, 11, 30, 12, 0))
    assert clock_of(incident, now=later).overdue
    to_notify = breach_ico_decide(incident=incident, actor=dpo, decision="notify", reason="Bank details")
    assert clock_of(to_notify, now=later).overdue  # decided, but not sent: still running
    sent = breach_ico_decide(
        incident=incident,
        actor=dpo,
        decision="notify",
        reason="Bank details",
        notified_at=london(2026, 12, 1, 9, 0),
    )
    assert clock_of(sent, now=later).text == "ICO notified"

    other = record(dpo, aware=london(2026, 11, 30, 12, 0))
    not_notifiable = breach_ico_decide(
        incident=other, actor=dpo, decision="do_not_notify", reason="The disk was encrypted."
    )
    assert not clock_of(not_notifiable, now=later).overdue
    assert clock_of(not_notifiable, now=later).text == "not notifiable"


# Reminders --------------------------------------------------------------------------------------------


def test_reminders_at_24_and_48_hours_and_at_the_deadline_are_each_sent_once(
    dpo, clock, mailoutbox, django_capture_on_commit_callbacks
):
    aware = london(2026, 11, 30, 12, 0)
    incident = record(dpo, aware=aware)
    decided = record(dpo, aware=aware, title="Decided at once")
    breach_ico_decide(incident=decided, actor=dpo, decision="do_not_notify", reason="No risk")
    sent = record(dpo, aware=aware, title="Notified at once")
    breach_ico_decide(incident=sent, actor=dpo, decision="notify", reason="Risk", notified_at=aware)

    def run() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return send_breach_reminders()

    clock.move_to(aware + datetime.timedelta(hours=23, minutes=59))
    assert run() == 0
    clock.move_to(aware + datetime.timedelta(hours=24))
    assert run() == 1
    assert run() == 0
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [dpo.email]
    assert f"{incident.reference}: 48 hours left" in mailoutbox[0].subject
    assert "Notify the ICO by: Thu 03 Dec 2026 12:00 GMT" in mailoutbox[0].body

    clock.move_to(aware + datetime.timedelta(hours=48, minutes=5))
    assert run() == 1
    assert run() == 0
    clock.move_to(aware + datetime.timedelta(hours=72, minutes=1))
    assert run() == 1
    assert run() == 0

    assert len(mailoutbox) == 3
    assert "have passed" in mailoutbox[2].subject
    assert sorted(BreachReminder.objects.filter(incident=incident).values_list("kind", flat=True)) == [
        "24h",
        "48h",
        "overdue",
    ]
    assert not BreachReminder.objects.filter(incident__in=[decided, sent]).exists()


def test_a_missed_day_sends_one_mail_for_the_latest_reminder(
    dpo, clock, mailoutbox, django_capture_on_commit_callbacks
):
    aware = london(2026, 11, 30, 12, 0)
    record(dpo, aware=aware)
    clock.move_to(aware + datetime.timedelta(hours=50))
    with django_capture_on_commit_callbacks(execute=True):
        assert send_breach_reminders() == 2
    assert len(mailoutbox) == 1
    assert "22 hours left" in mailoutbox[0].subject


def test_the_reminders_run_from_the_beat_schedule(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "privacy.tasks.send_breach_reminders" in tasks


# Affected customers from the evidence ------------------------------------------------------------------


@pytest.fixture
def evidence(make_user, partner, clock):
    """A support agent's reads on one morning: three customers inside 10:00-11:00, one at 11:00 (outside),
    another agent's read inside the window, and an export in the audit trail."""
    suspect = make_user(Role.SUPPORT_AGENT, email="suspect@fusion.test")
    other = make_user(Role.SUPPORT_AGENT)
    revealed, corrected, exported, later, others = (CustomerFactory(partner=partner) for _ in range(5))

    def at(hour: int, minute: int) -> None:
        clock.move_to(london(2026, 11, 30, hour, minute))

    at(9, 59)
    access_log_record(user=suspect, customer=later, action="reveal", fields=["contact.email"], reason="x")
    at(10, 0)
    access_log_record(
        user=suspect,
        customer=revealed,
        action="reveal",
        fields=["contact.email", "payment.sort_code"],
        reason="x",
    )
    at(10, 20)
    access_log_record(
        user=suspect, customer=corrected, action="edit_form", fields=["site.postcode"], reason="x"
    )
    access_log_record(user=suspect, customer=revealed, action="reveal", fields=["contact.phone"], reason="x")
    at(10, 30)
    access_log_record(user=other, customer=others, action="reveal", fields=["contact.email"], reason="x")
    audit_record(actor=suspect, action="export.site_details_pdf", target=exported, detail={})
    at(11, 0)
    access_log_record(user=suspect, customer=later, action="reveal", fields=["contact.email"], reason="x")
    clock.move_to(london(2026, 11, 30, 12, 0))
    return {
        "suspect": suspect,
        "inside": {revealed.reference, corrected.reference, exported.reference},
        "revealed": revealed,
        "later": later,
        "others": others,
    }


def test_the_affected_list_is_exactly_the_customers_the_evidence_shows_in_the_window(evidence):
    found = affected_subjects(
        user=evidence["suspect"], start=london(2026, 11, 30, 10, 0), end=london(2026, 11, 30, 11, 0)
    )

    assert {item.customer.reference for item in found} == evidence["inside"]
    revealed = next(item for item in found if item.customer == evidence["revealed"])
    assert revealed.events == 2
    assert revealed.categories == {"Contact details": 2, "Financial and payment": 1}

    later = affected_subjects(
        user=evidence["suspect"], start=london(2026, 11, 30, 11, 0), end=london(2026, 11, 30, 12, 0)
    )
    assert [item.customer for item in later] == [evidence["later"]]


def test_viewing_the_affected_list_is_written_to_the_access_log(evidence, dpo, client):
    incident = record(dpo, aware=london(2026, 11, 30, 11, 30))
    client.force_login(dpo)
    page = client.get(
        f"/privacy/breaches/{incident.pk}/affected/",
        {"user": "suspect@fusion.test", "start": "2026-11-30T10:00", "end": "2026-11-30T11:00"},
    ).content.decode()

    for reference in evidence["inside"]:
        assert reference in page
    assert evidence["later"].reference not in page and evidence["others"].reference not in page
    logged = AccessLog.objects.filter(user=dpo, action=AccessLog.Action.BREACH_REVIEW)
    assert set(logged.values_list("customer_reference", flat=True)) == evidence["inside"]
    assert all(incident.reference in reason for reason in logged.values_list("reason", flat=True))


def test_the_affected_list_exports_as_csv_audited_as_an_export(evidence, dpo, client):
    incident = record(dpo, aware=london(2026, 11, 30, 11, 30))
    client.force_login(dpo)
    response = client.post(
        f"/privacy/breaches/{incident.pk}/affected.csv",
        {"user": "suspect@fusion.test", "start": "2026-11-30T10:00", "end": "2026-11-30T11:00"},
    )

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert {row["customer_reference"] for row in rows} == evidence["inside"]
    assert "Contact details" in rows[0]
    export = AuditEvent.objects.get(action="export.breach_affected")
    assert export.actor_id == dpo.pk and export.detail == {"customers": 3}


def test_a_notice_is_drafted_for_each_affected_customer(evidence, dpo, client, settings):
    incident = record(dpo, aware=london(2026, 11, 30, 11, 30))
    client.force_login(dpo)
    page = client.get(
        f"/privacy/breaches/{incident.pk}/affected/",
        {
            "user": "suspect@fusion.test",
            "start": "2026-11-30T10:00",
            "end": "2026-11-30T11:00",
            "notices": "1",
        },
    ).content.decode()

    assert page.count("We are writing to tell you about a personal data breach") == 3
    assert "Phishing by email to the contacts." in page  # the likely consequences
    assert "passwords reset" in page  # the measures
    assert settings.BREACH_CONTACT in page


def test_an_unknown_user_or_a_backwards_window_is_refused_on_its_field(dpo, client):
    incident = record(dpo, aware=london(2026, 11, 30, 11, 30))
    client.force_login(dpo)
    page = client.get(
        f"/privacy/breaches/{incident.pk}/affected/",
        {"user": "nobody@fusion.test", "start": "2026-11-30T11:00", "end": "2026-11-30T10:00"},
    ).content.decode()
    assert "No staff user has this email address." in page
    assert "The end of the window must be after its start." in page
    assert not AccessLog.objects.filter(action=AccessLog.Action.BREACH_REVIEW).exists()


# Decisions, corrections, no deletion -------------------------------------------------------------------


@pytest.mark.frozen_at("2026-11-30T12:00:00+00:00")
def test_a_late_notification_needs_the_reasons_for_the_delay(dpo, client):
    incident = record(dpo, aware=london(2026, 11, 26, 9, 0))
    client.force_login(dpo)
    url = f"/privacy/breaches/{incident.pk}/decide/ico/"
    decision = {
        "ico_decision": "notify",
        "ico_decision_reason": "Bank details of customers were exposed.",
        "ico_notified_at": "2026-11-30T11:00",
        "ico_reference": "IC-1234",
    }

    refused = client.post(url, decision)
    assert refused.status_code == 400
    assert "give the reasons for the delay" in refused.content.decode()
    incident.refresh_from_db()
    assert incident.ico_decision == ""

    client.post(url, {**decision, "delay_reasons": "The scale was only known after the weekend."})
    incident.refresh_from_db()
    assert incident.ico_decision == "notify" and incident.ico_decided_by == dpo
    assert incident.ico_decided_at is not None and incident.notified_late()
    assert incident.delay_reasons == "The scale was only known after the weekend."
    page = client.get(f"/privacy/breaches/{incident.pk}/").content.decode()
    assert "after 72 hours" in page and "The scale was only known after the weekend." in page


def test_a_notification_within_72_hours_needs_no_reasons(dpo, client):
    incident = record(dpo, aware=london(2026, 11, 30, 9, 0))
    client.force_login(dpo)
    client.post(
        f"/privacy/breaches/{incident.pk}/decide/ico/",
        {"ico_decision": "notify", "ico_decision_reason": "Risk", "ico_notified_at": "2026-11-30T11:00"},
    )
    incident.refresh_from_db()
    assert incident.ico_decision == "notify" and not incident.notified_late()


def test_the_incident_says_it_cannot_be_closed_before_the_ico_decision_and_the_post_is_refused_alike(
    dpo, client
):
    incident = record(dpo, aware=london(2026, 11, 30, 9, 0))
    client.force_login(dpo)
    url = f"/privacy/breaches/{incident.pk}/"
    not_yet = "Record the decision on notifying the ICO before closing."

    page = client.get(url).content.decode()
    assert "Close the incident</button>" not in page and not_yet in page
    refused = client.post(f"{url}decide/close/", {"closure_note": "Resolved"}).content.decode()
    assert not_yet in refused
    incident.refresh_from_db()
    assert incident.status == BreachIncident.Status.OPEN

    client.post(
        f"{url}decide/ico/",
        {"ico_decision": "notify", "ico_decision_reason": "Risk", "ico_notified_at": "2026-11-30T11:00"},
    )
    page = client.get(url).content.decode()
    assert "Close the incident</button>" in page and not_yet not in page


def test_telling_the_data_subjects_is_recorded_with_who_and_when(dpo, client):
    incident = record(dpo, aware=london(2026, 11, 30, 9, 0))
    client.force_login(dpo)
    client.post(
        f"/privacy/breaches/{incident.pk}/decide/subjects/",
        {"subjects_decision": "tell", "subjects_decision_reason": "Bank details: high risk of fraud."},
    )
    incident.refresh_from_db()
    assert (incident.subjects_decision, incident.subjects_decided_by) == ("tell", dpo)
    assert incident.subjects_decided_at is not None


def test_recording_an_incident_shows_each_error_on_its_field(dpo, client):
    client.force_login(dpo)
    response = client.post(
        "/privacy/breaches/new/",
        {
            "title": "Wrong way round",
            "pecr": "False",
            "occurred_at": "2026-11-30T10:00",
            "became_aware_at": "2026-11-29T10:00",
            "description": "",
            "data_categories": ["contact"],
            "subject_categories": ["customers"],
            "approximate_records": "1",
            "approximate_subjects": "1",
            "likely_consequences": "None",
            "measures_taken": "None",
            "handler": dpo.pk,
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "We cannot have become aware before it happened." in page
    assert page.count('class="field has-errors"') == 2  # became_aware_at and the empty description
    assert not BreachIncident.objects.exists()


def test_a_correction_keeps_history_with_its_reason(dpo, client):
    incident = record(dpo, aware=london(2026, 11, 30, 9, 0))
    client.force_login(dpo)
    url = f"/privacy/breaches/{incident.pk}/edit/"
    form = client.get(url).context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(
        {
            "occurred_at": "2026-11-30T07:00",
            "became_aware_at": "2026-11-30T09:00",
            "approximate_subjects": "15",
            "handler": dpo.pk,
        }
    )

    refused = client.post(url, data)
    assert "This field is required." in refused.content.decode()  # the reason
    client.post(url, {**data, "reason": "Three more accounts found in the spreadsheet"})

    incident.refresh_from_db()
    assert incident.approximate_subjects == 15
    latest, first = incident.history.order_by("-history_id")[:2]
    assert latest.history_change_reason == "Corrected: Three more accounts found in the spreadsheet"
    assert latest.history_user == dpo
    assert (first.approximate_subjects, first.history_change_reason) == (12, "Incident recorded")


def test_nobody_may_delete_an_incident(dpo, make_user, client):
    incident = record(dpo, aware=london(2026, 11, 30, 9, 0))
    assert not Permission.objects.filter(codename="delete_breachincident").exists()
    for role in OFFICE:
        client.force_login(make_user(role))
        assert client.get(f"/admin/privacy/breachincident/{incident.pk}/delete/").status_code == 403
        assert (
            client.post(f"/admin/privacy/breachincident/{incident.pk}/delete/", {"post": "yes"}).status_code
            == 403
        )
        assert client.get(f"/admin/privacy/breachincident/{incident.pk}/change/").status_code == 200
    assert BreachIncident.objects.filter(pk=incident.pk).exists()


# Access -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_only_the_dpo_and_administrators_see_and_keep_the_register(role, make_user, dpo, client, customer):
    incident = record(dpo, aware=london(2026, 11, 30, 9, 0))
    user = make_user(role, customer=customer) if role == Role.CUSTOMER else make_user(role)
    client.force_login(user)
    allowed = role in OFFICE
    expected_get = 200 if allowed else 403
    for url in (
        "/privacy/breaches/",
        f"/privacy/breaches/{incident.pk}/",
        f"/privacy/breaches/{incident.pk}/report/",
    ):
        assert client.get(url).status_code == expected_get, url
    subjects = client.post(
        f"/privacy/breaches/{incident.pk}/decide/subjects/",
        {"subjects_decision": "do_not_tell", "subjects_decision_reason": "Encrypted"},
    )
    assert subjects.status_code == (302 if allowed else 403)
    incident.refresh_from_db()
    assert (incident.subjects_decision == "do_not_tell") == allowed
    if role != Role.CUSTOMER:  # staff see the register in the navigation only when they may open it
        assert ("Breaches</a>" in client.get("/").content.decode()) == allowed


# Alerts -------------------------------------------------------------------------------------------------


def test_an_incident_opened_from_an_alert_starts_with_its_facts(
    make_user, dpo, customer, client, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.ALERT_REVEALS_PER_WINDOW = 2
    agent = make_user(Role.SUPPORT_AGENT, email="agent.alerted@fusion.test")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            access_log_record(
                user=agent, customer=customer, action="reveal", fields=["contact.email"], reason="x"
            )
    alert = AuditEvent.objects.get(action="alert.sent")
    # The alert's mail offers the incident, and the register lists the alert with the same link.
    assert f"{settings.SITE_URL}/privacy/breaches/new/?alert={alert.pk}" in mailoutbox[0].body

    client.force_login(dpo)
    register = client.get("/privacy/breaches/").content.decode()
    assert f"/privacy/breaches/new/?alert={alert.pk}" in register
    form = client.get(f"/privacy/breaches/new/?alert={alert.pk}").context["form"]
    assert form.initial["suspect"] == agent.pk
    assert form.initial["became_aware_at"] == alert.at
    assert "agent.alerted@fusion.test" in form.initial["title"]

    data = {
        "title": form.initial["title"],
        "pecr": "True",
        "occurred_at": form.initial["occurred_at"].strftime("%Y-%m-%dT%H:%M"),
        "became_aware_at": form.initial["became_aware_at"].strftime("%Y-%m-%dT%H:%M"),
        "description": form.initial["description"],
        "data_categories": ["contact"],
        "subject_categories": ["customers"],
        "approximate_records": "1",
        "approximate_subjects": "1",
        "likely_consequences": "Being looked into",
        "measures_taken": "Account suspended",
        "handler": dpo.pk,
        "suspect": agent.pk,
        "evidence_from": form.initial["evidence_from"].strftime("%Y-%m-%dT%H:%M"),
        "evidence_until": form.initial["evidence_until"].strftime("%Y-%m-%dT%H:%M"),
        "alert": alert.pk,
    }
    response = client.post(f"/privacy/breaches/new/?alert={alert.pk}", data)
    incident = BreachIncident.objects.get()
    assert response["Location"] == f"/privacy/breaches/{incident.pk}/"
    assert (incident.source_alert_event, incident.suspect) == (alert.pk, agent)
    affected = client.get(f"/privacy/breaches/{incident.pk}/affected/").content.decode()
    assert customer.reference in affected  # the evidence window of the alert, prefilled


# Report and demo -----------------------------------------------------------------------------------------


def test_the_printable_report_holds_what_the_icos_form_asks(dpo, client):
    incident = record(dpo, aware=london(2026, 11, 30, 9, 0))
    client.force_login(dpo)
    page = client.get(f"/privacy/breaches/{incident.pk}/report/").content.decode()
    for asked in (
        "What has happened",
        "When did it happen",
        "When did you discover it",
        "Categories of personal data",
        "Contact details, Financial and payment",
        "Number of personal data records concerned",
        "approximately 40",
        "How many data subjects could be affected",
        "approximately 12",
        "Categories of data subjects",
        "Potential consequences",
        "Actions taken to minimise the impact",
        "Have you told the data subjects?",
    ):
        assert asked in page, asked


def test_the_demo_has_one_open_and_one_closed_incident(db):
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("seed_demo", customers=4, partners=1, **quiet)
    call_command("seed_privacy_demo", requests=2, **quiet)
    call_command("seed_privacy_demo", **quiet)

    assert sorted(BreachIncident.objects.values_list("status", flat=True)) == ["closed", "open"]
    closed = BreachIncident.objects.get(status="closed")
    assert closed.ico_decision and closed.subjects_decision and closed.history.count() >= 3
    # The open one is a PECR breach (call records of the telephony service), on the same 72 hours.
    assert list(BreachIncident.objects.values_list("status", "pecr").order_by("status")) == [
        ("closed", False),
        ("open", True),
    ]


def test_the_register_and_an_incident_take_the_same_queries_however_many_incidents(dpo, make_user, client):
    client.force_login(dpo)
    record(dpo, aware=london(2026, 11, 30, 9, 0))

    def queries(url: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    one = queries("/privacy/breaches/")
    first = BreachIncident.objects.get()
    detail = queries(f"/privacy/breaches/{first.pk}/")
    for number in range(4):
        other = record(make_user(Role.DATA_PROTECTION_OFFICER), aware=london(2026, 11, 29, number, 0))
        breach_ico_decide(incident=other, actor=dpo, decision="do_not_notify", reason="No risk")

    assert queries("/privacy/breaches/") == one
    assert queries(f"/privacy/breaches/{first.pk}/") == detail


# PECR reg. 5A: breaches in connection with the public electronic communications service --------------------
# Since 20 August 2025 reg. 5A(2) reads as Art. 33(1): "without undue delay and, where feasible, not later
# than 72 hours after having become aware of it" (Data (Use and Access) Act 2025 s.111, commenced by SI
# 2025/904 reg. 2(p)); the 24 hours and the second notification within 3 days are gone.


def test_recording_an_incident_without_saying_whether_pecr_applies_is_refused_on_its_field(dpo, client):
    client.force_login(dpo)
    form = {
        "title": "Call records exported",
        "occurred_at": "2026-11-30T08:00",
        "became_aware_at": "2026-11-30T10:00",
        "description": "A report of calls was sent to the wrong partner.",
        "data_categories": ["contact"],
        "subject_categories": ["customers"],
        "approximate_records": "3",
        "approximate_subjects": "3",
        "likely_consequences": "Who called whom seen by a partner.",
        "measures_taken": "The partner deleted it.",
        "handler": dpo.pk,
    }
    response = client.post("/privacy/breaches/new/", form)

    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('class="field has-errors"') == 1
    errors = response.context["form"].errors
    assert list(errors) == ["pecr"]
    assert "public electronic communications service (PECR reg. 5A)" in errors["pecr"][0]
    assert not BreachIncident.objects.exists()

    response = client.post("/privacy/breaches/new/", {**form, "pecr": "True"})
    incident = BreachIncident.objects.get()
    assert response["Location"] == f"/privacy/breaches/{incident.pk}/"
    assert incident.pecr and incident.history.get().pecr  # in its history from the start


@pytest.mark.frozen_at("2026-10-23T09:00:00+00:00")  # Friday 10:00 BST; the clocks go back on Sunday
def test_the_pecr_clock_counts_72_real_hours_across_the_october_clock_change(dpo, client, clock):
    aware = london(2026, 10, 23, 10, 0)
    incident = record(dpo, aware=aware, pecr=True)

    deadline = incident.notification_deadline
    assert deadline - aware == datetime.timedelta(hours=72)
    # 72 real hours end at 09:00 GMT on Monday, not at "10:00 three days later" (nor 24 hours on).
    assert deadline.astimezone(LONDON) == london(2026, 10, 26, 9, 0)
    assert deadline.astimezone(LONDON).tzname() == "GMT"

    clock.move_to(london(2026, 10, 24, 11, 0))  # Saturday 11:00 BST: 25 real hours on, not overdue
    client.force_login(dpo)
    register = client.get("/privacy/breaches/").content.decode()
    assert 'class="overdue"' not in register and 'class="due-soon"' not in register
    assert re.search(r"(47 h 00|46 h 59) min left", register)

    clock.move_to(london(2026, 10, 25, 10, 0))  # Sunday 10:00 GMT: 49 real hours on, 23 left
    client.logout()  # the idle session timed out meanwhile
    client.force_login(dpo)
    page = client.get(f"/privacy/breaches/{incident.pk}/").content.decode()
    assert "Mon 26 Oct 2026 09:00 GMT" in page
    assert re.search(r"(23 h 00|22 h 59) min left", page)
    assert "PECR reg. 5A (public electronic communications service): the ICO within 72 hours" in page
    register = client.get("/privacy/breaches/").content.decode()
    assert 'class="due-soon"' in register  # the last 24 of the 72 hours, as under UK GDPR

    clock.move_to(london(2026, 10, 26, 9, 30))
    client.logout()
    client.force_login(dpo)
    register = client.get("/privacy/breaches/").content.decode()
    assert "overdue by 0 h 30 min" in register and 'class="overdue"' in register


@pytest.mark.frozen_at("2026-11-27T18:00:00+00:00")  # a Friday evening, GMT
def test_the_pecr_clock_runs_through_the_weekend_like_a_gdpr_incident(dpo, client, clock):
    aware = london(2026, 11, 27, 18, 0)
    pecr = record(dpo, aware=aware, pecr=True, title="Voicemail PINs exposed")
    gdpr = record(dpo, aware=aware, title="HR spreadsheet emailed out")

    monday = london(2026, 11, 30, 18, 0)
    assert pecr.notification_deadline.astimezone(LONDON) == monday
    assert gdpr.notification_deadline.astimezone(LONDON) == monday

    saturday_evening = london(2026, 11, 28, 19, 0)  # 25 hours on: the old PECR 24 hours have passed
    clock.move_to(saturday_evening)
    client.force_login(dpo)
    page = client.get("/privacy/breaches/").content.decode()
    assert 'class="overdue"' not in page
    assert len(re.findall(r"(47 h 00|46 h 59) min left", page)) == 2  # both incidents
    assert not clock_of(pecr, now=saturday_evening).overdue
    assert clock_of(pecr, now=saturday_evening) == clock_of(gdpr, now=saturday_evening)

    clock.move_to(london(2026, 11, 30, 18, 1))  # Monday evening: both overdue together
    client.logout()
    client.force_login(dpo)
    page = client.get("/privacy/breaches/").content.decode()
    assert page.count('class="overdue"') == 2


def test_pecr_reminders_at_24_and_48_hours_and_at_the_deadline_are_each_sent_once(
    dpo, clock, mailoutbox, django_capture_on_commit_callbacks
):
    aware = london(2026, 11, 30, 12, 0)
    pecr = record(dpo, aware=aware, pecr=True)

    def run() -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return send_breach_reminders()

    # Nothing at 12 h or 20 h (the reminders of the former 24-hour rule), nor before 24 h.
    for hours in (12, 20):
        clock.move_to(aware + datetime.timedelta(hours=hours))
        assert run() == 0
    clock.move_to(aware + datetime.timedelta(hours=23, minutes=59))
    assert run() == 0
    clock.move_to(aware + datetime.timedelta(hours=24))
    assert run() == 1
    assert run() == 0
    assert f"{pecr.reference}: 48 hours left" in mailoutbox[0].subject
    assert (
        "Notify the ICO by: Thu 03 Dec 2026 12:00 GMT (72 hours after awareness, PECR reg. 5A(2) as amended)"
        in mailoutbox[0].body
    )
    clock.move_to(aware + datetime.timedelta(hours=48, minutes=5))
    assert run() == 1
    assert run() == 0
    assert f"{pecr.reference}: 23 hours left" in mailoutbox[1].subject
    clock.move_to(aware + datetime.timedelta(hours=72, minutes=1))
    assert run() == 1
    assert run() == 0

    assert len(mailoutbox) == 3
    assert (
        mailoutbox[2].subject
        == f"[Fusion privacy] {pecr.reference}: the 72 hours to notify the ICO have passed"
    )
    kinds = sorted(BreachReminder.objects.filter(incident=pecr).values_list("kind", flat=True))
    assert kinds == ["24h", "48h", "overdue"]
    assert {value for value, _ in BreachReminder.Kind.choices} == {"24h", "48h", "overdue"}


@pytest.mark.frozen_at("2026-12-04T12:00:00+00:00")
def test_a_pecr_notification_after_72_hours_needs_reasons_citing_reg_5a_as_amended(dpo, client):
    aware = london(2026, 11, 30, 9, 0)
    pecr = record(dpo, aware=aware, pecr=True)
    client.force_login(dpo)
    after_25_hours = {
        "ico_decision": "notify",
        "ico_decision_reason": "Call records of customers were exposed.",
        "ico_notified_at": "2026-12-01T10:00",
    }
    after_73_hours = {**after_25_hours, "ico_notified_at": "2026-12-03T10:00"}

    refused = client.post(f"/privacy/breaches/{pecr.pk}/decide/ico/", after_73_hours)
    assert refused.status_code == 400
    assert "more than 72 hours after we became aware" in refused.content.decode()
    assert "(PECR reg. 5A(2) as amended)" in refused.content.decode()
    pecr.refresh_from_db()
    assert pecr.ico_decision == ""

    client.post(
        f"/privacy/breaches/{pecr.pk}/decide/ico/",
        {**after_73_hours, "delay_reasons": "The essential facts were only known on the third day."},
    )
    pecr.refresh_from_db()
    assert pecr.notified_late() and pecr.delay_reasons.startswith("The essential facts")
    page = client.get(f"/privacy/breaches/{pecr.pk}/").content.decode()
    assert "after 72 hours" in page

    # 25 hours (late under the former 24-hour rule) is in time now, with no reasons asked.
    on_time = record(dpo, aware=aware, pecr=True, title="Told the next day")
    assert client.post(f"/privacy/breaches/{on_time.pk}/decide/ico/", after_25_hours).status_code == 302
    on_time.refresh_from_db()
    assert on_time.ico_decision == "notify" and not on_time.notified_late()
    assert "Reasons for the delay" not in client.get(f"/privacy/breaches/{on_time.pk}/").content.decode()


def test_the_subscribers_are_asked_about_in_pecr_words(dpo, client):
    pecr = record(dpo, aware=london(2026, 11, 30, 9, 0), pecr=True)
    client.force_login(dpo)
    page = client.get(f"/privacy/breaches/{pecr.pk}/").content.decode()
    assert "Tell the subscribers or users?" in page
    assert "likely to adversely affect them, PECR reg. 5A(3)" in page
    assert "ico_details_to_follow" not in page and "second notification" not in page.lower()
    client.post(
        f"/privacy/breaches/{pecr.pk}/decide/subjects/",
        {"subjects_decision": "tell", "subjects_decision_reason": "Their call records were seen."},
    )
    pecr.refresh_from_db()
    assert pecr.subjects_decision == "tell"
    assert pecr.history.first().history_change_reason.endswith(
        "(likely to adversely affect them, PECR reg. 5A(3))"
    )
    report = client.get(f"/privacy/breaches/{pecr.pk}/report/").content.decode()
    assert "Tell the subscribers or users (likely to adversely affect them, PECR reg. 5A(3))" in report


def test_the_register_filters_to_the_pecr_breach_log_and_the_report_names_the_regime(dpo, client):
    pecr = record(dpo, aware=london(2026, 11, 30, 9, 0), pecr=True, title="Voicemail PINs exposed")
    gdpr = record(dpo, aware=london(2026, 11, 30, 9, 0), title="HR spreadsheet emailed out")
    client.force_login(dpo)

    everything = client.get("/privacy/breaches/").content.decode()
    assert pecr.title in everything and gdpr.title in everything
    log = client.get("/privacy/breaches/?regime=pecr").content.decode()
    assert "PECR breach log" in log
    assert pecr.title in log and gdpr.title not in log

    report = client.get(f"/privacy/breaches/{pecr.pk}/report/").content.decode()
    assert "PECR reg. 5A (public electronic communications service): the ICO within 72 hours" in report
    assert "Reported within 72 hours?" in report and "24 hours" not in report
    other = client.get(f"/privacy/breaches/{gdpr.pk}/report/").content.decode()
    assert "UK GDPR Art. 33 and 34: the ICO within 72 hours" in other
    assert "Reported within 72 hours?" in other


def test_correcting_the_regime_is_kept_in_history_and_leaves_the_deadline(dpo, client):
    aware = london(2026, 11, 30, 9, 0)
    incident = record(dpo, aware=aware)
    client.force_login(dpo)
    url = f"/privacy/breaches/{incident.pk}/edit/"
    form = client.get(url).context["form"]
    data = {name: value for name, value in form.initial.items() if value is not None}
    data.update(
        {
            "occurred_at": "2026-11-30T07:00",
            "became_aware_at": "2026-11-30T09:00",
            "handler": dpo.pk,
            "pecr": "True",
            "reason": "The spreadsheet held call records: a PECR breach",
        }
    )
    client.post(url, data)

    incident.refresh_from_db()
    assert incident.pecr and incident.notification_deadline == aware + datetime.timedelta(hours=72)
    latest, first = incident.history.order_by("-history_id")[:2]
    assert (first.pecr, latest.pecr) == (False, True)
    assert latest.history_change_reason == "Corrected: The spreadsheet held call records: a PECR breach"
