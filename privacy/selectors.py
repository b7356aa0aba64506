"""Reads of privacy requests, scoped to what the user may see.

A request about a customer is visible to a user who holds the privacy view permission and may see that
customer (``accounts.selectors.customers_visible_to``), so a partner's staff never see another
partner's customers' requests. A request from a member of the public names no customer: only users who
see every partner's customers (the DPO, administrators) see it.
"""

import datetime
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, Group
from django.db.models import Case, Count, F, Q, QuerySet, When
from django.db.models.functions import TruncMonth
from django.http import Http404

from accounts import validation
from accounts.models import Contact, Customer, Role, User
from accounts.selectors import VIEW_ALL_CUSTOMERS, customer_ids_visible_to
from fusion_site.crypto import blind_index
from privacy.models import (
    OPEN_STATES,
    DataExport,
    ImpactAssessment,
    PrivacyPermission,
    PrivacyRequest,
    Processor,
    State,
    SuppressionEntry,
)

DUE_SOON_DAYS = 7


def privacy_requests_visible_to(user: User | AnonymousUser) -> QuerySet[PrivacyRequest]:
    if not user.is_authenticated or not user.is_active or not user.has_perm(PrivacyPermission.VIEW):
        return PrivacyRequest.objects.none()
    requests = PrivacyRequest.objects.select_related("customer", "duplicate_of")
    if user.has_perm(VIEW_ALL_CUSTOMERS):
        return requests
    return requests.filter(customer__in=customer_ids_visible_to(user))


def access_privacy_request(user: User | AnonymousUser, pk: int) -> PrivacyRequest:
    """The request, if the user may see it; otherwise 404."""
    found = privacy_requests_visible_to(user).select_related("contact", "received_by").filter(pk=pk).first()
    if found is None:
        raise Http404("No such privacy request.")
    return found


def open_queue(user: User | AnonymousUser) -> QuerySet[PrivacyRequest]:
    """Open requests, soonest deadline first; those whose clock has not started come last."""
    return (
        privacy_requests_visible_to(user)
        .filter(state__in=OPEN_STATES)
        .order_by(F("due_on").asc(nulls_last=True), "id")
    )


def requests_of_portal_user(user: User) -> QuerySet[PrivacyRequest]:
    """A portal user's own account's requests: never another customer's."""
    if user.customer_id is None:
        return PrivacyRequest.objects.none()
    return PrivacyRequest.objects.filter(customer_id=user.customer_id).order_by("-received_on", "-id")


@dataclass(frozen=True)
class Urgency:
    overdue: bool
    due_this_week: bool


def urgency_of(privacy_request: PrivacyRequest, *, today: datetime.date) -> Urgency:
    """Overdue, or due within a week. A request on hold has its clock stopped and is neither."""
    due = privacy_request.due_on
    if due is None or privacy_request.state == State.ON_HOLD or not privacy_request.is_open:
        return Urgency(False, False)
    return Urgency(due < today, today <= due <= today + datetime.timedelta(days=DUE_SOON_DAYS))


def _urgent_q(today: datetime.date) -> tuple[Q, Q]:
    """``urgency_of`` as two conditions on open requests (overdue, due within a week), to count in SQL."""
    running = Q(due_on__isnull=False) & ~Q(state=State.ON_HOLD)
    return (
        running & Q(due_on__lt=today),
        running & Q(due_on__gte=today, due_on__lte=today + datetime.timedelta(days=DUE_SOON_DAYS)),
    )


@dataclass(frozen=True)
class QueueFigures:
    open: int
    overdue: int
    due_this_week: int


def queue_figures(open_requests: QuerySet[PrivacyRequest], *, today: datetime.date) -> QueueFigures:
    """How many of ``open_requests`` there are, are overdue and are due within a week: one query,
    counted by the database (the queue can hold thousands)."""
    overdue, due_soon = _urgent_q(today)
    counts = open_requests.order_by().aggregate(
        open=Count("id"), overdue=Count("id", filter=overdue), due_this_week=Count("id", filter=due_soon)
    )
    return QueueFigures(**counts)


