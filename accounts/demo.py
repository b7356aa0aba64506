"""Demo and benchmark data: partners, users of every role, customers with full Site Details.

Customers and their Site Details are written in bulk (with history rows and object-permission grants in
bulk too), since the benchmark needs ten thousand of them; each row is still validated field by field.
Numbers come from Ofcom's drama ranges where phonenumbers accepts them, so no real person's number is used.
"""

import datetime
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from faker import Faker
from guardian.shortcuts import assign_perm
from simple_history.utils import bulk_create_with_history

from accounts import modulus, services, validation
from accounts.models import (
    Contact,
    Customer,
    Line,
    Partner,
    PaymentDetails,
    Role,
    Site,
    User,
    name_tokens_rebuild,
)

# Four-eyes steps (privacy request approval, write-offs) need a second person of the same role, so the
# demo has two DPOs and two finance managers per partner: every flow can be finished by demo users.
SECOND_DPO = "dpo2@fusion.example"
DEMO_PASSWORD = "fusion-demo-password"  # noqa: S105 - printed for the demo; never used in production
GEOGRAPHIC_PREFIXES = ["2079460", "1134960", "1614960", "1174960", "2890180", "1314960"]
CHUNK = 200


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    partner: str
    note: str


def _geographic_numbers(rng: random.Random) -> Iterator[str]:
    """Every number of Ofcom's drama ranges once, in a random order, then around again: a line's number
    must be its own (calls are matched to lines by number); 6,000 numbers cover the demo's lines."""
    pool = [f"+44{prefix}{n:03d}" for prefix in GEOGRAPHIC_PREFIXES for n in range(1000)]
    rng.shuffle(pool)
    return itertools.cycle(pool)


def _mobile(rng: random.Random) -> str:
    # 07700 900xxx is the drama range, which phonenumbers rejects; 07700 1xxxxx is accepted.
    return f"+447700{rng.randrange(100000, 200000)}"


# Sort codes from the test cases of Vocalink's modulus checking spec (3.1), one for each kind of check:
# standard modulus 10, standard modulus 11, and modulus 11 with double alternate.
DEMO_SORT_CODES = ["089999", "107999", "202959"]


def _bank_details(rng: random.Random, tables: modulus.ModulusTables) -> tuple[str, str]:
    """A sort code and an account number that passes its modulus check (about one draw in 10 to 110)."""
    sort_code = rng.choice(DEMO_SORT_CODES)
    while True:
        account_number = f"{rng.randrange(10**8):08d}"
        if modulus.check(sort_code, account_number, tables) is modulus.Outcome.VALID:
            return sort_code, account_number


