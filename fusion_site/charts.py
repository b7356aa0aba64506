"""Charts as data: a view builds a ``Chart`` here, ``templates/_chart.html`` renders it (a figure with its
title, a canvas whose ``aria-label`` is the text alternative, the data as ``json_script`` and the same
values as a table), and ``static/js/charts.js`` draws it with the vendored Chart.js (static/vendor/).

One approach for every chart of the product (issue 18): axes titled with their units, a legend, a title,
values in tooltips and in the table, so the numbers are readable without script and to screen readers.
Money stays ``Decimal`` and is sent to the script as a string to the penny (JSON has no decimals); each
value is shown by one formatter, so the tooltip, the table and the text alternative say the same thing.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from fusion_site.money import format_money, to_money

MONEY = "£"
# A chart's key makes the ids of its figure and data element, so it must be an HTML id fragment.
_KEY = re.compile(r"^[a-z][a-z0-9-]*$")

Value: TypeAlias = Decimal | int


@dataclass(frozen=True)
class Axis:
    """An axis' title and its unit: ``Axis("Outstanding", MONEY)`` reads "Outstanding (£)". A category
    axis (customers, months) may have no unit."""

    title: str
    unit: str = ""

    @property
    def label(self) -> str:
        return f"{self.title} ({self.unit})" if self.unit else self.title

    def as_data(self) -> dict[str, str]:
        return {"title": self.title, "unit": self.unit, "label": self.label}


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class TableRow:
    label: str
    cells: tuple[str, ...]
    total: str | None


@dataclass(frozen=True)
class Chart:
    """A bar chart: one bar (or, ``stacked``, one column of segments) per label, one series per legend
    entry. ``signed`` colours bars below zero apart (a change that went down)."""

    key: str
    title: str
    x_axis: Axis
    y_axis: Axis
    labels: tuple[str, ...]
    series: tuple[Series, ...]
    stacked: bool = False
    signed: bool = False

    @property
    def figure_id(self) -> str:
        return f"chart-{self.key}"

    @property
    def data_id(self) -> str:
        return f"chart-{self.key}-data"

    @property
    def is_empty(self) -> bool:
        """Nothing to draw: no labels, or every value zero."""
        return not any(value for series in self.series for value in series.values)

    def text(self, value: Value) -> str:
        """A value as the page shows it: money as ``format_money`` does, counts with separators."""
        if self.y_axis.unit == MONEY:
            return format_money(value)
        return f"{value:,}"

    def totals(self) -> list[Value]:
        """Each label's sum over the series (a stacked column's height)."""
        zero: Value = Decimal(0) if self.y_axis.unit == MONEY else 0
        return [
            sum((series.values[index] for series in self.series), zero) for index in range(len(self.labels))
        ]

    @property
    def shows_totals(self) -> bool:
        return self.stacked and len(self.series) > 1

    @property
    def table_rows(self) -> list[TableRow]:
        totals = self.totals()
        return [
            TableRow(
                label,
                tuple(self.text(series.values[index]) for series in self.series),
                self.text(totals[index]) if self.shows_totals else None,
            )
            for index, label in enumerate(self.labels)
        ]

    @property
    def summary(self) -> str:
        """The text alternative: what the chart shows and every bar's value (a stacked column's total,
        then its non-zero parts)."""
        kind = "Stacked bar chart" if self.stacked else "Bar chart"
        head = f"{self.title}. {kind} of {self.y_axis.label} by {self.x_axis.label}"
        if self.is_empty:
            return f"{head}: nothing to show"
        parts = []
        for index, (label, total) in enumerate(zip(self.labels, self.totals(), strict=True)):
            text = f"{label}: {self.text(total)}"
            if self.shows_totals:
                pieces = [
                    f"{series.label} {self.text(series.values[index])}"
                    for series in self.series
                    if series.values[index]
                ]
                if pieces:
                    text += f" ({', '.join(pieces)})"
            parts.append(text)
        return f"{head}: {'; '.join(parts)}"

    def _number(self, value: Value) -> str | int:
        """Money to the penny as a string (JSON has no decimals; a float would round), counts as they are."""
        return str(to_money(value)) if isinstance(value, Decimal) else value

    @property
    def data(self) -> dict[str, Any]:
        """What ``static/js/charts.js`` reads (through ``json_script``): JSON-serialisable, money as
        strings to the penny, each value with the text the table shows."""
        return {
            "type": "bar",
            "title": self.title,
            "stacked": self.stacked,
            "signed": self.signed,
            "x": self.x_axis.as_data(),
            "y": self.y_axis.as_data(),
            "labels": list(self.labels),
            "series": [
                {
                    "label": series.label,
                    "values": [self._number(value) for value in series.values],
                    "texts": [self.text(value) for value in series.values],
                }
                for series in self.series
            ],
        }


def bar_chart(
    *,
    key: str,
    title: str,
    x_axis: Axis,
    y_axis: Axis,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Value]]],
    stacked: bool = False,
    signed: bool = False,
) -> Chart:
    """A chart of ``series`` (a legend label and one value per label). Money (``y_axis.unit`` is
    ``MONEY``) must be ``Decimal``; counts must be ``int``."""
    if not _KEY.match(key):
        raise ValueError(f"Chart key {key!r} must be lower-case letters, digits and hyphens.")
    money = y_axis.unit == MONEY
    for name, values in series:
        if len(values) != len(labels):
            raise ValueError(f"Series {name!r} has {len(values)} values for {len(labels)} labels.")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, Decimal if money else int):
                raise TypeError(f"Series {name!r}: {value!r} is not {'a Decimal' if money else 'an int'}.")
    return Chart(
        key=key,
        title=title,
        x_axis=x_axis,
        y_axis=y_axis,
        labels=tuple(labels),
        series=tuple(Series(name, tuple(values)) for name, values in series),
        stacked=stacked,
        signed=signed,
    )
