"""Direct Debit collections as a Bacs Standard 18 file, from bill runs calculated and finalised through the
services: fixed widths, balanced totals, exact pence, sanitised text, and who is skipped and why."""

import datetime
import hashlib
import io
import re
import threading
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal

import holidays
import pytest
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import services as account_services
from accounts.models import AuditEvent, Customer, Role
from accounts.validation import national_phone_digits
from billing import bacs, services
from billing.demo import uk_tariff
from billing.models import BillRun, DirectDebitSubmission, Invoice, PartnerBillingProfile
from fusion_site import crypto, key_rotation
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

    def run_to(
        status: str = BillRun.Status.FINALISED, *, of=None, issue_date: datetime.date = ISSUE_DATE
    ) -> BillRun:
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
        return services.bill_run_finalise(bill_run=run, actor=finance, issue_date=issue_date)

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


# The published layout, written out here from the Standard 18 tables (VOL1/HDR1/HDR2/UHL1/EOF1/EOF2/UTL1
# 80 characters, standard and contra records 100), independently of billing.bacs's writer: name, first
# and last position (1-based, inclusive), and the pattern the field must match.
DIGITS = r"[0-9]"
BACS_DAY = r" [0-9]{5}"
BACS_TEXT = r"[A-Z0-9.&/\- ]"
LABELS: dict[str, list[tuple[str, int, int, str]]] = {
    "VOL1": [
        ("label", 1, 4, "VOL1"),
        ("submission serial", 5, 10, r"[A-Z0-9]{6}"),
        ("accessibility", 11, 11, r"[ 0]"),
        ("reserved", 12, 31, " {20}"),
        ("reserved", 32, 37, " {6}"),
        ("reserved", 38, 41, " {4}"),
        ("owner (service user number)", 42, 47, DIGITS + "{6}"),
        ("reserved", 48, 51, " {4}"),
        ("reserved", 52, 79, " {28}"),
        ("label standard level", 80, 80, "1"),
    ],
    "HDR1": [
        ("label", 1, 4, "HDR1"),
        ("file identifier: A", 5, 5, "A"),
        ("file identifier: service user number", 6, 11, DIGITS + "{6}"),
        ("file identifier: S", 12, 12, "S"),
        ("file identifier: blanks", 13, 14, "  "),
        ("file identifier: 1", 15, 15, "1"),
        ("file identifier: service user number again", 16, 21, DIGITS + "{6}"),
        ("set identification", 22, 27, r"[A-Z0-9]{6}"),
        ("file section number", 28, 31, "0001"),
        ("file sequence number", 32, 35, "0001"),
        ("generation number", 36, 39, " {4}"),
        ("generation version number", 40, 41, " {2}"),
        ("creation date", 42, 47, BACS_DAY),
        ("expiration date", 48, 53, BACS_DAY),
        ("accessibility", 54, 54, r"[ 0]"),
        ("block count", 55, 60, "000000"),
        ("system code", 61, 73, " {13}"),
        ("reserved", 74, 80, " {7}"),
    ],
    "HDR2": [
        ("label", 1, 4, "HDR2"),
        ("record format", 5, 5, "F"),
        ("block length", 6, 10, "02000"),
        ("record length", 11, 15, "00100"),
        ("reserved for operating systems", 16, 50, " {35}"),
        ("buffer offset", 51, 52, "00"),
        ("reserved", 53, 80, " {28}"),
    ],
    "UHL1": [
        ("label", 1, 4, "UHL1"),
        ("processing date", 5, 10, BACS_DAY),
        ("receiving party identification", 11, 20, "999999    "),
        ("currency code", 21, 22, "00"),
        ("country code", 23, 28, "000000"),
        ("work code", 29, 37, "1 DAILY  "),
        ("file number", 38, 40, DIGITS + "{3}"),
        ("reserved", 41, 47, " {7}"),
        ("audit print identifier", 48, 54, " {7}"),
        ("reserved", 55, 80, " {26}"),
    ],
    "UTL1": [
        ("label", 1, 4, "UTL1"),
        ("debit value total", 5, 17, DIGITS + "{13}"),
        ("credit value total", 18, 30, DIGITS + "{13}"),
        ("debit item count", 31, 37, DIGITS + "{7}"),
        ("credit item count", 38, 44, DIGITS + "{7}"),
        ("reserved", 45, 52, " {8}"),
        ("reserved", 53, 80, " {28}"),
    ],
}
LABELS["EOF1"] = [("label", 1, 4, "EOF1"), *LABELS["HDR1"][1:]]
LABELS["EOF2"] = [("label", 1, 4, "EOF2"), *LABELS["HDR2"][1:]]
DATA_RECORD = [
    ("destination sort code", 1, 6, DIGITS + "{6}"),
    ("destination account number", 7, 14, DIGITS + "{8}"),
    ("destination account type", 15, 15, "0"),
    ("transaction code", 16, 17, "17|99"),
    ("originating sort code", 18, 23, DIGITS + "{6}"),
    ("originating account number", 24, 31, DIGITS + "{8}"),
    ("free format", 32, 35, " {4}"),
    ("amount in pence", 36, 46, DIGITS + "{11}"),
    ("service user's name", 47, 64, BACS_TEXT + "{18}"),
    ("service user's reference", 65, 82, BACS_TEXT + "{18}"),
    ("destination account name", 83, 100, BACS_TEXT + "{18}"),
]
LABEL_WIDTH, DATA_WIDTH = 80, 100


