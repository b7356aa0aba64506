"""Every write of the public website: notices, consented submissions, confirmations, cookie choices.

Public submissions are written as the named system actor ``public-website`` (the visitor has no
account); staff actions as the staff user. Mails are sent on commit, so a rolled-back submission
never mails anyone.
"""

import uuid
from collections.abc import Callable
from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Max
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.services import system_user
from fusion_site.models import UNCHANGED, Unchanged, given, save_with_actor
from privacy.models import (
    CookieConsentRecord,
    PrivacyNotice,
    PrivacyRequest,
    SuppressionEntry,
    WebsiteSubmission,
)
from privacy.models.website import website_email_index
from privacy.selectors import is_suppressed
from privacy.services.requests.receiving import privacy_request_receive_from_public
from privacy.website import verification
from privacy.website.verification import VerificationInvalid

PUBLIC_ACTOR_JOB = "public-website"
CONFIRM_PURPOSE = "mailing-list-confirm"
UNSUBSCRIBE_PURPOSE = "mailing-list-unsubscribe"
PRIVACY_REQUEST_PURPOSE = "privacy-request"

# Turns a site path into the absolute link a mail needs (the view passes request.build_absolute_uri).
UrlBuilder = Callable[[str], str]

Kind = WebsiteSubmission.Kind
Status = WebsiteSubmission.Status


def public_actor() -> User:
    return system_user(job=PUBLIC_ACTOR_JOB)


# --- Privacy notices -------------------------------------------------------------------------------


@transaction.atomic
def privacy_notice_create(*, title: str, summary: str, body: str, actor: User) -> PrivacyNotice:
    """A new draft version, numbered after the highest so far (the unique version settles a race)."""
    highest = PrivacyNotice.objects.aggregate(highest=Max("version"))["highest"] or 0
    notice = PrivacyNotice(version=highest + 1, title=title, summary=summary, body=body)
    return save_with_actor(notice, actor=actor, reason=f"Drafted privacy notice version {notice.version}")


@transaction.atomic
def privacy_notice_update_draft(
    *,
    notice: PrivacyNotice,
    actor: User,
    title: str | Unchanged = UNCHANGED,
    summary: str | Unchanged = UNCHANGED,
    body: str | Unchanged = UNCHANGED,
) -> PrivacyNotice:
    notice = PrivacyNotice.objects.select_for_update().get(pk=notice.pk)
    if notice.is_published:
        raise ValidationError("A published privacy notice cannot be changed; draft a new version instead.")
    changes = given({"title": title, "summary": summary, "body": body})
    for name, value in changes.items():
        setattr(notice, name, value)
    return save_with_actor(notice, actor=actor, reason="Edited draft privacy notice")


@transaction.atomic
def privacy_notice_publish(*, notice: PrivacyNotice, actor: User) -> PrivacyNotice:
    notice = PrivacyNotice.objects.select_for_update().get(pk=notice.pk)
    if notice.is_published:
        raise ValidationError(f"Version {notice.version} is already published.")
    if not actor.has_perm("privacy.publish_privacynotice"):
        raise ValidationError("Only the data protection officer may publish a privacy notice.")
    notice.status = PrivacyNotice.Status.PUBLISHED
    notice.published_at = timezone.now()
    notice.published_by = actor
    return save_with_actor(notice, actor=actor, reason=f"Published privacy notice version {notice.version}")


# --- Consented submissions ------------------------------------------------------------------------


def _require_published(notice: PrivacyNotice | None) -> PrivacyNotice:
    if notice is None or not notice.is_published:
        raise ValidationError({"consent": "There is no published privacy notice to consent to yet."})
    return notice


def _send(*, to: str, subject: str, body: str, unsubscribe_url: str = "") -> None:
    headers = {}
    if unsubscribe_url:
        headers = {
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }
    message = EmailMessage(subject=subject, body=body, to=[to], headers=headers)
    message.send()


