"""The data map covers every personal field, the check can tell when it does not, and the Record of
Processing Activities is shown to the DPO and administrators only, also as a formula-safe CSV."""

import csv
import dataclasses
import io

import pytest
from django.db import models
from django.test.utils import isolate_apps
from django.urls import reverse

from accounts.models import Role
from fusion_site.fields import EncryptedTextField
from fusion_site.spreadsheet import FORMULA_STARTS, safe_cell
from privacy import data_map, ropa
from privacy.data_map import DATA_MAP, ErasureAction, FieldEntry, unmapped_personal_fields
from privacy.models import Processor, RetentionPolicy
from tests.chart_pages import chart_data, chart_table


def test_every_personal_field_is_mapped():
    assert unmapped_personal_fields() == []


def test_removing_an_entry_is_noticed_for_the_model_and_its_history():
    without_email = tuple(
        dataclasses.replace(entry, fields=tuple(f for f in entry.fields if f.field != "email"))
        if entry.label == "accounts.Contact"
        else entry
        for entry in DATA_MAP
    )
    assert unmapped_personal_fields(without_email) == [
        "accounts.Contact.email",
        "accounts.HistoricalContact.email",
    ]


def test_a_field_reviewed_as_not_personal_is_noticed_when_the_review_goes():
    reviews = {name: why for name, why in data_map.NOT_PERSONAL.items() if name != "accounts.Partner.name"}
    assert unmapped_personal_fields(not_personal=reviews) == [
        "accounts.HistoricalPartner.name",
        "accounts.Partner.name",
    ]


@isolate_apps("privacy")
def test_a_new_model_with_personal_fields_is_noticed():
    class Applicant(models.Model):
        cv_text = EncryptedTextField()
        home_phone = models.CharField(max_length=20)
        referee_email_index = models.CharField(max_length=64)
        start_date = models.DateField()

        class Meta:
            app_label = "privacy"

        def __str__(self) -> str:
            return "applicant"

    assert unmapped_personal_fields(candidates=[Applicant]) == [
        "privacy.Applicant.cv_text",
        "privacy.Applicant.home_phone",
        "privacy.Applicant.referee_email_index",
    ]


def test_every_entry_names_a_real_field_once():
    from django.apps import apps

    seen = set()
    for entry, item in data_map.iter_fields():
        model = apps.get_model(entry.label)
        model._meta.get_field(item.field)  # raises for a field that does not exist
        assert (entry.label, item.field) not in seen
        seen.add((entry.label, item.field))
    for name in data_map.NOT_PERSONAL:
        label, field = name.rsplit(".", 1)
        apps.get_model(label)._meta.get_field(field)


def test_kept_fields_name_their_law_and_recipients_are_in_the_register(db):
    with pytest.raises(ValueError, match="names the law"):
        FieldEntry(
            "x",
            data_map.Category.CONTACT,
            data_map.LawfulBasis.CONTRACT,
            data_map.ACCOUNT_DATA,
            ErasureAction.KEEP,
            "",
        )
    # The declarations name recipients by the keys of the processors register (seeded by migration 0009).
    keys = set(Processor.objects.values_list("key", flat=True))
    for entry in DATA_MAP:
        assert set(entry.recipients) <= keys, entry.label
    for activity in data_map.ACTIVITIES:
        assert set(activity.recipients) <= keys, activity.name
    vat = data_map.field_entry("billing.Invoice", "customer_name")
    assert vat.action == ErasureAction.KEEP and "VAT Act 1994" in vat.kept_under.citation
    assert vat.retention.anchor == data_map.Anchor.INVOICE_ISSUE and vat.retention.months == 72