def parse(record: str) -> dict[str, str]:
    """A record's fields by the layout above; fails on a wrong width or a field out of its pattern."""
    layout = LABELS.get(record[:4], DATA_RECORD)
    width = DATA_WIDTH if layout is DATA_RECORD else LABEL_WIDTH
    assert len(record) == width, f"{record[:4]!r} is {len(record)} characters, not {width}"
    parsed: dict[str, str] = {}
    for name, start, end, pattern in layout:
        value = record[start - 1 : end]
        assert re.fullmatch(pattern, value), f"{record[:4]} {name} ({start}-{end}) = {value!r}"
        parsed.setdefault(name, value)  # "reserved" repeats; the first is enough to keep
    return parsed


def from_bacs_day(value: str) -> datetime.date:
    return datetime.date(2000 + int(value[1:3]), 1, 1) + datetime.timedelta(days=int(value[3:]) - 1)


def test_the_layout_table_covers_every_position_once():
    for layout, width in [
        *((fields_, LABEL_WIDTH) for fields_ in LABELS.values()),
        (DATA_RECORD, DATA_WIDTH),
    ]:
        positions = [position for _name, start, end, _pattern in layout for position in range(start, end + 1)]
        assert positions == list(range(1, width + 1))


# Calendar and cycle, stated here from their sources and not from billing.bacs: Bacs works Monday to
# Friday except the bank holidays of England and Wales; day 1 (input) closes at 22:30 UK time, day 2 is
# the processing day in UHL1, day 3 the entry day on which the payer is debited.
LONDON = zoneinfo.ZoneInfo("Europe/London")
ENGLAND_AND_WALES = holidays.country_holidays("GB", subdiv="ENG", years=range(2023, 2036))


def bacs_works(day: datetime.date) -> bool:
    return day.isoweekday() <= 5 and day not in ENGLAND_AND_WALES


def first_working_on_or_after(day: datetime.date) -> datetime.date:
    while not bacs_works(day):
        day += datetime.timedelta(days=1)
    return day


def first_working_after(day: datetime.date) -> datetime.date:
    return first_working_on_or_after(day + datetime.timedelta(days=1))


def last_working_before(day: datetime.date) -> datetime.date:
    day -= datetime.timedelta(days=1)
    while not bacs_works(day):
        day -= datetime.timedelta(days=1)
    return day


def input_day_of(made_at: datetime.datetime) -> datetime.date:
    local = made_at.astimezone(LONDON)
    if bacs_works(local.date()) and (local.hour, local.minute) < (22, 30):
        return local.date()
    return first_working_after(local.date())


def assert_cycle_holds(processing: datetime.date, *, made_at: datetime.datetime, promised: datetime.date):
    made_on = made_at.astimezone(LONDON).date()
    entry = first_working_after(processing)
    assert bacs_works(processing), f"{processing} is not a Bacs working day"
    assert processing > made_on
    assert processing > input_day_of(made_at)
    assert entry >= promised, f"entry day {entry} is before the promised {promised}"
    # And no earlier than it has to be: the working day before would miss the cycle or the notice.
    before = last_working_before(processing)
    assert before <= input_day_of(made_at) or first_working_after(before) < promised


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
    promised = ISSUE_DATE + datetime.timedelta(days=services.DIRECT_DEBIT_NOTICE_DAYS)
    assert_cycle_holds(processing, made_at=after, promised=promised)
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
    assert actions.count(services.DIRECT_DEBIT_EXPORTED) == 1
    assert actions.count(services.DIRECT_DEBIT_DOWNLOADED_AGAIN) == 1


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
    services.direct_debit_export(bill_run=billed.run, actor=billed.finance)
    client.force_login(agent)

    page = client.get(f"/billing/runs/{billed.run.pk}/").content.decode()
    assert "<td>000001</td>" in page and "live" in page
    assert "Cancel Direct Debit submission" not in page and "Direct Debit file" not in page
    assert client.post(f"/billing/runs/{billed.run.pk}/direct-debit/").status_code == 403
    cancel = client.post(f"/billing/runs/{billed.run.pk}/direct-debit/cancel/", {"reason": "Because"})
    assert cancel.status_code == 403
    with pytest.raises(PermissionDenied):
        services.direct_debit_submission_cancel(
            submission=DirectDebitSubmission.objects.get(), actor=agent, reason="Because"
        )
    assert DirectDebitSubmission.objects.get().cancelled_at is None


