"""Bacs reports in: ARUDD (unpaid Direct Debits) and ADDACS (amended and cancelled Direct Debit
Instructions), read from the XML Bacs publishes, and what the scheme says to do for each reason code.
Pure functions of their arguments: no database, no clock. Applying a report (reversing the payment on
the ledger, cancelling or amending the mandate, recording history) is the caller's job.

``parse_report(data)`` reads one file's bytes into a ``BacsReport``: the kind, the service user number,
the report date and advice number, the items it could read and one ``LineError`` for each item or field
it could not ("line 14, item 3 (ref 'X02345'): valueOf '12.x' is not an amount in pounds and pence"),
so a bad item never hides the good ones. A file that is not an ARUDD or ADDACS report, is not
well-formed XML, carries a DTD or entity declarations (billion laughs, external entities) or is larger
than MAX_REPORT_BYTES is refused whole with ``BacsReportRejected``. ``item_action(item)`` gives the
``Action`` the scheme's guidance asks for (ARUDD_RULES, ADDACS_RULES).

Accepted schema (attributes in quotes; every date is YYYY-MM-DD; element names are matched without any
namespace prefix; other elements and attributes are ignored)

ARUDD ::

    BACSDocument
      Data
        ARUDD
          Header                     currentProcessingDate (required), adviceNumber, reportType
          ServiceLicenseInformation  userNumber (6 digits, required), userName
          Advice
            OriginatingAccountRecords
              OriginatingAccountRecord            (one or more)
                OriginatingAccount                name, number, sortCode (ignored)
                ReturnedDebitItem                 (zero or more; one unpaid Direct Debit)
                    ref                     the mandate reference (required, 1-18 characters)
                    transCode               01, 17, 18 or 19 (first, regular, re-presented, final)
                    returnCode              the reason: 0-9, A or B, or a Bacs return code (e.g. 0128)
                                            whose returnDescription names the reason
                    returnDescription       the reason's published name, e.g. REFER TO PAYER
                    originalProcessingDate  the processing day of the Direct Debit returned (required)
                    valueOf                 pounds and pence, e.g. 65.00 (required, above zero)
                    currency                GBP (absent means GBP)
                  PayerAccount            (optional) ref, name, number (8 digits), sortCode
                                          (6 digits, hyphens allowed), bankName, branchName
                Totals                            numberOf, valueOf: checked against the items

ADDACS ::

    BACSDocument
      Data
        MessagingAdvices
          MessagingHeader    user-number (6 digits, required), advice-number, report-generation-date
          MessagingAdvice    (zero or more; one amended, cancelled or reinstated instruction)
              record-type              A (an ADDACS advice; AUDDIS uses other record types)
              reference                the mandate reference (required, 1-18 characters)
              reason-code              0, 1, 2, 3, B, C, D, E or R (required)
              effective-date           when the change took effect (required)
              payer-name, payer-sort-code, payer-account-number          the instruction as it was
              payer-new-sort-code, payer-new-account-number              the new account (both or
                                       neither; required for reason C)
              user-number              if present, the header's
              aosn, due-date           kept as given (due-date read as a date)

Sources for the layout: the element and attribute names Bacs uses, as read by published integrations
(the ARUDD sample in the public "newbacs-advices.xsd" form, with Header, ServiceLicenseInformation,
OriginatingAccountRecord, ReturnedDebitItem and PayerAccount; ADDACS MessagingAdvices/MessagingAdvice with
record-type "A", reason-code, payer-new-sort-code and payer-new-account-number). Bacs does not publish the
XSD openly, so this module accepts the subset above and names anything else it needs and cannot find.

Reason codes and the guidance for each: the Bacs Direct Debit scheme's tables as restated by sponsoring
banks' and bureaux' guides, e.g. NatWest/Pay.UK bureau "ARUDD (1016)" and RBS "ADDACS (7001)" report
guides (ptx-natwest.readme.io/docs/arudd-aop, ptx-rbs.readme.io/docs/addacs-aop), Access PaySuite
"ARUDD Reason Codes" and "ADDACS Reason Codes" (accesspaysuite.com/blog), and Nuapay "Bacs Reason Codes"
(np_bacsreasons.html), which quote the circumstances and special instructions of the Bacs Service User's
Guide and Rules. Re-presentation (code 0): same amount, transaction code 18, within one month of the
original processing day, with five working days' notice to the payer recommended (the same guides;
Clear Direct Debit "Re-presenting unpaid Direct Debits", 2012; Movimo "Representation of Direct Debits").
"""

