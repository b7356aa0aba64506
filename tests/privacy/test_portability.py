"""Data portability exports, through the pages staff and customers use, the build task and the beat job."""

import datetime
import io
import json
import re
import tracemalloc
import uuid
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts import services as account_services
from accounts.models import AccessLog, Contact, Customer, Line, Role, Site
from accounts.validation import national_phone_digits
from billing.demo import uk_tariff
from billing.models import CallRecord, CreditNote, Invoice, InvoiceLine
from billing.services.call_imports import call_import_run
from billing.services.charges import one_off_charge_create
from billing.services.credit_notes import credit_note_issue
from fusion_site.celery import app as celery_app
from fusion_site.crypto import blind_index
from fusion_site.spreadsheet import safe_cell
from privacy import portability
from privacy.export_links import download_token
from privacy.models import DataExport
from privacy.services import exports as export_services
from tests.billing.factories import billing_profile, finalised_run, month
from tests.chart_pages import chart_data, chart_table
from tests.factories import full_customer

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

CATEGORY_NAMES = [category.name for category in portability.CATEGORIES]
DOWNLOAD_LINK = re.compile(r'href="(/privacy/exports/download/[^"]+/)"')


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


def logged_in(client, user):
    client.force_login(user)
    return client


def import_calls(customer: Customer, agent, *, prefix: str) -> None:
    cli = national_phone_digits(customer.lines.order_by("pk").first().cli)
    rows = [
        "cli,dialled_number,start_time,duration,call_type,call_reference",
        f"{cli},01134960000,2025-01-04T10:00:00,125,voice,{prefix}-1",
        f"{cli},07700900123,2025-01-05T11:30:00,61,voice,{prefix}-2",
        f"{cli},01134960001,2025-01-06T09:15:00,30,voice,{prefix}-3",
    ]
    call_import_run(
        partner=customer.partner, stream=io.StringIO("\n".join(rows)), file_name="jan.csv", actor=agent
    )


@pytest.fixture
def billed_customer(partner, other_customer, customer, make_user):
    """The ``customer`` with calls, a finalised invoice and a credit note; ``other_customer`` (another
    partner) has calls too, which must never appear in the customer's export."""
    agent = make_user(Role.BILLING_AGENT)
    finance = make_user(Role.FINANCE_MANAGER)
    billing_profile(partner, default_tariff=uk_tariff())
    import_calls(customer, agent, prefix="MINE")
    import_calls(other_customer, agent, prefix="THEIRS")
    finalised_run(partner, month(2025, 1), agent=agent, finance=finance)
    invoice = Invoice.objects.get(customer=customer)
    credit_note_issue(invoice=invoice, actor=finance, reason="Goodwill")
    return customer


def request_export(client, customer, capture, reference="PR-2025-001"):
    with capture(execute=True):
        response = client.post(
            reverse("privacy:customer_exports", args=[customer.reference]), {"request_reference": reference}
        )
    assert response.status_code == 302
    return DataExport.objects.filter(customer=customer).latest("id")


def download_url(client, page_url: str) -> str:
    links = DOWNLOAD_LINK.findall(client.get(page_url).content.decode())
    assert links, "the page offers no download link"
    return links[0]


def open_zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def expected_counts(customer: Customer) -> dict[str, int]:
    """Counted straight from the database, independently of the export's own queries."""
    issued = Invoice.objects.filter(customer=customer, status=Invoice.Status.FINALISED)
    return {
        "account": 1,
        "contacts": Contact.objects.filter(customer=customer).count(),
        "sites": Site.objects.filter(customer=customer).count(),
        "lines": Line.objects.filter(customer=customer).count(),
        "payment_details": 1,
        "call_records": CallRecord.objects.filter(customer=customer).count(),
        "invoices": issued.count(),
        "invoice_lines": InvoiceLine.objects.filter(invoice__in=issued).count(),
        "credit_notes": CreditNote.objects.filter(invoice__customer=customer).count(),
    }


def read_csv(archive: zipfile.ZipFile, name: str) -> list[list[str]]:
    with archive.open(f"{name}.csv") as stream:
        return list(portability.read_csv_rows(stream))


# Round trip --------------------------------------------------------------------------------------


