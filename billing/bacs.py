"""Bacs Standard 18: the file's layout, its character set, amounts in pence and the three-day cycle, as
pure functions of their arguments (no database, no clock), so each rule is tested on its own.

``standard18`` writes one file from the collections ``billing.bacs_collections.build_standard18`` chose
from a finalised bill run; the caller (``services.direct_debit.direct_debit_export``) records the
submission. One file holds one partner's collections for one processing day, paid into the partner's own
account (the contra), submitted under the partner's service user number (SUN) as a direct submitter.

The layout is the published Bacs Standard 18 format for a single processing day (Bacs Payment Schemes
Ltd, "Bacs Standard 18" file format, as restated field by field in the banks' submitter guides, e.g.
HSBC "Message Implementation Guide: BACS Standard 18" (August 2012) and Bank of Ireland "BACS File
Specification", appendix 2): the labels VOL1, HDR1, HDR2, UHL1, EOF1, EOF2 and UTL1 are 80 characters;
the detail (standard) and contra records are 100 characters. HDR2 declares the 100 of the data records
(record length 00100); a multi-processing-day file (work code "1 MULTI") would add the processing day
at 101-106, which this single-day file ("1 DAILY") does not use. Labels are therefore not padded.

Submissions of several files
A submission (one VOL1) may hold several files, each HDR1 HDR2 UHL1, its data records, EOF1 EOF2 UTL1, with
its own processing day in UHL1. ``standard18_submission`` writes them in this order:
- An AUDDIS file first, when there are Direct Debit Instructions to lodge (transaction code 0N) or cancel
  (0C): one record each, laid out as a detail record with the amount 0 (Bacs rejects a DDI whose amount
  is not zero: AUDDIS reason 7, "DDI amount not zero"), and no contra. Instructions travel in a file of
  their own, never mixed with collections (Bacs, AUDDIS service definition; bureaus' guides, e.g.
  FinDock "Bacs Direct Debit Instruction": a Standard 18 file of DDIs alone). Its UTL1 has value totals
  and item counts of zero and the count of DDI records at 45-51.
- Then one collection file per processing day: collections whose advance notices gave different debit
  dates are debited on those dates, each file on the processing day before its date.
The n-th file's HDR1/EOF1 file sequence number (32-35) is n and its UHL1 file number (38-40) is n. A
submission of one collection file is byte for byte the single file described below.
The position of the DDI count (45-51 of UTL1) follows the AUDDIS file description in the sponsoring
banks' Standard 18 guides; it is the one field here not restated in the HSBC and Bank of Ireland tables
above, so check it against the sponsoring bank's guide before the first live AUDDIS submission.

Choices
- Records are joined by CRLF ("\\r\\n"), with no terminator after the last: Bacstel-IP software and the
  banks' bureau tools read CRLF text, and ``content.split("\\r\\n")`` gives back exactly the records.
- Every collection uses transaction code 17, except a re-presentation of a Direct Debit returned "refer to
  payer", which uses 18 (``TRANSACTION_REPRESENTATION``). Codes 01 (first) and 19 (final) are optional in
  the scheme, and choosing them would need a collection history this module does not keep.
- Amounts are integer pence, converted exactly from the Decimal money (never through float). The amount
  collected is the invoice's gross less the gross of its credit notes: what the customer still owes.
- Text fields hold only the Bacs character set (A-Z 0-9 . & / - space). Account names are upper-cased,
  accents dropped (É -> E), apostrophes removed (O'Brien -> OBRIEN), anything else turned into a space,
  then cut to 18. A mandate reference is upper-cased but never otherwise changed: it must match the
  reference the payer's bank holds, so one Bacs cannot carry is skipped rather than mangled.
- The processing day comes from ``processing_day`` (the three-day cycle, below); ``standard18`` refuses
  one that is not a Bacs working day after the day the file is made.

Records (1-based positions; ``bYYDDD`` is a space, 2-digit year and 3-digit day of the year)

Labels, 80 characters each
VOL1  1-4 "VOL1" | 5-10 submission serial | 11 accessibility " " | 12-41 blank | 42-47 owner (SUN)
      | 48-79 blank | 80 label standard "1"
HDR1  1-4 "HDR1" | 5-21 file identifier "A" + SUN + "S" + 2 blanks + "1" + SUN | 22-27 set id (serial)
      | 28-31 file section "0001" | 32-35 file sequence "0001" | 36-41 generation (blank)
      | 42-47 creation date bYYDDD | 48-53 expiration date bYYDDD (= creation) | 54 accessibility " "
      | 55-60 block count "000000" | 61-73 system code (blank) | 74-80 blank
HDR2  1-4 "HDR2" | 5 record format "F" | 6-10 block length "02000" | 11-15 record length "00100"
      | 16-50 blank | 51-52 buffer offset "00" | 53-80 blank
UHL1  1-4 "UHL1" | 5-10 processing day bYYDDD | 11-20 receiving party "999999" + 4 blanks
      | 21-22 currency "00" (sterling) | 23-28 country "000000" | 29-37 work code "1 DAILY  " (single
      processing day) | 38-40 file number "001" | 41-80 blank
Data records, 100 characters each
Detail (one a collection)
      1-6 payer's sort code | 7-14 payer's account number | 15 account type "0" | 16-17 transaction code
      "17" | 18-23 originator's sort code | 24-31 originator's account number | 32-35 blank
      | 36-46 amount in pence, 11 digits zero-filled | 47-64 originator's name | 65-82 mandate reference
      | 83-100 payer's account name
Contra 1-6 originator's sort code | 7-14 originator's account number | 15 "0" | 16-17 "99" (credit)
      | 18-23 originator's sort code | 24-31 originator's account number | 32-35 blank | 36-46 total of
      the collections | 47-64 narrative "DD <MON YYYY>" | 65-82 "CONTRA" | 83-100 originator's name
Labels, 80 characters each
EOF1  as HDR1 with "EOF1"
EOF2  as HDR2 with "EOF2"
UTL1  1-4 "UTL1" | 5-17 debit total in pence (13 digits) | 18-30 credit total (13) | 31-37 count of debit
      records (7) | 38-44 count of credit records (7) | 45-51 count of DDI records (7; AUDDIS file only,
      blank in a collection file) | 52-80 blank
AUDDIS record (one a Direct Debit Instruction), 100 characters
      as the detail record, with transaction code "0N" (new) or "0C" (cancel) at 16-17 and amount
      "00000000000" at 36-46
"""