import calendar
import datetime
import enum
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, cast
from xml.etree.ElementTree import Element, ParseError, TreeBuilder
from xml.parsers import expat

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

# An ARUDD for a large collection run is a few megabytes (about 500 bytes an item); anything far larger is
# not a report and is refused before it is parsed.
MAX_REPORT_BYTES: Final = 32 * 1024 * 1024
MAX_REFERENCE_LENGTH: Final = 18  # Standard 18 field 10, the reference the payer's bank holds
# Standard 18 amounts are 11 digits of pence.
MAX_AMOUNT_PENCE: Final = 10**11 - 1
CURRENCY: Final = "GBP"

# Direct Debit transaction codes in Standard 18: 01 first collection, 17 regular collection,
# 18 re-presentation of an unpaid Direct Debit, 19 final collection.
DIRECT_DEBIT_TRANSACTION_CODES: Final = frozenset({"01", "17", "18", "19"})
TRANSACTION_REPRESENTATION: Final = "18"

_SERVICE_USER_NUMBER = re.compile(r"[0-9]{6}")
_SORT_CODE = re.compile(r"([0-9]{2})-?([0-9]{2})-?([0-9]{2})")
_ACCOUNT_NUMBER = re.compile(r"[0-9]{8}")
_AMOUNT = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,2})?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NOT_ALPHANUMERIC = re.compile(r"[^A-Z0-9]+")


class ReportKind(enum.StrEnum):
    ARUDD = "ARUDD"
    ADDACS = "ADDACS"


class Action(enum.StrEnum):
    """What the product does with one item, per the scheme's special instruction for its reason code."""

    # ARUDD 0 on a first presentation: collect the same amount again once, with transaction code 18, no
    # later than representation_deadline(); tell the payer five working days before.
    REPRESENT = "represent"
    # ARUDD 0 on an item that was itself a re-presentation (transaction code 18): the product re-presents
    # only once, so the amount is recovered another way; the instruction stays in force.
    RECOVER_OUTSIDE_DIRECT_DEBIT = "recover_outside_direct_debit"
    # The instruction is gone (cancelled, payer deceased, account closed or moved without new details,
    # no account, no instruction): stop collecting under it; a new instruction is needed to collect again.
    CANCEL_MANDATE = "cancel_mandate"
    # The payer disputes the advance notice, the amount or the date: collect nothing more under the
    # instruction until staff have resolved it with the payer (then correct and collect with a new notice).
    HOLD_UNTIL_RESOLVED = "hold_until_resolved"
    # Presented too late: give the payer a further advance notice before collecting again.
    NEW_ADVANCE_NOTICE = "new_advance_notice"
    # The paying bank's instruction names another service user: check the service user number the
    # collection was submitted under against the instruction before collecting again.
    CHECK_SERVICE_USER = "check_service_user"
    # The bank amended the instruction (new branch, or other details): apply the advice's new details and
    # keep collecting; send no 0C/0N pair.
    AMEND_MANDATE = "amend_mandate"
    # The account moved to a new bank with the new details quoted: update the mandate and lodge it at the
    # new account with 0N; send no 0C to the old bank.
    MOVE_MANDATE_TO_NEW_ACCOUNT = "move_mandate_to_new_account"
    # The bank reinstated a cancelled instruction: collect again under it if the reinstatement came within
    # two months of the cancellation (reinstatement_deadline()), otherwise a new instruction is needed.
    REINSTATE_MANDATE = "reinstate_mandate"


@dataclass(frozen=True)
class Rule:
    """One reason code: the scheme's name for it and the action its special instruction asks for."""

    reason: str
    action: Action


