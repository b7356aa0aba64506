"""What the Site Details page shows, masked or clear according to the PII gate.

Values are decided here, once, so the template never sees a clear value it should not show.
"""

import dataclasses
import datetime
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.urls import reverse
from django.utils import formats, timezone

from accounts import access_transparency, pii, selectors, validation
from accounts.models import Contact, Customer, Line, PaymentDetails, ProvisioningOrder, Site, User
from accounts.site_details_links import site_details_links
from fusion_site.navigation import permission_test
from fusion_site.short_dates import ShortDates

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


def _sort_code(sort_code: str) -> str:
    return f"{sort_code[:2]}-{sort_code[2:4]}-{sort_code[4:]}" if sort_code else ""


class Gate(enum.Enum):
    """Which part of the PII gate a field's value sits behind."""

    PERSONAL = "personal"
    PAYMENT = "payment"


@dataclass(frozen=True)
class FieldShown:
    """How one field of a Site Details row is shown: in clear, or masked, behind which gate."""

    gate: Gate
    clear: Callable[[str], str]
    masked: Callable[[str], str]


def _as_is(value: str) -> str:
    return value


# The one rule for every personal or payment value the page shows, current or from the change history,
# by ``<row>.<field>`` (the names the access log records).
SHOWN: dict[str, FieldShown] = {
    "site.address_line1": FieldShown(Gate.PERSONAL, _as_is, pii.mask_text),
    "site.address_line2": FieldShown(Gate.PERSONAL, _as_is, pii.mask_text),
    "site.town": FieldShown(Gate.PERSONAL, _as_is, pii.mask_text),
    "site.postcode": FieldShown(Gate.PERSONAL, _as_is, pii.mask_postcode),
    "contact.name": FieldShown(Gate.PERSONAL, _as_is, pii.mask_text),
    "contact.email": FieldShown(Gate.PERSONAL, _as_is, pii.mask_email),
    "contact.phone": FieldShown(Gate.PERSONAL, validation.national_phone_digits, pii.mask_phone),
    "line.cli": FieldShown(Gate.PERSONAL, validation.national_phone_digits, pii.mask_phone),
    "payment.account_holder": FieldShown(Gate.PAYMENT, _as_is, pii.mask_text),
    "payment.sort_code": FieldShown(Gate.PAYMENT, _sort_code, pii.mask_sort_code),
    "payment.account_number": FieldShown(Gate.PAYMENT, _as_is, pii.mask_account_number),
    "payment.mandate_reference": FieldShown(Gate.PAYMENT, _as_is, pii.mask_reference),
    # The bank details a change of bank replaced are the same kind of data as the current ones.
    "payment.superseded_account_holder": FieldShown(Gate.PAYMENT, _as_is, pii.mask_text),
    "payment.superseded_sort_code": FieldShown(Gate.PAYMENT, _sort_code, pii.mask_sort_code),
    "payment.superseded_account_number": FieldShown(Gate.PAYMENT, _as_is, pii.mask_account_number),
    "payment.superseded_mandate_reference": FieldShown(Gate.PAYMENT, _as_is, pii.mask_reference),
}
PERSONAL_FIELDS = [name for name, shown in SHOWN.items() if shown.gate is Gate.PERSONAL]
PAYMENT_FIELDS = [
    name
    for name, shown in SHOWN.items()
    if shown.gate is Gate.PAYMENT and not name.startswith("payment.superseded_")
]


def is_clear(name: str, visibility: Visibility) -> bool:
    """Whether ``name``'s values are shown in clear to someone with ``visibility``."""
    gate = SHOWN[name].gate
    return visibility.payment if gate is Gate.PAYMENT else visibility.personal


def shown_value(name: str, value: str, clear: bool) -> str:
    rule = SHOWN[name]
    return rule.clear(value) if clear else rule.masked(value)


# Encrypted, but shown in clear to everyone who may open the page: the account's trading name heads it.
SHOWN_TO_EVERY_VIEWER = {"customer.name"}
HISTORY_PREFIX = "history."


@dataclass(frozen=True)
class ShownChange:
    """A changed field as the timeline shows it: personal values already masked unless ``revealed``."""

    field: str
    before: str
    after: str
    revealed: bool


@dataclass(frozen=True)
class TimelineRow:
    at: Any
    user: User | None
    what: str
    change: str
    changed_fields: list[str]
    reason: str
    changes: list[ShownChange]
    # Who made the change as the viewer reads it, and when, as the page prints it (``page_context`` fills
    # them in: see ``actor_shown``).
    by: str = ""
    at_shown: str = ""