import datetime
import re
import unicodedata
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal

from fusion_site.working_days import is_working_day, next_working_day, working_days_after

RECORD_LENGTH = 100  # detail and contra records
LABEL_LENGTH = 80  # VOL1, HDR1, HDR2, UHL1, EOF1, EOF2, UTL1
LINE_SEPARATOR = "\r\n"

TRANSACTION_DIRECT_DEBIT = "17"
# A Direct Debit returned "refer to payer" (ARUDD 0) collected again: "re-present ... using transaction
# code 18" (Bacs ARUDD reason tables, as cited in billing.bacs_reports).
TRANSACTION_REPRESENTATION = "18"
TRANSACTION_CONTRA_CREDIT = "99"
# AUDDIS: a Direct Debit Instruction lodged with (0N) or cancelled at (0C) the payer's bank.
TRANSACTION_NEW_INSTRUCTION = "0N"
TRANSACTION_CANCEL_INSTRUCTION = "0C"
INSTRUCTION_CODES = frozenset({TRANSACTION_NEW_INSTRUCTION, TRANSACTION_CANCEL_INSTRUCTION})
COUNT_DIGITS = 7
ACCOUNT_TYPE = "0"
AMOUNT_DIGITS = 11
TOTAL_DIGITS = 13
NAME_WIDTH = 18
REFERENCE_WIDTH = 18
# Bacs rejects a Direct Debit reference with fewer than 6 letters or digits.
REFERENCE_MIN_ALPHANUMERIC = 6

