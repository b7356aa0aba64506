"""Direct Debit collections as a Bacs Standard 18 file, from bill runs calculated and finalised through the
services: fixed widths, balanced totals, exact pence, sanitised text, and who is skipped and why."""

import datetime
import io
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import services as account_services
from accounts.models import Customer, Role
from accounts.validation import national_phone_digits
from billing import bacs, services
from billing.demo import uk_tariff
from billing.models import BillRun, Invoice, PartnerBillingProfile
from tests.billing.factories import billing_profile
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

    def run_to(status: str = BillRun.Status.FINALISED, *, of=None) -> BillRun:
        run = services.bill_run_create(
            partner=of or partner, period_start=PERIOD_START, period_end=PERIOD_END, actor=agent
        )
        with django_capture_on_commit_callbacks(execute=True):
            services.bill_run_start_calculation(bill_run=run, actor=agent)
        run.refresh_from_db()
        assert run.status == BillRun.Status.CALCULATED
        if status == BillRun.Status.CALCULATED:
            return run
        services.bill_run_approve(bill_run=run, actor=finance)
        return services.bill_run_finalise(bill_run=run, actor=finance, issue_date=ISSUE_DATE)

    return run_to


def one_off(customer: Customer, net: str, agent) -> None:
    services.one_off_charge_create(
        customer=customer, description="Equipment", amount=Decimal(net), charge_date=PERIOD_START, actor=agent
    )


def import_calls(partner, customer: Customer, agent) -> None:
    cli = national_phone_digits(customer.lines.get().cli)
    rows = [
        "cli,dialled_number,start_time,duration,call_type,call_reference",
        f"{cli},01134960000,2024-03-04T10:00:00,125,voice,BACS-{customer.pk}-1",
        f"{cli},07700900123,2024-03-05T11:30:00,61,voice,BACS-{customer.pk}-2",
    ]
    services.call_import_run(
        partner=partner, stream=io.StringIO("\n".join(rows)), file_name="march.csv", actor=agent
    )


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
        account_number="3192 6819",
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
    erased = full_customer(partner)
    one_off(erased, "3.00", agent)
    run = finalise()
    erased_reference = erased.reference
    erased.delete()  # as erasure does: the invoice survives (law keeps it) without its customer
    return Billed(run, finance, paying, exact, no_mandate, nothing_due, erased_reference)


def build(run: BillRun, **kwargs) -> bacs.Standard18File:
    kwargs.setdefault("creation_date", CREATED)
    return bacs.build_standard18(run, processing_date=PROCESSING_DATE, **kwargs)


def gross_of(run: BillRun, customer: Customer) -> Decimal:
    return Invoice.objects.get(bill_run=run, customer=customer).gross


def test_every_record_is_100_characters_in_standard_18_order(billed):
    result = build(billed.run)

    records = result.content.split("\r\n")
    assert records == result.records
    assert [len(record) for record in records] == [100] * len(records)
    assert [record[:4] for record in records[:4]] == ["VOL1", "HDR1", "HDR2", "UHL1"]
    assert [record[:4] for record in records[-3:]] == ["EOF1", "EOF2", "UTL1"]
    details, contra = records[4:-4], records[-4]
    assert len(details) == len(result.collections) == 2
    assert {detail_fields(record)["transaction_code"] for record in details} == {"17"}
    assert detail_fields(contra)["transaction_code"] == "99"
    # Labels are the published 80 characters, padded with blanks.
    assert all(record[80:] == " " * 20 for record in records[:4] + records[-3:])


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
        "31926819",
        "0",
    )
    assert (detail["originator_sort_code"], detail["originator_account_number"]) == ("200000", "55779911")
    assert detail["originator_name"] == "PARTNER COLLECT".ljust(18)
    text = "".join(result.records)
    assert set(text) <= bacs.BACS_CHARACTERS


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Zoë O\u2019Brien, Ltd.", "ZOE OBRIEN LTD."),  # a typographic apostrophe
        ("Łukasz Ærø", "LUKASZ AERO"),
        ("Straße 5 + Co", "STRASSE 5 CO"),
        ("Smith & Sons (Leeds) Ltd", "SMITH & SONS LEEDS LTD"),
        ("  ", ""),
    ],
)
def test_bacs_text_keeps_only_the_bacs_character_set(raw, clean):
    assert bacs.bacs_text(raw) == clean


def test_to_pence_is_exact_and_refuses_fractions_of_a_penny():
    assert bacs.to_pence(Decimal("1.87")) == 187
    assert bacs.to_pence(Decimal("0.10") + Decimal("0.20")) == 30
    with pytest.raises(ValueError, match="whole number of pence"):
        bacs.to_pence(Decimal("1.875"))


def test_credit_notes_reduce_what_is_collected(billed):
    paying = Invoice.objects.get(bill_run=billed.run, customer=billed.paying)
    exact = Invoice.objects.get(bill_run=billed.run, customer=billed.exact)
    services.credit_note_issue(invoice=paying, actor=billed.finance, reason="Goodwill", net=Decimal("1.00"))
    services.credit_note_issue(invoice=exact, actor=billed.finance, reason="Billed in error")

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
        account_number="31926819",
        mandate_reference="ab#1",
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
    one_off(full_customer(other_partner), "4.00", agent)
    small = finalise(of=other_partner)

    with CaptureQueriesContext(connection) as one_invoice:
        assert len(build(small).collections) == 1
    with CaptureQueriesContext(connection) as five_invoices:
        assert len(build(billed.run).collections) == 2

    captured = one_invoice.captured_queries + five_invoices.captured_queries
    assert {query["sql"].split()[0].upper() for query in captured} == {"SELECT"}
    assert len(one_invoice) == len(five_invoices) <= 5


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
