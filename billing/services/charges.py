"""Recurring and one-off charges: created against a customer (or one of its lines), corrected until billed."""

import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Customer, Line, User
from billing.models import (
    OneOffCharge,
    RecurringCharge,
)
from billing.services.errors import BillingError
from fusion_site.models import UNCHANGED, Unchanged, given, save_with_actor, update_with_actor


@transaction.atomic
def recurring_charge_create(
    *,
    customer: Customer,
    description: str,
    monthly_amount: Decimal,
    start_date: datetime.date,
    actor: User | None,
    line: Line | None = None,
    end_date: datetime.date | None = None,
) -> RecurringCharge:
    _check_line_of(line, customer)
    charge = RecurringCharge(
        customer=customer,
        line=line,
        description=description,
        monthly_amount=monthly_amount,
        start_date=start_date,
        end_date=end_date,
    )
    return save_with_actor(charge, actor=actor)


@transaction.atomic
def one_off_charge_create(
    *,
    customer: Customer,
    description: str,
    amount: Decimal,
    charge_date: datetime.date,
    actor: User | None,
    line: Line | None = None,
) -> OneOffCharge:
    _check_line_of(line, customer)
    charge = OneOffCharge(
        customer=customer, line=line, description=description, amount=amount, charge_date=charge_date
    )
    return save_with_actor(charge, actor=actor)


RECURRING_CHARGE_EDITABLE_FIELDS = ("line", "description", "monthly_amount", "start_date", "end_date")


@transaction.atomic
def recurring_charge_update(
    *,
    charge: RecurringCharge,
    actor: User,
    reason: str = "",
    line: Line | Unchanged | None = UNCHANGED,
    description: str | Unchanged = UNCHANGED,
    monthly_amount: Decimal | Unchanged = UNCHANGED,
    start_date: datetime.date | Unchanged = UNCHANGED,
    end_date: datetime.date | Unchanged | None = UNCHANGED,
) -> RecurringCharge:
    changes = given(
        {
            "line": line,
            "description": description,
            "monthly_amount": monthly_amount,
            "start_date": start_date,
            "end_date": end_date,
        }
    )
    _check_line_of(changes.get("line"), charge.customer)
    return update_with_actor(
        charge, actor=actor, changes=changes, allowed=RECURRING_CHARGE_EDITABLE_FIELDS, reason=reason
    )


ONE_OFF_CHARGE_EDITABLE_FIELDS = ("line", "description", "amount", "charge_date")


@transaction.atomic
def one_off_charge_update(
    *,
    charge: OneOffCharge,
    actor: User,
    reason: str = "",
    line: Line | Unchanged | None = UNCHANGED,
    description: str | Unchanged = UNCHANGED,
    amount: Decimal | Unchanged = UNCHANGED,
    charge_date: datetime.date | Unchanged = UNCHANGED,
) -> OneOffCharge:
    """Correct a charge not yet billed; a billed one is on an invoice and is credited instead."""
    if charge.invoice_id is not None:
        raise BillingError("This charge is on an invoice already; credit the invoice instead.")
    changes = given({"line": line, "description": description, "amount": amount, "charge_date": charge_date})
    _check_line_of(changes.get("line"), charge.customer)
    return update_with_actor(
        charge, actor=actor, changes=changes, allowed=ONE_OFF_CHARGE_EDITABLE_FIELDS, reason=reason
    )


def _check_line_of(line: Line | None, customer: Customer) -> None:
    if line is not None and line.customer_id != customer.pk:
        raise ValidationError({"line": "The line belongs to another customer."})
