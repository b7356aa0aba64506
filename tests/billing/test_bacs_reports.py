"""billing.bacs_reports on its own, without the database: every ARUDD and ADDACS reason code read from the
sample reports and mapped to what the scheme's special instruction says (the table below is written out
from the published Bacs tables, independently of the module's), each malformed item named with its line
and field while the good ones still load, whole files refused when they are not ARUDD/ADDACS or try
entity tricks, and a Hypothesis round-trip: items rendered to XML by a writer of this file's own and read
back equal."""

import datetime
import pathlib
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import bacs_reports
from billing.bacs_reports import (
    Action,
    BacsReportRejected,
    InstructionAdvice,
    ReportKind,
    UnpaidDebit,
    item_action,
    parse_report,
)

DATA = pathlib.Path(__file__).parent / "data"


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


# The published tables (ARUDD and ADDACS reason codes, their names and special instructions, as the Bacs
# Service User's Guide words them and banks and bureaux restate them), and the action each instruction asks
# for, written here from the quoted words and not from the module.
SCHEME_ARUDD = {
    "0": ("REFER TO PAYER", "may represent up to one month from original processing day", Action.REPRESENT),
    "1": ("INSTRUCTION CANCELLED", "liaise with payer to agree the payment method", Action.CANCEL_MANDATE),
    "2": ("PAYER DECEASED", "(the instruction ends with the payer)", Action.CANCEL_MANDATE),
    "3": (
        "ACCOUNT TRANSFERRED",
        "new DDI to be obtained; collection must be suspended",
        Action.CANCEL_MANDATE,
    ),
    "4": (
        "ADVANCE NOTICE DISPUTED",
        "should not collect further ... until resolved",
        Action.HOLD_UNTIL_RESOLVED,
    ),
    "5": ("NO ACCOUNT", "account number is not recognised at the paying bank", Action.CANCEL_MANDATE),
    "6": ("NO INSTRUCTION", "if appropriate obtain new instruction", Action.CANCEL_MANDATE),
    "7": ("AMOUNT DIFFERS", "should not collect further ... until resolved", Action.HOLD_UNTIL_RESOLVED),
    "8": ("AMOUNT NOT YET DUE", "should not collect further ... until resolved", Action.HOLD_UNTIL_RESOLVED),
    "9": ("PRESENTATION OVERDUE", "must give further advance notice", Action.NEW_ADVANCE_NOTICE),
    "A": ("SERVICE USER DIFFERS", "identity of service user differs from DDI", Action.CHECK_SERVICE_USER),
    "B": ("ACCOUNT CLOSED", "must obtain a new DDI for a different/new account", Action.CANCEL_MANDATE),
}
SCHEME_ADDACS = {
    "0": ("cannot collect via Direct Debit on this account", Action.CANCEL_MANDATE),
    "1": ("liaise with the payer to agree the payment method", Action.CANCEL_MANDATE),
    "2": ("payer deceased", Action.CANCEL_MANDATE),
    "3": ("both details quoted: amend records and lodge 0N, no 0C", Action.MOVE_MANDATE_TO_NEW_ACCOUNT),
    "B": ("must obtain a new DDI for a different/new account", Action.CANCEL_MANDATE),
    "C": ("apply change to data file and continue collections", Action.AMEND_MANDATE),
    "D": ("should not collect further ... until resolved", Action.HOLD_UNTIL_RESOLVED),
    "E": ("collect Direct Debits using new details", Action.AMEND_MANDATE),
    "R": ("may resume direct debiting under the reinstated instruction", Action.REINSTATE_MANDATE),
}


def test_the_rule_tables_cover_exactly_the_published_codes():
    assert set(bacs_reports.ARUDD_RULES) == set(SCHEME_ARUDD)
    assert set(bacs_reports.ADDACS_RULES) == set(SCHEME_ADDACS)


# ARUDD


def test_the_arudd_sample_reads_every_reason_code_with_the_action_the_scheme_gives():
    report = parse_report(sample("arudd-sample.xml"))

    assert report.kind is ReportKind.ARUDD
    assert report.errors == ()
    assert report.service_user_number == "123456"
    assert report.report_date == datetime.date(2026, 11, 18)
    assert report.advice_number == "017"
    assert report.report_id == "ARUDD/123456/2026-11-18/017"
    assert {item.reason_code for item in report.items} == set(SCHEME_ARUDD)
    for item in report.items:
        assert isinstance(item, UnpaidDebit)
        name, _instruction, action = SCHEME_ARUDD[item.reason_code]
        if item.transaction_code == "18" and item.reason_code == "0":
            # Already a re-presentation: the product re-presents once only.
            assert item_action(item) is Action.RECOVER_OUTSIDE_DIRECT_DEBIT, item.reference
        else:
            assert item_action(item) is action, item.reference
        assert item.return_description.startswith(name)


