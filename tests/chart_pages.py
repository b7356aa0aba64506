"""Reading a chart of templates/_chart.html back out of a page: its data (the json_script element
static/js/charts.js draws from) and its table of values, for the page tests."""

import json
import re
from html import unescape
from typing import Any


def chart_figure(html: str, key: str) -> str:
    """The chart's <figure> element; fails the test when the page has none."""
    found = re.search(rf'<figure class="chart" id="chart-{key}".*?</figure>', html, re.S)
    assert found, f"no chart {key!r} on the page"
    return found.group(0)


def chart_data(html: str, key: str) -> dict[str, Any]:
    found = re.search(
        rf'<script id="chart-{key}-data" type="application/json">(.*?)</script>',
        chart_figure(html, key),
        re.S,
    )
    assert found, f"chart {key!r} has no json_script data"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def chart_summary(html: str, key: str) -> str:
    found = re.search(r'<canvas role="img" aria-label="([^"]*)">', chart_figure(html, key))
    assert found, f"chart {key!r} has no canvas with a text alternative"
    return unescape(found.group(1))


def chart_table(html: str, key: str) -> list[list[str]]:
    """The table's rows, the head first: each cell's text."""
    table = re.search(r"<table>.*?</table>", chart_figure(html, key), re.S)
    assert table, f"chart {key!r} has no table of values"
    return [
        [unescape(cell) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S)
    ]
