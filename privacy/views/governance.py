"""The DPO's governance pages: the processors register (list, detail with history, create and edit with a
reason) and the data protection impact assessments (one per processing activity of the data map: screening,
description, necessity, risks with the risk matrix, DPO advice, sign-off). Thin: the rules live in
privacy.governance, the writes in privacy.services.governance. Only the DPO and administrators hold the
permissions (privacy/migrations/0011_processors_seed_and_governance_roles.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.security import staff_user_with
from fusion_site.personal_data import Category
from privacy import data_map, governance, selectors
from privacy.models import AssessmentRisk, ImpactAssessment, Processor
from privacy.permissions import PrivacyPermission
from privacy.services import governance as services

HISTORY_LISTED = 50


def _add_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """A service's refusal shown on the field it names (or above the form when no field shows it)."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, problems in error.message_dict.items():
        if field in form.fields:
            form.add_error(field, problems)
        else:
            form.add_error(None, [f"{field.replace('_', ' ')}: {problem}" for problem in problems])


def _activity_choices() -> list[tuple[str, str]]:
    return [(activity.name, activity.name) for activity in data_map.ACTIVITIES]


# Processors --------------------------------------------------------------------------------------------


class ProcessorForm(forms.Form):
    key = forms.SlugField(max_length=40, help_text="The short name the data map's declarations use.")
    name = forms.CharField(max_length=200)
    role = forms.ChoiceField(choices=Processor.Role.choices)
    service = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), help_text="What it does for us.")
    activities = forms.MultipleChoiceField(
        choices=(), widget=forms.CheckboxSelectMultiple, required=False, help_text="From the data map."
    )
    data_categories = forms.MultipleChoiceField(
        choices=Category.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    data_description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    contract_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    review_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    location = forms.CharField(max_length=200)
    transfer_mechanism = forms.ChoiceField(choices=Processor.TransferMechanism.choices)
    sub_processors = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    security_assurances = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    reason = forms.CharField(max_length=500, help_text="Why you make this change (kept in the history).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        activities = self.fields["activities"]
        assert isinstance(activities, forms.MultipleChoiceField)
        activities.choices = _activity_choices()


def _processor_initial(processor: Processor) -> dict[str, Any]:
    return {name: getattr(processor, name) for name in services.PROCESSOR_FIELDS}


@login_required
def processors(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.VIEW_PROCESSOR)
    today = timezone.localdate()
    return render(
        request,
        "privacy/processors.html",
        {
            "processors": selectors.processors_register(),
            "today": today,
            "can_add": user.has_perm(PrivacyPermission.ADD_PROCESSOR),
        },
    )


@dataclass(frozen=True)
class HistoryRow:
    at: Any
    user: Any
    kind: str
    reason: str
    changes: list[tuple[str, Any, Any]]


def _history(instance: Any) -> list[HistoryRow]:
    """The instance's history, newest first, each row with what changed from the row before it."""
    records = list(instance.history.select_related("history_user").order_by("-history_id")[:HISTORY_LISTED])
    rows = []
    for index, record in enumerate(records):
        older = records[index + 1] if index + 1 < len(records) else None
        changes = []
        if older is not None:
            delta = record.diff_against(older)
            changes = [(change.field.replace("_", " "), change.old, change.new) for change in delta.changes]
        rows.append(
            HistoryRow(
                record.history_date,
                record.history_user,
                record.get_history_type_display(),
                record.history_change_reason or "",
                changes,
            )
        )
    return rows


@login_required
def processor_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.VIEW_PROCESSOR)
    processor = selectors.access_processor(user, pk)
    return render(
        request,
        "privacy/processor_detail.html",
        {
            "processor": processor,
            "history": _history(processor),
            "today": timezone.localdate(),
            "can_change": user.has_perm(PrivacyPermission.CHANGE_PROCESSOR),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def processor_new(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.ADD_PROCESSOR)
    form = ProcessorForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        reason = fields.pop("reason")
        try:
            processor = services.processor_create(actor=user, reason=reason, **fields)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"{processor.name} added to the register.")
            return redirect("privacy:processor", processor.pk)
    return render(request, "privacy/processor_form.html", {"form": form, "processor": None})


@login_required
@require_http_methods(["GET", "POST"])
def processor_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.CHANGE_PROCESSOR)
    processor = selectors.access_processor(user, pk)
    form = ProcessorForm(request.POST or None, initial=_processor_initial(processor))
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        reason = fields.pop("reason")
        try:
            services.processor_update(processor=processor, actor=user, reason=reason, **fields)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"{processor.name} changed.")
            return redirect("privacy:processor", processor.pk)
    return render(request, "privacy/processor_form.html", {"form": form, "processor": processor})


# Impact assessments ------------------------------------------------------------------------------------


class AssessmentForm(forms.Form):
    screening = forms.MultipleChoiceField(
        choices=list(governance.SCREENING_CRITERIA.items()),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Screening: the ICO's criteria for likely high risk that the processing meets",
    )
    screening_notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    description = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        required=False,
        label="Description of the processing",
        help_text="Nature, scope, context and purposes. No personal details.",
    )
    necessity = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, label="Necessity and proportionality"
    )
    dpo_advice = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, label="DPO advice")
    reason = forms.CharField(max_length=500, required=False, help_text="What you changed and why (history).")


