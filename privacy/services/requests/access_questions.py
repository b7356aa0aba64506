"""A customer's question about one entry of its access log ("Ask about this"), asked from the portal.

It is an access request (UK GDPR Art. 15(1)(c): to whom the data were disclosed, and why) about that
entry, with the entry's id on the request, so the DPO sees the entry's facts beside it. Asking again while
the first question is open opens nothing new (also a unique constraint); a customer asks at most
``QUESTIONS_PER_DAY`` questions a day, so a script cannot fill the DPO's queue.
"""

import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import access_transparency
from accounts.audit import audit_record
from accounts.models import AccessLog, User
from privacy.models import OPEN_STATES, PrivacyPermission, PrivacyRequest
from privacy.services.requests.receiving import privacy_request_receive

QUESTIONS_PER_DAY = 10
QUESTION_MAX_LENGTH = 1000


def _details(entry: AccessLog, question: str) -> str:
    shown = access_transparency.describe(entry, customer=entry.customer) if entry.customer else None
    when = f"{timezone.localtime(entry.at):%d %b %Y %H:%M}"
    facts = f"{shown.what} on {when} by {shown.role} ({shown.organisation})" if shown else f"entry {entry.pk}"
    asked = question.strip() or "Why was my data accessed, and by whom?"
    return f"Question about access log entry #{entry.pk}: {facts}.\n{asked}"


@transaction.atomic
def privacy_request_ask_about_access(
    *, entry: AccessLog, actor: User, question: str = ""
) -> tuple[PrivacyRequest, bool]:
    """Open an access request about ``entry`` for the portal user ``actor`` of the entry's customer, or
    return the open one already asking about it; the flag says whether a request was opened."""
    if not actor.is_portal_user or entry.customer_id is None or entry.customer_id != actor.customer_id:
        raise PermissionDenied("A customer asks about its own access log only.")
    if not actor.has_perm(PrivacyPermission.ADD):
        raise PermissionDenied
    if len(question) > QUESTION_MAX_LENGTH:
        raise ValidationError({"question": f"Keep the question to {QUESTION_MAX_LENGTH} characters."})
    open_already = PrivacyRequest.objects.filter(access_log_entry_id=entry.pk, state__in=OPEN_STATES).first()
    if open_already is not None:
        return open_already, False
    since = timezone.now() - datetime.timedelta(days=1)
    asked_today = PrivacyRequest.objects.filter(
        customer_id=entry.customer_id, access_log_entry_id__isnull=False, created_at__gte=since
    ).count()
    if asked_today >= QUESTIONS_PER_DAY:
        raise ValidationError(
            f"You have asked {asked_today} questions about your access log in the last day; "
            "we will answer those first. Please ask again tomorrow, or make a request."
        )
    try:
        with transaction.atomic():  # a savepoint: a question asked at the same moment wins
            item = privacy_request_receive(
                kind=PrivacyRequest.Kind.ACCESS,
                channel=PrivacyRequest.Channel.PORTAL,
                details=_details(entry, question),
                customer=entry.customer,
                actor=actor,
                reason=f"Asked about access log entry #{entry.pk}",
                access_log_entry_id=entry.pk,
            )
    except IntegrityError:
        return PrivacyRequest.objects.get(access_log_entry_id=entry.pk, state__in=OPEN_STATES), False
    audit_record(
        actor=actor,
        action="privacy_request.access_question",
        target=item,
        detail={"access_log": entry.pk},
    )
    return item, True
