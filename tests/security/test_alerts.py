"""Alerts to the DPO and administrators on unusual access, queued on commit."""

import pytest
from axes.models import AccessAttempt
from django.test import Client

from accounts.audit import audit_record
from accounts.models import Role
from tests.factories import PASSWORD

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive


@pytest.fixture
def watchers(make_user):
    return {make_user(Role.ADMINISTRATOR).email, make_user(Role.DATA_PROTECTION_OFFICER).email}


def test_many_reveals_by_one_user_alert_once(
    client, make_user, customer, watchers, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.ALERT_REVEALS_PER_WINDOW = 3
    agent = make_user(Role.SUPPORT_AGENT)
    client.force_login(agent)
    url = f"/customers/{customer.reference}/reveal/"

    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(2):
            client.post(url, {"reason": "Customer on the phone"})
    assert mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            client.post(url, {"reason": "Customer on the phone"})

    assert len(mailoutbox) == 1
    assert set(mailoutbox[0].to) == watchers
    assert agent.email in mailoutbox[0].subject
    assert "3 times" in mailoutbox[0].body


def test_many_exports_by_one_user_alert(
    make_user, watchers, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.ALERT_EXPORTS_PER_WINDOW = 2
    finance = make_user(Role.FINANCE_MANAGER)

    with django_capture_on_commit_callbacks(execute=True):
        audit_record(actor=finance, action="export.direct_debit_file")
        assert mailoutbox == []
        audit_record(actor=finance, action="export.direct_debit_file")

    assert len(mailoutbox) == 1
    assert "exports" in mailoutbox[0].subject
    assert set(mailoutbox[0].to) == watchers


def test_an_administrator_reading_a_partners_customer_alerts_without_personal_data(
    client, make_user, customer, watchers, mailoutbox, django_capture_on_commit_callbacks
):
    administrator = make_user(Role.ADMINISTRATOR)
    client.force_login(administrator)
    contact = customer.contacts.first()

    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(f"/customers/{customer.reference}/").status_code == 200
        client.get(f"/customers/{customer.reference}/")  # the same customer again: no second mail

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert customer.reference in mail.body
    for personal in (contact.name, contact.email, contact.phone, customer.sites.first().postcode):
        assert personal not in mail.body + mail.subject


def test_partner_staff_reading_their_own_customers_raise_no_alert(
    client, make_user, customer, watchers, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(make_user(Role.SUPPORT_AGENT))

    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(f"/customers/{customer.reference}/").status_code == 200

    assert mailoutbox == []


def test_repeated_lockouts_of_one_username_alert(
    make_user, watchers, settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.AXES_FAILURE_LIMIT = 2
    settings.ALERT_LOCKOUTS_PER_DAY = 2
    target = make_user(Role.BILLING_AGENT)

    with django_capture_on_commit_callbacks(execute=True):
        for round_ in range(2):
            attacker = Client(REMOTE_ADDR=f"203.0.113.{round_ + 1}")
            for _ in range(settings.AXES_FAILURE_LIMIT):  # the last failure locks the username
                attacker.post("/login/", {"username": target.email, "password": "guess"})
            if round_ == 0:
                assert mailoutbox == []
                AccessAttempt.objects.all().delete()  # the cool-off passed (or an administrator unlocked)

    assert [mail.subject for mail in mailoutbox] == ["[Fusion security] Repeated lockouts of one username"]
    assert set(mailoutbox[0].to) == watchers
    assert target.email not in mailoutbox[0].body
    assert Client().post("/login/", {"username": target.email, "password": PASSWORD}).status_code == 429