# ARUDD reason codes, with each one's special instruction from the Bacs tables cited in the module
# docstring, restated.
ARUDD_RULES: Final[dict[str, Rule]] = {
    # "Service user may represent up to one month from original processing day - it is recommended that the
    # payer is notified of this 5 working days in advance of the representation."
    "0": Rule("Refer to payer", Action.REPRESENT),
    # "Service user must liaise with payer to agree the payment method for collection of any outstanding
    # funds" (the instruction is cancelled; collecting again needs a new one).
    "1": Rule("Instruction cancelled", Action.CANCEL_MANDATE),
    # No instruction given: the instruction ends with the payer.
    "2": Rule("Payer deceased", Action.CANCEL_MANDATE),
    # "New DDI to be obtained from payer, collection must be suspended until new DDI set up and advance notice
    # issued" (an ADDACS 3 carrying the new details, if one came, moves the mandate instead).
    "3": Rule("Account transferred", Action.CANCEL_MANDATE),
    # "Service user should not collect further Direct Debits until it has resolved the dispute with the payer"
    "4": Rule("Advance notice disputed", Action.HOLD_UNTIL_RESOLVED),
    # "Account number is not recognised at the paying bank": "check DDI information and/or liaise with payer";
    # nothing can be collected from an account the bank does not know.
    "5": Rule("No account (or wrong account type)", Action.CANCEL_MANDATE),
    # "No instruction held with paying bank": "if appropriate obtain new instruction".
    "6": Rule("No instruction", Action.CANCEL_MANDATE),
    # "Payer states the amount of the Direct Debit differs from the amount in the advance notice": "should not
    # collect further Direct Debits until it has resolved the dispute with the payer".
    "7": Rule("Amount differs", Action.HOLD_UNTIL_RESOLVED),
    # "Payer states date of debiting is in advance of the due date specified in the advance notice": same
    # instruction as 7.
    "8": Rule("Amount not yet due", Action.HOLD_UNTIL_RESOLVED),
    # "Date of presentation is more than 3 working days after due date in advance notice, or re-presentation
    # more than one month from original processing day": "must give further advance notice to the payer
    # before Direct Debit is collected".
    "9": Rule("Presentation overdue", Action.NEW_ADVANCE_NOTICE),
    # "Identity of service user differs from DDI" (the tables give no special instruction).
    "A": Rule("Service user differs", Action.CHECK_SERVICE_USER),
    # "If the Direct Debit is to continue the service user must obtain a new DDI for a different/new account"
    "B": Rule("Account closed", Action.CANCEL_MANDATE),
}

# ADDACS reason codes, from the same tables.
ADDACS_RULES: Final[dict[str, Rule]] = {
    # "Paying bank has cancelled instruction": "Service user cannot collect via Direct Debit on this account."
    "0": Rule("Instruction cancelled - refer to payer", Action.CANCEL_MANDATE),
    # "Payer has instructed paying bank to cancel DDI": "liaise with the payer to agree the payment method".
    "1": Rule("Instruction cancelled by payer", Action.CANCEL_MANDATE),
    "2": Rule("Payer deceased", Action.CANCEL_MANDATE),
    # "If both old and new bank details are quoted you will need to amend your records accordingly. AUDDIS
    # service users only - a 0N must be sent to lodge the new instruction ... do not send a 0C to the old
    # bank. If only the old bank details are quoted ... you must obtain a new DDI from the payer. Collection
    # must be suspended until a new DDI set up." item_action() decides on the new details.
    "3": Rule("Account transferred to a new bank or building society", Action.MOVE_MANDATE_TO_NEW_ACCOUNT),
    # "If the Direct Debit is to continue the service user must obtain a new DDI for a different/new account"
    "B": Rule("Account closed", Action.CANCEL_MANDATE),
    # "New account details supplied": "apply change to data file and continue with Direct Debit collections.
    # A 0C/0N pair must not be sent."
    "C": Rule("Account transferred to a different branch", Action.AMEND_MANDATE),
    # "Service user should not collect further Direct Debits until it has resolved the dispute with the payer"
    "D": Rule("Advance notice disputed", Action.HOLD_UNTIL_RESOLVED),
    # "Service user should collect Direct Debits using new details. A 0C/0N pair must not be sent."
    "E": Rule("Instruction amended", Action.AMEND_MANDATE),
    # "Paying bank may re-instate a cancelled DDI up to two months from cancellation": "Service user may
    # resume direct debiting under the reinstated Instruction. However, a new DDI must be obtained and
    # lodged if re-instatement is identified after the two month period."
    "R": Rule("Instruction reinstated", Action.REINSTATE_MANDATE),
}

