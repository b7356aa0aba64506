"""Alerts to the DPO and administrators about unusual access, sent by email once the transaction commits.

- many reveals (access log) or exports (audit events ``export.*``) by one user within a short window;
- a user opening a customer outside their own partner (an administrator or DPO reading a partner's
  customer, which their role allows but which should be seen);
- repeated lockouts of one username or from one address within a day;
- an address throttled for failed logins at many usernames (password spraying, accounts.lockout);
- a broken audit chain (``report_broken_audit_chain``, mailed at once by the verification job and command).

Exports are seen by subscribing to the audit trail (``after_events_recorded`` on
``accounts.audit.events_recorded``, connected in ``AccountsConfig.ready()``): this module uses the audit
trail, never the other way round.

A higher app may add a line to every alert mail (``register_alert_followup``, from its ``ready()``): privacy
adds the link that opens a breach incident from the alert. This module names no higher app's page.

Each alert is sent once per subject and window (an atomic ``cache.add``), not once per request. The
mails name staff by email and customers by account reference only: no customer personal data.
"""

import datetime
import logging
from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from accounts.audit import EXPORT_ACTION_PREFIX, audit_record
from accounts.models import AccessLog, AuditEvent, Customer, Role, User

ALERT_ROLES = (Role.ADMINISTRATOR.value, Role.DATA_PROTECTION_OFFICER.value)

logger = logging.getLogger(__name__)

# Lines added to each alert's mail, given the ``alert.sent`` event that records it.
_followups: dict[str, Callable[[AuditEvent], str]] = {}


def register_alert_followup(key: str, line_for: Callable[[AuditEvent], str]) -> None:
    """Add ``line_for(event)`` to every alert mail; registering a key again replaces it."""
    _followups[key] = line_for


def role_email_addresses(*roles: str) -> list[str]:
    """The addresses of active staff (never a portal user) in any of ``roles``."""
    users = User.objects.filter(is_active=True, customer__isnull=True, groups__name__in=roles)
    return sorted(set(users.values_list("email", flat=True)))


def alert_recipients() -> list[str]:
    return role_email_addresses(*ALERT_ROLES)


def report_broken_audit_chain(problems: Sequence[object]) -> list[str]:
    """Log a failed verification of the audit chain as an error and mail it at once to the DPO and
    administrators; returns who was mailed. The problems name events by id, which says nothing about
    anyone. Called by the nightly verification and by ``manage.py verify_audit_chain``, outside any
    transaction, so the mail is not queued."""
    lines = "\n".join(str(problem) for problem in problems)
    logger.error("Audit chain verification failed:\n%s", lines)
    recipients = alert_recipients()
    if recipients:
        send_mail("[Fusion security] The audit trail has been tampered with", lines, None, recipients)
    return recipients


def _send_once(key: str, window: datetime.timedelta, subject: str, body: str) -> bool:
    if not cache.add(f"security-alert:{key}", 1, timeout=int(window.total_seconds())):
        return False
    recipients = alert_recipients()
    if not recipients:
        return False
    # Here, not at the top: accounts.tasks imports this module for the nightly chain check.
    from accounts.tasks import send_security_alert

    event = audit_record(actor=None, action="alert.sent", detail={"key": key, "subject": subject})
    followups = [line_for(event) for _key, line_for in sorted(_followups.items())]
    if followups:
        body = "\n\n".join([body, *followups])
    transaction.on_commit(lambda: send_security_alert.delay(subject, body, recipients))
    return True


def _window() -> datetime.timedelta:
    return datetime.timedelta(minutes=settings.ALERT_WINDOW_MINUTES)


