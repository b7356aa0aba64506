"""Back-office pages for the website's submissions and privacy notices."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts import pii
from accounts.security import signed_in_user
from fusion_site.charts import Axis, bar_chart
from privacy.models import PrivacyNotice, WebsiteSubmission
from privacy.website import exports, forms, selectors, services

SUBMISSIONS_PER_PAGE = 50


def _masked(submission: WebsiteSubmission, *, reveal: bool) -> dict[str, str]:
    if reveal:
        return {"name": submission.name, "email": submission.email}
    return {"name": pii.mask_text(submission.name), "email": pii.mask_email(submission.email)}


@login_required
def submissions(request: HttpRequest) -> HttpResponse:
    user = signed_in_user(request)
    kinds = selectors.submission_kinds_visible_to(user)
    if not kinds:
        raise Http404("No such page.")
    kind = request.GET.get("kind", kinds[0])
    if kind not in kinds:
        raise Http404("No such list.")
    counts = selectors.submission_counts(user)
    labels = dict(WebsiteSubmission.Kind.choices)
    totals = [(str(labels[k]), sum(counts[k].values())) for k in kinds]
    page = Paginator(selectors.submissions_visible_to(user, kind=kind), SUBMISSIONS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    reveal = pii.may_reveal_personal_data(user)
    rows = [(submission, _masked(submission, reveal=reveal)) for submission in page]
    context: dict[str, Any] = {
        "kind": kind,
        "kind_label": labels[kind],
        "tabs": [(k, labels[k], total) for k, (_label, total) in zip(kinds, totals, strict=True)],
        "page": page,
        "rows": rows,
        "chart": bar_chart(
            key="submissions",
            title="Submissions per kind",
            x_axis=Axis("Kind of submission"),
            y_axis=Axis("Received", "submissions"),
            labels=[label for label, _total in totals],
            series=[("Submissions", [total for _label, total in totals])],
        ),
        "status_counts": sorted(counts[kind].items()),
        "may_export": user.has_perm("privacy.export_mailing_list"),
    }
    return render(request, "privacy/website_submissions.html", context)


@login_required
def submission_detail(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    submission = selectors.access_submission(user, pk)
    reveal = pii.may_reveal_personal_data(user)
    context = {
        "submission": submission,
        "shown": _masked(submission, reveal=reveal),
        "revealed": reveal,
        "history": submission.history.select_related("history_user").order_by("-history_date")[:20],
        "decisions": [choice for choice in WebsiteSubmission.Decision.choices if choice[0]],
    }
    return render(request, "privacy/website_submission.html", context)


@login_required
def submission_cv(request: HttpRequest, pk: int) -> FileResponse:
    user = signed_in_user(request)
    submission = selectors.access_submission(user, pk)
    if not submission.cv or not pii.may_reveal_personal_data(user):
        raise Http404("No CV to show.")
    return FileResponse(
        submission.cv.open("rb"), as_attachment=True, filename=f"cv-{submission.pk}{_suffix(submission)}"
    )


@login_required
@require_POST
def submission_decision(request: HttpRequest, pk: int) -> HttpResponse:
    user = signed_in_user(request)
    submission = selectors.access_submission(user, pk)
    if not user.has_perm("privacy.view_recruitment"):
        raise Http404("No such submission.")
    try:
        services.job_application_record_decision(
            submission=submission, decision=request.POST.get("decision", ""), actor=user
        )
    except ValidationError as exc:
        messages.error(request, "; ".join(exc.messages))
    else:
        messages.success(request, "Decision recorded; the application is kept 6 months from today.")
    return redirect("website_staff:submission", pk=submission.pk)


def _suffix(submission: WebsiteSubmission) -> str:
    name = submission.cv.name or ""
    return name[name.rfind(".") :] if "." in name else ""


@login_required
@permission_required("privacy.export_mailing_list", raise_exception=True)
@require_POST
def mailing_list_export(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(exports.mailing_list_csv(), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="mailing-list-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@permission_required("privacy.view_privacynotice", raise_exception=True)
def notices(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "privacy/website_notices.html",
        {
            "notices": selectors.notices_for_staff(),
            "may_publish": signed_in_user(request).has_perm("privacy.publish_privacynotice"),
        },
    )


@login_required
@permission_required("privacy.add_privacynotice", raise_exception=True)
@require_http_methods(["GET", "POST"])
def notice_new(request: HttpRequest) -> HttpResponse:
    """A new draft, prefilled from the current version so a change starts from the words in force."""
    current = selectors.current_notice()
    if request.method == "POST":
        form = forms.PrivacyNoticeForm(request.POST)
        if form.is_valid():
            notice = services.privacy_notice_create(actor=signed_in_user(request), **form.cleaned_data)
            messages.success(request, f"Draft version {notice.version} saved.")
            return redirect("website_staff:notice_edit", pk=notice.pk)
    else:
        initial = (
            {"title": current.title, "summary": current.summary, "body": current.body} if current else {}
        )
        form = forms.PrivacyNoticeForm(initial=initial)
    return render(request, "privacy/website_notice_form.html", {"form": form, "notice": None})


@login_required
@permission_required("privacy.change_privacynotice", raise_exception=True)
@require_http_methods(["GET", "POST"])
def notice_edit(request: HttpRequest, pk: int) -> HttpResponse:
    notice = get_object_or_404(PrivacyNotice, pk=pk)
    if notice.is_published:
        messages.error(request, "A published notice cannot be changed; start a new version instead.")
        return redirect("website_staff:notices")
    form = forms.PrivacyNoticeForm(request.POST or None, instance=notice)
    if request.method == "POST" and form.is_valid():
        services.privacy_notice_update_draft(
            notice=notice, actor=signed_in_user(request), **form.cleaned_data
        )
        messages.success(request, f"Draft version {notice.version} saved.")
        return redirect("website_staff:notice_edit", pk=notice.pk)
    return render(request, "privacy/website_notice_form.html", {"form": form, "notice": notice})


@login_required
@permission_required("privacy.publish_privacynotice", raise_exception=True)
@require_POST
def notice_publish(request: HttpRequest, pk: int) -> HttpResponse:
    notice = get_object_or_404(PrivacyNotice, pk=pk)
    try:
        services.privacy_notice_publish(notice=notice, actor=signed_in_user(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Version {notice.version} is now the published privacy notice.")
    return redirect("website_staff:notices")
