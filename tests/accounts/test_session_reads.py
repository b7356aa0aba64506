"""Every page loads the session's user and second-factor device through SQL compiled once per process
(``RolePermissionsBackend.get_user``, ``accounts.security.OTPMiddleware``): the same answers as Django's
ModelBackend and django-otp's ``Device.from_persistent_id``, for any id a session could hold."""

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.sessions.backends.cache import SessionStore
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import OTPMiddleware as DjangoOTPMiddleware
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.backends import RolePermissionsBackend
from accounts.models import MAX_ID, Role, User
from accounts.security import OTPMiddleware
from fusion_site.compiled_reads import statement_of

hypothesis_settings = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Ids around the rows a test makes, and at and past the ends of a BigAutoField's range.
ids = st.one_of(
    st.integers(min_value=-3, max_value=40),
    st.sampled_from([0, MAX_ID - 1, MAX_ID, MAX_ID + 1, -MAX_ID, 2**80]),
)


@pytest.fixture
def users(make_user):
    active = make_user(Role.BILLING_AGENT)
    inactive = make_user(Role.SUPPORT_AGENT)
    User.objects.filter(pk=inactive.pk).update(is_active=False)
    portal = make_user(Role.CUSTOMER)
    return [active, inactive, portal]


@hypothesis_settings
@given(offset=ids)
def test_get_user_answers_as_model_backend(users, offset):
    user_id = users[0].pk + offset if abs(offset) < 100 else offset
    ours = RolePermissionsBackend().get_user(user_id)
    theirs = ModelBackend().get_user(user_id) if 0 < user_id <= MAX_ID else None

    assert ours == theirs
    if ours is not None:
        assert ours.is_active
        columns = [field.attname for field in User._meta.concrete_fields]
        assert [getattr(ours, c) for c in columns] == [getattr(theirs, c) for c in columns]
    # The session stores the id as text in some backends: the same user either way.
    if user_id > 0:
        assert RolePermissionsBackend().get_user(str(user_id)) == ours


@pytest.mark.parametrize("user_id", [None, True, 1.0, "", "1e3", " 1", "+1", "\u0661", "-1", "abc"])
def test_get_user_of_an_id_that_is_not_a_whole_number_is_nobody(users, user_id):
    assert RolePermissionsBackend().get_user(user_id) is None


def test_an_inactive_user_is_nobody(users):
    assert RolePermissionsBackend().get_user(users[1].pk) is None
    assert RolePermissionsBackend().get_user(users[0].pk) == users[0]


@pytest.fixture
def devices(users):
    agent, _inactive, portal = users
    return [
        TOTPDevice.objects.create(user=agent, name="agent's", confirmed=True),
        TOTPDevice.objects.create(user=agent, name="not confirmed", confirmed=False),
        StaticDevice.objects.create(user=agent, name="recovery codes", confirmed=True),
        TOTPDevice.objects.create(user=portal, name="portal's", confirmed=True),
    ]


labels = st.sampled_from(
    [
        "otp_totp.totpdevice",
        "otp_static.staticdevice",
        "django_otp.plugins.otp_totp.models.TOTPDevice",  # the legacy form django-otp still reads
        "accounts.user",  # a model, not a device
        "nothing.here",
        "notalabel",
        "",
    ]
)


@hypothesis_settings
@given(label=labels, offset=ids)
def test_the_device_is_the_one_django_otp_loads(devices, label, offset):
    device_id = devices[0].pk + offset if abs(offset) < 100 else offset
    persistent_id = f"{label}/{device_id}"
    middleware = OTPMiddleware(lambda request: HttpResponse())
    # django-otp itself fails (AttributeError, a 500) on a model that is not a device: no device, here.
    theirs = (
        Device.from_persistent_id(DjangoOTPMiddleware._normalize_persistent_id(persistent_id))
        if 0 <= device_id <= MAX_ID and label != "accounts.user"
        else None
    )

    ours = middleware._device_from_persistent_id(persistent_id)

    assert ours == theirs
    assert type(ours) is type(theirs)
    if ours is not None:
        assert (ours.user_id, ours.confirmed, ours.name) == (theirs.user_id, theirs.confirmed, theirs.name)


