"""Reads of the public website's data, scoped to what the staff user may see."""

from django.db.models import Count, QuerySet
from django.http import Http404

from accounts.models import User
from privacy.models import PrivacyNotice, Processor, WebsiteSubmission

Kind = WebsiteSubmission.Kind


def current_notice() -> PrivacyNotice | None:
    return (
        PrivacyNotice.objects.filter(status=PrivacyNotice.Status.PUBLISHED)
        .order_by("-published_at", "-version")
        .first()
    )


def shared_with() -> QuerySet[Processor]:
    """The "who we share your data with" section of the public notice: the processors register as the
    DPO keeps it (public facts about organisations, no personal data)."""
    return Processor.objects.order_by("role", "name", "pk")


def published_notices() -> QuerySet[PrivacyNotice]:
    return PrivacyNotice.objects.filter(status=PrivacyNotice.Status.PUBLISHED).order_by("-version")


def published_notice(version: int) -> PrivacyNotice:
    notice = published_notices().filter(version=version).first()
    if notice is None:
        raise Http404("No published privacy notice has this version.")
    return notice


def notices_for_staff() -> QuerySet[PrivacyNotice]:
    return PrivacyNotice.objects.select_related("published_by").order_by("-version")


def submission_kinds_visible_to(user: User) -> list[str]:
    if not (user.is_active and user.is_staff and user.has_perm("privacy.view_websitesubmission")):
        return []
    kinds = [Kind.CONTACT, Kind.MAILING_LIST, Kind.PRIVACY_REQUEST]
    if user.has_perm("privacy.view_recruitment"):
        kinds.insert(2, Kind.JOB_APPLICATION)
    return [str(kind) for kind in kinds]


def submissions_visible_to(user: User, *, kind: str | None = None) -> QuerySet[WebsiteSubmission]:
    kinds = submission_kinds_visible_to(user)
    if kind is not None:
        kinds = [kind] if kind in kinds else []
    return WebsiteSubmission.objects.filter(kind__in=kinds).select_related("notice").order_by("-created_at")


def access_submission(user: User, pk: int) -> WebsiteSubmission:
    """404 for a submission this user may not see, as for any object outside their scope."""
    submission = submissions_visible_to(user).filter(pk=pk).first()
    if submission is None:
        raise Http404("No such submission.")
    return submission


def submission_counts(user: User) -> dict[str, dict[str, int]]:
    """kind -> status -> count, for the kinds this user may see."""
    counts: dict[str, dict[str, int]] = {kind: {} for kind in submission_kinds_visible_to(user)}
    rows = (
        submissions_visible_to(user)
        .order_by()
        .values("kind", "status")
        .annotate(total=Count("pk"))
        .values_list("kind", "status", "total")
    )
    for kind, status, total in rows:
        counts[kind][status] = total
    return counts
