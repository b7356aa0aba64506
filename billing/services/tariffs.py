"""Which tariff prices a customer's or a line's calls, and a partner's billing profile (supplier details,
default tariff)."""

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Customer, Line, User
from billing.models import (
    CustomerTariff,
    LineTariff,
    PartnerBillingProfile,
    Tariff,
)
from fusion_site.models import save_with_actor


@transaction.atomic
def customer_set_tariff(*, customer: Customer, tariff: Tariff, actor: User) -> CustomerTariff:
    _check_tariff_usable(tariff, customer.partner_id)
    assignment = CustomerTariff.objects.filter(customer=customer).first() or CustomerTariff(customer=customer)
    assignment.tariff = tariff
    return save_with_actor(assignment, actor=actor)


@transaction.atomic
def line_set_tariff(*, line: Line, tariff: Tariff, actor: User) -> LineTariff:
    _check_tariff_usable(tariff, line.customer.partner_id)
    assignment = LineTariff.objects.filter(line=line).first() or LineTariff(line=line)
    assignment.tariff = tariff
    return save_with_actor(assignment, actor=actor)


@transaction.atomic
def partner_billing_profile_save(*, profile: PartnerBillingProfile, actor: User) -> PartnerBillingProfile:
    """Set up or correct a partner's supplier details; its default tariff must be one the partner may use.
    The invoice and credit note counters move only as documents are numbered."""
    if profile.default_tariff is not None:
        _check_tariff_usable(profile.default_tariff, profile.partner_id, field="default_tariff")
    if profile.pk is not None:
        # The form was read before a finalisation may have numbered invoices: keep the counters it left.
        current = PartnerBillingProfile.objects.select_for_update().get(pk=profile.pk)
        profile.next_invoice_number = current.next_invoice_number
        profile.next_credit_note_number = current.next_credit_note_number
    return save_with_actor(profile, actor=actor)


def _check_tariff_usable(tariff: Tariff, partner_id: int, *, field: str = "tariff") -> None:
    if tariff.partner_id not in (None, partner_id):
        raise ValidationError({field: "That tariff belongs to another partner."})
