"""Privacy's link on a customer's Site Details page (accounts.site_details_links): the portability
exports, for staff who may see them (a portal user has its own "Download my data"). Registered by
``PrivacyConfig.ready()``."""

from django.urls import reverse

from accounts.models import Customer, User
from accounts.site_details_links import SiteDetailsLink, Slot, register_site_details_link
from privacy.selectors import VIEW_DATA_EXPORT


def exports_link(customer: Customer, user: User) -> SiteDetailsLink | None:
    if user.is_portal_user or not user.has_perm(VIEW_DATA_EXPORT):
        return None
    return SiteDetailsLink(
        "Portability exports", reverse("privacy:customer_exports", args=[customer.reference])
    )


def register() -> None:
    # Order 10: before billing's invoices (20), where the page has always shown it.
    register_site_details_link(
        key="privacy.exports", slot=Slot.FACTS, heading="Data exports", order=10, link_for=exports_link
    )
