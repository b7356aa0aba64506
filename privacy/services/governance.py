"""Writes of the governance registers: processors and impact assessments, each with the acting user, a
history row with its reason and an audit event; and the DPO's reminders of assessments to review."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mass_mail
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from fusion_site.models import save_with_actor
from privacy import data_map, governance, selectors
from privacy.models import AssessmentReminder, AssessmentRisk, ImpactAssessment, Processor

PROCESSOR_FIELDS = (
    "key",
    "name",
    "role",
    "service",
    "activities",
    "data_categories",
    "data_description",
    "contract_date",
    "review_date",
    "location",
    "transfer_mechanism",
    "sub_processors",
    "security_assurances",
)
ASSESSMENT_FIELDS = ("screening", "screening_notes", "description", "necessity", "dpo_advice")
RISK_FIELDS = (
    "description",
    "likelihood",
    "severity",
    "measures",
    "residual_likelihood",
    "residual_severity",
)


def _reason(reason: str) -> str:
    if not reason.strip():
        raise ValidationError({"reason": "Say why: the reason is kept in the history."})
    return reason.strip()


def _set(instance: Any, fields: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in unknown})
    for name, value in fields.items():
        setattr(instance, name, value)


def _check_processor(processor: Processor) -> None:
    """The activities a processor serves are the data map's (read at call time: the map in force)."""
    known = {activity.name for activity in data_map.ACTIVITIES}
    if isinstance(processor.activities, list):
        unknown = sorted(set(processor.activities) - known)
        if unknown:
            raise ValidationError(
                {"activities": f"Not a processing activity of the data map: {', '.join(unknown)}."}
            )


def _check_assessment(assessment: ImpactAssessment) -> None:
    if governance.activity_of(assessment.activity) is None:
        raise ValidationError({"activity": "Not a processing activity of the data map."})
    screening = assessment.screening if isinstance(assessment.screening, list) else None
    if screening is None or not set(screening) <= set(governance.SCREENING_CRITERIA):
        raise ValidationError({"screening": "Choose among the ICO's criteria listed."})


# Processors --------------------------------------------------------------------------------------------


@transaction.atomic
def processor_create(*, actor: User, reason: str, **fields: Any) -> Processor:
    reason = _reason(reason)
    processor = Processor()
    _set(processor, fields, PROCESSOR_FIELDS)
    _check_processor(processor)
    save_with_actor(processor, actor=actor, reason=reason)
    audit_record(
        actor=actor, action="privacy.processor_added", target=processor, detail={"key": processor.key}
    )
    return processor


@transaction.atomic
def processor_update(*, processor: Processor, actor: User, reason: str, **fields: Any) -> Processor:
    reason = _reason(reason)
    processor = Processor.objects.select_for_update().get(pk=processor.pk)
    before = {name: getattr(processor, name) for name in fields}
    _set(processor, fields, PROCESSOR_FIELDS)
    changed = sorted(name for name, value in fields.items() if before[name] != value)
    if not changed:
        return processor
    _check_processor(processor)
    save_with_actor(processor, actor=actor, reason=reason)
    audit_record(
        actor=actor,
        action="privacy.processor_changed",
        target=processor,
        detail={"key": processor.key, "fields": changed},
    )
    return processor


# Impact assessments ------------------------------------------------------------------------------------


def _back_to_draft(assessment: ImpactAssessment) -> None:
    """Any change after sign-off needs signing off again; the history keeps what was signed."""
    assessment.status = ImpactAssessment.Status.DRAFT
    assessment.signed_off_by = None
    assessment.signed_off_at = None
    assessment.fingerprint = ""


@transaction.atomic
def assessment_create(*, activity: str, actor: User, **fields: Any) -> ImpactAssessment:
    if ImpactAssessment.objects.filter(activity=activity).exists():
        raise ValidationError({"activity": "This activity already has an assessment: edit that one."})
    assessment = ImpactAssessment(activity=activity)
    _set(assessment, fields, ASSESSMENT_FIELDS)
    _check_assessment(assessment)
    save_with_actor(assessment, actor=actor, reason="Assessment started")
    audit_record(actor=actor, action="privacy.dpia_started", target=assessment, detail={"activity": activity})
    return assessment


@transaction.atomic
def assessment_update(
    *, assessment: ImpactAssessment, actor: User, reason: str = "Edited", **fields: Any
) -> ImpactAssessment:
    assessment = ImpactAssessment.objects.select_for_update().get(pk=assessment.pk)
    before = {name: getattr(assessment, name) for name in fields if hasattr(assessment, name)}
    _set(assessment, fields, ASSESSMENT_FIELDS)
    if all(before.get(name) == value for name, value in fields.items()):
        return assessment  # nothing changed: a signed-off assessment stays signed off
    _check_assessment(assessment)
    _back_to_draft(assessment)
    return save_with_actor(assessment, actor=actor, reason=reason.strip() or "Edited")


