"""Direct Debit collections as a Bacs Standard 18 file, from bill runs calculated and finalised through the
services: fixed widths, balanced totals, exact pence, sanitised text, and who is skipped and why."""

import datetime
import hashlib
import io
import threading
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import mandates
from accounts import services as account_services
from accounts.models import AuditEvent, Customer, DirectDebitNotice, PaymentDetails, Role, User
from accounts.validation import national_phone_digits
from billing import bacs
from billing.bacs_collections import build_standard18
from billing.demo import uk_tariff
from billing.models import BillRun, DirectDebitSubmission, Invoice, PartnerBillingProfile
from billing.services.bill_runs import (
    bill_run_approve,
    bill_run_create,
    bill_run_finalise,
    bill_run_restrict,
    bill_run_start_calculation,
)
from billing.services.call_imports import call_import_run
from billing.services.charges import one_off_charge_create
from billing.services.credit_notes import credit_note_issue
from billing.services.direct_debit import (
    DIRECT_DEBIT_DOWNLOADED_AGAIN,
    DIRECT_DEBIT_EXPORTED,
    DIRECT_DEBIT_NOTICE_DAYS,
    direct_debit_export,
    direct_debit_submission_cancel,
)
from billing.services.errors import BillingError
from fusion_site import crypto, key_rotation
from fusion_site.compiled_reads import statement_of
from tests.billing.factories import billing_profile
from tests.billing.test_bacs_rules import (
    LONDON,
    assert_cycle_holds,
    bacs_works,
    first_working_after,
    first_working_on_or_after,
    from_bacs_day,
    parse,
)
from tests.factories import CustomerFactory, full_customer

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

PERIOD_START = datetime.date(2024, 3, 1)
PERIOD_END = datetime.date(2024, 3, 31)
ISSUE_DATE = datetime.date(2024, 4, 1)
PROCESSING_DATE = datetime.date(2024, 4, 15)  # a Monday; day 106 of leap year 2024
CREATED = datetime.date(2024, 4, 2)
# The partner's originator details, set here so the assertions below do not hang on the shared factory.
ORIGINATOR = {
    "bacs_service_user_number": "123456",
    "bacs_sort_code": "200000",
    "bacs_account_number": "55779911",
    "bacs_account_name": "Partner Collect",
}


def fields(record: str, *spans: tuple[int, int]) -> list[str]:
    """The fields at 1-based inclusive positions, as the published layout numbers them."""
    return [record[start - 1 : end] for start, end in spans]


def detail_fields(record: str) -> dict[str, str]:
    names = [
        "sort_code",
        "account_number",
        "account_type",
        "transaction_code",
        "originator_sort_code",
        "originator_account_number",
        "free",
        "amount",
        "originator_name",
        "reference",
        "account_name",
    ]
    spans = [(1, 6), (7, 14), (15, 15), (16, 17), (18, 23), (24, 31), (32, 35), (36, 46), (47, 64)]
    spans += [(65, 82), (83, 100)]
    return dict(zip(names, fields(record, *spans), strict=True))


LODGED_ON = datetime.date(2024, 1, 2)  # long before the run: the mandates are active when it is exported


def make_active(
    customer: Customer, actor: User, *, processing_date: datetime.date = LODGED_ON
) -> PaymentDetails:
    """Lodge the customer's mandate (as a bureau would have, on ``processing_date``) and activate it once
    the scheme's lodgement period is over: through the services, as the daily job does."""
    mandate = mandates.mandate_lodge(
        mandate=PaymentDetails.objects.get(customer=customer),
        actor=actor,
        submission_id=None,
        lodged_at=datetime.datetime.combine(processing_date, datetime.time(9), tzinfo=LONDON),
        processing_date=processing_date,
    )
    return mandates.mandate_activate(mandate=mandate, actor=actor, today=mandate.active_from)


@dataclass
class Billed:
    run: BillRun
    finance: object
    paying: Customer
    exact: Customer
    no_mandate: Customer
    nothing_due: Customer
    erased_reference: str


