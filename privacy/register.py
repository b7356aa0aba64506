"""The DSR register: one CSV row per request, with references, kinds, dates, states and outcome, and none
of the subject's personal data. Cells are formula-escaped for spreadsheets."""

import csv
import io
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet

from fusion_site.spreadsheet import safe_cell
from privacy.models import PrivacyRequest

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).

HEADER = [
    "reference",
    "kind",
    "channel",
    "customer_reference",
    "received_on",
    "identity_method",
    "clock_started_on",
    "days_on_hold",
    "extended",
    "due_on",
    "state",
    "closed_on",
    "duplicate_of",
    "outcome",
]


def _date(value: object) -> str:
    return value.strftime("%Y-%m-%d") if value is not None else ""  # type: ignore[attr-defined]


def register_rows(requests: Iterable[PrivacyRequest]) -> Iterator[list[str]]:
    yield HEADER
    for item in requests:
        closed_on = item.closed_at.date() if item.closed_at else None
        yield [
            safe_cell(value)
            for value in (
                item.reference,
                item.kind,
                item.channel,
                item.customer.reference if item.customer else "",
                _date(item.received_on),
                item.identity_method,
                _date(item.clock_started_on),
                item.days_on_hold,
                "yes" if item.is_extended else "no",
                _date(item.due_on),
                item.state,
                _date(closed_on),
                item.duplicate_of.reference if item.duplicate_of else "",
                item.outcome,
            )
        ]


def register_csv(requests: QuerySet[PrivacyRequest]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    # Only the columns the register shows are read, so encrypted personal fields are never decrypted here.
    chosen = requests.select_related("customer", "duplicate_of").only(
        "id",
        "kind",
        "channel",
        "customer__id",
        "received_on",
        "identity_method",
        "clock_started_on",
        "days_on_hold",
        "extended_at",
        "due_on",
        "state",
        "closed_at",
        "duplicate_of__id",
        "outcome",
    )
    writer.writerows(register_rows(chosen.order_by("received_on", "id").iterator(chunk_size=2000)))
    return buffer.getvalue()
