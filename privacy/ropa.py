"""The Record of Processing Activities (UK GDPR Art. 30), read from the data map and the processors
register, as rows for the page and the CSV export."""

from collections import Counter
from dataclasses import dataclass

from fusion_site.spreadsheet import safe_cell
from privacy import data_map as dm
from privacy import selectors

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


def fields_per_category() -> list[tuple[str, int]]:
    counts = Counter(row.item.category.label for row in field_rows())
    return sorted(counts.items())


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
    processors = list(selectors.processors_register())
    for activity in dm.ACTIVITIES:
        serving = [processor.key for processor in processors if activity.name in processor.activities]
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
                " ".join(serving),
            ]
        )
    for processor in processors:
        rows.append(
            [
                "processor",
                processor.key,
                "",
                processor.data_description or ", ".join(processor.category_labels),
                "",
                f"{processor.name} ({processor.get_role_display()}): {processor.service}",
                "",
                "",
                "",
                "",
                f"{processor.location} ({processor.get_transfer_mechanism_display()})",
                " ".join(processor.activities),
            ]
        )
    return [[safe_cell(cell) for cell in row] for row in rows]