def test_the_service_gives_the_live_submission_until_it_is_cancelled(billed):
    first = services.direct_debit_export(bill_run=billed.run, actor=billed.finance)
    again = services.direct_debit_export(bill_run=billed.run, actor=billed.finance)
    assert again.pk == first.pk

    services.direct_debit_submission_cancel(submission=first, actor=billed.finance, reason="Not sent")
    with pytest.raises(services.BillingError, match="already cancelled"):
        services.direct_debit_submission_cancel(submission=first, actor=billed.finance, reason="Twice")
    new = services.direct_debit_export(bill_run=billed.run, actor=billed.finance)

    assert new.pk != first.pk
    assert (first.serial, new.serial) == ("000001", "000002")
    assert DirectDebitSubmission.objects.filter(bill_run=billed.run, cancelled_at__isnull=True).get() == new


def test_the_database_refuses_a_second_live_submission_of_a_run(billed):
    live = services.direct_debit_export(bill_run=billed.run, actor=billed.finance)
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
            results.append(services.direct_debit_export(bill_run=billed.run, actor=billed.finance).pk)
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


def test_a_run_finalised_long_ago_gets_a_processing_day_after_the_file_is_made(client, billed):
    client.force_login(billed.finance)
    before = timezone.now()
    uhl1 = parse(download(client, billed.run).content.decode("ascii").split("\r\n")[3])
    after = timezone.now()

    processing = from_bacs_day(uhl1["processing date"])
    promised = ISSUE_DATE + datetime.timedelta(days=services.DIRECT_DEBIT_NOTICE_DAYS)
    assert promised < before.date()  # the notice date passed long ago: the cycle alone decides
    assert processing in {first_working_after(input_day_of(before)), first_working_after(input_day_of(after))}
    assert DirectDebitSubmission.objects.get().processing_date == processing


def test_a_run_finalised_today_is_not_debited_before_the_notice_date(
    client, partner, agent, finance, finalise
):
    billing_profile(partner, default_tariff=uk_tariff())
    PartnerBillingProfile.objects.filter(partner=partner).update(**ORIGINATOR)
    one_off(full_customer(partner), "20.00", agent)
    today = timezone.localdate()
    run = finalise(issue_date=today)
    client.force_login(finance)

    processing = from_bacs_day(
        parse(download(client, run).content.decode("ascii").split("\r\n")[3])["processing date"]
    )

    promised = today + datetime.timedelta(days=services.DIRECT_DEBIT_NOTICE_DAYS)
    assert first_working_after(processing) >= promised
    # The entry day is the first day Bacs debits on or after the promise, not a day later.
    assert first_working_after(processing) == first_working_on_or_after(promised)
    assert bacs_works(processing)


@pytest.mark.parametrize(
    ("made_at", "promised", "processing"),
    [
        # Christmas 2026: Friday 25th, Monday 28th (Boxing Day substitute) are not Bacs days.
        ("2026-12-24T10:00:00+00:00", "2026-12-01", "2026-12-29"),
        # After the 22:30 cut-off on Thursday the 24th the input day is Tuesday the 29th.
        ("2026-12-24T22:45:00+00:00", "2026-12-01", "2026-12-30"),
        # A Saturday file: input Monday, processing Tuesday.
        ("2026-11-28T09:00:00+00:00", "2026-11-01", "2026-12-01"),
        # A promise on Saturday 12 December: debited Monday the 14th, so processed Friday the 11th.
        ("2026-11-30T12:00:00+00:00", "2026-12-12", "2026-12-11"),
        # 22:10 UTC on 24 October 2026 is 23:10 BST, after the cut-off: input Monday the 26th.
        ("2026-10-24T22:10:00+00:00", "2026-10-01", "2026-10-27"),
        # 21:45 UTC on a January Friday is 21:45 GMT, before the cut-off: input Friday, processing Monday.
        ("2027-01-08T21:45:00+00:00", "2027-01-01", "2027-01-11"),
    ],
)
def test_processing_days_on_the_published_calendar(made_at, promised, processing):
    instant = datetime.datetime.fromisoformat(made_at)
    promise = datetime.date.fromisoformat(promised)

    result = bacs.processing_day(made_at=instant, promised=promise)

    assert result == datetime.date.fromisoformat(processing)
    assert_cycle_holds(result, made_at=instant, promised=promise)


