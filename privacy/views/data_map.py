"""Privacy pages: the Record of Processing Activities (and its CSV) and the erasure preview. Thin: the
data map and the erasure engine decide; these check permissions and render."""

import csv

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.security import staff_user_with
from accounts.selectors import access_customer
from fusion_site.charts import Axis, Chart, bar_chart
from privacy import data_map, ropa, selectors
from privacy.erasure import erasure_preview
from privacy.permissions import PrivacyPermission


def _fields_chart(per_category: list[tuple[str, int]]) -> Chart:
    return bar_chart(
        key="fields",
        title="Mapped personal data fields per category",
        x_axis=Axis("Category of personal data"),
        y_axis=Axis("Mapped", "fields"),
        labels=[label for label, _count in per_category],
        series=[("Personal data fields", [count for _label, count in per_category])],
    )


@login_required
def data_map_view(request: HttpRequest) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.VIEW_DATA_MAP)
    context = {
        "rows": ropa.field_rows(),
        "activities": selectors.activities_with_assessments(today=timezone.localdate()),
        "processors": selectors.processors_register(),
        "can_see_assessments": user.has_perm(PrivacyPermission.VIEW_ASSESSMENT),
        "can_add_assessments": user.has_perm(PrivacyPermission.ADD_ASSESSMENT),
        "can_see_processors": user.has_perm(PrivacyPermission.VIEW_PROCESSOR),
        "not_personal": sorted(data_map.NOT_PERSONAL.items()),
        "chart": _fields_chart(ropa.fields_per_category()),
    }
    return render(request, "privacy/data_map.html", context)


@login_required
@require_POST  # an export: never by a link a page or a mail could make the browser follow
def data_map_csv(request: HttpRequest) -> HttpResponse:
    staff_user_with(request, PrivacyPermission.VIEW_DATA_MAP)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="record-of-processing-activities.csv"'
    csv.writer(response).writerows(ropa.csv_rows())
    return response


@login_required
def erasure_preview_view(request: HttpRequest, reference: str) -> HttpResponse:
    user = staff_user_with(request, PrivacyPermission.PREVIEW_ERASURE)
    customer = access_customer(user, reference)
    preview = erasure_preview(customer=customer)
    erased = [item for item in preview.erased if item.rows]
    chart = bar_chart(
        key="erasure",
        title="Rows erased per table",
        x_axis=Axis("Table"),
        y_axis=Axis("Erased", "rows"),
        labels=[item.table for item in erased],
        series=[("Rows erased", [item.rows for item in erased])],
    )
    return render(
        request, "privacy/erasure_preview.html", {"customer": customer, "preview": preview, "chart": chart}
    )
