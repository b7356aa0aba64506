"""Celery tasks of the accounts app: thin, take ids, call a service."""

from celery import shared_task

from accounts import services
from accounts.gateways import GatewayUnavailableError


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