def check_reveal_volume(*, user: User) -> bool:
    since = timezone.now() - _window()
    count = AccessLog.objects.filter(user=user, action=AccessLog.Action.REVEAL, at__gte=since).count()
    if count < settings.ALERT_REVEALS_PER_WINDOW:
        return False
    return _send_once(
        f"reveals:{user.pk}",
        _window(),
        f"[Fusion security] Many reveals of personal data by {user.email}",
        f"{user.email} (user {user.pk}) revealed personal data {count} times in the last "
        f"{settings.ALERT_WINDOW_MINUTES} minutes. See the access log in the admin.",
    )


def check_export_volume(*, user: User) -> bool:
    since = timezone.now() - _window()
    count = AuditEvent.objects.filter(
        actor_id=user.pk, action__startswith=EXPORT_ACTION_PREFIX, at__gte=since
    ).count()
    if count < settings.ALERT_EXPORTS_PER_WINDOW:
        return False
    return _send_once(
        f"exports:{user.pk}",
        _window(),
        f"[Fusion security] Many exports by {user.email}",
        f"{user.email} (user {user.pk}) made {count} exports in the last "
        f"{settings.ALERT_WINDOW_MINUTES} minutes. See the audit trail in the admin.",
    )


def check_cross_partner_access(*, user: User, customer: Customer) -> bool:
    return _send_once(
        f"cross-partner:{user.pk}:{customer.pk}",
        datetime.timedelta(days=1),
        f"[Fusion security] {user.email} opened a customer outside their partner",
        f"{user.email} (user {user.pk}) opened customer {customer.reference} of partner "
        f"{customer.partner_id}, which is not theirs. Check it was needed.",
    )


def check_repeated_lockouts(*, username_digest: str, ip_address: str) -> bool:
    since = timezone.now() - datetime.timedelta(days=1)
    lockouts = AuditEvent.objects.filter(action="auth.locked_out", at__gte=since)
    by_username = lockouts.filter(detail__username_digest=username_digest).count()
    by_address = lockouts.filter(detail__ip=ip_address).count() if ip_address else 0
    sent = False
    if by_username >= settings.ALERT_LOCKOUTS_PER_DAY:
        sent |= _send_once(
            f"lockouts-user:{username_digest}",
            datetime.timedelta(days=1),
            "[Fusion security] Repeated lockouts of one username",
            f"One username (digest {username_digest[:12]}) was locked out {by_username} times in a day: "
            "someone may be guessing its password. See Axes > Access attempts in the admin.",
        )
    if by_address >= settings.ALERT_LOCKOUTS_PER_DAY:
        sent |= _send_once(
            f"lockouts-ip:{ip_address}",
            datetime.timedelta(days=1),
            f"[Fusion security] Repeated lockouts from {ip_address}",
            f"Address {ip_address} was locked out {by_address} times in a day.",
        )
    return sent


def check_password_spraying(*, ip_address: str, failures: int, usernames: int) -> bool:
    return _send_once(
        f"spraying:{ip_address}",
        datetime.timedelta(days=1),
        f"[Fusion security] Logins from {ip_address} throttled: failures at many usernames",
        f"Address {ip_address} failed to log in at least {failures} times at {usernames} usernames within "
        f"{int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)} minutes, which looks like password "
        "spraying: every login from it is refused until its failures age out. If it is one of our offices "
        "or partners, delete its access attempts under Axes > Access attempts in the admin to let it in.",
    )


def after_access_logged(entry: AccessLog) -> None:
    if entry.action == AccessLog.Action.REVEAL:
        check_reveal_volume(user=entry.user)
    elif entry.action == AccessLog.Action.CROSS_PARTNER_VIEW and entry.customer is not None:
        check_cross_partner_access(user=entry.user, customer=entry.customer)


def after_events_recorded(sender: Any, *, actor: Any, events: Sequence[AuditEvent], **kwargs: Any) -> None:
    """Receiver of ``accounts.audit.events_recorded`` (connected in ``AccountsConfig.ready()``): a staff
    member's exports are counted, and many in the window alert."""
    if isinstance(actor, User) and any(event.action.startswith(EXPORT_ACTION_PREFIX) for event in events):
        check_export_volume(user=actor)
