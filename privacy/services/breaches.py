"""Writes of the breach register: record an incident, correct it (with a reason, in its history),
record the decisions on notifying the ICO and the data subjects, close it; the reminders of the 72-hour
clock (UK GDPR Art. 33(1) and PECR reg. 5A(2) as amended alike); and the trail left by reading or
exporting an incident's affected customers.

Nothing here deletes: the register keeps every incident (UK GDPR Art. 33(5)).
"""

import datetime
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mass_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import AccessLog, User
from fusion_site.models import save_with_actor, update_with_actor
from fusion_site.refusals import Refusal
from privacy import selectors
from privacy.breaches import REMINDER_AFTER, AffectedSubject, incidents_needing_reminders
from privacy.models import BreachIncident, BreachReminder

# What the DPO may correct on an incident's facts (the decisions have their own services).
FACT_FIELDS = (
    "title",
    "pecr",
    "occurred_at",
    "became_aware_at",
    "description",
    "data_categories",
    "subject_categories",
    "approximate_records",
    "approximate_subjects",
    "likely_consequences",
    "measures_taken",
    "measures_proposed",
    "handler",
    "suspect",
    "evidence_from",
    "evidence_until",
)


@transaction.atomic
def breach_incident_create(
    *, actor: User, source_alert_event: int | None = None, **facts: Any
) -> BreachIncident:
    unknown = set(facts) - set(FACT_FIELDS)
    if unknown:
        raise ValidationError({name: "This field cannot be set here." for name in sorted(unknown)})
    incident = BreachIncident(source_alert_event=source_alert_event, **facts)
    incident = save_with_actor(incident, actor=actor, reason="Incident recorded")
    audit_record(actor=actor, action="breach.recorded", target=incident, detail={"alert": source_alert_event})
    return incident


@transaction.atomic
def breach_incident_update(
    *, incident: BreachIncident, actor: User, reason: str, changes: dict[str, Any]
) -> BreachIncident:
    """Correct an incident's facts; the reason is kept in its history."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the record is corrected (kept in its history)."})
    incident = BreachIncident.objects.select_for_update().get(pk=incident.pk)
    incident = update_with_actor(
        incident, actor=actor, changes=changes, allowed=FACT_FIELDS, reason=f"Corrected: {reason.strip()}"
    )
    audit_record(actor=actor, action="breach.corrected", target=incident, detail={"fields": sorted(changes)})
    return incident


@transaction.atomic
def breach_ico_decide(
    *,
    incident: BreachIncident,
    actor: User,
    decision: str,
    reason: str,
    notified_at: datetime.datetime | None = None,
    ico_reference: str = "",
    delay_reasons: str = "",
) -> BreachIncident:
    """Record whether the ICO is notified, why, who decided and when; with the time it was notified, and
    the reasons for the delay when that was more than 72 hours after awareness (checked by the model)."""
    if decision not in {BreachIncident.IcoDecision.NOTIFY, BreachIncident.IcoDecision.DO_NOT_NOTIFY}:
        raise ValidationError({"ico_decision": "Choose whether to notify the ICO."})
    if not reason.strip():
        raise ValidationError({"ico_decision_reason": "Give the reason for the decision."})
    incident = BreachIncident.objects.select_for_update().get(pk=incident.pk)
    incident.ico_decision = decision
    incident.ico_decision_reason = reason.strip()
    incident.ico_decided_by = actor
    incident.ico_decided_at = timezone.now()
    incident.ico_notified_at = notified_at if decision == BreachIncident.IcoDecision.NOTIFY else None
    incident.ico_reference = ico_reference.strip()
    incident.delay_reasons = delay_reasons.strip()
    incident = save_with_actor(
        incident, actor=actor, reason=f"ICO decision: {incident.get_ico_decision_display()}"
    )
    audit_record(
        actor=actor,
        action="breach.ico_decided",
        target=incident,
        detail={"decision": decision, "late": incident.notified_late()},
    )
    return incident


@transaction.atomic
def breach_subjects_decide(
    *, incident: BreachIncident, actor: User, decision: str, reason: str
) -> BreachIncident:
    if decision not in {BreachIncident.SubjectsDecision.TELL, BreachIncident.SubjectsDecision.DO_NOT_TELL}:
        raise ValidationError({"subjects_decision": "Choose whether to tell the data subjects."})
    if not reason.strip():
        raise ValidationError({"subjects_decision_reason": "Give the reason for the decision."})
    incident = BreachIncident.objects.select_for_update().get(pk=incident.pk)
    incident.subjects_decision = decision
    incident.subjects_decision_reason = reason.strip()
    incident.subjects_decided_by = actor
    incident.subjects_decided_at = timezone.now()
    incident = save_with_actor(
        incident, actor=actor, reason=f"Data subjects: {incident.subjects_decision_label()}"
    )
    audit_record(
        actor=actor, action="breach.subjects_decided", target=incident, detail={"decision": decision}
    )
    return incident


CLOSE_NEEDS_ICO_DECISION = "Record the decision on notifying the ICO before closing."


def breach_close_refusal(*, incident: BreachIncident) -> Refusal | None:
    """Why the open incident cannot be closed yet, or None: the rule ``breach_incident_close`` applies, so
    the incident's page says it instead of offering a form that fails."""
    if not incident.ico_decision:
        return Refusal(CLOSE_NEEDS_ICO_DECISION)
    return None