def test_an_arudd_item_carries_the_reference_amount_dates_and_payer_exactly():
    first = parse_report(sample("arudd-sample.xml")).items[0]

    assert first == UnpaidDebit(
        position=1,
        reference="FUS-000101",
        reason_code="0",
        return_code="0128",
        return_description="REFER TO PAYER",
        transaction_code="17",
        amount_pence=4250,
        original_processing_date=datetime.date(2026, 11, 16),
        payer_reference="FUS-000101",
        payer_name="A SMITH",
        payer_sort_code="200000",
        payer_account_number="31926819",
    )
    assert first.line == 14
    assert first.rule.reason == "Refer to payer"
    assert bacs_reports.representation_deadline(first) == datetime.date(2026, 12, 16)


@pytest.mark.parametrize("code", sorted(SCHEME_ARUDD))
@pytest.mark.parametrize("written_as", ["reason code", "bacs return code and name"])
def test_every_arudd_code_is_read_from_the_code_or_from_the_published_name(code, written_as):
    name = SCHEME_ARUDD[code][0]
    return_code = code if written_as == "reason code" else "9876"
    data = arudd_xml([{"ref": "REF-0001", "returnCode": return_code, "returnDescription": name}])

    (item,) = parse_report(data).items

    assert item.reason_code == code
    assert item.return_code == return_code
    assert item_action(item) is SCHEME_ARUDD[code][2]


def test_a_lower_case_reason_code_and_an_unpunctuated_name_are_read():
    data = arudd_xml(
        [
            {"ref": "REF-0001", "returnCode": "b", "returnDescription": ""},
            {
                "ref": "REF-0002",
                "returnCode": "0777",
                "returnDescription": "No account, or wrong account type",
            },
        ]
    )

    assert [item.reason_code for item in parse_report(data).items] == ["B", "5"]


def test_a_known_bacs_return_code_needs_no_name_and_an_unknown_one_is_named():
    report = parse_report(
        arudd_xml(
            [
                {"ref": "REF-0001", "returnCode": "0128", "returnDescription": ""},
                {"ref": "REF-0002", "returnCode": "1012", "returnDescription": ""},
                {"ref": "REF-0003", "returnCode": "0999", "returnDescription": ""},
                {"ref": "REF-0004", "returnCode": "", "returnDescription": "INSUFFICIENT FUNDS"},
            ]
        )
    )

    assert [item.reason_code for item in report.items] == ["0", "1"]
    assert [error.message for error in report.errors] == [
        "returnCode '0999' (returnDescription '') is not an ARUDD reason (0-9, A, B, or a Bacs return code "
        "whose description names one)",
        "returnCode '' (returnDescription 'INSUFFICIENT FUNDS') is not an ARUDD reason (0-9, A, B, or a Bacs "
        "return code whose description names one)",
    ]


def test_refer_to_payer_is_re_presented_once_within_a_month_and_never_a_re_presentation_again():
    first, again = parse_report(
        arudd_xml(
            [
                {"ref": "REF-0001", "returnCode": "0", "transCode": "17"},
                {"ref": "REF-0001", "returnCode": "0", "transCode": "18"},
            ]
        )
    ).items

    assert item_action(first) is Action.REPRESENT
    assert item_action(again) is Action.RECOVER_OUTSIDE_DIRECT_DEBIT