BACS_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.&/- ")
# Upper-case letters that Unicode decomposition does not reduce to A-Z.
_LETTER_FALLBACKS = str.maketrans({"Ø": "O", "Ł": "L", "Đ": "D", "Æ": "AE", "Œ": "OE", "Þ": "TH"})
# Joined rather than spaced, as banks print O'Brien: OBRIEN.
_APOSTROPHES = frozenset("'`\u2018\u2019")
_DIGITS = re.compile(r"[0-9]+")
_SERIAL = re.compile(r"[A-Z0-9]{6}")

SKIP_ERASED = "customer erased"
SKIP_NOTHING_DUE = "nothing to collect (gross is zero or negative)"
SKIP_CREDITED = "nothing left to collect after credit notes"
SKIP_RESTRICTED = "processing restricted"
SKIP_BILLING_CEASED = "billing ceased (objection)"
SKIP_NO_MANDATE = "no Direct Debit mandate"
SKIP_BANK_DETAILS = "bank details are not a 6-digit sort code and an 8-digit account number"
SKIP_REFERENCE = "mandate reference is not a Bacs reference (6 to 18 of A-Z 0-9 . & / - space)"
SKIP_ACCOUNT_NAME = "account holder name has no characters Bacs accepts"
# Only an active mandate is collected from (accounts.mandates: the lifecycle and its scheme rules).
SKIP_MANDATE = {
    "new": "mandate not lodged yet (its AUDDIS 0N goes in the submission first)",
    "lodged": "mandate lodged but not active yet (the scheme's lodgement period)",
    "cancelled": "mandate cancelled",
    "expired": "mandate expired (nothing collected for 13 months)",
}
SKIP_NO_NOTICE_ADDRESS = "no email address to send the advance notice to"
SKIP_COLLECTED_ELSEWHERE = "collected already by another submission (as an earlier invoice)"
# ARUDD 4, 7, 8 and ADDACS D: "should not collect further Direct Debits until it has resolved the dispute
# with the payer" (accounts.mandates.mandate_hold); + the hold's reason.
SKIP_HELD = "Direct Debit held until the payer's dispute is resolved: "
SKIP_INSTRUCTION = "mandate cannot be lodged: "  # + the payer problem


@dataclass(frozen=True)
class Collection:
    """One Direct Debit in the file."""

    customer_reference: str
    amount_pence: int
    mandate_reference: str
    invoice_number: str
    transaction_code: str = TRANSACTION_DIRECT_DEBIT


@dataclass(frozen=True)
class Instruction:
    """One AUDDIS record: a Direct Debit Instruction lodged (0N) or cancelled (0C)."""

    customer_reference: str
    transaction_code: str
    mandate_reference: str


@dataclass(frozen=True)
class Standard18File:
    """The submission's text, its records, what it collects, the instructions it lodges or cancels, the
    processing day of each of its files, and (customer reference, reason) for each invoice it leaves out."""

    content: str
    records: list[str]
    collections: list[Collection] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    instructions: list[Instruction] = field(default_factory=list)
    processing_dates: list[datetime.date] = field(default_factory=list)

    @property
    def total_pence(self) -> int:
        return sum(collection.amount_pence for collection in self.collections)


@dataclass(frozen=True)
class Originator:
    """The partner as Bacs knows it: service user number, the account the contra credits, its name."""

    service_user_number: str
    sort_code: str
    account_number: str
    name: str


@dataclass(frozen=True)
class Payer:
    """The account a collection debits, as the mandate holds it."""

    sort_code: str
    account_number: str
    account_holder: str


@dataclass(frozen=True)
class Batch:
    """One file of a submission: its processing day and either collections or AUDDIS instructions."""

    processing_date: datetime.date
    debits: list[tuple[Collection, Payer]] = field(default_factory=list)
    instructions: list[tuple[Instruction, Payer]] = field(default_factory=list)


