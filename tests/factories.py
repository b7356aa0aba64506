"""factory_boy factories that build through the services, so tests get history and grants as users do."""

import datetime
from typing import Any

import factory
from django.utils import timezone

from accounts import services
from accounts.models import Contact, Customer, Line, Partner, PaymentDetails, Role, Site, User

PASSWORD = "correct-horse-battery-staple"


SERVICES: dict[type, Any] = {
    Partner: services.partner_create,
    Customer: services.customer_create,
    Site: services.site_create,
    Contact: services.contact_create,
    Line: services.line_create,
    PaymentDetails: services.payment_details_set,
    User: services.user_create,
}


class ServiceFactory(factory.Factory):
    """Creates through a service function instead of ``Model.objects.create``."""

    class Meta:
        abstract = True

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Any:
        return SERVICES[model_class](**kwargs)


class PartnerFactory(ServiceFactory):
    class Meta:
        model = Partner

    code = factory.Sequence(lambda n: f"partner-{n}")
    name = factory.Sequence(lambda n: f"Partner {n} Ltd")
    actor = None


class CustomerFactory(ServiceFactory):
    class Meta:
        model = Customer

    partner = factory.SubFactory(PartnerFactory)
    name = factory.Faker("company", locale="en_GB")
    contract_start = datetime.date(2024, 1, 1)
    actor = None


class SiteFactory(ServiceFactory):
    class Meta:
        model = Site

    customer = factory.SubFactory(CustomerFactory)
    label = "Head office"
    address_line1 = factory.Faker("street_address", locale="en_GB")
    town = "Leeds"
    postcode = "LS1 4AP"
    actor = None


class ContactFactory(ServiceFactory):
    class Meta:
        model = Contact

    customer = factory.SubFactory(CustomerFactory)
    name = "Jane Smith"
    email = factory.Sequence(lambda n: f"jane.smith{n}@example.com")
    phone = "07700 100123"
    role = Contact.ContactRole.PRIMARY
    actor = None


class LineFactory(ServiceFactory):
    class Meta:
        model = Line

    customer = factory.SubFactory(CustomerFactory)
    cli = factory.Sequence(lambda n: f"0113 496 {n % 1000:04d}")
    line_type = Line.LineType.WLR_ANALOGUE
    start_date = datetime.date(2024, 1, 1)
    actor = None


class PaymentDetailsFactory(ServiceFactory):
    class Meta:
        model = PaymentDetails

    customer = factory.SubFactory(CustomerFactory)
    account_holder = "Jane Smith"
    # Test case 1 of Vocalink's modulus checking spec (3.1): passes the standard modulus 10 check.
    sort_code = "08-99-99"
    account_number = "66374958"
    mandate_reference = "DDMANDATE0001"
    actor = None


class UserFactory(ServiceFactory):
    """A user in ``role``; staff are trained and have signed the agreement unless ``cleared=False``."""

    class Meta:
        model = User
        exclude = ["cleared"]

    email = factory.Sequence(lambda n: f"user{n}@fusion.test")
    full_name = factory.Sequence(lambda n: f"User {n}")
    role = Role.BILLING_AGENT
    password = PASSWORD
    actor = None
    cleared = True
    confidentiality_signed_at = factory.LazyAttribute(lambda o: timezone.now() if o.cleared else None)
    gdpr_training_completed_at = factory.LazyAttribute(lambda o: timezone.now() if o.cleared else None)


def full_customer(
    partner: Partner | None = None, *, sites: int = 1, lines: int = 1, contacts: int = 1
) -> Customer:
    """A customer with sites, contacts, lines and a Direct Debit mandate."""
    customer = CustomerFactory(partner=partner) if partner else CustomerFactory()
    made_sites = [SiteFactory(customer=customer, label=f"Site {n}") for n in range(sites)]
    for _ in range(contacts):
        ContactFactory(customer=customer)
    for n in range(lines):
        LineFactory(customer=customer, site=made_sites[n % len(made_sites)] if made_sites else None)
    PaymentDetailsFactory(customer=customer)
    return customer