@pytest.fixture
def finalise(partner, agent, finance, django_capture_on_commit_callbacks):
    """Create, calculate (tasks run on commit, in process), approve and finalise March 2024."""

    def run_to(
        status: str = BillRun.Status.FINALISED, *, of=None, issue_date: datetime.date = ISSUE_DATE
    ) -> BillRun:
        run = bill_run_create(
            partner=of or partner, period_start=PERIOD_START, period_end=PERIOD_END, actor=agent
        )
        with django_capture_on_commit_callbacks(execute=True):
            bill_run_start_calculation(bill_run=run, actor=agent)
        run.refresh_from_db()
        assert run.status == BillRun.Status.CALCULATED
        if status == BillRun.Status.CALCULATED:
            return run
        bill_run_approve(bill_run=run, actor=finance)
        return bill_run_finalise(bill_run=run, actor=finance, issue_date=issue_date)

    return run_to


def one_off(customer: Customer, net: str, agent) -> None:
    one_off_charge_create(
        customer=customer, description="Equipment", amount=Decimal(net), charge_date=PERIOD_START, actor=agent
    )


def import_calls(partner, customer: Customer, agent) -> None:
    cli = national_phone_digits(customer.lines.get().cli)
    rows = [
        "cli,dialled_number,start_time,duration,call_type,call_reference",
        f"{cli},01134960000,2024-03-04T10:00:00,125,voice,BACS-{customer.pk}-1",
        f"{cli},07700900123,2024-03-05T11:30:00,61,voice,BACS-{customer.pk}-2",
    ]
    call_import_run(partner=partner, stream=io.StringIO("\n".join(rows)), file_name="march.csv", actor=agent)


@pytest.fixture
def billed(partner, agent, finance, finalise) -> Billed:
    billing_profile(partner, default_tariff=uk_tariff())
    PartnerBillingProfile.objects.filter(partner=partner).update(**ORIGINATOR)
    paying = full_customer(partner)
    account_services.payment_details_set(
        customer=paying,
        actor=agent,
        account_holder="Zoë O'Brien & Søn (Café)",
        sort_code="40-05-15",
        account_number="3420 6819",
        mandate_reference="ddm/0001-a",
    )
    one_off(paying, "10.00", agent)
    import_calls(partner, paying, agent)
    exact = full_customer(partner)
    account_services.payment_details_set(
        customer=exact,
        actor=agent,
        account_holder="Jane Smith",
        sort_code="12-34-56",
        account_number="12345678",
        mandate_reference="DDEXACT0001",
    )
    one_off(exact, "1.56", agent)  # VAT 0.312 rounds to 0.31: gross £1.87
    no_mandate = CustomerFactory(partner=partner)
    one_off(no_mandate, "5.00", agent)
    nothing_due = full_customer(partner)
    for customer in (paying, exact, nothing_due):
        make_active(customer, agent)
    erased = full_customer(partner)
    one_off(erased, "3.00", agent)
    run = finalise()
    erased_reference = erased.reference
    # An invoice the law keeps without its account: detached, as the account's ledger keeps the customer.
    Invoice.objects.filter(bill_run=run, customer=erased).update(customer=None)
    return Billed(run, finance, paying, exact, no_mandate, nothing_due, erased_reference)


def build(run: BillRun, **kwargs) -> bacs.Standard18File:
    kwargs.setdefault("creation_date", CREATED)
    return build_standard18(run, processing_date=PROCESSING_DATE, **kwargs)


def gross_of(run: BillRun, customer: Customer) -> Decimal:
    return Invoice.objects.get(bill_run=run, customer=customer).gross


def test_labels_are_80_characters_and_data_records_100_in_standard_18_order(billed):
    result = build(billed.run)

    records = result.content.split("\r\n")
    assert records == result.records
    labels, data = records[:4] + records[-3:], records[4:-3]
    assert [record[:4] for record in labels] == ["VOL1", "HDR1", "HDR2", "UHL1", "EOF1", "EOF2", "UTL1"]
    assert [len(record) for record in labels] == [80] * 7
    assert [len(record) for record in data] == [100] * 3
    details, contra = records[4:-4], records[-4]
    assert len(details) == len(result.collections) == 2
    assert {detail_fields(record)["transaction_code"] for record in details} == {"17"}
    assert detail_fields(contra)["transaction_code"] == "99"