def bacs_text(value: str) -> str:
    """Upper-case text in the Bacs character set, runs of spaces collapsed: "Zoë O'Brien, Ltd" ->
    "ZOE OBRIEN LTD"."""
    decomposed = unicodedata.normalize("NFKD", value.upper().translate(_LETTER_FALLBACKS))
    kept = []
    for char in decomposed:
        if unicodedata.combining(char) or char in _APOSTROPHES:
            continue
        kept.append(char if char in BACS_CHARACTERS else " ")
    return " ".join("".join(kept).split())


def bacs_day(day: datetime.date) -> str:
    """``bYYDDD``: the date form of the Bacs labels."""
    return f" {day:%y}{day.timetuple().tm_yday:03d}"


def to_pence(amount: Decimal) -> int:
    """Exact integer pence; a fraction of a penny is an error, never rounded away."""
    pence = amount * 100
    if pence != pence.to_integral_value():
        raise ValueError(f"£{amount} is not a whole number of pence.")
    return int(pence)


# The Bacs three-day processing cycle (Bacs Payment Schemes Ltd, "The three-day processing cycle";
# Bacstel-IP service user guide): day 1, the input day, is the working day the file reaches Bacs, by
# 22:30 UK time (later, or on a day Bacs does not work, counts as the next working day); day 2 is the
# processing day, the date in UHL1; day 3 is the entry day, when the payer's account is debited and the
# originator's credited. The days are Bacs working days: Monday to Friday except the bank holidays of
# England and Wales (Bacs processing calendar), which fusion_site.working_days holds.
BACS_TIME_ZONE = zoneinfo.ZoneInfo("Europe/London")
INPUT_CUT_OFF = datetime.time(22, 30)


def working_day_after(day: datetime.date) -> datetime.date:
    """The first Bacs working day strictly after ``day``."""
    return next_working_day(day + datetime.timedelta(days=1))


def working_day_before(day: datetime.date) -> datetime.date:
    """The last Bacs working day strictly before ``day``."""
    day -= datetime.timedelta(days=1)
    while not is_working_day(day):
        day -= datetime.timedelta(days=1)
    return day


def input_day(made_at: datetime.datetime) -> datetime.date:
    """Day 1 of the cycle for a file made (and submitted) at ``made_at``."""
    local = made_at.astimezone(BACS_TIME_ZONE)
    day = local.date()
    if is_working_day(day) and local.time() < INPUT_CUT_OFF:
        return day
    return working_day_after(day)


def processing_day(*, made_at: datetime.datetime, promised: datetime.date) -> datetime.date:
    """The earliest processing day (UHL1) for a file made at ``made_at`` whose entry day is not before
    ``promised``, the collection date in the payers' advance notice.

    Never before the working day after the input day: a date Bacs has passed would be rejected or, worse,
    moved by the submitting software to a day nobody was told of. Never so early that a payer is debited
    before the notice said: the latest acceptable entry day is the first working day on or after
    ``promised``, so the processing day is at least the working day before that."""
    earliest = working_day_after(input_day(made_at))
    by_notice = working_day_before(next_working_day(promised))
    return max(earliest, by_notice)


def entry_day(processing_date: datetime.date) -> datetime.date:
    """Day 3 of the cycle: the day the payer is debited for a file processed on ``processing_date``."""
    return working_day_after(processing_date)


def earliest_entry_day(made_at: datetime.datetime) -> datetime.date:
    """The first day a file made at ``made_at`` can debit a payer."""
    return entry_day(working_day_after(input_day(made_at)))


# Advance notice (the Direct Debit Guarantee: "... notify you 10 working days in advance of your account
# being debited or as otherwise agreed"; Bacs, "The Service User's Guide and Rules to the Direct Debit
# Scheme", section 4, Advance notice): before the first collection and before any change of amount or
# date, the payer is told the amount and the debit date at least 10 working days ahead. Working days are
# Bacs's (fusion_site.working_days); the day the notice is sent is not one of the ten.
ADVANCE_NOTICE_WORKING_DAYS = 10


def earliest_debit_after_notice(sent_on: datetime.date) -> datetime.date:
    """The first debit date a notice sent on ``sent_on`` allows: its 10th working day after."""
    return working_days_after(sent_on, ADVANCE_NOTICE_WORKING_DAYS)


