"""Every URL of the site, requested by every role and by an anonymous visitor.

The resolver is walked, so a new URL without a row here fails ``test_every_url_is_in_the_matrix``.
Only the roles listed for a page answer 200 (with data); an anonymous visitor is sent to the login page;
everyone else gets 403 or 404, or (pages that are only ever posted to) 405 for a GET. Objects of
another partner answer 404 to partner staff on every page that takes one.
"""

import re
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.models import Role
from billing.models import DunningStep
from billing.services.credit_notes import credit_note_issue
from billing.services.dunning import dunning_steps_ensure
from billing.services.payments import payment_record
from privacy.models import PrivacyRequest
from privacy.services.requests.receiving import privacy_request_receive
from privacy.website import services as website_services
from tests.factories import UserFactory
from tests.security.world import World, build_world

STAFF = {
    Role.ADMINISTRATOR,
    Role.BILLING_AGENT,
    Role.SUPPORT_AGENT,
    Role.FINANCE_MANAGER,
    Role.DATA_PROTECTION_OFFICER,
}
EVERYONE = {*STAFF, Role.CUSTOMER}
CORRECTORS = {
    Role.ADMINISTRATOR,
    Role.BILLING_AGENT,
    Role.SUPPORT_AGENT,
    Role.DATA_PROTECTION_OFFICER,
    Role.CUSTOMER,
}
BILLING_STAFF = {Role.BILLING_AGENT, Role.FINANCE_MANAGER}
# The provider's staff read every partner's billing (administrator: all of it; DPO: runs and invoices,
# for subject access); each view of a customer by them is logged as cross-partner.
BILLING_READERS = {*BILLING_STAFF, Role.ADMINISTRATOR, Role.DATA_PROTECTION_OFFICER}
CALL_READERS = {Role.BILLING_AGENT, Role.ADMINISTRATOR}
# Finance managers import their partner's Bacs reports; administrators read every partner's.
BACS_REPORT_READERS = {Role.FINANCE_MANAGER, Role.ADMINISTRATOR}
NOBODY: set[Role] = set()
ANONYMOUS = "anonymous"

Url = Callable[[World], str]


def _bacs_import(partner) -> int:
    """A Bacs report import of ``partner`` (the world has none of its own)."""
    from billing.models import BacsReportImport

    row, _created = BacsReportImport.objects.get_or_create(
        partner=partner,
        service_user_number=f"{partner.pk:06d}",
        report_id=f"ARUDD/{partner.pk:06d}/2026-11-30/1",
        defaults={
            "kind": "ARUDD",
            "file_name": "arudd.xml",
            "sha256": "0" * 64,
            "imported_at": timezone.now(),
        },
    )
    return row.pk


def _own_contact(w: World) -> int:
    return w.customer.contacts.order_by("pk").first().pk


def _own_site(w: World) -> int:
    return w.customer.sites.order_by("pk").first().pk


def _request(w: World, *, other: bool = False) -> int:
    """A privacy request about the customer (or the other partner's), made once per world."""
    key = "_other_request" if other else "_own_request"
    if not hasattr(w, key):
        dpo = UserFactory(role=Role.DATA_PROTECTION_OFFICER)
        customer = w.other_customer if other else w.customer
        made = privacy_request_receive(
            kind=PrivacyRequest.Kind.ACCESS,
            channel="email",
            details="All of it",
            actor=dpo,
            customer=customer,
        )
        setattr(w, key, made)
    return getattr(w, key).pk


def _credit_note(w: World, *, other: bool = False) -> int:
    """A credit note against the world's invoice (or the other partner's), issued once per world."""
    key = "_other_credit_note" if other else "_own_credit_note"
    if not hasattr(w, key):
        invoice = w.other_invoice if other else w.invoice
        finance = UserFactory(role=Role.FINANCE_MANAGER, partner=invoice.partner)
        setattr(w, key, credit_note_issue(invoice=invoice, actor=finance, reason="Goodwill"))
    return getattr(w, key).pk


