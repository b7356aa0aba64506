"""The DPO's breach register: the list with each incident's 72-hour clock and the unusual-access alerts an
incident can be opened from (prefilled with the alert's facts), an incident's page with its decisions and
history, correction with a reason, the customers the evidence shows were reached (every view of them is
in the access log), their CSV export (audited as an export), the draft notices to them, and a printable
report with what the ICO's breach report form asks for. Thin: the clock and the evidence live in
privacy.breaches, the writes in privacy.services.breaches."""

import csv
import datetime
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import AuditEvent, Role, User
from accounts.security import staff_user_with
from fusion_site.personal_data import Category
from privacy import breaches
from privacy.models import BreachIncident
from privacy.models.breaches import PECR_SUBJECTS_LABELS
from privacy.services import breaches as services

VIEW = "privacy.view_breachincident"
ADD = "privacy.add_breachincident"
CHANGE = "privacy.change_breachincident"
ALERTS_LISTED = 20
DATETIME_WIDGET = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


PECR_CHOICES = [
    ("True", "Yes: PECR reg. 5A, the ICO within 72 hours"),
    ("False", "No: UK GDPR Art. 33, the ICO within 72 hours"),
]


class IncidentForm(forms.ModelForm):
    # A required choice with nothing preselected: the regime decides whom we tell and in which words, and
    # which incidents make the PECR breach log (reg. 5A(8)), so it is answered, not defaulted (a checkbox
    # left unticked would silently mean UK GDPR). The ICO deadline is 72 hours either way (reg. 5A(2) as
    # amended by the Data (Use and Access) Act 2025 s.111, in force 20 August 2025, SI 2025/904 reg. 2(p)).
    pecr = forms.TypedChoiceField(
        label=BreachIncident._meta.get_field("pecr").verbose_name,
        choices=PECR_CHOICES,
        coerce=lambda value: value == "True",
        widget=forms.RadioSelect,
        help_text="Personal data processed in providing our telephony and broadband service to the public: "
        "PECR reg. 5A applies instead of UK GDPR breach reporting.",
        error_messages={
            "required": "Say whether the breach is in connection with our public electronic "
            "communications service (PECR reg. 5A)."
        },
    )
    data_categories = forms.MultipleChoiceField(
        choices=Category.choices, widget=forms.CheckboxSelectMultiple, help_text="From the data map."
    )
    subject_categories = forms.MultipleChoiceField(
        choices=BreachIncident.SubjectCategory.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = BreachIncident
        fields = list(services.FACT_FIELDS)
        widgets = {
            "occurred_at": DATETIME_WIDGET,
            "became_aware_at": DATETIME_WIDGET,
            "evidence_from": DATETIME_WIDGET,
            "evidence_until": DATETIME_WIDGET,
            "description": forms.Textarea(attrs={"rows": 4}),
            "likely_consequences": forms.Textarea(attrs={"rows": 3}),
            "measures_taken": forms.Textarea(attrs={"rows": 3}),
            "measures_proposed": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        staff = User.objects.filter(is_active=True, customer__isnull=True).order_by("email")
        handler = self.fields["handler"]
        assert isinstance(handler, forms.ModelChoiceField)
        handler.queryset = staff.filter(
            groups__name__in=[Role.DATA_PROTECTION_OFFICER.value, Role.ADMINISTRATOR.value]
        ).distinct()
        suspect = self.fields["suspect"]
        assert isinstance(suspect, forms.ModelChoiceField)
        suspect.queryset = staff


class CorrectionForm(IncidentForm):
    reason = forms.CharField(max_length=500, help_text="Why the record is corrected (kept in its history).")


class IcoDecisionForm(forms.Form):
    ico_decision = forms.ChoiceField(
        choices=[c for c in BreachIncident.IcoDecision.choices if c[0]], widget=forms.RadioSelect
    )
    ico_decision_reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000)
    ico_notified_at = forms.DateTimeField(
        required=False, widget=DATETIME_WIDGET, help_text="When it was sent."
    )
    ico_reference = forms.CharField(required=False, max_length=60, help_text="The ICO's case reference.")
    delay_reasons = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required when the ICO is told more than 72 hours after awareness.",
    )


