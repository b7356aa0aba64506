"""The data portability file: everything a customer provided or generated, as JSON and CSV in one zip.

Each category is one JSON file (an array of objects) and one CSV file (a header row, then one row per
record) with the same fields, described in README.md inside the zip (name, meaning, unit).

Rows are read with ``values_list(...).iterator(chunk_size=...)`` and written into the zip entry as they
arrive, so memory does not grow with the number of rows (a customer with 100,000 calls exports in the
memory of one chunk: see bench/privacy_export.py). zipfile allows one open entry at a time, so each
category's CSV is written to a temporary file on disk while its JSON goes into the zip, then copied in.
Encrypted fields decrypt through their model fields on the way out (values_list applies from_db_value).

Choices made for the subject's own copy, also stated in README.md:
- Bank account numbers appear as their last four digits. The subject already holds the number; the
  file is a download kept for days and may be requested by staff who may not reveal payment details,
  so the full number would be a risk with no portability value. Sort code, account holder and mandate
  reference are complete, which is what another provider needs to set up the mandate again.
- Invoices are the issued (finalised) ones: a draft belongs to an open bill run and is replaced when the
  run is recalculated. Calls are every call attributed to the customer, billed or not.
- CSV cells that start with = + - @ tab or carriage return get a leading single quote so a spreadsheet
  shows them as text instead of running them as formulas; the JSON files keep every value exact.
"""

import csv
import datetime
import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from django.db.models import QuerySet

from accounts.models import Customer
from fusion_site.money import format_money
from fusion_site.spreadsheet import safe_cell
from privacy.data_map import rows_of

CHUNK_SIZE = 2000
README_NAME = "README.md"
CSV_ENCODING = "utf-8-sig"  # the byte order mark makes spreadsheet programs read UTF-8 correctly

TEXT = "text"
DATE = "date (ISO 8601, YYYY-MM-DD)"
DATETIME = "date and time (ISO 8601, UTC)"
GBP = "GBP (pounds, decimal)"
PENNIES = "GBP (pounds and pence, e.g. 1234.50)"
SECONDS = "seconds"
IDENTIFIER = "identifier"


def _plain(value: Any) -> Any:
    """A value as JSON carries it: money as a decimal string (exact), dates in ISO 8601."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.astimezone(datetime.UTC).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _pennies(value: Any) -> str:
    """Invoice amounts as every export and page writes them (fusion_site.money); a call's cost keeps
    its four places instead, since it is the exact value the invoice lines were summed from."""
    return format_money(value, for_csv=True)


def _csv_cell(value: Any) -> str:
    return safe_cell(value)


def _reference(pk: int | None) -> str | None:
    return None if pk is None else f"{Customer.REFERENCE_PREFIX}{pk:06d}"


def _last_four(account_number: str | None) -> str | None:
    return account_number[-4:] if account_number else account_number


@dataclass(frozen=True)
class Field:
    name: str
    meaning: str
    unit: str = TEXT
    source: str = ""  # the values_list lookup; the name when empty
    convert: Callable[[Any], Any] | None = None

    @property
    def lookup(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Category:
    """One kind of record: ``name`` names its files (name.json, name.csv)."""

    name: str
    title: str
    description: str
    fields: tuple[Field, ...]
    queryset: Callable[[Customer], QuerySet[Any]]
    order_by: tuple[str, ...] = ("id",)

    def rows(self, customer: Customer, *, chunk_size: int = CHUNK_SIZE) -> Iterator[list[Any]]:
        lookups = [field.lookup for field in self.fields]
        values = self.queryset(customer).order_by(*self.order_by).values_list(*lookups)
        for row in values.iterator(chunk_size=chunk_size):
            yield [
                _plain(field.convert(value) if field.convert else value)
                for field, value in zip(self.fields, row, strict=True)
            ]

    def count(self, customer: Customer) -> int:
        return self.queryset(customer).count()


def _of_customer(label: str) -> Callable[[Customer], QuerySet[Any]]:
    """The customer's rows of a model, as the app that owns it declares them (its personal_data)."""
    return lambda customer: rows_of(label, customer)


def _record(noun: str, *fields: Field) -> tuple[Field, ...]:
    """A record's own fields between its number and when it was added and last changed."""
    return (
        Field("id", f"The {noun}'s number in this system", IDENTIFIER),
        *fields,
        Field("created_at", f"When the {noun} was added", DATETIME),
        Field("updated_at", f"When the {noun} was last changed", DATETIME),
    )


