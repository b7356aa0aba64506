"""Taking on a new customer without the admin: the customer, its first site, a contact, its lines with
their rental products, its Direct Debit details and its tariff, in one transaction through each row's own
service (so each row is validated by its own rules and its history names the actor), with one audit event
for the whole. A refusal names the section and field it concerns (``site.postcode``, ``lines.2.cli``) and
leaves nothing behind."""

import datetime
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts import services as accounts_services
from accounts.audit import audit_record
from accounts.models import Customer, Line, Partner, Site, User
from billing.models import Product, Tariff
from billing.services.catalogue import line_set_product
from billing.services.tariffs import customer_set_tariff

MANDATE_REFERENCE_PREFIX = "DD"

# What a user needs to take on a customer: every row the flow writes.
ONBOARDING_PERMISSIONS = (
    "accounts.add_customer",
    "accounts.add_site",
    "accounts.add_contact",
    "accounts.add_line",
    "accounts.add_paymentdetails",
    "billing.add_customertariff",
    "billing.add_lineproduct",
)


@dataclass(frozen=True)
class NewSite:
    label: str
    address_line1: str
    town: str
    postcode: str
    address_line2: str = ""


@dataclass(frozen=True)
class NewContact:
    name: str
    email: str
    phone: str
    role: str


@dataclass(frozen=True)
class NewLine:
    cli: str
    line_type: str
    product: Product


@dataclass(frozen=True)
class NewBankDetails:
    account_holder: str
    sort_code: str
    account_number: str


def mandate_reference_for(customer: Customer) -> str:
    """The Direct Debit reference the payer's bank statement shows: the account's, as the demo's."""
    return f"{MANDATE_REFERENCE_PREFIX}{customer.pk:08d}"


class _Section:
    """Re-raise a service's ValidationError with its fields named under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, traceback: Any) -> None:
        if isinstance(exc, ValidationError):
            if hasattr(exc, "error_dict"):
                raise ValidationError(
                    {f"{self.prefix}.{name}": errors for name, errors in exc.error_dict.items()}
                ) from exc
            raise ValidationError({self.prefix: exc.error_list}) from exc


@transaction.atomic
def customer_onboard(
    *,
    partner: Partner,
    actor: User,
    name: str,
    contract_start: datetime.date,
    site: NewSite,
    contact: NewContact,
    lines: list[NewLine],
    tariff: Tariff,
    bank_details: NewBankDetails | None,
) -> Customer:
    """Create the customer and everything it starts with; all or nothing."""
    if not lines:
        raise ValidationError({"lines": "Give at least one line."})
    with _Section("customer"):
        customer = accounts_services.customer_create(
            partner=partner, name=name, contract_start=contract_start, actor=actor
        )
    with _Section("site"):
        first_site: Site = accounts_services.site_create(
            customer=customer,
            actor=actor,
            label=site.label,
            address_line1=site.address_line1,
            address_line2=site.address_line2,
            town=site.town,
            postcode=site.postcode,
        )
    with _Section("contact"):
        accounts_services.contact_create(
            customer=customer,
            actor=actor,
            name=contact.name,
            email=contact.email,
            phone=contact.phone,
            role=contact.role,
        )
    created: list[Line] = []
    for number, new_line in enumerate(lines, start=1):
        with _Section(f"lines.{number}"):
            created.append(
                line_add(
                    customer=customer,
                    site=first_site,
                    cli=new_line.cli,
                    line_type=new_line.line_type,
                    start_date=contract_start,
                    product=new_line.product,
                    actor=actor,
                )
            )
    if bank_details is not None:
        with _Section("bank"):
            accounts_services.payment_details_set(
                customer=customer,
                actor=actor,
                account_holder=bank_details.account_holder,
                sort_code=bank_details.sort_code,
                account_number=bank_details.account_number,
                mandate_reference=mandate_reference_for(customer),
            )
    with _Section("tariff"):
        customer_set_tariff(customer=customer, tariff=tariff, actor=actor)
    audit_record(
        actor=actor,
        action="customer.onboarded",
        target=customer,
        detail={
            "partner": partner.pk,
            "site": first_site.pk,
            "lines": [line.pk for line in created],
            "tariff": tariff.pk,
            "direct_debit": bank_details is not None,
        },
    )
    return customer


@transaction.atomic
def line_add(
    *,
    customer: Customer,
    cli: str,
    line_type: str,
    start_date: datetime.date,
    product: Product,
    actor: User,
    site: Site | None = None,
) -> Line:
    """A new line of the customer, rented as ``product`` from its start."""
    line = accounts_services.line_create(
        customer=customer, cli=cli, line_type=line_type, start_date=start_date, site=site, actor=actor
    )
    line_set_product(line=line, product=product, actor=actor)
    return line
