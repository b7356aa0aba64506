"""Privacy's links on a customer's Site Details page (accounts.site_details_links): the portability
exports, for staff who may see them (a portal user has its own "Download my data"), and, for the
customer's own portal user, who has seen its data (the access log). Registered by
``PrivacyConfig.ready()``."""

from django.urls import reverse

from accounts.models import Customer, User
from accounts.site_details_links import SiteDetailsLink, Slot, register_site_details_link
from privacy.models import PrivacyPermission
from privacy.selectors import VIEW_DATA_EXPORT


def exports_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if user.is_portal_user or not user.has_perm(VIEW_DATA_EXPORT):
        return None
    return SiteDetailsLink(
        "Portability exports", reverse("privacy:customer_exports", args=[customer.reference])
    )


def access_log_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    """A portal user's own Site Details: who at the supplier or the provider has seen them."""
    if user.customer_id != customer.pk or not user.has_perm(PrivacyPermission.ADD):
        return None
    return SiteDetailsLink("Who has seen my data", reverse("privacy:my_access_log"))


def register() -> None:
    # Order 10: before billing's invoices (20), where the page has always shown it.
    register_site_details_link(
        key="privacy.exports", slot=Slot.FACTS, heading="Data exports", order=10, link_for=exports_link
    )
    register_site_details_link(
        key="privacy.access_log",
        slot=Slot.FACTS,
        heading="Access to your data",
        order=11,
        link_for=access_log_link,
    )