def notified_debit_date(
    *, sent_on: datetime.date, promised: datetime.date, made_at: datetime.datetime | None = None
) -> datetime.date:
    """The debit date to put in a notice sent on ``sent_on``: the run's promise (``promised``), but never
    earlier than the notice period allows nor than a file made at ``made_at`` can be debited; always a
    working day, so a file processed the working day before debits exactly on it."""
    day = max(promised, earliest_debit_after_notice(sent_on))
    if made_at is not None:
        day = max(day, earliest_entry_day(made_at))
    return next_working_day(day)


def originator(
    *, owner: str, service_user_number: str, sort_code: str, account_number: str, account_name: str
) -> Originator:
    """The originator details of ``owner``'s billing profile, checked: each present, numbers of their
    length; the name in the Bacs character set, cut to 18."""
    name = bacs_text(account_name)[:NAME_WIDTH].rstrip()
    wanted = {
        "service user number": service_user_number.strip(),
        "sort code": sort_code.strip(),
        "account number": account_number.strip(),
        "account name": name,
    }
    missing = [label for label, value in wanted.items() if not value]
    if missing:
        raise ValueError(
            f"The billing profile of {owner} lacks Bacs originator details: {', '.join(missing)}."
        )
    shapes = {"service user number": 6, "sort code": 6, "account number": 8}
    wrong = [
        f"{label} must be {digits} digits"
        for label, digits in shapes.items()
        if not is_digits(wanted[label], digits)
    ]
    if wrong:
        raise ValueError(f"The Bacs details in the billing profile of {owner} are wrong: {'; '.join(wrong)}.")
    return Originator(
        service_user_number=wanted["service user number"],
        sort_code=wanted["sort code"],
        account_number=wanted["account number"],
        name=name,
    )


def payer_problem(payer: Payer, mandate_reference: str) -> str | None:
    """Why a mandate cannot be collected from as it stands (the SKIP_ reason), or None when it can."""
    if not (is_digits(payer.sort_code, 6) and is_digits(payer.account_number, 8)):
        return SKIP_BANK_DETAILS
    if not is_bacs_reference(mandate_reference):
        return SKIP_REFERENCE
    if not bacs_text(payer.account_holder):
        return SKIP_ACCOUNT_NAME
    return None


def is_digits(value: str, length: int) -> bool:
    return len(value) == length and _DIGITS.fullmatch(value) is not None


def is_bacs_reference(reference: str) -> bool:
    alphanumerics = [char for char in reference if char.isalnum()]
    return (
        len(reference) <= REFERENCE_WIDTH
        and set(reference) <= BACS_CHARACTERS
        and len(alphanumerics) >= REFERENCE_MIN_ALPHANUMERIC
        # Bacs also rejects a reference that is one character repeated (AAAAAA).
        and len(set(alphanumerics)) > 1
    )


def standard18(
    *,
    debits: list[tuple[Collection, Payer]],
    originator: Originator,
    processing_date: datetime.date,
    creation_date: datetime.date,
    serial: str,
    period_start: datetime.date,
    skipped: list[tuple[str, str]] | None = None,
    instructions: list[tuple[Instruction, Payer]] | None = None,
) -> Standard18File:
    """The submission collecting ``debits`` for ``originator`` on one processing day, after an AUDDIS file
    of ``instructions`` (processed the same day) when there are any: ``serial`` is the submission serial
    number (6 of A-Z 0-9, unique for the SUN that day); ``creation_date`` dates HDR1 and EOF1;
    ``period_start`` names the month in the contra's narrative. ``skipped`` is carried through for the
    caller's report."""
    batches = [Batch(processing_date, instructions=instructions)] if instructions else []
    if debits or not batches:
        batches.append(Batch(processing_date, debits=debits))
    return standard18_submission(
        batches=batches,
        originator=originator,
        creation_date=creation_date,
        serial=serial,
        period_start=period_start,
        skipped=skipped,
    )


