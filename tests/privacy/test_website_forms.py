"""The public forms through the test client: consent, field-named errors, CV checks, nothing stored on
rejection, and each submission recording the notice version consented to."""

import io
import re
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from privacy.models import WebsiteSubmission
from privacy.models.website import website_email_index
from privacy.website.uploads import MAX_CV_BYTES

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
OLE2 = bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 504
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\0" * 200


def docx_bytes(*, with_document: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        if with_document:
            archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def contact_data(**overrides):
    data = {"name": "Ada Lovelace", "email": "ada@example.com", "message": "Please call me.", "consent": "on"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def job_data(cv, **overrides):
    data = {
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "position": "Engineer",
        "consent": "on",
        "cv": cv,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def stored_files(media: Path) -> list[Path]:
    return [path for path in media.rglob("*") if path.is_file()] if media.exists() else []


def test_contact_form_stores_encrypted_submission_with_consent(client, notice):
    response = client.post(reverse("website:contact"), contact_data(), follow=True)
    assert response.status_code == 200
    assert "your message has been sent" in response.content.decode()
    submission = WebsiteSubmission.objects.get()
    assert submission.kind == WebsiteSubmission.Kind.CONTACT
    assert (submission.name, submission.email, submission.message) == (
        "Ada Lovelace",
        "ada@example.com",
        "Please call me.",
    )
    assert submission.notice == notice
    assert submission.consented_at is not None
    assert submission.email_index == website_email_index("ADA@example.com ")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, email, message FROM privacy_websitesubmission")
        raw = cursor.fetchone()
    assert all(value.startswith("enc1$") for value in raw)
    assert "ada@example.com" not in " ".join(raw)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"consent": None}, "consent", "Consent: please tick the box"),
        ({"email": "not-an-email"}, "email", "Email address: enter a valid email address"),
        ({"email": ""}, "email", "Email address: please enter your email address"),
        ({"name": ""}, "name", "Your name: please enter your name"),
    ],
)
def test_contact_form_rejects_bad_input_naming_the_field(client, notice, overrides, field, message):
    response = client.post(reverse("website:contact"), contact_data(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert list(response.context["form"].errors) == [field]
    assert not WebsiteSubmission.objects.exists()


def test_consent_box_is_unticked_and_the_short_notice_is_shown(client, notice):
    page = client.get(reverse("website:contact")).content.decode()
    checkbox = re.search(r'<input type="checkbox" name="consent"[^>]*>', page)
    assert checkbox is not None
    assert "checked" not in checkbox.group(0)
    assert notice.summary in page
    assert f"Privacy notice version {notice.version}" in page


def test_forms_are_closed_without_a_published_notice(client, db):
    page = client.get(reverse("website:contact")).content.decode()
    assert "opens once our privacy notice is published" in page
    client.post(reverse("website:contact"), contact_data())
    assert not WebsiteSubmission.objects.exists()


@pytest.mark.parametrize(
    ("filename", "content"),
    [("cv.pdf", PDF), ("cv.doc", OLE2), ("cv.docx", docx_bytes()), ("CV.PDF", PDF)],
)
def test_job_application_accepts_pdf_doc_docx_and_stores_cv_under_applications(
    client, notice, _private_media, filename, content
):
    cv = SimpleUploadedFile(filename, content, content_type="application/octet-stream")
    response = client.post(reverse("website:job_apply"), job_data(cv), follow=True)
    assert "your application has been received" in response.content.decode()
    application = WebsiteSubmission.objects.get()
    assert application.kind == WebsiteSubmission.Kind.JOB_APPLICATION
    assert application.notice == notice and application.consented_at is not None
    stored = Path(application.cv.path)
    assert stored.parent == _private_media / "applications"
    assert stored.read_bytes() == content
    assert filename.lower() not in stored.name  # the visitor's file name is not kept


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("cv.pdf", EXE, "does not look like a real .pdf file"),
        ("cv.exe", EXE, "must be a PDF or Word file"),
        ("cv.docx", docx_bytes(with_document=False), "does not look like a real .docx file"),
        ("cv.doc", PDF, "does not look like a real .doc file"),
        ("cv.pdf", b"%PDF-" + b"0" * MAX_CV_BYTES, "is larger than 5 MB"),
    ],
)
def test_job_application_rejects_wrong_or_oversized_cv_and_stores_nothing(
    client, notice, _private_media, filename, content, message
):
    cv = SimpleUploadedFile(filename, content, content_type="application/pdf")
    response = client.post(reverse("website:job_apply"), job_data(cv))
    page = response.content.decode()
    assert f"CV: Your CV {message}" in page
    assert list(response.context["form"].errors) == ["cv"]
    assert not WebsiteSubmission.objects.exists()
    assert stored_files(_private_media) == []


def test_job_application_without_consent_or_cv_names_both_fields(client, notice, _private_media):
    response = client.post(reverse("website:job_apply"), job_data(None, consent=None))
    page = response.content.decode()
    assert "CV: please attach your CV." in page
    assert "Consent: please tick the box" in page
    assert set(response.context["form"].errors) == {"cv", "consent"}
    assert not WebsiteSubmission.objects.exists()


def test_public_pages_have_no_inline_script_or_style_and_send_a_strict_csp(client, notice):
    for name in [
        "home",
        "privacy_notice",
        "contact",
        "mailing_list",
        "job_apply",
        "privacy_request",
        "cookies",
    ]:
        response = client.get(reverse(f"website:{name}"))
        assert response.status_code == 200, name
        page = response.content.decode()
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None, name
        assert "<style" not in page and " style=" not in page, name
        assert "script-src 'self'" in response["Content-Security-Policy"]
        assert "unsafe-inline" not in response["Content-Security-Policy"]
