"""Server-drawn SVG bar charts: no script, so they work under a strict Content-Security-Policy."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    x: float
    y: float
    width: float
    height: float
    negative: bool


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    zero_y: float
    bars: list[Bar]


def diverging_bars(items: Sequence[tuple[str, Decimal]], *, width: int = 720, height: int = 220) -> BarChart:
    """Bars up for positive values and down for negative ones, around a zero line."""
    if not items:
        return BarChart(width, height, height / 2, [])
    top = max((value for _label, value in items), default=Decimal("0"))
    bottom = min((value for _label, value in items), default=Decimal("0"))
    top, bottom = max(top, Decimal("0")), min(bottom, Decimal("0"))
    span = float(top - bottom) or 1.0
    plot = height - 20
    zero_y = 10 + plot * float(top) / span
    slot = width / len(items)
    bars = []
    for index, (label, value) in enumerate(items):
        size = plot * abs(float(value)) / span
        y = zero_y - size if value >= 0 else zero_y
        bars.append(Bar(label, value, index * slot + slot * 0.15, y, slot * 0.7, size, value < 0))
    return BarChart(width, height, zero_y, bars)


@dataclass(frozen=True)
class MoneySegment:
    series: int
    label: str
    value: Decimal
    y: float
    height: float


@dataclass(frozen=True)
class MoneyColumn:
    label: str
    total: Decimal
    x: float
    width: float
    label_x: float
    segments: list[MoneySegment]


@dataclass(frozen=True)
class MoneyTick:
    value: Decimal
    y: float


@dataclass(frozen=True)
class StackedMoneyChart:
    """Stacked columns of amounts with a y axis in pounds: the left margin holds the tick labels."""

    width: int
    height: int
    left: float
    baseline_y: float
    top_y: float
    columns: list[MoneyColumn]
    ticks: list[MoneyTick]
    legend: list[tuple[int, str]]

    @property
    def is_empty(self) -> bool:
        return not any(column.total for column in self.columns)


def _nice_top(value: Decimal) -> Decimal:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value`` (the axis' top tick)."""
    if value <= 0:
        return Decimal("1")
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def stacked_money_bars(
    column_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Decimal]]],
    *,
    width: int = 720,
    height: int = 260,
    ticks: int = 4,
) -> StackedMoneyChart:
    """One column per label, one stacked segment per series (bottom-up in the order given)."""
    left, plot_top, axis_space = 70.0, 12.0, 24
    baseline = float(height - axis_space)
    totals = [
        sum((values[index] for _name, values in series), Decimal("0")) for index in range(len(column_labels))
    ]
    top = _nice_top(max(totals, default=Decimal("0")))
    scale = (baseline - plot_top) / float(top)
    slot = (width - left) / max(len(column_labels), 1)
    columns = []
    for index, label in enumerate(column_labels):
        y = baseline
        segments = []
        for number, (name, values) in enumerate(series):
            if values[index] > 0:
                size = float(values[index]) * scale
                y -= size
                segments.append(MoneySegment(number, name, values[index], y, size))
        x = left + index * slot
        columns.append(MoneyColumn(label, totals[index], x + slot * 0.15, slot * 0.7, x + slot / 2, segments))
    tick_marks = [
        MoneyTick(top * step / ticks, baseline - float(top * step / ticks) * scale)
        for step in range(ticks + 1)
    ]
    legend = [(number, name) for number, (name, _values) in enumerate(series)]
    return StackedMoneyChart(width, height, left, baseline, plot_top, columns, tick_marks, legend)