@pytest.mark.parametrize("device_id", ["", " 5", "+5", "5.0", "\u0665", "5/6", "x"])
def test_a_device_id_that_is_not_a_whole_number_is_no_device(devices, device_id):
    middleware = OTPMiddleware(lambda request: HttpResponse())

    assert middleware._device_from_persistent_id(f"otp_totp.totpdevice/{device_id}") is None


def test_the_overridden_hook_is_the_one_django_otp_calls():
    """The override must replace the method django-otp's middleware calls for the session's device: were
    it renamed upstream, pages would silently go back to the ORM's per-request queryset."""
    assert "_device_from_persistent_id" in vars(DjangoOTPMiddleware)
    assert "_device_from_persistent_id" in DjangoOTPMiddleware._verify_user_sync.__code__.co_names


def _verified(session_device: str, user: User) -> tuple[bool, object]:
    request = RequestFactory().get("/")
    request.session = SessionStore()
    request.session[DEVICE_ID_SESSION_KEY] = session_device
    request.user = User.objects.get(pk=user.pk)
    seen = {}

    def view(request):
        seen["verified"] = request.user.is_verified()
        seen["device"] = request.user.otp_device
        return HttpResponse()

    OTPMiddleware(view)(request)
    return seen["verified"], seen["device"]


def test_only_the_users_own_confirmed_device_verifies(users, devices):
    agent = users[0]
    totp, unconfirmed, recovery, portals = devices

    assert _verified(totp.persistent_id, agent) == (True, totp)
    assert _verified(recovery.persistent_id, agent) == (True, recovery)
    assert _verified(unconfirmed.persistent_id, agent) == (False, None)
    assert _verified(portals.persistent_id, agent) == (False, None)
    assert _verified("otp_totp.totpdevice/0", agent) == (False, None)


def test_a_page_reads_the_user_and_device_once_each(client, users, devices):
    agent = users[0]
    client.force_login(agent)
    client.get(reverse("accounts:home"))  # each read compiles on first use

    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("accounts:home")).status_code == 200

    user_table, device_table = User._meta.db_table, TOTPDevice._meta.db_table
    statements = [statement_of(q["sql"]) for q in queries]
    reads = [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]
    assert sum(f'FROM "{user_table}"' in sql for sql in reads) == 1
    assert sum(f'FROM "{device_table}"' in sql for sql in reads) == 1
    if connection.vendor == "postgresql":  # one round trip for both (reads_with_user)
        assert any(f'FROM "{user_table}"' in sql and f'FROM "{device_table}"' in sql for sql in reads)


def test_the_guarded_django_otp_hooks_are_still_there():
    """The middleware replaces django-otp's ``_verify_user_sync`` and uses its helpers: renamed upstream,
    the device would be read apart again, or not checked."""
    for name in ("_verify_user_sync", "_init_user_fields", "_finalize_device", "_normalize_persistent_id"):
        assert name in vars(DjangoOTPMiddleware), name


@pytest.mark.parametrize("whose", ["own", "unconfirmed", "recovery", "other's", "missing", "not a device"])
def test_a_page_verifies_only_the_users_own_confirmed_device_read_with_the_user(
    client, users, devices, whose
):
    """Through a page, where the user is loaded lazily and the device read with it: the same verdicts as
    django-otp's, and a device that does not verify is dropped from the session."""
    agent = users[0]
    totp, unconfirmed, recovery, portals = devices
    persistent_id = {
        "own": totp.persistent_id,
        "unconfirmed": unconfirmed.persistent_id,
        "recovery": recovery.persistent_id,
        "other's": portals.persistent_id,
        "missing": f"otp_totp.totpdevice/{portals.pk + 1000}",
        "not a device": "accounts.user/1",
    }[whose]
    client.force_login(agent)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = persistent_id
    session.save()

    response = client.get(reverse("accounts:home"))

    if whose in ("own", "recovery"):
        assert response.status_code == 200
        assert client.session[DEVICE_ID_SESSION_KEY] == persistent_id
    else:
        assert response.status_code == 302 and response.url.startswith(reverse("accounts:otp_verify"))
        assert DEVICE_ID_SESSION_KEY not in client.session