@pytest.mark.parametrize("role", [Role.DATA_PROTECTION_OFFICER, Role.ADMINISTRATOR])
def test_ropa_page_for_dpo_and_administrator(make_user, client, role):
    client.force_login(make_user(role))
    response = client.get(reverse("privacy:data_map"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Bacs approved bureau" in page and "Wholesale line provider" in page
    assert "accounts.Contact" in page and "VAT Act 1994" in page
    data = chart_data(page, "fields")
    assert data["y"]["label"] == "Mapped (fields)" and sum(data["series"][0]["values"]) == len(
        ropa.field_rows()
    )
    assert len(chart_table(page, "fields")) == len(data["labels"]) + 1


@pytest.mark.parametrize(
    "role", [Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.FINANCE_MANAGER, Role.CUSTOMER]
)
def test_ropa_refused_to_other_roles(make_user, client, role):
    client.force_login(make_user(role))
    assert client.get(reverse("privacy:data_map")).status_code == 403
    assert client.post(reverse("privacy:data_map_csv")).status_code == 403


def test_ropa_needs_login(client, db):
    for response in (client.get(reverse("privacy:data_map")), client.post(reverse("privacy:data_map_csv"))):
        assert response.status_code == 302 and "/login/" in response["Location"]


def _csv(client) -> list[list[str]]:
    assert client.get(reverse("privacy:data_map_csv")).status_code == 405, "an export only by POST"
    response = client.post(reverse("privacy:data_map_csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_ropa_csv_has_a_row_per_field_processor_and_activity(make_user, client):
    client.force_login(make_user(Role.DATA_PROTECTION_OFFICER))
    rows = _csv(client)
    assert tuple(rows[0]) == ropa.CSV_HEADER
    kinds = [row[0] for row in rows[1:]]
    assert kinds.count("field") == len(list(data_map.iter_fields()))
    assert kinds.count("processor") == Processor.objects.count() > 0
    assert kinds.count("activity") == len(data_map.ACTIVITIES)
    contact_email = next(row for row in rows if row[1] == "accounts.Contact" and row[2] == "email")
    assert contact_email[9] == "Delete" and "mail" in contact_email[11]


def test_ropa_csv_escapes_formulas(make_user, client, monkeypatch):
    hostile = dataclasses.replace(
        DATA_MAP[0],
        purpose='=HYPERLINK("http://evil")',
        fields=(dataclasses.replace(DATA_MAP[0].fields[0], purpose="+1", field="@sum"),),
    )
    monkeypatch.setattr(data_map, "DATA_MAP", (hostile, *DATA_MAP[1:]))
    Processor.objects.filter(key="hosting").update(key="-2", location="\tx")
    client.force_login(make_user(Role.ADMINISTRATOR))
    rows = _csv(client)
    first = rows[1]
    assert first[2] == "'@sum" and first[5].startswith("'=HYPERLINK")
    processor = next(row for row in rows if row[0] == "processor" and row[1] == "'-2")
    assert processor[10].startswith("'\tx")
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell


def test_escape_cell():
    assert [safe_cell(value) for value in ("=1+1", "+44", "-3", "@a", "\tb", "\rc", "plain", 5, None)] == [
        "'=1+1",
        "'+44",
        "'-3",
        "'@a",
        "'\tb",
        "'\rc",
        "plain",
        "5",
        "",
    ]


def test_ropa_says_call_records_are_kept_as_the_retention_job_keeps_them(make_user, client):
    """The record of processing and the job agree: 12 months from the invoice that billed the call."""
    client.force_login(make_user(Role.DATA_PROTECTION_OFFICER))
    rows = [row for row in _csv(client)[1:] if row[0] == "field" and row[1] == "billing.CallRecord"]
    policy = RetentionPolicy.objects.get(key="call_records")
    assert rows and policy.anchor == data_map.Anchor.INVOICE_ISSUE
    for row in rows:
        retention, anchor, months = row[6:9]
        assert (anchor, int(months)) == (data_map.Anchor(policy.anchor).label, policy.months), row[2]
        assert "after the invoice that billed the call" in retention and "never billed" in retention
    html = client.get(reverse("privacy:data_map")).content.decode()
    assert "12 months after the invoice that billed the call" in html