def test_an_export_requested_on_the_staff_page_round_trips_every_category(
    client, dpo, billed_customer, media_root, django_capture_on_commit_callbacks
):
    customer = billed_customer
    logged_in(client, dpo)
    export = request_export(client, customer, django_capture_on_commit_callbacks)

    export.refresh_from_db()
    assert export.status == DataExport.Status.READY
    assert export.requested_by == dpo and export.request_reference == "PR-2025-001"
    stored = media_root / "exports" / str(customer.pk) / f"{export.public_id}.zip"
    assert stored.is_file() and export.file_path == f"exports/{customer.pk}/{export.public_id}.zip"
    assert export.size_bytes == stored.stat().st_size

    page = reverse("privacy:customer_exports", args=[customer.reference])
    archive = open_zip(client.get(download_url(client, page)))
    expected = expected_counts(customer)
    assert all(expected.values()), f"the fixture must give every category rows: {expected}"
    assert export.row_counts == expected
    # The page charts the latest export's records per category, each value also in the chart's table.
    html = client.get(page).content.decode()
    data = chart_data(html, "export-records")
    assert data["y"]["label"] == "In the export (records)"
    assert dict(zip(data["labels"], data["series"][0]["values"], strict=True)) == {
        category.title: expected[category.name] for category in portability.CATEGORIES
    }
    assert chart_table(html, "export-records")[1:] == [
        [category.title, f"{expected[category.name]:,}"] for category in portability.CATEGORIES
    ]
    assert set(archive.namelist()) == {
        *(f"{name}.json" for name in CATEGORY_NAMES),
        *(f"{name}.csv" for name in CATEGORY_NAMES),
        portability.README_NAME,
    }
    for category in portability.CATEGORIES:
        records = json.loads(archive.read(f"{category.name}.json"))
        rows = read_csv(archive, category.name)
        field_names = [field.name for field in category.fields]
        assert rows[0] == field_names, category.name
        assert len(records) == len(rows) - 1 == expected[category.name], category.name
        assert all(list(record) == field_names for record in records), category.name

    readme = archive.read(portability.README_NAME).decode()
    for category in portability.CATEGORIES:
        for field in category.fields:
            assert f"| `{field.name}` | {field.meaning} | {field.unit} |" in readme


def test_the_export_holds_the_decrypted_values_of_this_customer_only(
    client, dpo, billed_customer, other_customer, django_capture_on_commit_callbacks
):
    customer = billed_customer
    account_services.payment_details_set(
        customer=customer,
        actor=dpo,
        account_holder="Jane Smith",
        sort_code="20-40-60",
        account_number="31226819",
        mandate_reference="DDMANDATE0001",
    )
    logged_in(client, dpo)
    request_export(client, customer, django_capture_on_commit_callbacks)
    archive = open_zip(
        client.get(download_url(client, reverse("privacy:customer_exports", args=[customer.reference])))
    )

    contact = Contact.objects.get(customer=customer)
    [exported_contact] = json.loads(archive.read("contacts.json"))
    assert (exported_contact["name"], exported_contact["email"], exported_contact["phone"]) == (
        contact.name,
        contact.email,
        contact.phone,
    )
    calls = json.loads(archive.read("call_records.json"))
    assert {call["call_reference"] for call in calls} == {"MINE-1", "MINE-2", "MINE-3"}
    line_cli = customer.lines.order_by("pk").first().cli
    assert {call["calling_number"] for call in calls} == {line_cli}
    assert {call["dialled_number"] for call in calls} == {"01134960000", "07700900123", "01134960001"}
    invoice = Invoice.objects.get(customer=customer)
    assert {call["invoice_number"] for call in calls} == {invoice.number}
    [exported_invoice] = json.loads(archive.read("invoices.json"))
    assert exported_invoice["gross"] == str(invoice.gross)
    assert exported_invoice["customer_name"] == invoice.customer_name

    # The bank account number leaves only as its last four digits (see privacy.portability).
    [payment] = json.loads(archive.read("payment_details.json"))
    assert payment["account_number_last4"] == "6819"
    assert (payment["sort_code"], payment["mandate_reference"]) == ("204060", "DDMANDATE0001")
    everything = b"".join(archive.read(name) for name in archive.namelist())
    assert b"31226819" not in everything
    other_contact = Contact.objects.get(customer=other_customer)
    assert other_contact.email.encode() not in everything
    assert b"THEIRS" not in everything


