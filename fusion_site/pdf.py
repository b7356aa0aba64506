"""Documents as PDF: the same template as the page, rendered by WeasyPrint under the print stylesheet.

An invoice, a credit note, a statement or an Art. 15 report is one template (``templates/document.html``
is their layout); the browser shows it, and ``render_pdf`` prints it. WeasyPrint reads nothing from the
network: its URL fetcher serves the files of the project's ``static/`` folder under ``STATIC_URL`` and
refuses every other address (no http, no file:, no data outside it), so a document can neither leak a
request nor read the disk.

WeasyPrint needs Pango (Debian: ``libpango-1.0-0``, ``libpangoft2-1.0-0``); without it the import fails
with an ``OSError``. ``weasyprint_problem()`` says so in words, the system check (``fusion_site/checks.py``)
names the package, and ``render_pdf`` raises ``PdfUnavailable`` with the same message.
"""

from __future__ import annotations

import logging
import mimetypes
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)

# The documents' base URL: a name that resolves nowhere (RFC 2606 ".invalid"), so a relative or
# root-relative link in a template becomes an address the fetcher recognises, never a real host.
DOCUMENT_BASE_URL = "https://documents.fusion.invalid/"
DEBIAN_PACKAGES = "libpango-1.0-0 libpangoft2-1.0-0"
PDF_CONTENT_TYPE = "application/pdf"


class PdfUnavailable(RuntimeError):
    """WeasyPrint or the system libraries it needs are not installed."""


class RefusedUrl(ValueError):
    """A document asked for something other than one of the project's static files."""


@cache
def weasyprint_problem() -> str:
    """Why WeasyPrint cannot run here, or "" when it can."""
    try:
        import weasyprint  # noqa: F401 - importing loads Pango through cffi
    except ImportError:
        return "WeasyPrint is not installed in this environment (run `make install`)."
    except OSError as exc:
        return (
            f"WeasyPrint cannot load its system libraries ({exc}); install Debian's "
            f"packages: apt-get install {DEBIAN_PACKAGES}"
        )
    return ""


def static_folder() -> Path:
    """The project's own static folder (the first of STATICFILES_DIRS): the only files a document reads."""
    return Path(settings.STATICFILES_DIRS[0]).resolve()


def static_file_for(url: str) -> Path:
    """The file of ``static/`` that ``url`` names under the documents' base URL, or ``RefusedUrl``."""
    parts = urlsplit(url)
    base = urlsplit(DOCUMENT_BASE_URL)
    prefix = "/" + settings.STATIC_URL.strip("/") + "/"
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not parts.path.startswith(prefix):
        raise RefusedUrl(f"Documents read only the project's static files, not {url[:200]!r}.")
    folder = static_folder()
    path = (folder / unquote(parts.path.removeprefix(prefix))).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise RefusedUrl(f"No such static file: {parts.path[:200]!r}.")
    return path


def _fetcher() -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticOnlyFetcher(URLFetcher):
        """Serves ``static/`` and refuses everything else (WeasyPrint then leaves the resource out)."""

        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            try:
                path = static_file_for(url)
            except RefusedUrl as exc:
                logger.warning("A document's resource was refused: %s", exc)
                raise
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": content_type})

    return StaticOnlyFetcher(allowed_protocols=["https"], allow_redirects=False)


def render_pdf(template_name: str, context: dict[str, Any], request: HttpRequest | None = None) -> bytes:
    """The template rendered as the page would be, then printed: the ``print`` media of its stylesheets
    apply (``static/css/document.css`` hides the navigation and forms and sets the page)."""
    problem = weasyprint_problem()
    if problem:
        raise PdfUnavailable(problem)
    from weasyprint import HTML

    html = render_to_string(template_name, {**context, "printing": True}, request=request)
    document = HTML(string=html, base_url=DOCUMENT_BASE_URL, url_fetcher=_fetcher(), media_type="print")
    return bytes(document.write_pdf())


def pdf_download(
    template_name: str, context: dict[str, Any], *, request: HttpRequest, filename: str
) -> HttpResponse:
    """The template as a PDF attachment; where WeasyPrint cannot run, a 503 that says why instead of a
    server error (the system check has said so at start-up too)."""
    try:
        content = render_pdf(template_name, context, request)
    except PdfUnavailable as exc:
        logger.error("PDF download refused: %s", exc)
        return HttpResponse(
            "PDF documents cannot be made on this server at the moment. The page itself can be printed.",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
    return pdf_response(content, filename)


def pdf_response(content: bytes, filename: str) -> HttpResponse:
    """A PDF download: an attachment with a plain file name, never stored by a cache."""
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in filename)
    response = HttpResponse(content, content_type=PDF_CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{safe}"'
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
