"""Provisioning orders go to the gateway adapter; a restricted customer's orders are held."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.test import override_settings

from accounts import services
from accounts.models import ProvisioningOrder, Role
from fusion_site.celery import app as celery_app
from tests.conftest import require_service
from tests.test_infrastructure import _redis_reachable


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run on-commit side effects (task queueing) as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def test_order_from_site_details_is_submitted_to_the_gateway(client, make_user, customer, on_commit):
    agent = make_user(Role.BILLING_AGENT)
    line = customer.lines.get()
    client.force_login(agent)
    with on_commit():
        response = client.post(
            f"/customers/{customer.reference}/orders/new/",
            {"kind": "cease", "line": line.pk, "notes": "Moving"},
        )
    assert response.status_code == 302
    order = ProvisioningOrder.objects.get(customer=customer)
    assert order.status == ProvisioningOrder.Status.SUBMITTED
    assert order.gateway_reference.startswith("WLR-")
    assert order.requested_by == agent
    assert order.history.latest().history_user.email.startswith("provisioning@")


def test_restricted_customers_orders_are_held_and_released_when_lifted(make_user, customer, on_commit):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    agent = make_user(Role.BILLING_AGENT)
    services.customer_restrict_processing(customer=customer, actor=dpo, reason="Art. 18 request")
    order = services.provisioning_order_create(customer=customer, kind="provide", actor=agent)
    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.HELD
    assert order.gateway_reference == ""

    with on_commit():
        services.customer_lift_processing_restriction(
            customer=customer, actor=dpo, reason="Accuracy confirmed"
        )
    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.SUBMITTED
    customer.refresh_from_db()
    assert customer.processing_restricted_at is None
    assert customer.history.filter(history_change_reason__startswith="Processing restricted").exists()


def test_restriction_after_queueing_holds_the_order_at_submission(
    make_user, customer, django_capture_on_commit_callbacks
):
    agent = make_user(Role.BILLING_AGENT)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        order = services.provisioning_order_create(customer=customer, kind="provide", actor=agent)
    services.customer_restrict_processing(
        customer=customer, actor=make_user(Role.DATA_PROTECTION_OFFICER), reason="Objection"
    )
    for callback in callbacks:
        callback()
    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.HELD


def test_rejected_orders_are_marked_failed(make_user, customer, on_commit):
    agent = make_user(Role.BILLING_AGENT)
    with on_commit():
        order = services.provisioning_order_create(customer=customer, kind="cease", actor=agent)
    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.FAILED
    assert "existing line" in order.failure_reason


def test_submission_is_idempotent(make_user, customer, on_commit):
    agent = make_user(Role.BILLING_AGENT)
    with on_commit():
        order = services.provisioning_order_create(
            customer=customer, kind="modify", line=customer.lines.get(), actor=agent
        )
    order.refresh_from_db()
    reference = order.gateway_reference
    services.provisioning_order_submit(order_id=order.pk)
    order.refresh_from_db()
    assert order.gateway_reference == reference
    assert order.history.filter(history_change_reason="Submitted to the gateway").count() == 1


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_real_worker_submits_orders_through_redis(partner):
    """A real Celery worker thread consumes the order from the real Redis broker."""
    require_service("Redis", _redis_reachable(), "REDIS_URL is unset or Redis does not answer")
    from tests.factories import UserFactory, full_customer

    customer = full_customer(partner)
    agent = UserFactory(role=Role.BILLING_AGENT, partner=partner)
    celery_app.conf.task_always_eager = False
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=20):
        order = services.provisioning_order_create(
            customer=customer, kind="modify", line=customer.lines.get(), actor=agent
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            order.refresh_from_db()
            if order.status != ProvisioningOrder.Status.QUEUED:
                break
            time.sleep(0.2)
    assert order.status == ProvisioningOrder.Status.SUBMITTED


@override_settings(PROVISIONING_GATEWAY="tests.accounts.test_provisioning.FlakyGateway")
def test_unavailable_gateway_is_retried(make_user, customer, on_commit):
    FlakyGateway.failures_left, FlakyGateway.calls = 2, 0
    agent = make_user(Role.BILLING_AGENT)
    # In-process, Celery re-runs a retried task at once unless the Retry is propagated to the caller.
    celery_app.conf.task_eager_propagates = False
    try:
        with on_commit():
            order = services.provisioning_order_create(
                customer=customer, kind="modify", line=customer.lines.get(), actor=agent
            )
    finally:
        celery_app.conf.task_eager_propagates = True
    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.SUBMITTED
    assert FlakyGateway.calls == 3


class FlakyGateway:
    failures_left = 0
    calls = 0

    def submit(self, order: ProvisioningOrder) -> str:
        from accounts.gateways import GatewayUnavailableError

        type(self).calls += 1
        if type(self).failures_left:
            type(self).failures_left -= 1
            raise GatewayUnavailableError("timeout")
        return "FLAKY-1"