def test_the_malformed_arudd_names_each_bad_item_and_field_and_keeps_the_good_ones():
    report = parse_report(sample("arudd-malformed-items.xml"))

    assert [(item.position, item.reference, item.amount_pence) for item in report.items] == [
        (1, "FUS-000301", 1000),
        (10, "FUS-000310", 99),
    ]
    assert [(error.line, error.where, error.field) for error in report.errors] == [
        (12, "item 2 (ref 'FUS-000302')", "valueOf"),
        (13, "item 3 (ref 'FUS-000303')", "returnCode"),
        (14, "item 4 (ref 'FUS-000304')", "originalProcessingDate"),
        (15, "item 5", "ref"),
        (16, "item 6 (ref 'FUS-000306')", "transCode"),
        (17, "item 7 (ref 'FUS-000307')", "currency"),
        (18, "item 8 (ref 'FUS-000308')", "returnDescription"),
        (20, "item 9 (ref 'FUS-000309')", "sortCode"),
        (20, "item 9 (ref 'FUS-000309')", "number"),
    ]
    assert [str(error) for error in report.errors] == [
        "line 12, item 2 (ref 'FUS-000302'): valueOf '12.x' is not an amount in pounds and pence",
        "line 13, item 3 (ref 'FUS-000303'): returnCode 'Z' (returnDescription 'NO SUCH REASON') is not an "
        "ARUDD reason (0-9, A, B, or a Bacs return code whose description names one)",
        "line 14, item 4 (ref 'FUS-000304'): originalProcessingDate '2026-13-01' is not a date (YYYY-MM-DD)",
        "line 15, item 5: ref is missing",
        "line 16, item 6 (ref 'FUS-000306'): transCode '99' is not a Direct Debit transaction code "
        "(01, 17, 18, 19)",
        "line 17, item 7 (ref 'FUS-000307'): currency 'EUR' is not GBP",
        "line 18, item 8 (ref 'FUS-000308'): returnCode '2' is reason 2 (Payer deceased) but "
        "returnDescription 'ACCOUNT CLOSED' is reason B (Account closed)",
        "line 20, item 9 (ref 'FUS-000309'): sortCode '30-00-1' is not a sort code (six digits)",
        "line 20, item 9 (ref 'FUS-000309'): number '1234' is not an account number (eight digits)",
    ]
    # An item without a PayerAccount has no payer details (not empty ones).
    assert report.items[0] == UnpaidDebit(
        1, "FUS-000301", "0", "0", "REFER TO PAYER", "17", 1000, datetime.date(2026, 11, 17)
    )


def test_an_item_without_a_reference_is_still_named_by_its_position_for_its_other_faults():
    report = parse_report(arudd_xml([{"valueOf": "ten", "currency": "USD"}]))

    assert [str(error) for error in report.errors] == [
        "line 2, item 1: ref is missing",
        "line 2, item 1: valueOf 'ten' is not an amount in pounds and pence",
        "line 2, item 1: currency 'USD' is not GBP",
    ]
    assert report.items == ()


@pytest.mark.parametrize(
    ("attributes", "field", "message"),
    [
        ({"valueOf": "0.00"}, "valueOf", "valueOf '0.00' is not an amount above zero"),
        ({"valueOf": "1000000000.00"}, "valueOf", "is more than a Direct Debit carries (11 digits)"),
        ({"valueOf": "-5.00"}, "valueOf", "valueOf '-5.00' is not an amount in pounds and pence"),
        ({"valueOf": "1.234"}, "valueOf", "valueOf '1.234' is not an amount in pounds and pence"),
        ({"valueOf": "1,000.00"}, "valueOf", "valueOf '1,000.00' is not an amount in pounds and pence"),
        ({"valueOf": ""}, "valueOf", "valueOf is missing"),
        ({"originalProcessingDate": "2026-02-30"}, "originalProcessingDate", "is not a date (YYYY-MM-DD)"),
        ({"originalProcessingDate": "16/11/2026"}, "originalProcessingDate", "is not a date (YYYY-MM-DD)"),
        ({"transCode": ""}, "transCode", "transCode is missing"),
        ({"originalProcessingDate": ""}, "originalProcessingDate", "originalProcessingDate is missing"),
        ({"returnCode": "", "returnDescription": ""}, "returnCode", "returnCode is missing"),
        ({"ref": "R" * 19}, "ref", "is longer than 18 characters"),
    ],
)
def test_each_bad_arudd_field_is_named(attributes, field, message):
    report = parse_report(arudd_xml([{"ref": "REF-0001", **attributes}, {"ref": "REF-0002"}]))

    (error,) = report.errors
    assert error.field == field
    assert error.message.endswith(message)
    where = "item 1" if field == "ref" else "item 1 (ref 'REF-0001')"
    assert str(error) == f"line 2, {where}: {error.message}"  # line 1 is the XML declaration
    assert [item.reference for item in report.items] == ["REF-0002"]


def test_the_totals_catch_a_file_whose_items_do_not_add_up():
    report = parse_report(
        arudd_xml(
            [{"ref": "REF-0001", "valueOf": "10.00"}, {"ref": "REF-0002", "valueOf": "2.50"}],
            totals=("3", "12.00"),
        )
    )

    assert [(error.where, error.field) for error in report.errors] == [
        ("OriginatingAccountRecord 1 Totals", "numberOf"),
        ("OriginatingAccountRecord 1 Totals", "valueOf"),
    ]
    assert {error.line for error in report.errors} == {2}
    assert report.errors[0].message == "numberOf is 3 but the record has 2 items"
    assert report.errors[1].message == "valueOf is 12.00 but the items add up to 12.50"
    assert len(report.items) == 2


