"""Taking on a customer without the admin, adding a line to one, and the product catalogue's pages.
Thin: reads through ``billing.selectors``, writes through ``billing.services``.

Onboarding is one page of sections, then a summary to confirm. Between the two, what was typed is kept in
the session encrypted under the field-encryption key ring (``fusion_site.crypto``): the bank details are
never stored in clear, and the summary shows them masked. Confirming checks everything again and saves it
in one transaction (``billing.services.onboarding.customer_onboard``)."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.datastructures import MultiValueDict
from django.views.decorators.http import require_http_methods

from accounts import pii, validation
from accounts.models import Partner, User
from accounts.security import signed_in_user
from accounts.selectors import VIEW_ALL_CUSTOMERS, access_customer
from billing import selectors
from billing.catalogue import price_on
from billing.forms import LineAddForm, ProductForm, ProductPriceForm
from billing.onboarding_forms import OnboardingForms
from billing.services.catalogue import product_create, product_price_add
from billing.services.onboarding import ONBOARDING_PERMISSIONS, customer_onboard, line_add
from fusion_site.crypto import keyring

DRAFT_KEY = "billing.onboarding_draft"


def may_onboard(user: User) -> bool:
    return user.is_staff and not user.is_portal_user and all(user.has_perm(p) for p in ONBOARDING_PERMISSIONS)


def _onboarding_partner(user: User, partner_id: Any) -> Partner | None:
    """The partner a customer is taken on for: a partner's staff, their own (another partner's id is a
    404); the provider's staff, the one they chose (None until they have)."""
    if not may_onboard(user):
        raise PermissionDenied("Taking on customers needs the billing agent's or administrator's role.")
    if user.partner_id is not None:
        if partner_id not in (None, "", str(user.partner_id), user.partner_id):
            raise Http404("No such partner.")
        return user.partner
    if not user.has_perm(VIEW_ALL_CUSTOMERS):
        raise Http404("No such partner.")
    if partner_id in (None, ""):
        return None
    partner = Partner.objects.filter(pk=partner_id).first() if str(partner_id).isdigit() else None
    if partner is None:
        raise Http404("No such partner.")
    return partner


def _draft_save(request: HttpRequest, partner: Partner) -> None:
    data = {name: request.POST.getlist(name) for name in request.POST if name != "csrfmiddlewaretoken"}
    request.session[DRAFT_KEY] = keyring().encrypt(json.dumps({"partner": partner.pk, "data": data}))


def _draft(request: HttpRequest) -> tuple[Any, MultiValueDict[str, str]] | None:
    stored = request.session.get(DRAFT_KEY)
    if not stored:
        return None
    draft = json.loads(keyring().decrypt(stored))
    return draft["partner"], MultiValueDict(draft["data"])


def _onboard_url(partner: Partner, user: User, **extra: str) -> str:
    query = {"partner": str(partner.pk)} if user.partner_id is None else {}
    query.update(extra)
    suffix = "&".join(f"{name}={value}" for name, value in query.items())
    return reverse("billing:onboard") + (f"?{suffix}" if suffix else "")


