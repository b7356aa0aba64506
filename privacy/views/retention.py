"""The DPO's retention page: runs with a chart of deletions per night, customers due in the next 30 days,
customers past their period kept because they owe money (amount, and age of the oldest unpaid invoice),
legal holds (set and lift, POST only) and the policies (change a period, with a reason). Thin: the rules
live in privacy.retention, the writes in privacy.services.retention."""

import datetime
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Exists, F, OuterRef
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Customer, Role, User
from accounts.security import staff_user_with
from accounts.selectors import access_customer
from billing.personal_data import with_debt
from fusion_site.charts import Axis, Chart, bar_chart
from fusion_site.money import to_money
from privacy.models import LegalHold, RetentionPolicy, RetentionRun
from privacy.retention import active_holds, customers_due_between, customers_past_due, deletion_date
from privacy.services import retention as services

VIEW_RUNS = "privacy.view_retentionrun"
MANAGE_HOLDS = "privacy.manage_legalhold"
CHANGE_POLICY = "privacy.change_retentionpolicy"
DUE_SOON_DAYS = 30
DUE_SOON_LISTED = 100
RUNS_LISTED = 30


class LegalHoldForm(forms.Form):
    customer_reference = forms.CharField(max_length=20, help_text="The account to keep, e.g. C-000123.")
    kind = forms.ChoiceField(choices=LegalHold.Kind.choices)
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=2000,
        help_text="A case, claim or invoice number and what it is about; no personal details.",
    )
    owner = forms.ModelChoiceField(queryset=User.objects.none(), help_text="Who reviews the hold.")
    review_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        owner = self.fields["owner"]
        assert isinstance(owner, forms.ModelChoiceField)
        owner.queryset = User.objects.filter(is_active=True, groups__name=Role.DATA_PROTECTION_OFFICER.value)


class LiftHoldForm(forms.Form):
    lift_reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class PolicyForm(forms.Form):
    months = forms.IntegerField(min_value=0, max_value=720)
    enabled = forms.BooleanField(required=False)
    reason = forms.CharField(max_length=500, help_text="Why the period changes (kept in the history).")


@dataclass(frozen=True)
class KeptForDebt:
    customer: Customer
    owes: Decimal
    oldest_unpaid: datetime.date | None
    age_days: int | None


def _kept_for_debt(today: datetime.date, months: int) -> tuple[list[KeptForDebt], int]:
    """Customers past their period who owe money (the retention job's "debt" reason), the oldest debt
    first: two queries however many there are."""
    debtors = with_debt(customers_past_due(today, months))
    total = debtors.count()
    rows = debtors.select_related("partner").order_by(F("oldest_unpaid").asc(nulls_last=True), "pk")
    listed = [
        KeptForDebt(
            customer,
            to_money(Decimal(customer.balance)),
            customer.oldest_unpaid,
            (today - customer.oldest_unpaid).days if customer.oldest_unpaid else None,
        )
        for customer in rows[:DUE_SOON_LISTED]
    ]
    return listed, total


@dataclass(frozen=True)
class DueSoon:
    customer: Customer
    deletes_on: datetime.date
    held: bool


def _chart(runs: list[RetentionRun]) -> Chart:
    """Rows deleted per night, by policy, oldest night first."""
    nights = sorted({run.run_on for run in runs})
    per_policy: dict[str, dict[datetime.date, int]] = defaultdict(lambda: defaultdict(int))
    for run in runs:
        for policy, tables in run.counts.items():
            per_policy[policy][run.run_on] += sum(tables.values())
    series = [(policy, [per_policy[policy][night] for night in nights]) for policy in sorted(per_policy)]
    return bar_chart(
        key="retention",
        title="Rows deleted per night, by retention policy",
        x_axis=Axis("Night of the run"),
        y_axis=Axis("Deleted", "rows"),
        labels=[f"{night:%d %b}" for night in nights],
        series=series,
        stacked=True,
    )


