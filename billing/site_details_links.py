"""Billing's links on a customer's Site Details page (accounts.site_details_links): the customer's
invoices, its account (balance, statement, payments), resuming billing while it is ceased, and adding a
line rented as one of the partner's products.
Registered by ``BillingConfig.ready()``."""

from django.urls import reverse

from accounts.models import Customer, User
from accounts.site_details_links import SiteDetailsLink, Slot, register_site_details_link


def invoices_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if not user.has_perm("billing.view_invoice"):
        return None
    return SiteDetailsLink("View invoices", reverse("billing:customer_invoices", args=[customer.reference]))


def account_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if not user.has_perm("billing.view_ledgerentry"):
        return None
    return SiteDetailsLink("Account and payments", reverse("billing:account", args=[customer.reference]))


def resume_billing_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if not user.has_perm("billing.calculate_billrun"):
        return None
    return SiteDetailsLink("Resume billing…", reverse("billing:lift_cease", args=[customer.reference]))


def line_add_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if user.is_portal_user or not (
        user.has_perm("accounts.add_line") and user.has_perm("billing.add_lineproduct")
    ):
        return None
    return SiteDetailsLink("Add a line", reverse("billing:line_add", args=[customer.reference]))


def register() -> None:
    register_site_details_link(
        key="billing.invoices", slot=Slot.FACTS, heading="Invoices", order=20, link_for=invoices_link
    )
    register_site_details_link(
        key="billing.account", slot=Slot.FACTS, heading="Account", order=21, link_for=account_link
    )
    register_site_details_link(
        key="billing.resume", slot=Slot.BILLING_CEASED, order=10, link_for=resume_billing_link
    )
    register_site_details_link(key="billing.line_add", slot=Slot.LINES, order=10, link_for=line_add_link)