@transaction.atomic
def assessment_risk_save(
    *, assessment: ImpactAssessment, actor: User, risk: AssessmentRisk | None = None, **fields: Any
) -> AssessmentRisk:
    """Add a risk, or change ``risk``; either returns the assessment to draft."""
    assessment = ImpactAssessment.objects.select_for_update().get(pk=assessment.pk)
    if risk is None:
        risk = AssessmentRisk(assessment=assessment)
    elif risk.assessment_id != assessment.pk:
        raise ValidationError({"risk": "This risk belongs to another assessment."})
    _set(risk, fields, RISK_FIELDS)
    save_with_actor(risk, actor=actor, reason="Risk recorded")
    if assessment.status == ImpactAssessment.Status.SIGNED_OFF:
        _back_to_draft(assessment)
        save_with_actor(assessment, actor=actor, reason="A risk changed after sign-off")
    return risk


@transaction.atomic
def assessment_sign_off(
    *,
    assessment: ImpactAssessment,
    actor: User,
    review_on: datetime.date,
    now: datetime.datetime | None = None,
) -> ImpactAssessment:
    """Sign the assessment off as it stands, storing the fingerprint of its activity's data map entry
    now, and set the date of the next review."""
    now = now or timezone.now()
    assessment = ImpactAssessment.objects.select_for_update().get(pk=assessment.pk)
    activity = governance.activity_of(assessment.activity)
    errors: dict[str, str] = {}
    if activity is None:
        errors["activity"] = "The data map no longer has this activity."
    if not assessment.description.strip():
        errors["description"] = "Describe the processing before signing off."
    if not assessment.necessity.strip():
        errors["necessity"] = "Assess necessity and proportionality before signing off."
    if not assessment.dpo_advice.strip():
        errors["dpo_advice"] = "Record the DPO's advice before signing off."
    if not assessment.risks.exists():
        errors["risks"] = "Record at least one risk (and its measures) before signing off."
    if review_on <= timezone.localdate(now):
        errors["review_on"] = "The next review comes after today."
    if errors:
        raise ValidationError(errors)
    assert activity is not None
    assessment.status = ImpactAssessment.Status.SIGNED_OFF
    assessment.signed_off_by = actor
    assessment.signed_off_at = now
    assessment.review_on = review_on
    assessment.fingerprint = governance.fingerprint(activity)
    save_with_actor(assessment, actor=actor, reason=f"Signed off; next review {review_on:%Y-%m-%d}")
    audit_record(
        actor=actor,
        action="privacy.dpia_signed_off",
        target=assessment,
        detail={"activity": assessment.activity, "review_on": review_on.isoformat()},
    )
    return assessment


# Reminders ---------------------------------------------------------------------------------------------


@transaction.atomic
def assessment_reminders_send(*, today: datetime.date, within_days: int) -> list[AssessmentReminder]:
    """Mail the DPO group once about each signed-off assessment whose review date is within
    ``within_days`` days (or past), and once about each whose activity's data map entry changed since
    sign-off (once per new fingerprint). A reminder already recorded is never sent again."""
    horizon = today + datetime.timedelta(days=within_days)
    current = governance.current_fingerprints()
    due: list[tuple[ImpactAssessment, str, str]] = []
    signed = ImpactAssessment.objects.filter(status=ImpactAssessment.Status.SIGNED_OFF).order_by("activity")
    for assessment in signed:
        now_print = current.get(assessment.activity, "missing")
        if now_print != assessment.fingerprint:
            due.append((assessment, AssessmentReminder.Kind.ACTIVITY_CHANGED, now_print))
        if assessment.review_on is not None and assessment.review_on <= horizon:
            due.append((assessment, AssessmentReminder.Kind.REVIEW_DUE, assessment.review_on.isoformat()))
    already = set(
        AssessmentReminder.objects.filter(assessment__in=[item[0] for item in due]).values_list(
            "assessment_id", "kind", "occasion"
        )
    )
    fresh = [item for item in due if (item[0].pk, item[1], item[2]) not in already]
    if not fresh:
        return []
    recipients = selectors.dpo_email_addresses()
    sent_at = timezone.now()
    reminders = AssessmentReminder.objects.bulk_create(
        [
            AssessmentReminder(
                assessment=assessment,
                kind=kind,
                occasion=occasion,
                sent_at=sent_at,
                recipients=len(recipients),
            )
            for assessment, kind, occasion in fresh
        ]
    )
    if recipients:
        lines = []
        for assessment, kind, _occasion in fresh:
            if kind == AssessmentReminder.Kind.REVIEW_DUE:
                lines.append(f"  {assessment.activity}: review due {assessment.review_on:%a %d %b %Y}")
            else:
                lines.append(f"  {assessment.activity}: its data map entry changed since sign-off")
        subject = f"Impact assessments to review: {len(fresh)}"
        body = f"Data protection impact assessments needing the DPO on {today:%d %B %Y}.\n\n" + "\n".join(
            lines
        )
        messages = tuple((subject, body, settings.DEFAULT_FROM_EMAIL, [address]) for address in recipients)
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=False))
    return reminders