QUEUE_DUE_FILTERS = {"overdue": "Overdue", "week": "Due within a week"}


def open_queue_filtered(
    user: User | AnonymousUser, *, kind: str = "", due: str = "", today: datetime.date
) -> QuerySet[PrivacyRequest]:
    """The open queue narrowed to one kind of request and/or to the overdue or those due within a week."""
    requests = open_queue(user)
    if kind:
        requests = requests.filter(kind=kind)
    if due in QUEUE_DUE_FILTERS:
        overdue, due_soon = _urgent_q(today)
        requests = requests.filter(overdue if due == "overdue" else due_soon)
    return requests


def questions_about_entries(customer_id: int, entry_ids: list[int]) -> dict[int, PrivacyRequest]:
    """The latest request of the customer asking about each of these access-log entries, by entry id."""
    latest: dict[int, PrivacyRequest] = {}
    asked = PrivacyRequest.objects.filter(customer_id=customer_id, access_log_entry_id__in=entry_ids)
    for item in asked.order_by("id"):
        if item.access_log_entry_id is not None:
            latest[item.access_log_entry_id] = item
    return latest


def requests_by_kind_and_month(
    queryset: QuerySet[PrivacyRequest], *, months: int, today: datetime.date
) -> tuple[list[datetime.date], dict[str, Counter[datetime.date]]]:
    """Requests received per month and kind over the last ``months`` months (oldest first), in one query."""
    first = today.replace(day=1)
    for _ in range(months - 1):
        first = (first - datetime.timedelta(days=1)).replace(day=1)
    month_starts = [first]
    while len(month_starts) < months:
        previous = month_starts[-1]
        month_starts.append((previous.replace(day=28) + datetime.timedelta(days=4)).replace(day=1))
    rows = (
        queryset.filter(received_on__gte=first)
        .annotate(month=TruncMonth("received_on"))
        .values("month", "kind")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts: dict[str, Counter[datetime.date]] = {kind: Counter() for kind in PrivacyRequest.Kind.values}
    for row in rows:
        month = row["month"]
        month = month.date() if isinstance(month, datetime.datetime) else month
        counts[row["kind"]][month] += row["n"]
    return month_starts, counts


def subject_email_on_file(privacy_request: PrivacyRequest) -> str:
    """Where notices and identity codes go: the email the subject gave, else the named contact's, else the
    customer's primary contact's. Empty when there is none (then staff write or phone)."""
    if privacy_request.subject_email:
        return privacy_request.subject_email
    if privacy_request.contact is not None:
        return privacy_request.contact.email
    if privacy_request.customer_id is not None:
        contact = (
            Contact.objects.filter(customer_id=privacy_request.customer_id)
            # The primary contact first; any contact rather than none.
            .order_by(Case(When(role=Contact.ContactRole.PRIMARY, then=0), default=1), "id")
            .first()
        )
        if contact is not None:
            return contact.email
    return ""


def open_duplicate_of(
    *, kind: str, customer_id: int | None, contact_id: int | None, subject_email_index: str
) -> PrivacyRequest | None:
    """The earliest open request of the same kind from the same subject, if there is one."""
    same_subject: Q
    if contact_id is not None:
        same_subject = Q(contact_id=contact_id)
    elif customer_id is not None:
        same_subject = Q(customer_id=customer_id, contact__isnull=True)
    else:
        same_subject = Q(customer__isnull=True, subject_email_index=subject_email_index)
    return (
        # A question about one access-log entry is answered on its own, so is no request's duplicate.
        PrivacyRequest.objects.filter(
            same_subject, kind=kind, state__in=OPEN_STATES, access_log_entry_id__isnull=True
        )
        .order_by("received_on", "id")
        .first()
    )


def dpo_email_addresses() -> list[str]:
    group = Group.objects.filter(name=Role.DATA_PROTECTION_OFFICER.value).first()
    if group is None:
        return []
    return sorted(User.objects.filter(groups=group, is_active=True).values_list("email", flat=True))


def requests_needing_reminder(*, today: datetime.date, within_days: int) -> QuerySet[PrivacyRequest]:
    """Open requests whose clock runs and whose deadline is past or within ``within_days`` days."""
    horizon = today + datetime.timedelta(days=within_days)
    return (
        PrivacyRequest.objects.filter(state__in=OPEN_STATES, due_on__isnull=False, due_on__lte=horizon)
        .exclude(state=State.ON_HOLD)
        .order_by("due_on", "id")
    )


def suppression_hmac(channel: str, value: str) -> str:
    """The HMAC stored for a suppressed email or phone number, from its normal form."""
    normalise = (
        validation.normalise_email
        if channel == SuppressionEntry.Channel.EMAIL
        else validation.normalise_phone
    )
    return blind_index("suppression", f"{channel}:{normalise(value)}")


def is_suppressed(*, channel: str, value: str) -> bool:
    """Whether marketing to this email or phone number is refused (an objection to direct marketing)."""
    return SuppressionEntry.objects.filter(value_hmac=suppression_hmac(channel, value)).exists()


VIEW_DATA_EXPORT = "privacy.view_dataexport"
ADD_DATA_EXPORT = "privacy.add_dataexport"
EXPORTS_LISTED = 50


def exports_of_customer(customer: Customer) -> QuerySet[DataExport]:
    """The customer's exports, newest first, for a customer the caller has already been allowed to see."""
    return (
        DataExport.objects.filter(customer=customer)
        .select_related("requested_by")
        .order_by("-created_at", "-id")
    )


def data_exports_visible_to(user: User | AnonymousUser) -> QuerySet[DataExport]:
    if not isinstance(user, User) or not user.is_active or not user.has_perm(VIEW_DATA_EXPORT):
        return DataExport.objects.none()
    return DataExport.objects.filter(customer__in=customer_ids_visible_to(user))


def access_data_export(user: User | AnonymousUser, public_id: uuid.UUID) -> DataExport:
    """The export, if the user may see its customer and exports; otherwise 404 (never 403, which would
    confirm the export exists)."""
    export = data_exports_visible_to(user).select_related("customer").filter(public_id=public_id).first()
    if export is None:
        raise Http404("No such export.")
    return export


# Governance registers: processors and impact assessments -------------------------------------------------
# Neither holds customers' data nor belongs to a partner: the permission is the whole scope (DPO and
# administrators), checked by the pages before these are read.


def processors_register() -> QuerySet[Processor]:
    return Processor.objects.order_by("name", "pk")


def access_processor(user: User, pk: int) -> Processor:
    if not user.has_perm(PrivacyPermission.VIEW_PROCESSOR):
        raise Http404
    found = Processor.objects.filter(pk=pk).first()
    if found is None:
        raise Http404
    return found


def processor_names_by_key() -> dict[str, str]:
    return dict(Processor.objects.values_list("key", "name"))


def access_assessment(user: User, pk: int) -> ImpactAssessment:
    if not user.has_perm(PrivacyPermission.VIEW_ASSESSMENT):
        raise Http404
    found = ImpactAssessment.objects.select_related("signed_off_by").filter(pk=pk).first()
    if found is None:
        raise Http404
    return found


@dataclass(frozen=True)
class ActivityAssessment:
    """A processing activity of the data map with its assessment (if any), its state and the processors
    the register says serve it."""

    activity: Any
    assessment: ImpactAssessment | None
    state: Any
    processors: list[Processor]


def activities_with_assessments(*, today: datetime.date) -> list[ActivityAssessment]:
    """Every activity of the data map in force, in its order: two queries however many there are."""
    from privacy import data_map, governance

    assessments = {item.activity: item for item in ImpactAssessment.objects.select_related("signed_off_by")}
    processors = list(processors_register())
    rows = []
    for activity in data_map.ACTIVITIES:
        assessment = assessments.get(activity.name)
        state = governance.assessment_state(assessment, today=today, current=governance.fingerprint(activity))
        serving = [processor for processor in processors if activity.name in processor.activities]
        rows.append(ActivityAssessment(activity, assessment, state, serving))
    return rows
