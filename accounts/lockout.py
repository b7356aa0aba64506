"""Login lockout: django-axes locks a username after AXES_FAILURE_LIMIT failures; this handler adds a much
higher limit per address, for password spraying (a few guesses at each of many usernames from one place).

Axes applies one failure limit to every lockout parameter, so locking the address at the username's limit
let one person's typos lock everyone behind the same office address. Here an address is throttled only once
its failures, counting at most AXES_FAILURE_LIMIT per username, reach LOGIN_ADDRESS_FAILURE_LIMIT: with the
defaults (5 and 50) that takes failures at ten usernames or more. The failures counted are axes' own
AccessAttempt rows, which axes forgets AXES_COOLOFF_TIME after their last failure; so the window is the
cool-off, an address stays throttled while the spraying goes on, and an administrator lifts the throttle
by deleting the address's access attempts in the admin, as for a locked username.
"""

import datetime
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Count, Sum, Value
from django.db.models.functions import Least
from django.http import HttpRequest
from django.utils import timezone

from accounts import alerts
from accounts.audit import audit_record
from accounts.models import AuditEvent


def address_failures(*, ip_address: str, cap_per_username: int, since: datetime.datetime) -> tuple[int, int]:
    """The failures from one address since ``since`` (the start of the cool-off), counting each username's
    row at most ``cap_per_username`` times (someone hammering one locked account is not spraying), and how
    many usernames they were at."""
    if not ip_address:
        return 0, 0
    totals = AccessAttempt.objects.filter(ip_address=ip_address, attempt_time__gte=since).aggregate(
        failures=Sum(Least("failures_since_start", Value(cap_per_username))),
        usernames=Count("username", distinct=True),
    )
    return totals["failures"] or 0, totals["usernames"]


class AddressThrottlingHandler(AxesDatabaseHandler):
    """Axes' database handler, locking by its AXES_LOCKOUT_PARAMETERS (the username), and also refusing
    every login from an address whose failures across usernames reach LOGIN_ADDRESS_FAILURE_LIMIT."""

    def _address_failures(self, request: HttpRequest, credentials: dict[str, Any] | None) -> tuple[int, int]:
        return address_failures(
            ip_address=getattr(request, "axes_ip_address", None) or "",
            cap_per_username=get_failure_limit(request, credentials),
            # The request's own clock (axes stamps it once), as axes uses for the username's failures.
            since=get_cool_off_threshold(request),
        )

    def is_locked(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> bool:
        if super().is_locked(request, credentials):
            return True
        failures, _ = self._address_failures(request, credentials)
        return failures >= settings.LOGIN_ADDRESS_FAILURE_LIMIT

    def user_login_failed(
        self, sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or self.is_whitelisted(request, credentials):
            return
        failures, usernames = self._address_failures(request, credentials)
        if failures < settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return
        # The lockout page, as for a locked username (axes' middleware reads these two attributes).
        request.axes_locked_out = True  # type: ignore[attr-defined]
        request.axes_credentials = credentials  # type: ignore[attr-defined]
        address_throttled(ip_address=request.axes_ip_address, failures=failures, usernames=usernames)  # type: ignore[attr-defined]


def address_throttled(*, ip_address: str, failures: int, usernames: int) -> None:
    """Audit an address's throttle once while it lasts (every later attempt from it is refused, and is
    audited as a failed login), and alert the administrators and DPO."""
    already = AuditEvent.objects.filter(
        action="auth.address_throttled",
        detail__ip=ip_address,
        at__gte=timezone.now() - settings.AXES_COOLOFF_TIME,
    ).exists()
    if not already:
        audit_record(
            actor=None,
            action="auth.address_throttled",
            detail={"ip": ip_address, "failures": failures, "usernames": usernames},
        )
    alerts.check_password_spraying(ip_address=ip_address, failures=failures, usernames=usernames)