@login_required
@require_GET
def retention_overview(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, VIEW_RUNS)
    today = timezone.localdate()
    runs = list(RetentionRun.objects.select_related("actor")[:RUNS_LISTED])
    account_policy = RetentionPolicy.objects.filter(key="customer_account").first()
    due_soon: list[DueSoon] = []
    due_soon_total = 0
    kept_for_debt: list[KeptForDebt] = []
    kept_for_debt_total = 0
    if account_policy is not None:
        months = account_policy.months
        kept_for_debt, kept_for_debt_total = _kept_for_debt(today, months)
        upcoming = customers_due_between(today, today + datetime.timedelta(days=DUE_SOON_DAYS), months)
        due_soon_total = upcoming.count()
        rows = upcoming.annotate(held=Exists(active_holds().filter(customer_id=OuterRef("pk")))).order_by(
            "contract_end", "pk"
        )[:DUE_SOON_LISTED]
        due_soon = [
            DueSoon(customer, deletion_date(customer.contract_end, months), customer.held)
            for customer in rows.select_related("partner")
        ]
    holds = list(active_holds().select_related("customer", "owner", "set_by").order_by("review_on", "id"))
    context = {
        "runs": runs,
        "chart": _chart([run for run in runs if not run.dry_run]),
        "due_soon": due_soon,
        "due_soon_total": due_soon_total,
        "due_soon_days": DUE_SOON_DAYS,
        "kept_for_debt": kept_for_debt,
        "kept_for_debt_total": kept_for_debt_total,
        "holds": holds,
        "today": today,
        "policies": RetentionPolicy.objects.order_by("key"),
        "can_manage_holds": user.has_perm(MANAGE_HOLDS),
        "can_change_policies": user.has_perm(CHANGE_POLICY),
        "hold_form": LegalHoldForm(initial={"owner": user.pk}),
        "lift_form": LiftHoldForm(),
    }
    return render(request, "privacy/retention.html", context)


def _report_errors(request: HttpRequest, error: ValidationError | forms.Form) -> None:
    errors = error.errors if isinstance(error, forms.Form) else error.message_dict
    for field, problems in errors.items():
        for problem in problems:
            messages.error(request, f"{field.replace('_', ' ')}: {problem}")


@login_required
@require_POST
def legal_hold_set_view(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, MANAGE_HOLDS)
    form = LegalHoldForm(request.POST)
    if not form.is_valid():
        _report_errors(request, form)
        return redirect("privacy:retention")
    customer = access_customer(user, form.cleaned_data["customer_reference"])
    try:
        hold = services.legal_hold_set(
            customer=customer,
            kind=form.cleaned_data["kind"],
            reason=form.cleaned_data["reason"],
            owner=form.cleaned_data["owner"],
            review_on=form.cleaned_data["review_on"],
            actor=user,
        )
    except ValidationError as error:
        _report_errors(request, error)
    else:
        messages.success(request, f"{hold.get_kind_display()} hold set on {customer.reference}.")
    return redirect("privacy:retention")


@login_required
@require_POST
def legal_hold_lift_view(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, MANAGE_HOLDS)
    hold = get_object_or_404(LegalHold.objects.select_related("customer"), pk=pk)
    access_customer(user, hold.customer.reference)
    form = LiftHoldForm(request.POST)
    if not form.is_valid():
        _report_errors(request, form)
        return redirect("privacy:retention")
    try:
        services.legal_hold_lift(hold=hold, actor=user, reason=form.cleaned_data["lift_reason"])
    except ValidationError as error:
        _report_errors(request, error)
    else:
        messages.success(request, f"Hold on {hold.customer.reference} lifted.")
    return redirect("privacy:retention")


@login_required
@require_POST
def retention_policy_edit(request: HttpRequest, pk: int) -> HttpResponse:
    user = staff_user_with(request, CHANGE_POLICY)
    policy = get_object_or_404(RetentionPolicy, pk=pk)
    form = PolicyForm(request.POST)
    if not form.is_valid():
        _report_errors(request, form)
        return redirect("privacy:retention")
    try:
        services.retention_policy_update(
            policy=policy,
            actor=user,
            reason=form.cleaned_data["reason"],
            months=form.cleaned_data["months"],
            enabled=form.cleaned_data["enabled"],
        )
    except ValidationError as error:
        _report_errors(request, error)
    else:
        messages.success(request, f"{policy.title}: now {form.cleaned_data['months']} months.")
    return redirect("privacy:retention")