def standard18_submission(
    *,
    batches: list[Batch],
    originator: Originator,
    creation_date: datetime.date,
    serial: str,
    period_start: datetime.date,
    skipped: list[tuple[str, str]] | None = None,
) -> Standard18File:
    """One submission of the files ``batches`` describe, in that order (see "Submissions of several
    files" above). With nothing at all to send it is one collection file with labels only (no contra,
    trailer 0 and 0), which is not for submission; ``collections`` and ``instructions`` tell the caller."""
    if not _SERIAL.fullmatch(serial) or serial == "000000":
        raise ValueError("The submission serial must be 6 of A-Z and 0-9, and not all zeros.")
    if not batches:
        raise ValueError("A submission holds at least one file.")
    records = [_vol1(serial, originator)]
    collections: list[Collection] = []
    instructions: list[Instruction] = []
    for sequence, batch in enumerate(batches, start=1):
        if batch.debits and batch.instructions:
            raise ValueError("AUDDIS instructions go in a file of their own, never with collections.")
        _check_processing_day(batch.processing_date, creation_date)
        if batch.instructions:
            records += _auddis_file(batch, sequence, serial, originator, creation_date)
            instructions += [instruction for instruction, _payer in batch.instructions]
        else:
            records += _collection_file(batch, sequence, serial, originator, creation_date, period_start)
            collections += [collection for collection, _payer in batch.debits]
    return Standard18File(
        content=LINE_SEPARATOR.join(records),
        records=records,
        collections=collections,
        skipped=skipped or [],
        instructions=instructions,
        processing_dates=[batch.processing_date for batch in batches],
    )


def _check_processing_day(processing_date: datetime.date, creation_date: datetime.date) -> None:
    if not is_working_day(processing_date) or processing_date <= creation_date:
        raise ValueError(
            f"The processing day {processing_date:%d %B %Y} is not a Bacs working day after the day the file "
            f"is made ({creation_date:%d %B %Y})."
        )


def _collection_file(
    batch: Batch,
    sequence: int,
    serial: str,
    originator: Originator,
    creation_date: datetime.date,
    period_start: datetime.date,
) -> list[str]:
    total = sum(collection.amount_pence for collection, _payer in batch.debits)
    if total >= 10**AMOUNT_DIGITS:
        raise ValueError("The collections total more than one contra record can carry; split the file.")
    details = [_detail(collection, payer, originator) for collection, payer in batch.debits]
    # With nothing collected there is nothing to credit: no contra, and the trailer says 0 and 0.
    contras = [_contra(total, originator, period_start)] if details else []
    trailer = _utl1(
        debit_total=total, credit_total=total if contras else 0, debits=len(details), credits=len(contras)
    )
    return _file(
        sequence, serial, originator, creation_date, batch.processing_date, [*details, *contras], trailer
    )


def _auddis_file(
    batch: Batch, sequence: int, serial: str, originator: Originator, creation_date: datetime.date
) -> list[str]:
    data = [_instruction(instruction, payer, originator) for instruction, payer in batch.instructions]
    trailer = _utl1(debit_total=0, credit_total=0, debits=0, credits=0, instructions=len(data))
    return _file(sequence, serial, originator, creation_date, batch.processing_date, data, trailer)


def _file(
    sequence: int,
    serial: str,
    originator: Originator,
    creation_date: datetime.date,
    processing_date: datetime.date,
    data: list[str],
    trailer: str,
) -> list[str]:
    return [
        _hdr1("HDR", serial, originator, creation_date, sequence),
        _hdr2("HDR"),
        _uhl1(processing_date, sequence),
        *data,
        _hdr1("EOF", serial, originator, creation_date, sequence),
        _hdr2("EOF"),
        trailer,
    ]


# Records ----------------------------------------------------------------------------------------


def _text(value: str, width: int) -> str:
    if len(value) > width:
        raise ValueError(f"{value!r} does not fit a field of {width} characters.")
    return value.ljust(width)


def _number(value: int, width: int) -> str:
    if not 0 <= value < 10**width:
        raise ValueError(f"{value} does not fit a field of {width} digits.")
    return str(value).zfill(width)


def _blank(width: int) -> str:
    return " " * width


