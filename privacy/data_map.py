"""The data map: the one register of where personal data lives, read from the apps' declarations.

Each app declares its own models' personal data (``accounts/personal_data.py``, ``billing/personal_data.py``,
``privacy/personal_data.py``, registered in ``fusion_site.personal_data``): every field that holds personal
or payment data, its category, lawful basis, retention rule (words for people, anchor and period for the
retention job), what erasure does to it, and why it is held. The same declarations drive the erasure, the
retention job and the access and portability exports, so the register cannot say one thing while the code
does another. Fields whose names look personal but are not (a partner's trading name, a tariff's name) are
listed in ``NOT_PERSONAL`` with the reason, so that every such field has been looked at by a person.

``unmapped_personal_fields()`` walks every installed model (history models included, which inherit their
base model's entry) and names what this register misses; a test keeps it empty, so a new personal field
cannot arrive without a decision about it. The Record of Processing Activities (UK GDPR Art. 30) is built
from the same declarations, with ``ACTIVITIES`` and the processors register (``privacy.Processor``, edited by
the DPO; the declarations' ``recipients`` name its keys).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import models
from django.db.models import QuerySet

from accounts.personal_data import ACCESS_LOGS, ACCOUNT_DATA, ACCOUNTABILITY, LOGIN_ACCOUNT
from billing.personal_data import DIRECT_DEBIT_FILES, SIX_YEARS_FROM_ISSUE, TRAFFIC_DATA, VAT_RECORDS
from fusion_site import personal_data
from fusion_site.fields import EncryptedTextField
from fusion_site.personal_data import (
    Anchor,
    Category,
    Declaration,
    ErasureAction,
    LawfulBasis,
    LegalObligation,
    Retention,
)
from privacy.personal_data import (
    BREACH_RECORDS,
    JOB_APPLICATIONS,
    MAILING_LIST,
    REQUEST_RECORDS,
    WEBSITE_ENQUIRIES,
)

__all__ = [
    "ACCOUNTABILITY",
    "ACCOUNT_DATA",
    "VAT_RECORDS",
    "Anchor",
    "Category",
    "ErasureAction",
    "LawfulBasis",
    "LegalObligation",
    "Retention",
]

# The accounts' logs, under the name the register has always used.
LOGS = ACCESS_LOGS


@dataclass(frozen=True)
class FieldEntry:
    field: str
    category: Category
    basis: LawfulBasis
    retention: Retention
    action: ErasureAction
    purpose: str
    kept_under: LegalObligation | None = None
    # Every rule of a table that holds several kinds of record (``retention`` then says them all).
    rules: tuple[Retention, ...] = ()

    def __post_init__(self) -> None:
        if (self.action == ErasureAction.KEEP) != (self.kept_under is not None):
            raise ValueError(f"{self.field}: a kept field names the law that keeps it, and only a kept one.")

    @property
    def retention_rules(self) -> tuple[Retention, ...]:
        return self.rules or (self.retention,)


@dataclass(frozen=True)
class ModelEntry:
    label: str
    subjects: str
    purpose: str
    fields: tuple[FieldEntry, ...]
    recipients: tuple[str, ...] = ()


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


def retention_of(declaration: Declaration) -> Retention:
    """The declaration's rule, or for a table of several kinds of record one rule that says them all (its
    anchor and period are the first kind's; ``FieldEntry.rules`` gives each)."""
    first, *others = declaration.retention
    if not others:
        return first
    return Retention("; ".join(rule.text for rule in declaration.retention), first.anchor, first.months)


def model_entry_of(declaration: Declaration) -> ModelEntry:
    retention = retention_of(declaration)
    rules = declaration.retention if len(declaration.retention) > 1 else ()
    return ModelEntry(
        declaration.model,
        declaration.subjects,
        declaration.purpose,
        tuple(
            FieldEntry(
                item.name,
                item.category,
                item.basis or declaration.basis,
                retention,
                declaration.action,
                item.purpose,
                declaration.kept_under,
                rules,
            )
            for item in declaration.fields
        ),
        declaration.recipients,
    )


def rows_of(label: str, customer: Any) -> QuerySet[Any]:
    """The customer's rows of a declared model, as the subject's own copy reads them (issued invoices,
    calls attributed to the account)."""
    declaration = personal_data.declaration(label)
    if declaration is None or declaration.of_customer is None:
        raise LookupError(f"{label} declares no rows of a customer.")
    return declaration.of_customer(customer)


def build_data_map() -> tuple[ModelEntry, ...]:
    """One entry per declared model that holds a personal field, in the apps' order."""
    return tuple(model_entry_of(item) for item in personal_data.declarations() if item.fields)


# Declared for readers and type checkers; the values come from ``__getattr__`` below.
DATA_MAP: tuple[ModelEntry, ...]
RETENTION_POLICIES: dict[str, Retention]


