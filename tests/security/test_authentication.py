"""Logging in: password then a second factor for everyone, lockout after repeated failures, idle
timeout, logout everywhere on a password change, password rules, CSRF on every form."""

import datetime
import time

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import AuditEvent, Role, User
from accounts.security import LAST_ACTIVITY_SESSION_KEY
from tests.factories import PASSWORD
from tests.security.test_url_matrix import MATRIX
from tests.security.world import build_world

# The outcome turns on the time (cool-offs, idle timeouts): CI runs this module again at other instants.
pytestmark = pytest.mark.date_sensitive

VERIFY = "/account/two-factor/"
ENROL = "/account/two-factor/enrol/"


def code_for(device: TOTPDevice, offset_steps: int = 0) -> str:
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, offset_steps):0{device.digits}d}"


def password_login(client: Client, user: User, password: str = PASSWORD) -> None:
    response = client.post("/login/", {"username": user.email, "password": password})
    assert response.status_code == 302, response.content[:300]


@pytest.fixture(autouse=True)
def _no_wait_after_a_wrong_code(settings):
    """django-otp makes each wrong code double the wait before the next try; tests try at once."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


@pytest.fixture
def world(customer, other_customer):
    return build_world(customer, other_customer)


@pytest.mark.parametrize("role", list(Role), ids=str)
def test_a_password_alone_opens_no_page_and_no_admin(make_user, world, role):
    """Django's plain client: logged in by password (force_login) but never through the second factor."""
    extra = {"customer": world.customer} if role == Role.CUSTOMER else {}
    user = make_user(role, **extra)
    client = Client()
    client.force_login(user)
    urls = [url(world) for url, _, _ in MATRIX.values()] + ["/admin/", "/admin/accounts/customer/"]

    answers = {}
    for url in urls:
        response = client.get(url)
        answers[url] = (response.status_code, response.get("Location", "").split("?")[0])

    refused = {url for url, (status, location) in answers.items() if status == 302 and location == VERIFY}
    # The second-factor pages themselves are the way forward, so they open.
    assert set(urls) - refused == {VERIFY, ENROL}, answers


def test_the_admin_login_also_leads_to_the_second_factor(make_user):
    user = make_user(Role.ADMINISTRATOR)
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": user.email, "password": PASSWORD})
    assert response.status_code == 302

    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith(VERIFY)


def test_first_login_enrols_an_authenticator_and_shows_recovery_codes(make_user):
    user = make_user(Role.SUPPORT_AGENT)
    client = Client()
    password_login(client, user)

    assert client.get("/")["Location"].startswith(VERIFY)
    assert client.get(VERIFY)["Location"].startswith(ENROL)
    page = client.get(ENROL)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert page.status_code == 200
    assert page.context["secret"] in page.content.decode()
    assert "otpauth://totp/" in page.content.decode()
    assert user.email not in page.context["otpauth_uri"]  # the QR code does not name the person

    wrong = client.post(ENROL, {"token": "000000" if code_for(device) != "000000" else "111111"})
    assert "does not match" in wrong.content.decode()
    assert client.get("/").status_code == 302

    done = client.post(ENROL, {"token": code_for(device)})

    assert done.status_code == 200
    assert len(done.context["codes"]) == 10
    assert client.get("/").status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    assert AuditEvent.objects.filter(action="2fa.enrolled", target_id=str(user.pk)).exists()


def test_a_later_login_needs_the_current_code(make_user):
    user = make_user(Role.BILLING_AGENT)
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    client = Client()
    password_login(client, user)

    refused = client.post(VERIFY, {"token": code_for(device, offset_steps=-10), "next": "/billing/runs/"})
    assert refused.status_code == 200
    assert "not right" in refused.content.decode()
    assert client.get("/").status_code == 302
    # Enrolling a new device instead is refused while one is confirmed: a stolen password is not enough.
    assert client.get(ENROL)["Location"].startswith(VERIFY)

    passed = client.post(VERIFY, {"token": code_for(device), "next": "/billing/runs/"})

    assert passed["Location"] == "/billing/runs/"
    assert client.get("/").status_code == 200


