"""Billing's links on a customer's Site Details page (accounts.site_details_links): the customer's
invoices, and resuming billing while it is ceased. Registered by ``BillingConfig.ready()``."""

from django.urls import reverse

from accounts.models import Customer, User
from accounts.site_details_links import SiteDetailsLink, Slot, register_site_details_link


def invoices_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if not user.has_perm("billing.view_invoice"):
        return None
    return SiteDetailsLink("View invoices", reverse("billing:customer_invoices", args=[customer.reference]))


def resume_billing_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if not user.has_perm("billing.calculate_billrun"):
        return None
    return SiteDetailsLink("Resume billing…", reverse("billing:lift_cease", args=[customer.reference]))


def register() -> None:
    register_site_details_link(
        key="billing.invoices", slot=Slot.FACTS, heading="Invoices", order=20, link_for=invoices_link
    )
    register_site_details_link(
        key="billing.resume", slot=Slot.BILLING_CEASED, order=10, link_for=resume_billing_link
    )
