"""Back-office pages for website submissions: scoping, masking, consent shown, the CSV export."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import Role
from fusion_site.spreadsheet import safe_cell
from privacy.models import SuppressionEntry, WebsiteSubmission
from privacy.selectors import suppression_hmac
from privacy.website import services
from tests.chart_pages import chart_data, chart_table

pytestmark = pytest.mark.django_db

Kind = WebsiteSubmission.Kind


def build_url(path: str) -> str:
    return f"http://testserver{path}"


@pytest.fixture
def submissions(notice):
    contact = services.contact_submit(
        name="Ada", email="ada@example.com", message="Hello", consent_notice=notice
    )
    application = services.job_application_submit(
        name="Grace",
        email="grace@example.com",
        position="Engineer",
        cover_note="",
        cv=SimpleUploadedFile("cv.pdf", b"%PDF-1.4 test"),
        consent_notice=notice,
    )
    pending = services.privacy_request_submit(
        email="subject@example.com", request_kind="access", details="", notice=notice, build_url=build_url
    )
    return {"contact": contact, "application": application, "pending": pending}


def subscriber(notice, email, name="Reader", *, confirm=True):
    entry = services.mailing_list_subscribe(
        name=name, email=email, consent_notice=notice, build_url=build_url
    )
    if confirm:
        entry.status = WebsiteSubmission.Status.CONFIRMED
        entry.save()
    return entry


def test_dpo_sees_every_kind_with_consent_version_and_a_chart(client, dpo, submissions, notice):
    client.force_login(dpo)
    page = client.get(reverse("website_staff:submissions")).content.decode()
    assert "Job application (1)" in page and "Privacy request (1)" in page
    assert f"notice v{notice.version}" in page
    data = chart_data(page, "submissions")
    totals = dict(zip(data["labels"], data["series"][0]["values"], strict=True))
    assert (totals["Job application"], totals["Privacy request"]) == (1, 1)
    assert ["Job application", "1"] in chart_table(page, "submissions")
    detail = client.get(
        reverse("website_staff:submission", args=[submissions["contact"].pk])
    ).content.decode()
    assert "ada@example.com" in detail  # the DPO is cleared to see it
    assert f"Privacy notice version {notice.version}, given" in detail
    pending = client.get(reverse("website_staff:submissions") + "?kind=privacy_request").content.decode()
    assert "Waiting for email verification" in pending


def test_recruitment_needs_its_own_permission(client, make_user, submissions):
    support = make_user(Role.SUPPORT_AGENT)
    support.user_permissions.add(*_perms("view_websitesubmission"))
    client.force_login(support)
    page = client.get(reverse("website_staff:submissions")).content.decode()
    assert "Contact enquiry" in page and "Job application" not in page
    assert client.get(reverse("website_staff:submissions") + "?kind=job_application").status_code == 404
    application = submissions["application"]
    assert client.get(reverse("website_staff:submission", args=[application.pk])).status_code == 404
    assert client.get(reverse("website_staff:submission_cv", args=[application.pk])).status_code == 404


def test_staff_without_the_permission_see_nothing(client, make_user, submissions):
    client.force_login(make_user(Role.BILLING_AGENT))
    assert client.get(reverse("website_staff:submissions")).status_code == 404
    assert (
        client.get(reverse("website_staff:submission", args=[submissions["contact"].pk])).status_code == 404
    )


def test_uncleared_staff_see_masked_personal_data(client, make_user, submissions):
    uncleared = make_user(Role.DATA_PROTECTION_OFFICER, cleared=False)
    client.force_login(uncleared)
    detail = client.get(
        reverse("website_staff:submission", args=[submissions["contact"].pk])
    ).content.decode()
    assert "ada@example.com" not in detail and "a***@e***.com" in detail
    cv = client.get(reverse("website_staff:submission_cv", args=[submissions["application"].pk]))
    assert cv.status_code == 404


def test_administrator_downloads_a_cv(client, make_user, submissions):
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.get(reverse("website_staff:submission_cv", args=[submissions["application"].pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4 test"
    assert response["Content-Disposition"].startswith("attachment;")


def test_submission_list_query_count_does_not_grow_with_rows(
    client, dpo, notice, django_assert_max_num_queries
):
    for index in range(12):
        services.contact_submit(
            name=f"P{index}", email=f"p{index}@example.com", message="m", consent_notice=notice
        )
    client.force_login(dpo)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("website_staff:submissions") + "?kind=contact")
    assert response.content.decode().count("@e***") == 0  # cleared DPO sees emails in clear
    assert "p11@example.com" in response.content.decode()


def test_mailing_list_export_is_post_only_escapes_formulas_and_leaves_out_the_suppressed(client, dpo, notice):
    subscriber(notice, "first@example.com", name='=HYPERLINK("http://evil")')
    subscriber(notice, "second@example.com", name="+Plus")
    # Objected to direct marketing (a privacy request): only the HMAC is on the suppression list.
    subscriber(notice, "objected@example.com")
    SuppressionEntry.objects.create(
        channel=SuppressionEntry.Channel.EMAIL, value_hmac=suppression_hmac("email", "Objected@Example.com")
    )
    subscriber(notice, "pending@example.com", confirm=False)
    gone = subscriber(notice, "gone@example.com")
    # The same address confirmed again on an older entry, then unsubscribed: suppression wins.
    gone.status = WebsiteSubmission.Status.UNSUBSCRIBED
    gone.save()
    again = WebsiteSubmission(
        kind=Kind.MAILING_LIST,
        status=WebsiteSubmission.Status.CONFIRMED,
        email="GONE@example.com",
        notice=notice,
        consented_at=gone.consented_at,
    )
    again.save()

    client.force_login(dpo)
    assert client.get(reverse("website_staff:mailing_list_export")).status_code == 405
    response = client.post(reverse("website_staff:mailing_list_export"))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["name", "email", "subscribed_at", "confirmed_at", "notice_version"]
    assert [(row[0], row[1]) for row in rows[1:]] == [
        ('\'=HYPERLINK("http://evil")', "first@example.com"),
        ("'+Plus", "second@example.com"),
    ]


def test_export_needs_its_permission(client, make_user):
    client.force_login(make_user(Role.ADMINISTRATOR))
    assert client.post(reverse("website_staff:mailing_list_export")).status_code == 403


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+44", "'+44"),
        ("-2", "'-2"),
        ("@SUM", "'@SUM"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Ada", "Ada"),
    ],
)
def test_csv_safe(value, expected):
    assert safe_cell(value) == expected


def _perms(*codenames):
    from django.contrib.auth.models import Permission

    return Permission.objects.filter(content_type__app_label="privacy", codename__in=codenames)