def _plain(value: Any) -> str:
    """A value that is not personal data, in words."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime.datetime):
        return formats.date_format(timezone.localtime(value), "j M Y H:i")
    if isinstance(value, datetime.date):
        return formats.date_format(value, "j M Y")
    return str(value)


def _shown_change(change: selectors.FieldChange, visibility: Visibility) -> ShownChange:
    field = change.name.partition(".")[2]
    if change.name in SHOWN:
        clear = is_clear(change.name, visibility)
        before, after = (shown_value(change.name, str(v or ""), clear) for v in (change.before, change.after))
        return ShownChange(field, before, after, clear)
    if change.encrypted and change.name not in SHOWN_TO_EVERY_VIEWER:
        # An encrypted field the page does not show today: personal data, behind the personal gate.
        clear = visibility.personal
        before, after = (
            str(v or "") if clear else pii.mask_text(str(v or "")) for v in (change.before, change.after)
        )
        return ShownChange(field, before, after, clear)
    return ShownChange(field, _plain(change.before), _plain(change.after), revealed=False)


def timeline_rows(
    entries: list[selectors.TimelineEntry], visibility: Visibility
) -> tuple[list[TimelineRow], list[str]]:
    """The timeline with each change's before and after values, masked or clear by the same rule as the
    page's current values; and the history fields shown in clear (``history.<row>.<field>``), for the
    access log."""
    rows = []
    shown_in_clear: set[str] = set()
    for entry in entries:
        changes = []
        for change in entry.changes:
            shown = _shown_change(change, visibility)
            if shown.revealed and (shown.before or shown.after):
                shown_in_clear.add(HISTORY_PREFIX + change.name)
            changes.append(shown)
        rows.append(
            TimelineRow(
                at=entry.at,
                user=entry.user,
                what=entry.what,
                change=entry.change,
                changed_fields=entry.changed_fields,
                reason=entry.reason,
                changes=changes,
            )
        )
    return rows, sorted(shown_in_clear)


def site_rows(sites: list[Site], clear: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": site.pk,
            "label": site.label,
            "address_line1": shown_value("site.address_line1", site.address_line1, clear),
            "address_line2": shown_value("site.address_line2", site.address_line2, clear),
            "town": shown_value("site.town", site.town, clear),
            "postcode": shown_value("site.postcode", site.postcode, clear),
        }
        for site in sites
    ]


def contact_rows(contacts: list[Contact], clear: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": contact.pk,
            "role": contact.get_role_display(),
            "name": shown_value("contact.name", contact.name, clear),
            "email": shown_value("contact.email", contact.email, clear),
            "phone": shown_value("contact.phone", contact.phone, clear),
        }
        for contact in contacts
    ]


def line_rows(lines: list[Line], sites: list[Site], clear: bool) -> list[dict[str, Any]]:
    site_labels = {site.pk: site.label for site in sites}
    return [
        {
            "id": line.pk,
            "cli": shown_value("line.cli", line.cli, clear),
            "type": line.get_line_type_display(),
            "site": site_labels.get(line.site_id, "—") if line.site_id else "—",
            "start_date": line.start_date,
            "end_date": line.end_date,
        }
        for line in lines
    ]


def payment_row(details: PaymentDetails | None, clear: bool) -> dict[str, Any] | None:
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
    return lifecycle | {
        field: shown_value(f"payment.{field}", getattr(details, field), clear)
        for field in ("account_holder", "sort_code", "account_number", "mandate_reference")
    }


def visibility_for(user: User, *, reveal_personal: bool, reveal_payment: bool) -> Visibility:
    """Portal users see their own personal data; staff only what they revealed and may reveal.
    Payment details stay masked for portal users (as on a bank statement)."""
    if user.is_portal_user:
        return Visibility(personal=True, payment=False)
    personal = reveal_personal and pii.may_reveal_personal_data(user)
    payment = reveal_payment and pii.may_reveal_payment_details(user)
    return Visibility(personal=personal, payment=payment)


def actor_shown(actor: User | None, *, viewer: User, customer: Customer, known: dict[int, str]) -> str:
    """Who did something, as the viewer reads it: staff see the actor's label; the customer sees the
    staff member's role and organisation, never a name (as on its access-log page), or "You".
    ``known`` remembers each actor's answer for the page, so a long timeline asks once per person."""
    if actor is None:
        return "system"
    if not viewer.is_portal_user:
        return actor.actor_label
    if actor.pk not in known:
        if actor.customer_id == customer.pk:
            known[actor.pk] = access_transparency.YOU
        else:
            role = access_transparency.role_of(actor)
            known[actor.pk] = f"{role}, {access_transparency.organisation_of(actor)}"
    return known[actor.pk]


