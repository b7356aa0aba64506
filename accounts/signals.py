"""Audit events for authentication and for changes of roles and permissions, and the idle clock started at
login (signal receivers)."""

from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from accounts import alerts
from accounts.audit import audit_record
from accounts.models import AuditEvent, CustomerGroupObjectPermission, CustomerUserObjectPermission, User
from accounts.security import activity_record
from fusion_site.crypto import blind_index


def _client_address(request: HttpRequest | None) -> str:
    return request.META.get("REMOTE_ADDR", "") if request is not None else ""


def username_digest(username: str) -> str:
    """A failed login's username may be anyone's email (or a mistyped password): record its blind index,
    which ties repeated attempts together without keeping the text."""
    return blind_index("login-username", username.strip().lower())


@receiver(user_logged_in)
def _audit_login(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    audit_record(actor=user, action="auth.login", target=user, detail={"ip": _client_address(request)})


@receiver(user_logged_in)
def _start_idle_clock(sender: Any, request: HttpRequest | None, user: User, **kwargs: Any) -> None:
    # Logging in is activity: the idle limit runs from it, and the first page after it has nothing to write.
    if request is not None and hasattr(request, "session"):
        activity_record(request)


@receiver(user_logged_out)
def _audit_logout(sender: Any, request: HttpRequest | None, user: User | None, **kwargs: Any) -> None:
    if user is not None:
        audit_record(actor=user, action="auth.logout", target=user, detail={})


@receiver(user_login_failed)
def _audit_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    username = str(credentials.get("username") or credentials.get("email") or "")
    audit_record(
        actor=None,
        action="auth.login_failed",
        detail={"username_digest": username_digest(username), "ip": _client_address(request)},
    )


@receiver(user_locked_out)
def _audit_lockout(
    sender: Any, request: HttpRequest | None, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    digest = username_digest(username or "")
    # django-axes signals again at every attempt while the lock holds: those are failed logins (audited
    # as such), not new lockouts, so one lock is one event and the repeated-lockout alert counts locks.
    still_locked = AuditEvent.objects.filter(
        action="auth.locked_out",
        detail__username_digest=digest,
        detail__ip=ip_address or "",
        at__gte=timezone.now() - settings.AXES_COOLOFF_TIME,
    ).exists()
    if still_locked:
        return
    audit_record(
        actor=None, action="auth.locked_out", detail={"username_digest": digest, "ip": ip_address or ""}
    )
    alerts.check_repeated_lockouts(username_digest=digest, ip_address=ip_address or "")


def _audit_m2m(action: str, instance: Any, model: Any, pk_set: set[int] | None, m2m_action: str) -> None:
    if m2m_action not in {"post_add", "post_remove", "post_clear"}:
        return
    changed = sorted(pk_set or [])
    detail = {"change": m2m_action.removeprefix("post_"), "model": model._meta.label_lower, "ids": changed}
    audit_record(actor=_current_actor(), action=action, target=instance, detail=detail)


def _current_actor() -> Any:
    # simple-history keeps the request of the thread (HistoryRequestMiddleware); jobs have none.
    from simple_history.models import HistoricalRecords

    request = getattr(HistoricalRecords.context, "request", None)
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


@receiver(m2m_changed, sender=User.groups.through)
def _audit_user_groups(
    sender: Any, instance: Any, action: str, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    _audit_m2m("permissions.user_groups_changed", instance, model, pk_set, action)


@receiver(m2m_changed, sender=User.user_permissions.through)
def _audit_user_permissions(
    sender: Any, instance: Any, action: str, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    _audit_m2m("permissions.user_permissions_changed", instance, model, pk_set, action)


@receiver(m2m_changed, sender=Group.permissions.through)
def _audit_group_permissions(
    sender: Any, instance: Any, action: str, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    _audit_m2m("permissions.group_permissions_changed", instance, model, pk_set, action)


def _audit_object_permission(instance: Any, change: str) -> None:
    holder = (
        {"user": instance.user_id}
        if isinstance(instance, CustomerUserObjectPermission)
        else {"group": instance.group_id}
    )
    audit_record(
        actor=_current_actor(),
        action=f"permissions.customer_access_{change}",
        target=instance.content_object,
        detail={**holder, "permission": instance.permission_id},
    )


@receiver(post_save, sender=CustomerUserObjectPermission)
@receiver(post_save, sender=CustomerGroupObjectPermission)
def _audit_customer_grant(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    if created:
        _audit_object_permission(instance, "granted")


@receiver(post_delete, sender=CustomerUserObjectPermission)
@receiver(post_delete, sender=CustomerGroupObjectPermission)
def _audit_customer_revoke(sender: Any, instance: Any, **kwargs: Any) -> None:
    _audit_object_permission(instance, "revoked")