def _special_instants() -> list[datetime.datetime]:
    """Instants where a calendar rule turns: clock changes, the cut-off, month ends, bank holidays."""
    utc = datetime.UTC
    instants = []
    for year in range(2025, 2031):
        for month, day in [(3, 31), (10, 31), (12, 24), (12, 25), (12, 31), (2, 28), (4, 30), (8, 31)]:
            for hour, minute in [(0, 0), (0, 30), (1, 30), (21, 29), (21, 30), (22, 29), (22, 30), (23, 59)]:
                instants.append(datetime.datetime(year, month, day, hour, minute, tzinfo=utc))
    # The nights the clocks change in London (last Sunday of March and October, 01:00 UTC).
    for year in range(2025, 2031):
        for month in (3, 10):
            last = datetime.date(year, month, 31)
            sunday = last - datetime.timedelta(days=(last.isoweekday() % 7))
            for minutes in (-90, -61, -1, 0, 30, 59, 61, 90):
                instants.append(
                    datetime.datetime.combine(sunday, datetime.time(1, 0), tzinfo=utc)
                    + datetime.timedelta(minutes=minutes)
                )
    instants.append(datetime.datetime(2028, 2, 29, 22, 30, tzinfo=utc))
    return instants


making_instants = st.one_of(
    # Hypothesis takes naive bounds and attaches the zone itself.
    st.datetimes(
        min_value=datetime.datetime(2024, 1, 1),  # noqa: DTZ001
        max_value=datetime.datetime(2034, 12, 31),  # noqa: DTZ001
        timezones=st.just(datetime.UTC),
    ),
    st.sampled_from(_special_instants()),
    # Days the calendar names: bank holidays and the days either side, at any time.
    st.builds(
        lambda day, offset, seconds: (
            datetime.datetime.combine(day + datetime.timedelta(days=offset), datetime.time(0), tzinfo=LONDON)
            + datetime.timedelta(seconds=seconds)
        ),
        st.sampled_from(sorted(d for d in ENGLAND_AND_WALES if d.year <= 2034)),
        st.integers(-2, 2),
        st.integers(0, 86399),
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made_at=making_instants, notice_offset=st.integers(-60, 60))
def test_the_processing_day_keeps_the_three_day_cycle_and_the_notice(made_at, notice_offset):
    promised = made_at.astimezone(LONDON).date() + datetime.timedelta(days=notice_offset)

    processing = bacs.processing_day(made_at=made_at, promised=promised)

    assert_cycle_holds(processing, made_at=made_at, promised=promised)


def test_a_restricted_run_hands_out_not_even_its_stored_file(client, billed, dpo):
    client.force_login(billed.finance)
    download(client, billed.run)
    services.bill_run_restrict(bill_run=billed.run, actor=dpo, reason="Art. 18 request")

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

    with django_capture_on_commit_callbacks(execute=True):
        download(client, billed.run)
    assert mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        download(client, billed.run)  # the stored file again: a second export
        download(client, billed.run)

    assert len(mailoutbox) == 1
    assert mailoutbox[0].subject == f"[Fusion security] Many exports by {billed.finance.email}"
    assert set(mailoutbox[0].to) == {dpo.email, administrator.email}
    assert (
        AuditEvent.objects.filter(action="alert.sent", detail__key=f"exports:{billed.finance.pk}").count()
        == 1
    )


# The stored file is personal data: encrypted at rest, and refused once cleared ------------------------


def test_the_stored_file_is_ciphertext_in_the_database(billed):
    submission = services.direct_debit_export(bill_run=billed.run, actor=billed.finance)
    assert "31926819" in submission.content and "400515" in submission.content  # the paying customer

    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM billing_directdebitsubmission WHERE id = %s", [submission.pk])
        (stored,) = cursor.fetchone()
        history_columns = [
            column.name
            for column in connection.introspection.get_table_description(
                cursor, "billing_historicaldirectdebitsubmission"
            )
        ]

    for plaintext in ("31926819", "400515", "12345678", "JANE SMITH", "VOL1", "UHL1"):
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
    assert not billed.run.events.filter(action=services.DIRECT_DEBIT_DOWNLOADED_AGAIN).exists()
    kept = DirectDebitSubmission.objects.get()
    assert kept.sha256 == hashlib.sha256(first.content).hexdigest() and kept.content == ""
    assert (kept.serial, kept.collections, kept.cancelled_at) == ("000001", 2, None)


def test_the_database_refuses_a_clearance_without_its_date_or_reason(billed):
    services.direct_debit_export(bill_run=billed.run, actor=billed.finance)
    with pytest.raises(IntegrityError), transaction.atomic():
        DirectDebitSubmission.objects.update(content_cleared_for=DirectDebitSubmission.ContentCleared.ERASURE)
    with pytest.raises(IntegrityError), transaction.atomic():
        DirectDebitSubmission.objects.update(content_cleared_at=timezone.now())
