"""Completing an approved request and carrying it out: erasure, portability, restriction (and lifting it),
objection to billing or to marketing."""

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import Contact, User
from accounts.services import customer_lift_processing_restriction, customer_restrict_processing
from billing.services.billing_cease import customer_cease_billing
from billing.services.dunning import dunning_run_for_customer
from fusion_site.models import save_with_actor
from privacy import selectors
from privacy.erasure import customer_erase
from privacy.models import (
    PrivacyPermission,
    PrivacyRequest,
    State,
    SuppressionEntry,
)
from privacy.services.exports import portability_export_create
from privacy.services.requests.workflow import (
    ONLY_A_DPO_ERASES,
    Kind,
    PrivacyRequestError,
    check_step,
    email_subject,
    lock_to_work_giving,
    privacy_request_refusal,
    record_event,
    refuse,
    take_closing_step,
)


@transaction.atomic
def privacy_request_complete(*, privacy_request: PrivacyRequest, actor: User, reason: str) -> PrivacyRequest:
    """Close an approved request with its outcome and carry it out (``privacy_request_execute``)."""
    privacy_request, reason = lock_to_work_giving(
        privacy_request, actor, reason, "the outcome (what was done), without personal data"
    )
    check_step(privacy_request, "complete")
    refuse(privacy_request_refusal(actor=actor, privacy_request=privacy_request, action="complete"))
    take_closing_step(privacy_request, action="complete", actor=actor, reason=reason)
    privacy_request_execute(privacy_request=privacy_request, actor=actor)
    email_subject(
        privacy_request,
        subject="completed",
        body=f"We have completed your request {privacy_request.reference}.\n\n{reason}",
    )
    return privacy_request


# Carrying requests out ---------------------------------------------------------------------------


def privacy_request_execute(*, privacy_request: PrivacyRequest, actor: User) -> None:
    """Carry out a completed request. Restriction restricts the customer's processing; objection ceases
    billing or suppresses marketing; erasure erases the customer (privacy.erasure, which the DPO previewed
    before a second person approved); portability builds the export. Access and rectification are
    answered by people (the Art. 15 report and the normal edit screens), so completing them records the
    outcome only.

    Idempotent: a customer already restricted, ceased or erased is left as it is (erasure runs again
    safely and records a repeat)."""
    customer = privacy_request.customer
    why = f"Privacy request {privacy_request.reference} ({privacy_request.get_kind_display().lower()})"
    if privacy_request.kind == Kind.ERASURE:
        if customer is None:
            raise PrivacyRequestError("An erasure request needs the customer whose data is erased.")
        if not actor.has_perm(PrivacyPermission.ERASE_CUSTOMER):
            raise PermissionDenied(ONLY_A_DPO_ERASES)
        customer_erase(
            customer=customer, actor=actor, reason=why, request_reference=privacy_request.reference
        )
    elif privacy_request.kind == Kind.PORTABILITY:
        if customer is None:
            raise PrivacyRequestError("A portability request needs the customer whose data is exported.")
        # Built by a task once this commits; the subject downloads it from the portal, staff from the
        # customer's exports page, through a link that expires and is logged.
        portability_export_create(customer=customer, actor=actor, request_reference=privacy_request.reference)
    elif privacy_request.kind == Kind.RESTRICTION:
        if customer is None:
            raise PrivacyRequestError(
                "A restriction request needs the customer whose processing is restricted."
            )
        if not customer.is_processing_restricted:
            customer_restrict_processing(customer=customer, actor=actor, reason=why)
    elif privacy_request.kind == Kind.OBJECTION:
        if privacy_request.objection_scope == PrivacyRequest.ObjectionScope.PROCESSING:
            if customer is None:
                raise PrivacyRequestError(
                    "An objection to billing needs the customer whose billing is ceased."
                )
            if not customer.is_billing_ceased:
                customer_cease_billing(customer=customer, actor=actor, reason=why)
        else:
            _suppress_marketing(privacy_request)


def _suppress_marketing(privacy_request: PrivacyRequest) -> int:
    """Add the subject's emails and phone numbers to the suppression list (HMACs only)."""
    values: list[tuple[str, str]] = []
    if privacy_request.subject_email:
        values.append((SuppressionEntry.Channel.EMAIL, privacy_request.subject_email))
    contacts: list[Contact] = []
    if privacy_request.contact is not None:
        contacts = [privacy_request.contact]
    elif privacy_request.customer_id is not None:
        contacts = list(Contact.objects.filter(customer_id=privacy_request.customer_id))
    for contact in contacts:
        values += [
            (SuppressionEntry.Channel.EMAIL, contact.email),
            (SuppressionEntry.Channel.PHONE, contact.phone),
        ]
    added = 0
    for channel, value in values:
        if not value:
            continue
        _entry, created = SuppressionEntry.objects.get_or_create(
            value_hmac=selectors.suppression_hmac(channel, value),
            defaults={"channel": channel, "privacy_request": privacy_request},
        )
        added += created
    return added


@transaction.atomic
def privacy_request_lift_restriction(
    *, privacy_request: PrivacyRequest, actor: User, reason: str
) -> PrivacyRequest:
    """Lift the restriction a completed request put on the customer; the subject is told (Article 18(3))."""
    privacy_request, reason = lock_to_work_giving(
        privacy_request, actor, reason, "the reason the restriction is lifted (it is sent to the subject)"
    )
    if privacy_request.kind != Kind.RESTRICTION or privacy_request.state != State.COMPLETED:
        raise PrivacyRequestError("Only a completed restriction request has a restriction to lift.")
    if privacy_request.restriction_lifted_at is not None or privacy_request.customer is None:
        raise PrivacyRequestError(f"The restriction of {privacy_request.reference} is already lifted.")
    # Dunning first, while the customer is still restricted: a suspension it holds for a debt paid since
    # is withdrawn rather than released by the lift.
    dunning_run_for_customer(customer_id=privacy_request.customer.pk, today=timezone.localdate())
    customer_lift_processing_restriction(
        customer=privacy_request.customer,
        actor=actor,
        reason=f"Privacy request {privacy_request.reference}: {reason}",
    )
    privacy_request.restriction_lifted_at = timezone.now()
    save_with_actor(privacy_request, actor=actor, reason=f"Restriction lifted: {reason}")
    record_event(
        privacy_request,
        actor=actor,
        action="restriction_lifted",
        from_state=privacy_request.state,
        reason=reason,
    )
    email_subject(
        privacy_request,
        subject="restriction lifted",
        body=(
            f"The restriction of processing you asked for in request {privacy_request.reference} is lifted "
            f"from today.\n\nWhy: {reason}"
        ),
    )
    return privacy_request
