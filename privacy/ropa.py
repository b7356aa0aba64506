"""The Record of Processing Activities (UK GDPR Art. 30), read from the data map, as rows for the page
and the CSV export."""

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

from fusion_site.spreadsheet import safe_cell
from privacy import data_map as dm

CSV_HEADER = (
    "record",
    "model",
    "field",
    "category",
    "lawful basis",
    "purpose",
    "retention",
    "retention anchor",
    "retention months",
    "erasure action",
    "kept under",
    "recipients",
)


@dataclass(frozen=True)
class FieldRow:
    model: dm.ModelEntry
    item: dm.FieldEntry


def field_rows() -> list[FieldRow]:
    # Read at call time so the register in force (and a test's replacement) is what is shown.
    return [FieldRow(entry, item) for entry, item in dm.iter_fields(dm.DATA_MAP)]


def fields_per_category() -> list[tuple[str, Decimal]]:
    counts = Counter(row.item.category.label for row in field_rows())
    return [(label, Decimal(count)) for label, count in sorted(counts.items())]


def csv_rows() -> list[list[str]]:
    rows: list[list[object]] = [list(CSV_HEADER)]
    for row in field_rows():
        item = row.item
        rows.append(
            [
                "field",
                row.model.label,
                item.field,
                item.category.label,
                item.basis.label,
                f"{row.model.purpose}: {item.purpose}",
                item.retention.text,
                "; ".join(rule.anchor.label for rule in item.retention_rules),
                "; ".join(str(rule.months) for rule in item.retention_rules),
                item.action.label,
                item.kept_under.citation if item.kept_under else "",
                " ".join(row.model.recipients),
            ]
        )
    for activity in dm.ACTIVITIES:
        rows.append(
            [
                "activity",
                " ".join(activity.models),
                "",
                "",
                activity.basis.label,
                f"{activity.name}: {activity.purpose} (subjects: {activity.subjects})",
                activity.retention,
                "",
                "",
                "",
                "",
                " ".join(activity.recipients),
            ]
        )
    for processor in dm.PROCESSORS:
        rows.append(
            [
                "processor",
                processor.key,
                "",
                processor.data,
                "",
                f"{processor.name} ({processor.role}): {processor.purpose}",
                "",
                "",
                "",
                "",
                processor.location,
                "",
            ]
        )
    return [[safe_cell(cell) for cell in row] for row in rows]
