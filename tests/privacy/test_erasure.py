"""Erasure: nothing of the subject left in any table (history included), invoices kept with the legal
minimum, other customers untouched, idempotent, all-or-nothing, and a fixed number of queries."""

import datetime

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from guardian.shortcuts import get_perms

from accounts.audit import verify_chain
from accounts.models import AuditEvent, Contact, Customer, Line, Role, Site, User
from billing.models import BillRun, CallRecord, CreditNote, DirectDebitSubmission, Invoice
from billing.services.direct_debit import direct_debit_export
from fusion_site.customer_cache import customer_cache_get
from privacy.data_map import ErasureAction, base_model, fields_with_action
from privacy.erasure import ErasureBlockedError, customer_erase, customers_erase, erasure_preview
from privacy.models import ErasureEvent, ErasureRecord, LegalHold, PrivacyRequest
from privacy.services.retention import legal_hold_set
from tests.billing.factories import Call, import_calls
from tests.chart_pages import chart_data, chart_table
from tests.factories import UserFactory, full_customer
from tests.privacy.conftest import build_subject

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

KEPT_FIELDS = set(fields_with_action(ErasureAction.KEEP))


def scan(values: list[str], indexes: list[str], *, kept_invoice_ids: set[int]) -> list[str]:
    """Every (table, column) of every installed model, history included, whose value (decrypted by the
    model field) contains one of the subject's values or blind indexes. A kept field of a kept invoice
    (the VAT snapshot) is allowed."""
    needles = [value.casefold() for value in values] + indexes
    found = []
    for model in apps.get_models():
        names = [f.attname for f in model._meta.concrete_fields]
        base_label = base_model(model)._meta.label
        for row in model._base_manager.values_list(*names):
            record = dict(zip(names, row, strict=True))
            for name, value in record.items():
                if value is None:
                    continue
                text = str(value).casefold()
                hits = [needle for needle in needles if needle in text]
                if not hits:
                    continue
                if f"{base_label}.{name}" in KEPT_FIELDS and record.get("id") in kept_invoice_ids:
                    continue
                found.append(f"{model._meta.label}.{name}: {hits[0]}")
    return found


def other_customer_snapshot(customer: Customer) -> dict[str, object]:
    return {
        "contacts": sorted(
            (c.name, c.email, c.phone, c.email_index) for c in Contact.objects.filter(customer=customer)
        ),
        "sites": sorted((s.address_line1, s.postcode) for s in Site.objects.filter(customer=customer)),
        "lines": sorted(line.cli for line in Line.objects.filter(customer=customer)),
        "calls": sorted((c.cli, c.dialled_number) for c in CallRecord.objects.filter(customer=customer)),
        "history": Contact.history.filter(customer_id=customer.pk).count()
        + Site.history.filter(customer_id=customer.pk).count(),
        "invoices": list(Invoice.objects.filter(customer=customer).values_list("customer_name", "gross")),
        "name": Customer.objects.get(pk=customer.pk).name,
    }


@pytest.fixture
def neighbour(partner, subject):
    """A customer of the same partner, with calls, built after the subject so ids interleave."""
    customer = full_customer(partner, sites=2, lines=2, contacts=2)
    clis = [line.cli for line in customer.lines.all()]
    import_calls(partner, [Call(cli=cli, start_time="2025-01-20T12:00:00") for cli in clis])
    return customer