@transaction.atomic
def contact_submit(
    *, name: str, email: str, message: str, consent_notice: PrivacyNotice
) -> WebsiteSubmission:
    submission = WebsiteSubmission(
        kind=Kind.CONTACT,
        status=Status.RECEIVED,
        name=name,
        email=email.strip(),
        message=message,
        notice=_require_published(consent_notice),
        consented_at=timezone.now(),
    )
    return save_with_actor(submission, actor=public_actor(), reason="Contact form sent")


def _cv_storage_name(cv: UploadedFile) -> str:
    # The visitor's file name can carry personal data and path tricks; only the checked extension is kept.
    return f"{uuid.uuid4().hex}{PurePath(cv.name or '').suffix.lower()}"


@transaction.atomic
def job_application_submit(
    *,
    name: str,
    email: str,
    position: str,
    cover_note: str,
    cv: UploadedFile,
    consent_notice: PrivacyNotice,
) -> WebsiteSubmission:
    """``cv`` must already have passed privacy.website.uploads.check_cv (the form does that)."""
    submission = WebsiteSubmission(
        kind=Kind.JOB_APPLICATION,
        status=Status.RECEIVED,
        name=name,
        email=email.strip(),
        position=position,
        message=cover_note,
        notice=_require_published(consent_notice),
        consented_at=timezone.now(),
    )
    submission.full_clean(exclude=["cv"])
    cv.name = _cv_storage_name(cv)
    submission.cv = cv
    try:
        return save_with_actor(submission, actor=public_actor(), reason="Job application sent")
    except Exception:
        # The file is written before the row; a row that failed must not leave its CV behind.
        if submission.cv:
            submission.cv.delete(save=False)
        raise


# --- Mailing list (double opt-in) ---------------------------------------------------------------------


def _mailing_list_links(entry: WebsiteSubmission, build_url: UrlBuilder) -> tuple[str, str]:
    reference = str(entry.pk)
    confirm = verification.issue_verification_token(
        email=entry.email, purpose=CONFIRM_PURPOSE, reference=reference
    )
    unsubscribe = verification.issue_verification_token(
        email=entry.email, purpose=UNSUBSCRIBE_PURPOSE, reference=reference
    )
    return (
        build_url(reverse("website:mailing_list_confirm", args=[confirm])),
        build_url(reverse("website:mailing_list_unsubscribe", args=[unsubscribe])),
    )


