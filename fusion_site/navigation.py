"""The menu at the top of every signed-in page (templates/base.html), as a context processor.

Like ``fusion_site/urls.py``, this is the project's map of the apps' pages, named by URL name only (no
import of the apps). Each link shows to the users who hold all its permissions; staff links to staff
only, and the customer's own links to a user with a customer. Written in the template instead, the menu
was about twenty ``{% url %}`` tags and twenty-five permission lookups a page, about a tenth of a Site
Details request's CPU (py-spy on a gunicorn worker under bench/load.py); here the links without
arguments are reversed once per process.

The menu shows only once the second factor is passed: before it, every page but the two-factor ones
redirects there anyway (accounts.security), and a menu would tell a password-only session what the
account can reach.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from django.http import HttpRequest
from django.urls import reverse

# What a link's URL takes: nothing, the user's partner's id, or the user's customer's reference.
Argument = Literal["", "partner", "customer"]


@dataclass(frozen=True)
class MenuLink:
    url_name: str
    text: str
    permissions: tuple[str, ...] = ()
    argument: Argument = ""


STAFF_MENU = (
    MenuLink("accounts:home", "Customers"),
    MenuLink("billing:onboard", "New customer", ("accounts.add_customer", "billing.add_lineproduct")),
    MenuLink("billing:products", "Products", ("billing.view_product",)),
    MenuLink("billing:bill_runs", "Bill runs", ("billing.view_billing_data",)),
    MenuLink(
        "billing:call_imports", "Call imports", ("billing.view_billing_data", "billing.view_callimport")
    ),
    MenuLink("billing:suspense", "Suspense", ("billing.view_billing_data", "billing.view_callrecord")),
    MenuLink("billing:aged_debt", "Aged debt", ("billing.view_invoice", "billing.view_ledgerentry")),
    MenuLink("billing:dunning_steps", "Dunning", ("billing.view_dunningstep",), argument="partner"),
    MenuLink("billing:bacs_reports", "Bacs reports", ("billing.view_bacsreportimport",)),
    MenuLink("privacy:queue", "Privacy requests", ("privacy.view_privacyrequest",)),
    MenuLink("privacy:data_map", "Data map", ("privacy.view_data_map",)),
    MenuLink("website_staff:submissions", "Website", ("privacy.view_websitesubmission",)),
    MenuLink("website_staff:notices", "Privacy notices", ("privacy.view_privacynotice",)),
    MenuLink("privacy:retention", "Retention", ("privacy.view_retentionrun",)),
    MenuLink("privacy:assessments", "Impact assessments", ("privacy.view_impactassessment",)),
    MenuLink("privacy:processors", "Processors", ("privacy.view_processor",)),
    MenuLink("privacy:breaches", "Breaches", ("privacy.view_breachincident",)),
    MenuLink("admin:index", "Admin"),
)
CUSTOMER_MENU = (
    MenuLink("accounts:my_account", "My account"),
    MenuLink("billing:customer_invoices", "My invoices", ("billing.view_invoice",), argument="customer"),
    MenuLink("billing:account", "My statement", ("billing.view_ledgerentry",), argument="customer"),
    MenuLink("privacy:my_requests", "My privacy requests"),
    MenuLink("privacy:my_access_report", "My data"),
    MenuLink("privacy:my_access_log", "Who has seen my data"),
    MenuLink("privacy:my_data", "Download my data", ("privacy.view_dataexport",)),
)


@functools.cache
def _reversed(url_name: str) -> str:
    return reverse(url_name)


def menu_for(user: Any) -> list[dict[str, str]]:
    """The links ``user`` sees, in order, each as {"url", "text"}; none before the second factor."""
    verified = getattr(user, "is_verified", None)  # set by django_otp's middleware
    if not user.is_authenticated or verified is None or not verified():
        return []
    holds = permission_test(user)
    shown = []
    for menu, applies in ((STAFF_MENU, user.is_staff), (CUSTOMER_MENU, bool(user.customer_id))):
        if not applies:
            continue
        for link in menu:
            if link.argument == "partner" and not user.partner_id:
                continue
            if not all(holds(permission) for permission in link.permissions):
                continue
            if link.argument == "partner":
                url = reverse(link.url_name, args=[user.partner_id])
            elif link.argument == "customer":
                url = reverse(link.url_name, args=[user.customer_reference])
            else:
                url = _reversed(link.url_name)
            shown.append({"url": url, "text": link.text})
    return shown


def permission_test(user: Any) -> Callable[[str], bool]:
    """``user.has_perm`` for permissions without an object: an active superuser holds all of them, anyone
    else those of ``get_all_permissions()`` (the union of every backend's, which is what ``has_perm`` asks
    each backend in turn). Asked through ``has_perm`` link by link, the menu's twenty-five questions each
    went through the three authentication backends: about 7% of a Site Details page's CPU (py-spy,
    bench/load.py's data). A page that asks several questions of one user asks them through this too."""
    if user.is_active and user.is_superuser:
        return lambda permission: True
    return user.get_all_permissions().__contains__


def menu(request: HttpRequest) -> dict[str, Any]:
    """Context processor: ``menu``, computed when the template first reads it."""
    return {"menu": functools.partial(menu_for, request.user)}
