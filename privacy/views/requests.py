"""Privacy request pages: the DPO queue, a request with its timeline and steps, the new-request form, the
DSR register download, and the customer's own requests in the portal. Thin: reads through
privacy.selectors, writes through privacy.services.requests."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import access_transparency, pii
from accounts.models import AccessLog, Contact, Customer, User
from accounts.security import signed_in_user
from accounts.selectors import access_customer, customers_visible_to
from accounts.services import access_log_record, system_user
from accounts.site_details import Visibility
from billing.models import BillRun
from billing.selectors import bill_runs_visible_to
from fusion_site.charts import Axis, bar_chart
from fusion_site.pdf import pdf_download
from privacy import access_report, register, selectors
from privacy.forms import NewRequestForm, PortalRequestForm, SubjectCodeForm
from privacy.models import OPEN_STATES, TRANSITIONS, PrivacyPermission, PrivacyRequest, State
from privacy.services.requests.carrying_out import privacy_request_complete, privacy_request_lift_restriction
from privacy.services.requests.identity import (
    privacy_request_attest_identity,
    privacy_request_request_identity,
    privacy_request_send_identity_code,
    privacy_request_verify_identity_code,
)
from privacy.services.requests.receiving import privacy_request_receive
from privacy.services.requests.workflow import (
    privacy_request_approve,
    privacy_request_extend,
    privacy_request_hold,
    privacy_request_refusal,
    privacy_request_reject,
    privacy_request_resume,
    privacy_request_start,
    privacy_request_submit_for_approval,
    privacy_request_withdraw,
)

CHART_MONTHS = 12


def _require(user: User, permission: PrivacyPermission) -> None:
    if not user.is_staff or not user.has_perm(permission):
        raise PermissionDenied


QUEUE_PER_PAGE = 50


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """The open requests, soonest deadline first, 50 a page, optionally of one kind or urgency; the
    figures count the whole queue in the database, whatever the filter."""
    user = signed_in_user(request)
    _require(user, PrivacyPermission.VIEW)
    today = timezone.localdate()
    kind = request.GET.get("kind", "")
    kind = kind if kind in PrivacyRequest.Kind.values else ""
    due = request.GET.get("due", "")
    due = due if due in selectors.QUEUE_DUE_FILTERS else ""
    page = Paginator(
        selectors.open_queue_filtered(user, kind=kind, due=due, today=today), QUEUE_PER_PAGE
    ).get_page(request.GET.get("page"))
    rows = [(item, selectors.urgency_of(item, today=today)) for item in page]
    months, counts = selectors.requests_by_kind_and_month(
        selectors.privacy_requests_visible_to(user), months=CHART_MONTHS, today=today
    )
    chart = bar_chart(
        key="requests",
        title="Requests received per month, by kind",
        x_axis=Axis("Month received"),
        y_axis=Axis("Received", "requests"),
        labels=[f"{month:%b %y}" for month in months],
        series=[
            (str(label), [counts[kind][month] for month in months])
            for kind, label in PrivacyRequest.Kind.choices
        ],
        stacked=True,
    )
    context = {
        "page": page,
        "rows": rows,
        "today": today,
        "chart": chart,
        "figures": selectors.queue_figures(selectors.open_queue(user), today=today),
        "kind": kind,
        "kinds": PrivacyRequest.Kind.choices,
        "due": due,
        "due_filters": selectors.QUEUE_DUE_FILTERS.items(),
        "may_add": user.has_perm(PrivacyPermission.ADD),
        "may_download_register": user.has_perm(PrivacyPermission.CHANGE),
    }
    return render(request, "privacy/queue.html", context)


_FIELD_FOR_ERROR = {"customer": "customer_reference", "contact": "contact_id", "reason": None}


def _add_service_errors(form: Any, exc: ValidationError) -> None:
    """Show a service's errors next to the form field they name."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.message_dict.items():
        field = _FIELD_FOR_ERROR.get(name, name)
        form.add_error(field if field in form.fields else None, errors)


