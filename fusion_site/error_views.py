"""The error pages (403, 404, 500 and the CSRF failure) in the product's layout, wired as Django's
``handler403``/``handler404``/``handler500`` and ``CSRF_FAILURE_VIEW``.

403 and 404 render with the request, so the layout shows the navigation of a user who has passed the
second factor (templates/base.html shows none before it). The 500 page renders from a template that
needs no context at all: Django calls it after something already failed, possibly the database.
"""

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseServerError,
)
from django.template import loader
from django.utils.http import url_has_allowed_host_and_scheme

# What a refusal may say: the messages our own services and views raise are written for the user
# ("You may not issue credit notes."); anything else (Django's own, a third party's) stays generic.
_MAX_REFUSAL_LENGTH = 300


def _refusal_text(exception: Exception | None) -> str:
    text = str(exception or "").strip()
    return text if 0 < len(text) <= _MAX_REFUSAL_LENGTH else ""


def _previous_page(request: HttpRequest) -> str:
    """The page the user came from, when it is one of ours and not the failing page itself."""
    referer = request.META.get("HTTP_REFERER", "")
    same_site = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return referer if same_site and referer != request.build_absolute_uri() else ""


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    context = {"reason": _refusal_text(exception), "previous_page": _previous_page(request)}
    return HttpResponseForbidden(loader.render_to_string("403.html", context, request))


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # The exception's text is not shown: "No Invoice matches the given query" says which model was asked.
    context = {"previous_page": _previous_page(request)}
    return HttpResponseNotFound(loader.render_to_string("404.html", context, request))


def server_error(request: HttpRequest) -> HttpResponse:
    return HttpResponseServerError(loader.get_template("500.html").render())


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form sent without its security token (an expired page, cookies blocked, another site's form)."""
    context = {"csrf_failure": True, "previous_page": _previous_page(request)}
    return HttpResponseForbidden(loader.render_to_string("403.html", context, request))