class SubjectsDecisionForm(forms.Form):
    subjects_decision = forms.ChoiceField(
        label="Decision",
        choices=[c for c in BreachIncident.SubjectsDecision.choices if c[0]],
        widget=forms.RadioSelect,
    )
    subjects_decision_reason = forms.CharField(
        label="Reason", widget=forms.Textarea(attrs={"rows": 2}), max_length=4000
    )


def subjects_form_for(incident: BreachIncident, data: object = None) -> SubjectsDecisionForm:
    """Under PECR the question is reg. 5A(3)'s (likely to adversely affect a subscriber or user), not Art.
    34's (high risk): the same decision, asked in the regime's words."""
    form = SubjectsDecisionForm(data)  # type: ignore[arg-type]
    if incident.pecr:
        decision = form.fields["subjects_decision"]
        assert isinstance(decision, forms.ChoiceField)
        decision.choices = PECR_SUBJECTS_LABELS
    return form


class CloseForm(forms.Form):
    closure_note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000)


class EvidenceForm(forms.Form):
    user = forms.EmailField(label="Staff user's email", help_text="Whose access to read.")
    start = forms.DateTimeField(widget=DATETIME_WIDGET)
    end = forms.DateTimeField(widget=DATETIME_WIDGET)

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("user"):
            found = breaches.staff_user_by_email(str(data["user"]))
            if found is None:
                self.add_error("user", "No staff user has this email address.")
            data["staff_user"] = found
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", "The end of the window must be after its start.")
        return data


def _access_incident(pk: int) -> BreachIncident:
    return get_object_or_404(breaches.incidents_for_register(), pk=pk)


# Alerts -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    event: AuditEvent
    subject: str
    user: User | None

    @property
    def window(self) -> datetime.timedelta:
        return datetime.timedelta(minutes=settings.ALERT_WINDOW_MINUTES)


def _alert_user_id(key: str) -> int | None:
    kind, _, rest = key.partition(":")
    if kind in {"reveals", "exports", "cross-partner"}:
        first = rest.split(":")[0]
        return int(first) if first.isdigit() else None
    return None


def _alerts(events: list[AuditEvent]) -> list[Alert]:
    ids = {_alert_user_id(str(event.detail.get("key", ""))) for event in events}
    users = User.objects.in_bulk([pk for pk in ids if pk is not None])
    return [
        Alert(
            event,
            str(event.detail.get("subject", "")),
            users.get(_alert_user_id(str(event.detail.get("key", ""))) or 0),
        )
        for event in events
    ]


def _recent_alerts() -> list[Alert]:
    return _alerts(list(AuditEvent.objects.filter(action="alert.sent").order_by("-id")[:ALERTS_LISTED]))


def _from_alert(event_id: str, handler: User) -> tuple[dict[str, object], int | None]:
    event = (
        AuditEvent.objects.filter(action="alert.sent", pk=event_id).first() if event_id.isdigit() else None
    )
    if event is None:
        return {"handler": handler.pk}, None
    (alert,) = _alerts([event])
    at = timezone.localtime(event.at)
    start = at - alert.window
    initial: dict[str, object] = {
        "title": alert.subject.removeprefix("[Fusion security] ")[:200],
        "occurred_at": start,
        "became_aware_at": at,
        "description": f"Opened from the unusual-access alert of {at:%d %b %Y %H:%M} (audit event "
        f"{event.pk}): {alert.subject}",
        "handler": handler.pk,
        "evidence_from": start,
        # The alert fires on the access that crossed the line: the window ends just after it.
        "evidence_until": at + datetime.timedelta(minutes=1),
        "data_categories": [],
        "subject_categories": [BreachIncident.SubjectCategory.CUSTOMERS],
    }
    if alert.user is not None:
        initial["suspect"] = alert.user.pk
    return initial, event.pk


# Pages -------------------------------------------------------------------------------------------------