def test_totals_that_agree_raise_nothing_and_an_unreadable_total_is_named():
    good = parse_report(arudd_xml([{"ref": "REF-0001", "valueOf": "10.00"}], totals=("1", "10.00")))
    unreadable = parse_report(arudd_xml([{"ref": "REF-0001", "valueOf": "10.00"}], totals=("1", "ten")))

    assert good.errors == ()
    assert [error.field for error in unreadable.errors] == ["valueOf"]
    assert [str(error) for error in unreadable.errors] == [
        f"line {unreadable.errors[0].line}, OriginatingAccountRecord 1 Totals: "
        "valueOf 'ten' is not an amount in pounds and pence"
    ]


def test_an_arudd_with_no_items_is_a_report_with_nothing_to_do():
    report = parse_report(arudd_xml([], totals=("0", "0.00")))
    no_advice = parse_report(
        b"<BACSDocument><Data><ARUDD><Header currentProcessingDate='2026-11-18'/>"
        b"<ServiceLicenseInformation userNumber='123456'/></ARUDD></Data></BACSDocument>"
    )
    no_records = parse_report(
        b"<BACSDocument><Data><ARUDD><Header currentProcessingDate='2026-11-18'/>"
        b"<ServiceLicenseInformation userNumber='123456'/><Advice/></ARUDD></Data></BACSDocument>"
    )

    assert report.items == no_advice.items == no_records.items == ()
    assert report.errors == no_advice.errors == no_records.errors == ()
    assert no_advice.report_id == "ARUDD/123456/2026-11-18/-"


# ADDACS


def test_the_addacs_sample_reads_every_reason_code_with_the_action_the_scheme_gives():
    report = parse_report(sample("addacs-sample.xml"))

    assert report.kind is ReportKind.ADDACS
    assert report.errors == ()
    assert report.report_id == "ADDACS/123456/2026-11-18/0042"
    assert {item.reason_code for item in report.items} == set(SCHEME_ADDACS)
    for item in report.items:
        assert isinstance(item, InstructionAdvice)
        expected = SCHEME_ADDACS[item.reason_code][1]
        if item.reason_code == "3" and not item.has_new_account:
            # "If only the old bank details are quoted ... obtain a new DDI ... collection must be suspended"
            expected = Action.CANCEL_MANDATE
        assert item_action(item) is expected, item.reference


def test_an_addacs_advice_carries_the_old_and_new_account():
    moved = parse_report(sample("addacs-sample.xml")).items[3]

    assert moved == InstructionAdvice(
        position=4,
        reference="FUS-000204",
        reason_code="3",
        effective_date=datetime.date(2026, 11, 17),
        payer_name="D TAYLOR",
        payer_sort_code="300003",
        payer_account_number="32345678",
        new_sort_code="404784",
        new_account_number="70872490",
        aosn="000004",
        due_date=datetime.date(2026, 11, 24),
    )
    assert moved.rule.reason == "Account transferred to a new bank or building society"


def test_the_malformed_addacs_names_each_bad_advice_and_field_and_keeps_the_good_ones():
    report = parse_report(sample("addacs-malformed-items.xml"))

    assert [(item.position, item.reference) for item in report.items] == [
        (1, "FUS-000401"),
        (7, "FUS-000407"),
    ]
    assert [(error.line, error.field) for error in report.errors] == [
        (8, "reason-code"),
        (9, "payer-new-sort-code"),
        (10, "user-number"),
        (11, "effective-date"),
        (12, "payer-new-account-number"),
    ]
    assert [str(error) for error in report.errors] == [
        "line 8, advice 2 (reference 'FUS-000402'): reason-code '7' is not an ADDACS reason "
        "(0, 1, 2, 3, B, C, D, E, R)",
        "line 9, advice 3 (reference 'FUS-000403'): reason-code 'C' (account transferred to a different "
        "branch) needs payer-new-sort-code and payer-new-account-number",
        "line 10, advice 4 (reference 'FUS-000404'): user-number '654321' is not the report's (123456)",
        "line 11, advice 5 (reference 'FUS-000405'): effective-date '18/11/2026' is not a date (YYYY-MM-DD)",
        "line 12, advice 6 (reference 'FUS-000406'): payer-new-sort-code and payer-new-account-number come "
        "together (one is missing)",
    ]
    assert [item.line for item in report.items] == [7, 13]
    assert report.items[0] == InstructionAdvice(1, "FUS-000401", "1", datetime.date(2026, 11, 18))


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"reference": ""}, "advice 1: reference is missing"),
        ({"record-type": ""}, "advice 1 (reference 'REF-0001'): record-type is missing"),
        ({"reason-code": ""}, "advice 1 (reference 'REF-0001'): reason-code is missing"),
        ({"effective-date": ""}, "advice 1 (reference 'REF-0001'): effective-date is missing"),
        (
            {"due-date": "2026-11-31"},
            "advice 1 (reference 'REF-0001'): due-date '2026-11-31' is not a date (YYYY-MM-DD)",
        ),
        (
            {"payer-sort-code": "2000000"},
            "advice 1 (reference 'REF-0001'): payer-sort-code '2000000' is not a sort code (six digits)",
        ),
        (
            {"payer-account-number": "3192681"},
            "advice 1 (reference 'REF-0001'): payer-account-number '3192681' is not an account number "
            "(eight digits)",
        ),
        (
            {"payer-new-sort-code": "AB-CD-EF", "payer-new-account-number": "70872490"},
            "advice 1 (reference 'REF-0001'): payer-new-sort-code 'AB-CD-EF' is not a sort code (six digits)",
        ),
        (
            {"payer-new-sort-code": "404784", "payer-new-account-number": "7087249X"},
            "advice 1 (reference 'REF-0001'): payer-new-account-number '7087249X' is not an account number "
            "(eight digits)",
        ),
        (
            {"payer-new-account-number": "70872490"},
            "advice 1 (reference 'REF-0001'): payer-new-sort-code and",
        ),
    ],
)
def test_each_bad_addacs_field_is_named(attributes, message):
    report = parse_report(addacs_xml([{"reference": "REF-0001", **attributes}, {"reference": "REF-0002"}]))

    (error,) = report.errors
    assert str(error).startswith(f"line 2, {message}")
    assert [item.reference for item in report.items] == ["REF-0002"]