def _payment(w: World, *, other: bool = False) -> int:
    """A payment on the world's customer (or the other partner's), recorded once per world."""
    key = "_other_payment" if other else "_own_payment"
    if not hasattr(w, key):
        customer = w.other_customer if other else w.customer
        agent = UserFactory(role=Role.BILLING_AGENT, partner=customer.partner)
        payment = payment_record(
            customer=customer,
            method="card",
            amount=Decimal("500.00"),
            received_on=timezone.localdate(),
            actor=agent,
        )
        setattr(w, key, payment)
    return getattr(w, key).pk


def _dunning_step(w: World, *, other: bool = False) -> int:
    """One of the partner's dunning steps (the defaults, made once per world)."""
    dunning_steps_ensure(actor=None)
    partner = w.other_customer.partner if other else w.customer.partner
    return DunningStep.objects.filter(partner=partner).order_by("pk").first().pk


def _submission(w: World) -> int:
    if not hasattr(w, "_submission"):
        dpo = UserFactory(role=Role.DATA_PROTECTION_OFFICER)
        notice = website_services.privacy_notice_publish(
            notice=website_services.privacy_notice_create(title="N", summary="S", body="B", actor=dpo),
            actor=dpo,
        )
        w._submission = website_services.contact_submit(
            name="Enquirer", email="enquirer@example.com", message="Hello", consent_notice=notice
        )
    return w._submission.pk


def _draft_notice(w: World) -> int:
    if not hasattr(w, "_draft"):
        dpo = UserFactory(role=Role.DATA_PROTECTION_OFFICER)
        w._draft = website_services.privacy_notice_create(title="Draft", summary="S", body="B", actor=dpo)
    return w._draft.pk


def _processor(w: World) -> int:
    """A processor of the register (seeded by the privacy migrations)."""
    from privacy.models import Processor

    return Processor.objects.order_by("pk").first().pk


def _assessment(w: World) -> tuple[int, int]:
    """An impact assessment with one risk, made once per world: (assessment id, risk id)."""
    if not hasattr(w, "_assessment"):
        from privacy import data_map
        from privacy.services import governance

        dpo = UserFactory(role=Role.DATA_PROTECTION_OFFICER)
        assessment = governance.assessment_create(activity=data_map.ACTIVITIES[0].name, actor=dpo)
        risk = governance.assessment_risk_save(
            assessment=assessment,
            actor=dpo,
            description="Unauthorised access to accounts",
            likelihood=2,
            severity=2,
            measures="Two factors, masking",
            residual_likelihood=1,
            residual_severity=2,
        )
        w._assessment = (assessment.pk, risk.pk)
    return w._assessment


def _breach(w: World) -> int:
    """An incident in the breach register (the provider's, not a partner's), recorded once per world."""
    if not hasattr(w, "_breach"):
        from privacy.services.breaches import breach_incident_create

        dpo = UserFactory(role=Role.DATA_PROTECTION_OFFICER)
        now = timezone.now()
        w._breach = breach_incident_create(
            actor=dpo,
            title="Laptop lost",
            pecr=False,
            occurred_at=now,
            became_aware_at=now,
            description="A laptop was left on a train.",
            data_categories=["contact"],
            subject_categories=["customers"],
            approximate_records=3,
            approximate_subjects=3,
            likely_consequences="Unlikely: the disk is encrypted.",
            measures_taken="Remote wipe.",
            handler=dpo,
        )
    return w._breach.pk


def _product(w: World, *, other: bool = False) -> int:
    """A line rental product of the customer's partner (or the other partner's), made once per world."""
    key = "_other_product" if other else "_own_product"
    if not hasattr(w, key):
        import datetime

        from billing.services.catalogue import product_create

        customer = w.other_customer if other else w.customer
        made = product_create(
            partner=customer.partner,
            name="Analogue line",
            monthly_price=Decimal("15.00"),
            valid_from=datetime.date(2026, 1, 1),
            actor=None,
        )
        setattr(w, key, made)
    return getattr(w, key).pk


# Who takes on customers and adds their sites, contacts and lines: the roles that may create customers.
ONBOARDERS = {Role.ADMINISTRATOR, Role.BILLING_AGENT}
# Who reads the product catalogue (its partner's; administrators every partner's).
CATALOGUE_READERS = {Role.ADMINISTRATOR, Role.BILLING_AGENT, Role.FINANCE_MANAGER}

