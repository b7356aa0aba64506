"""Request-level security: every signed-in user passes a second factor, and idle sessions end.

Two-factor authentication has no off switch: the only way into any page (staff pages, the customer
portal, the admin) is a password and then a TOTP code or a recovery code. Demo users are enrolled by
``seed_demo``, which prints their TOTP secrets, rather than being let in without one.
"""

import functools
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.conf import settings
from django.contrib.auth import logout
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.middleware import OTPMiddleware as DjangoOTPMiddleware
from django_otp.models import Device

from accounts.backends import reads_with_user
from accounts.models import MAX_ID, User
from fusion_site.compiled_reads import CompiledRead

# Pages a signed-in but not yet verified user may reach: the second-factor pages, logging out, the
# health probes (they show no data, and a probe must never be redirected), and static files (the
# verification page needs its stylesheet).
_UNVERIFIED_URL_NAMES = ("accounts:otp_verify", "accounts:otp_enrol", "logout", "healthz", "readyz")
LAST_ACTIVITY_SESSION_KEY = "fusion_last_activity"
# The recorded activity moves on at most once a minute, not on every request: each move is a write of the
# session row (an UPDATE and a commit), which every page paid for. The idle limit then runs from up to a
# minute before the last request, so a session can end that much sooner, never later.
ACTIVITY_RECORDED_EVERY_SECONDS = 60


class RequireSecondFactorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not user.is_verified():  # type: ignore[attr-defined]
            open_paths = {reverse(name) for name in _UNVERIFIED_URL_NAMES}
            # settings.STATIC_URL reads back with its leading slash ("/static/"): Django adds it.
            if request.path not in open_paths and not request.path.startswith(settings.STATIC_URL):
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{reverse('accounts:otp_verify')}?{query}")
        return self.get_response(request)


def activity_record(request: HttpRequest) -> None:
    """Start or move on the session's idle clock (the session is written when the response goes)."""
    request.session[LAST_ACTIVITY_SESSION_KEY] = int(time.time())


def idle_seconds_for(user: object) -> int:
    if getattr(user, "is_staff", False):
        return int(settings.STAFF_SESSION_IDLE_SECONDS)
    return int(settings.PORTAL_SESSION_IDLE_SECONDS)


class IdleSessionTimeoutMiddleware:
    """Log out a session that has been idle longer than its user's limit; any request refreshes it
    (recorded at most every ``ACTIVITY_RECORDED_EVERY_SECONDS``).

    Kept as a timestamp in the session (not the cookie's expiry) so the rule is the same for every
    session backend and the cookie age stays an absolute cap (SESSION_COOKIE_AGE).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated:
            now = int(time.time())
            last = request.session.get(LAST_ACTIVITY_SESSION_KEY)
            if last is not None and now - int(last) > idle_seconds_for(user):
                logout(request)
                query = urlencode({"next": request.get_full_path(), "timed_out": "1"})
                return HttpResponseRedirect(f"{reverse(settings.LOGIN_URL)}?{query}")
            if last is None or now - int(last) >= ACTIVITY_RECORDED_EVERY_SECONDS:
                activity_record(request)
        return self.get_response(request)


def signed_in_user(request: HttpRequest) -> User:
    """The user of a request that passed ``login_required`` (every page but the public website's, and
    the admin)."""
    user = request.user
    assert isinstance(user, User)
    return user


def staff_user_with(request: HttpRequest, permission: str) -> User:
    """The signed-in user, if staff holding ``permission``; a portal user is refused whatever it holds."""
    user = signed_in_user(request)
    if user.is_portal_user or not user.has_perm(permission):
        raise PermissionDenied
    return user


class OTPMiddleware(DjangoOTPMiddleware):
    """django-otp's middleware (``request.user.otp_device``, ``is_verified()``), reading the session's
    device through SQL compiled once per process instead of a queryset built and compiled on every page,
    and in the same round trip as the session's user where the user is still to be loaded
    (``accounts.backends.reads_with_user``): a round trip of its own on every page before.

    It answers as ``Device.from_persistent_id``: the device of that model and id, or None for a label
    that names no device model or an id that is not a positive whole number. The parent still checks
    that the device is the user's and confirmed (``_finalize_device``)."""

    def _verify_user_sync(self, request: HttpRequest, user: Any) -> Any:
        persistent_id: str | None = request.session.get(DEVICE_ID_SESSION_KEY)
        lookup = self._device_lookup(persistent_id) if persistent_id else None
        if persistent_id is None or lookup is None:
            return super()._verify_user_sync(request, user)
        with reads_with_user(*lookup) as found:
            self._init_user_fields(user)  # loads a user not loaded yet, and the device with it
        if user.is_authenticated:
            if found:
                device = found[0][0] if found[0] else None
            else:  # the user was loaded before: the device in a read of its own
                device = self._device_from_persistent_id(persistent_id)
            user.otp_device = self._finalize_device(request, user, device)
        return user

    def _device_lookup(self, persistent_id: str) -> tuple[CompiledRead[Device], tuple[int]] | None:
        """The compiled read of the device ``persistent_id`` names, and its id; None where it names none."""
        label, _, device_id = self._normalize_persistent_id(persistent_id).rpartition("/")
        read = _device_read(label)
        if read is None or not (device_id.isascii() and device_id.isdecimal()):
            return None
        pk = int(device_id)
        return (read, (pk,)) if 0 < pk <= MAX_ID else None

    def _device_from_persistent_id(self, persistent_id: str) -> Device | None:
        lookup = self._device_lookup(persistent_id)
        found = lookup[0](*lookup[1]) if lookup is not None else []
        return found[0] if found else None


@functools.cache
def _device_read(label: str) -> CompiledRead[Device] | None:
    """The compiled read of one device model by its label (``otp_totp.totpdevice``), or None."""
    try:
        model = apps.get_model(label)
    except (LookupError, ValueError):
        return None
    if not issubclass(model, Device):
        return None
    return CompiledRead(lambda pk: model.objects.filter(id=pk))