def test_erasure_leaves_nothing_of_the_subject_in_any_table(
    subject, neighbour, other_customer, dpo, media_root, django_capture_on_commit_callbacks
):
    kept = {subject.invoice.pk}
    before = scan(subject.values, subject.blind_indexes, kept_invoice_ids=kept)
    # The scan finds the subject everywhere before erasure, so finding nothing afterwards means something.
    tables = {hit.split(":")[0].rsplit(".", 1)[0] for hit in before}
    assert {
        "accounts.Contact",
        "accounts.HistoricalContact",
        "accounts.Site",
        "accounts.HistoricalSite",
        "billing.CallRecord",
        "accounts.PaymentDetails",
        "accounts.User",
        "accounts.HistoricalUser",
        "accounts.Customer",
        "accounts.HistoricalCustomer",
        "accounts.NameToken",
        "admin.LogEntry",
        "accounts.Line",
        "privacy.PrivacyRequest",
        "privacy.HistoricalPrivacyRequest",
        "axes.AccessAttempt",
    } <= tables
    neighbour_before = other_customer_snapshot(neighbour)
    other_before = other_customer_snapshot(other_customer)
    export_dir = media_root / "exports" / str(subject.customer.pk)
    assert customer_cache_get(subject.customer.pk, "site_details")

    with django_capture_on_commit_callbacks(execute=True):
        record = customer_erase(
            customer=subject.customer, actor=dpo, reason="Erasure request", request_reference="PR-0042"
        )

    assert scan(subject.values, subject.blind_indexes, kept_invoice_ids=kept) == []
    assert not export_dir.exists()
    assert customer_cache_get(subject.customer.pk, "site_details") is None
    assert other_customer_snapshot(neighbour) == neighbour_before
    assert other_customer_snapshot(other_customer) == other_before
    # The invoice keeps the legal minimum: number, dates, supplier, name and address as invoiced, amounts.
    invoice = Invoice.objects.get(pk=subject.invoice.pk)
    assert invoice.number == subject.invoice.number and invoice.issue_date == subject.invoice.issue_date
    assert invoice.customer_name == "Zebedee Quill Plumbing"
    assert "Quillfeather Lane" in invoice.customer_address and "LS29 7QJ" in invoice.customer_address
    assert (invoice.net, invoice.vat, invoice.gross) == (
        subject.invoice.net,
        subject.invoice.vat,
        subject.invoice.gross,
    )
    assert invoice.lines.exists()
    assert CreditNote.objects.filter(invoice=invoice).count() == 1
    assert invoice.customer_id == subject.customer.pk
    customer = Customer.objects.get(pk=subject.customer.pk)
    assert customer.is_erased and customer.name == f"Erased customer {customer.reference}"
    assert record.request_reference == "PR-0042" and record.actor == dpo and not record.repeat
    assert (
        record.counts["billing.CallRecord"] == 7
    )  # 3 billed, 3 unbilled, 1 in suspense before the line began
    assert record.counts["accounts.HistoricalContact"] == 2 and record.files_deleted == 1
    assert record.kept["billing.Invoice"]["rows"] == 1
    assert ErasureEvent.objects.get(record=record).action == ErasureEvent.Action.ERASED
    latest = customer.history.order_by("-history_id").first()
    assert latest.history_user == dpo and "PR-0042" in latest.history_change_reason
    # The erasure request's own record stays, without the person: kind, dates and state remain.
    request = PrivacyRequest.objects.get(customer=customer)
    assert request.subject_erased_at is not None and request.contact is None
    assert request.details == "(erased)" and request.kind == PrivacyRequest.Kind.ERASURE


def previewed_counts(customer: Customer) -> dict[str, int]:
    """The rows per table the preview says erasure will delete or anonymise."""
    expected: dict[str, int] = {}
    for item in erasure_preview(customer=customer).erased:
        if item.rows:
            expected[item.table] = expected.get(item.table, 0) + item.rows
    return expected


def test_preview_counts_what_erasure_then_does(subject, dpo):
    preview = erasure_preview(customer=subject.customer)
    assert preview.can_erase and preview.blockers == []
    expected = previewed_counts(subject.customer)
    kept = {item.table: item.rows for item in preview.kept}
    assert (
        kept["billing.Invoice"] == 1 and kept["billing.CreditNote"] == 1 and kept["accounts.AccessLog"] == 1
    )
    assert (
        next(item for item in preview.kept if item.table == "billing.Invoice").until.year
        == subject.invoice.issue_date.year + 6
    )
    assert any("never invoiced" in warning for warning in preview.warnings)
    assert preview.files == 1

    record = customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")
    assert record.counts == expected


