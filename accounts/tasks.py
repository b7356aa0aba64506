"""Celery tasks of the accounts app: thin, take ids, call a service."""

from celery import shared_task
from django.core.mail import send_mail
from django.db import OperationalError
from django.utils import timezone

from accounts import alerts, audit, services
from accounts.gateways import GatewayUnavailableError
from accounts.models import Role


@shared_task(
    autoretry_for=(GatewayUnavailableError,),
    retry_backoff=True,
    max_retries=8,
    soft_time_limit=60,
    time_limit=90,
)
def submit_provisioning_order(order_id: int) -> str | None:
    order = services.provisioning_order_submit(order_id=order_id)
    return order.status if order else None


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5, soft_time_limit=60, time_limit=90)
def send_security_alert(subject: str, body: str, recipients: list[str]) -> int:
    return send_mail(subject, body, None, recipients)


@shared_task(soft_time_limit=50 * 60, time_limit=60 * 60)
def verify_audit_chain_nightly() -> dict[str, object]:
    """Nightly: check the whole chain; a broken one is logged as an error and mailed to the DPO and
    administrators (by event id, which says nothing about anyone)."""
    checked, problems = audit.verify_chain()
    if problems:
        alerts.report_broken_audit_chain(problems)
    return {"checked": checked, "problems": [str(problem) for problem in problems]}


CHECKPOINT_JOB = "audit-checkpoint"


@shared_task(
    autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3, soft_time_limit=60, time_limit=90
)
def write_audit_checkpoint_nightly() -> str:
    """Nightly: sign the audit chain's head into a new file outside the database, and mail it to the DPO
    group, whose mailbox then holds a second copy out of reach of the servers."""
    checkpoint, path = audit.audit_checkpoint_write(
        actor=services.system_user(job=CHECKPOINT_JOB), now=timezone.now()
    )
    recipients = alerts.role_email_addresses(Role.DATA_PROTECTION_OFFICER.value)
    if recipients:
        send_mail(
            f"[Fusion security] Audit trail checkpoint at event {checkpoint.last_event_id}",
            f"The audit trail's head was signed into {path} at {checkpoint.label}.\n"
            "Keep this mail: it lets the trail be checked even if the servers' copy is lost.\n\n"
            f"{checkpoint.to_json()}",
            None,
            recipients,
        )
    return checkpoint.filename