class DemoBuilder:
    def __init__(self, *, seed: int = 2026, actor: User | None = None) -> None:
        self.rng = random.Random(seed)
        self.fake = Faker("en_GB")
        self.fake.seed_instance(seed)
        self.actor = actor
        self.line_numbers = _geographic_numbers(self.rng)

    def partners(self, count: int) -> list[Partner]:
        names = ["Northern Voice Ltd", "Severn Telecom", "Thames Connect", "Pennine Lines", "Solent Comms"]
        partners = []
        for index in range(count):
            code = f"demo-{index + 1}"
            partner = Partner.objects.filter(code=code).first() or services.partner_create(
                code=code,
                name=names[index % len(names)],
                vat_number=f"GB{self.rng.randrange(10**8, 10**9)}",
                actor=self.actor,
            )
            partners.append(partner)
        return partners

    def users(self, partners: list[Partner]) -> list[DemoLogin]:
        now = timezone.now()
        trained = {"confidentiality_signed_at": now, "gdpr_training_completed_at": now}
        logins: list[DemoLogin] = []

        def make(
            email: str,
            name: str,
            role: Role,
            note: str,
            partner: Partner | None = None,
            customer: Customer | None = None,
            cleared: bool = True,
        ) -> None:
            if not User.objects.filter(email=email).exists():
                services.user_create(
                    email=email,
                    full_name=name,
                    role=role,
                    actor=self.actor,
                    password=DEMO_PASSWORD,
                    partner=partner,
                    customer=customer,
                    **(trained if cleared else {}),
                )
            logins.append(DemoLogin(email, role.label, partner.name if partner else "—", note))

        make("admin@fusion.example", "Ada Admin", Role.ADMINISTRATOR, "every partner; trained")
        make("dpo@fusion.example", "Dora Protection", Role.DATA_PROTECTION_OFFICER, "every partner; trained")
        make(
            SECOND_DPO,
            "Dev Protection",
            Role.DATA_PROTECTION_OFFICER,
            "second DPO: approves what the first prepared (four eyes); trained",
        )
        for partner in partners:
            slug = partner.code
            make(f"billing@{slug}.example", f"Bill {partner.name}", Role.BILLING_AGENT, "trained", partner)
            make(f"support@{slug}.example", f"Sam {partner.name}", Role.SUPPORT_AGENT, "trained", partner)
            make(
                f"support-untrained@{slug}.example",
                f"Una {partner.name}",
                Role.SUPPORT_AGENT,
                "no training: sees masked data",
                partner,
                cleared=False,
            )
            make(f"finance@{slug}.example", f"Fin {partner.name}", Role.FINANCE_MANAGER, "trained", partner)
            make(
                f"finance2@{slug}.example",
                f"Fay {partner.name}",
                Role.FINANCE_MANAGER,
                "second finance manager: decides the write-offs finance@ asks for (four eyes); trained",
                partner,
            )
            first = Customer.objects.filter(partner=partner).order_by("id").first()
            if first is not None:
                make(
                    f"portal@{slug}.example",
                    f"Pat {first.name}",
                    Role.CUSTOMER,
                    f"portal user of {first.reference}",
                    customer=first,
                )
        return logins

    def customers(
        self,
        partner: Partner,
        count: int,
        *,
        sizes: Callable[[int], tuple[int, int]] = lambda index: (2, 3),
        progress: Callable[[int], object] = lambda done: None,
    ) -> None:
        """Create ``count`` customers, each with ``sizes(index)`` = (sites, lines), contacts and a mandate."""
        for start in range(0, count, CHUNK):
            indices = range(start, min(start + CHUNK, count))
            with transaction.atomic():
                self._customer_chunk(partner, indices, sizes)
            progress(len(indices))

    def _customer_chunk(
        self, partner: Partner, indices: range, sizes: Callable[[int], tuple[int, int]]
    ) -> None:
        fake, rng = self.fake, self.rng
        tables = validation.modulus_tables()
        today = timezone.localdate()
        customers = []
        for _ in indices:
            start = today - datetime.timedelta(days=rng.randrange(90, 2000))
            ended = rng.random() < 0.1
            customers.append(
                Customer(
                    partner=partner,
                    name=fake.company(),
                    status=Customer.Status.ENDED if ended else Customer.Status.ACTIVE,
                    contract_start=start,
                    contract_end=today - datetime.timedelta(days=rng.randrange(1, 60)) if ended else None,
                )
            )
        customers = bulk_create_with_history(customers, Customer, default_user=self.actor)
        if customers[0].pk is None:  # backends without RETURNING: fetch the new rows back
            customers = list(Customer.objects.filter(partner=partner).order_by("-id")[: len(customers)])[::-1]
        # guardian grants to a whole queryset in one bulk insert; its stubs only know single objects.
        new_customers: Any = Customer.objects.filter(pk__in=[c.pk for c in customers])
        assign_perm(services.CUSTOMER_VISIBILITY_PERMISSION, partner.staff_group, new_customers)
        sites, contacts, payments = [], [], []
        line_specs: list[tuple[Customer, int, int]] = []
        for index, customer in zip(indices, customers, strict=True):
            site_count, line_count = sizes(index)
            for number in range(site_count):
                sites.append(
                    Site(
                        customer=customer,
                        label="Head office" if number == 0 else f"Branch {number}",
                        address_line1=fake.street_address(),
                        town=fake.city(),
                        postcode=fake.postcode(),
                    )
                )
            for role in (Contact.ContactRole.PRIMARY, Contact.ContactRole.BILLING):
                name = fake.name()
                contacts.append(
                    Contact(
                        customer=customer,
                        role=role,
                        name=name,
                        email=f"{name.split()[0].lower()}.{customer.pk}@example.com",
                        phone=_mobile(rng),
                    )
                )
            sort_code, account_number = _bank_details(rng, tables)
            payments.append(
                PaymentDetails(
                    customer=customer,
                    account_holder=customer.name,
                    sort_code=sort_code,
                    account_number=account_number,
                    mandate_reference=f"DD{customer.pk:08d}",
                )
            )
            line_specs.append((customer, site_count, line_count))
        sites = _bulk(sites, Site, self.actor)
        sites_by_customer: dict[int, list[Site]] = {}
        for site in sites:
            sites_by_customer.setdefault(site.customer_id, []).append(site)
        lines = [
            Line(
                customer=customer,
                site=rng.choice(sites_by_customer.get(customer.pk) or [None]),
                cli=next(self.line_numbers),
                line_type=rng.choice(Line.LineType.values),
                start_date=customer.contract_start,
            )
            for customer, _sites, line_count in line_specs
            for _ in range(line_count)
        ]
        contacts = _bulk(contacts, Contact, self.actor)
        if contacts and contacts[0].pk is None:  # backends without RETURNING: fetch the new rows back
            contacts = list(Contact.objects.filter(customer__in=customers))
        # Bulk inserts skip save(), which indexes the words of names for search.
        name_tokens_rebuild(customers=customers, contacts=contacts)
        _bulk(lines, Line, self.actor)
        _bulk(payments, PaymentDetails, self.actor)


def _bulk(objs: list[Any], model: type[Any], actor: User | None) -> list[Any]:
    for obj in objs:
        obj.clean_fields(exclude={"customer", "site"})
        if hasattr(obj, "refresh_blind_indexes"):
            obj.refresh_blind_indexes()
    return list(bulk_create_with_history(objs, model, batch_size=500, default_user=actor))


def chunks(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(start + size, total))
