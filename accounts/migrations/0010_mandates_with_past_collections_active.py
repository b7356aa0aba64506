"""Mandates that have already been collected from become active; every other one stays new (so its AUDDIS
0N goes into the next submission).

"Collected from" is read from billing's tables by name (a migration may; the code may not): the customer
had a finalised invoice with something due in a bill run whose Direct Debit submission is live (not
cancelled) and whose processing day has passed. When the 0N was really lodged is not known, so
``lodged_at`` and ``active_from`` take the mandate's creation; ``last_collected_on`` is the entry day (the
working day after the processing day) of the latest such submission, from which the daily job counts the
13 months of dormancy."""

import datetime

from django.db import migrations
from django.db.models import Max, OuterRef, Subquery
from django.utils import timezone

from fusion_site.working_days import next_working_day


def activate_collected(apps, schema_editor):
    PaymentDetails = apps.get_model("accounts", "PaymentDetails")
    Invoice = apps.get_model("billing", "Invoice")
    DirectDebitSubmission = apps.get_model("billing", "DirectDebitSubmission")
    today = timezone.localdate()
    collected_runs = DirectDebitSubmission.objects.filter(
        cancelled_at__isnull=True, processing_date__lt=today
    )
    last_processing = (
        Invoice.objects.filter(customer_id=OuterRef("customer_id"), status="finalised", gross__gt=0)
        .filter(bill_run_id__in=collected_runs.values("bill_run_id"))
        .annotate(
            processing=Subquery(
                collected_runs.filter(bill_run_id=OuterRef("bill_run_id")).values("processing_date")[:1]
            )
        )
        .values("customer_id")
        .annotate(latest=Max("processing"))
        .values("latest")
    )
    mandates = PaymentDetails.objects.filter(status="new").annotate(last_processing=Subquery(last_processing))
    for mandate in mandates.filter(last_processing__isnull=False).iterator(chunk_size=500):
        entry_day = next_working_day(mandate.last_processing + datetime.timedelta(days=1))
        PaymentDetails.objects.filter(pk=mandate.pk).update(
            status="active",
            lodged_at=mandate.created_at,
            active_from=timezone.localdate(mandate.created_at),
            last_collected_on=entry_day,
        )


def back_to_new(apps, schema_editor):
    PaymentDetails = apps.get_model("accounts", "PaymentDetails")
    PaymentDetails.objects.filter(status="active", lodgement_submission_id__isnull=True).update(
        status="new", lodged_at=None, active_from=None, last_collected_on=None
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_mandate_lifecycle"),
        ("billing", "0009_invoice_line_vat_particulars"),
    ]

    operations = [migrations.RunPython(activate_collected, back_to_new)]