class NewAssessmentForm(AssessmentForm):
    activity = forms.ChoiceField(choices=())
    field_order = ["activity"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        taken = set(ImpactAssessment.objects.values_list("activity", flat=True))
        activity = self.fields["activity"]
        assert isinstance(activity, forms.ChoiceField)
        activity.choices = [choice for choice in _activity_choices() if choice[0] not in taken]


class RiskForm(forms.ModelForm):
    class Meta:
        model = AssessmentRisk
        fields = list(services.RISK_FIELDS)
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "measures": forms.Textarea(attrs={"rows": 2}),
        }


class SignOffForm(forms.Form):
    review_on = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"), label="Next review on"
    )


@login_required
def assessments(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.VIEW_ASSESSMENT)
    rows = selectors.activities_with_assessments(today=timezone.localdate())
    names = {row.activity.name for row in rows}
    orphans = ImpactAssessment.objects.exclude(activity__in=names).order_by("activity")
    return render(
        request,
        "privacy/assessments.html",
        {"rows": rows, "orphans": orphans, "can_add": user.has_perm(PrivacyPermission.ADD_ASSESSMENT)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def assessment_new(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.ADD_ASSESSMENT)
    form = NewAssessmentForm(request.POST or None, initial={"activity": request.GET.get("activity", "")})
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        fields.pop("reason")
        try:
            assessment = services.assessment_create(actor=user, **fields)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, f"Assessment of {assessment.activity} started.")
            return redirect("privacy:assessment", assessment.pk)
    return render(request, "privacy/assessment_form.html", {"form": form, "assessment": None})


@login_required
@require_http_methods(["GET", "POST"])
def assessment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.CHANGE_ASSESSMENT)
    assessment = selectors.access_assessment(user, pk)
    initial = {name: getattr(assessment, name) for name in services.ASSESSMENT_FIELDS}
    form = AssessmentForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        reason = fields.pop("reason")
        try:
            services.assessment_update(assessment=assessment, actor=user, reason=reason, **fields)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Assessment saved (a draft until signed off).")
            return redirect("privacy:assessment", assessment.pk)
    return render(request, "privacy/assessment_form.html", {"form": form, "assessment": assessment})


def _assessment_context(user: Any, assessment: ImpactAssessment, **extra: Any) -> dict[str, Any]:
    activity = governance.activity_of(assessment.activity)
    state = governance.assessment_state(
        assessment,
        today=timezone.localdate(),
        current=governance.fingerprint(activity) if activity else None,
    )
    risks = list(assessment.risks.order_by("pk"))
    criteria = governance.SCREENING_CRITERIA
    return {
        "assessment": assessment,
        "activity": activity,
        "state": state,
        "screening": [(key, criteria.get(key, key)) for key in assessment.screening],
        "risks": [(number, risk) for number, risk in enumerate(risks, start=1)],
        "matrix": governance.risk_matrix(risks),
        "history": _history(assessment),
        "reminders": assessment.reminders.order_by("-sent_at"),
        "can_change": user.has_perm(PrivacyPermission.CHANGE_ASSESSMENT),
        "can_sign_off": user.has_perm(PrivacyPermission.SIGN_OFF_ASSESSMENT),
        "sign_off_form": extra.pop("sign_off_form", SignOffForm()),
        **extra,
    }


@login_required
def assessment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.VIEW_ASSESSMENT)
    assessment = selectors.access_assessment(user, pk)
    return render(request, "privacy/assessment_detail.html", _assessment_context(user, assessment))


@login_required
@require_http_methods(["GET", "POST"])
def assessment_risk(request: HttpRequest, pk: int, risk_pk: int | None = None) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.CHANGE_ASSESSMENT)
    assessment = selectors.access_assessment(user, pk)
    risk = None
    if risk_pk is not None:
        risk = assessment.risks.filter(pk=risk_pk).first()
        if risk is None:
            raise Http404
    form = RiskForm(request.POST or None, instance=risk)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in services.RISK_FIELDS}
        try:
            services.assessment_risk_save(assessment=assessment, actor=user, risk=risk, **fields)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Risk saved.")
            return redirect("privacy:assessment", assessment.pk)
    return render(
        request, "privacy/assessment_risk_form.html", {"form": form, "assessment": assessment, "risk": risk}
    )


@login_required
@require_POST
def assessment_sign_off(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.SIGN_OFF_ASSESSMENT)
    assessment = selectors.access_assessment(user, pk)
    form = SignOffForm(request.POST)
    if form.is_valid():
        try:
            services.assessment_sign_off(
                assessment=assessment, actor=user, review_on=form.cleaned_data["review_on"]
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, "Assessment signed off.")
            return redirect("privacy:assessment", assessment.pk)
    context = _assessment_context(user, assessment, sign_off_form=form)
    return render(request, "privacy/assessment_detail.html", context, status=400)
