"""What the Site Details page shows, masked or clear according to the PII gate.

Values are decided here, once, so the template never sees a clear value it should not show.
"""

from dataclasses import dataclass
from typing import Any

from accounts import pii, selectors, validation
from accounts.models import Customer, User
from accounts.site_details_links import site_details_links

PERSONAL_FIELDS = [
    "site.address_line1",
    "site.address_line2",
    "site.town",
    "site.postcode",
    "contact.name",
    "contact.email",
    "contact.phone",
    "line.cli",
]
PAYMENT_FIELDS = [
    "payment.account_holder",
    "payment.sort_code",
    "payment.account_number",
    "payment.mandate_reference",
]


@dataclass(frozen=True)
class Visibility:
    personal: bool
    payment: bool


def _phone(e164: str, clear: bool) -> str:
    return validation.national_phone_digits(e164) if clear else pii.mask_phone(e164)


def site_rows(customer: Customer, clear: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": site.pk,
            "label": site.label,
            "address_line1": site.address_line1 if clear else pii.mask_text(site.address_line1),
            "address_line2": site.address_line2 if clear else pii.mask_text(site.address_line2),
            "town": site.town if clear else pii.mask_text(site.town),
            "postcode": site.postcode if clear else pii.mask_postcode(site.postcode),
        }
        for site in customer.sites.all()
    ]


def contact_rows(customer: Customer, clear: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": contact.pk,
            "role": contact.get_role_display(),
            "name": contact.name if clear else pii.mask_text(contact.name),
            "email": contact.email if clear else pii.mask_email(contact.email),
            "phone": _phone(contact.phone, clear),
        }
        for contact in customer.contacts.all()
    ]


def line_rows(customer: Customer, clear: bool) -> list[dict[str, Any]]:
    site_labels = {site.pk: site.label for site in customer.sites.all()}
    return [
        {
            "id": line.pk,
            "cli": _phone(line.cli, clear),
            "type": line.get_line_type_display(),
            "site": site_labels.get(line.site_id, "—") if line.site_id else "—",
            "start_date": line.start_date,
            "end_date": line.end_date,
        }
        for line in customer.lines.all()
    ]


def payment_row(customer: Customer, clear: bool) -> dict[str, Any] | None:
    details = selectors.payment_details_of(customer)
    if details is None:
        return None
    # Where the mandate stands (not personal data: shown masked or not), from the row already read.
    lifecycle = {
        "status": details.status,
        "status_label": details.get_status_display(),
        "lodged_at": details.lodged_at,
        "active_from": details.active_from,
        "last_collected_on": details.last_collected_on,
        "cancelled_at": details.cancelled_at,
        "cancellation_reason": details.cancellation_reason,
    }
    if clear:
        return lifecycle | {
            "account_holder": details.account_holder,
            "sort_code": f"{details.sort_code[:2]}-{details.sort_code[2:4]}-{details.sort_code[4:]}",
            "account_number": details.account_number,
            "mandate_reference": details.mandate_reference,
        }
    return lifecycle | {
        "account_holder": pii.mask_text(details.account_holder),
        "sort_code": pii.mask_sort_code(details.sort_code),
        "account_number": pii.mask_account_number(details.account_number),
        "mandate_reference": pii.mask_reference(details.mandate_reference),
    }


def visibility_for(user: User, *, reveal_personal: bool, reveal_payment: bool) -> Visibility:
    """Portal users see their own personal data; staff only what they revealed and may reveal.
    Payment details stay masked for portal users (as on a bank statement)."""
    if user.is_portal_user:
        return Visibility(personal=True, payment=False)
    personal = reveal_personal and pii.may_reveal_personal_data(user)
    payment = reveal_payment and pii.may_reveal_payment_details(user)
    return Visibility(personal=personal, payment=payment)


def page_context(customer: Customer, *, user: User, visibility: Visibility) -> dict[str, Any]:
    loaded = selectors.customer_site_details(customer)
    return {
        "customer": loaded,
        "visibility": visibility,
        "sites": site_rows(loaded, visibility.personal),
        "contacts": contact_rows(loaded, visibility.personal),
        "lines": line_rows(loaded, visibility.personal),
        "payment": payment_row(loaded, visibility.payment),
        "orders": list(loaded.provisioning_orders.all()),
        "timeline": selectors.customer_timeline(loaded),
        "may_reveal_personal": not user.is_portal_user and pii.may_reveal_personal_data(user),
        "may_reveal_payment": not user.is_portal_user and pii.may_reveal_payment_details(user),
        "may_edit_contacts": user.has_perm("accounts.change_contact")
        and (user.is_portal_user or pii.may_reveal_personal_data(user)),
        "may_edit_sites": user.has_perm("accounts.change_site")
        and (user.is_portal_user or pii.may_reveal_personal_data(user)),
        "may_order": user.has_perm("accounts.add_provisioningorder"),
        "order_kinds": loaded.provisioning_orders.model.Kind.choices,
        # What billing and privacy add (their invoices, exports, resuming billing), through their hook.
        "links": site_details_links(loaded, user=user),
    }