# Formula escaping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "escaped"),
    [
        ("=1+1", "'=1+1"),
        ("+447700900123", "'+447700900123"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Leeds", "Leeds"),
        ("1=1", "1=1"),
        ("", ""),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_evaluate_get_a_leading_quote(cell, escaped):
    assert safe_cell(cell) == escaped


def test_formulas_in_the_customers_data_are_text_in_the_csv_and_exact_in_the_json(
    client, dpo, customer, django_capture_on_commit_callbacks
):
    contact = Contact.objects.get(customer=customer)
    account_services.contact_update(
        contact=contact, actor=dpo, name='=HYPERLINK("http://evil.example","x")', reason="test"
    )
    site = Site.objects.get(customer=customer)
    account_services.site_update(
        site=site, actor=dpo, address_line1="@SUM(1+1)", address_line2="-3+3", town="\tLeeds", reason="test"
    )
    logged_in(client, dpo)
    request_export(client, customer, django_capture_on_commit_callbacks)
    archive = open_zip(
        client.get(download_url(client, reverse("privacy:customer_exports", args=[customer.reference])))
    )

    header, contact_row = read_csv(archive, "contacts")
    contact_cells = dict(zip(header, contact_row, strict=True))
    assert contact_cells["name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert contact_cells["phone"] == f"'{contact.phone}"
    header, site_row = read_csv(archive, "sites")
    site_cells = dict(zip(header, site_row, strict=True))
    assert (site_cells["address_line1"], site_cells["address_line2"], site_cells["town"]) == (
        "'@SUM(1+1)",
        "'-3+3",
        "'\tLeeds",
    )
    [site_json] = json.loads(archive.read("sites.json"))
    assert (site_json["address_line1"], site_json["town"]) == ("@SUM(1+1)", "\tLeeds")


# Expiry ------------------------------------------------------------------------------------------


@pytest.fixture
def ready_export(client, dpo, customer, django_capture_on_commit_callbacks):
    logged_in(client, dpo)
    export = request_export(client, customer, django_capture_on_commit_callbacks)
    export.refresh_from_db()
    assert export.status == DataExport.Status.READY
    return export


def test_an_expired_link_answers_410_and_never_the_file(client, dpo, ready_export):
    issued_long_ago = timezone.now() - datetime.timedelta(seconds=settings.PRIVACY_EXPORT_LINK_MAX_AGE + 60)
    stale = reverse("privacy:export_download", args=[download_token(ready_export, now=issued_long_ago)])

    response = client.get(stale)

    assert response.status_code == 410
    assert "The download link has expired" in response.content.decode()
    assert "Open the exports page again for a fresh link" in response.content.decode()
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT_DOWNLOAD).exists()
    ready_export.refresh_from_db()
    assert ready_export.download_count == 0
    fresh = reverse("privacy:export_download", args=[download_token(ready_export)])
    assert client.get(fresh).status_code == 200


def test_a_link_to_an_export_past_its_expiry_answers_410(client, dpo, ready_export):
    link = reverse("privacy:export_download", args=[download_token(ready_export)])
    DataExport.objects.filter(pk=ready_export.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    response = client.get(link)

    assert response.status_code == 410
    assert response["Content-Type"].startswith("text/html")
    assert "The export has expired." in response.content.decode()  # not yet purged, but past its time
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT_DOWNLOAD).exists()


def test_a_tampered_link_answers_404(client, dpo, ready_export):
    token = download_token(ready_export)
    forged = token[:-2] + ("yy" if token.endswith("xx") else "xx")
    assert client.get(reverse("privacy:export_download", args=[forged])).status_code == 404


def test_the_beat_job_deletes_expired_exports_and_keeps_current_ones(
    client, dpo, ready_export, other_customer, clock, django_capture_on_commit_callbacks
):
    current = request_export(client, other_customer, django_capture_on_commit_callbacks)
    current.refresh_from_db()
    # The current export was made later, so it expires later; a moment between the two expiries:
    DataExport.objects.filter(pk=current.pk).update(
        expires_at=ready_export.expires_at + datetime.timedelta(days=1)
    )
    old_file = ready_export.storage_path()
    link = reverse("privacy:export_download", args=[download_token(ready_export)])
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-purge-expired-data-exports"]
    purge = celery_app.tasks[str(entry["task"])]
    later = ready_export.expires_at + datetime.timedelta(minutes=5)
    clock.move_to(later)

    assert purge.delay().get() == 1
    assert purge.delay().get() == 0  # safe to run again

    ready_export.refresh_from_db()
    assert ready_export.status == DataExport.Status.EXPIRED and ready_export.file_path == ""
    assert not old_file.exists()
    assert ready_export.history.latest().history_user.email.startswith(export_services.EXPORT_JOB)
    current.refresh_from_db()
    assert current.status == DataExport.Status.READY and current.storage_path().is_file()
    client.force_login(dpo)  # days later: the idle session timed out long ago
    response = client.get(link)
    assert response.status_code == 410
    assert "The export has expired and its file has been deleted." in response.content.decode()


# Logging and scoping -----------------------------------------------------------------------------


def test_each_download_is_logged_with_who_which_customer_what_and_why(client, dpo, ready_export, customer):
    link = reverse("privacy:export_download", args=[download_token(ready_export)])
    for _ in range(2):
        open_zip(client.get(link))

    entries = list(AccessLog.objects.filter(action=AccessLog.Action.EXPORT_DOWNLOAD))
    assert len(entries) == 2
    entry = entries[0]
    assert (entry.user, entry.customer, entry.customer_reference) == (dpo, customer, customer.reference)
    assert entry.fields == sorted(f"export.{name}" for name in CATEGORY_NAMES)
    assert "PR-2025-001" in entry.reason and str(ready_export.public_id) in entry.reason
    ready_export.refresh_from_db()
    assert ready_export.download_count == 2 and ready_export.last_downloaded_at is not None


def test_staff_of_another_partner_get_404_for_the_page_and_the_download(
    client, make_user, other_partner, other_customer, customer, ready_export
):
    outsider = make_user(Role.SUPPORT_AGENT, partner=other_partner)
    outsider.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="privacy", codename__in=["view_dataexport", "add_dataexport"]
        )
    )
    client.logout()
    logged_in(client, outsider)
    link = reverse("privacy:export_download", args=[download_token(ready_export)])

    assert client.get(reverse("privacy:customer_exports", args=[customer.reference])).status_code == 404
    assert client.post(reverse("privacy:customer_exports", args=[customer.reference])).status_code == 404
    assert client.get(link).status_code == 404
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT_DOWNLOAD).exists()
    # The same grants do open the outsider's own partner's customer: the 404s are the scoping.
    assert client.get(reverse("privacy:customer_exports", args=[other_customer.reference])).status_code == 200