# Real ARUDD files carry a four-digit Bacs return code in returnCode and the reason's name in
# returnDescription. The reason is read from the name (the published names below, as the tables spell them,
# upper-cased, punctuation ignored); the two codes seen in published integrations are also known by number.
_ARUDD_NAMES: Final[dict[str, str]] = {
    "REFER TO PAYER": "0",
    "INSTRUCTION CANCELLED": "1",
    "PAYER DECEASED": "2",
    "ACCOUNT TRANSFERRED": "3",
    "ADVANCE NOTICE DISPUTED": "4",
    "NO ACCOUNT": "5",
    "NO ACCOUNT OR WRONG ACCOUNT TYPE": "5",
    "WRONG ACCOUNT TYPE": "5",
    "NO INSTRUCTION": "6",
    "AMOUNT DIFFERS": "7",
    "AMOUNT NOT YET DUE": "8",
    "PRESENTATION OVERDUE": "9",
    "SERVICE USER DIFFERS": "A",
    "ORIGINATOR DIFFERS": "A",
    "ACCOUNT CLOSED": "B",
}
_ARUDD_RETURN_CODES: Final[dict[str, str]] = {"0128": "0", "1012": "1"}


class BacsReportRejected(ValueError):
    """The file as a whole cannot be read as an ARUDD or ADDACS report; the message says why."""


@dataclass(frozen=True)
class LineError:
    """One item or field the report could not give: where (the XML line and the item), which field, why."""

    line: int | None
    where: str
    field: str
    message: str

    def __str__(self) -> str:
        at = f"line {self.line}, {self.where}" if self.line else self.where
        return f"{at}: {self.message}"


@dataclass(frozen=True)
class UnpaidDebit:
    """One ARUDD item: a Direct Debit the payer's bank returned unpaid."""

    position: int  # 1-based, in the order of the file
    reference: str
    reason_code: str  # 0-9, A or B (ARUDD_RULES)
    return_code: str  # as the file gives it (a reason code or a Bacs return code)
    return_description: str
    transaction_code: str
    amount_pence: int
    original_processing_date: datetime.date
    payer_reference: str | None = None
    payer_name: str | None = None
    payer_sort_code: str | None = None  # six digits
    payer_account_number: str | None = None
    line: int | None = field(default=None, compare=False)

    @property
    def kind(self) -> ReportKind:
        return ReportKind.ARUDD

    @property
    def rule(self) -> Rule:
        return ARUDD_RULES[self.reason_code]


@dataclass(frozen=True)
class InstructionAdvice:
    """One ADDACS item: the paying bank cancelled, amended or reinstated a Direct Debit Instruction."""

    position: int
    reference: str
    reason_code: str  # ADDACS_RULES
    effective_date: datetime.date
    payer_name: str | None = None
    payer_sort_code: str | None = None
    payer_account_number: str | None = None
    new_sort_code: str | None = None
    new_account_number: str | None = None
    aosn: str | None = None
    due_date: datetime.date | None = None
    line: int | None = field(default=None, compare=False)

    @property
    def kind(self) -> ReportKind:
        return ReportKind.ADDACS

    @property
    def rule(self) -> Rule:
        return ADDACS_RULES[self.reason_code]

    @property
    def has_new_account(self) -> bool:
        return self.new_sort_code is not None and self.new_account_number is not None


ReportItem = UnpaidDebit | InstructionAdvice


@dataclass(frozen=True)
class BacsReport:
    kind: ReportKind
    service_user_number: str
    report_date: datetime.date | None  # ARUDD: currentProcessingDate; ADDACS: report-generation-date
    advice_number: str
    items: tuple[ReportItem, ...]
    errors: tuple[LineError, ...] = ()

    @property
    def report_id(self) -> str:
        """Names the report for people and logs. Importing once is the caller's to enforce (on the file's
        hash and each item's reference and date), since a bank may number advices per day."""
        day = self.report_date.isoformat() if self.report_date else "undated"
        return f"{self.kind}/{self.service_user_number}/{day}/{self.advice_number or '-'}"


def item_action(item: ReportItem) -> Action:
    """The action the scheme's guidance gives for this item's reason code (ARUDD_RULES, ADDACS_RULES)."""
    if isinstance(item, UnpaidDebit):
        action = ARUDD_RULES[item.reason_code].action
        if action is Action.REPRESENT and item.transaction_code == TRANSACTION_REPRESENTATION:
            return Action.RECOVER_OUTSIDE_DIRECT_DEBIT
        return action
    action = ADDACS_RULES[item.reason_code].action
    if action is Action.MOVE_MANDATE_TO_NEW_ACCOUNT and not item.has_new_account:
        # Only the old details quoted: "obtain a new DDI from the payer. Collection must be suspended."
        return Action.CANCEL_MANDATE
    return action


