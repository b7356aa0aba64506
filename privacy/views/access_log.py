"""The customer's view of its access log in the portal ("Who has seen my data"), and its "Ask about this"
question to the DPO. The entries are read and worded by ``accounts.access_transparency`` (staff named by
role and organisation only); the question is a privacy request
(``privacy.services.requests.access_questions``)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts import access_transparency
from accounts.models import Customer, User
from accounts.security import signed_in_user
from privacy import selectors
from privacy.models import PrivacyPermission
from privacy.services.requests.access_questions import QUESTION_MAX_LENGTH, privacy_request_ask_about_access

ENTRIES_PER_PAGE = 25


def _portal_customer(user: User) -> Customer:
    if user.customer is None or not user.has_perm(PrivacyPermission.ADD):
        raise PermissionDenied
    return user.customer


@login_required
def my_access_log(request: HttpRequest) -> HttpResponse:
    """Newest first, 25 a page, optionally one kind (opened, revealed, opened to correct, exported)."""
    user = signed_in_user(request)
    customer = _portal_customer(user)
    kind = request.GET.get("kind", "")
    if kind not in access_transparency.Kind.values:
        kind = ""
    page = Paginator(access_transparency.entries_of_customer(customer, kind=kind), ENTRIES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    entries = access_transparency.describe_all(list(page), customer=customer)
    asked = selectors.questions_about_entries(customer.pk, [entry.id for entry in entries])
    context = {
        "page": page,
        "rows": [(entry, asked.get(entry.id)) for entry in entries],
        "kind": kind,
        "kinds": access_transparency.Kind.choices,
        "question_max_length": QUESTION_MAX_LENGTH,
    }
    return render(request, "privacy/my_access_log.html", context)


@login_required
@require_POST
def ask_about_access(request: HttpRequest, entry_id: int) -> HttpResponse:
    user = signed_in_user(request)
    _portal_customer(user)
    entry = access_transparency.entry_of_portal_user(user, entry_id)
    try:
        item, opened = privacy_request_ask_about_access(
            entry=entry, actor=user, question=request.POST.get("question", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if opened:
            messages.success(
                request,
                f"Thank you. Your question is {item.reference}; "
                f"our data protection officer will reply by {item.due_on:%d %B %Y}.",
            )
        else:
            messages.info(request, f"You have already asked about this entry: {item.reference} is open.")
    return redirect(_back_to_list(request))


def _back_to_list(request: HttpRequest) -> str:
    """The list page the question was asked from: its kind and page, and nothing else, from the form."""
    query = {}
    if request.POST.get("kind", "") in access_transparency.Kind.values:
        query["kind"] = request.POST["kind"]
    if request.POST.get("page", "").isdigit():
        query["page"] = request.POST["page"]
    url = reverse("privacy:my_access_log")
    return f"{url}?{urlencode(query)}" if query else url