def test_labels_carry_the_originator_serial_and_bacs_days(billed):
    records = build(billed.run, serial="A00042").records
    vol1, hdr1, hdr2, uhl1, *_rest, eof1, eof2, _utl1 = records

    assert fields(vol1, (5, 10), (42, 47), (80, 80)) == ["A00042", "123456", "1"]
    assert fields(hdr1, (5, 21), (22, 27), (28, 35)) == ["A123456S  1123456", "A00042", "00010001"]
    assert fields(hdr1, (42, 47), (48, 53)) == [" 24093", " 24093"]  # 2 April 2024
    assert fields(hdr2, (5, 15), (51, 52)) == ["F0200000100", "00"]
    assert fields(uhl1, (5, 10), (11, 20), (21, 28), (29, 37), (38, 40)) == [
        " 24106",
        "999999    ",
        "00000000",
        "1 DAILY  ",
        "001",
    ]
    assert eof1 == "EOF" + hdr1[3:]
    assert eof2 == "EOF" + hdr2[3:]


def test_totals_balance_with_the_details_and_the_invoices_collected(billed):
    result = build(billed.run)

    details, contra, utl1 = result.records[4:-4], result.records[-4], result.records[-1]
    detail_total = sum(int(detail_fields(record)["amount"]) for record in details)
    invoices_total = gross_of(billed.run, billed.paying) + gross_of(billed.run, billed.exact)
    assert detail_total == result.total_pence == bacs.to_pence(invoices_total)
    assert detail_total > 0
    assert int(detail_fields(contra)["amount"]) == detail_total
    debit_total, credit_total, debits, credits = fields(utl1, (5, 17), (18, 30), (31, 37), (38, 44))
    assert (int(debit_total), int(credit_total)) == (detail_total, detail_total)
    assert (int(debits), int(credits)) == (2, 1)
    assert detail_fields(contra)["reference"] == "CONTRA".ljust(18)
    assert fields(contra, (1, 14), (18, 31)) == ["20000055779911", "20000055779911"]


def test_amounts_are_exact_pence(billed):
    result = build(billed.run)

    assert gross_of(billed.run, billed.exact) == Decimal("1.87")
    collected = {collection.customer_reference: collection for collection in result.collections}
    assert collected[billed.exact.reference].amount_pence == 187
    record = next(r for r in result.records[4:-4] if detail_fields(r)["reference"].startswith("DDEXACT"))
    assert detail_fields(record)["amount"] == "00000000187"


def test_customers_without_a_mandate_nothing_due_or_erased_are_skipped_with_the_reason(billed):
    result = build(billed.run)

    assert sorted(result.skipped) == sorted(
        [
            (billed.no_mandate.reference, bacs.SKIP_NO_MANDATE),
            (billed.nothing_due.reference, bacs.SKIP_NOTHING_DUE),
            (billed.erased_reference, bacs.SKIP_ERASED),
        ]
    )
    assert {c.customer_reference for c in result.collections} == {
        billed.paying.reference,
        billed.exact.reference,
    }
    assert gross_of(billed.run, billed.no_mandate) > 0


def test_names_and_references_are_upper_case_bacs_characters(billed):
    result = build(billed.run)

    paying = next(c for c in result.collections if c.customer_reference == billed.paying.reference)
    assert paying.mandate_reference == "DDM/0001-A"
    record = next(r for r in result.records[4:-4] if detail_fields(r)["reference"].startswith("DDM/"))
    detail = detail_fields(record)
    assert detail["account_name"] == "ZOE OBRIEN & SON C"  # "Zoë O'Brien & Søn (Café)", cut to 18
    assert detail["reference"] == "DDM/0001-A".ljust(18)
    assert (detail["sort_code"], detail["account_number"], detail["account_type"]) == (
        "400515",
        "34206819",
        "0",
    )
    assert (detail["originator_sort_code"], detail["originator_account_number"]) == ("200000", "55779911")
    assert detail["originator_name"] == "PARTNER COLLECT".ljust(18)
    text = "".join(result.records)
    assert set(text) <= bacs.BACS_CHARACTERS


