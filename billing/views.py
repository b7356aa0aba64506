"""Billing pages: bill runs, invoices, credit notes, call imports and the suspense queue. Thin: reads
through billing.selectors, writes through billing.services, errors shown next to what caused them."""

import csv
import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.audit import audit_record
from accounts.mandates import mandate_hold_clear
from accounts.models import AccessLog, Customer, Partner, PaymentDetails, User
from accounts.pii import mask_text, may_reveal_personal_data
from accounts.security import signed_in_user
from accounts.selectors import access_customer, is_outside_users_partner
from accounts.services import access_log_record
from billing import documents, selectors
from billing.forms import (
    AgedDebtForm,
    ApproveForm,
    BacsReportForm,
    BillRunForm,
    CallImportForm,
    CreditNoteForm,
    DunningStepForm,
    LiftCeaseForm,
    PaymentForm,
    ReallocateForm,
    ReasonForm,
    RefundForm,
    WriteOffDecisionForm,
    WriteOffForm,
)
from billing.importer.parse import REQUIRED_COLUMNS
from billing.models import (
    BacsReportImport,
    BillRun,
    DirectDebitSubmission,
    Invoice,
    Payment,
    WriteOff,
)
from billing.services.bacs_reports import bacs_report_import
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_cancel,
    bill_run_create,
    bill_run_finalise,
    bill_run_lift_restriction,
    bill_run_refusal,
    bill_run_restrict,
    bill_run_resume_calculation,
    bill_run_start_calculation,
)
from billing.services.billing_cease import customer_lift_billing_cease
from billing.services.call_imports import call_import_queue, suspense_rerate
from billing.services.credit_notes import credit_note_issue
from billing.services.direct_debit import direct_debit_export, direct_debit_submission_cancel
from billing.services.direct_debit_representation import (
    direct_debit_representation_export,
    representations_due,
)
from billing.services.dunning import dunning_step_create, dunning_step_update
from billing.services.ledger import (
    write_off_approve,
    write_off_refusal,
    write_off_reject,
    write_off_request,
)
from billing.services.payments import payment_reallocate, payment_record, payment_refund
from fusion_site.charts import MONEY, Axis, bar_chart
from fusion_site.money import format_money
from fusion_site.pdf import pdf_download

VARIANCE_THRESHOLD_PERCENT = Decimal("10")
INVOICES_PER_PAGE = 50
BILL_RUNS_PER_PAGE = 50
CALL_IMPORTS_PER_PAGE = 50
BACS_REPORTS_PER_PAGE = 50
SUSPENSE_CALLS_PER_PAGE = 100


def _partner_of(user: User, request: HttpRequest) -> Partner:
    """The partner a staff user acts for: their own, or (for provider staff) the one they chose."""
    if user.partner is not None:
        return user.partner
    partner = Partner.objects.filter(pk=request.POST.get("partner") or 0).first()
    if partner is None:
        raise ValidationError({"partner": "Choose the partner."})
    return partner


