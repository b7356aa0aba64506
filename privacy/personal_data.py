"""The personal data of privacy's own models (``fusion_site.personal_data``): privacy requests, portability
exports and the public website's submissions, and what stops a customer's erasure (a legal hold).

Erasure runs these statements first: a request may name a contact, so its subject's details go before
accounts deletes the contacts. The request records themselves stay, as the law asks, without the
subject's email, words or contact.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from django.db.models import BigIntegerField, Case, F, OuterRef, Q, When

from fusion_site.personal_data import (
    Anchor,
    Category,
    CustomerChecks,
    Declaration,
    Erase,
    ErasureAction,
    LawfulBasis,
    LegalObligation,
    PersonalField,
    Retention,
    first_owner,
)
from privacy.models import DataExport, LegalHold, PrivacyRequest

ERASED_TEXT = "(erased)"

REQUEST_RECORDS = Retention(
    "3 years after the request is closed", Anchor.REQUEST_CLOSED, 36, "privacy_requests"
)
WEBSITE_ENQUIRIES = Retention("12 months from receipt", Anchor.CREATED, 12, "website_enquiries")
JOB_APPLICATIONS = Retention("6 months after the decision", Anchor.DECISION, 6, "job_applications")
MAILING_LIST = Retention("until the subscriber unsubscribes", Anchor.UNSUBSCRIBED, 0, "mailing_list")
# The ICO's guidance keeps no fixed period; six years covers a claim in contract or tort (Limitation Act
# 1980 ss.2 and 5) about the breach. Nothing deletes them yet: the DPO reviews the register.
BREACH_RECORDS = Retention("6 years from the record of the incident", Anchor.CREATED, 72)
BREACH_REGISTER = LegalObligation(
    "Record of personal data breaches",
    "UK GDPR Art. 33(5): document every breach, its effects and the remedial action taken",
)
EXPORTS = Retention("until downloaded or expired (days)", Anchor.CREATED, 1)
OWNER = "erasure_owner"


def _requests(customer_ids: Sequence[int]) -> Any:
    return PrivacyRequest.objects.filter(
        Q(customer_id__in=customer_ids) | Q(contact__customer_id__in=customer_ids)
    )


def _request_owner(customer_ids: Sequence[int]) -> Case:
    return Case(
        When(customer_id__in=customer_ids, then=F("customer_id")),
        default=F("contact__customer_id"),
        output_field=BigIntegerField(),
    )


def _subject_erased(contact: str) -> Any:
    return lambda ids, now: {
        "subject_email": "",
        "subject_email_index": "",
        "details": ERASED_TEXT,
        contact: None,
        "subject_erased_at": now,
    }


def _blockers(customer_ids: Collection[int]) -> dict[int, list[str]]:
    """A legal hold keeps the data while it lasts."""
    blockers: dict[int, list[str]] = {}
    holds = LegalHold.objects.filter(customer_id__in=customer_ids, lifted_at__isnull=True).order_by("id")
    for hold in holds:
        blockers.setdefault(hold.customer_id, []).append(
            f"Legal hold ({hold.get_kind_display().lower()}, review on {hold.review_on:%d %B %Y}): the "
            "data must be kept while it lasts; the DPO lifts the hold before erasing."
        )
    return blockers


DECLARATIONS: tuple[Declaration, ...] = (
    Declaration(
        "privacy.PrivacyRequest",
        "people exercising their data protection rights (customers, their contacts, the public)",
        "Answer data subject requests within the statutory time and show that we did",
        ErasureAction.ANONYMISE,
        (REQUEST_RECORDS,),
        LawfulBasis.LEGAL_OBLIGATION,
        (
            PersonalField(
                "subject_email", Category.CONTACT, "Where to send identity codes, notices and the answer"
            ),
            PersonalField(
                "subject_email_index", Category.CONTACT, "Find a subject's earlier requests (duplicates)"
            ),
            PersonalField("details", Category.IDENTITY, "What the subject asked for"),
        ),
        ("hosting", "mail"),
        erasure=(
            Erase(
                _requests,
                "Privacy requests of the customer: the subject's email, words and contact",
                _subject_erased("contact"),
                Q(subject_erased_at__isnull=True),
                owner=_request_owner,
            ),
            Erase(
                lambda ids: PrivacyRequest.history.filter(id__in=_requests(ids).values("pk")),
                "History of the customer's privacy requests",
                _subject_erased("contact_id"),
                Q(subject_erased_at__isnull=True),
                owner=lambda ids: first_owner(
                    _requests(ids).filter(pk=OuterRef("id")).annotate(**{OWNER: _request_owner(ids)}), OWNER
                ),
            ),
        ),
    ),
    Declaration(
        "privacy.DataExport",
        "end customers",
        "Build the customer's portability file (the file itself lives in private storage)",
        ErasureAction.DELETE,
        (EXPORTS,),
        LawfulBasis.LEGAL_OBLIGATION,
        erasure=(
            Erase(
                lambda ids: DataExport.objects.filter(customer_id__in=ids),
                "Portability exports (their files go after commit)",
            ),
            Erase(
                lambda ids: DataExport.history.filter(customer_id__in=ids), "History of portability exports"
            ),
        ),
    ),
    Declaration(
        "privacy.WebsiteSubmission",
        "members of the public: enquirers, mailing list subscribers, job applicants",
        "Answer enquiries, send the newsletter to those who asked for it, consider job applications",
        ErasureAction.DELETE,
        # One table holds three kinds of record, each with its own rule and job.
        (WEBSITE_ENQUIRIES, JOB_APPLICATIONS, MAILING_LIST),
        LawfulBasis.CONSENT,
        (
            PersonalField("name", Category.CONTACT, "Address the person by name"),
            PersonalField("email", Category.CONTACT, "Reply, confirm a subscription, send the newsletter"),
            PersonalField(
                "email_index",
                Category.CONTACT,
                "Find a person's earlier submissions (duplicates, unsubscribe)",
            ),
            PersonalField("message", Category.CONTACT, "The enquiry or the covering note of an application"),
            PersonalField(
                "cv", Category.RECRUITMENT, "Consider the application (the CV file, outside public storage)"
            ),
        ),
        ("hosting", "mail"),
    ),
    Declaration(
        "privacy.BreachIncident",
        "staff who handle, decide on or are suspected in an incident (the customers affected are found "
        "from the access log when needed, not copied here)",
        "Keep the register of personal data breaches and show the ICO what was decided, by whom and when",
        ErasureAction.KEEP,
        (BREACH_RECORDS,),
        LawfulBasis.LEGAL_OBLIGATION,
        (
            PersonalField("handler", Category.ACCOUNT, "Who handles the incident"),
            PersonalField("suspect", Category.ACCOUNT, "Whose access the evidence is read for"),
        ),
        ("hosting",),
        kept_under=BREACH_REGISTER,
    ),
)

CHECKS = CustomerChecks(blockers=_blockers)