REQUEST_READERS = {Role.DATA_PROTECTION_OFFICER, Role.ADMINISTRATOR, Role.SUPPORT_AGENT}
PRIVACY_OFFICE = {Role.DATA_PROTECTION_OFFICER, Role.ADMINISTRATOR}
DPO_ONLY = {Role.DATA_PROTECTION_OFFICER}
PORTAL = {Role.CUSTOMER}

# name -> (URL for the own partner's objects, roles answered with 200 on GET, URL for another partner's
# objects or None). A page that only takes POST lists nobody: its GET is 405.
MATRIX: dict[str, tuple[Url, set[Role], Url | None]] = {
    "accounts:home": (lambda w: "/", STAFF, None),
    "accounts:my_account": (lambda w: "/my-account/", NOBODY, None),  # a redirect for everyone
    "accounts:otp_verify": (lambda w: "/account/two-factor/", EVERYONE, None),  # the user's own step
    "accounts:otp_enrol": (lambda w: "/account/two-factor/enrol/", EVERYONE, None),
    "accounts:recovery_codes": (lambda w: "/account/two-factor/recovery-codes/", NOBODY, None),
    "accounts:site_details": (
        lambda w: f"/customers/{w.customer.reference}/",
        EVERYONE,
        lambda w: f"/customers/{w.other_customer.reference}/",
    ),
    "accounts:reveal": (lambda w: f"/customers/{w.customer.reference}/reveal/", NOBODY, None),
    "accounts:contact_edit": (
        lambda w: f"/customers/{w.customer.reference}/contacts/{_own_contact(w)}/edit/",
        CORRECTORS,
        lambda w: f"/customers/{w.other_customer.reference}/contacts/{_own_contact(w)}/edit/",
    ),
    "accounts:site_edit": (
        lambda w: f"/customers/{w.customer.reference}/sites/{_own_site(w)}/edit/",
        CORRECTORS,
        lambda w: f"/customers/{w.other_customer.reference}/sites/{_own_site(w)}/edit/",
    ),
    "accounts:order_create": (lambda w: f"/customers/{w.customer.reference}/orders/new/", NOBODY, None),
    "accounts:site_add": (
        lambda w: f"/customers/{w.customer.reference}/sites/new/",
        ONBOARDERS,
        lambda w: f"/customers/{w.other_customer.reference}/sites/new/",
    ),
    "accounts:contact_add": (
        lambda w: f"/customers/{w.customer.reference}/contacts/new/",
        ONBOARDERS,
        lambda w: f"/customers/{w.other_customer.reference}/contacts/new/",
    ),
    # An administrator first chooses the partner; a partner's staff asking for another partner get 404.
    "billing:onboard": (
        lambda w: "/billing/customers/new/",
        ONBOARDERS,
        lambda w: f"/billing/customers/new/?partner={w.other_customer.partner_id}",
    ),
    # Without a draft in the session: a redirect to the form for those who may onboard, 403 for others.
    "billing:onboard_confirm": (lambda w: "/billing/customers/new/confirm/", NOBODY, None),
    "billing:line_add": (
        lambda w: f"/billing/customers/{w.customer.reference}/lines/new/",
        ONBOARDERS,
        lambda w: f"/billing/customers/{w.other_customer.reference}/lines/new/",
    ),
    "billing:products": (lambda w: "/billing/products/", CATALOGUE_READERS, None),
    "billing:product": (
        lambda w: f"/billing/products/{_product(w)}/",
        CATALOGUE_READERS,
        lambda w: f"/billing/products/{_product(w, other=True)}/",
    ),
    "billing:bill_runs": (lambda w: "/billing/runs/", BILLING_READERS, None),
    "billing:bill_run": (
        lambda w: f"/billing/runs/{w.bill_run.pk}/",
        BILLING_READERS,
        lambda w: f"/billing/runs/{w.other_bill_run.pk}/",
    ),
    "billing:direct_debit": (lambda w: f"/billing/runs/{w.bill_run.pk}/direct-debit/", NOBODY, None),
    "billing:direct_debit_cancel": (
        lambda w: f"/billing/runs/{w.bill_run.pk}/direct-debit/cancel/",
        NOBODY,
        None,
    ),
    "billing:bill_run_action": (lambda w: f"/billing/runs/{w.bill_run.pk}/approve/", NOBODY, None),
    "billing:invoice": (
        lambda w: f"/billing/invoices/{w.invoice.pk}/",
        {*BILLING_READERS, Role.CUSTOMER},
        lambda w: f"/billing/invoices/{w.other_invoice.pk}/",
    ),
    # PDF downloads: the page's scope exactly (another partner's or customer's document is 404).
    "billing:invoice_pdf": (
        lambda w: f"/billing/invoices/{w.invoice.pk}/pdf/",
        {*BILLING_READERS, Role.CUSTOMER},
        lambda w: f"/billing/invoices/{w.other_invoice.pk}/pdf/",
    ),
    "billing:credit_note_pdf": (
        lambda w: f"/billing/credit-notes/{_credit_note(w)}/pdf/",
        {*BILLING_READERS, Role.CUSTOMER},
        lambda w: f"/billing/credit-notes/{_credit_note(w, other=True)}/pdf/",
    ),
    "billing:statement_pdf": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/statement.pdf",
        {*BILLING_READERS, Role.CUSTOMER},
        lambda w: f"/billing/customers/{w.other_customer.reference}/account/statement.pdf",
    ),
    "billing:credit_note": (
        lambda w: f"/billing/credit-notes/{_credit_note(w)}/",
        {*BILLING_READERS, Role.CUSTOMER},
        lambda w: f"/billing/credit-notes/{_credit_note(w, other=True)}/",
    ),
    "billing:customer_invoices": (
        lambda w: f"/billing/customers/{w.customer.reference}/invoices/",
        {*BILLING_READERS, Role.CUSTOMER},
        lambda w: f"/billing/customers/{w.other_customer.reference}/invoices/",
    ),
    "billing:lift_cease": (
        lambda w: f"/billing/customers/{w.customer.reference}/resume-billing/",
        {Role.BILLING_AGENT},
        lambda w: f"/billing/customers/{w.other_customer.reference}/resume-billing/",
    ),
    "billing:account": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/",
        {*BILLING_READERS, Role.CUSTOMER},
        lambda w: f"/billing/customers/{w.other_customer.reference}/account/",
    ),
    "billing:payment_record": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/payments/new/",
        BILLING_STAFF,
        lambda w: f"/billing/customers/{w.other_customer.reference}/account/payments/new/",
    ),
    "billing:payment_refund": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/payments/{_payment(w)}/refund/",
        {Role.FINANCE_MANAGER},
        lambda w: (
            f"/billing/customers/{w.other_customer.reference}/account/payments/"
            f"{_payment(w, other=True)}/refund/"
        ),
    ),
    "billing:payment_reallocate": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/payments/{_payment(w)}/reallocate/",
        BILLING_STAFF,
        lambda w: (
            f"/billing/customers/{w.other_customer.reference}/account/payments/"
            f"{_payment(w, other=True)}/reallocate/"
        ),
    ),
    "billing:write_off_request": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/invoices/{w.invoice.pk}/write-off/",
        BILLING_STAFF,
        lambda w: (
            f"/billing/customers/{w.other_customer.reference}/account/invoices/"
            f"{w.other_invoice.pk}/write-off/"
        ),
    ),
    # Only ever posted to: another partner's write-off answering 404 is tested in
    # tests/billing/test_ledger_pages.py.
    "billing:write_off_decide": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/write-offs/1/approve/",
        NOBODY,
        None,
    ),
    "billing:dunning_steps": (
        lambda w: f"/billing/partners/{w.customer.partner.pk}/dunning/",
        {*BILLING_STAFF, Role.ADMINISTRATOR},
        lambda w: f"/billing/partners/{w.other_customer.partner.pk}/dunning/",
    ),
    "billing:dunning_step_edit": (
        lambda w: f"/billing/partners/{w.customer.partner.pk}/dunning/{_dunning_step(w)}/",
        {Role.FINANCE_MANAGER},
        lambda w: f"/billing/partners/{w.other_customer.partner.pk}/dunning/{_dunning_step(w, other=True)}/",
    ),
    "billing:aged_debt": (lambda w: "/billing/aged-debt/", BILLING_READERS, None),
    "billing:aged_debt_csv": (lambda w: "/billing/aged-debt.csv", BILLING_READERS, None),
    "billing:call_imports": (lambda w: "/billing/imports/", CALL_READERS, None),
    "billing:call_import": (
        lambda w: f"/billing/imports/{w.call_import.pk}/",
        CALL_READERS,
        lambda w: f"/billing/imports/{w.other_call_import.pk}/",
    ),
    "billing:suspense": (lambda w: "/billing/suspense/", {*BILLING_STAFF, Role.ADMINISTRATOR}, None),
    "billing:bacs_reports": (lambda w: "/billing/bacs-reports/", BACS_REPORT_READERS, None),
    "billing:bacs_report": (
        lambda w: f"/billing/bacs-reports/{_bacs_import(w.customer.partner)}/",
        BACS_REPORT_READERS,
        lambda w: f"/billing/bacs-reports/{_bacs_import(w.other_customer.partner)}/",
    ),
    # Only ever posted to (the forms are on the account and Bacs reports pages); another partner's
    # customer and files answering 404 are tested in tests/billing/test_direct_debit_lifecycle.py.
    "billing:direct_debit_hold_clear": (
        lambda w: f"/billing/customers/{w.customer.reference}/account/direct-debit-hold/clear/",
        NOBODY,
        None,
    ),
    "billing:representation_file": (lambda w: "/billing/bacs-reports/representations/", NOBODY, None),
    "billing:representation_file_again": (
        lambda w: "/billing/bacs-reports/representations/1/",
        NOBODY,
        None,
    ),
    "billing:representation_file_cancel": (
        lambda w: "/billing/bacs-reports/representations/1/cancel/",
        NOBODY,
        None,
    ),
    "privacy:queue": (lambda w: "/privacy/", REQUEST_READERS, None),
    "privacy:request_new": (
        lambda w: "/privacy/requests/new/",
        {Role.DATA_PROTECTION_OFFICER, Role.SUPPORT_AGENT},
        None,
    ),
    "privacy:request": (
        lambda w: f"/privacy/requests/{_request(w)}/",
        REQUEST_READERS,
        lambda w: f"/privacy/requests/{_request(w, other=True)}/",
    ),
    "privacy:request_action": (lambda w: f"/privacy/requests/{_request(w)}/start/", NOBODY, None),
    "privacy:register": (lambda w: "/privacy/register.csv", NOBODY, None),  # an export: POST only
    "privacy:my_requests": (lambda w: "/privacy/my-requests/", PORTAL, None),
    "privacy:my_access_report": (lambda w: "/privacy/my-account/access-report/", PORTAL, None),
    "privacy:my_access_report_pdf": (lambda w: "/privacy/my-account/access-report.pdf", PORTAL, None),
    "privacy:access_report_pdf": (
        lambda w: f"/privacy/customers/{w.customer.reference}/access-report.pdf",
        REQUEST_READERS,
        lambda w: f"/privacy/customers/{w.other_customer.reference}/access-report.pdf",
    ),
    "privacy:my_access_log": (lambda w: "/privacy/my-account/access-log/", PORTAL, None),
    # Asking about an entry is POST only; another customer's entry answering 404 is tested in
    # tests/privacy/test_access_log_portal.py.
    "privacy:ask_about_access": (lambda w: "/privacy/my-account/access-log/1/ask/", NOBODY, None),
    "privacy:access_report": (
        lambda w: f"/privacy/customers/{w.customer.reference}/access-report/",
        REQUEST_READERS,
        lambda w: f"/privacy/customers/{w.other_customer.reference}/access-report/",
    ),
    "privacy:data_map": (lambda w: "/privacy/data-map/", PRIVACY_OFFICE, None),
    "privacy:data_map_csv": (lambda w: "/privacy/data-map.csv", NOBODY, None),  # an export: POST only
    "privacy:erasure_preview": (
        lambda w: f"/privacy/customers/{w.customer.reference}/erasure-preview/",
        PRIVACY_OFFICE,
        lambda w: f"/privacy/customers/{w.other_customer.reference}/erasure-preview/",
    ),
    "privacy:my_data": (lambda w: "/privacy/my-data/", PORTAL, None),
    "privacy:customer_exports": (
        lambda w: f"/privacy/customers/{w.customer.reference}/exports/",
        DPO_ONLY,
        lambda w: f"/privacy/customers/{w.other_customer.reference}/exports/",
    ),
    # A link that does not verify answers 404 to everyone (tests/privacy/test_portability.py has the rest).
    "privacy:export_download": (lambda w: "/privacy/exports/download/not-a-token/", NOBODY, None),
    "privacy:retention": (lambda w: "/privacy/retention/", PRIVACY_OFFICE, None),
    # Setting and lifting holds and changing a policy are POST only (tests/privacy/test_retention*.py).
    "privacy:legal_hold_set": (lambda w: "/privacy/retention/holds/", NOBODY, None),
    "privacy:legal_hold_lift": (lambda w: "/privacy/retention/holds/1/lift/", NOBODY, None),
    "privacy:retention_policy_edit": (lambda w: "/privacy/retention/policies/1/", NOBODY, None),
    # The governance registers: the DPO and administrators only (neither belongs to a partner).
    "privacy:processors": (lambda w: "/privacy/processors/", PRIVACY_OFFICE, None),
    "privacy:processor_new": (lambda w: "/privacy/processors/new/", PRIVACY_OFFICE, None),
    "privacy:processor": (lambda w: f"/privacy/processors/{_processor(w)}/", PRIVACY_OFFICE, None),
    "privacy:processor_edit": (lambda w: f"/privacy/processors/{_processor(w)}/edit/", PRIVACY_OFFICE, None),
    "privacy:assessments": (lambda w: "/privacy/assessments/", PRIVACY_OFFICE, None),
    "privacy:assessment_new": (lambda w: "/privacy/assessments/new/", PRIVACY_OFFICE, None),
    "privacy:assessment": (lambda w: f"/privacy/assessments/{_assessment(w)[0]}/", PRIVACY_OFFICE, None),
    "privacy:assessment_edit": (
        lambda w: f"/privacy/assessments/{_assessment(w)[0]}/edit/",
        PRIVACY_OFFICE,
        None,
    ),
    "privacy:assessment_risk_new": (
        lambda w: f"/privacy/assessments/{_assessment(w)[0]}/risks/new/",
        PRIVACY_OFFICE,
        None,
    ),
    "privacy:assessment_risk": (
        lambda w: "/privacy/assessments/{}/risks/{}/".format(*_assessment(w)),
        PRIVACY_OFFICE,
        None,
    ),
    # Signing off is POST only, and the DPO's alone (tests/privacy/test_dpias.py).
    "privacy:assessment_sign_off": (
        lambda w: f"/privacy/assessments/{_assessment(w)[0]}/sign-off/",
        NOBODY,
        None,
    ),
    # The breach register: the DPO and administrators only (tests/privacy/test_breaches.py).
    "privacy:breaches": (lambda w: "/privacy/breaches/", PRIVACY_OFFICE, None),
    "privacy:breach_new": (lambda w: "/privacy/breaches/new/", PRIVACY_OFFICE, None),
    "privacy:breach": (lambda w: f"/privacy/breaches/{_breach(w)}/", PRIVACY_OFFICE, None),
    "privacy:breach_edit": (lambda w: f"/privacy/breaches/{_breach(w)}/edit/", PRIVACY_OFFICE, None),
    "privacy:breach_decide": (lambda w: f"/privacy/breaches/{_breach(w)}/decide/ico/", NOBODY, None),
    "privacy:breach_affected": (lambda w: f"/privacy/breaches/{_breach(w)}/affected/", PRIVACY_OFFICE, None),
    # An export: POST only.
    "privacy:breach_affected_csv": (lambda w: f"/privacy/breaches/{_breach(w)}/affected.csv", NOBODY, None),
    "privacy:breach_report": (lambda w: f"/privacy/breaches/{_breach(w)}/report/", PRIVACY_OFFICE, None),
    "website_staff:submissions": (lambda w: "/privacy/website/submissions/", PRIVACY_OFFICE, None),
    "website_staff:submission": (
        lambda w: f"/privacy/website/submissions/{_submission(w)}/",
        PRIVACY_OFFICE,
        None,
    ),
    # A contact enquiry has no CV: 404 for everyone (test_website_staff covers applications).
    "website_staff:submission_cv": (
        lambda w: f"/privacy/website/submissions/{_submission(w)}/cv/",
        NOBODY,
        None,
    ),
    "website_staff:submission_decision": (
        lambda w: f"/privacy/website/submissions/{_submission(w)}/decision/",
        NOBODY,
        None,
    ),
    "website_staff:mailing_list_export": (lambda w: "/privacy/website/mailing-list/export/", NOBODY, None),
    "website_staff:notices": (lambda w: "/privacy/website/notices/", PRIVACY_OFFICE, None),
    "website_staff:notice_new": (lambda w: "/privacy/website/notices/new/", DPO_ONLY, None),
    "website_staff:notice_edit": (
        lambda w: f"/privacy/website/notices/{_draft_notice(w)}/edit/",
        DPO_ONLY,
        None,
    ),
    "website_staff:notice_publish": (
        lambda w: f"/privacy/website/notices/{_draft_notice(w)}/publish/",
        NOBODY,
        None,
    ),
}
# Answer anyone: the login page itself, logging out (POST only; GET is 405), the public website (tested in
# tests/privacy/test_website*.py and tests/browser/), the page where a subject enters an identity code, and
# the health probes, which show no data (tests/test_health.py).
PUBLIC = {
    "healthz",
    "readyz",
    "login",
    "logout",
    "privacy:verify_identity",
    "website:home",
    "website:privacy_notice",
    "website:privacy_notice_version",
    "website:contact",
    "website:mailing_list",
    "website:mailing_list_confirm",
    "website:mailing_list_unsubscribe",
    "website:job_apply",
    "website:privacy_request",
    "website:privacy_request_verify",
    "website:cookies",
    "website:cookie_consent",
}