def __getattr__(name: str) -> object:
    # Built when first read, not at import: the apps register their declarations in ready(). A test may
    # replace DATA_MAP (monkeypatch sets the attribute, which then wins over this).
    if name == "DATA_MAP":
        return build_data_map()
    if name == "RETENTION_POLICIES":
        return retention_policies()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _current_map() -> tuple[ModelEntry, ...]:
    data_map: tuple[ModelEntry, ...] = getattr(sys.modules[__name__], "DATA_MAP")  # noqa: B009
    return data_map


def retention_policies() -> dict[str, Retention]:
    """The rule behind each row of ``privacy.RetentionPolicy`` (the key is the retention job's handler),
    from the declarations: the policies the job runs must say what the declarations say. The migrations
    seed fixed values (a migration must do the same thing whatever the code says later); the declarations'
    test compares the rows with these."""
    rules: dict[str, Retention] = {}
    for item in personal_data.declarations():
        for rule in item.retention:
            if rule.policy:
                rules.setdefault(rule.policy, rule)
    return rules


WEBSITE_SUBMISSIONS_TEXT = "; ".join(
    rule.text for rule in (WEBSITE_ENQUIRIES, JOB_APPLICATIONS, MAILING_LIST)
)

# Fields whose names look personal but hold no personal data, and why.
NOT_PERSONAL: dict[str, str] = {
    "otp_totp.TOTPDevice.name": 'The label of an authenticator app ("authenticator"), set by the product',
    "otp_static.StaticDevice.name": "The label of a set of recovery codes, set by the product",
    "auth.Permission.name": "A permission's description",
    "auth.Group.name": "A role's or partner group's name",
    "accounts.Partner.name": "A reseller company's name: organisation data",
    "accounts.GrantTally.holder": 'Whether a count of grants is a group\'s or a user\'s ("group", "user")',
    "accounts.GrantTally.holder_id": "The id of the group or user whose grants are counted: a number and "
    "a count, no value of the person; a deleted user's count falls to zero with their grants",
    "billing.Tariff.name": "A price plan's name",
    "billing.Product.name": "A line rental product's name in a partner's catalogue",
    "billing.CallImport.file_name": "The name staff gave an uploaded file; the file is deleted once read",
    "billing.BacsReportImport.file_name": "The name of the ARUDD or ADDACS file Bacs published, as uploaded "
    "(it names the report, not a payer)",
    "billing.DirectDebitSubmission.file_name": "Made from the partner's code, the billing month and the "
    "serial; names no payer",
    "billing.PartnerBillingProfile.legal_name": "The supplier (a partner company) as printed on invoices",
    "billing.PartnerBillingProfile.address": "The supplier's business address",
    "billing.PartnerBillingProfile.bacs_sort_code": "The partner company's own collection account",
    "billing.PartnerBillingProfile.bacs_account_number": "The partner company's own collection account",
    "billing.PartnerBillingProfile.bacs_account_name": "The partner company's own collection account",
    "billing.Invoice.supplier_name": "The supplier (a partner company), snapshot",
    "billing.Invoice.supplier_address": "The supplier's business address, snapshot",
    "privacy.Processor.name": "An organisation's name: a processor or recipient in the processors register",
}

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
        WEBSITE_SUBMISSIONS_TEXT,
    ),
    ProcessingActivity(
        "Personal data breaches",
        "Record every breach, decide on telling the ICO and the people affected, and show what was done "
        "(UK GDPR Art. 33 and 34)",
        LawfulBasis.LEGAL_OBLIGATION,
        "Staff who handle an incident or whose access is examined; the customers affected are found from "
        "the access log when needed, not copied into the register",
        ("privacy.BreachIncident",),
        ("hosting",),
        BREACH_RECORDS.text,
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
    return next((entry for entry in _current_map() if entry.label == label), None)


def field_entry(label: str, field_name: str) -> FieldEntry | None:
    entry = model_entry(label)
    return next((f for f in entry.fields if f.field == field_name), None) if entry else None


def iter_fields(data_map: Iterable[ModelEntry] | None = None) -> Iterator[tuple[ModelEntry, FieldEntry]]:
    for entry in _current_map() if data_map is None else data_map:
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


def declaration_problems(
    declared: Iterable[Declaration] | None = None,
    candidates: Iterable[type[models.Model]] | None = None,
) -> list[str]:
    """Every model (of ``candidates``, else every installed one) with a personal field that no declaration
    covers, and every model declared more than once: each must have exactly one declaration, saying how
    its rows are found, erased or kept, and for how long. A history model is covered by its base model's."""
    items = list(personal_data.declarations() if declared is None else declared)
    times = Counter(item.model for item in items)
    problems = [f"{label}: declared {count} times" for label, count in sorted(times.items()) if count > 1]
    for model in apps.get_models() if candidates is None else candidates:
        label = base_model(model)._meta.label
        unreviewed = [name for name in personal_fields_of(model) if f"{label}.{name}" not in NOT_PERSONAL]
        if unreviewed and label not in times:
            problems.append(f"{model._meta.label}: no declaration for {', '.join(unreviewed)}")
    return sorted(set(problems))
