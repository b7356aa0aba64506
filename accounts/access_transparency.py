"""What a customer is shown of the access log: who opened, revealed, corrected or exported its personal
data, when and why.

The customer learns the staff member's role and organisation (its partner, or the provider), never their
name or email: the log is about the customer's data, and staff are people with a right to privacy too
(the DPO, who answers a question about an entry, sees who it was). Entries made by the customer's own
portal users are shown as "You". Only the customer's own entries are ever read here.
"""

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts.models import AccessLog, Customer, Role, User
from accounts.services import SYSTEM_EMAIL_DOMAIN

# Who the provider is, as a customer reads it: partners resell the provider's lines.
PROVIDER_ORGANISATION = "Fusion Telecom (the network provider)"
SYSTEM_ROLE = "Automated job"
YOU = "You"


class Kind(models.TextChoices):
    """What was done with the data, as the portal's filter offers it."""

    OPENED = "opened", "Opened"
    REVEALED = "revealed", "Revealed"
    CORRECTED = "corrected", "Opened to correct"
    EXPORTED = "exported", "Exported"


# Each access-log action, with the kind it counts as and how the customer reads it.
ACTIONS: dict[str, tuple[Kind, str]] = {
    AccessLog.Action.REVEAL: (Kind.REVEALED, "Revealed your masked data"),
    AccessLog.Action.EDIT_FORM: (Kind.CORRECTED, "Opened your details to correct them"),
    AccessLog.Action.ADMIN_VIEW: (Kind.OPENED, "Opened your record in the administration screens"),
    AccessLog.Action.CROSS_PARTNER_VIEW: (Kind.OPENED, "Opened your Site Details"),
    AccessLog.Action.BREACH_REVIEW: (Kind.OPENED, "Reviewed your account while looking into a data incident"),
    AccessLog.Action.EXPORT_DOWNLOAD: (Kind.EXPORTED, "Downloaded an export of your data"),
    AccessLog.Action.EXPORT: (Kind.EXPORTED, "Exported your data"),
}
if set(ACTIONS) != set(AccessLog.Action.values):  # a new action must say how the customer reads it
    raise RuntimeError(f"access_transparency.ACTIONS misses {set(AccessLog.Action.values) - set(ACTIONS)}")

# The first part of a logged field name, as the customer reads it ("contact.email" -> "contacts").
_FIELD_GROUPS = {
    "site": "sites",
    "contact": "contacts",
    "line": "lines",
    "payment": "payment details",
    "history": "change history",
    "export": "data export",
    "privacyrequest": "privacy request",
    "breach": "incident review",
    "access_report": "access report",
    "site_details": "Site Details",
}


@dataclass(frozen=True)
class PortalEntry:
    """One access-log entry as the customer sees it: no staff name, email or user id."""

    id: int
    at: datetime.datetime
    kind: str
    kind_label: str
    what: str
    role: str
    organisation: str
    by_you: bool
    data: str
    reason: str


def actions_of(kind: str) -> list[str]:
    return [action for action, (of_kind, _label) in ACTIONS.items() if of_kind == kind]


def entries_of_customer(customer: Customer, *, kind: str = "") -> QuerySet[AccessLog]:
    """The customer's own access-log entries, newest first, filtered to one ``Kind`` when given; with what
    ``describe`` needs (the user's partner and role groups) fetched in two further queries per page."""
    entries = AccessLog.objects.filter(customer=customer)
    if kind:
        entries = entries.filter(action__in=actions_of(kind))
    return (
        entries.select_related("user__partner")
        .prefetch_related(
            Prefetch(
                "user__groups",
                queryset=Group.objects.filter(name__in=Role.values).order_by("name"),
                to_attr="role_groups",
            )
        )
        .order_by("-at", "-id")
    )


def entry_of_portal_user(user: User, entry_id: int) -> AccessLog:
    """An entry of the portal user's own customer; any other id (another customer's, none) is a 404."""
    entry = (
        AccessLog.objects.filter(pk=entry_id, customer_id=user.customer_id)
        .select_related("user__partner")
        .first()
        if user.customer_id is not None
        else None
    )
    if entry is None:
        raise Http404("No such entry.")
    return entry


def role_of(user: User) -> str:
    """The user's job roles by name; a system user is an automated job."""
    if user.email.endswith(f"@{SYSTEM_EMAIL_DOMAIN}"):
        return SYSTEM_ROLE
    groups = getattr(user, "role_groups", None)
    names = [g.name for g in groups] if groups is not None else _role_names(user)
    labels = dict(Role.choices)
    return ", ".join(str(labels[name]) for name in names) or "Staff"


def _role_names(user: User) -> list[str]:
    return sorted(user.groups.filter(name__in=Role.values).values_list("name", flat=True))


def organisation_of(user: User) -> str:
    return user.partner.name if user.partner is not None else PROVIDER_ORGANISATION


def data_summary(fields: Iterable[str]) -> str:
    groups: list[str] = []
    for name in fields:
        group = _FIELD_GROUPS.get(str(name).split(".", 1)[0], "other details")
        if group not in groups:
            groups.append(group)
    return ", ".join(groups)


def describe(entry: AccessLog, *, customer: Customer) -> PortalEntry:
    kind, what = ACTIONS.get(entry.action, (Kind.OPENED, str(entry.get_action_display())))
    by_you = entry.user.customer_id == customer.pk
    return PortalEntry(
        id=entry.pk,
        at=entry.at,
        kind=kind.value,
        kind_label=str(kind.label),
        what=what,
        role=YOU if by_you else role_of(entry.user),
        organisation="" if by_you else organisation_of(entry.user),
        by_you=by_you,
        data=data_summary(entry.fields or []),
        reason=entry.reason,
    )


def describe_all(entries: Sequence[AccessLog], *, customer: Customer) -> list[PortalEntry]:
    return [describe(entry, customer=customer) for entry in entries]