CATEGORIES: tuple[Category, ...] = (
    Category(
        name="account",
        title="Customer account",
        description="The account itself: one row.",
        queryset=_of_customer("accounts.Customer"),
        fields=(
            Field("reference", "The account reference", IDENTIFIER, source="id", convert=_reference),
            Field("name", "The account's trading name"),
            Field("provider", "The partner that supplies and bills the account", source="partner__name"),
            Field("status", "prospect, active, or ended (contract ended)"),
            Field("contract_start", "First day of the contract", DATE),
            Field("contract_end", "Last day of the contract; empty while it runs", DATE),
            Field("created_at", "When the account was opened", DATETIME),
            Field("billing_ceased_at", "When billing was ceased after an objection; empty if not", DATETIME),
            Field("billing_ceased_reason", "Why billing was ceased"),
            Field("processing_restricted_at", "When processing was restricted; empty if not", DATETIME),
            Field("processing_restricted_reason", "Why processing was restricted"),
        ),
    ),
    Category(
        name="contacts",
        title="Contacts",
        description="People at the customer that the provider may contact.",
        queryset=_of_customer("accounts.Contact"),
        fields=_record(
            "contact",
            Field("name", "Full name"),
            Field("email", "Email address (lower case)"),
            Field("phone", "Telephone number", "E.164 telephone number (+44...)"),
            Field("role", "primary, billing, or technical"),
        ),
    ),
    Category(
        name="sites",
        title="Sites",
        description="The customer's premises.",
        queryset=_of_customer("accounts.Site"),
        fields=_record(
            "site",
            Field("label", "What the customer calls the site"),
            Field("address_line1", "First line of the address"),
            Field("address_line2", "Second line of the address"),
            Field("town", "Post town"),
            Field("postcode", "UK postcode"),
        ),
    ),
    Category(
        name="lines",
        title="Services and lines",
        description="Telephone lines and other services supplied to the customer.",
        queryset=_of_customer("accounts.Line"),
        fields=(
            Field("id", "The line's number in this system", IDENTIFIER),
            Field("site_id", "The site (sites.id) the line is installed at; empty if none", IDENTIFIER),
            Field("number", "The line's telephone number (CLI)", "E.164 telephone number (+44...)", "cli"),
            Field("line_type", "wlr_analogue, isdn, sip, mobile, or broadband"),
            Field("start_date", "First day of service", DATE),
            Field("end_date", "Last day of service; empty while it runs", DATE),
        ),
    ),
    Category(
        name="payment_details",
        title="Payment details",
        description="The Direct Debit mandate. The account number is given as its last four digits only "
        "(see Notes).",
        queryset=_of_customer("accounts.PaymentDetails"),
        fields=(
            Field("account_holder", "Name of the bank account holder"),
            Field("sort_code", "Bank sort code", "six digits"),
            Field(
                "account_number_last4",
                "Last four digits of the bank account number",
                "four digits",
                source="account_number",
                convert=_last_four,
            ),
            Field("mandate_reference", "Direct Debit mandate reference (as on your bank statement)"),
            Field("updated_at", "When the mandate details were last changed", DATETIME),
        ),
    ),
    Category(
        name="call_records",
        title="Call records",
        description="Every call from the customer's lines that was attributed to the account.",
        queryset=_of_customer("billing.CallRecord"),
        order_by=("started_at", "id"),
        fields=(
            Field("call_reference", "The network's unique reference for the call", IDENTIFIER),
            Field("calling_number", "The line the call was made from", "E.164 telephone number", "cli"),
            Field("dialled_number", "The number called, as dialled", "national format digits"),
            Field("started_at", "When the call started", DATETIME),
            Field("duration_seconds", "How long the call lasted", SECONDS),
            Field("call_type", "voice, fax, or data"),
            Field("status", "rated, pending (awaiting rating), suspense (could not be rated), or waived"),
            Field("band", "Destination band the call was priced in"),
            Field("cost", "Price of the call before VAT, to 4 decimal places", GBP),
            Field(
                "invoice_number",
                "The invoice that billed the call; empty if not yet billed",
                IDENTIFIER,
                source="billing__invoice__number",
            ),
        ),
    ),
    Category(
        name="invoices",
        title="Invoices",
        description="Issued VAT invoices (drafts of an open bill run are not included).",
        queryset=_of_customer("billing.Invoice"),
        order_by=("issue_date", "id"),
        fields=(
            Field("number", "Invoice number", IDENTIFIER),
            Field("issue_date", "Date of issue", DATE),
            Field("tax_point", "Tax point (time of supply: the date of issue)", DATE),
            Field("period_start", "First day of the usage period", DATE),
            Field("period_end", "Last day of the usage period", DATE),
            Field("supplier_name", "Who issued the invoice"),
            Field("supplier_vat_number", "The supplier's VAT registration number", IDENTIFIER),
            Field("customer_name", "The name the invoice was addressed to"),
            Field("customer_address", "The address the invoice was sent to"),
            Field("net", "Total before VAT", PENNIES, convert=_pennies),
            Field("vat_rate", "VAT rate applied", "fraction (0.2000 = 20%)"),
            Field("vat", "VAT charged", PENNIES, convert=_pennies),
            Field("gross", "Total including VAT", PENNIES, convert=_pennies),
        ),
    ),
    Category(
        name="invoice_lines",
        title="Invoice lines",
        description="The lines of the issued invoices above.",
        queryset=_of_customer("billing.InvoiceLine"),
        order_by=("invoice__issue_date", "invoice_id", "id"),
        fields=(
            Field(
                "invoice_number",
                "The invoice (invoices.number) the line is on",
                IDENTIFIER,
                source="invoice__number",
            ),
            Field("kind", "rental, one_off (one-off charge), or usage (calls)"),
            Field("description", "What was charged"),
            Field("band", "Destination band, for call usage lines"),
            Field("quantity", "Quantity charged: calls for usage, months or items otherwise", "count"),
            Field("amount", "Amount before VAT", PENNIES, convert=_pennies),
        ),
    ),
    Category(
        name="credit_notes",
        title="Credit notes",
        description="Credits issued against the invoices above.",
        queryset=_of_customer("billing.CreditNote"),
        order_by=("issue_date", "id"),
        fields=(
            Field("number", "Credit note number", IDENTIFIER),
            Field(
                "invoice_number",
                "The invoice credited (invoices.number)",
                IDENTIFIER,
                source="invoice__number",
            ),
            Field("issue_date", "Date of issue", DATE),
            Field("reason", "Why the credit was given"),
            Field("net", "Credit before VAT", PENNIES, convert=_pennies),
            Field("vat", "VAT credited", PENNIES, convert=_pennies),
            Field("gross", "Credit including VAT", PENNIES, convert=_pennies),
        ),
    ),
)