def _add_service_errors(form: forms.Form, exc: ValidationError, fields: dict[str, str]) -> None:
    """Show a service's errors next to the form fields they concern (``fields`` maps the service's
    names to the form's); errors about anything else go above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for name, errors in exc.error_dict.items():
        field = fields.get(name, name)
        form.add_error(field if field in form.fields else None, errors)


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
@require_http_methods(["GET", "POST"])
def bill_run_list(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    runs = selectors.bill_runs_visible_to(user)
    if not user.has_perm("billing.view_billrun") or not user.has_perm(selectors.VIEW_BILLING_DATA):
        raise PermissionDenied
    form = BillRunForm(request.POST or None)
    if request.method == "POST":
        if not user.has_perm("billing.add_billrun"):
            raise PermissionDenied
        if form.is_valid():
            start, end = form.period()
            try:
                bill_run = bill_run_create(
                    partner=_partner_of(user, request), period_start=start, period_end=end, actor=user
                )
            except ValidationError as exc:
                # The service names its period fields; on this page they are the month.
                _add_service_errors(form, exc, {"period_start": "month", "period_end": "month"})
            else:
                return redirect("billing:bill_run", pk=bill_run.pk)
    partners = Partner.objects.all() if user.partner_id is None else Partner.objects.none()
    runs_page = Paginator(
        runs.order_by("-period_start", "partner__name", "-pk"), BILL_RUNS_PER_PAGE
    ).get_page(request.GET.get("page"))
    context = {"runs": runs_page, "form": form, "partners": partners}
    return render(request, "billing/bill_run_list.html", context)


@login_required
def bill_run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    return _bill_run_page(request, user, selectors.access_bill_run(user, pk), approve_form=ApproveForm())


def _bill_run_page(
    request: HttpRequest, user: User, bill_run: BillRun, *, approve_form: ApproveForm
) -> HttpResponse:
    previous, variance_rows = selectors.variance(bill_run, threshold_percent=VARIANCE_THRESHOLD_PERCENT)
    exceptions = selectors.exceptions_by_kind(bill_run)
    charted = variance_rows[:40]
    chart = bar_chart(
        key="variance",
        title="Change in net total per customer",
        x_axis=Axis("Customer"),
        y_axis=Axis("Change in net total", MONEY),
        labels=[row.customer_reference for row in charted],
        series=[("Change in net total", [row.change for row in charted])],
        signed=True,
    )
    invoice_query = request.GET.get("q", "")
    # An out-of-range or malformed page number shows the last (or first) page, as the other lists do.
    invoices = Paginator(
        selectors.bill_run_invoices(bill_run, query=invoice_query), INVOICES_PER_PAGE
    ).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "bill_run": bill_run,
        "summary": selectors.bill_run_summary(bill_run),
        "exceptions": exceptions,
        "exceptions_listed": sum(len(group.items) for group in exceptions),
        "events": bill_run.events.select_related("actor"),
        "invoices": invoices,
        "invoice_query": invoice_query,
        "previous": previous,
        "variance_rows": variance_rows,
        "variance_threshold": VARIANCE_THRESHOLD_PERCENT,
        "chart": chart,
        "reason_form": ReasonForm(),
        "approve_form": approve_form,
        "refresh": bill_run.status == BillRun.Status.CALCULATING,
        "failed_chunks": list(bill_run.chunks.filter(done_at__isnull=True).exclude(error="")),
        "direct_debit_submissions": list(selectors.direct_debit_submissions_of(user, bill_run)),
    }
    context["live_submission"] = next(
        (sub for sub in context["direct_debit_submissions"] if not sub.is_cancelled), None
    )
    context["may"], context["refusals"] = _bill_run_offers(user, bill_run, context["live_submission"])
    return render(request, "billing/bill_run_detail.html", context)


# The run's steps by what its status offers, with the words naming each when it is refused.
_BILL_RUN_STEP_LABELS = {
    "calculate": "Calculate",
    "resume": "Resume unfinished chunks",
    "approve": "Approve",
    "finalise": "Finalise",
    "direct_debit": "Direct Debit file",
    "direct_debit_cancel": "Cancel the Direct Debit submission",
    "cancel": "Cancel run",
    "restrict": "Restrict run",
    "lift": "Lift restriction",
}


def _bill_run_offers(
    user: User, bill_run: BillRun, live_submission: DirectDebitSubmission | None
) -> tuple[dict[str, bool], list[tuple[str, str]]]:
    """The steps the run's status offers now: those ``user`` may take (shown as buttons), and the
    others with the reason they are refused (``bill_run_refusal``, the services' own rule)."""
    status, statuses = bill_run.status, BillRun.Status
    offered = {
        "calculate": status in (statuses.DRAFT, statuses.CALCULATED),
        "resume": status == statuses.CALCULATING,
        "approve": status == statuses.CALCULATED,
        "finalise": status == statuses.APPROVED,
        "direct_debit": status == statuses.FINALISED,
        "direct_debit_cancel": live_submission is not None,
        "cancel": status in BillRun.OPEN_STATUSES,
        "restrict": not bill_run.is_restricted,
        "lift": bill_run.is_restricted,
    }
    may: dict[str, bool] = {}
    refusals: list[tuple[str, str]] = []
    for action, now in offered.items():
        if not now:
            continue
        refusal = bill_run_refusal(actor=user, bill_run=bill_run, action=action)
        may[action] = refusal is None
        if refusal is not None:
            refusals.append((_BILL_RUN_STEP_LABELS[action], refusal.reason))
    return may, refusals


BILL_RUN_ACTIONS = {
    "calculate": lambda run, user, reason: bill_run_start_calculation(bill_run=run, actor=user),
    "resume": lambda run, user, reason: bill_run_resume_calculation(bill_run=run, actor=user),
    "finalise": lambda run, user, reason: bill_run_finalise(bill_run=run, actor=user),
    "cancel": lambda run, user, reason: bill_run_cancel(bill_run=run, actor=user, reason=reason),
    "restrict": lambda run, user, reason: bill_run_restrict(bill_run=run, actor=user, reason=reason),
    "lift": lambda run, user, reason: bill_run_lift_restriction(bill_run=run, actor=user, reason=reason),
}


@login_required
@require_POST
def bill_run_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    user = signed_in_user(request)
    bill_run = selectors.access_bill_run(user, pk)
    if action == "approve":
        return _approve(request, user, bill_run)
    step = BILL_RUN_ACTIONS.get(action)
    if step is None:
        raise PermissionDenied
    try:
        step(bill_run, user, request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Bill run: {action} done.")
    return redirect("billing:bill_run", pk=bill_run.pk)


def _approve(request: HttpRequest, user: User, bill_run: BillRun) -> HttpResponse:
    """Approve from the run's page; a missing or stale acknowledgement of the exceptions is shown on
    the form's checkbox, with the page as it is now."""
    form = ApproveForm(request.POST)
    try:
        bill_run_approve(
            bill_run=bill_run, actor=user, exceptions_acknowledged=form.exceptions_acknowledged()
        )
    except ValidationError as exc:
        if not hasattr(exc, "error_dict"):
            messages.error(request, _error_text(exc))
            return redirect("billing:bill_run", pk=bill_run.pk)
        _add_service_errors(form, exc, {})
        bill_run = selectors.access_bill_run(user, bill_run.pk)
        return _bill_run_page(request, user, bill_run, approve_form=form)
    messages.success(request, "Bill run: approve done.")
    return redirect("billing:bill_run", pk=bill_run.pk)


def _finance_manager_and_bill_run(request: HttpRequest, pk: int, action: str) -> tuple[User, BillRun]:
    """The signed-in user and the bill run they may see, if their role lets them take ``action`` (make or
    cancel its Direct Debit file); refused in the words the run's page shows."""
    user = signed_in_user(request)
    bill_run = selectors.access_bill_run(user, pk)
    refusal = bill_run_refusal(actor=user, bill_run=bill_run, action=action)
    if refusal is not None and refusal.forbidden:
        raise PermissionDenied(refusal.reason)
    return user, bill_run


@login_required
@require_POST
def direct_debit_file(request: HttpRequest, pk: int) -> HttpResponse:
    user, bill_run = _finance_manager_and_bill_run(request, pk, "direct_debit")
    try:
        submission = direct_debit_export(bill_run=bill_run, actor=user)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect("billing:bill_run", pk=bill_run.pk)
    response = HttpResponse(submission.file_bytes, content_type="text/plain; charset=us-ascii")
    response["Content-Disposition"] = f'attachment; filename="{submission.file_name}"'
    return response


@login_required
@require_POST
def direct_debit_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    user, bill_run = _finance_manager_and_bill_run(request, pk, "direct_debit_cancel")
    submission = (
        selectors.direct_debit_submissions_of(user, bill_run).filter(cancelled_at__isnull=True).first()
    )
    if submission is None:
        messages.error(request, "This bill run has no Direct Debit submission to cancel.")
    else:
        _cancel_submission(
            request, user, submission, "the next download makes a new file.", kind="Direct Debit"
        )
    return redirect("billing:bill_run", pk=bill_run.pk)


def _cancel_submission(
    request: HttpRequest, user: User, submission: DirectDebitSubmission, then: str, *, kind: str
) -> None:
    """Cancel a Direct Debit file with the reason the form gives, and say how it went (``then``: what
    follows the cancellation)."""
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the submission is cancelled.")
        return
    try:
        direct_debit_submission_cancel(submission=submission, actor=user, reason=form.cleaned_data["reason"])
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"{kind} submission {submission.serial} cancelled; {then}")


@login_required
@require_http_methods(["GET", "POST"])
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    invoice = selectors.access_invoice(user, pk)
    form = CreditNoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            note = credit_note_issue(
                invoice=invoice,
                actor=user,
                reason=form.cleaned_data["reason"],
                net=form.cleaned_data["net"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"{note} issued.")
            return redirect("billing:invoice", pk=invoice.pk)
    context = {
        **documents.invoice_context(invoice, _invoice_recipient(user, invoice)),
        "form": form,
        "may_credit": user.has_perm("billing.add_creditnote") and invoice.status == invoice.Status.FINALISED,
        "delivery": selectors.invoice_delivery_of(user, invoice),
    }
    return render(request, "billing/invoice.html", context)


@login_required
def credit_note_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A credit note as a document of its own, visible to exactly those who may see its invoice."""
    user = signed_in_user(request)
    note = selectors.access_credit_note(user, pk)
    context = documents.credit_note_context(note, _invoice_recipient(user, note.invoice))
    return render(request, "billing/credit_note.html", context)


@login_required
def invoice_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    """The invoice page as a PDF, to whoever may open the page (another partner's or customer's: 404);
    each download is in the access log as an export."""
    user = signed_in_user(request)
    invoice = selectors.access_invoice(user, pk)
    recipient = _invoice_recipient(user, invoice, log_reveal=False)
    _log_download(
        user, invoice.customer, f"invoice {invoice.number or f'draft #{invoice.pk}'}", "invoice_pdf"
    )
    context = documents.invoice_context(invoice, recipient)
    filename = documents.invoice_filename(invoice)
    return pdf_download(documents.INVOICE_TEMPLATE, context, request=request, filename=filename)


@login_required
def credit_note_pdf(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    note = selectors.access_credit_note(user, pk)
    recipient = _invoice_recipient(user, note.invoice, log_reveal=False)
    _log_download(user, note.invoice.customer, f"credit note {note.number}", "credit_note_pdf")
    context = documents.credit_note_context(note, recipient)
    filename = documents.credit_note_filename(note)
    return pdf_download(documents.CREDIT_NOTE_TEMPLATE, context, request=request, filename=filename)


def _log_download(user: User, customer: Customer | None, document: str, field: str) -> None:
    """A document downloaded as a PDF is an export of the customer's data: logged like the portability
    export's downloads (who, which customer, what, why), the customer's own included. A customer erased
    since (the invoice kept by law, naming no one) has no account to log against."""
    if customer is None:
        return
    clear = user.is_portal_user or may_reveal_personal_data(user)
    access_log_record(
        user=user,
        customer=customer,
        action=AccessLog.Action.EXPORT,
        fields=[field, *(["customer_name", "customer_address"] if clear else [])],
        reason=(
            f"The customer downloaded its own {document} as a PDF"
            if user.is_portal_user
            else f"Downloaded {document} as a PDF"
        ),
    )


def _invoice_recipient(user: User, invoice: Invoice, *, log_reveal: bool = True) -> dict[str, str]:
    """The customer's name and address on the invoice: the portal user's own; for staff, in clear only
    through the PII gate, and every such view is written to the access log (a PDF download logs its own
    entry instead: ``log_reveal=False``)."""
    if user.is_portal_user:
        return {"name": invoice.customer_name, "address": invoice.customer_address}
    if not may_reveal_personal_data(user):
        return {"name": mask_text(invoice.customer_name), "address": mask_text(invoice.customer_address)}
    if log_reveal and invoice.customer is not None:
        access_log_record(
            user=user,
            customer=invoice.customer,
            action=AccessLog.Action.REVEAL,
            fields=["invoice.customer_name", "invoice.customer_address"],
            reason=f"Viewed invoice {invoice.number or f'draft #{invoice.pk}'}",
        )
    return {"name": invoice.customer_name, "address": invoice.customer_address}


@login_required
def customer_invoices(request: HttpRequest, reference: str) -> HttpResponse:
    user = signed_in_user(request)
    customer = access_customer(user, reference)
    invoices = selectors.invoices_of_customer(user, customer)
    if not user.has_perm("billing.view_invoice"):
        raise PermissionDenied
    return render(request, "billing/customer_invoices.html", {"customer": customer, "invoices": invoices})


@login_required
@require_http_methods(["GET", "POST"])
def lift_billing_cease(request: HttpRequest, reference: str) -> HttpResponse:
    user = signed_in_user(request)
    customer = access_customer(user, reference)
    if not user.has_perm("accounts.change_customer") or not user.has_perm("billing.calculate_billrun"):
        raise PermissionDenied
    form = LiftCeaseForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            customer_lift_billing_cease(customer=customer, actor=user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Billing resumed.")
            return redirect("accounts:site_details", reference=customer.reference)
    return render(request, "billing/lift_cease.html", {"customer": customer, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def call_imports(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if not user.has_perm("billing.view_callimport") or not user.has_perm(selectors.VIEW_BILLING_DATA):
        raise PermissionDenied
    form = CallImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if not user.has_perm("billing.add_callimport"):
            raise PermissionDenied
        if form.is_valid():
            try:
                call_import = call_import_queue(
                    partner=_partner_of(user, request), upload=form.cleaned_data["file"], actor=user
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return redirect("billing:call_import", pk=call_import.pk)
    partners = Partner.objects.all() if user.partner_id is None else Partner.objects.none()
    context = {
        "imports": Paginator(
            selectors.call_imports_visible_to(user).order_by("-created_at", "-pk"), CALL_IMPORTS_PER_PAGE
        ).get_page(request.GET.get("page")),
        "form": form,
        "partners": partners,
        "columns": REQUIRED_COLUMNS,
    }
    return render(request, "billing/call_imports.html", context)


@login_required
def call_import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    call_import = selectors.call_imports_visible_to(user).filter(pk=pk).first()
    if call_import is None:
        from django.http import Http404

        raise Http404("No such import.")
    errors = call_import.errors.all()[:1000]
    return render(
        request,
        "billing/call_import.html",
        {"call_import": call_import, "errors": errors, "refresh": call_import.status == "running"},
    )


@login_required
@require_http_methods(["GET", "POST"])
def suspense_queue(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if not user.has_perm("billing.view_callrecord") or not user.has_perm(selectors.VIEW_BILLING_DATA):
        raise PermissionDenied
    calls = selectors.suspense_calls(user)
    if request.method == "POST":
        if not user.has_perm("billing.change_callrecord"):
            raise PermissionDenied
        partner_ids = set(calls.values_list("partner_id", flat=True).distinct())
        rated = suspense_total = 0
        for partner in Partner.objects.filter(pk__in=partner_ids):
            result = suspense_rerate(partner=partner, actor=user)
            rated, suspense_total = rated + result.rated, suspense_total + result.suspense
        messages.success(request, f"Re-rated: {rated} calls rated, {suspense_total} still in suspense.")
        return redirect("billing:suspense")
    page = Paginator(calls.order_by("started_at", "pk"), SUSPENSE_CALLS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {"page": page, "summary": selectors.suspense_summary(calls)}
    return render(request, "billing/suspense.html", context)


# The customer account: balance, statement, open invoices, payments; payments, refunds and write-offs.


def _require(user: User, permission: str) -> None:
    if user.is_portal_user or not user.has_perm(permission):
        raise PermissionDenied


@login_required
def customer_account(request: HttpRequest, reference: str) -> HttpResponse:
    """Staff see the account of a customer they may see; a portal user sees its own statement."""
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    staff = not user.is_portal_user
    if staff and is_outside_users_partner(user, customer):
        access_log_record(
            user=user,
            customer=customer,
            action=AccessLog.Action.CROSS_PARTNER_VIEW,
            fields=["account"],
            reason="Opened the account (statement, payments) of a customer outside the user's partner",
        )
    context = {
        **documents.statement_context(customer, portal=not staff),
        "write_offs": _with_refusals(user, list(selectors.customer_write_offs(customer)) if staff else []),
        "may_record_payment": staff and user.has_perm("billing.add_payment"),
        "may_refund": staff and user.has_perm("billing.refund_payment"),
        "may_reallocate": staff and user.has_perm("billing.reallocate_payment"),
        "may_request_write_off": staff and user.has_perm("billing.add_writeoff"),
        "dunning_history": (
            list(selectors.customer_dunning_history(customer))
            if staff and user.has_perm("billing.view_dunningaction")
            else []
        ),
        "decision_form": WriteOffDecisionForm(),
        "direct_debit_hold": selectors.direct_debit_hold(customer) if staff else None,
        "may_clear_hold": staff and user.has_perm("accounts.clear_mandate_hold"),
    }
    return render(request, "billing/account.html", context)


def _with_refusals(user: User, write_offs: list[WriteOff]) -> list[WriteOff]:
    """The write-offs, each still to decide carrying ``refusal``: why ``user`` may not decide it, or None."""
    for write_off in write_offs:
        write_off.refusal = (  # type: ignore[attr-defined]
            write_off_refusal(actor=user, write_off=write_off)
            if write_off.status == WriteOff.Status.REQUESTED
            else None
        )
    return write_offs


@login_required
def customer_statement_pdf(request: HttpRequest, reference: str) -> HttpResponse:
    """The account page's statement as a PDF (balance, open invoices, entries, payments; not the staff's
    write-offs and dunning), scoped as the page is; logged as an export of the customer's account."""
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    portal = user.is_portal_user
    access_log_record(
        user=user,
        customer=customer,
        action=AccessLog.Action.EXPORT,
        fields=["statement_pdf"],
        reason=(
            "The customer downloaded its own statement as a PDF"
            if portal
            else "Downloaded the customer's statement as a PDF"
            + (" (a customer outside the user's partner)" if is_outside_users_partner(user, customer) else "")
        ),
    )
    context = documents.statement_context(customer, portal=portal)
    filename = documents.statement_filename(customer, timezone.localdate())
    return pdf_download(documents.STATEMENT_TEMPLATE, context, request=request, filename=filename)


@login_required
@require_POST
def direct_debit_hold_clear(request: HttpRequest, reference: str) -> HttpResponse:
    """Clear the hold on the customer's Direct Debit once the payer's dispute is resolved, saying how (the
    form is on the account page)."""
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    _require(user, "accounts.clear_mandate_hold")
    mandate = PaymentDetails.objects.filter(customer=customer).first()
    form = ReasonForm(request.POST)
    if mandate is None:
        messages.error(request, "This customer has no Direct Debit mandate.")
    elif not form.is_valid():
        messages.error(request, "Say how the payer's dispute was resolved.")
    else:
        try:
            mandate_hold_clear(mandate=mandate, actor=user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            messages.error(request, _error_text(exc))
        else:
            messages.success(
                request, "Direct Debit hold cleared: collections resume with the next submission."
            )
    return redirect("billing:account", reference=customer.reference)


def _account_form_page(
    request: HttpRequest,
    customer: Customer,
    form: forms.Form,
    *,
    title: str,
    subject: str = "",
    act: Callable[..., object],
    done: Callable[[dict[str, Any]], str],
) -> HttpResponse:
    """One of the account's forms: on a valid POST ``act(**cleaned_data)`` (a service), its refusal shown on
    the form, or ``done(cleaned_data)`` as the message and back to the account."""
    if request.method == "POST" and form.is_valid():
        try:
            act(**form.cleaned_data)
        except ValidationError as exc:
            _add_service_errors(form, exc, {})
        else:
            messages.success(request, done(form.cleaned_data))
            return redirect("billing:account", reference=customer.reference)
    context = {"customer": customer, "form": form, "title": title, "subject": subject}
    return render(request, "billing/account_form.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def payment_record_page(request: HttpRequest, reference: str) -> HttpResponse:
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    _require(user, "billing.add_payment")
    form = PaymentForm(request.POST or None, initial={"received_on": timezone.localdate()})
    return _account_form_page(
        request,
        customer,
        form,
        title="Record a payment",
        act=lambda **data: payment_record(customer=customer, actor=user, **data),
        done=lambda data: f"Payment of {format_money(data['amount'])} recorded.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def payment_refund_page(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    payment = get_object_or_404(Payment, pk=pk, customer=customer)
    _require(user, "billing.refund_payment")
    return _account_form_page(
        request,
        customer,
        RefundForm(request.POST or None),
        title="Refund account credit",
        subject=str(payment),
        act=lambda **data: payment_refund(payment=payment, actor=user, **data),
        done=lambda data: f"Refund of {format_money(data['amount'])} recorded.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def payment_reallocate_page(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    payment = get_object_or_404(Payment, pk=pk, customer=customer)
    _require(user, "billing.reallocate_payment")
    invoices = Invoice.objects.filter(customer=customer, status=Invoice.Status.FINALISED).order_by(
        "issue_date", "pk"
    )
    return _account_form_page(
        request,
        customer,
        ReallocateForm(request.POST or None, invoices=invoices),
        title="Move a payment",
        subject=str(payment),
        act=lambda **data: payment_reallocate(payment=payment, actor=user, **data),
        done=lambda data: f"{format_money(data['amount'])} of the payment moved.",
    )


@login_required
@require_http_methods(["GET", "POST"])
def write_off_request_page(request: HttpRequest, reference: str, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    invoice = get_object_or_404(Invoice, pk=pk, customer=customer, status=Invoice.Status.FINALISED)
    _require(user, "billing.add_writeoff")
    return _account_form_page(
        request,
        customer,
        WriteOffForm(request.POST or None),
        title="Ask for a write-off",
        subject=str(invoice),
        act=lambda **data: write_off_request(invoice=invoice, actor=user, **data),
        done=lambda data: "Write-off requested: a finance manager other than you decides it.",
    )


@login_required
@require_POST
def write_off_decide_page(request: HttpRequest, reference: str, pk: int, decision: str) -> HttpResponse:
    user = signed_in_user(request)
    customer = selectors.access_account(user, reference)
    write_off = get_object_or_404(WriteOff, pk=pk, customer=customer)
    refusal = write_off_refusal(actor=user, write_off=write_off)
    if refusal is not None and refusal.forbidden:
        raise PermissionDenied(refusal.reason)
    if decision not in {"approve", "reject"}:
        raise Http404("No such decision.")
    form = WriteOffDecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        if decision == "approve":
            write_off_approve(write_off=write_off, actor=user, reason=reason)
        else:
            write_off_reject(write_off=write_off, actor=user, reason=reason)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Write-off {'approved' if decision == 'approve' else 'rejected'}.")
    return redirect("billing:account", reference=customer.reference)


# Aged debt.


def _aged_debt(request: HttpRequest) -> tuple[AgedDebtForm, datetime.date, list[selectors.AgedDebtRow]]:
    user = signed_in_user(request)
    partners = selectors.aged_debt_partners(user)
    if not partners.exists():
        raise PermissionDenied
    form = AgedDebtForm(request.GET or None, partners=partners)
    today = timezone.localdate()
    as_of, partner = today, None
    if form.is_valid():
        as_of = form.cleaned_data["as_of"] or today
        partner = form.cleaned_data["partner"]
    return form, as_of, selectors.aged_debt(user, as_of=as_of, partner=partner)


@login_required
def aged_debt_report(request: HttpRequest) -> HttpResponse:
    form, as_of, rows = _aged_debt(request)
    buckets = selectors.AGED_DEBT_BUCKETS
    # One column per bucket, one segment per partner; the table below gives each partner's amounts.
    chart = bar_chart(
        key="aged-debt",
        title=f"Outstanding by days past due on {as_of.day} {as_of:%b %Y}",
        x_axis=Axis("Past due", "days"),
        y_axis=Axis("Outstanding", MONEY),
        labels=[label for _key, label, *_days in buckets],
        series=[(row.partner.name, [row.buckets[key] for key, *_rest in buckets]) for row in rows],
        stacked=True,
    )
    totals = {key: sum((row.buckets[key] for row in rows), Decimal("0.00")) for key, *_rest in buckets}
    grand_total = sum(totals.values(), Decimal("0.00"))
    context = {
        "form": form,
        "as_of": as_of,
        "rows": rows,
        "buckets": buckets,
        "totals": [totals[key] for key, *_rest in buckets],
        "grand_total": grand_total,
        "chart": chart,
        "csv_query": request.GET.urlencode(),
    }
    return render(request, "billing/aged_debt.html", context)


@login_required
def aged_debt_csv(request: HttpRequest) -> HttpResponse:
    _form, as_of, rows = _aged_debt(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="aged-debt-{as_of.isoformat()}.csv"'
    writer = csv.writer(response)
    buckets = selectors.AGED_DEBT_BUCKETS
    writer.writerow(["partner", "as_of", *(key for key, *_rest in buckets), "total"])
    for row in rows:
        writer.writerow(
            [
                row.partner.name,
                as_of.isoformat(),
                *(format_money(row.buckets[key], for_csv=True) for key, *_rest in buckets),
                format_money(row.total, for_csv=True),
            ]
        )
    return response


# Dunning steps.


def _bacs_report_imports_visible_to(user: User) -> Any:
    """The Bacs report imports a user may see: their own partner's, or (provider staff) every partner's."""
    if not user.has_perm("billing.view_bacsreportimport"):
        raise PermissionDenied
    imports = BacsReportImport.objects.select_related("partner", "imported_by")
    return imports if user.partner_id is None else imports.filter(partner_id=user.partner_id)


@login_required
@require_http_methods(["GET", "POST"])
def dunning_steps(request: HttpRequest, pk: int) -> HttpResponse:
    """A partner's dunning steps; a finance manager adds steps here (another partner's: 404)."""
    user = signed_in_user(request)
    partner = selectors.access_dunning_partner(user, pk)
    may_add = not user.is_portal_user and user.has_perm("billing.add_dunningstep")
    form = DunningStepForm(request.POST or None, initial={"effective_from": timezone.localdate()})
    if request.method == "POST":
        if not may_add:
            raise PermissionDenied
        if form.is_valid():
            try:
                dunning_step_create(partner=partner, actor=user, **form.cleaned_data)
            except ValidationError as exc:
                _add_service_errors(form, exc, {})
            else:
                messages.success(request, "Dunning step added.")
                return redirect("billing:dunning_steps", pk=partner.pk)
    context = {
        "partner": partner,
        "steps": list(selectors.dunning_steps_of(partner)),
        "form": form,
        "may_add": may_add,
        "may_change": not user.is_portal_user and user.has_perm("billing.change_dunningstep"),
    }
    return render(request, "billing/dunning_steps.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def dunning_step_edit(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    user = signed_in_user(request)
    step = selectors.access_dunning_step(user, pk, step_pk)
    _require(user, "billing.change_dunningstep")
    initial = {
        "days_overdue": step.days_overdue,
        "kind": step.kind,
        "effective_from": step.effective_from,
        "active": step.active,
    }
    form = DunningStepForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            dunning_step_update(step=step, actor=user, **form.cleaned_data)
        except ValidationError as exc:
            _add_service_errors(form, exc, {})
        else:
            messages.success(request, "Dunning step changed.")
            return redirect("billing:dunning_steps", pk=step.partner_id)
    return render(request, "billing/dunning_step_form.html", {"step": step, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def bacs_reports(request: HttpRequest) -> HttpResponse:
    """Upload an ARUDD or ADDACS report (finance managers, for their own partner) and list the imports."""
    user = signed_in_user(request)
    imports = _bacs_report_imports_visible_to(user)
    form = BacsReportForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        if not user.has_perm("billing.add_bacsreportimport") or user.partner is None:
            raise PermissionDenied
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report_import = bacs_report_import(data=upload.read(), filename=upload.name, actor=user)
            except ValidationError as exc:
                _add_service_errors(form, exc, {})
            else:
                return redirect("billing:bacs_report", pk=report_import.pk)
    imports_page = Paginator(imports.order_by("-imported_at", "-pk"), BACS_REPORTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context: dict[str, Any] = {"imports": imports_page, "form": form}
    partner = user.partner
    if partner is not None and user.has_perm("billing.finalise_billrun"):
        context["representations_due"] = list(representations_due(partner_id=partner.pk)[:200])
        context["representation_files"] = list(
            DirectDebitSubmission.objects.filter(partner=partner, bill_run__isnull=True)
            .select_related("created_by", "cancelled_by")
            .defer("content")[:50]
        )
    return render(request, "billing/bacs_reports.html", context)


def _representation_maker(request: HttpRequest) -> tuple[User, Partner]:
    """A finance manager of a partner: re-presentation files are their partner's."""
    user = signed_in_user(request)
    if user.is_portal_user or user.partner is None or not user.has_perm("billing.finalise_billrun"):
        raise PermissionDenied
    return user, user.partner


def _file_response(submission: DirectDebitSubmission) -> HttpResponse:
    response = HttpResponse(submission.file_bytes, content_type="text/plain; charset=us-ascii")
    response["Content-Disposition"] = f'attachment; filename="{submission.file_name}"'
    return response


@login_required
@require_POST
def representation_file(request: HttpRequest) -> HttpResponse:
    """Make the partner's re-presentation file of the Direct Debits returned "refer to payer" due now."""
    user, partner = _representation_maker(request)
    try:
        submission = direct_debit_representation_export(partner=partner, actor=user)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
        return redirect("billing:bacs_reports")
    return _file_response(submission)


def _representation_submission(user: User, partner: Partner, pk: int) -> DirectDebitSubmission:
    return get_object_or_404(
        DirectDebitSubmission.objects.filter(partner=partner, bill_run__isnull=True), pk=pk
    )


@login_required
@require_POST
def representation_file_again(request: HttpRequest, pk: int) -> HttpResponse:
    """The same bytes of a re-presentation file made before (not cancelled, not cleared)."""
    user, partner = _representation_maker(request)
    submission = _representation_submission(user, partner, pk)
    if submission.is_cancelled or submission.is_content_cleared:
        messages.error(request, f"Submission {submission.serial} is cancelled or its file was cleared.")
        return redirect("billing:bacs_reports")
    audit_record(
        actor=user,
        action="export.direct_debit_representation_file",
        target=submission,
        detail={"serial": submission.serial, "sha256": submission.sha256, "again": True},
    )
    return _file_response(submission)


@login_required
@require_POST
def representation_file_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    user, partner = _representation_maker(request)
    submission = _representation_submission(user, partner, pk)
    _cancel_submission(request, user, submission, "its Direct Debits are due again.", kind="Re-presentation")
    return redirect("billing:bacs_reports")


@login_required
def bacs_report_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    report_import = get_object_or_404(_bacs_report_imports_visible_to(user), pk=pk)
    errors = report_import.errors.all()[:1000]
    return render(request, "billing/bacs_report.html", {"report_import": report_import, "errors": errors})
