"""Links that higher apps add to a customer's Site Details page.

Accounts sits below billing and privacy, so neither its code nor its templates may name their pages or
permissions. Instead each of them registers, from its ``AppConfig.ready()``, a function that gives the
link for a customer and the user looking at the page, or None when that user may not follow it; the
page shows what the registrations give. A test (tests/test_layering_templates.py) fails on any template
of a lower app that names a higher app's URL or permission.

A link goes in one of the page's slots:

- ``Slot.FACTS``: a row of its own in the facts at the top of the page, under the registration's
  ``heading`` (billing's invoices, privacy's portability exports);
- ``Slot.BILLING_CEASED``: an action after the "Billing ceased" fact, shown only while billing is
  ceased (billing's "Resume billing…");
- ``Slot.LINES``: an action under the services and lines (billing's "Add a line", which rents the new
  line as one of the partner's products).

Within a slot, links are shown by ``order`` (lowest first), so the page does not depend on the order the
apps are installed in.
"""

import enum
from collections.abc import Callable
from dataclasses import dataclass

from accounts.models import Customer, User


class Slot(enum.StrEnum):
    FACTS = "facts"
    BILLING_CEASED = "billing_ceased"
    LINES = "lines"


@dataclass(frozen=True)
class SiteDetailsLink:
    text: str
    url: str


@dataclass(frozen=True)
class ShownLink:
    """A link as the page shows it: ``heading`` is the fact's name in ``Slot.FACTS``, empty elsewhere."""

    heading: str
    text: str
    url: str


LinkFor = Callable[[Customer, User], SiteDetailsLink | None]


@dataclass(frozen=True)
class _Registration:
    slot: Slot
    order: int
    heading: str
    link_for: LinkFor


_registrations: dict[str, _Registration] = {}


def register_site_details_link(
    *, key: str, slot: Slot, order: int, link_for: LinkFor, heading: str = ""
) -> None:
    """Add ``link_for`` to ``slot`` under a unique ``key`` (``"<app>.<what>"``); registering a key again
    replaces it, so a repeated ``ready()`` adds nothing twice."""
    if (slot == Slot.FACTS) != bool(heading):
        raise ValueError(f"{key}: a link in the facts needs a heading, and only there: slot {slot}")
    _registrations[key] = _Registration(slot=slot, order=order, heading=heading, link_for=link_for)


def site_details_links(customer: Customer, *, user: User) -> dict[str, list[ShownLink]]:
    """Every slot's links for ``customer`` as ``user`` may follow them, by order; a slot of nothing
    shown is an empty list."""
    shown: dict[str, list[ShownLink]] = {slot.value: [] for slot in Slot}
    wanted = set(Slot) if customer.billing_ceased_at is not None else set(Slot) - {Slot.BILLING_CEASED}
    by_order = sorted(_registrations.items(), key=lambda item: (item[1].order, item[0]))
    for _key, registration in by_order:
        if registration.slot not in wanted:
            continue
        link = registration.link_for(customer, user)
        if link is not None:
            shown[registration.slot.value].append(ShownLink(registration.heading, link.text, link.url))
    return shown