@login_required
@require_GET
def breach_register(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, VIEW)
    now = timezone.now()
    pecr_only = request.GET.get("regime") == "pecr"
    incidents = [
        (incident, breaches.clock_of(incident, now=now))
        for incident in breaches.incidents_for_register(pecr_only=pecr_only)
    ]
    return render(
        request,
        "privacy/breaches.html",
        {
            "incidents": incidents,
            "alerts": _recent_alerts(),
            "can_add": user.has_perm(ADD),
            "now": now,
            "pecr_only": pecr_only,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def breach_new(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, ADD)
    alert_id = request.GET.get("alert", "") or request.POST.get("alert", "")
    initial, source = _from_alert(alert_id, user)
    form = IncidentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        facts = {name: form.cleaned_data[name] for name in services.FACT_FIELDS}
        try:
            incident = services.breach_incident_create(actor=user, source_alert_event=source, **facts)
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(
                request,
                f"Incident {incident.reference} recorded: the 72-hour clock is running.",
            )
            return redirect("privacy:breach", pk=incident.pk)
    return render(request, "privacy/breach_form.html", {"form": form, "alert_id": source, "incident": None})


def _errors_to_form(form: forms.BaseForm, error: ValidationError) -> None:
    for field, problems in error.message_dict.items():
        form.add_error(field if field in form.fields else None, problems)


@login_required
@require_GET
def breach_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, VIEW)
    incident = _access_incident(pk)
    history = list(incident.history.select_related("history_user").order_by("-history_date", "-history_id"))
    return render(
        request,
        "privacy/breach_detail.html",
        _detail_context(user, incident, history=history),
    )


def _detail_context(user: User, incident: BreachIncident, **extra: object) -> dict[str, object]:
    context: dict[str, object] = {
        "incident": incident,
        "clock": breaches.clock_of(incident, now=timezone.now()),
        "reminders": list(incident.reminders.all()),
        "can_change": user.has_perm(CHANGE),
        "ico_form": IcoDecisionForm(
            initial={"ico_notified_at": timezone.localtime().replace(second=0, microsecond=0)}
        ),
        "subjects_form": subjects_form_for(incident),
        "close_form": CloseForm(),
        "close_refusal": services.breach_close_refusal(incident=incident),
    }
    context.update(extra)
    return context


@login_required
@require_http_methods(["GET", "POST"])
def breach_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, CHANGE)
    incident = _access_incident(pk)
    form = CorrectionForm(request.POST or None, instance=incident)
    if request.method == "POST" and form.is_valid():
        changes = {
            name: form.cleaned_data[name] for name in form.changed_data if name in services.FACT_FIELDS
        }
        try:
            services.breach_incident_update(
                incident=BreachIncident.objects.get(pk=incident.pk),
                actor=user,
                reason=form.cleaned_data["reason"],
                changes=changes,
            )
        except ValidationError as error:
            _errors_to_form(form, error)
        else:
            messages.success(request, f"Incident {incident.reference} corrected.")
            return redirect("privacy:breach", pk=incident.pk)
    return render(request, "privacy/breach_form.html", {"form": form, "incident": incident, "alert_id": None})


@login_required
@require_POST
def breach_decide(request: HttpRequest, pk: int, what: str) -> HttpResponse:
    user = staff_user_with(request, CHANGE)
    incident = _access_incident(pk)
    form: forms.Form
    try:
        if what == "ico":
            form = IcoDecisionForm(request.POST)
            if form.is_valid():
                data = form.cleaned_data
                services.breach_ico_decide(
                    incident=incident,
                    actor=user,
                    decision=data["ico_decision"],
                    reason=data["ico_decision_reason"],
                    notified_at=data["ico_notified_at"],
                    ico_reference=data["ico_reference"],
                    delay_reasons=data["delay_reasons"],
                )
        elif what == "subjects":
            form = subjects_form_for(incident, request.POST)
            if form.is_valid():
                services.breach_subjects_decide(
                    incident=incident,
                    actor=user,
                    decision=form.cleaned_data["subjects_decision"],
                    reason=form.cleaned_data["subjects_decision_reason"],
                )
        elif what == "close":
            form = CloseForm(request.POST)
            if form.is_valid():
                services.breach_incident_close(
                    incident=incident, actor=user, note=form.cleaned_data["closure_note"]
                )
        else:
            raise Http404
    except ValidationError as error:
        _errors_to_form(form, error)
    if form.errors:
        history = list(
            incident.history.select_related("history_user").order_by("-history_date", "-history_id")
        )
        context = _detail_context(user, incident, history=history, **{f"{what}_form": form})
        return render(request, "privacy/breach_detail.html", context, status=400)
    messages.success(request, "Decision recorded." if what != "close" else "Incident closed.")
    return redirect("privacy:breach", pk=incident.pk)


