"""The data map: the one register of where personal data lives.

Every model field (in any app) that holds personal or payment data has one ``FieldEntry`` here, grouped
per model in a ``ModelEntry``: its category, lawful basis, retention rule (words for people, anchor and
period for the retention job), what erasure does to it, and why it is held. Fields whose names look
personal but are not (a partner's trading name, a tariff's name) are listed in ``NOT_PERSONAL`` with the
reason, so that every such field has been looked at by a person.

``unmapped_personal_fields()`` walks every installed model (history models included, which inherit their
base model's entry) and names what this register misses; a test keeps it empty, so a new personal field
cannot arrive without a decision about it. The Record of Processing Activities (UK GDPR Art. 30) is built
from the same declarations, with ``PROCESSORS`` and ``ACTIVITIES``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.db import models

from fusion_site.fields import EncryptedTextField


class Category(models.TextChoices):
    CONTACT = "contact", "Contact details"
    IDENTITY = "identity", "Identity"
    FINANCIAL = "financial", "Financial and payment"
    TRAFFIC = "traffic", "Traffic data (calls)"
    SERVICE = "service", "Service and location (lines, premises)"
    MARKETING = "marketing", "Marketing"
    RECRUITMENT = "recruitment", "Recruitment"
    ACCOUNT = "account", "Login account"
    TECHNICAL = "technical", "Technical and log"


class LawfulBasis(models.TextChoices):
    CONTRACT = "contract", "Contract (Art. 6(1)(b))"
    LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (Art. 6(1)(c))"
    LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests (Art. 6(1)(f))"
    CONSENT = "consent", "Consent (Art. 6(1)(a))"


class Anchor(models.TextChoices):
    """The date a retention period counts from."""

    CONTRACT_END = "contract_end", "end of the customer's contract"
    INVOICE_ISSUE = "invoice_issue", "issue of the invoice or credit note"
    CALL_DATE = "call_date", "date of the call"
    CREATED = "created", "creation of the record"
    ACCOUNT_CLOSED = "account_closed", "closure of the login account"
    REQUEST_CLOSED = "request_closed", "completion, rejection or withdrawal of the privacy request"
    PROCESSING_DAY = "processing_day", "Bacs processing day of the Direct Debit file"
    DECISION = "decision", "decision on the job application"
    UNSUBSCRIBED = "unsubscribed", "unsubscribe from the mailing list"


class ErasureAction(models.TextChoices):
    DELETE = "delete", "Delete"
    ANONYMISE = "anonymise", "Anonymise"
    KEEP = "keep", "Keep (legal obligation)"


@dataclass(frozen=True)
class Retention:
    text: str
    anchor: Anchor
    months: int


@dataclass(frozen=True)
class LegalObligation:
    name: str
    citation: str


VAT_RECORDS = LegalObligation(
    "VAT records",
    "VAT Act 1994 Sch. 11 para 6 / HMRC VAT Notice 700 s.19: VAT invoices and credit notes kept "
    "6 years from issue",
)
ACCOUNTABILITY = LegalObligation(
    "Accountability and security of processing",
    "UK GDPR Art. 5(2) and 32: the record of who read personal data, kept 2 years",
)


@dataclass(frozen=True)
class FieldEntry:
    field: str
    category: Category
    basis: LawfulBasis
    retention: Retention
    action: ErasureAction
    purpose: str
    kept_under: LegalObligation | None = None

    def __post_init__(self) -> None:
        if (self.action == ErasureAction.KEEP) != (self.kept_under is not None):
            raise ValueError(f"{self.field}: a kept field names the law that keeps it, and only a kept one.")


@dataclass(frozen=True)
class ModelEntry:
    label: str
    subjects: str
    purpose: str
    fields: tuple[FieldEntry, ...]
    recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Processor:
    key: str
    name: str
    role: str
    purpose: str
    data: str
    location: str


@dataclass(frozen=True)
class ProcessingActivity:
    name: str
    purpose: str
    basis: LawfulBasis
    subjects: str
    models: tuple[str, ...]
    recipients: tuple[str, ...]
    retention: str
    security: str = "Encrypted at rest (Fernet/AES-GCM key ring), role and object permissions, reads logged"


# Retention rules, shared by the fields they govern.
ACCOUNT_DATA = Retention("1 month after the contract ends", Anchor.CONTRACT_END, 1)
# PECR reg. 7 lets traffic data be kept for billing "up to the end of the period during which legal
# proceedings may be brought in respect of payments due or alleged to be due": the dispute period runs from
# the bill, so a call is kept 12 months after the invoice that billed it. A call that was never billed has
# no bill to challenge; it counts from its own date (privacy.retention.calls_past_due does both).
TRAFFIC_DATA = Retention(
    "12 months after the invoice that billed the call (12 months after the call if it was never billed): "
    "until the bill can no longer be challenged (PECR reg. 7)",
    Anchor.INVOICE_ISSUE,
    12,
)
SIX_YEARS_FROM_ISSUE = Retention("6 years from issue", Anchor.INVOICE_ISSUE, 72)
LOGIN_ACCOUNT = Retention("1 month after the login account is closed", Anchor.ACCOUNT_CLOSED, 1)
LOGS = Retention("2 years from the entry", Anchor.CREATED, 24)
LOGIN_ATTEMPTS = Retention(
    "until the lockout's cool-off ends or an administrator unlocks (kept at most 1 month)", Anchor.CREATED, 1
)
IMPORT_LOGS = Retention("3 months from the import", Anchor.CREATED, 3)
WEBSITE_ENQUIRIES = Retention("12 months from receipt", Anchor.CREATED, 12)
JOB_APPLICATIONS = Retention("6 months after the decision", Anchor.DECISION, 6)
MAILING_LIST = Retention("until the subscriber unsubscribes", Anchor.UNSUBSCRIBED, 0)
# One table holds all three kinds; each kind's own rule is above (and in RETENTION_POLICIES).
WEBSITE_SUBMISSIONS = Retention(
    f"enquiries {WEBSITE_ENQUIRIES.text}; job applications {JOB_APPLICATIONS.text}; mailing list "
    f"{MAILING_LIST.text}",
    Anchor.CREATED,
    12,
)
REQUEST_RECORDS = Retention("3 years after the request is closed", Anchor.REQUEST_CLOSED, 36)
# The exact file is what a dispute of the collection is checked against. A payer has 13 months from the
# debit to tell their bank of an unauthorised or wrong payment (Payment Services Regulations 2017
# reg. 74(1)); the processing day is the working day before the debit, so 13 months from it covers that
# window. A later Direct Debit Guarantee indemnity claim (DDICA) itself names the payer, the date and the
# amount, so it is answered from the mandate and the submission's kept facts (serial, processing day,
# SHA-256, count, total), not from the file's text.
DIRECT_DEBIT_FILES = Retention(
    "13 months from the Bacs processing day, then the file's text (every payer's name, sort code and "
    "account number) is cleared; the serial, dates, SHA-256, count and total stay: the time a payer has "
    "to dispute the debit with their bank (Payment Services Regulations 2017 reg. 74(1))",
    Anchor.PROCESSING_DAY,
    13,
)


def _account(
    name: str, category: Category, purpose: str, action: ErasureAction = ErasureAction.DELETE
) -> FieldEntry:
    return FieldEntry(name, category, LawfulBasis.CONTRACT, ACCOUNT_DATA, action, purpose)


def _kept_for_vat(name: str, category: Category, purpose: str) -> FieldEntry:
    return FieldEntry(
        name,
        category,
        LawfulBasis.LEGAL_OBLIGATION,
        SIX_YEARS_FROM_ISSUE,
        ErasureAction.KEEP,
        purpose,
        VAT_RECORDS,
    )


C, ID, FIN, TRAF, SVC = (
    Category.CONTACT,
    Category.IDENTITY,
    Category.FINANCIAL,
    Category.TRAFFIC,
    Category.SERVICE,
)

DATA_MAP: tuple[ModelEntry, ...] = (
    ModelEntry(
        "accounts.User",
        "staff of the provider and partners; customers' portal users",
        "Log in and act in the back office or the customer portal",
        (
            FieldEntry(
                "email",
                Category.ACCOUNT,
                LawfulBasis.CONTRACT,
                LOGIN_ACCOUNT,
                ErasureAction.ANONYMISE,
                "Login name and where account mail goes",
            ),
            FieldEntry(
                "full_name",
                ID,
                LawfulBasis.CONTRACT,
                LOGIN_ACCOUNT,
                ErasureAction.ANONYMISE,
                "Names the person in the pages and the audit trail",
            ),
            FieldEntry(
                "password",
                Category.ACCOUNT,
                LawfulBasis.CONTRACT,
                LOGIN_ACCOUNT,
                ErasureAction.ANONYMISE,
                "Salted hash to check the login; made unusable on erasure",
            ),
            FieldEntry(
                "last_login",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGIN_ACCOUNT,
                ErasureAction.ANONYMISE,
                "Spot dormant and misused accounts",
            ),
        ),
        recipients=("hosting", "mail"),
    ),
    ModelEntry(
        "accounts.Customer",
        "end customers (sole traders and partnerships are natural persons)",
        "Keep the customer's account and bill it",
        (
            _account(
                "name",
                ID,
                "The account's trading name, which may be a person's name",
                ErasureAction.ANONYMISE,
            ),
            _account(
                "billing_ceased_reason",
                ID,
                "Why billing was ceased on objection (free text)",
                ErasureAction.ANONYMISE,
            ),
            _account(
                "processing_restricted_reason",
                ID,
                "Why processing is restricted (free text)",
                ErasureAction.ANONYMISE,
            ),
        ),
        recipients=("hosting",),
    ),
    ModelEntry(
        "accounts.Site",
        "end customers",
        "Premises where lines are installed and where bills are addressed",
        (
            _account("address_line1", SVC, "Installation and billing address"),
            _account("address_line2", SVC, "Installation and billing address"),
            _account("town", SVC, "Installation and billing address"),
            _account("postcode", SVC, "Installation and billing address; line availability checks"),
            _account("postcode_index", SVC, "Blind index to find a customer by postcode"),
        ),
        recipients=("hosting", "wholesale"),
    ),
    ModelEntry(
        "accounts.Contact",
        "people at the customer",
        "Reach the customer about its account, faults and bills",
        (
            _account("name", C, "Whom to ask for"),
            _account("email", C, "Bills and service messages"),
            _account("email_index", C, "Blind index to find a customer by email"),
            _account("phone", C, "Calls about faults and bills"),
            _account("phone_index", C, "Blind index to find a customer by phone"),
        ),
        recipients=("hosting", "mail"),
    ),
    ModelEntry(
        "accounts.NameToken",
        "end customers and people at the customer",
        "Let staff find a customer by a word of its name or of a contact's name (both encrypted)",
        (
            _account(
                "name_index",
                ID,
                "Blind index (keyed hash) of one word of a customer's or contact's name; rebuilt when the "
                "name changes",
            ),
        ),
        recipients=("hosting",),
    ),
    ModelEntry(
        "accounts.Line",
        "end customers",
        "Provide the telephone service and match calls to the customer",
        (
            _account("cli", SVC, "The line's number"),
            _account("cli_index", SVC, "Blind index to match calls and searches to the line"),
        ),
        recipients=("hosting", "wholesale"),
    ),
    ModelEntry(
        "accounts.PaymentDetails",
        "account holders of the customer's bank account",
        "Collect payment by Direct Debit",
        (
            _account("account_holder", FIN, "Direct Debit mandate"),
            _account("sort_code", FIN, "Direct Debit mandate"),
            _account("account_number", FIN, "Direct Debit mandate"),
            _account("mandate_reference", FIN, "Direct Debit mandate"),
        ),
        recipients=("hosting", "bacs"),
    ),
    ModelEntry(
        "accounts.ProvisioningOrder",
        "end customers",
        "Order, change and cease lines with the wholesale provider",
        (
            _account("notes", SVC, "What staff told the gateway (free text)"),
            _account("failure_reason", SVC, "What the gateway answered"),
        ),
        recipients=("hosting", "wholesale"),
    ),
    ModelEntry(
        "accounts.AccessLog",
        "staff who read personal data; the customers whose data they read",
        "Show who read which personal data, when and why",
        (
            FieldEntry(
                "customer_reference",
                Category.TECHNICAL,
                LawfulBasis.LEGAL_OBLIGATION,
                LOGS,
                ErasureAction.KEEP,
                "Which account was read",
                ACCOUNTABILITY,
            ),
            FieldEntry(
                "reason",
                Category.TECHNICAL,
                LawfulBasis.LEGAL_OBLIGATION,
                LOGS,
                ErasureAction.KEEP,
                "Why the staff member needed to read it",
                ACCOUNTABILITY,
            ),
        ),
        recipients=("hosting",),
    ),
    ModelEntry(
        "billing.CallRecord",
        "end customers and the people they call",
        "Bill calls (traffic data)",
        (
            FieldEntry("cli", TRAF, LawfulBasis.CONTRACT, TRAFFIC_DATA, ErasureAction.DELETE, "Calling line"),
            FieldEntry(
                "cli_index",
                TRAF,
                LawfulBasis.CONTRACT,
                TRAFFIC_DATA,
                ErasureAction.DELETE,
                "Blind index matching the call to its line",
            ),
            FieldEntry(
                "dialled_number",
                TRAF,
                LawfulBasis.CONTRACT,
                TRAFFIC_DATA,
                ErasureAction.DELETE,
                "Number called: the called person's data too",
            ),
            FieldEntry(
                "dialled_prefix",
                TRAF,
                LawfulBasis.CONTRACT,
                TRAFFIC_DATA,
                ErasureAction.DELETE,
                "Leading digits of the number called, for rating",
            ),
            FieldEntry(
                "started_at",
                TRAF,
                LawfulBasis.CONTRACT,
                TRAFFIC_DATA,
                ErasureAction.DELETE,
                "When the call was made",
            ),
            FieldEntry(
                "duration_seconds",
                TRAF,
                LawfulBasis.CONTRACT,
                TRAFFIC_DATA,
                ErasureAction.DELETE,
                "How long it lasted",
            ),
        ),
        recipients=("hosting",),
    ),
    ModelEntry(
        "billing.CallImportError",
        "end customers (indirectly: a rejected line of a call file)",
        "Tell staff which lines of a call file were refused",
        (
            FieldEntry(
                "reason",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                IMPORT_LOGS,
                ErasureAction.DELETE,
                "Fixed texts only: the rejected line itself is never stored, so nothing of a person",
            ),
        ),
    ),
    ModelEntry(
        "billing.RecurringCharge",
        "end customers",
        "Bill line rentals",
        (_account("description", FIN, "What the customer rents (may name a line)"),),
    ),
    ModelEntry(
        "billing.OneOffCharge",
        "end customers",
        "Bill one-off charges",
        (_account("description", FIN, "What was charged (free text)"),),
    ),
    ModelEntry(
        "billing.BillRunException",
        "end customers",
        "Tell reviewers why a customer was skipped by a bill run",
        (_account("detail", FIN, "The objection or restriction reason, copied", ErasureAction.ANONYMISE),),
    ),
    ModelEntry(
        "billing.DirectDebitSubmission",
        "account holders of the customers' bank accounts (every payer collected in the file)",
        "Submit a bill run's Direct Debit collections to Bacs once, and show what was submitted",
        (
            FieldEntry(
                "content",
                FIN,
                LawfulBasis.CONTRACT,
                DIRECT_DEBIT_FILES,
                # The row stays (its facts are not personal); the text goes for any payer's erasure.
                ErasureAction.ANONYMISE,
                "The Bacs file as submitted, so a repeated download cannot collect twice",
            ),
        ),
        recipients=("hosting", "bacs"),
    ),
    ModelEntry(
        "billing.Invoice",
        "end customers",
        "Issue VAT invoices",
        (
            _kept_for_vat("customer_name", FIN, "Customer's name as invoiced (VAT Notice 700 s.16.3)"),
            _kept_for_vat("customer_address", FIN, "Customer's address as invoiced (VAT Notice 700 s.16.3)"),
            _kept_for_vat("customer_reference", FIN, "Account the invoice was issued to"),
        ),
        recipients=("hosting", "mail", "hmrc"),
    ),
    ModelEntry(
        "billing.InvoiceLine",
        "end customers",
        "Describe the supply on a VAT invoice",
        (_kept_for_vat("description", FIN, "Description of the services supplied"),),
        recipients=("hosting", "hmrc"),
    ),
    ModelEntry(
        "billing.CreditNote",
        "end customers",
        "Issue VAT credit notes",
        (_kept_for_vat("reason", FIN, "Why the credit was given"),),
        recipients=("hosting", "hmrc"),
    ),
    ModelEntry(
        "admin.LogEntry",
        "staff; the customers whose records they changed",
        "The admin's own record of changes",
        (
            FieldEntry(
                "object_repr",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGS,
                ErasureAction.ANONYMISE,
                "Names the changed record (a customer's name, say)",
            ),
            FieldEntry(
                "change_message",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGS,
                ErasureAction.ANONYMISE,
                "Which fields changed",
            ),
        ),
    ),
    ModelEntry(
        "sessions.Session",
        "logged-in users",
        "Keep a user logged in",
        (
            FieldEntry(
                "session_data",
                Category.TECHNICAL,
                LawfulBasis.CONTRACT,
                Retention("2 weeks from login", Anchor.CREATED, 1),
                ErasureAction.DELETE,
                "Signed session state (user id); expires on its own, and a deactivated user's "
                "session no longer authenticates",
            ),
        ),
    ),
    ModelEntry(
        "privacy.PrivacyRequest",
        "people exercising their data protection rights (customers, their contacts, the public)",
        "Answer data subject requests within the statutory time and show that we did",
        (
            FieldEntry(
                "subject_email",
                Category.CONTACT,
                LawfulBasis.LEGAL_OBLIGATION,
                REQUEST_RECORDS,
                ErasureAction.ANONYMISE,
                "Where to send identity codes, notices and the answer",
            ),
            FieldEntry(
                "subject_email_index",
                Category.CONTACT,
                LawfulBasis.LEGAL_OBLIGATION,
                REQUEST_RECORDS,
                ErasureAction.ANONYMISE,
                "Find a subject's earlier requests (duplicates)",
            ),
            FieldEntry(
                "details",
                Category.IDENTITY,
                LawfulBasis.LEGAL_OBLIGATION,
                REQUEST_RECORDS,
                ErasureAction.ANONYMISE,
                "What the subject asked for",
            ),
        ),
        recipients=("hosting", "mail"),
    ),
    ModelEntry(
        "privacy.WebsiteSubmission",
        "members of the public: enquirers, mailing list subscribers, job applicants",
        "Answer enquiries, send the newsletter to those who asked for it, consider job applications",
        (
            FieldEntry(
                "name",
                Category.CONTACT,
                LawfulBasis.CONSENT,
                WEBSITE_SUBMISSIONS,
                ErasureAction.DELETE,
                "Address the person by name",
            ),
            FieldEntry(
                "email",
                Category.CONTACT,
                LawfulBasis.CONSENT,
                WEBSITE_SUBMISSIONS,
                ErasureAction.DELETE,
                "Reply, confirm a subscription, send the newsletter",
            ),
            FieldEntry(
                "email_index",
                Category.CONTACT,
                LawfulBasis.CONSENT,
                WEBSITE_SUBMISSIONS,
                ErasureAction.DELETE,
                "Find a person's earlier submissions (duplicates, unsubscribe)",
            ),
            FieldEntry(
                "message",
                Category.CONTACT,
                LawfulBasis.CONSENT,
                WEBSITE_SUBMISSIONS,
                ErasureAction.DELETE,
                "The enquiry or the covering note of an application",
            ),
            FieldEntry(
                "cv",
                Category.RECRUITMENT,
                LawfulBasis.CONSENT,
                WEBSITE_SUBMISSIONS,
                ErasureAction.DELETE,
                "Consider the application (the CV file, outside public storage)",
            ),
        ),
        recipients=("hosting", "mail"),
    ),
    ModelEntry(
        "axes.AccessAttempt",
        "people who tried to log in (staff, portal users, attackers)",
        "Lock out repeated failed logins by username and by address (security of processing)",
        (
            FieldEntry(
                "username",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGIN_ATTEMPTS,
                ErasureAction.DELETE,
                "Which account was tried",
            ),
            FieldEntry(
                "ip_address",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGIN_ATTEMPTS,
                ErasureAction.DELETE,
                "Where the attempts came from",
            ),
        ),
        recipients=("hosting",),
    ),
    ModelEntry(
        "axes.AccessFailureLog",
        "people who tried to log in (staff, portal users, attackers)",
        "Lock out repeated failed logins by username and by address (security of processing)",
        (
            FieldEntry(
                "username",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGIN_ATTEMPTS,
                ErasureAction.DELETE,
                "Which account was tried",
            ),
            FieldEntry(
                "ip_address",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGIN_ATTEMPTS,
                ErasureAction.DELETE,
                "Where the attempts came from",
            ),
        ),
        recipients=("hosting",),
    ),
    ModelEntry(
        "axes.AccessLog",
        "people who tried to log in (staff, portal users, attackers)",
        "Lock out repeated failed logins by username and by address (security of processing)",
        (
            FieldEntry(
                "username",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGIN_ATTEMPTS,
                ErasureAction.DELETE,
                "Which account was tried",
            ),
            FieldEntry(
                "ip_address",
                Category.TECHNICAL,
                LawfulBasis.LEGITIMATE_INTERESTS,
                LOGIN_ATTEMPTS,
                ErasureAction.DELETE,
                "Where the attempts came from",
            ),
        ),
        recipients=("hosting",),
    ),
)

# Fields whose names look personal but hold no personal data, and why.
NOT_PERSONAL: dict[str, str] = {
    "otp_totp.TOTPDevice.name": 'The label of an authenticator app ("authenticator"), set by the product',
    "otp_static.StaticDevice.name": "The label of a set of recovery codes, set by the product",
    "auth.Permission.name": "A permission's description",
    "auth.Group.name": "A role's or partner group's name",
    "accounts.Partner.name": "A reseller company's name: organisation data",
    "billing.Tariff.name": "A price plan's name",
    "billing.CallImport.file_name": "The name staff gave an uploaded file; the file is deleted once read",
    "billing.DirectDebitSubmission.file_name": "Made from the partner's code, the billing month and the "
    "serial; names no payer",
    "billing.PartnerBillingProfile.legal_name": "The supplier (a partner company) as printed on invoices",
    "billing.PartnerBillingProfile.address": "The supplier's business address",
    "billing.PartnerBillingProfile.bacs_sort_code": "The partner company's own collection account",
    "billing.PartnerBillingProfile.bacs_account_number": "The partner company's own collection account",
    "billing.PartnerBillingProfile.bacs_account_name": "The partner company's own collection account",
    "billing.Invoice.supplier_name": "The supplier (a partner company), snapshot",
    "billing.Invoice.supplier_address": "The supplier's business address, snapshot",
}

PROCESSORS: tuple[Processor, ...] = (
    Processor(
        "hosting",
        "Cloud hosting provider (UK region)",
        "processor",
        "Runs the application, PostgreSQL, Redis and file storage",
        "All categories, encrypted at rest",
        "United Kingdom",
    ),
    Processor(
        "mail",
        "Transactional mail carrier",
        "processor",
        "Sends bills, login and service messages",
        "Contact email, names, invoice documents",
        "United Kingdom / EEA (adequacy regulations)",
    ),
    Processor(
        "bacs",
        "Bacs approved bureau",
        "processor",
        "Submits Direct Debit collections (Standard 18 files)",
        "Account holder, sort code, account number, mandate reference, amounts",
        "United Kingdom",
    ),
    Processor(
        "wholesale",
        "Wholesale line provider (line gateway, accounts/gateways.py)",
        "processor",
        "Provides, modifies and ceases lines",
        "Line numbers, installation addresses, order notes",
        "United Kingdom",
    ),
    Processor(
        "hmrc",
        "HM Revenue & Customs",
        "recipient (controller in its own right)",
        "VAT inspection on request",
        "VAT invoices and credit notes",
        "United Kingdom",
    ),
)

ACTIVITIES: tuple[ProcessingActivity, ...] = (
    ProcessingActivity(
        "Customer accounts and Site Details",
        "Provide and manage the telephone service under contract",
        LawfulBasis.CONTRACT,
        "End customers and their contacts",
        (
            "accounts.Customer",
            "accounts.Site",
            "accounts.Contact",
            "accounts.NameToken",
            "accounts.Line",
            "accounts.ProvisioningOrder",
        ),
        ("hosting", "mail", "wholesale"),
        ACCOUNT_DATA.text,
    ),
    ProcessingActivity(
        "Billing and payment",
        "Rate calls, bill customers and collect payment",
        LawfulBasis.CONTRACT,
        "End customers, account holders, people called",
        (
            "billing.CallRecord",
            "billing.RecurringCharge",
            "billing.OneOffCharge",
            "accounts.PaymentDetails",
            "billing.DirectDebitSubmission",
            "billing.BillRunException",
            "billing.CallImportError",
        ),
        ("hosting", "bacs"),
        f"Calls: {TRAFFIC_DATA.text}; account data: {ACCOUNT_DATA.text}; Direct Debit files: "
        f"{DIRECT_DEBIT_FILES.text}",
    ),
    ProcessingActivity(
        "VAT records",
        "Keep the invoices and credit notes the law requires",
        LawfulBasis.LEGAL_OBLIGATION,
        "End customers",
        ("billing.Invoice", "billing.InvoiceLine", "billing.CreditNote"),
        ("hosting", "mail", "hmrc"),
        SIX_YEARS_FROM_ISSUE.text,
    ),
    ProcessingActivity(
        "Logins and audit",
        "Authenticate users and show who did and read what",
        LawfulBasis.LEGITIMATE_INTERESTS,
        "Staff and portal users",
        ("accounts.User", "accounts.AccessLog", "admin.LogEntry", "sessions.Session"),
        ("hosting",),
        f"Accounts: {LOGIN_ACCOUNT.text}; logs: {LOGS.text}",
    ),
    ProcessingActivity(
        "Data subject requests",
        "Receive, verify, carry out and record requests to exercise data protection rights",
        LawfulBasis.LEGAL_OBLIGATION,
        "Customers, their contacts and members of the public",
        ("privacy.PrivacyRequest", "privacy.PrivacyRequestEvent", "privacy.ErasureRecord"),
        ("hosting", "mail"),
        REQUEST_RECORDS.text,
    ),
    ProcessingActivity(
        "Public website",
        "Answer enquiries, run the mailing list (double opt-in), receive job applications, record cookie "
        "choices without identifying the visitor",
        LawfulBasis.CONSENT,
        "Members of the public, job applicants",
        ("privacy.WebsiteSubmission", "privacy.CookieConsentRecord"),
        ("hosting", "mail"),
        WEBSITE_SUBMISSIONS.text,
    ),
)


# Words that, as a part of a field's name, mark it as probably personal.
PERSONAL_NAME_PARTS = frozenset(
    {
        "email",
        "phone",
        "mobile",
        "name",
        "address",
        "postcode",
        "town",
        "cli",
        "ip",
        "dialled",
        "holder",
        "account",
        "sort",
        "iban",
        "birth",
        "dob",
        "surname",
        "forename",
        "ni",
        "passport",
    }
)
_FRAMEWORK_FIELDS = frozenset(
    {"history_change_reason", "history_type", "history_date", "history_id", "history_user"}
)


def model_entry(label: str) -> ModelEntry | None:
    return next((entry for entry in DATA_MAP if entry.label == label), None)


def field_entry(label: str, field_name: str) -> FieldEntry | None:
    entry = model_entry(label)
    return next((f for f in entry.fields if f.field == field_name), None) if entry else None


def iter_fields(data_map: Iterable[ModelEntry] | None = None) -> Iterator[tuple[ModelEntry, FieldEntry]]:
    for entry in DATA_MAP if data_map is None else data_map:
        for item in entry.fields:
            yield entry, item


def fields_with_action(action: ErasureAction, data_map: Iterable[ModelEntry] | None = None) -> list[str]:
    """``app.Model.field`` of every mapped field erasure treats with ``action``."""
    return [f"{entry.label}.{item.field}" for entry, item in iter_fields(data_map) if item.action == action]


def base_model(model: type[models.Model]) -> type[models.Model]:
    """The model a simple-history table copies (itself for ordinary models)."""
    return getattr(model, "instance_type", None) or model


def _name_looks_personal(name: str) -> bool:
    return bool(PERSONAL_NAME_PARTS & set(re.split(r"_+", name.lower())))


def _is_blind_index(model: type[models.Model], field_name: str) -> bool:
    return field_name in getattr(model, "blind_indexes", {}) or field_name.endswith("_index")


def personal_fields_of(model: type[models.Model]) -> list[str]:
    """The concrete fields of ``model`` that the coverage check treats as personal."""
    base = base_model(model)
    found = []
    for model_field in model._meta.concrete_fields:
        if model_field.name in _FRAMEWORK_FIELDS:
            continue
        if (
            isinstance(model_field, EncryptedTextField)
            or _is_blind_index(base, model_field.name)
            or _name_looks_personal(model_field.name)
        ):
            found.append(model_field.name)
    return found


def unmapped_personal_fields(
    data_map: Iterable[ModelEntry] | None = None,
    not_personal: dict[str, str] | None = None,
    candidates: Iterable[type[models.Model]] | None = None,
) -> list[str]:
    """Every personal-looking field of every installed model (or of ``candidates``) that neither the data
    map nor ``NOT_PERSONAL`` accounts for, as ``app.Model.field`` (history models under their own label)."""
    reviewed = set(NOT_PERSONAL if not_personal is None else not_personal)
    reviewed |= {f"{entry.label}.{item.field}" for entry, item in iter_fields(data_map)}
    missing = []
    for model in apps.get_models() if candidates is None else candidates:
        base_label = base_model(model)._meta.label
        for name in personal_fields_of(model):
            if f"{base_label}.{name}" not in reviewed:
                missing.append(f"{model._meta.label}.{name}")
    return sorted(missing)


# The rule behind each row of privacy.RetentionPolicy (the key is the retention job's handler): the
# policies the job runs must say what this map says. The migrations seed fixed values (a migration must
# do the same thing whatever this file says later); tests/privacy/test_retention.py compares the rows
# with these.
RETENTION_POLICIES: dict[str, Retention] = {
    "customer_account": ACCOUNT_DATA,
    "invoices": SIX_YEARS_FROM_ISSUE,
    "call_records": TRAFFIC_DATA,
    "website_enquiries": WEBSITE_ENQUIRIES,
    "job_applications": JOB_APPLICATIONS,
    "mailing_list": MAILING_LIST,
    "privacy_requests": REQUEST_RECORDS,
    "access_logs": LOGS,
    "direct_debit_files": DIRECT_DEBIT_FILES,
}
