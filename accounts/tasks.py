"""Celery tasks of the accounts app: thin, take ids, call a service."""

import logging

from celery import shared_task
from django.core.mail import send_mail

from accounts import alerts, audit, services
from accounts.gateways import GatewayUnavailableError

logger = logging.getLogger(__name__)


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
        lines = "\n".join(str(problem) for problem in problems)
        logger.error("Audit chain verification failed:\n%s", lines)
        recipients = alerts.alert_recipients()
        if recipients:
            send_mail("[Fusion security] The audit trail has been tampered with", lines, None, recipients)
    return {"checked": checked, "problems": [str(problem) for problem in problems]}