def test_portal_user_is_deactivated_without_name_email_or_grants(subject, dpo, client):
    user = subject.portal_user
    client.force_login(user)
    assert client.get(reverse("accounts:my_account")).status_code == 302  # to its Site Details
    assert client.get(reverse("privacy:my_access_report")).status_code == 200
    customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")
    user.refresh_from_db()
    assert not user.is_active and user.full_name == "" and user.email == f"erased-{user.pk}@erased.invalid"
    assert not user.has_usable_password()
    assert user.groups.count() == 0 and get_perms(User.objects.get(pk=user.pk), subject.customer) == []
    # The session started before erasure no longer authenticates, and the password is gone.
    assert client.get(reverse("privacy:my_access_report")).status_code == 302
    assert not User.objects.get(pk=user.pk).check_password("portal-password-123")


def test_second_run_is_safe_and_records_a_repeat(subject, dpo):
    customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")
    again = customer_erase(customer=subject.customer, actor=dpo, reason="Make sure")
    assert again.repeat and again.counts == {}
    assert ErasureEvent.objects.get(record=again).action == ErasureEvent.Action.REPEATED
    assert scan(subject.values, subject.blind_indexes, kept_invoice_ids={subject.invoice.pk}) == []
    assert Invoice.objects.filter(pk=subject.invoice.pk).exists()