def write_export(
    customer: Customer, destination: Path, *, generated_at: datetime.datetime, chunk_size: int = CHUNK_SIZE
) -> dict[str, int]:
    """Write the customer's export to ``destination`` (a new zip file); returns the rows per category."""
    counts: dict[str, int] = {}
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for category in CATEGORIES:
            counts[category.name] = _write_category(archive, category, customer, chunk_size=chunk_size)
        archive.writestr(README_NAME, fields_document(customer, counts, generated_at=generated_at))
    return counts


def _write_category(
    archive: zipfile.ZipFile, category: Category, customer: Customer, *, chunk_size: int
) -> int:
    names = [field.name for field in category.fields]
    count = 0
    with tempfile.TemporaryFile() as csv_spool:
        csv_text = io.TextIOWrapper(csv_spool, encoding=CSV_ENCODING, newline="")
        writer = csv.writer(csv_text)
        writer.writerow(names)
        with archive.open(f"{category.name}.json", "w") as entry:
            json_text = io.TextIOWrapper(entry, encoding="utf-8", newline="\n")
            json_text.write("[")
            for values in category.rows(customer, chunk_size=chunk_size):
                separator = ",\n" if count else "\n"
                json_text.write(
                    separator + json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False)
                )
                writer.writerow([_csv_cell(value) for value in values])
                count += 1
            json_text.write("\n]\n")
            json_text.flush()
            json_text.detach()  # the zip entry is closed by its own context manager
        csv_text.flush()
        csv_text.detach()
        csv_spool.seek(0)
        with archive.open(f"{category.name}.csv", "w") as entry:
            shutil.copyfileobj(csv_spool, entry)
    return count


def fields_document(customer: Customer, counts: dict[str, int], *, generated_at: datetime.datetime) -> str:
    """README.md of the zip: what each file holds and what every field means, with its unit."""
    out = io.StringIO()
    out.write(f"# Your data: account {customer.reference}\n\n")
    out.write(f"Generated {generated_at.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC.\n\n")
    out.write(
        "Each category below is given twice with the same fields: `<name>.json` (an array of objects, "
        "UTF-8) and `<name>.csv` (comma-separated, a header row first, UTF-8 with a byte order mark).\n\n"
    )
    out.write("| category | files | records |\n| --- | --- | --- |\n")
    for category in CATEGORIES:
        files = f"`{category.name}.json`, `{category.name}.csv`"
        out.write(f"| {category.title} | {files} | {counts.get(category.name, 0)} |\n")
    out.write("\n## Notes\n\n")
    out.write(
        "- Money is in pounds sterling (GBP) as an exact decimal; amounts are before VAT unless a field "
        "says otherwise.\n"
        "- Dates are ISO 8601 (YYYY-MM-DD); times are ISO 8601 in UTC. An empty value means none.\n"
        "- In the CSV files a cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return has a "
        "single quote `'` added in front, so spreadsheet programs show it as text and never run it as a "
        "formula (telephone numbers such as `+44...` therefore appear as `'+44...`). The JSON files hold "
        "the values exactly.\n"
        "- The bank account number is given as its last four digits: you hold the full number already, "
        "and this file should not become a copy of it. Sort code, account holder and mandate reference are "
        "complete.\n"
        "- Invoices are the ones issued to you; drafts of a bill run still in progress are not included.\n"
    )
    for category in CATEGORIES:
        out.write(f"\n## {category.title} (`{category.name}`)\n\n{category.description}\n\n")
        out.write("| field | meaning | unit |\n| --- | --- | --- |\n")
        for field in category.fields:
            out.write(f"| `{field.name}` | {field.meaning} | {field.unit} |\n")
    return out.getvalue()


def read_csv_rows(stream: IO[bytes]) -> Iterable[list[str]]:
    """The rows of one CSV file of an export (for tests and tools reading a zip back)."""
    return csv.reader(io.TextIOWrapper(stream, encoding=CSV_ENCODING, newline=""))