def test_credit_notes_reduce_what_is_collected(billed):
    paying = Invoice.objects.get(bill_run=billed.run, customer=billed.paying)
    exact = Invoice.objects.get(bill_run=billed.run, customer=billed.exact)
    credit_note_issue(invoice=paying, actor=billed.finance, reason="Goodwill", net=Decimal("1.00"))
    credit_note_issue(invoice=exact, actor=billed.finance, reason="Billed in error")

    result = build(billed.run)

    assert [c.amount_pence for c in result.collections] == [bacs.to_pence(paying.gross) - 120]
    assert (billed.exact.reference, bacs.SKIP_CREDITED) in result.skipped


def test_restricted_customers_and_unusable_mandates_are_skipped(billed, make_user, agent):
    account_services.customer_restrict_processing(
        customer=billed.exact, actor=make_user(Role.DATA_PROTECTION_OFFICER), reason="Art. 18 request"
    )
    account_services.payment_details_set(
        customer=billed.paying,
        actor=agent,
        account_holder="Jane Smith",
        sort_code="400515",
        account_number="34206819",
        mandate_reference="ab#1",
        # Kept active (a staff change of a lodged instruction lodges it again): the collection meets it.
        amended_by_bank=True,
    )

    result = build(billed.run)

    assert result.collections == []
    assert (billed.exact.reference, bacs.SKIP_RESTRICTED) in result.skipped
    assert (billed.paying.reference, bacs.SKIP_REFERENCE) in result.skipped
    assert [record[:4] for record in result.records] == [
        "VOL1",
        "HDR1",
        "HDR2",
        "UHL1",
        "EOF1",
        "EOF2",
        "UTL1",
    ]
    assert result.records[-1][4:44] == "0" * 40


def test_building_writes_nothing_and_reads_in_a_fixed_number_of_queries(
    billed, other_partner, agent, finalise
):
    billing_profile(other_partner, default_tariff=uk_tariff())
    other = full_customer(other_partner)
    make_active(other, agent)
    one_off(other, "4.00", agent)
    small = finalise(of=other_partner)

    with CaptureQueriesContext(connection) as one_invoice:
        assert len(build(small).collections) == 1
    with CaptureQueriesContext(connection) as five_invoices:
        assert len(build(billed.run).collections) == 2

    captured = one_invoice.captured_queries + five_invoices.captured_queries
    assert {statement_of(query["sql"]).split()[0].upper() for query in captured} == {"SELECT"}
    # The run, the profile, its invoices with their mandates, their credit notes, the partner's earlier
    # invoices still to collect, the mandates awaiting a 0C.
    assert len(one_invoice) == len(five_invoices) <= 6


def test_a_run_that_is_not_finalised_is_refused(partner, finalise):
    billing_profile(partner, default_tariff=uk_tariff())
    full_customer(partner)
    run = finalise(BillRun.Status.CALCULATED)

    with pytest.raises(ValueError, match=r"calculated.*finalised bill runs only"):
        build(run)


def test_the_callers_stale_copy_of_a_finalised_run_is_read_again(billed):
    stale = BillRun.objects.get(pk=billed.run.pk)
    stale.status = BillRun.Status.APPROVED

    assert len(build(stale).collections) == 2


def test_a_partner_without_bacs_originator_details_is_refused(partner, finalise):
    billing_profile(partner, default_tariff=uk_tariff())
    full_customer(partner)
    run = finalise()
    PartnerBillingProfile.objects.filter(partner=partner).update(
        bacs_service_user_number="", bacs_account_name=""
    )

    with pytest.raises(ValueError, match="lacks Bacs originator details: service user number, account name"):
        build(run)


def test_malformed_originator_details_are_refused(partner, finalise):
    billing_profile(partner, default_tariff=uk_tariff())
    run = finalise()
    PartnerBillingProfile.objects.filter(partner=partner).update(bacs_sort_code="20-000")

    with pytest.raises(ValueError, match="sort code must be 6 digits"):
        build(run)