def _walk(patterns: list, namespace: str = "") -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = (
                f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else pattern.namespace
            )
            yield from _walk(pattern.url_patterns, inner or namespace)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace else str(pattern.name)
            yield name, str(pattern.pattern)


def test_every_url_is_in_the_matrix():
    site_urls = {name for name, _ in _walk(get_resolver().url_patterns) if not name.startswith("admin:")}

    assert site_urls == set(MATRIX) | PUBLIC


@pytest.fixture
def world(customer, other_customer) -> World:
    return build_world(customer, other_customer)


def _client_for(role: Role | str, make_user, world: World) -> Client:
    from tests.conftest import VerifiedClient

    client = VerifiedClient()
    if role != ANONYMOUS:
        extra = {"customer": world.customer} if role == Role.CUSTOMER else {}
        client.force_login(make_user(role, **extra))
    return client


ROLES_AND_ANONYMOUS = [*Role, ANONYMOUS]


@pytest.mark.parametrize("who", ROLES_AND_ANONYMOUS, ids=str)
def test_each_page_answers_with_data_only_to_the_roles_allowed(make_user, world, who):
    client = _client_for(who, make_user, world)
    unexpected: dict[str, int | str] = {}
    for name, (url, allowed, _) in MATRIX.items():
        response = client.get(url(world))
        if who == ANONYMOUS:
            ok = response.status_code == 302 and response["Location"].startswith("/login/")
        elif who in allowed:
            ok = response.status_code == 200
        else:
            ok = (
                response.status_code in {302, 403, 404, 405}
                and not response["Location"].startswith("/login/")
                if response.status_code == 302
                else response.status_code in {403, 404, 405}
            )
        if not ok:
            unexpected[name] = response.status_code
        elif response.status_code == 200 and response.get("Content-Type", "").startswith("text/html"):
            # Every page has a title of plain text (a block left open once put a whole section in it).
            html = response.content.decode()
            title = TITLE.search(html)
            if title is None or "<" in title.group(1):
                unexpected[name] = "no plain-text <title>"
            # A field's aria-describedby (Django sets it for help text) names elements the page has.
            elif missing := described_by_without_element(html):
                unexpected[name] = f"aria-describedby names no element: {', '.join(missing)}"
    assert unexpected == {}, unexpected