def test_an_addacs_without_a_report_date_or_advice_number_is_read_and_a_bad_date_is_named():
    undated = parse_report(addacs_xml([{"reference": "REF-0001"}]))
    bad = parse_report(addacs_xml([], header={"report-generation-date": "2026/11/18"}))

    assert undated.report_id == "ADDACS/123456/undated/-"
    assert [str(error) for error in bad.errors] == [
        "line 2, ADDACS MessagingHeader: report-generation-date '2026/11/18' is not a date (YYYY-MM-DD)"
    ]


def test_an_advice_that_is_not_record_type_a_is_named():
    data = addacs_xml([{"reference": "REF-0001"}, {"reference": "REF-0002", "record-type": "N"}])

    report = parse_report(data)

    assert [item.reference for item in report.items] == ["REF-0001"]
    assert [(error.field, str(error)) for error in report.errors] == [
        (
            "record-type",
            "line 2, advice 2 (reference 'REF-0002'): record-type 'N' is not an ADDACS advice (A)",
        )
    ]
    nameless = parse_report(addacs_xml([{"reference": "", "reason-code": "Q"}]))
    assert [str(error) for error in nameless.errors] == [
        "line 2, advice 1: reference is missing",
        "line 2, advice 1: reason-code 'Q' is not an ADDACS reason (0, 1, 2, 3, B, C, D, E, R)",
    ]


def test_reinstatement_is_allowed_for_two_months_from_the_cancellation():
    assert bacs_reports.reinstatement_deadline(datetime.date(2026, 12, 31)) == datetime.date(2027, 2, 28)


# Whole files refused


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "not-a-report.xml",
            "^the file is not an ARUDD or ADDACS report: BACSDocument/Data holds InputReport "
            "(expected ARUDD or MessagingAdvices)$",
        ),
        ("auddis-report.xml", "not an ADDACS report: its advices have record-type N"),
        ("arudd-truncated.xml", "not well-formed XML (line 6, column 7): mismatched tag"),
        (
            "arudd-xxe.xml",
            "^the file declares a DTD or entities, which Bacs reports never do; it is refused unread",
        ),
        ("arudd-billion-laughs.xml", "declares a DTD or entities"),
    ],
)
def test_files_that_are_not_arudd_or_addacs_reports_are_refused_whole(name, message):
    with pytest.raises(BacsReportRejected, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_report(sample(name))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "^the file is empty$"),
        (b"<BACSDocument><Data><A/><B/></Data></BACSDocument>", "Data holds A, B \\(expected"),
        (b"not xml at all", "not well-formed XML"),
        (
            b"<Invoice/>",
            r"^the document is <Invoice>, not a Bacs report \(<BACSDocument>\); "
            r"only ARUDD and ADDACS reports are accepted$",
        ),
        (b"<BACSDocument/>", "BACSDocument/Data holds nothing"),
        (
            b"<BACSDocument><Data><ARUDD><Header currentProcessingDate='2026-11-18'/></ARUDD></Data>"
            b"</BACSDocument>",
            "ServiceLicenseInformation userNumber is missing",
        ),
        (
            b"<BACSDocument><Data><ARUDD><Header currentProcessingDate='18-11-2026'/></ARUDD></Data>"
            b"</BACSDocument>",
            "currentProcessingDate '18-11-2026' is not a date",
        ),
        (
            b"<BACSDocument><Data><ARUDD/></Data></BACSDocument>",
            "^ARUDD has no Header, so no processing date$",
        ),
        (
            b"<BACSDocument><Data><ARUDD><Header/></ARUDD></Data></BACSDocument>",
            "^ARUDD Header currentProcessingDate '' is not a date \\(YYYY-MM-DD\\): "
            "the report's processing day is needed$",
        ),
        (
            b"<BACSDocument><Data><ARUDD><Header currentProcessingDate='2026-11-18'/>"
            b"<ServiceLicenseInformation/></ARUDD></Data></BACSDocument>",
            "^ARUDD ServiceLicenseInformation userNumber is missing: a report names the service user number",
        ),
        (
            b"<BACSDocument><Data><MessagingAdvices><MessagingHeader user-number='123456'/>"
            b"<MessagingAdvice reference='R1' record-type='N'/><MessagingAdvice reference='R2'/>"
            b"<MessagingAdvice reference='R3' record-type='V'/></MessagingAdvices></Data></BACSDocument>",
            "its advices have record-type N, V, none "
            "\\(ADDACS advices are record-type A; AUDDIS reports use others\\)$",
        ),
        (
            b"<BACSDocument><Data><MessagingAdvices><MessagingHeader user-number='12345'/></MessagingAdvices>"
            b"</Data></BACSDocument>",
            "MessagingHeader user-number is '12345'",
        ),
    ],
)
def test_a_file_without_what_every_report_has_is_refused_with_why(data, message):
    with pytest.raises(BacsReportRejected, match=message):
        parse_report(data)