def test_staff_without_the_export_permission_are_refused(client, make_user, customer):
    agent = make_user(Role.BILLING_AGENT)
    logged_in(client, agent)
    page = reverse("privacy:customer_exports", args=[customer.reference])
    assert client.get(page).status_code == 403
    assert client.post(page, {"request_reference": ""}).status_code == 403
    assert not DataExport.objects.exists()


def test_a_portal_user_exports_and_downloads_its_own_data_and_never_another_customers(
    client, make_user, partner, customer, ready_export, django_capture_on_commit_callbacks
):
    own_customer = full_customer(partner)
    portal = make_user(Role.CUSTOMER, customer=own_customer)
    client.logout()
    logged_in(client, portal)
    home = client.get(reverse("accounts:site_details", args=[own_customer.reference])).content.decode()
    assert reverse("privacy:my_data") in home

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("privacy:my_data"), {"request_reference": "ignored"})
    assert response.status_code == 302
    own = DataExport.objects.get(customer=own_customer)
    assert own.requested_by == portal and own.request_reference == ""
    archive = open_zip(client.get(download_url(client, reverse("privacy:my_data"))))
    [account] = json.loads(archive.read("account.json"))
    assert account["reference"] == own_customer.reference
    assert AccessLog.objects.get(action=AccessLog.Action.EXPORT_DOWNLOAD).user == portal

    someone_elses = reverse("privacy:export_download", args=[download_token(ready_export)])
    assert client.get(someone_elses).status_code == 404
    assert client.get(reverse("privacy:customer_exports", args=[customer.reference])).status_code == 404
    assert client.get(reverse("privacy:customer_exports", args=[own_customer.reference])).status_code == 404


# The build task ----------------------------------------------------------------------------------


def test_a_second_request_while_one_is_being_prepared_is_refused_on_the_page(client, dpo, customer):
    logged_in(client, dpo)
    page = reverse("privacy:customer_exports", args=[customer.reference])
    client.post(page, {"request_reference": ""})  # its build task is never run: it stays pending
    response = client.post(page, {"request_reference": ""})
    assert response.status_code == 200
    assert "already being prepared" in response.content.decode()
    assert DataExport.objects.filter(customer=customer).count() == 1


def test_a_request_reference_too_long_is_reported_on_its_field(client, dpo, customer):
    logged_in(client, dpo)
    response = client.post(
        reverse("privacy:customer_exports", args=[customer.reference]), {"request_reference": "R" * 65}
    )
    assert response.status_code == 200
    assert response.context["form"].errors == {
        "request_reference": ["Ensure this value has at most 64 characters (it has 65)."]
    }