def _render_form(
    request: HttpRequest, partner: Partner, forms: OnboardingForms, *, status: int = 200
) -> HttpResponse:
    bound = forms.customer.is_bound
    context = {
        "partner": partner,
        "forms": forms,
        "errors": forms.errors_named() if bound else [],
        "no_products": not selectors.products_offered(partner).exists(),
    }
    return render(request, "billing/onboard.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def onboard(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    partner = _onboarding_partner(user, request.GET.get("partner"))
    if partner is None:
        return render(request, "billing/onboard_partner.html", {"partners": Partner.objects.order_by("name")})
    if request.method == "POST":
        forms = OnboardingForms(partner, request.POST)
        if forms.is_valid():
            _draft_save(request, partner)
            return redirect(
                _onboard_url(partner, user).replace(
                    reverse("billing:onboard"), reverse("billing:onboard_confirm")
                )
            )
        return _render_form(request, partner, forms)
    draft = _draft(request) if request.GET.get("change") else None
    if draft is not None and draft[0] == partner.pk:
        return _render_form(request, partner, OnboardingForms(partner, draft[1]))
    return _render_form(request, partner, OnboardingForms(partner))


def _summary(forms: OnboardingForms) -> dict[str, Any]:
    customer = forms.customer.cleaned_data
    start = customer["contract_start"]
    bank = forms.bank.new_bank_details()
    return {
        "customer": customer,
        "site": forms.site.cleaned_data,
        "contact": forms.contact.cleaned_data,
        "lines": [
            {
                "number": validation.national_phone_digits(line.cli),
                "type": dict(forms.lines.forms[0].fields["line_type"].choices).get(line.line_type),
                "product": line.product,
                "price": price_on(
                    selectors.product_price_versions(line.product), max(start, timezone.localdate())
                ),
            }
            for line in forms.new_lines()
        ],
        "bank": bank
        and {
            "account_holder": bank.account_holder,
            "sort_code": pii.mask_sort_code(bank.sort_code),
            "account_number": pii.mask_account_number(bank.account_number),
        },
    }


@login_required
@require_http_methods(["GET", "POST"])
def onboard_confirm(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    draft = _draft(request)
    if draft is None:
        _onboarding_partner(user, None if user.partner_id is None else user.partner_id)
        return redirect("billing:onboard")
    partner = _onboarding_partner(user, draft[0])
    assert partner is not None
    forms = OnboardingForms(partner, draft[1])
    if not forms.is_valid():
        return _render_form(request, partner, forms)
    if request.method == "POST":
        try:
            customer = customer_onboard(
                partner=partner,
                actor=user,
                name=forms.customer.cleaned_data["name"],
                contract_start=forms.customer.cleaned_data["contract_start"],
                tariff=forms.customer.cleaned_data["tariff"],
                site=forms.site.new_site(),
                contact=forms.contact.new_contact(),
                lines=forms.new_lines(),
                bank_details=forms.bank.new_bank_details(),
            )
        except ValidationError as exc:
            forms.add_service_errors(exc)
            return _render_form(request, partner, forms)
        del request.session[DRAFT_KEY]
        messages.success(request, f"{customer.reference} taken on.")
        return redirect("accounts:site_details", reference=customer.reference)
    context = {"partner": partner, "change_url": _onboard_url(partner, user, change="1"), **_summary(forms)}
    return render(request, "billing/onboard_confirm.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def line_add_page(request: HttpRequest, reference: str) -> HttpResponse:
    """A new line of an existing customer, rented as one of the partner's products."""
    user = signed_in_user(request)
    customer = access_customer(user, reference)
    if user.is_portal_user or not (
        user.has_perm("accounts.add_line") and user.has_perm("billing.add_lineproduct")
    ):
        raise PermissionDenied
    form = LineAddForm(request.POST or None, customer=customer, initial={"start_date": timezone.localdate()})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            line_add(
                customer=customer,
                site=data["site"],
                cli=data["cli"],
                line_type=data["line_type"],
                start_date=data["start_date"],
                product=data["product"],
                actor=user,
            )
        except ValidationError as exc:
            for name, errors in (
                exc.error_dict if hasattr(exc, "error_dict") else {None: exc.error_list}
            ).items():
                form.add_error(name if name in form.fields else None, errors)
        else:
            messages.success(request, "Line added.")
            return redirect("accounts:site_details", reference=customer.reference)
    return render(request, "billing/line_add.html", {"customer": customer, "form": form})


# Product catalogue -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def product_list(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    if not user.has_perm("billing.view_product") or user.is_portal_user:
        raise PermissionDenied
    products = list(
        selectors.products_visible_to(user).prefetch_related("prices").order_by("partner__name", "name")
    )
    today = timezone.localdate()
    may_add = user.has_perm("billing.add_product")
    form = ProductForm(request.POST or None, user=user) if may_add else None
    if request.method == "POST":
        if form is None:
            raise PermissionDenied
        if form.is_valid():
            try:
                product = product_create(actor=user, **form.cleaned_data)
            except ValidationError as exc:
                for name, errors in exc.error_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
            else:
                messages.success(request, f"{product} added.")
                return redirect("billing:product", pk=product.pk)
    rows = [
        (product, price_on([(p.valid_from, p.monthly_price) for p in product.prices.all()], today))
        for product in products
    ]
    return render(request, "billing/products.html", {"rows": rows, "form": form, "today": today})


@login_required
@require_http_methods(["GET", "POST"])
def product_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    product = selectors.access_product(user, pk)
    may_add = user.has_perm("billing.add_productprice")
    form = ProductPriceForm(request.POST or None) if may_add else None
    if request.method == "POST":
        if form is None:
            raise PermissionDenied
        if form.is_valid():
            try:
                product_price_add(product=product, actor=user, **form.cleaned_data)
            except ValidationError as exc:
                for name, errors in exc.error_dict.items():
                    form.add_error(name if name in form.fields else None, errors)
            else:
                messages.success(request, "New price added.")
                return redirect("billing:product", pk=product.pk)
    today = timezone.localdate()
    versions = list(product.prices.order_by("-valid_from"))
    current = price_on([(v.valid_from, v.monthly_price) for v in versions], today)
    history = (
        product.prices.model.history.filter(product_id=product.pk)
        .select_related("history_user")
        .order_by("-history_date")
    )
    context = {
        "product": product,
        "versions": versions,
        "current": current,
        "today": today,
        "form": form,
        "history": history,
    }
    return render(request, "billing/product_detail.html", context)
