"""Ceasing billing for a customer (an upheld objection) and resuming it with a back-bill policy."""

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Customer, User
from billing.models import (
    CallRecord,
)
from billing.services.errors import BillingError
from fusion_site.models import save_with_actor


class BackBillPolicy:
    NONE = "none"
    CATCH_UP = "catch_up"
    FROM_DATE = "from_date"
    CHOICES = [
        (NONE, "Bill nothing for the ceased period"),
        (CATCH_UP, "Catch up every unbilled call"),
        (FROM_DATE, "Bill calls from a date"),
    ]


@transaction.atomic
def customer_cease_billing(*, customer: Customer, actor: User, reason: str) -> Customer:
    """Stop billing the customer (an upheld objection): bill runs skip it until billing is resumed
    with a back-bill policy."""
    if not reason.strip():
        raise ValidationError({"reason": "Give the reason billing is ceased."})
    if customer.billing_ceased_at is not None:
        raise BillingError("Billing is already ceased for this customer.")
    customer.billing_ceased_at = timezone.now()
    customer.billing_ceased_by = actor
    customer.billing_ceased_reason = reason.strip()
    audit_record(actor=actor, action="customer.billing_ceased", target=customer)
    return save_with_actor(customer, actor=actor, reason=f"Billing ceased: {reason.strip()}")


@transaction.atomic
def customer_lift_billing_cease(
    *, customer: Customer, actor: User, policy: str, reason: str, from_date: datetime.date | None = None
) -> Customer:
    """Resume billing. The policy says what happens to calls made while billing was ceased: never a
    silent catch-up. Waived calls are kept (they are traffic data) but never billed."""
    if customer.billing_ceased_at is None:
        raise BillingError("Billing is not ceased for this customer.")
    if policy not in {BackBillPolicy.NONE, BackBillPolicy.CATCH_UP, BackBillPolicy.FROM_DATE}:
        raise ValidationError({"policy": "Choose a back-bill policy."})
    if policy == BackBillPolicy.FROM_DATE and from_date is None:
        raise ValidationError({"from_date": "Give the date to bill calls from."})
    # Calls of the ceased period not yet billed, rated or still in suspense (they would be billed once
    # re-rated); calls from before the cease are untouched by every policy.
    ceased_period = CallRecord.objects.filter(
        customer=customer,
        billing__isnull=True,
        status__in=[CallRecord.Status.RATED, CallRecord.Status.SUSPENSE, CallRecord.Status.PENDING],
        started_at__gte=customer.billing_ceased_at,
    )
    if policy == BackBillPolicy.NONE:
        ceased_period.update(status=CallRecord.Status.WAIVED)
    elif policy == BackBillPolicy.FROM_DATE:
        ceased_period.filter(started_on__lt=from_date).update(status=CallRecord.Status.WAIVED)
    detail = f"{policy}" + (f" from {from_date:%Y-%m-%d}" if from_date else "")
    customer.billing_ceased_at = None
    customer.billing_ceased_by = None
    customer.billing_ceased_reason = ""
    save_with_actor(customer, actor=actor, reason=f"Billing resumed ({detail}): {reason}")
    audit_record(actor=actor, action="customer.billing_resumed", target=customer, detail={"policy": policy})
    return customer
