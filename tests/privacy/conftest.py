"""A data subject with something in every table erasure touches, and the values to look for afterwards."""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import cast

import pytest
from axes.models import AccessAttempt
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType

from accounts import services as account_services
from accounts import validation
from accounts.models import AccessLog, Customer, Role, User, name_index_digests
from billing.demo import line_rentals
from billing.models import Invoice, OneOffCharge
from billing.services.credit_notes import credit_note_issue
from fusion_site.crypto import blind_index
from fusion_site.customer_cache import customer_cache_set
from privacy.models import PrivacyRequest
from privacy.services.requests.receiving import privacy_request_receive
from privacy.website import services as website_services
from tests.billing.factories import Call, calculated_run, finalised_run, import_calls, month
from tests.conftest import LONDON
from tests.factories import ContactFactory, CustomerFactory, LineFactory, PaymentDetailsFactory, SiteFactory


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@dataclass
class Subject:
    customer: Customer
    portal_user: User
    invoice: Invoice
    # Every plaintext value of the person, in the forms it is stored in.
    values: list[str] = field(default_factory=list)
    blind_indexes: list[str] = field(default_factory=list)


SUBJECT_CLIS = ("0113 496 0771", "0113 496 0772")


def _calls(clis: list[str], dialled: list[str], *, days: int, month_text: str) -> list[Call]:
    return [
        Call(
            cli=clis[n % len(clis)],
            dialled_number=dialled[n % len(dialled)],
            start_time=f"{month_text}-{n % 27 + 1:02d}T10:00:00",
        )
        for n in range(days)
    ]


def build_subject(
    partner, *, agent, finance, dpo, calls_per_month: int = 3, finalise: bool = True
) -> Subject:
    """A customer whose every value is unique to it, with history (corrections), calls billed and unbilled,
    a suspense call from its number, a finalised invoice with a credit note, rentals, a one-off charge,
    an order, a portal user, an admin log entry, an access log entry, an export file and a cached value."""
    customer = cast(Customer, CustomerFactory(partner=partner, name="Zebedee Quill Plumbing"))
    site = SiteFactory(
        customer=customer, address_line1="17 Quillfeather Lane", town="Otterburnham", postcode="LS29 7QJ"
    )
    contact = ContactFactory(
        customer=customer,
        name="Zebedee Quillfeather",
        email="zebedee.quill@quillmail.example",
        phone="07700 100461",
    )
    # Corrections leave the old values in history: they must go too.
    account_services.contact_update(contact=contact, actor=agent, phone="07700 100462", reason="New mobile")
    account_services.site_update(site=site, actor=agent, address_line1="19 Quillfeather Lane", reason="Typo")
    lines = [LineFactory(customer=customer, site=site, cli=cli) for cli in SUBJECT_CLIS]
    line_rentals(lines)
    OneOffCharge.objects.create(
        customer=customer,
        description="Engineer visit",
        amount=Decimal("45.00"),
        charge_date=datetime.date(2025, 1, 5),
    )
    PaymentDetailsFactory(
        customer=customer,
        account_holder="Zebedee Quillfeather",
        sort_code="40-47-84",
        account_number="34206819",
        mandate_reference="ZQMANDATE77",
    )
    account_services.provisioning_order_create(
        customer=customer, kind="modify", actor=agent, line=lines[0], notes="Move to rear office"
    )
    portal_user = account_services.user_create(
        email="zeb.portal@quillmail.example",
        full_name="Zebedee Portal",
        role=Role.CUSTOMER,
        actor=None,
        customer=customer,
        password="portal-password-123",
    )
    dialled = ["02079460123", "07700100999"]
    clis = [validation.normalise_phone(cli) for cli in SUBJECT_CLIS]
    import_calls(partner, _calls(clis, dialled, days=calls_per_month, month_text="2025-01"))
    import_calls(partner, _calls(clis, dialled, days=calls_per_month, month_text="2025-02"))  # never billed
    import_calls(partner, [Call(cli=clis[0], dialled_number="01632960555", start_time="2023-06-01T09:00:00")])
    if finalise:
        run = finalised_run(partner, month(2025, 1), agent=agent, finance=finance)
        invoice = run.invoices.get(customer=customer)
        credit_note_issue(invoice=invoice, actor=finance, reason="Goodwill", net=Decimal("1.00"))
    else:
        invoice = calculated_run(partner, month(2025, 1), actor=agent).invoices.get(customer=customer)
    LogEntry.objects.create(
        user=dpo,
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=str(customer.pk),
        object_repr=str(customer),
        action_flag=CHANGE,
        change_message="Changed name.",
    )
    account_services.access_log_record(
        user=dpo,
        customer=customer,
        action=AccessLog.Action.REVEAL,
        fields=["email"],
        reason="Subject access request",
    )
    customer_cache_set(customer.pk, "site_details", "Zebedee Quillfeather, 19 Quillfeather Lane")
    # A failed login of the portal user: lockout keeps the username (the email) in clear.
    AccessAttempt.objects.create(
        username="zeb.portal@quillmail.example",
        ip_address="203.0.113.5",
        user_agent="Mozilla/5.0",
        http_accept="*/*",
        path_info="/login/",
        get_data="",
        post_data="",
        failures_since_start=1,
    )
    # The erasure request itself names the person: its record stays, without them.
    privacy_request_receive(
        kind=PrivacyRequest.Kind.ERASURE,
        channel=PrivacyRequest.Channel.EMAIL,
        details="Zebedee Quillfeather asks us to forget the rear office move",
        actor=dpo,
        contact=contact,
        subject_email="zebedee.quill@quillmail.example",
    )

    phones = ["07700 100461", "07700 100462", *SUBJECT_CLIS]
    e164s = [validation.normalise_phone(phone) for phone in phones]
    values = [
        "Zebedee Quill Plumbing",
        "Zebedee Quillfeather",
        "zebedee.quill@quillmail.example",
        "Quillfeather Lane",
        "Otterburnham",
        "LS29 7QJ",
        "34206819",
        "404784",
        "ZQMANDATE77",
        "zeb.portal@quillmail.example",
        "Zebedee Portal",
        "01632960555",
        "Move to rear office",
        *dialled,
        *e164s,
        *[validation.national_phone_digits(e164) for e164 in e164s],
    ]
    indexes = [
        blind_index("postcode", validation.normalise_postcode("LS29 7QJ")),
        blind_index("email", "zebedee.quill@quillmail.example"),
        *[blind_index("phone", e164) for e164 in e164s],
        # The words of the account's and the contact's names, by which staff find the customer.
        *name_index_digests("Zebedee Quill Plumbing"),
        *name_index_digests("Zebedee Quillfeather"),
    ]
    return Subject(
        customer=customer, portal_user=portal_user, invoice=invoice, values=values, blind_indexes=indexes
    )


