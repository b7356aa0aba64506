"""A request id on every request, its response and each log line written while it is handled.

The TLS proxy in front (deploy/nginx.conf) sends its own id in ``X-Request-ID``, so a line of the
proxy's access log and the application's lines for the same request share it. The header comes from
outside, so it is taken only when it looks like an id (letters, digits, ``-``, ``_``, ``.``; at most
64 characters): anything else (a log-injection attempt, a megabyte of text, personal data) is replaced
by a fresh uuid4. The id lives in a context variable, which each thread (gunicorn's sync workers) and
each asyncio task sees on its own, and ``RequestIdFilter`` copies it onto every log record.

The id is cleared when the response has been sent (``request_finished``), not when the middleware
returns: Django's own "Not Found" and "Internal Server Error" lines are written after the middleware
chain, and they need the id most.
"""

import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

HEADER = "X-Request-ID"
_META_KEY = "HTTP_X_REQUEST_ID"
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
NO_REQUEST = "-"

current_request_id: ContextVar[str] = ContextVar("current_request_id", default=NO_REQUEST)


def accepted_or_new(offered: str | None) -> str:
    """The proxy's id when it is a sane one, else a new uuid4."""
    if offered and _SANE_ID.fullmatch(offered):
        return offered
    return str(uuid.uuid4())


class RequestIdMiddleware:
    """First in MIDDLEWARE, so every line logged by the middleware after it carries the id too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accepted_or_new(request.META.get(_META_KEY))
        request.request_id = request_id  # type: ignore[attr-defined]
        current_request_id.set(request_id)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response


@receiver(request_finished, dispatch_uid="fusion_site.request_id.forget")
def forget_request_id(**kwargs: object) -> None:
    current_request_id.set(NO_REQUEST)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to each record: the request's id, or ``-`` outside one (a task, a command)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True
