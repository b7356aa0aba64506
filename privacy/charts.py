"""Server-drawn SVG stacked bars (no script, like billing.charts): one column per month, one segment per
kind of request."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    series: int
    label: str
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Column:
    label: str
    total: int
    x: float
    width: float
    label_x: float
    segments: list[Segment]


@dataclass(frozen=True)
class StackedChart:
    width: int
    height: int
    baseline_y: float
    top: int
    columns: list[Column]
    legend: list[tuple[int, str]]


def stacked_bars(
    column_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    width: int = 720,
    height: int = 240,
) -> StackedChart:
    """``series`` is (name, one value per column); segments stack bottom-up in the order given."""
    plot_top, axis_space = 10, 24
    baseline = float(height - axis_space)
    totals = [sum(values[index] for _name, values in series) for index in range(len(column_labels))]
    top = max(totals, default=0)
    scale = (baseline - plot_top) / top if top else 0.0
    slot = width / max(len(column_labels), 1)
    columns = []
    for index, label in enumerate(column_labels):
        y = baseline
        segments = []
        for number, (name, values) in enumerate(series):
            size = values[index] * scale
            if values[index]:
                y -= size
                segments.append(Segment(number, name, values[index], y, size))
        columns.append(
            Column(
                label,
                totals[index],
                index * slot + slot * 0.15,
                slot * 0.7,
                index * slot + slot / 2,
                segments,
            )
        )
    legend = [(number, name) for number, (name, _values) in enumerate(series)]
    return StackedChart(width, height, baseline, top, columns, legend)