def add_months(day: datetime.date, months: int) -> datetime.date:
    """The same day ``months`` calendar months later, or the last day of that month if it is shorter
    (31 January + 1 month = 28 or 29 February)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return datetime.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def representation_deadline(item: UnpaidDebit) -> datetime.date:
    """The last day a "refer to payer" item may be re-presented on: one month from its original processing
    day (after that the payer's bank returns it as code 9, presentation overdue)."""
    return add_months(item.original_processing_date, 1)


def reinstatement_deadline(cancelled_on: datetime.date) -> datetime.date:
    """The last day an ADDACS R reinstatement lets collections resume under the old instruction: two months
    from its cancellation; a reinstatement noticed later needs a new instruction."""
    return add_months(cancelled_on, 2)


# Parsing


def _attribute(element: Element, name: str) -> str:
    """The attribute's value without surrounding spaces (Bacs pads fields), or "" when it is absent."""
    return (element.get(name) or "").strip()


def _iso_date(value: str) -> datetime.date | None:
    if not _DATE.fullmatch(value):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:  # 2026-02-30
        return None


def _pence(value: str) -> int | None:
    """Pounds and pence ("65.00", "65.5", "65") as exact integer pence; None for anything else."""
    if not _AMOUNT.fullmatch(value):
        return None
    return int(Decimal(value) * 100)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: Element, name: str) -> Element | None:
    return next((child for child in element if _local(child.tag) == name), None)


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _read_xml(data: bytes) -> tuple[Element, dict[Element, int]]:
    """The document's root and each element's line, parsed by defusedxml with DTDs, entity declarations and
    external references all refused."""
    lines: dict[Element, int] = {}
    parser: Any = None

    def element_with_line(tag: str, attributes: dict[str, str]) -> Element:
        element = Element(tag, attributes)
        lines[element] = parser.parser.CurrentLineNumber
        return element

    parser = DefusedXMLParser(
        target=TreeBuilder(element_factory=element_with_line),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as refused:
        raise BacsReportRejected(
            "the file declares a DTD or entities, which Bacs reports never do; it is refused unread "
            f"(protection against entity expansion and external entities: {type(refused).__name__})"
        ) from None
    except ParseError as error:
        line, column = error.position
        reason = expat.ErrorString(error.code)
        raise BacsReportRejected(
            f"the file is not well-formed XML (line {line}, column {column + 1}): {reason}"
        ) from None
    return root, lines


def parse_report(data: bytes, *, expected: ReportKind | None = None) -> BacsReport:
    """Read an ARUDD or ADDACS file's bytes. Raises BacsReportRejected when the file as a whole cannot be
    read (or is not the ``expected`` kind); otherwise every item it can read is returned, and every one it
    cannot is a LineError naming the line, the item and the field."""
    if len(data) > MAX_REPORT_BYTES:
        raise BacsReportRejected(
            f"the file is {len(data):,} bytes; a Bacs report is at most {MAX_REPORT_BYTES:,} bytes"
        )
    if not data.strip():
        raise BacsReportRejected("the file is empty")
    root, lines = _read_xml(data)
    if _local(root.tag) != "BACSDocument":
        raise BacsReportRejected(
            f"the document is <{_local(root.tag)}>, not a Bacs report (<BACSDocument>); "
            "only ARUDD and ADDACS reports are accepted"
        )
    data_element = _child(root, "Data")
    arudd = _child(data_element, "ARUDD") if data_element is not None else None
    messaging = _child(data_element, "MessagingAdvices") if data_element is not None else None
    if arudd is None and messaging is None:
        found = ", ".join(_local(child.tag) for child in (data_element if data_element is not None else root))
        raise BacsReportRejected(
            "the file is not an ARUDD or ADDACS report: BACSDocument/Data holds "
            f"{found or 'nothing'} (expected ARUDD or MessagingAdvices)"
        )
    kind = ReportKind.ARUDD if arudd is not None else ReportKind.ADDACS
    if expected is not None and kind != expected:
        raise BacsReportRejected(f"the file is an {kind} report, not an {expected} report")
    if arudd is not None:
        return _Reader(lines).arudd(arudd)
    assert messaging is not None
    return _Reader(lines).addacs(messaging)


class _Reader:
    """Reads one report, collecting a LineError for each field that is missing or wrong."""

    def __init__(self, lines: dict[Element, int]):
        self.lines = lines
        self.errors: list[LineError] = []

    def error(self, element: Element, where: str, field_name: str, message: str) -> None:
        self.errors.append(LineError(self.lines.get(element), where, field_name, message))

    # Field readers: each returns the value, or None after recording why it could not.

    def required(self, element: Element, where: str, name: str) -> str | None:
        value = _attribute(element, name)
        if not value:
            self.error(element, where, name, f"{name} is missing")
            return None
        return value

    def reference(self, element: Element, where: str, name: str) -> str | None:
        value = self.required(element, where, name)
        if value is not None and len(value) > MAX_REFERENCE_LENGTH:
            self.error(
                element, where, name, f"{name} '{value}' is longer than {MAX_REFERENCE_LENGTH} characters"
            )
            return None
        return value

    def date(self, element: Element, where: str, name: str, value: str | None) -> datetime.date | None:
        """The date in ``value`` (the attribute ``name`` as read), or None: absent, or named as wrong."""
        if not value:
            return None
        day = _iso_date(value)
        if day is None:
            self.error(element, where, name, f"{name} '{value}' is not a date (YYYY-MM-DD)")
        return day

    def sort_code(self, element: Element, where: str, name: str) -> str | None:
        value = _attribute(element, name)
        if not value:
            return None
        match = _SORT_CODE.fullmatch(value)
        if match is None:
            self.error(element, where, name, f"{name} '{value}' is not a sort code (six digits)")
            return None
        return "".join(match.groups())

    def account_number(self, element: Element, where: str, name: str) -> str | None:
        value = _attribute(element, name)
        if not value:
            return None
        if not _ACCOUNT_NUMBER.fullmatch(value):
            self.error(element, where, name, f"{name} '{value}' is not an account number (eight digits)")
            return None
        return value

    def amount_pence(self, element: Element, where: str, name: str) -> int | None:
        value = self.required(element, where, name)
        if value is None:
            return None
        pence = _pence(value)
        if pence is None:
            self.error(element, where, name, f"{name} '{value}' is not an amount in pounds and pence")
        elif pence <= 0:
            self.error(element, where, name, f"{name} '{value}' is not an amount above zero")
            return None
        elif pence > MAX_AMOUNT_PENCE:
            self.error(
                element, where, name, f"{name} '{value}' is more than a Direct Debit carries (11 digits)"
            )
            return None
        return pence

    def service_user_number(self, element: Element | None, where: str, name: str) -> str:
        value = _attribute(element, name) if element is not None else ""
        if not _SERVICE_USER_NUMBER.fullmatch(value):
            shown = f"'{value}'" if value else "missing"
            raise BacsReportRejected(
                f"{where} {name} is {shown}: a report names the service user number (six digits) it is for"
            )
        return value

    # ARUDD

    def arudd(self, arudd: Element) -> BacsReport:
        header = _child(arudd, "Header")
        if header is None:
            raise BacsReportRejected("ARUDD has no Header, so no processing date")
        stated_date = _attribute(header, "currentProcessingDate")
        report_date = _iso_date(stated_date)
        if report_date is None:
            raise BacsReportRejected(
                f"ARUDD Header currentProcessingDate '{stated_date}' is not a "
                "date (YYYY-MM-DD): the report's processing day is needed"
            )
        sun = self.service_user_number(
            _child(arudd, "ServiceLicenseInformation"), "ARUDD ServiceLicenseInformation", "userNumber"
        )
        items: list[ReportItem] = []
        advice = _child(arudd, "Advice")
        records_parent = _child(advice, "OriginatingAccountRecords") if advice is not None else None
        records = _children(records_parent, "OriginatingAccountRecord") if records_parent is not None else []
        position = 0  # items are numbered across the whole report, as a reader counts them
        for record_number, record in enumerate(records, start=1):
            errors_before = len(self.errors)
            read: list[UnpaidDebit] = []
            for element in _children(record, "ReturnedDebitItem"):
                position += 1
                item = self.unpaid_debit(element, position)
                if item is not None:
                    read.append(item)
            items.extend(read)
            if len(self.errors) == errors_before:
                self.check_totals(record, record_number, read)
        return BacsReport(
            kind=ReportKind.ARUDD,
            service_user_number=sun,
            report_date=report_date,
            advice_number=_attribute(header, "adviceNumber"),
            items=tuple(items),
            errors=tuple(self.errors),
        )

    def unpaid_debit(self, element: Element, position: int) -> UnpaidDebit | None:
        reference = self.reference(element, f"item {position}", "ref")
        where = f"item {position}" + (f" (ref '{reference}')" if reference else "")
        errors_before = len(self.errors)
        transaction_code = self.required(element, where, "transCode")
        if transaction_code is not None and transaction_code not in DIRECT_DEBIT_TRANSACTION_CODES:
            self.error(
                element,
                where,
                "transCode",
                f"transCode '{transaction_code}' is not a Direct Debit transaction code (01, 17, 18, 19)",
            )
        reason_code = self.arudd_reason(element, where)
        amount = self.amount_pence(element, where, "valueOf")
        currency = _attribute(element, "currency") or CURRENCY
        if currency != CURRENCY:
            self.error(element, where, "currency", f"currency '{currency}' is not {CURRENCY}")
        processing_date = self.date(
            element, where, "originalProcessingDate", self.required(element, where, "originalProcessingDate")
        )
        payer = _child(element, "PayerAccount")
        payer_reference = payer_name = payer_sort_code = payer_account_number = None
        if payer is not None:
            payer_reference = _attribute(payer, "ref") or None
            payer_name = _attribute(payer, "name") or None
            payer_sort_code = self.sort_code(payer, where, "sortCode")
            payer_account_number = self.account_number(payer, where, "number")
        if len(self.errors) > errors_before or reference is None:
            return None
        # Each field that came back None recorded an error, so here every one has its value.
        return UnpaidDebit(
            position=position,
            reference=reference,
            reason_code=cast(str, reason_code),
            return_code=_attribute(element, "returnCode"),
            return_description=_attribute(element, "returnDescription"),
            transaction_code=cast(str, transaction_code),
            amount_pence=cast(int, amount),
            original_processing_date=cast(datetime.date, processing_date),
            payer_reference=payer_reference,
            payer_name=payer_name,
            payer_sort_code=payer_sort_code,
            payer_account_number=payer_account_number,
            line=self.lines.get(element),
        )

    def arudd_reason(self, element: Element, where: str) -> str | None:
        """The reason code from returnCode (a reason code, or a known Bacs return code) and from the
        returnDescription's name; they must agree when both say one."""
        return_code = _attribute(element, "returnCode").upper()
        description = _attribute(element, "returnDescription")
        by_code = return_code if return_code in ARUDD_RULES else _ARUDD_RETURN_CODES.get(return_code)
        by_name = _ARUDD_NAMES.get(_NOT_ALPHANUMERIC.sub(" ", description.upper()).strip())
        if by_code is not None and by_name is not None and by_code != by_name:
            self.error(
                element,
                where,
                "returnDescription",
                f"returnCode '{return_code}' is reason {by_code} ({ARUDD_RULES[by_code].reason}) but "
                f"returnDescription '{description}' is reason {by_name} ({ARUDD_RULES[by_name].reason})",
            )
            return None
        reason = by_code or by_name
        if reason is None:
            if not return_code and not description:
                self.error(element, where, "returnCode", "returnCode is missing")
            else:
                self.error(
                    element,
                    where,
                    "returnCode",
                    f"returnCode '{return_code}' (returnDescription '{description}') is not an ARUDD reason "
                    "(0-9, A, B, or a Bacs return code whose description names one)",
                )
        return reason

    def check_totals(self, record: Element, record_number: int, items: list[UnpaidDebit]) -> None:
        """The record's Totals against its items, so a cut or altered file shows (only when every item
        read, since a bad item already accounts for a difference)."""
        totals = _child(record, "Totals")
        if totals is None:
            return
        where = f"OriginatingAccountRecord {record_number} Totals"
        count = _attribute(totals, "numberOf")
        if count and count != str(len(items)):
            self.error(
                totals, where, "numberOf", f"numberOf is {count} but the record has {len(items)} items"
            )
        stated = _attribute(totals, "valueOf")
        if stated:
            total = _pence(stated)
            actual = sum(item.amount_pence for item in items)
            if total is None:
                self.error(
                    totals, where, "valueOf", f"valueOf '{stated}' is not an amount in pounds and pence"
                )
            elif total != actual:
                self.error(
                    totals,
                    where,
                    "valueOf",
                    f"valueOf is {Decimal(total) / 100:.2f} but the items add up to "
                    f"{Decimal(actual) / 100:.2f}",
                )

    # ADDACS

    def addacs(self, messaging: Element) -> BacsReport:
        advices = _children(messaging, "MessagingAdvice")
        if advices and not any(_attribute(advice, "record-type") == "A" for advice in advices):
            types = sorted({_attribute(advice, "record-type") or "none" for advice in advices})
            raise BacsReportRejected(
                "the file is a Bacs messaging report but not an ADDACS report: its advices have record-type "
                f"{', '.join(types)} (ADDACS advices are record-type A; AUDDIS reports use others)"
            )
        header = _child(messaging, "MessagingHeader")
        sun = self.service_user_number(header, "ADDACS MessagingHeader", "user-number")
        assert header is not None  # service_user_number refused a missing header
        report_date = self.date(
            header,
            "ADDACS MessagingHeader",
            "report-generation-date",
            _attribute(header, "report-generation-date"),
        )
        items: list[ReportItem] = []
        for position, element in enumerate(advices, start=1):
            advice = self.instruction_advice(element, position, sun)
            if advice is not None:
                items.append(advice)
        return BacsReport(
            kind=ReportKind.ADDACS,
            service_user_number=sun,
            report_date=report_date,
            advice_number=_attribute(header, "advice-number"),
            items=tuple(items),
            errors=tuple(self.errors),
        )

    def instruction_advice(self, element: Element, position: int, sun: str) -> InstructionAdvice | None:
        reference = self.reference(element, f"advice {position}", "reference")
        where = f"advice {position}" + (f" (reference '{reference}')" if reference else "")
        errors_before = len(self.errors)
        record_type = self.required(element, where, "record-type")
        if record_type is not None and record_type != "A":
            self.error(
                element, where, "record-type", f"record-type '{record_type}' is not an ADDACS advice (A)"
            )
        user_number = _attribute(element, "user-number")
        if user_number and user_number != sun:
            self.error(
                element, where, "user-number", f"user-number '{user_number}' is not the report's ({sun})"
            )
        reason_code = self.required(element, where, "reason-code")
        if reason_code is not None:
            reason_code = reason_code.upper()
            if reason_code not in ADDACS_RULES:
                self.error(
                    element,
                    where,
                    "reason-code",
                    f"reason-code '{reason_code}' is not an ADDACS reason ({', '.join(ADDACS_RULES)})",
                )
        effective_date = self.date(
            element, where, "effective-date", self.required(element, where, "effective-date")
        )
        due_date = self.date(element, where, "due-date", _attribute(element, "due-date"))
        payer_sort_code = self.sort_code(element, where, "payer-sort-code")
        payer_account_number = self.account_number(element, where, "payer-account-number")
        new_sort_code = self.sort_code(element, where, "payer-new-sort-code")
        new_account_number = self.account_number(element, where, "payer-new-account-number")
        quoted = [
            bool(_attribute(element, name)) for name in ("payer-new-sort-code", "payer-new-account-number")
        ]
        if any(quoted) and not all(quoted):
            self.error(
                element,
                where,
                "payer-new-account-number",
                "payer-new-sort-code and payer-new-account-number come together (one is missing)",
            )
        elif reason_code == "C" and not any(quoted):
            self.error(
                element,
                where,
                "payer-new-sort-code",
                "reason-code 'C' (account transferred to a different branch) needs payer-new-sort-code and "
                "payer-new-account-number",
            )
        if len(self.errors) > errors_before or reference is None:
            return None
        return InstructionAdvice(
            position=position,
            reference=reference,
            reason_code=cast(str, reason_code),
            effective_date=cast(datetime.date, effective_date),
            payer_name=_attribute(element, "payer-name") or None,
            payer_sort_code=payer_sort_code,
            payer_account_number=payer_account_number,
            new_sort_code=new_sort_code,
            new_account_number=new_account_number,
            aosn=_attribute(element, "aosn") or None,
            due_date=due_date,
            line=self.lines.get(element),
        )
