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
