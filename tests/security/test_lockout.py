"""Login lockout: a username locks after AXES_FAILURE_LIMIT failures, from any address, without locking its
colleagues behind the same office address; an address is throttled only for failures at many usernames
(password spraying), which alerts the administrators once."""

import datetime

import pytest
import time_machine
from axes.models import AccessAttempt
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, Role
from tests.factories import PASSWORD
from tests.security.test_authentication import VERIFY, code_for, password_login

# The outcome turns on the time (cool-offs, idle timeouts): CI runs this module again at other instants.
pytestmark = pytest.mark.date_sensitive

OFFICE = "198.51.100.20"
HOME = "203.0.113.77"
SPRAYER = "192.0.2.66"
LOCKED_PAGE = "Too many failed logins"


@pytest.fixture
def watchers(make_user):
    return {make_user(Role.ADMINISTRATOR).email, make_user(Role.DATA_PROTECTION_OFFICER).email}


@pytest.fixture
def small_address_limit(settings):
    """Four usernames' worth of failures, so a test sprays a few dozen logins rather than fifty."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 4 * settings.AXES_FAILURE_LIMIT
    return settings.LOGIN_ADDRESS_FAILURE_LIMIT


def fail(address: str, username: str, times: int = 1):
    client = Client(REMOTE_ADDR=address)
    for _ in range(times):
        response = client.post("/login/", {"username": username, "password": "wrong password"})
    return response


def log_in_fully(address: str, user) -> Client:
    """The real way in: the password at /login/, then the authenticator's code."""
    device = TOTPDevice.objects.get_or_create(user=user, name="authenticator", defaults={"confirmed": True})[
        0
    ]
    client = Client(REMOTE_ADDR=address)
    password_login(client, user)
    assert client.post(VERIFY, {"token": code_for(device)}).status_code == 302
    assert client.get("/").status_code == 200
    return client


def right_password(address: str, user):
    return Client(REMOTE_ADDR=address).post("/login/", {"username": user.email, "password": PASSWORD})


def test_one_users_typos_do_not_lock_a_colleague_at_the_same_address(make_user, settings):
    clumsy, colleague = make_user(Role.SUPPORT_AGENT), make_user(Role.SUPPORT_AGENT)

    locked = fail(OFFICE, clumsy.email, times=settings.AXES_FAILURE_LIMIT)

    assert locked.status_code == 429
    assert LOCKED_PAGE in locked.content.decode()
    log_in_fully(OFFICE, colleague)


def test_a_locked_username_is_refused_at_its_address_and_from_any_other(make_user, settings):
    target = make_user(Role.BILLING_AGENT)
    fail(OFFICE, target.email, times=settings.AXES_FAILURE_LIMIT - 1)
    assert right_password(OFFICE, target).status_code == 302  # one short of the limit: still let in

    # A success resets the count, so the lock below is five fresh failures.
    fail(HOME, target.email, times=settings.AXES_FAILURE_LIMIT)

    for address in (HOME, OFFICE, SPRAYER):
        refused = right_password(address, target)
        assert refused.status_code == 429, address
        assert LOCKED_PAGE in refused.content.decode()


def test_one_username_hammered_from_an_address_never_throttles_it(make_user, small_address_limit):
    """Failures at a locked username count once up to the username's limit towards the address's."""
    colleague = make_user(Role.SUPPORT_AGENT)

    fail(OFFICE, "someone-stuck@fusion.example", times=small_address_limit + 5)

    assert right_password(OFFICE, colleague).status_code == 302
    assert not AuditEvent.objects.filter(action="auth.address_throttled").exists()


def test_failures_at_many_usernames_throttle_the_address_and_alert_once(
    make_user, small_address_limit, watchers, mailoutbox, django_capture_on_commit_callbacks
):
    colleague = make_user(Role.SUPPORT_AGENT)

    with django_capture_on_commit_callbacks(execute=True):
        # One short of the limit, at usernames nobody has locked: the address still lets people in.
        for n in range(small_address_limit - 1):
            assert fail(SPRAYER, f"guess{n}@fusion.example").status_code == 200
        assert right_password(SPRAYER, colleague).status_code == 302
        assert mailoutbox == []

        throttled = fail(SPRAYER, "one-more@fusion.example")
        for n in range(5):  # the spraying goes on: refused, and no second mail
            fail(SPRAYER, f"later{n}@fusion.example")

    assert throttled.status_code == 429
    assert LOCKED_PAGE in throttled.content.decode()
    refused = right_password(SPRAYER, colleague)
    assert refused.status_code == 429
    assert LOCKED_PAGE in refused.content.decode()
    log_in_fully(HOME, colleague)  # only that address is throttled, and no username is locked

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert set(mail.to) == watchers
    assert SPRAYER in mail.subject
    assert f"at least {small_address_limit} times at {small_address_limit} usernames" in mail.body
    assert "guess0@fusion.example" not in mail.body
    events = AuditEvent.objects.filter(action="auth.address_throttled")
    assert [(event.detail["ip"], event.detail["usernames"]) for event in events] == [
        (SPRAYER, small_address_limit)
    ]


def test_a_throttled_address_is_let_in_again_after_the_cool_off(make_user, small_address_limit, settings):
    colleague = make_user(Role.SUPPORT_AGENT)
    start = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)

    with time_machine.travel(start, tick=False) as clock:
        for n in range(small_address_limit // settings.AXES_FAILURE_LIMIT):
            fail(OFFICE, f"guess{n}@fusion.example", times=settings.AXES_FAILURE_LIMIT)
        clock.shift(settings.AXES_COOLOFF_TIME - datetime.timedelta(minutes=1))
        assert right_password(OFFICE, colleague).status_code == 429

        clock.shift(datetime.timedelta(minutes=2))

        log_in_fully(OFFICE, colleague)


def test_an_administrator_unlocks_a_throttled_address(client, make_user, small_address_limit):
    colleague = make_user(Role.SUPPORT_AGENT)
    for n in range(small_address_limit):
        fail(OFFICE, f"guess{n}@fusion.example")
    fail(HOME, "guess0@fusion.example")  # another address's attempt, which the unlock leaves alone
    assert right_password(OFFICE, colleague).status_code == 429

    client.force_login(make_user(Role.ADMINISTRATOR))
    attempts = AccessAttempt.objects.filter(ip_address=OFFICE)
    listed = client.get("/admin/axes/accessattempt/", {"q": OFFICE})  # found by searching the address
    assert listed.context["cl"].result_count == attempts.count() == small_address_limit + 1
    response = client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [a.pk for a in attempts], "post": "yes"},
    )

    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(ip_address=OFFICE).exists()
    assert AccessAttempt.objects.filter(ip_address=HOME).count() == 1
    log_in_fully(OFFICE, colleague)
