"""Staff and customer pages. Thin: access through selectors, writes through services."""

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from accounts import pii, selectors, services, two_factor
from accounts import site_details as details
from accounts.audit import audit_record
from accounts.customer_list import CustomerListPaginator, customer_rows
from accounts.forms import (
    ContactAddForm,
    ContactForm,
    OneTimeCodeForm,
    ProvisioningOrderForm,
    RevealForm,
    SiteAddForm,
    SiteForm,
)
from accounts.models import AccessLog, Customer, User
from accounts.security import signed_in_user

CUSTOMERS_PER_PAGE = 50


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if user.is_portal_user:
        return redirect("accounts:my_account")
    query = request.GET.get("q", "")
    paginator = CustomerListPaginator(user, query=query, per_page=CUSTOMERS_PER_PAGE)
    page = paginator.get_page(request.GET.get("page"))
    context = {"page": page, "rows": customer_rows(page), "query": query}
    return render(request, "accounts/home.html", context)


@login_required
def my_account(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if user.customer is None:
        return redirect("accounts:home")
    return redirect("accounts:site_details", reference=user.customer.reference)


def _log_cross_partner_view(user: User, customer: Customer) -> None:
    if selectors.is_outside_users_partner(user, customer):
        services.access_log_record(
            user=user,
            customer=customer,
            action=AccessLog.Action.CROSS_PARTNER_VIEW,
            fields=["site_details"],
            reason="Opened the Site Details of a customer outside the user's partner",
        )


def _render_site_details(
    request: HttpRequest,
    customer: Customer,
    visibility: details.Visibility,
    *,
    reveal_form: RevealForm | None = None,
    reads: tuple[selectors.SiteDetailsRows, list[selectors.TimelineEntry]] | None = None,
) -> HttpResponse:
    context = details.page_context(customer, user=signed_in_user(request), visibility=visibility, reads=reads)
    return render(request, "accounts/site_details.html", context | _reveal_form_context(reveal_form))


def _reveal_form_context(form: RevealForm | None) -> dict[str, Any]:
    """The reveal form and its fields as the page shows them: a form given back with its errors, or a
    blank one, whose fields are rendered once per process."""
    if form is None:
        return {"reveal_form": RevealForm(), "reveal_fields": _blank_reveal_fields()}
    return {"reveal_form": form, "reveal_fields": _reveal_fields(form)}


def _reveal_fields(form: RevealForm) -> dict[str, str]:
    return {
        "reason": str(form["reason"]),
        "reason_errors": str(form["reason"].errors),
        "reason_help": str(form["reason"].help_text),
        "include_payment": str(form["include_payment"]),
    }


@functools.cache
def _blank_reveal_fields() -> dict[str, str]:
    """A blank reveal form's fields hold nothing of the request, yet Django renders each widget through
    its templates: about 0.25 ms of every staff Site Details page, now once per process."""
    return _reveal_fields(RevealForm())


@login_required
def site_details_view(request: HttpRequest, reference: str) -> HttpResponse:
    user = signed_in_user(request)
    customer, rows, history = selectors.access_site_details(user, reference)
    _log_cross_partner_view(user, customer)
    visibility = details.visibility_for(user, reveal_personal=False, reveal_payment=False)
    return _render_site_details(request, customer, visibility, reads=(rows, history))


@login_required
@require_POST
def reveal(request: HttpRequest, reference: str) -> HttpResponse:
    """Show this customer's masked data in clear for this response, and log that it was shown."""
    user = signed_in_user(request)
    customer = selectors.access_customer(user, reference)
    if not pii.may_reveal_personal_data(user):
        raise PermissionDenied(
            "Revealing personal data needs a signed confidentiality agreement and current training."
        )
    form = RevealForm(request.POST)
    if not form.is_valid():
        visibility = details.visibility_for(user, reveal_personal=False, reveal_payment=False)
        return _render_site_details(request, customer, visibility, reveal_form=form)
    include_payment = form.cleaned_data["include_payment"] and pii.may_reveal_payment_details(user)
    visibility = details.visibility_for(user, reveal_personal=True, reveal_payment=include_payment)
    context = details.page_context(customer, user=user, visibility=visibility)
    # One entry for everything this response shows in clear: the current values and the change
    # history's before and after values, under the reason given.
    fields = (
        details.PERSONAL_FIELDS
        + (details.PAYMENT_FIELDS if include_payment else [])
        + context["history_shown_in_clear"]
    )
    services.access_log_record(
        user=user,
        customer=customer,
        action=AccessLog.Action.REVEAL,
        fields=fields,
        reason=form.cleaned_data["reason"],
    )
    return render(request, "accounts/site_details.html", context | _reveal_form_context(None))


def _require_editor(user: User, customer: Customer, permission: str, fields: list[str]) -> None:
    if not user.has_perm(permission):
        raise PermissionDenied
    if not user.is_portal_user and not pii.may_reveal_personal_data(user):
        raise PermissionDenied(
            "Correcting personal data needs a signed confidentiality agreement and current training."
        )


def _log_edit_form(user: User, customer: Customer, fields: list[str]) -> None:
    if not user.is_portal_user:
        services.access_log_record(
            user=user,
            customer=customer,
            action=AccessLog.Action.EDIT_FORM,
            fields=fields,
            reason="Opened for correction (rectification)",
        )


def _rectification_reason(user: User, form_reason: str) -> str:
    who = "the customer" if user.is_portal_user else "staff"
    return f"Rectification by {who} via Site Details" + (f": {form_reason}" if form_reason else "")


# What the Site Details page corrects (rectification), by the name of the row's model: how the row is
# found among the customer's, the form, the service that corrects it, and what the page then says.
_RECTIFIABLE: dict[
    str, tuple[Callable[[Customer, int], Any], type[ContactForm | SiteForm], Callable[..., Any], str]
] = {
    "contact": (selectors.contact_of, ContactForm, services.contact_update, "Contact details corrected."),
    "site": (selectors.site_of, SiteForm, services.site_update, "Site details corrected."),
}


def _rectification_page(request: HttpRequest, reference: str, what: str, row_id: int) -> HttpResponse:
    """Correct one of the customer's rows through its ``*_update`` service, which takes the row by the
    name of its model; needs ``accounts.change_<what>``, and opening the form logs the row's personal
    fields. The form starts from the row's values, less the reason."""
    user = signed_in_user(request)
    customer = selectors.access_customer(user, reference)
    row_of, form_class, update, done_message = _RECTIFIABLE[what]
    row = row_of(customer, row_id)
    fields = [name for name in details.PERSONAL_FIELDS if name.startswith(f"{what}.")]
    _require_editor(user, customer, f"accounts.change_{what}", fields)
    if request.method == "POST":
        form = form_class(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            reason = data.pop("reason")
            try:
                update(**{what: row}, actor=user, reason=_rectification_reason(user, reason), **data)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, done_message)
                return redirect("accounts:site_details", reference=customer.reference)
    else:
        _log_edit_form(user, customer, fields)
        form = form_class(
            initial={name: getattr(row, name) for name in form_class.base_fields if name != "reason"}
        )
    return render(request, "accounts/edit.html", {"customer": customer, "form": form, "what": what})


@login_required
@require_http_methods(["GET", "POST"])
def contact_edit(request: HttpRequest, reference: str, contact_id: int) -> HttpResponse:
    return _rectification_page(request, reference, "contact", contact_id)


@login_required
@require_http_methods(["GET", "POST"])
def site_edit(request: HttpRequest, reference: str, site_id: int) -> HttpResponse:
    return _rectification_page(request, reference, "site", site_id)


# What the Site Details page adds to a customer after it was taken on: the form and the service that
# creates the row, and what the page then says.
_ADDABLE: dict[str, tuple[type[ContactAddForm | SiteAddForm], Callable[..., Any], str]] = {
    "contact": (ContactAddForm, services.contact_create, "Contact added."),
    "site": (SiteAddForm, services.site_create, "Site added."),
}


def _add_page(request: HttpRequest, reference: str, what: str) -> HttpResponse:
    """Add a row to one of the customer's: needs ``accounts.add_<what>`` and staff (the portal corrects,
    it does not add). A field the service refuses is named on the form and nothing is saved."""
    user = signed_in_user(request)
    customer = selectors.access_customer(user, reference)
    if user.is_portal_user or not user.has_perm(f"accounts.add_{what}"):
        raise PermissionDenied
    form_class, create, done_message = _ADDABLE[what]
    form = form_class(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            create(customer=customer, actor=user, **form.cleaned_data)
        except ValidationError as exc:
            for name, errors in (
                exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
            ).items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(request, done_message)
            return redirect("accounts:site_details", reference=customer.reference)
    return render(request, "accounts/add.html", {"customer": customer, "form": form, "what": what})


@login_required
@require_http_methods(["GET", "POST"])
def contact_add(request: HttpRequest, reference: str) -> HttpResponse:
    return _add_page(request, reference, "contact")


@login_required
@require_http_methods(["GET", "POST"])
def site_add(request: HttpRequest, reference: str) -> HttpResponse:
    return _add_page(request, reference, "site")


@login_required
@require_POST
def order_create(request: HttpRequest, reference: str) -> HttpResponse:
    user = signed_in_user(request)
    customer = selectors.access_customer(user, reference)
    if not user.has_perm("accounts.add_provisioningorder"):
        raise PermissionDenied
    form = ProvisioningOrderForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "; ".join(f"{name}: {' '.join(map(str, errs))}" for name, errs in form.errors.items())
        )
        return redirect("accounts:site_details", reference=customer.reference)
    line_id = form.cleaned_data["line"]
    line = selectors.line_of(customer, line_id) if line_id else None
    try:
        order = services.provisioning_order_create(
            customer=customer,
            line=line,
            kind=form.cleaned_data["kind"],
            actor=user,
            notes=form.cleaned_data["notes"],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        order.refresh_from_db()
        messages.success(request, f"{order} {order.get_status_display().lower()}.")
    return redirect("accounts:site_details", reference=customer.reference)


# Second factor ----------------------------------------------------------------------------------


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        return target
    return reverse("accounts:home")


@login_required
@require_http_methods(["GET", "POST"])
def otp_verify(request: HttpRequest) -> HttpResponse:
    """The second step of every login: a code from the authenticator app or a recovery code."""
    user = signed_in_user(request)
    if not two_factor.has_confirmed_authenticator(user):
        return redirect(f"{reverse('accounts:otp_enrol')}?{request.GET.urlencode()}")
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = two_factor.device_matching(user, form.cleaned_data["token"])
        if device is not None:
            otp_login(request, device)
            audit_record(actor=user, action="auth.second_factor_passed", target=user, detail={})
            return redirect(_safe_next(request))
        audit_record(actor=user, action="auth.second_factor_failed", target=user, detail={})
        form.add_error("token", "That code is not right, or has been used already.")
    return render(request, "registration/otp_verify.html", {"form": form, "next": _safe_next(request)})


@login_required
@require_http_methods(["GET", "POST"])
def otp_enrol(request: HttpRequest) -> HttpResponse:
    """Set up an authenticator app: shows the secret (and its QR code), confirms it with a first code,
    then shows the recovery codes once. Someone who already has an authenticator must verify first,
    so a stolen password alone cannot replace it."""
    user = signed_in_user(request)
    if two_factor.has_confirmed_authenticator(user) and not user.is_verified():  # type: ignore[attr-defined]
        return redirect("accounts:otp_verify")
    device = two_factor.pending_authenticator(user)
    form = OneTimeCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = two_factor.authenticator_confirm(device=device, token=form.cleaned_data["token"], actor=user)
        if codes is not None:
            otp_login(request, device)
            return render(
                request, "registration/recovery_codes.html", {"codes": codes, "next": _safe_next(request)}
            )
        form.add_error("token", "That code does not match the secret; check the app's clock and try again.")
    uri = two_factor.otpauth_uri(device)
    context = {
        "form": form,
        "secret": two_factor.base32_secret(device),
        "otpauth_uri": uri,
        "qr_svg": mark_safe(two_factor.qr_svg(uri)),  # noqa: S308 - SVG built by qrcode from our own URI
        "next": _safe_next(request),
    }
    return render(request, "registration/otp_enrol.html", context)


@login_required
@require_POST
def recovery_codes_renew(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    codes = two_factor.recovery_codes_issue(user=user, actor=user)
    return render(
        request, "registration/recovery_codes.html", {"codes": codes, "next": reverse("accounts:home")}
    )