@pytest.mark.parametrize("serial", ["000000", "12345", "abc123", "1234567"])
def test_a_malformed_serial_is_refused(billed, serial):
    with pytest.raises(ValueError, match="serial"):
        build(billed.run, serial=serial)


def download(client, run: BillRun):
    response = client.post(f"/billing/runs/{run.pk}/direct-debit/")
    assert response.status_code == 200, response.content[:300]
    return response


def test_the_downloaded_file_parses_back_field_by_field_against_the_published_layout(client, billed):
    before = timezone.now()
    client.force_login(billed.finance)
    response = download(client, billed.run)
    after = timezone.now()

    body = response.content
    assert body.decode("ascii").split("\r\n") == body.decode("ascii").splitlines()
    records = [parse(record) for record in body.decode("ascii").split("\r\n")]
    vol1, hdr1, hdr2, uhl1, *data, eof1, eof2, utl1 = records
    assert [vol1["label"], hdr1["label"], hdr2["label"], uhl1["label"]] == ["VOL1", "HDR1", "HDR2", "UHL1"]
    assert [eof1["label"], eof2["label"], utl1["label"]] == ["EOF1", "EOF2", "UTL1"]
    details, contras = data[:-1], data[-1:]
    assert [d["transaction code"] for d in details] == ["17", "17"]
    assert [c["transaction code"] for c in contras] == ["99"]
    sun = ORIGINATOR["bacs_service_user_number"]
    assert vol1["owner (service user number)"] == hdr1["file identifier: service user number"] == sun
    assert vol1["submission serial"] == hdr1["set identification"] == eof1["set identification"]
    assert {k: v for k, v in eof1.items() if k != "label"} == {k: v for k, v in hdr1.items() if k != "label"}
    made_on = {before.astimezone(LONDON).date(), after.astimezone(LONDON).date()}
    assert from_bacs_day(hdr1["creation date"]) in made_on
    processing = from_bacs_day(uhl1["processing date"])
    # Debited on the date the advance notices gave (sent as the file was made), not a day earlier or later.
    [notified] = set(DirectDebitNotice.objects.values_list("collection_date", flat=True))
    assert_cycle_holds(processing, made_at=after, promised=notified)
    total = sum(int(d["amount in pence"]) for d in details)
    assert int(contras[0]["amount in pence"]) == total == int(utl1["debit value total"])
    assert int(utl1["credit value total"]) == total
    assert (int(utl1["debit item count"]), int(utl1["credit item count"])) == (2, 1)
    assert {d["originating sort code"] + d["originating account number"] for d in data} == {"20000055779911"}


# One submission a run -------------------------------------------------------------------------------


def test_a_second_download_gives_back_the_first_file_byte_for_byte(client, billed):
    client.force_login(billed.finance)

    first = download(client, billed.run)
    second = download(client, billed.run)

    assert second.content == first.content
    assert second["Content-Disposition"] == first["Content-Disposition"]
    submission = DirectDebitSubmission.objects.get(bill_run=billed.run)
    assert submission.serial == "000001"
    assert submission.file_bytes == first.content
    assert submission.sha256 == hashlib.sha256(first.content).hexdigest()
    actions = list(billed.run.events.values_list("action", flat=True))
    assert actions.count(DIRECT_DEBIT_EXPORTED) == 1
    assert actions.count(DIRECT_DEBIT_DOWNLOADED_AGAIN) == 1


def test_the_first_file_is_kept_even_when_the_run_would_now_give_another(client, billed, clock):
    client.force_login(billed.finance)
    first = download(client, billed.run)
    # A week on the processing day and the creation date of a new file would differ; the stored one not.
    clock.shift(datetime.timedelta(days=7))
    PartnerBillingProfile.objects.filter(partner=billed.run.partner).update(bacs_account_name="Renamed Ltd")
    client.force_login(billed.finance)  # the session of a week ago has expired

    assert download(client, billed.run).content == first.content