TITLE = re.compile(r"<title>(.*?)</title>", re.S)
DESCRIBED_BY = re.compile(r'aria-describedby="([^"]*)"')
ELEMENT_ID = re.compile(r'\sid="([^"]*)"')


def described_by_without_element(html: str) -> list[str]:
    """The ids that an aria-describedby of ``html`` names and no element of it has."""
    ids = set(ELEMENT_ID.findall(html))
    return sorted({name for names in DESCRIBED_BY.findall(html) for name in names.split() if name not in ids})


@pytest.mark.parametrize("who", sorted(STAFF - {Role.ADMINISTRATOR, Role.DATA_PROTECTION_OFFICER}), ids=str)
def test_partner_staff_get_404_for_every_object_of_another_partner(make_user, world, who):
    client = _client_for(who, make_user, world)
    answers = {name: client.get(other(world)).status_code for name, (_, _, other) in MATRIX.items() if other}
    # Where the role may open the page for its own partner, another partner's object is 404 (it does not
    # exist for them); where it may not open the page at all, a 403 says only that, whatever the object.
    expected = {
        name: {404} if who in allowed else {403, 404} for name, (_, allowed, other) in MATRIX.items() if other
    }

    assert {name: code for name, code in answers.items() if code not in expected[name]} == {}, answers