@login_required
@require_http_methods(["GET", "POST"])
def request_new(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    _require(user, PrivacyPermission.ADD)
    form = NewRequestForm(
        request.POST or None, initial={"customer_reference": request.GET.get("customer", "")}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        customer: Customer | None = None
        contact: Contact | None = None
        if data["customer_reference"]:
            pk = Customer.pk_from_reference(data["customer_reference"])
            customer = customers_visible_to(user).filter(pk=pk).first() if pk else None
            if customer is None:
                form.add_error("customer_reference", "No such customer.")
        if data["contact_id"]:
            contact = (
                Contact.objects.filter(customer=customer, pk=data["contact_id"]).first() if customer else None
            )
            if contact is None:
                form.add_error("contact_id", "No such contact of this customer.")
        if form.is_valid():
            try:
                created = privacy_request_receive(
                    kind=data["kind"],
                    channel=data["channel"],
                    details=data["details"],
                    actor=user,
                    customer=customer,
                    contact=contact,
                    subject_email=data["subject_email"],
                    received_on=data["received_on"],
                    objection_scope=data["objection_scope"],
                )
            except ValidationError as exc:
                _add_service_errors(form, exc)
            else:
                messages.success(request, f"{created.reference} recorded; due {created.due_on:%d %b %Y}.")
                return redirect("privacy:request", pk=created.pk)
    return render(request, "privacy/request_new.html", {"form": form})


@dataclass(frozen=True)
class Step:
    action: str
    label: str
    states: frozenset[str]
    input: str = ""  # "reason", "code" or "" for a plain button
    placeholder: str = "Reason"
    run: Callable[..., Any] | None = None
    transition: str = ""  # the step of the workflow table (TRANSITIONS) it takes, if it moves the request


_OPEN = frozenset(OPEN_STATES)


def _with_reason(service: Callable[..., Any]) -> Callable[..., Any]:
    return lambda item, user, post: service(privacy_request=item, actor=user, reason=post.get("reason", ""))


def _moving(
    transition: str,
    *,
    only_from: frozenset[str] | None = None,
    action: str = "",
    label: str = "",
    **rest: Any,
) -> Step:
    """The button for ``transition`` of the workflow table: shown in the states the table lets it start
    from (``only_from`` picks some of them, for a button of its own there), labelled as the table's step
    unless ``label`` says it better."""
    step = TRANSITIONS[transition]
    states = step.sources if only_from is None else only_from
    if not states <= step.sources:
        raise ImproperlyConfigured(
            f"{transition} starts only from {sorted(step.sources)}, not {sorted(states)}"
        )
    return Step(action or transition, label or step.label, frozenset(states), transition=transition, **rest)


# The page's buttons, in the order shown. The states of those that move a request come from the workflow
# table (privacy.models.TRANSITIONS), so the page offers exactly what the services accept; the others act
# within a state, and their states follow the service's own check.
STEPS = [
    _moving(
        "request_identity",
        label="Ask for proof of identity (emails a code)",
        run=_with_reason(privacy_request_request_identity),
    ),
    _moving(
        "verify_identity",
        action="verify_code",
        label="Check the code",
        input="code",
        placeholder="6-digit code",
        run=lambda item, user, post: privacy_request_verify_identity_code(
            privacy_request=item, code=post.get("code", ""), actor=user
        ),
    ),
    Step(
        "send_code",
        "Send a new code",
        frozenset({State.AWAITING_IDENTITY}),
        run=_with_reason(privacy_request_send_identity_code),
    ),
    Step(
        "attest",
        "Attest identity",
        frozenset({State.RECEIVED, State.AWAITING_IDENTITY}),
        input="reason",
        placeholder="How you verified the subject's identity",
        run=_with_reason(privacy_request_attest_identity),
    ),
    _moving("start", only_from=frozenset({State.RECEIVED}), run=_with_reason(privacy_request_start)),
    _moving(
        "start",
        only_from=frozenset({State.AWAITING_APPROVAL}),
        label="Return for more work",
        input="reason",
        placeholder="What is missing",
        run=_with_reason(privacy_request_start),
    ),
    _moving(
        "hold",
        input="reason",
        placeholder="Clarification asked for",
        run=_with_reason(privacy_request_hold),
    ),
    _moving("resume", run=_with_reason(privacy_request_resume)),
    Step(
        "extend",
        "Extend by two months",
        _OPEN - {State.AWAITING_IDENTITY},
        input="reason",
        placeholder="Reasons (sent to the subject)",
        run=_with_reason(privacy_request_extend),
    ),
    _moving("submit_for_approval", run=_with_reason(privacy_request_submit_for_approval)),
    Step(
        "approve",
        "Approve",
        frozenset({State.AWAITING_APPROVAL}),
        run=_with_reason(privacy_request_approve),
    ),
    _moving(
        "complete",
        input="reason",
        placeholder="Outcome (no personal data)",
        run=_with_reason(privacy_request_complete),
    ),
    _moving(
        "reject",
        input="reason",
        placeholder="Reason (sent to the subject)",
        run=_with_reason(privacy_request_reject),
    ),
    _moving(
        "withdraw",
        label="Record withdrawal",
        input="reason",
        placeholder="How the subject withdrew",
        run=_with_reason(privacy_request_withdraw),
    ),
    Step(
        "lift_restriction",
        "Lift the restriction (tells the subject)",
        frozenset({State.COMPLETED}),
        input="reason",
        placeholder="Why it is lifted (sent to the subject)",
        run=_with_reason(privacy_request_lift_restriction),
    ),
]


def _steps_for(item: PrivacyRequest, user: User) -> tuple[list[Step], list[tuple[str, str]]]:
    """The steps the request's state offers now: those ``user`` may take (buttons), and the reasons the
    others are refused (``privacy_request_refusal``, the services' own rules), each reason once with the
    steps it refuses."""
    shown: list[Step] = []
    refused: dict[str, list[str]] = {}
    for step in STEPS:
        if item.state not in step.states:
            continue
        if step.action == "extend" and (item.is_extended or item.clock_started_on is None):
            continue
        if step.action == "approve" and item.approved_by_id is not None:
            continue
        if step.action == "lift_restriction" and (
            item.kind != PrivacyRequest.Kind.RESTRICTION or item.restriction_lifted_at is not None
        ):
            continue
        refusal = privacy_request_refusal(actor=user, privacy_request=item, action=step.action)
        if refusal is None:
            shown.append(step)
        else:
            refused.setdefault(refusal.reason, []).append(step.label)
    return shown, [(", ".join(labels), reason) for reason, labels in refused.items()]


def _subject_view(item: PrivacyRequest, user: User) -> dict[str, str]:
    """The subject's email and what they asked: in clear only through the PII gate, and logged."""
    email = selectors.subject_email_on_file(item)
    if not pii.may_reveal_personal_data(user):
        return {"email": pii.mask_email(email) if email else "", "details": pii.mask_text(item.details)}
    if item.customer is not None:
        access_log_record(
            user=user,
            customer=item.customer,
            action=AccessLog.Action.REVEAL,
            fields=["privacyrequest.subject_email", "privacyrequest.details"],
            reason=f"Worked privacy request {item.reference}",
        )
    return {"email": email, "details": item.details}


@dataclass(frozen=True)
class AskedEntry:
    """The access-log entry a customer asked about, as staff see it: who by name as well as role."""

    entry: AccessLog
    shown: access_transparency.PortalEntry


def _asked_entry(item: PrivacyRequest) -> AskedEntry | None:
    if item.access_log_entry_id is None or item.customer is None or item.customer_id is None:
        return None
    entry = (
        AccessLog.objects.filter(pk=item.access_log_entry_id, customer_id=item.customer_id)
        .select_related("user__partner")
        .first()
    )
    if entry is None:
        return None
    return AskedEntry(entry, access_transparency.describe(entry, customer=item.customer))


@login_required
def request_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    _require(user, PrivacyPermission.VIEW)
    item = selectors.access_privacy_request(user, pk)
    steps, refusals = _steps_for(item, user)
    context = {
        "item": item,
        "steps": steps,
        "refusals": refusals,
        "subject": _subject_view(item, user),
        "events": item.events.select_related("actor"),
        "urgency": selectors.urgency_of(item, today=timezone.localdate()),
        "duplicates": list(item.duplicates.filter(state__in=OPEN_STATES).only("id")),
        "asked_entry": _asked_entry(item),
        # A restriction may have to hold a whole bill run too: the runs it could be restricted in.
        "open_bill_runs": (
            list(
                bill_runs_visible_to(user).filter(
                    partner_id=item.customer.partner_id, status__in=BillRun.OPEN_STATUSES
                )
            )
            if item.kind == PrivacyRequest.Kind.RESTRICTION
            and item.customer
            and user.has_perm("billing.restrict_billrun")
            else []
        ),
    }
    return render(request, "privacy/request_detail.html", context)


@login_required
@require_POST
def request_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = signed_in_user(request)
    _require(user, PrivacyPermission.VIEW)
    item = selectors.access_privacy_request(user, pk)
    step = next((s for s in STEPS if s.action == action and item.state in s.states), None)
    step = step or next((s for s in STEPS if s.action == action), None)
    if step is None or step.run is None:
        raise PermissionDenied
    refusal = privacy_request_refusal(actor=user, privacy_request=item, action=step.action)
    if refusal is not None and refusal.forbidden:
        raise PermissionDenied(refusal.reason)
    try:
        step.run(item, user, request.POST)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{item.reference}: {step.label.lower()} done.")
    return redirect("privacy:request", pk=item.pk)


@login_required
@require_POST  # an export: never by a link a page or a mail could make the browser follow
def register_download(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    _require(user, PrivacyPermission.CHANGE)
    content = register.register_csv(selectors.privacy_requests_visible_to(user))
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="dsr-register-{timezone.localdate():%Y-%m-%d}.csv"'
    )
    return response


@login_required
@require_http_methods(["GET", "POST"])
def my_requests(request: HttpRequest) -> HttpResponse:
    """A portal user's own requests, and the form to make one."""
    user = signed_in_user(request)
    if user.customer is None or not user.has_perm(PrivacyPermission.ADD):
        raise PermissionDenied
    form = PortalRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = privacy_request_receive(
                kind=form.cleaned_data["kind"],
                channel=PrivacyRequest.Channel.PORTAL,
                details=form.cleaned_data["details"],
                objection_scope=form.cleaned_data["objection_scope"],
                customer=user.customer,
                actor=user,
            )
        except ValidationError as exc:
            _add_service_errors(form, exc)
        else:
            messages.success(
                request,
                f"Thank you. Your request is {created.reference}; "
                f"we will reply by {created.due_on:%d %B %Y}.",
            )
            return redirect("privacy:my_requests")
    context = {"requests": selectors.requests_of_portal_user(user), "form": form}
    return render(request, "privacy/my_requests.html", context)


SUBJECT_CODE_MISMATCH = "That reference and code do not match a request waiting for a code."


@require_http_methods(["GET", "POST"])
def verify_identity(request: HttpRequest) -> HttpResponse:
    """Where the subject enters the emailed code themselves; no login. Every failure but a wrong code reads
    the same, so the page tells a stranger nothing about which references exist or what state they are in."""
    form = SubjectCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        reference = (
            form.cleaned_data["reference"].strip().upper().removeprefix(PrivacyRequest.REFERENCE_PREFIX)
        )
        item = (
            PrivacyRequest.objects.filter(pk=int(reference)).first()
            if reference.isdigit() and len(reference) <= 12
            else None
        )
        if item is None:
            form.add_error(None, SUBJECT_CODE_MISMATCH)
        else:
            try:
                privacy_request_verify_identity_code(
                    privacy_request=item,
                    code=form.cleaned_data["code"],
                    actor=system_user(job="subject-identity-check"),
                    reason="The subject entered the one-time code.",
                )
            except ValidationError as exc:
                wrong_code = getattr(exc, "error_dict", {}).get("code") and "wrong" in " ".join(exc.messages)
                form.add_error(
                    "code" if wrong_code else None, exc.messages if wrong_code else SUBJECT_CODE_MISMATCH
                )
            else:
                return render(request, "privacy/verify_identity.html", {"verified": item.reference})
    return render(request, "privacy/verify_identity.html", {"form": form})


def _access_report(
    request: HttpRequest, customer: Customer, visibility: Any, *, pdf: bool = False
) -> HttpResponse:
    context = access_report.report_context(customer, visibility=visibility)
    context["generated_at"] = timezone.now()
    if pdf:
        filename = f"personal-data-{customer.reference}-{context['generated_at']:%Y-%m-%d}.pdf"
        return pdf_download("privacy/access_report.html", context, request=request, filename=filename)
    return render(request, "privacy/access_report.html", context)


@login_required
def access_report_view(request: HttpRequest, reference: str, *, pdf: bool = False) -> HttpResponse:
    """Staff prepare a customer's Art. 15 report. Shown in clear only to staff who may reveal personal
    data, and then logged as a reveal; otherwise masked, as on the Site Details page. The PDF is the same
    report printed, and every download of it is logged as an export (masked or not)."""
    user = signed_in_user(request)
    _require(user, PrivacyPermission.VIEW)
    customer = access_customer(user, reference)
    clear = pii.may_reveal_personal_data(user)
    if clear or pdf:
        access_log_record(
            user=user,
            customer=customer,
            action=AccessLog.Action.EXPORT if pdf else AccessLog.Action.REVEAL,
            fields=["access_report", *(["access_report_pdf"] if pdf else [])],
            reason="Downloaded the Art. 15 access report as a PDF" + ("" if clear else " (masked)")
            if pdf
            else "Prepared the Art. 15 access report",
        )
    return _access_report(request, customer, Visibility(personal=clear, payment=False), pdf=pdf)


@login_required
def access_report_pdf(request: HttpRequest, reference: str) -> HttpResponse:
    return access_report_view(request, reference, pdf=True)


@login_required
def my_access_report(request: HttpRequest, *, pdf: bool = False) -> HttpResponse:
    """A customer's own Art. 15 report, from the portal (the PDF download is logged, as the export is)."""
    user = signed_in_user(request)
    if user.customer is None:
        raise PermissionDenied
    if pdf:
        access_log_record(
            user=user,
            customer=user.customer,
            action=AccessLog.Action.EXPORT,
            fields=["access_report", "access_report_pdf"],
            reason="The customer downloaded its own Art. 15 access report as a PDF",
        )
    return _access_report(request, user.customer, Visibility(personal=True, payment=False), pdf=pdf)


@login_required
def my_access_report_pdf(request: HttpRequest) -> HttpResponse:
    return my_access_report(request, pdf=True)