def test_only_a_recorded_cancellation_lets_the_finance_manager_make_a_new_file(client, billed):
    client.force_login(billed.finance)
    first = download(client, billed.run)
    page = client.get(f"/billing/runs/{billed.run.pk}/").content.decode()
    assert "Cancel Direct Debit submission 000001" in page

    refused = client.post(f"/billing/runs/{billed.run.pk}/direct-debit/cancel/", {"reason": " "}, follow=True)
    assert "Say why the submission is cancelled." in [m.message for m in refused.context["messages"]]
    assert download(client, billed.run).content == first.content

    cancelled = client.post(
        f"/billing/runs/{billed.run.pk}/direct-debit/cancel/",
        {"reason": "Bacstel-IP rejected the submission"},
        follow=True,
    )
    assert cancelled.redirect_chain == [(f"/billing/runs/{billed.run.pk}/", 302)]
    old = DirectDebitSubmission.objects.get(serial="000001")
    assert (old.cancelled_by, old.cancelled_reason) == (billed.finance, "Bacstel-IP rejected the submission")
    assert old.cancelled_at is not None
    assert old.history.latest().history_user == billed.finance
    assert old.history.latest().history_change_reason == "Cancelled: Bacstel-IP rejected the submission"
    assert AuditEvent.objects.filter(
        action="direct_debit_submission.cancelled", target_id=str(old.pk), actor_id=billed.finance.pk
    ).exists()

    second = download(client, billed.run)
    assert second.content != first.content
    assert parse(second.content.decode("ascii")[:80])["submission serial"] == "000002"
    assert DirectDebitSubmission.objects.get(cancelled_at__isnull=True).serial == "000002"


def test_a_billing_agent_can_neither_download_nor_cancel(client, billed, agent):
    direct_debit_export(bill_run=billed.run, actor=billed.finance)
    client.force_login(agent)

    page = client.get(f"/billing/runs/{billed.run.pk}/").content.decode()
    assert "<td>000001</td>" in page and "live" in page
    assert "<button>Cancel Direct Debit submission" not in page and "Direct Debit file (Bacs" not in page
    assert "Only a finance manager may make or download a bill run&#x27;s Direct Debit file." in page
    assert "Only a finance manager may cancel a bill run&#x27;s Direct Debit submission." in page
    download = client.post(f"/billing/runs/{billed.run.pk}/direct-debit/")
    assert download.status_code == 403
    assert "Only a finance manager may make or download" in download.content.decode()
    cancel = client.post(f"/billing/runs/{billed.run.pk}/direct-debit/cancel/", {"reason": "Because"})
    assert cancel.status_code == 403
    with pytest.raises(PermissionDenied):
        direct_debit_submission_cancel(
            submission=DirectDebitSubmission.objects.get(), actor=agent, reason="Because"
        )
    assert DirectDebitSubmission.objects.get().cancelled_at is None


def test_the_service_gives_the_live_submission_until_it_is_cancelled(billed):
    first = direct_debit_export(bill_run=billed.run, actor=billed.finance)
    again = direct_debit_export(bill_run=billed.run, actor=billed.finance)
    assert again.pk == first.pk

    direct_debit_submission_cancel(submission=first, actor=billed.finance, reason="Not sent")
    with pytest.raises(BillingError, match="already cancelled"):
        direct_debit_submission_cancel(submission=first, actor=billed.finance, reason="Twice")
    new = direct_debit_export(bill_run=billed.run, actor=billed.finance)

    assert new.pk != first.pk
    assert (first.serial, new.serial) == ("000001", "000002")
    assert DirectDebitSubmission.objects.filter(bill_run=billed.run, cancelled_at__isnull=True).get() == new


def test_the_database_refuses_a_second_live_submission_of_a_run(billed):
    live = direct_debit_export(bill_run=billed.run, actor=billed.finance)
    twin = DirectDebitSubmission.objects.get(pk=live.pk)
    twin.pk, twin.id, twin.serial = None, None, "000099"

    with pytest.raises(IntegrityError), transaction.atomic():
        twin.save()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_exports_make_one_submission(billed):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL; SQLite serialises writers and the constraint is tested above")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def export() -> None:
        try:
            barrier.wait()
            results.append(direct_debit_export(bill_run=billed.run, actor=billed.finance).pk)
        except Exception as exc:  # the assertion below shows what went wrong
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=export) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert DirectDebitSubmission.objects.filter(bill_run=billed.run).count() == 1
    assert results == [DirectDebitSubmission.objects.get().pk] * 2