def _name(value: str) -> str:
    return _text(bacs_text(value)[:NAME_WIDTH].rstrip(), NAME_WIDTH)


def _record(*fields: str, length: int = RECORD_LENGTH) -> str:
    record = "".join(fields)
    # A field put in the wrong place shifts every later one: fail here rather than at Bacs.
    if len(record) != length:
        raise AssertionError(f"Record {record[:4]!r} is {len(record)} characters, not {length}.")
    return record


def _vol1(serial: str, originator: Originator) -> str:
    return _record(
        "VOL1",
        serial,
        _blank(1),
        _blank(30),
        originator.service_user_number,
        _blank(32),
        "1",
        length=LABEL_LENGTH,
    )


def _hdr1(kind: str, serial: str, originator: Originator, created: datetime.date, sequence: int = 1) -> str:
    sun = originator.service_user_number
    return _record(
        f"{kind}1",
        f"A{sun}S  1{sun}",
        serial,
        "0001",
        _number(sequence, 4),
        _blank(6),
        bacs_day(created),
        bacs_day(created),
        _blank(1),
        "000000",
        _blank(13),
        _blank(7),
        length=LABEL_LENGTH,
    )


def _hdr2(kind: str) -> str:
    return _record(
        f"{kind}2",
        "F",
        "02000",
        _number(RECORD_LENGTH, 5),
        _blank(35),
        "00",
        _blank(28),
        length=LABEL_LENGTH,
    )


def _uhl1(processing_date: datetime.date, sequence: int = 1) -> str:
    return _record(
        "UHL1",
        bacs_day(processing_date),
        _text("999999", 10),
        "00",
        "000000",
        _text("1 DAILY", 9),
        _number(sequence, 3),
        _blank(40),
        length=LABEL_LENGTH,
    )


def _detail(collection: Collection, payer: Payer, originator: Originator) -> str:
    return _record(
        payer.sort_code,
        payer.account_number,
        ACCOUNT_TYPE,
        collection.transaction_code,
        originator.sort_code,
        originator.account_number,
        _blank(4),
        _number(collection.amount_pence, AMOUNT_DIGITS),
        _text(originator.name, NAME_WIDTH),
        _text(collection.mandate_reference, REFERENCE_WIDTH),
        _name(payer.account_holder),
    )


def _instruction(instruction: Instruction, payer: Payer, originator: Originator) -> str:
    if instruction.transaction_code not in INSTRUCTION_CODES:
        raise ValueError(f"{instruction.transaction_code!r} is not an AUDDIS transaction code (0N, 0C).")
    return _record(
        payer.sort_code,
        payer.account_number,
        ACCOUNT_TYPE,
        instruction.transaction_code,
        originator.sort_code,
        originator.account_number,
        _blank(4),
        _number(0, AMOUNT_DIGITS),
        _text(originator.name, NAME_WIDTH),
        _text(instruction.mandate_reference, REFERENCE_WIDTH),
        _name(payer.account_holder),
    )


def _contra(total: int, originator: Originator, period_start: datetime.date) -> str:
    return _record(
        originator.sort_code,
        originator.account_number,
        ACCOUNT_TYPE,
        TRANSACTION_CONTRA_CREDIT,
        originator.sort_code,
        originator.account_number,
        _blank(4),
        _number(total, AMOUNT_DIGITS),
        _name(f"DD {period_start:%b %Y}"),
        _text("CONTRA", REFERENCE_WIDTH),
        _text(originator.name, NAME_WIDTH),
    )


def _utl1(
    *, debit_total: int, credit_total: int, debits: int, credits: int, instructions: int | None = None
) -> str:
    return _record(
        "UTL1",
        _number(debit_total, TOTAL_DIGITS),
        _number(credit_total, TOTAL_DIGITS),
        _number(debits, COUNT_DIGITS),
        _number(credits, COUNT_DIGITS),
        _blank(COUNT_DIGITS) if instructions is None else _number(instructions, COUNT_DIGITS),
        _blank(29),
        length=LABEL_LENGTH,
    )