def test_a_portal_user_gets_404_for_every_object_of_another_customer(make_user, world):
    client = _client_for(Role.CUSTOMER, make_user, world)
    answers = {name: client.get(other(world)).status_code for name, (_, _, other) in MATRIX.items() if other}

    assert set(answers.values()) <= {403, 404}, answers


def _admin_changelists() -> list[str]:
    return [f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry]


def test_every_admin_url_is_covered_by_a_registered_model_or_the_index():
    names = {name for name, _ in _walk(get_resolver().url_patterns) if name.startswith("admin:")}
    per_model = {
        f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}"
        for model in admin.site._registry
        for view in ("changelist", "add", "change", "delete", "history", "simple_history")
    }
    site_wide = {
        "admin:index",
        "admin:login",
        "admin:logout",
        "admin:password_change",
        "admin:password_change_done",
        "admin:autocomplete",
        "admin:jsi18n",
        "admin:view_on_site",
        "admin:app_list",
        "admin:None",
        # Django's own extra admin views: the user's password form, a TOTP device's QR code.
        "admin:auth_user_password_change",
        "admin:otp_totp_totpdevice_config",
        "admin:otp_totp_totpdevice_qrcode",
    }

    assert names <= per_model | site_wide, names - per_model - site_wide


@pytest.mark.parametrize("who", ROLES_AND_ANONYMOUS, ids=str)
def test_admin_lists_answer_only_staff_holding_the_models_permission(make_user, world, who):
    client = _client_for(who, make_user, world)
    user = None if who == ANONYMOUS else client.session and _session_user(client)
    unexpected = {}
    for model in admin.site._registry:
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        response = client.get(url)
        opts = model._meta
        may = bool(
            user
            and user.is_staff
            and (
                user.has_perm(f"{opts.app_label}.view_{opts.model_name}")
                or user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
            )
        )
        if may:
            ok = response.status_code == 200
        elif user is None or not user.is_staff:
            ok = response.status_code == 302 and "/login/" in response["Location"]
        else:
            ok = response.status_code == 403
        if not ok:
            unexpected[url] = response.status_code
    assert unexpected == {}, unexpected


def _session_user(client: Client):
    from accounts.models import User

    return User.objects.get(pk=client.session["_auth_user_id"])