def test_a_recovery_code_works_once(make_user):
    user = make_user(Role.FINANCE_MANAGER)
    client = Client()
    client.force_login(user)
    TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    from accounts.two_factor import recovery_codes_issue

    code = recovery_codes_issue(user=user, actor=user)[0]

    assert client.post(VERIFY, {"token": code.upper()}).status_code == 302
    assert client.get("/").status_code == 200
    assert not StaticToken.objects.filter(token=code).exists()
    second = Client()
    second.force_login(user)
    assert second.post(VERIFY, {"token": code}).status_code == 200  # refused: used already
    assert second.get("/").status_code == 302


def test_the_next_parameter_cannot_send_the_user_elsewhere(make_user):
    user = make_user(Role.BILLING_AGENT)
    device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    client = Client()
    client.force_login(user)

    response = client.post(VERIFY, {"token": code_for(device), "next": "https://evil.example/"})

    assert response["Location"] == "/"


def test_the_demo_users_are_enrolled_and_their_codes_printed(capsys, db):
    call_command("seed_demo", partners=1, customers=2)
    out = capsys.readouterr().out
    admin = User.objects.get(email="admin@fusion.example")
    device = TOTPDevice.objects.get(user=admin, confirmed=True)
    line = next(
        line for line in out.splitlines() if "admin@fusion.example" in line and code_for(device) in line
    )
    from accounts.two_factor import base32_secret

    assert base32_secret(device) in line
    client = Client()
    password_login(client, admin, password="fusion-demo-password")
    assert client.post(VERIFY, {"token": code_for(device)}).status_code == 302
    assert client.get("/").status_code == 200


# Lockout -------------------------------------------------------------------------------------------


def test_five_failures_lock_the_username_until_an_administrator_unlocks_it(make_user, client, settings):
    user = make_user(Role.SUPPORT_AGENT)
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attacker.post("/login/", {"username": user.email, "password": "wrong password"})

    # The right password, even from another address, is refused while the username is locked.
    locked = Client(REMOTE_ADDR="198.51.100.7").post(
        "/login/", {"username": user.email, "password": PASSWORD}
    )
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert AuditEvent.objects.filter(action="auth.login_failed").count() >= settings.AXES_FAILURE_LIMIT
    # One lockout event per username and address: hammering a locked login adds failed logins only.
    lockouts = AuditEvent.objects.filter(action="auth.locked_out").count()
    assert lockouts == 2  # the attacker's address, and the refused attempt from the second one
    for _ in range(3):
        attacker.post("/login/", {"username": user.email, "password": "wrong password"})
    assert AuditEvent.objects.filter(action="auth.locked_out").count() == lockouts

    administrator = make_user(Role.ADMINISTRATOR)
    client.force_login(administrator)
    attempts = AccessAttempt.objects.filter(username=user.email)
    response = client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [a.pk for a in attempts], "post": "yes"},
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username=user.email).exists()

    unlocked = Client(REMOTE_ADDR="198.51.100.7").post(
        "/login/", {"username": user.email, "password": PASSWORD}
    )
    assert unlocked.status_code == 302


# Sessions ------------------------------------------------------------------------------------------


def test_an_idle_staff_session_ends_and_activity_keeps_it_alive(client, make_user, settings):
    settings.STAFF_SESSION_IDLE_SECONDS = 15 * 60
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert client.get("/").status_code == 200

    session = client.session
    session[LAST_ACTIVITY_SESSION_KEY] = int(time.time()) - 14 * 60
    session.save()
    assert client.get("/").status_code == 200  # active within the limit: refreshed
    assert client.session[LAST_ACTIVITY_SESSION_KEY] >= int(time.time()) - 5

    session = client.session
    session[LAST_ACTIVITY_SESSION_KEY] = int(time.time()) - 16 * 60
    session.save()
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"].startswith("/login/")


