"""Privacy pages: data portability exports for staff and for the customer's own portal. Thin: access
through selectors (404 for customers the user may not see), writes through services."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import Customer, User
from accounts.security import signed_in_user
from accounts.selectors import access_customer
from fusion_site.charts import Axis, bar_chart
from privacy import selectors
from privacy.export_links import InvalidDownloadLink, download_token, read_download_token
from privacy.forms import ExportRequestForm
from privacy.models import DataExport
from privacy.portability import CATEGORIES
from privacy.services import exports as services


@dataclass(frozen=True)
class ExportRow:
    export: DataExport
    download_token: str | None


@login_required
@require_http_methods(["GET", "POST"])
def customer_exports(request: HttpRequest, reference: str) -> HttpResponse:
    """Staff: request a customer's export and list its exports."""
    user = signed_in_user(request)
    customer = access_customer(user, reference)
    if user.is_portal_user:
        raise Http404("No such page.")
    if not user.has_perm(selectors.VIEW_DATA_EXPORT):
        raise PermissionDenied
    return _exports_page(request, user, customer, portal=False)


@login_required
@require_http_methods(["GET", "POST"])
def my_data(request: HttpRequest) -> HttpResponse:
    """The portal user's own account: request and download its data."""
    user = signed_in_user(request)
    if user.customer is None:
        raise Http404("No such page.")
    customer = access_customer(user, user.customer.reference)
    if not user.has_perm(selectors.VIEW_DATA_EXPORT):
        raise PermissionDenied
    return _exports_page(request, user, customer, portal=True)


def _exports_page(request: HttpRequest, user: User, customer: Customer, *, portal: bool) -> HttpResponse:
    form = ExportRequestForm(request.POST or None)
    if request.method == "POST":
        if not user.has_perm(selectors.ADD_DATA_EXPORT):
            raise PermissionDenied
        if form.is_valid():
            try:
                services.portability_export_create(
                    customer=customer,
                    actor=user,
                    request_reference="" if portal else form.cleaned_data["request_reference"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(
                    request, "Export requested. It is prepared in the background; refresh to see it."
                )
                return redirect(request.path)
    now = timezone.now()
    exports = list(selectors.exports_of_customer(customer)[: selectors.EXPORTS_LISTED])
    rows = [
        ExportRow(export, download_token(export, now=now) if export.is_downloadable(now=now) else None)
        for export in exports
    ]
    latest = next((export for export in exports if export.status == DataExport.Status.READY), None)
    latest_counts = (
        [(category, int(latest.row_counts.get(category.name, 0))) for category in CATEGORIES]
        if latest
        else []
    )
    chart = bar_chart(
        key="export-records",
        title="Records per category in the latest export",
        x_axis=Axis("Category"),
        y_axis=Axis("In the export", "records"),
        labels=[category.title for category, _count in latest_counts],
        series=[("Records", [count for _category, count in latest_counts])],
    )
    context = {
        "customer": customer,
        "form": form,
        "rows": rows,
        "portal": portal,
        "may_request": user.has_perm(selectors.ADD_DATA_EXPORT),
        "latest": latest,
        "latest_counts": latest_counts,
        "chart": chart,
        "retention_days": settings.PRIVACY_EXPORT_RETENTION_DAYS,
    }
    return render(request, "privacy/exports.html", context)


@never_cache
@login_required
@require_GET
def export_download(request: HttpRequest, token: str) -> HttpResponse | FileResponse:
    """Serve an export's file through a signed link, to a user who may see its customer; log it.

    A link to another customer's export answers 404; an expired link or export answers 410, never the
    file."""
    user = signed_in_user(request)
    try:
        link = read_download_token(token)
    except InvalidDownloadLink:
        raise Http404("No such export.") from None
    export = selectors.access_data_export(user, link.export_public_id)
    now = timezone.now()
    path = export.storage_path()
    if link.has_expired(now=now) or not export.is_downloadable(now=now) or not path.is_file():
        return render(
            request,
            "privacy/export_gone.html",
            {
                "export": export,
                "link_expired": link.has_expired(now=now),
                "export_expired": export.expires_at <= now or export.status == DataExport.Status.EXPIRED,
                "downloadable": export.is_downloadable(now=now),
                "portal": user.is_portal_user,
            },
            status=410,
        )
    services.data_export_record_download(export=export, user=user, now=now)
    response = FileResponse(
        path.open("rb"), as_attachment=True, filename=export.download_name, content_type="application/zip"
    )
    response["Cache-Control"] = "no-store, private"
    return response