@transaction.atomic
def breach_incident_close(*, incident: BreachIncident, actor: User, note: str) -> BreachIncident:
    if not note.strip():
        raise ValidationError({"closure_note": "Say how the incident was resolved."})
    incident = BreachIncident.objects.select_for_update().get(pk=incident.pk)
    if incident.status == BreachIncident.Status.CLOSED:
        raise ValidationError({"status": "The incident is already closed."})
    refusal = breach_close_refusal(incident=incident)
    if refusal is not None:
        raise ValidationError({"ico_decision": refusal.reason})
    incident.status = BreachIncident.Status.CLOSED
    incident.closed_at = timezone.now()
    incident.closed_by = actor
    incident.closure_note = note.strip()
    incident = save_with_actor(incident, actor=actor, reason="Closed")
    audit_record(actor=actor, action="breach.closed", target=incident)
    return incident


# The 72-hour clock -----------------------------------------------------------------------------------


def _reminder_text(incident: BreachIncident, kind: str, now: datetime.datetime) -> tuple[str, str]:
    deadline = timezone.localtime(incident.notification_deadline)
    rule = "PECR reg. 5A(2) as amended" if incident.pecr else "UK GDPR Art. 33"
    if kind == BreachReminder.Kind.OVERDUE:
        subject = f"[Fusion privacy] {incident.reference}: the 72 hours to notify the ICO have passed"
    else:
        left = incident.notification_deadline - now
        hours = int(left.total_seconds() // 3600)
        subject = f"[Fusion privacy] {incident.reference}: {hours} hours left to decide on notifying the ICO"
    body = (
        f"Incident {incident.reference} ({incident.title}).\n"
        f"Became aware: {timezone.localtime(incident.became_aware_at):%a %d %b %Y %H:%M %Z}.\n"
        f"Notify the ICO by: {deadline:%a %d %b %Y %H:%M %Z} (72 hours after awareness, {rule}).\n"
        f"ICO decision: {incident.get_ico_decision_display()}; not notified yet. A notification after the "
        "deadline must give the reasons for the delay.\n"
        f"{settings.SITE_URL}/privacy/breaches/{incident.pk}/\n"
    )
    return subject, body


def breach_reminders_send(*, now: datetime.datetime) -> list[BreachReminder]:
    """Remind the DPO group of every open, undecided incident (UK GDPR or PECR alike) at 24 h, 48 h and
    72 h after awareness, each once: the reminder row (unique per incident and kind) is written with the
    mail in one transaction, so a second run, or two racing runs, send nothing more. A run that finds several
    reminders due for one incident (the task did not run for a day) sends only the latest."""
    sent: list[BreachReminder] = []
    recipients = selectors.dpo_email_addresses()
    for incident in incidents_needing_reminders(now=now):
        elapsed = now - incident.became_aware_at
        due = [kind for kind, after in REMINDER_AFTER.items() if elapsed >= after]
        done = set(incident.reminders.values_list("kind", flat=True))
        missing = [kind for kind in due if kind not in done]
        if not missing:
            continue
        try:
            with transaction.atomic():
                rows = [
                    BreachReminder.objects.create(
                        incident=incident, kind=kind, sent_at=now, recipients=len(recipients)
                    )
                    for kind in missing
                ]
                subject, body = _reminder_text(incident, missing[-1], now)
                messages = tuple(
                    (subject, body, settings.DEFAULT_FROM_EMAIL, [address]) for address in recipients
                )
                if messages:
                    transaction.on_commit(lambda m=messages: send_mass_mail(m, fail_silently=False))  # type: ignore[misc]
        except IntegrityError:
            continue  # another run recorded it first
        sent.extend(rows)
    return sent


# Evidence reads ----------------------------------------------------------------------------------------


def _log_reads(
    *, actor: User, incident: BreachIncident, subjects: Sequence[AffectedSubject], why: str
) -> list[AccessLog]:
    entries = [
        AccessLog(
            user=actor,
            customer=subject.customer,
            customer_reference=subject.customer.reference,
            action=AccessLog.Action.BREACH_REVIEW,
            fields=["breach.affected_subjects"],
            reason=f"{why} of incident {incident.reference}",
        )
        for subject in subjects
    ]
    return AccessLog.objects.bulk_create(entries)


@transaction.atomic
def breach_affected_list_viewed(
    *, incident: BreachIncident, actor: User, subjects: Sequence[AffectedSubject]
) -> list[AccessLog]:
    """Every view of an incident's affected customers is in the access log, one entry per customer."""
    entries = _log_reads(actor=actor, incident=incident, subjects=subjects, why="Affected-subject list")
    audit_record(
        actor=actor, action="breach.affected_viewed", target=incident, detail={"customers": len(entries)}
    )
    return entries


@transaction.atomic
def breach_affected_exported(
    *, incident: BreachIncident, actor: User, subjects: Sequence[AffectedSubject]
) -> list[AccessLog]:
    """The export of the list is an export like any other: audited as ``export.breach_affected``."""
    entries = _log_reads(actor=actor, incident=incident, subjects=subjects, why="Export of the affected list")
    audit_record(
        actor=actor, action="export.breach_affected", target=incident, detail={"customers": len(entries)}
    )
    return entries