def test_activity_is_recorded_once_a_minute_and_the_limit_runs_from_the_recorded_time(
    client, make_user, settings, clock
):
    settings.STAFF_SESSION_IDLE_SECONDS = 15 * 60
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert client.get("/").status_code == 200
    recorded = client.session[LAST_ACTIVITY_SESSION_KEY]

    # Within the minute: the page is served and the session row is not written.
    clock.shift(datetime.timedelta(seconds=30))
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    assert client.session[LAST_ACTIVITY_SESSION_KEY] == recorded
    assert not [query for query in queries if query["sql"].startswith('UPDATE "django_session"')]

    # A minute on, the activity moves.
    clock.shift(datetime.timedelta(seconds=31))
    assert client.get("/").status_code == 200
    moved = client.session[LAST_ACTIVITY_SESSION_KEY]
    assert moved >= recorded + 61

    # Requests within the next minute do not move it, so the limit runs from ``moved``: just past it the
    # session has ended, although the last request was half a minute later.
    clock.shift(datetime.timedelta(seconds=30))
    assert client.get("/").status_code == 200
    clock.shift(datetime.timedelta(seconds=15 * 60 - 30 + 2))
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session


def test_logging_in_starts_the_idle_clock_so_the_first_page_writes_no_session(client, make_user, clock):
    client.force_login(make_user(Role.SUPPORT_AGENT))
    assert client.session[LAST_ACTIVITY_SESSION_KEY] == int(time.time())

    with CaptureQueriesContext(connection) as queries:
        assert client.get("/").status_code == 200
    assert not [query for query in queries if query["sql"].startswith('UPDATE "django_session"')]


def test_a_password_change_logs_out_every_other_session(make_user):
    from tests.conftest import VerifiedClient

    user = make_user(Role.BILLING_AGENT)
    laptop, phone = VerifiedClient(), VerifiedClient()
    laptop.force_login(user)
    phone.force_login(user)
    assert phone.get("/").status_code == 200

    response = laptop.post(
        "/admin/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-much-longer-new-passphrase",
            "new_password2": "a-much-longer-new-passphrase",
        },
    )

    assert response.status_code == 302
    assert laptop.get("/").status_code == 200  # the session that changed it is kept (its hash updated)
    assert phone.get("/")["Location"].startswith("/login/")


@pytest.mark.parametrize(
    ("password", "message"),
    [("short-pass", "too short"), ("password1234", "too common"), ("123456789012", "entirely numeric")],
)
def test_weak_passwords_are_refused(db, password, message):
    with pytest.raises(ValidationError) as error:
        validate_password(password)

    assert message in " ".join(error.value.messages)


# CSRF ----------------------------------------------------------------------------------------------


def test_forms_refuse_a_post_without_the_csrf_token(make_user, world):
    from tests.conftest import VerifiedClient

    user = make_user(Role.BILLING_AGENT)
    client = VerifiedClient(enforce_csrf_checks=True)
    client.force_login(user)
    contact = world.customer.contacts.first()
    posts = [
        "/login/",
        f"/customers/{world.customer.reference}/reveal/",
        f"/customers/{world.customer.reference}/contacts/{contact.pk}/edit/",
        f"/customers/{world.customer.reference}/orders/new/",
        f"/billing/runs/{world.bill_run.pk}/direct-debit/",
        f"/billing/runs/{world.bill_run.pk}/approve/",
        "/billing/runs/",
        "/account/two-factor/recovery-codes/",
        "/logout/",
        "/admin/accounts/customer/add/",
    ]

    answers = {url: client.post(url, {"reason": "x"}).status_code for url in posts}

    assert set(answers.values()) == {403}, answers
    page = client.get(f"/customers/{world.customer.reference}/")
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