def test_a_file_of_exactly_the_limit_is_parsed():
    head, tail = b"<BACSDocument>", b"</BACSDocument>"
    data = head + b" " * (bacs_reports.MAX_REPORT_BYTES - len(head) - len(tail)) + tail

    with pytest.raises(BacsReportRejected, match="BACSDocument/Data holds nothing"):
        parse_report(data)


def test_an_oversized_file_is_refused_before_it_is_parsed():
    data = b"<BACSDocument>" + b" " * bacs_reports.MAX_REPORT_BYTES + b"</BACSDocument>"

    with pytest.raises(BacsReportRejected, match="a Bacs report is at most 33,554,432 bytes"):
        parse_report(data)


def test_a_report_of_the_other_kind_is_refused_when_one_kind_is_expected():
    with pytest.raises(BacsReportRejected, match="the file is an ADDACS report, not an ARUDD report"):
        parse_report(sample("addacs-sample.xml"), expected=ReportKind.ARUDD)
    assert parse_report(sample("arudd-sample.xml"), expected=ReportKind.ARUDD).kind is ReportKind.ARUDD


def test_xxe_never_reads_the_file_it_names(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    data = sample("arudd-xxe.xml").replace(b"file:///etc/passwd", secret.as_uri().encode())

    with pytest.raises(BacsReportRejected) as refused:
        parse_report(data)

    assert "TOP-SECRET-VALUE" not in str(refused.value)
    assert "DTDForbidden" in str(refused.value)


def test_an_internal_entity_is_refused_even_without_a_doctype_name_trick():
    data = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY sun "123456">]>'
        b"<BACSDocument><Data><ARUDD><Header currentProcessingDate='2026-11-18'/>"
        b"<ServiceLicenseInformation userNumber='&sun;'/></ARUDD></Data></BACSDocument>"
    )

    with pytest.raises(BacsReportRejected, match="refused unread"):
        parse_report(data)


def test_a_namespaced_latin_1_report_is_read():
    data = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>'
        '<BACSDocument xmlns="urn:example:bacs"><Data><ARUDD>'
        '<Header currentProcessingDate="2026-11-18"/><ServiceLicenseInformation userNumber="123456"/>'
        "<Advice><OriginatingAccountRecords><OriginatingAccountRecord>"
        '<ReturnedDebitItem ref="REF-0001" transCode="17" returnCode="0" originalProcessingDate="2026-11-16" '
        'valueOf="1.00"><PayerAccount name="JOSÉ MÜLLER"/></ReturnedDebitItem>'
        "</OriginatingAccountRecord></OriginatingAccountRecords></Advice></ARUDD></Data></BACSDocument>"
    ).encode("latin-1")

    (item,) = parse_report(data).items

    assert item.payer_name == "JOSÉ MÜLLER"


def test_a_line_error_without_a_line_names_only_where():
    assert str(bacs_reports.LineError(None, "item 1", "ref", "ref is missing")) == "item 1: ref is missing"


# The re-presentation limit, against its statement: "up to one month from original processing day" is the
# same day of the next month, or that month's last day when it has no such day.