def test_failure_rolls_everything_back_and_retry_finishes(subject, dpo, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ErasureRecord.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")
    assert Contact.objects.filter(customer=subject.customer).exists()
    assert CallRecord.objects.filter(customer=subject.customer).count() == 6
    assert not Customer.objects.get(pk=subject.customer.pk).is_erased

    monkeypatch.undo()
    record = customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")
    assert not record.repeat and record.counts["accounts.Contact"] == 1


def test_draft_invoice_in_open_run_blocks_erasure(partner, profile, agent, finance, dpo):
    subject = build_subject(partner, agent=agent, finance=finance, dpo=dpo, finalise=False)
    preview = erasure_preview(customer=subject.customer)
    assert not preview.can_erase and "draft invoice" in preview.blockers[0]
    with pytest.raises(ErasureBlockedError) as raised:
        customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")
    assert "customer" in raised.value.message_dict
    assert Contact.objects.filter(customer=subject.customer).exists()
    assert not ErasureRecord.objects.exists()


def test_reason_is_required(subject, dpo):
    with pytest.raises(ValidationError) as raised:
        customer_erase(customer=subject.customer, actor=dpo, reason="  ")
    assert "reason" in raised.value.message_dict


def _customer_with_calls(partner, *, size: int):
    customer = full_customer(partner, sites=size, lines=size, contacts=size)
    UserFactory(role=Role.CUSTOMER, customer=customer)
    for contact in customer.contacts.all():
        contact.phone = "07700 100111"
        contact.save()
    clis = [line.cli for line in customer.lines.all()]
    import_calls(
        partner,
        [
            Call(cli=clis[n % len(clis)], start_time=f"2025-01-{n % 27 + 1:02d}T08:00:00")
            for n in range(size * 10)
        ],
    )
    return customer


def test_queries_do_not_depend_on_the_number_of_rows(partner, profile, dpo):
    small = _customer_with_calls(partner, size=1)
    large = _customer_with_calls(partner, size=8)
    assert CallRecord.objects.filter(customer=large).count() == 80
    erasure_preview(customer=small)  # content types cached, as in a running process

    counts = []
    for customer in (small, large):
        with CaptureQueriesContext(connection) as preview_queries:
            erasure_preview(customer=customer)
        with CaptureQueriesContext(connection) as erase_queries:
            customer_erase(customer=customer, actor=dpo, reason="Erasure request")
        counts.append((len(preview_queries), len(erase_queries)))
    assert counts[0] == counts[1]
    assert not CallRecord.objects.filter(customer__in=[small, large]).exists()


# Several customers at once (a retention chunk)


def test_a_chunk_erases_each_customer_and_leaves_a_held_one_untouched(
    subject, partner, dpo, media_root, django_capture_on_commit_callbacks
):
    others = [_customer_with_calls(partner, size=2) for _ in range(2)]
    held = full_customer(partner)
    legal_hold_set(
        customer=held,
        kind=LegalHold.Kind.LITIGATION,
        reason="Claim 2026-CL-118",
        owner=dpo,
        review_on=timezone.localdate() + datetime.timedelta(days=90),
        actor=dpo,
    )
    erased_before = _customer_with_calls(partner, size=1)
    customer_erase(customer=erased_before, actor=dpo, reason="Erasure request")
    erased_before.refresh_from_db()
    chunk = [subject.customer, *others, erased_before]
    expected = {customer.pk: previewed_counts(customer) for customer in chunk}
    assert expected[erased_before.pk] == {}
    held_contacts = list(Contact.objects.filter(customer=held).values_list("pk", flat=True))
    events_before = AuditEvent.objects.count()

    with django_capture_on_commit_callbacks(execute=True):
        erased = customers_erase(
            customer_ids=[c.pk for c in (*chunk, held)], actor=dpo, reason="Retention policy customer_account"
        )

    # The held customer is reported with what keeps it, and nothing of it changed.
    assert [(b.customer.pk, len(b.blockers)) for b in erased.blocked] == [(held.pk, 1)]
    assert "Legal hold (litigation" in erased.blocked[0].blockers[0]
    assert not is_erased(held) and Customer.objects.get(pk=held.pk).name != ""
    assert list(Contact.objects.filter(customer=held).values_list("pk", flat=True)) == held_contacts
    assert not ErasureRecord.objects.filter(customer_pk=held.pk).exists()
    # Every other customer has its own record, with the rows its own preview counted.
    records = {record.customer_pk: record for record in erased.records}
    assert sorted(records) == sorted(c.pk for c in chunk)
    for customer in chunk:
        record = records[customer.pk]
        assert record.counts == expected[customer.pk], customer
        assert record.repeat is (customer == erased_before)
        assert record.actor == dpo and record.reason == "Retention policy customer_account"
        assert ErasureEvent.objects.get(record=record).action == (
            ErasureEvent.Action.REPEATED if record.repeat else ErasureEvent.Action.ERASED
        )
        assert is_erased(customer) and Customer.objects.get(pk=customer.pk).name.startswith("Erased customer")
        latest = Customer.history.filter(id=customer.pk).order_by("-history_id").first()
        assert latest.history_user == dpo
    assert records[subject.customer.pk].files_deleted == 1
    assert erased.counts == {
        table: sum(record.counts.get(table, 0) for record in erased.records)
        for table in {table for record in erased.records for table in record.counts}
    }
    assert scan(subject.values, subject.blind_indexes, kept_invoice_ids={subject.invoice.pk}) == []
    assert not (media_root / "exports" / str(subject.customer.pk)).exists()
    assert customer_cache_get(subject.customer.pk, "site_details") is None
    assert not CallRecord.objects.filter(customer__in=chunk).exists()
    assert not Contact.objects.filter(customer__in=chunk).exists()
    # One audit event per customer, in id order, and the chain still verifies.
    events = list(AuditEvent.objects.filter(pk__gt=events_before).order_by("pk"))
    assert [(event.action, event.target_id) for event in events] == [
        ("customer.erased_again" if c == erased_before else "customer.erased", str(c.pk))
        for c in sorted(chunk, key=lambda c: c.pk)
    ]
    assert verify_chain()[1] == []


def test_a_chunk_takes_the_same_queries_for_2_customers_as_for_20(partner, profile, dpo):
    customers = [_customer_with_calls(partner, size=2) for _ in range(22)]
    assert CallRecord.objects.filter(customer__in=customers).count() == 22 * 20
    customers_erase(customer_ids=[customers[0].pk, customers[1].pk], actor=dpo, reason="Warm up")

    counts = []
    for chunk in (customers[2:4], customers[4:]):
        with CaptureQueriesContext(connection) as queries:
            erased = customers_erase(customer_ids=[c.pk for c in chunk], actor=dpo, reason="Retention")
        assert len(erased.records) == len(chunk) and not erased.blocked
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert not CallRecord.objects.filter(customer__in=customers).exists()
    assert Customer.objects.filter(pk__in=[c.pk for c in customers], erased_at__isnull=True).count() == 0


def test_the_erased_name_carries_the_reference_whatever_the_ids_length(partner, dpo):
    short, long = (
        Customer.objects.create(
            id=pk, partner=partner, name="Ada Ltd", contract_start=datetime.date(2020, 1, 1)
        )
        for pk in (42, 1_234_567)
    )
    customers_erase(customer_ids=[short.pk, long.pk], actor=dpo, reason="Erasure request")
    assert (
        Customer.objects.get(pk=42).name == "Erased customer C-000042" == f"Erased customer {short.reference}"
    )
    assert Customer.objects.get(pk=1_234_567).name == f"Erased customer {long.reference}"
    assert long.reference == "C-1234567"
    assert Customer.history.filter(id=1_234_567).latest("history_id").name == "Erased customer C-1234567"


def is_erased(customer: Customer) -> bool:
    return Customer.objects.get(pk=customer.pk).is_erased


# Pages


def test_preview_page_for_dpo_and_administrator(subject, make_user, client):
    url = reverse("privacy:erasure_preview", args=[subject.customer.reference])
    for role in (Role.DATA_PROTECTION_OFFICER, Role.ADMINISTRATOR):
        client.force_login(make_user(role))
        response = client.get(url)
        assert response.status_code == 200
        page = response.content.decode()
        assert "billing.CallRecord" in page and "VAT Act 1994" in page
        rows = {item.table: item.rows for item in response.context["preview"].erased if item.rows}
        data = chart_data(page, "erasure")
        assert dict(zip(data["labels"], data["series"][0]["values"], strict=True)) == rows
        assert chart_table(page, "erasure")[1:] == [[table, f"{count:,}"] for table, count in rows.items()]
        assert "Zebedee Quillfeather" not in page


def test_preview_page_refused_to_others(subject, make_user, client):
    url = reverse("privacy:erasure_preview", args=[subject.customer.reference])
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
    for role in (Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.FINANCE_MANAGER):
        client.force_login(make_user(role))
        assert client.get(url).status_code == 403
    client.force_login(subject.portal_user)
    assert client.get(url).status_code == 403
    client.force_login(make_user(Role.DATA_PROTECTION_OFFICER))
    assert client.get(reverse("privacy:erasure_preview", args=["C-999999"])).status_code == 404


def test_erasure_records_in_the_admin_are_read_only(subject, make_user, client):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    record = customer_erase(
        customer=subject.customer, actor=dpo, reason="Erasure request", request_reference="PR-7"
    )
    client.force_login(dpo)
    listing = client.get(reverse("admin:privacy_erasurerecord_changelist"))
    assert listing.status_code == 200 and "PR-7" in listing.content.decode()
    detail = client.get(reverse("admin:privacy_erasurerecord_change", args=[record.pk]))
    assert detail.status_code == 200 and "Zebedee" not in detail.content.decode()
    assert (
        client.post(
            reverse("admin:privacy_erasurerecord_delete", args=[record.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    client.force_login(make_user(Role.BILLING_AGENT))
    assert client.get(reverse("admin:privacy_erasurerecord_changelist")).status_code == 403


# Direct Debit files: one names every payer of its run, so any payer's erasure clears it


def _submission_of_another_run(partner, finance) -> DirectDebitSubmission:
    """A submission of a run that did not bill the subject, holding another payer's account number."""
    run = BillRun.objects.create(
        partner=partner,
        period_start=datetime.date(2024, 6, 1),
        period_end=datetime.date(2024, 6, 30),
        status=BillRun.Status.FINALISED,
        issue_date=datetime.date(2024, 7, 1),
    )
    return DirectDebitSubmission.objects.create(
        bill_run=run,
        partner=partner,
        serial="000900",
        processing_date=datetime.date(2024, 7, 15),
        promised_date=datetime.date(2024, 7, 15),
        file_name="direct-debit-other.txt",
        content="OTHER PAYER 99887766",
        sha256="0" * 64,
        collections=1,
        total_pence=100,
        created_by=finance,
    )


def test_erasure_clears_the_direct_debit_file_that_collects_from_the_customer(
    subject, partner, finance, dpo, client
):
    run = subject.invoice.bill_run
    made = direct_debit_export(bill_run=run, actor=finance)
    assert "34206819" in made.content and "404784" in made.content
    other = _submission_of_another_run(partner, finance)
    kept = {subject.invoice.pk}
    tables = {hit.split(":")[0] for hit in scan(subject.values, subject.blind_indexes, kept_invoice_ids=kept)}
    assert "billing.DirectDebitSubmission.content" in tables
    assert previewed_counts(subject.customer)["billing.DirectDebitSubmission"] == 1

    record = customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")

    assert record.counts["billing.DirectDebitSubmission"] == 1
    assert scan(subject.values, subject.blind_indexes, kept_invoice_ids=kept) == []
    cleared = DirectDebitSubmission.objects.get(pk=made.pk)
    assert cleared.content == "" and cleared.is_content_cleared
    assert cleared.content_cleared_for == DirectDebitSubmission.ContentCleared.ERASURE
    facts = ("serial", "sha256", "processing_date", "collections", "total_pence", "cancelled_at")
    assert [getattr(cleared, name) for name in facts] == [getattr(made, name) for name in facts]
    untouched = DirectDebitSubmission.objects.get(pk=other.pk)
    assert untouched.content == "OTHER PAYER 99887766" and not untouched.is_content_cleared
    assert "billing.DirectDebitSubmission" not in previewed_counts(subject.customer), "nothing left to clear"

    client.force_login(finance)
    response = client.post(f"/billing/runs/{run.pk}/direct-debit/", follow=True)
    assert response.redirect_chain == [(f"/billing/runs/{run.pk}/", 302)]
    [message] = [m.message for m in response.context["messages"]]
    assert f"submission {made.serial} was cleared" in message and "for a customer's erasure" in message
    assert "cancel this submission" in message and "make a new file" in message


def test_a_chunk_counts_a_cleared_file_for_the_customer_it_billed(subject, neighbour, finance, dpo):
    direct_debit_export(bill_run=subject.invoice.bill_run, actor=finance)
    expected = previewed_counts(subject.customer)
    assert expected["billing.DirectDebitSubmission"] == 1
    assert "billing.DirectDebitSubmission" not in previewed_counts(neighbour)

    erased = customers_erase(customer_ids=[subject.customer.pk, neighbour.pk], actor=dpo, reason="Retention")

    records = {record.customer_pk: record for record in erased.records}
    assert records[subject.customer.pk].counts == expected
    assert "billing.DirectDebitSubmission" not in records[neighbour.pk].counts
    assert erased.counts["billing.DirectDebitSubmission"] == 1
    assert DirectDebitSubmission.objects.get().content == ""


def test_the_calls_references_go_with_them(subject, dpo):
    """A call's reference is kept only to refuse a second import of it: erasure takes it with the call."""
    from billing.models import CallRecord, CallReference

    calls = list(CallRecord.objects.filter(customer=subject.customer).values_list("pk", flat=True))
    assert calls and CallReference.objects.filter(call_id__in=calls).count() == len(calls)

    customer_erase(customer=subject.customer, actor=dpo, reason="Erasure request")

    assert not CallReference.objects.filter(call_id__in=calls).exists()
    # Every reference left is a call's that is left (the unmatched calls from the customer's numbers
    # went too), and a call left keeps its reference.
    left = set(CallRecord.objects.values_list("pk", flat=True))
    assert set(CallReference.objects.values_list("call_id", flat=True)) == left
