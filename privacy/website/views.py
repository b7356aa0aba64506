"""The public website's pages. Thin: forms check input, services write, selectors read.

Every public page goes out with its own strict Content-Security-Policy (scripts and styles from this
site's static files only); a site-wide CSP middleware, where installed, keeps a header already set.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from privacy.models import CookieConsentRecord
from privacy.website import forms, selectors, services
from privacy.website.verification import VerificationError

COOKIE_CONSENT_COOKIE = "fusion_cookie_consent"
COOKIE_CONSENT_MAX_AGE = 180 * 24 * 3600  # ask again after six months
PUBLIC_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def cookie_choice(request: HttpRequest) -> str:
    choice = request.COOKIES.get(COOKIE_CONSENT_COOKIE, "")
    return choice if choice in CookieConsentRecord.Choice.values else ""


def render_public(
    request: HttpRequest, template: str, context: dict[str, Any] | None = None, *, status: int = 200
) -> HttpResponse:
    choice = cookie_choice(request)
    page = {
        "cookie_choice": choice,
        "analytics_allowed": choice == CookieConsentRecord.Choice.ACCEPTED,
        "cookie_form": forms.CookieChoiceForm(),
        "current_notice": selectors.current_notice(),
        **(context or {}),
    }
    response = render(request, template, page, status=status)
    response["Content-Security-Policy"] = PUBLIC_CSP
    return response


def _build_url(request: HttpRequest) -> services.UrlBuilder:
    return request.build_absolute_uri


def home(request: HttpRequest) -> HttpResponse:
    return render_public(request, "website/home.html")


def privacy_notice(request: HttpRequest, version: int | None = None) -> HttpResponse:
    notice = selectors.published_notice(version) if version is not None else selectors.current_notice()
    context = {
        "notice": notice,
        # The register as it is today, under the current notice only: an earlier version is kept as it was.
        "shared_with": list(selectors.shared_with()) if notice is not None and version is None else [],
        "versions": selectors.published_notices().only("version", "title", "published_at"),
    }
    return render_public(request, "website/privacy_notice.html", context, status=200 if notice else 404)


View = Callable[..., HttpResponse]


def _consent_form_page(form_class: type[Any], template: str, submit: Any, done_message: str) -> View:
    """A page whose form needs consent to the current notice: the notice shown is the notice recorded.
    ``submit(request, consent_notice=..., **fields)`` writes what the form was given."""

    @require_http_methods(["GET", "POST"])
    def page(request: HttpRequest) -> HttpResponse:
        notice = selectors.current_notice()
        if request.method == "POST" and notice is not None:
            form = form_class(request.POST, request.FILES)
            if form.is_valid():
                data = {key: value for key, value in form.cleaned_data.items() if key != "consent"}
                submit(request, consent_notice=notice, **data)
                messages.success(request, done_message)
                return redirect(request.path)
        else:
            form = form_class()
        return render_public(request, template, {"form": form, "notice": notice})

    return page


def _token_action_page(act: Any, done_message: str, heading: str, button: str) -> View:
    """A page a link in an email opens: GET shows a button and POST acts (``act(token=...)``), because
    mail scanners follow links and must not act for the visitor."""
    template = "website/token_action.html"
    context = {"heading": heading, "button": button}

    @require_http_methods(["GET", "POST"])
    def page(request: HttpRequest, token: str) -> HttpResponse:
        if request.method == "POST":
            try:
                act(token=token)
            except VerificationError as exc:
                return render_public(request, template, {"error": str(exc), **context}, status=400)
            return render_public(request, template, {"done": done_message, **context})
        return render_public(request, template, {"token": token, **context})

    return page


contact = _consent_form_page(
    forms.ContactForm,
    "website/contact.html",
    lambda request, **fields: services.contact_submit(**fields),
    "Thank you: your message has been sent. We will reply by email.",
)
job_apply = _consent_form_page(
    forms.JobApplicationForm,
    "website/job_apply.html",
    lambda request, **fields: services.job_application_submit(**fields),
    "Thank you: your application has been received.",
)
mailing_list = _consent_form_page(
    forms.MailingListForm,
    "website/mailing_list.html",
    lambda request, **fields: services.mailing_list_subscribe(build_url=_build_url(request), **fields),
    "Nearly done: we have sent you an email. Open the link in it to confirm your subscription.",
)
mailing_list_confirm = _token_action_page(
    services.mailing_list_confirm,
    "Thank you: your subscription is confirmed.",
    heading="Confirm your subscription",
    button="Confirm my subscription",
)
# The signed token is the authority here, and mail clients' one-click unsubscribe (RFC 8058) posts
# without a CSRF token; a forged post could only unsubscribe the token's own address.
mailing_list_unsubscribe = csrf_exempt(
    _token_action_page(
        services.mailing_list_unsubscribe,
        "You have been unsubscribed. We will not send you any more news.",
        heading="Unsubscribe from our mailing list",
        button="Unsubscribe",
    )
)
privacy_request_verify = _token_action_page(
    services.privacy_request_verify,
    "Thank you: your request is confirmed. We will reply within one month.",
    heading="Confirm your privacy request",
    button="Confirm my request",
)


@require_http_methods(["GET", "POST"])
def privacy_request(request: HttpRequest) -> HttpResponse:
    notice = selectors.current_notice()
    if request.method == "POST":
        form = forms.PrivacyRequestForm(request.POST)
        if form.is_valid():
            services.privacy_request_submit(
                email=form.cleaned_data["email"],
                request_kind=form.cleaned_data["request_kind"],
                details=form.cleaned_data["details"],
                notice=notice,
                build_url=_build_url(request),
            )
            messages.success(
                request,
                "We have sent you an email. Open the link in it to confirm that the request is yours.",
            )
            return redirect(request.path)
    else:
        form = forms.PrivacyRequestForm()
    return render_public(request, "website/privacy_request.html", {"form": form, "notice": notice})


def cookies(request: HttpRequest) -> HttpResponse:
    return render_public(request, "website/cookies.html")


@require_POST
def cookie_consent(request: HttpRequest) -> HttpResponse:
    """Records the choice anonymously and remembers it in a cookie. The consent script posts here with
    ``Accept: application/json``; without script, the banner's form posts and comes back."""
    form = forms.CookieChoiceForm(request.POST)
    wants_json = "application/json" in request.headers.get("Accept", "")
    if not form.is_valid():
        errors = [str(message) for message in form.errors["choice"]]
        if wants_json:
            return JsonResponse({"errors": {"choice": errors}}, status=400)
        return render_public(request, "website/cookies.html", {"cookie_errors": errors}, status=400)
    choice = form.cleaned_data["choice"]
    services.cookie_consent_record(choice=choice, notice=selectors.current_notice())
    if wants_json:
        response: HttpResponse = JsonResponse({"choice": choice})
    else:
        target = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(
            target, {request.get_host()}, require_https=request.is_secure()
        ):
            target = reverse("website:cookies")
        response = redirect(target)
    response.set_cookie(
        COOKIE_CONSENT_COOKIE,
        choice,
        max_age=COOKIE_CONSENT_MAX_AGE,
        samesite="Lax",
        httponly=True,
        secure=settings.SESSION_COOKIE_SECURE,
    )
    return response