@given(st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2099, 12, 31)))
def test_the_representation_deadline_is_one_calendar_month_after_the_processing_day(day):
    item = UnpaidDebit(1, "REF-0001", "0", "0", "", "17", 100, day)

    deadline = bacs_reports.representation_deadline(item)

    next_month = (day.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    assert (deadline.year, deadline.month) == (next_month.year, next_month.month)
    days_in_next_month = ((next_month + datetime.timedelta(days=32)).replace(day=1) - next_month).days
    assert deadline.day == min(day.day, days_in_next_month)
    assert 28 <= (deadline - day).days <= 31


# Round trip: any items, written as Bacs writes them by this file's own renderer, are read back equal.

BACS_REFERENCE_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.&/- "
references = st.text(BACS_REFERENCE_CHARACTERS, min_size=1, max_size=18).filter(
    lambda text: text.strip() == text
)
names = st.none() | st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp", "Zs")) | st.just(" "),
    min_size=1,
    max_size=30,
).filter(lambda text: text.strip() == text)
days = st.dates(min_value=datetime.date(2001, 1, 1), max_value=datetime.date(2099, 12, 31))
sort_codes = st.none() | st.from_regex(r"[0-9]{6}", fullmatch=True)
account_numbers = st.none() | st.from_regex(r"[0-9]{8}", fullmatch=True)


@st.composite
def unpaid_debits(draw, position: int) -> UnpaidDebit:
    code = draw(st.sampled_from(sorted(SCHEME_ARUDD)))
    # Written either as the reason code or as a Bacs return code (not one the module knows by number)
    # with the reason's published name.
    by_name = draw(st.booleans())
    return_code = draw(st.from_regex(r"9[0-9]{3}", fullmatch=True)) if by_name else code
    return UnpaidDebit(
        position=position,
        reference=draw(references),
        reason_code=code,
        return_code=return_code,
        return_description=SCHEME_ARUDD[code][0]
        if by_name
        else draw(st.sampled_from(["", SCHEME_ARUDD[code][0]])),
        transaction_code=draw(st.sampled_from(["01", "17", "18", "19"])),
        amount_pence=draw(st.integers(1, bacs_reports.MAX_AMOUNT_PENCE)),
        original_processing_date=draw(days),
        payer_reference=draw(st.none() | references),
        payer_name=draw(names),
        payer_sort_code=draw(sort_codes),
        payer_account_number=draw(account_numbers),
    )


@st.composite
def arudd_records(draw) -> list[list[UnpaidDebit]]:
    sizes = draw(st.lists(st.integers(0, 4), min_size=1, max_size=3))
    position, records = 0, []
    for size in sizes:
        record = []
        for _ in range(size):
            position += 1
            record.append(draw(unpaid_debits(position)))
        records.append(record)
    return records


@st.composite
def instruction_advices(draw) -> list[InstructionAdvice]:
    advices = []
    for position in range(1, draw(st.integers(0, 6)) + 1):
        code = draw(st.sampled_from(sorted(SCHEME_ADDACS)))
        moved = code == "C" or draw(st.booleans())
        advices.append(
            InstructionAdvice(
                position=position,
                reference=draw(references),
                reason_code=code,
                effective_date=draw(days),
                payer_name=draw(names),
                payer_sort_code=draw(sort_codes),
                payer_account_number=draw(account_numbers),
                new_sort_code=draw(st.from_regex(r"[0-9]{6}", fullmatch=True)) if moved else None,
                new_account_number=draw(st.from_regex(r"[0-9]{8}", fullmatch=True)) if moved else None,
                aosn=draw(st.none() | st.from_regex(r"[0-9]{6}", fullmatch=True)),
                due_date=draw(st.none() | days),
            )
        )
    return advices


@settings(max_examples=150, deadline=None)
@given(records=arudd_records(), report_date=days)
def test_any_arudd_written_out_is_read_back_equal(records, report_date):
    data = render_arudd(records, report_date)

    report = parse_report(data)

    assert report.errors == ()
    assert report.items == tuple(item for record in records for item in record)
    assert report.report_date == report_date
    for item in report.items:
        assert item_action(item) is (
            Action.RECOVER_OUTSIDE_DIRECT_DEBIT
            if (item.reason_code, item.transaction_code) == ("0", "18")
            else SCHEME_ARUDD[item.reason_code][2]
        )


@settings(max_examples=150, deadline=None)
@given(advices=instruction_advices())
def test_any_addacs_written_out_is_read_back_equal(advices):
    report = parse_report(render_addacs(advices))

    assert report.errors == ()
    assert report.items == tuple(advices)
    for advice in report.items:
        moved_without_details = advice.reason_code == "3" and not advice.has_new_account
        assert item_action(advice) is (
            Action.CANCEL_MANDATE if moved_without_details else SCHEME_ADDACS[advice.reason_code][1]
        )