class _CustomerUrls(dict[str, str]):
    """``urls.<name>`` in the template: the customer's ``accounts:<name>`` page, reversed when first asked
    for (a portal user's page asks for none of them)."""

    def __init__(self, reference: str) -> None:
        super().__init__()
        self.reference = reference

    def __missing__(self, name: str) -> str:
        url = self[name] = reverse(f"accounts:{name}", args=[self.reference])
        return url


def page_context(
    customer: Customer,
    *,
    user: User,
    visibility: Visibility,
    reads: tuple[selectors.SiteDetailsRows, list[selectors.TimelineEntry]] | None = None,
) -> dict[str, Any]:
    """The Site Details page of ``customer`` as ``user`` sees it; ``reads`` are its rows and change
    history if already read (``selectors.access_site_details``), otherwise read here."""
    loaded, history = reads if reads is not None else selectors.site_details_page_reads(customer)
    timeline, history_shown_in_clear = timeline_rows(history, visibility)
    # Dates written and links reversed here, once each: through the template's ``|date`` filters and
    # ``{% url %}`` tags they were about a twelfth of the page's CPU (py-spy under bench/load.py).
    dates = ShortDates()
    reference = customer.reference
    known: dict[int, str] = {}
    timeline = [
        dataclasses.replace(
            row,
            by=actor_shown(row.user, viewer=user, customer=customer, known=known),
            at_shown=dates.moment(row.at),
        )
        for row in timeline
    ]
    orders = [
        (
            order,
            actor_shown(order.requested_by, viewer=user, customer=customer, known=known)
            if order.requested_by
            else "—",
            dates.moment(order.created_at),
        )
        for order in loaded.orders
    ]
    # Each permission and the clearance asked once: through ``has_perm`` and ``may_reveal_personal_data``
    # each question went through the three authentication backends again, about 3% of the page's CPU.
    holds = permission_test(user)
    portal = user.is_portal_user
    cleared = pii.may_reveal_personal_data(user)  # never for a portal user
    may_correct = portal or cleared
    may_edit_sites = may_correct and holds("accounts.change_site")
    may_edit_contacts = may_correct and holds("accounts.change_contact")
    sites = site_rows(loaded.sites, visibility.personal)
    contacts = contact_rows(loaded.contacts, visibility.personal)
    lines = line_rows(loaded.lines, loaded.sites, visibility.personal)
    for rows, editable, url_name, key in (
        (sites, may_edit_sites, "accounts:site_edit", "site_id"),
        (contacts, may_edit_contacts, "accounts:contact_edit", "contact_id"),
    ):
        for row in rows if editable else ():
            row["edit_url"] = reverse(url_name, kwargs={"reference": reference, key: row["id"]})
    for row in lines:
        row["start_shown"], row["end_shown"] = dates.day(row["start_date"]), dates.day(row["end_date"])
    contract_end = dates.day(customer.contract_end) or "open"
    return {
        "customer": customer,
        "contract": f"{dates.day(customer.contract_start)} \N{EN DASH} {contract_end}",
        "urls": _CustomerUrls(reference),
        "visibility": visibility,
        "sites": sites,
        "contacts": contacts,
        "lines": lines,
        "payment": payment_row(loaded.payment, visibility.payment),
        "orders": orders,
        "timeline": timeline,
        # Whoever reveals must log these too (``accounts.views.reveal``); a portal user's own are not.
        "history_shown_in_clear": history_shown_in_clear,
        "may_reveal_personal": cleared,
        "may_reveal_payment": cleared and holds("accounts.reveal_paymentdetails"),
        "may_edit_contacts": may_edit_contacts,
        "may_edit_sites": may_edit_sites,
        "may_order": holds("accounts.add_provisioningorder"),
        "may_add_sites": not portal and holds("accounts.add_site"),
        "may_add_contacts": not portal and holds("accounts.add_contact"),
        "order_kinds": ProvisioningOrder.Kind.choices,
        # What billing and privacy add (their invoices, exports, resuming billing), through their hook.
        "links": site_details_links(customer, user=user),
    }