def _mail_confirmation(entry: WebsiteSubmission, build_url: UrlBuilder) -> None:
    confirm_url, unsubscribe_url = _mailing_list_links(entry, build_url)
    hours = int(verification.DEFAULT_MAX_AGE.total_seconds() // 3600)
    _send(
        to=entry.email,
        subject="Please confirm your subscription",
        body=(
            "Someone (we hope you) asked to join the Fusion mailing list with this address.\n\n"
            f"To confirm, open this link within {hours} hours:\n{confirm_url}\n\n"
            "If it was not you, ignore this mail and nothing more will be sent.\n\n"
            f"Unsubscribe: {unsubscribe_url}\n"
        ),
        unsubscribe_url=unsubscribe_url,
    )


def _mail_already_subscribed(entry: WebsiteSubmission, build_url: UrlBuilder) -> None:
    _confirm_url, unsubscribe_url = _mailing_list_links(entry, build_url)
    _send(
        to=entry.email,
        subject="You are already on our mailing list",
        body=(
            "Someone asked to join the Fusion mailing list with this address, which is already subscribed.\n"
            "Nothing has changed.\n\n"
            f"Unsubscribe: {unsubscribe_url}\n"
        ),
        unsubscribe_url=unsubscribe_url,
    )


@transaction.atomic
def mailing_list_subscribe(
    *, name: str, email: str, consent_notice: PrivacyNotice, build_url: UrlBuilder
) -> WebsiteSubmission | None:
    """A pending entry and a confirmation mail. The page says the same whatever the address's state,
    so the form cannot be used to find out who is subscribed; the mail says the rest.

    An address on the suppression list (an objection to direct marketing, ``privacy.selectors
    .is_suppressed``) is never mailed, not even to confirm: the objection outranks a later form that
    anyone could fill in with that address. Nothing is stored and ``None`` is returned; the page still
    answers as usual, so the form does not reveal who objected."""
    notice = _require_published(consent_notice)
    email = email.strip()
    if is_suppressed(channel=SuppressionEntry.Channel.EMAIL, value=email):
        return None
    actor = public_actor()
    current = (
        WebsiteSubmission.objects.select_for_update()
        .filter(
            kind=Kind.MAILING_LIST,
            email_index=website_email_index(email),
            status__in=[Status.PENDING_CONFIRMATION, Status.CONFIRMED],
        )
        .order_by("-created_at")
        .first()
    )
    if current is not None and current.status == Status.CONFIRMED:
        confirmed = current
        transaction.on_commit(lambda: _mail_already_subscribed(confirmed, build_url))
        return confirmed
    if current is None:
        current = WebsiteSubmission(kind=Kind.MAILING_LIST, status=Status.PENDING_CONFIRMATION, email=email)
    current.name = name
    current.notice = notice
    current.consented_at = timezone.now()
    entry = save_with_actor(current, actor=actor, reason="Mailing list sign-up (waiting for confirmation)")
    transaction.on_commit(lambda: _mail_confirmation(entry, build_url))
    return entry


def _reference_pk(token: verification.VerifiedToken) -> int:
    # A genuine token always carries a row id; 0 matches no row, so a bad one reads as "not valid".
    return int(token.reference) if token.reference.isdigit() else 0


def _entry_for(token: verification.VerifiedToken) -> WebsiteSubmission:
    entry = (
        WebsiteSubmission.objects.select_for_update()
        .filter(kind=Kind.MAILING_LIST, pk=_reference_pk(token))
        .first()
    )
    if entry is None or not token.matches(entry.email):
        raise VerificationInvalid("This link is not valid. Please use the link from your email.")
    return entry


@transaction.atomic
def mailing_list_confirm(*, token: str) -> WebsiteSubmission:
    entry = _entry_for(verification.check_verification_token(token=token, purpose=CONFIRM_PURPOSE))
    if entry.status == Status.UNSUBSCRIBED:
        raise VerificationInvalid("This address has been unsubscribed. Please sign up again.")
    if entry.status == Status.CONFIRMED:
        return entry
    entry.status = Status.CONFIRMED
    entry.confirmed_at = timezone.now()
    return save_with_actor(entry, actor=public_actor(), reason="Mailing list subscription confirmed by email")


@transaction.atomic
def mailing_list_unsubscribe(*, token: str) -> WebsiteSubmission:
    """Unsubscribes every live entry of the address (an unsubscribe link must never need expiring)."""
    entry = _entry_for(
        verification.check_verification_token(token=token, purpose=UNSUBSCRIBE_PURPOSE, max_age=None)
    )
    now = timezone.now()
    live = WebsiteSubmission.objects.select_for_update().filter(
        kind=Kind.MAILING_LIST,
        email_index=entry.email_index,
        status__in=[Status.PENDING_CONFIRMATION, Status.CONFIRMED],
    )
    actor = public_actor()
    for row in live:
        row.status = Status.UNSUBSCRIBED
        row.unsubscribed_at = now
        save_with_actor(row, actor=actor, reason="Unsubscribed through the link in a mail")
    entry.refresh_from_db()
    return entry


@transaction.atomic
def job_application_record_decision(
    *, submission: WebsiteSubmission, decision: str, actor: User
) -> WebsiteSubmission:
    """Record the outcome of a job application; its retention (6 months) runs from now."""
    if submission.kind != Kind.JOB_APPLICATION:
        raise ValidationError({"decision": "Only a job application has a decision."})
    if decision not in WebsiteSubmission.Decision.values or not decision:
        raise ValidationError({"decision": "Choose the outcome of the application."})
    submission.decision = decision
    submission.decided_at = timezone.now()
    return save_with_actor(submission, actor=actor, reason=f"Decision recorded: {decision}")


# --- Public privacy requests (verified email first) -------------------------------------------------


def _mail_privacy_request_verification(pending: WebsiteSubmission, build_url: UrlBuilder) -> None:
    token = verification.issue_verification_token(
        email=pending.email, purpose=PRIVACY_REQUEST_PURPOSE, reference=str(pending.pk)
    )
    link = build_url(reverse("website:privacy_request_verify", args=[token]))
    hours = int(verification.DEFAULT_MAX_AGE.total_seconds() // 3600)
    _send(
        to=pending.email,
        subject="Please confirm your privacy request",
        body=(
            "We received a privacy request for this email address. To confirm that it is yours, "
            f"open this link within {hours} hours:\n{link}\n\n"
            "If you did not make this request, ignore this mail and it will lapse.\n"
        ),
    )


@transaction.atomic
def privacy_request_submit(
    *, email: str, request_kind: str, details: str, notice: PrivacyNotice | None, build_url: UrlBuilder
) -> WebsiteSubmission:
    """Held as pending until the visitor proves the address is theirs; nobody acts on it before."""
    pending = WebsiteSubmission(
        kind=Kind.PRIVACY_REQUEST,
        status=Status.PENDING_VERIFICATION,
        email=email.strip(),
        request_kind=request_kind,
        message=details,
        notice=notice,
    )
    pending = save_with_actor(
        pending, actor=public_actor(), reason="Privacy request sent, email not verified"
    )
    transaction.on_commit(lambda: _mail_privacy_request_verification(pending, build_url))
    return pending


@transaction.atomic
def privacy_request_verify(*, token: str) -> PrivacyRequest:
    """Hands the verified request over through ``deliver_verified_public_request`` and removes the
    pending copy, so the request lives in one place only."""
    checked = verification.check_verification_token(token=token, purpose=PRIVACY_REQUEST_PURPOSE)
    pending = (
        WebsiteSubmission.objects.select_for_update()
        .filter(
            kind=Kind.PRIVACY_REQUEST,
            status=Status.PENDING_VERIFICATION,
            pk=_reference_pk(checked),
        )
        .first()
    )
    if pending is None or not checked.matches(pending.email):
        raise VerificationInvalid("This link has already been used or is not valid.")
    delivered = deliver_verified_public_request(
        email=pending.email, kind=pending.request_kind, details=pending.message
    )
    pending._history_user = public_actor()  # type: ignore[attr-defined]
    pending._change_reason = "Email verified; request handed over"  # type: ignore[attr-defined]
    pending.delete()
    return delivered


@transaction.atomic
def deliver_verified_public_request(*, email: str, kind: str, details: str) -> PrivacyRequest:
    """The one place a public privacy request with a verified email arrives: it opens a request in the
    DPO's queue (received through the website, deadline running from today)."""
    if kind not in WebsiteSubmission.RequestKind.values:
        raise ValidationError({"kind": f"'{kind}' is not a kind of privacy request."})
    return privacy_request_receive_from_public(email=email, kind=kind, details=details, actor=public_actor())


# --- Cookie consent -----------------------------------------------------------------------------------


def cookie_consent_record(*, choice: str, notice: PrivacyNotice | None) -> CookieConsentRecord:
    """Proof that a choice was made under a notice version, and nothing that could single out who."""
    if choice not in CookieConsentRecord.Choice.values:
        raise ValidationError({"choice": "Choose to accept or refuse analytics cookies."})
    record = CookieConsentRecord(
        choice=choice,
        notice=notice,
        recorded_hour=timezone.now().replace(minute=0, second=0, microsecond=0),
    )
    record.full_clean()
    record.save()
    return record
