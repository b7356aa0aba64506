"""One partner's data and another's, with a finalised bill run and a call import each: enough for every
URL of the site to have an object to point at."""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from accounts.models import Customer, Role, User
from billing.demo import uk_tariff
from billing.models import BillRun, CallImport, Invoice
from billing.services.charges import one_off_charge_create
from tests.billing.factories import Call, billing_profile, cli_of, finalised_run, import_calls, month
from tests.factories import UserFactory

JANUARY = month(2025, 1)


@dataclass
class World:
    customer: Customer
    other_customer: Customer
    bill_run: BillRun
    other_bill_run: BillRun
    invoice: Invoice
    other_invoice: Invoice
    call_import: CallImport
    other_call_import: CallImport


def _billed(customer: Customer, agent: User, finance: User, prefix: str) -> tuple[BillRun, CallImport]:
    billing_profile(
        customer.partner, default_tariff=uk_tariff(name=f"{prefix} tariff"), invoice_prefix=prefix
    )
    one_off_charge_create(
        customer=customer,
        description="Equipment",
        amount=Decimal("10.00"),
        charge_date=datetime.date(2025, 1, 5),
        actor=agent,
    )
    call_import = import_calls(
        customer.partner,
        [Call(cli=cli_of(customer), start_time="2025-01-10T10:00:00")],
        actor=agent,
    )
    return finalised_run(customer.partner, JANUARY, agent=agent, finance=finance), call_import


def build_world(customer: Customer, other_customer: Customer) -> World:
    own_agent = UserFactory(role=Role.BILLING_AGENT, partner=customer.partner)
    own_finance = UserFactory(role=Role.FINANCE_MANAGER, partner=customer.partner)
    other_agent = UserFactory(role=Role.BILLING_AGENT, partner=other_customer.partner)
    other_finance = UserFactory(role=Role.FINANCE_MANAGER, partner=other_customer.partner)
    bill_run, call_import = _billed(customer, own_agent, own_finance, "OWN-")
    other_run, other_import = _billed(other_customer, other_agent, other_finance, "OTH-")
    return World(
        customer=customer,
        other_customer=other_customer,
        bill_run=bill_run,
        other_bill_run=other_run,
        invoice=bill_run.invoices.get(customer=customer),
        other_invoice=other_run.invoices.get(customer=other_customer),
        call_import=call_import,
        other_call_import=other_import,
    )