@pytest.fixture
def subject(partner, profile, agent, finance, dpo, media_root):
    made = build_subject(partner, agent=agent, finance=finance, dpo=dpo)
    export_dir = media_root / "exports" / str(made.customer.pk)
    export_dir.mkdir(parents=True)
    (export_dir / "export.json").write_text('{"name": "Zebedee Quillfeather"}')
    return made


@pytest.fixture
def second_dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


@pytest.fixture
def support(make_user):
    return make_user(Role.SUPPORT_AGENT)


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks):
    """Run what a service queues on commit (emails, tasks): the test transaction never commits."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def today(clock):
    """Move the frozen clock to noon in London on a day: ``today(date)``."""

    def set_today(day: datetime.date) -> None:
        clock.move_to(datetime.datetime.combine(day, datetime.time(12), tzinfo=LONDON))

    return set_today


def receive(actor, *, kind=PrivacyRequest.Kind.ACCESS, **fields) -> PrivacyRequest:
    fields.setdefault("channel", PrivacyRequest.Channel.EMAIL)
    fields.setdefault("details", "Please send me a copy of my data.")
    return privacy_request_receive(kind=kind, actor=actor, **fields)


@pytest.fixture
def notice(dpo):
    draft = website_services.privacy_notice_create(
        title="How we use your data",
        summary="We use what you send us only to answer you.",
        body="First paragraph.\n\nSecond paragraph.",
        actor=dpo,
    )
    return website_services.privacy_notice_publish(notice=draft, actor=dpo)


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    """Uploaded CVs and exports land in a throwaway MEDIA_ROOT."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"