# The processing day -----------------------------------------------------------------------------------


def tenth_working_day_after(day: datetime.date) -> datetime.date:
    """Counted here on the published calendar (bacs_works), independently of billing.bacs."""
    for _ in range(10):
        day = first_working_after(day)
    return day


def test_a_run_finalised_long_ago_is_debited_ten_working_days_after_its_advance_notice(
    client, billed, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(billed.finance)
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        uhl1 = parse(download(client, billed.run).content.decode("ascii").split("\r\n")[3])
    after = timezone.now()

    processing = from_bacs_day(uhl1["processing date"])
    promised = ISSUE_DATE + datetime.timedelta(days=DIRECT_DEBIT_NOTICE_DAYS)
    assert promised < before.date()  # the run's promise passed long ago: the notice sent now decides
    sent_on = {before.astimezone(LONDON).date(), after.astimezone(LONDON).date()}
    assert first_working_after(processing) in {tenth_working_day_after(day) for day in sent_on}
    assert DirectDebitSubmission.objects.get().processing_date == processing
    notices = {notice.invoice_number: notice for notice in DirectDebitNotice.objects.all()}
    collected = Invoice.objects.filter(bill_run=billed.run, customer__in=[billed.paying, billed.exact])
    assert set(notices) == {invoice.number for invoice in collected}
    assert {notice.collection_date for notice in notices.values()} == {first_working_after(processing)}
    # Each payer was told the amount and the date, by email, before the file was made.
    told = [m for m in mailoutbox if m.subject == "Advance notice of your Direct Debit"]
    assert len(told) == 2
    for invoice in collected:
        notice = notices[invoice.number]
        [mail] = [m for m in told if invoice.number in m.body]
        assert f"\u00a3{invoice.gross:,.2f}" in mail.body
        assert f"{notice.collection_date:%A %d %B %Y}" in mail.body
        assert notice.amount_pence == bacs.to_pence(invoice.gross)


def test_a_run_finalised_today_is_not_debited_before_the_notice_date(
    client, partner, agent, finance, finalise
):
    billing_profile(partner, default_tariff=uk_tariff())
    PartnerBillingProfile.objects.filter(partner=partner).update(**ORIGINATOR)
    customer = full_customer(partner)
    make_active(customer, agent)
    one_off(customer, "20.00", agent)
    today = timezone.localdate()
    run = finalise(issue_date=today)
    client.force_login(finance)

    processing = from_bacs_day(
        parse(download(client, run).content.decode("ascii").split("\r\n")[3])["processing date"]
    )

    promised = today + datetime.timedelta(days=DIRECT_DEBIT_NOTICE_DAYS)
    entry = first_working_after(processing)
    assert entry >= promised and entry >= tenth_working_day_after(today)
    # The entry day is the first day Bacs debits on or after both, not a day later.
    assert entry == first_working_on_or_after(max(promised, tenth_working_day_after(today)))
    assert bacs_works(processing)


def test_a_restricted_run_hands_out_not_even_its_stored_file(client, billed, dpo):
    client.force_login(billed.finance)
    download(client, billed.run)
    bill_run_restrict(bill_run=billed.run, actor=dpo, reason="Art. 18 request")

    response = client.post(f"/billing/runs/{billed.run.pk}/direct-debit/", follow=True)

    assert response.redirect_chain == [(f"/billing/runs/{billed.run.pk}/", 302)]
    assert any("restricted" in m.message for m in response.context["messages"])
    assert billed.run.events.filter(action="direct debit export refused").exists()


def test_many_direct_debit_downloads_alert_the_dpo_and_administrators(
    client, billed, dpo, make_user, settings, mailoutbox, django_capture_on_commit_callbacks
):
    # Through the real path: the page's download is audited as an export, and the alerts, which subscribe
    # to the audit trail (AccountsConfig.ready()), count it.
    cache.clear()  # an alert is sent once per user and window (a cache key); user ids repeat between tests
    settings.ALERT_EXPORTS_PER_WINDOW = 2
    administrator = make_user(Role.ADMINISTRATOR)
    client.force_login(billed.finance)

    def alerts():
        return [mail for mail in mailoutbox if mail.subject.startswith("[Fusion security]")]

    with django_capture_on_commit_callbacks(execute=True):
        download(client, billed.run)
    assert alerts() == []
    with django_capture_on_commit_callbacks(execute=True):
        download(client, billed.run)  # the stored file again: a second export
        download(client, billed.run)

    assert len(alerts()) == 1
    assert alerts()[0].subject == f"[Fusion security] Many exports by {billed.finance.email}"
    assert set(alerts()[0].to) == {dpo.email, administrator.email}
    assert (
        AuditEvent.objects.filter(action="alert.sent", detail__key=f"exports:{billed.finance.pk}").count()
        == 1
    )


# The stored file is personal data: encrypted at rest, and refused once cleared ------------------------


def test_the_stored_file_is_ciphertext_in_the_database(billed):
    submission = direct_debit_export(bill_run=billed.run, actor=billed.finance)
    assert "34206819" in submission.content and "400515" in submission.content  # the paying customer

    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM billing_directdebitsubmission WHERE id = %s", [submission.pk])
        (stored,) = cursor.fetchone()
        history_columns = [
            column.name
            for column in connection.introspection.get_table_description(
                cursor, "billing_historicaldirectdebitsubmission"
            )
        ]

    for plaintext in ("34206819", "400515", "12345678", "JANE SMITH", "VOL1", "UHL1"):
        assert plaintext not in stored
    assert crypto.decrypt(stored) == submission.content
    assert "content" not in history_columns, "the history must not copy the file a second time"
    assert DirectDebitSubmission.objects.get(pk=submission.pk).file_bytes == submission.file_bytes
    # So key rotation re-encrypts it with the rest.
    assert "billing.DirectDebitSubmission" in {table.label for table in key_rotation.encrypted_tables()}


@pytest.mark.parametrize(
    ("cleared_for", "says"),
    [
        (
            DirectDebitSubmission.ContentCleared.ERASURE,
            ["cleared on", "for a customer's erasure", "cancel this submission", "make a new file"],
        ),
        (
            DirectDebitSubmission.ContentCleared.RETENTION,
            ["cleared on", "by the retention policy", "do not make another file"],
        ),
    ],
)
def test_a_cleared_file_is_refused_with_what_to_do_and_the_facts_stay(client, billed, cleared_for, says):
    client.force_login(billed.finance)
    first = download(client, billed.run)
    DirectDebitSubmission.objects.update(
        content="", content_cleared_at=timezone.now(), content_cleared_for=cleared_for
    )

    response = client.post(f"/billing/runs/{billed.run.pk}/direct-debit/", follow=True)

    assert response.redirect_chain == [(f"/billing/runs/{billed.run.pk}/", 302)]
    [message] = [m.message for m in response.context["messages"]]
    for words in ["Direct Debit submission 000001", *says]:
        assert words in message, message
    assert "file text cleared" in response.content.decode()
    assert billed.run.events.filter(
        action="direct debit export refused", detail__contains="file text cleared"
    ).exists()
    assert not billed.run.events.filter(action=DIRECT_DEBIT_DOWNLOADED_AGAIN).exists()
    kept = DirectDebitSubmission.objects.get()
    assert kept.sha256 == hashlib.sha256(first.content).hexdigest() and kept.content == ""
    assert (kept.serial, kept.collections, kept.cancelled_at) == ("000001", 2, None)


def test_the_database_refuses_a_clearance_without_its_date_or_reason(billed):
    direct_debit_export(bill_run=billed.run, actor=billed.finance)
    with pytest.raises(IntegrityError), transaction.atomic():
        DirectDebitSubmission.objects.update(content_cleared_for=DirectDebitSubmission.ContentCleared.ERASURE)
    with pytest.raises(IntegrityError), transaction.atomic():
        DirectDebitSubmission.objects.update(content_cleared_at=timezone.now())