def test_a_build_that_fails_is_marked_failed_and_leaves_no_file(
    dpo, customer, media_root, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_services, "write_export", broken)
    with django_capture_on_commit_callbacks(execute=True):
        export = export_services.portability_export_create(customer=customer, actor=dpo)
    export.refresh_from_db()
    assert export.status == DataExport.Status.FAILED
    assert export.failure_reason == "OSError while writing the file"
    assert list((media_root / "exports" / str(customer.pk)).iterdir()) == []


def test_building_twice_writes_one_file(dpo, customer, media_root):
    export = export_services.portability_export_create(customer=customer, actor=dpo)  # not yet built
    export_services.data_export_build(export_id=export.pk)
    export_services.data_export_build(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == DataExport.Status.READY
    assert [path.name for path in (media_root / "exports" / str(customer.pk)).iterdir()] == [export.file_name]
    assert export.history.filter(history_change_reason="Export file written").count() == 1


def test_the_exports_page_runs_the_same_queries_for_one_export_as_for_three(client, dpo, customer):
    logged_in(client, dpo)
    page = reverse("privacy:customer_exports", args=[customer.reference])

    def queries_with(exports: int) -> int:
        for _ in range(exports - DataExport.objects.count()):
            export = export_services.portability_export_create(customer=customer, actor=dpo)
            export_services.data_export_build(export_id=export.pk)
        with CaptureQueriesContext(connection) as captured:
            assert client.get(page).status_code == 200
        return len(captured)

    assert queries_with(1) == queries_with(3)


# Memory ------------------------------------------------------------------------------------------


def add_calls(customer: Customer, count: int) -> None:
    line = customer.lines.order_by("pk").first()
    started = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    CallRecord.objects.bulk_create(
        [
            CallRecord(
                call_reference=f"MEM-{customer.pk}-{uuid.uuid4().hex}",
                partner_id=customer.partner_id,
                cli=line.cli,
                cli_index=blind_index("phone", line.cli),
                dialled_number="01134960000",
                dialled_prefix="0113",
                started_at=started + datetime.timedelta(minutes=n),
                started_on=started.date(),
                duration_seconds=60 + n % 300,
                call_type="voice",
                line=line,
                customer=customer,
            )
            for n in range(count)
        ],
        batch_size=2000,
    )


def peak_memory_of_export(customer: Customer, destination: Path, *, chunk_size: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        counts = portability.write_export(
            customer, destination, generated_at=timezone.now(), chunk_size=chunk_size
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return counts["call_records"], peak


def test_export_memory_does_not_grow_with_the_number_of_calls(partner, tmp_path):
    small, large = full_customer(partner), full_customer(partner)
    add_calls(small, 1_500)
    add_calls(large, 15_000)
    chunk_size = 250

    small_rows, small_peak = peak_memory_of_export(small, tmp_path / "small.zip", chunk_size=chunk_size)
    large_rows, large_peak = peak_memory_of_export(large, tmp_path / "large.zip", chunk_size=chunk_size)

    assert (small_rows, large_rows) == (1_500, 15_000)
    # Ten times the rows; memory held to one chunk would stay about level, a list of rows grows tenfold.
    assert large_peak < small_peak * 1.5, (small_peak, large_peak)
    with zipfile.ZipFile(tmp_path / "large.zip") as archive:
        assert len(json.loads(archive.read("call_records.json"))) == 15_000
        assert len(read_csv(archive, "call_records")) == 15_001


def test_invoice_and_credit_amounts_are_exported_in_pounds_and_pence_without_separators(
    partner, customer, make_user
):
    agent, finance = make_user(Role.BILLING_AGENT), make_user(Role.FINANCE_MANAGER)
    billing_profile(partner, default_tariff=uk_tariff())
    one_off_charge_create(
        customer=customer,
        description="Equipment",
        amount=Decimal("8953.84"),
        charge_date=datetime.date(2025, 1, 5),
        actor=agent,
    )
    invoice = finalised_run(partner, month(2025, 1), agent=agent, finance=finance).invoices.get()
    credit_note_issue(invoice=invoice, actor=finance, reason="Goodwill", net=Decimal("1234.56"))
    categories = {category.name: category for category in portability.CATEGORIES}

    [credit] = categories["credit_notes"].rows(customer)
    [exported_invoice] = categories["invoices"].rows(customer)

    assert credit[-3:] == ["1234.56", "246.91", "1481.47"]
    assert "8953.84" in {row[-1] for row in categories["invoice_lines"].rows(customer)}
    assert all(re.fullmatch(r"\d+\.\d{2}", value) for value in (exported_invoice[-4], *exported_invoice[-2:]))
