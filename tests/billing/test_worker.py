"""A bill run end to end on a real Celery worker, with the real Redis as broker (CI)."""

import datetime
import io
import time

import pytest
from celery.contrib.testing.worker import start_worker

from accounts.models import Role
from accounts.validation import national_phone_digits
from billing.demo import billing_profile, uk_tariff
from billing.models import BillRun, CallRecord, Invoice
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_create,
    bill_run_finalise,
    bill_run_start_calculation,
)
from billing.services.call_imports import call_import_run
from fusion_site.celery import app as celery_app
from tests.conftest import require_service
from tests.factories import UserFactory, full_customer
from tests.test_infrastructure import _redis_reachable


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_bill_run_calculated_by_a_real_worker_then_finalised(partner):
    require_service("Redis", _redis_reachable(), "REDIS_URL is unset or Redis does not answer")
    billing_profile(partner, default_tariff=uk_tariff())
    customers = [full_customer(partner) for _ in range(3)]
    agent = UserFactory(role=Role.BILLING_AGENT, partner=partner)
    finance = UserFactory(role=Role.FINANCE_MANAGER, partner=partner)
    rows = ["cli,dialled_number,start_time,duration,call_type,call_reference"]
    for number, customer in enumerate(customers):
        cli = national_phone_digits(customer.lines.get().cli)
        rows.append(f"{cli},01134960000,2026-10-0{number + 1}T10:00:00,600,voice,W{number}")
    call_import_run(partner=partner, stream=io.StringIO("\n".join(rows)), file_name="w.csv", actor=agent)
    assert CallRecord.objects.filter(status=CallRecord.Status.RATED).count() == 3

    celery_app.conf.task_always_eager = False
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        bill_run = bill_run_create(
            partner=partner,
            period_start=datetime.date(2026, 10, 1),
            period_end=datetime.date(2026, 10, 31),
            actor=agent,
        )
        bill_run_start_calculation(bill_run=bill_run, actor=agent)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            bill_run.refresh_from_db()
            if bill_run.status == BillRun.Status.CALCULATED:
                break
            time.sleep(0.2)
    assert bill_run.status == BillRun.Status.CALCULATED
    bill_run_approve(bill_run=bill_run, actor=finance)
    bill_run_finalise(bill_run=bill_run, actor=finance)
    numbers = sorted(
        n for n in Invoice.objects.filter(bill_run=bill_run).values_list("sequence", flat=True) if n
    )
    assert numbers == [1, 2, 3]
    # 600 s at £0.015 a minute is £0.15 of usage each, plus 20% VAT.
    assert {str(invoice.gross) for invoice in Invoice.objects.filter(bill_run=bill_run)} == {"0.18"}