def _evidence_form(data: object, incident: BreachIncident) -> EvidenceForm:
    initial = {
        "user": incident.suspect.email if incident.suspect_id and incident.suspect else "",
        "start": timezone.localtime(incident.evidence_from) if incident.evidence_from else None,
        "end": timezone.localtime(incident.evidence_until) if incident.evidence_until else None,
    }
    if not data:
        data = {
            key: (value.strftime("%Y-%m-%dT%H:%M") if isinstance(value, datetime.datetime) else value)
            for key, value in initial.items()
            if value
        } or None
    return EvidenceForm(data, initial=initial)  # type: ignore[arg-type]


@login_required
@require_GET
def breach_affected(request: HttpRequest, pk: int) -> HttpResponse:
    """The customers the evidence shows were reached; this view is itself written to the access log."""
    user = staff_user_with(request, VIEW)
    incident = _access_incident(pk)
    form = _evidence_form(request.GET if "user" in request.GET else None, incident)
    subjects: list[breaches.AffectedSubject] = []
    if form.is_bound and form.is_valid():
        subjects = breaches.affected_subjects(
            user=form.cleaned_data["staff_user"],
            start=form.cleaned_data["start"],
            end=form.cleaned_data["end"],
        )
        services.breach_affected_list_viewed(incident=incident, actor=user, subjects=subjects)
    notices = request.GET.get("notices") == "1"
    return render(
        request,
        "privacy/breach_affected.html",
        {
            "incident": incident,
            "form": form,
            "subjects": subjects,
            "totals": breaches.category_totals(subjects),
            "searched": form.is_bound and form.is_valid(),
            "notices": [(subject, breaches.subject_notice(incident, subject)) for subject in subjects]
            if notices
            else [],
            "query": request.GET.urlencode(),
        },
    )


@login_required
@require_POST
def breach_affected_csv(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, VIEW)
    incident = _access_incident(pk)
    form = EvidenceForm(request.POST)
    if not form.is_valid():
        for field, problems in form.errors.items():
            for problem in problems:
                messages.error(request, f"{field}: {problem}")
        return redirect("privacy:breach_affected", pk=incident.pk)
    subjects = breaches.affected_subjects(
        user=form.cleaned_data["staff_user"], start=form.cleaned_data["start"], end=form.cleaned_data["end"]
    )
    services.breach_affected_exported(incident=incident, actor=user, subjects=subjects)
    categories = sorted(breaches.category_totals(subjects))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{incident.reference}-affected.csv"'
    writer = csv.writer(response)
    writer.writerow(["customer_reference", "accesses", "first_at", "last_at", *categories])
    for subject in subjects:
        writer.writerow(
            [
                subject.customer.reference,
                subject.events,
                subject.first_at.isoformat() if subject.first_at else "",
                subject.last_at.isoformat() if subject.last_at else "",
                *[subject.categories.get(category, 0) for category in categories],
            ]
        )
    return response


@login_required
@require_GET
def breach_report(request: HttpRequest, pk: int) -> HttpResponse:
    staff_user_with(request, VIEW)
    incident = _access_incident(pk)
    return render(
        request,
        "privacy/breach_report.html",
        {
            "incident": incident,
            "clock": breaches.clock_of(incident, now=timezone.now()),
            "controller": settings.BREACH_CONTACT,
            "printed_at": timezone.now(),
        },
    )