# Writers of this file's own, in the layout Bacs publishes (independent of the reader).


def _pounds(pence: int) -> str:
    return f"{Decimal(pence) / 100:.2f}"


def _document(data_child: ElementTree.Element) -> bytes:
    root = ElementTree.Element("BACSDocument")
    ElementTree.SubElement(root, "Data").append(data_child)
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _set(element: ElementTree.Element, name: str, value: object) -> None:
    if value is not None:
        element.set(name, value.isoformat() if isinstance(value, datetime.date) else str(value))


def render_arudd(records: list[list[UnpaidDebit]], report_date: datetime.date) -> bytes:
    arudd = ElementTree.Element("ARUDD")
    ElementTree.SubElement(arudd, "Header", currentProcessingDate=report_date.isoformat(), adviceNumber="001")
    ElementTree.SubElement(arudd, "ServiceLicenseInformation", userNumber="123456", userName="FUSION")
    parent = ElementTree.SubElement(ElementTree.SubElement(arudd, "Advice"), "OriginatingAccountRecords")
    for record in records:
        record_element = ElementTree.SubElement(parent, "OriginatingAccountRecord")
        for item in record:
            element = ElementTree.SubElement(
                record_element,
                "ReturnedDebitItem",
                ref=item.reference,
                transCode=item.transaction_code,
                returnCode=item.return_code,
                returnDescription=item.return_description,
                originalProcessingDate=item.original_processing_date.isoformat(),
                valueOf=_pounds(item.amount_pence),
                currency="GBP",
            )
            payer = ElementTree.SubElement(element, "PayerAccount")
            _set(payer, "ref", item.payer_reference)
            _set(payer, "name", item.payer_name)
            _set(payer, "sortCode", item.payer_sort_code)
            _set(payer, "number", item.payer_account_number)
        ElementTree.SubElement(
            record_element,
            "Totals",
            numberOf=str(len(record)),
            valueOf=_pounds(sum(item.amount_pence for item in record)),
            currency="GBP",
        )
    return _document(arudd)


def render_addacs(advices: list[InstructionAdvice]) -> bytes:
    messaging = ElementTree.Element("MessagingAdvices")
    ElementTree.SubElement(messaging, "MessagingHeader", {"user-number": "123456", "advice-number": "1"})
    for advice in advices:
        element = ElementTree.SubElement(
            messaging, "MessagingAdvice", {"user-number": "123456", "record-type": "A"}
        )
        for name, value in [
            ("reference", advice.reference),
            ("reason-code", advice.reason_code),
            ("effective-date", advice.effective_date),
            ("payer-name", advice.payer_name),
            ("payer-sort-code", advice.payer_sort_code),
            ("payer-account-number", advice.payer_account_number),
            ("payer-new-sort-code", advice.new_sort_code),
            ("payer-new-account-number", advice.new_account_number),
            ("aosn", advice.aosn),
            ("due-date", advice.due_date),
        ]:
            _set(element, name, value)
    return _document(messaging)


def arudd_xml(items: list[dict[str, str]], *, totals: tuple[str, str] | None = None) -> bytes:
    """A one-record ARUDD whose items are these attributes over a valid default."""
    arudd = ElementTree.Element("ARUDD")
    ElementTree.SubElement(arudd, "Header", currentProcessingDate="2026-11-18")
    ElementTree.SubElement(arudd, "ServiceLicenseInformation", userNumber="123456")
    parent = ElementTree.SubElement(ElementTree.SubElement(arudd, "Advice"), "OriginatingAccountRecords")
    record = ElementTree.SubElement(parent, "OriginatingAccountRecord")
    for attributes in items:
        defaults = {
            "transCode": "17",
            "returnCode": "0",
            "returnDescription": "REFER TO PAYER",
            "originalProcessingDate": "2026-11-16",
            "valueOf": "10.00",
        }
        ElementTree.SubElement(record, "ReturnedDebitItem", {**defaults, **attributes})
    if totals is not None:
        ElementTree.SubElement(record, "Totals", numberOf=totals[0], valueOf=totals[1])
    return _document(arudd)


def addacs_xml(advices: list[dict[str, str]], *, header: dict[str, str] | None = None) -> bytes:
    messaging = ElementTree.Element("MessagingAdvices")
    ElementTree.SubElement(messaging, "MessagingHeader", {"user-number": "123456", **(header or {})})
    for attributes in advices:
        defaults = {"record-type": "A", "reason-code": "1", "effective-date": "2026-11-18"}
        ElementTree.SubElement(messaging, "MessagingAdvice", {**defaults, **attributes})
    return _document(messaging)
