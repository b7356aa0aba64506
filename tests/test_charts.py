"""fusion_site.charts: the one chart spec every chart page renders through templates/_chart.html. Axes carry
their units, each series is a legend entry with one value per label, and the table, the text alternative
and the script's data say the same values the view gave."""

import json
from decimal import Decimal

import pytest
from django.template.loader import render_to_string
from hypothesis import given
from hypothesis import strategies as st

from fusion_site.charts import MONEY, Axis, bar_chart
from fusion_site.money import format_money
from tests.chart_pages import chart_data, chart_summary, chart_table

BUCKETS = ["Current", "1-30 days", "31-60 days"]


def _aged(series):
    return bar_chart(
        key="aged-debt",
        title="Outstanding by days past due",
        x_axis=Axis("Past due", "days"),
        y_axis=Axis("Outstanding", MONEY),
        labels=BUCKETS,
        series=series,
        stacked=True,
    )


def test_the_axes_are_titled_with_their_units_and_each_series_is_a_legend_entry():
    chart = _aged([("North", [Decimal("1.50"), Decimal("0"), Decimal("20")]), ("South", [Decimal(3)] * 3)])
    data = chart.data

    assert data["x"] == {"title": "Past due", "unit": "days", "label": "Past due (days)"}
    assert data["y"] == {"title": "Outstanding", "unit": "£", "label": "Outstanding (£)"}
    assert Axis("Customer").label == "Customer"  # a category axis may have no unit
    assert [series["label"] for series in data["series"]] == ["North", "South"]
    assert all(len(series["values"]) == len(data["labels"]) == 3 for series in data["series"])
    # Money to the penny as strings (JSON has no decimals), with the text the table shows.
    assert data["series"][0]["values"] == ["1.50", "0.00", "20.00"]
    assert data["series"][0]["texts"] == ["£1.50", "£0.00", "£20.00"]
    assert json.loads(json.dumps(data)) == data
    assert [(row.label, row.cells, row.total) for row in chart.table_rows] == [
        ("Current", ("£1.50", "£3.00"), "£4.50"),
        ("1-30 days", ("£0.00", "£3.00"), "£3.00"),
        ("31-60 days", ("£20.00", "£3.00"), "£23.00"),
    ]
    assert chart.summary == (
        "Outstanding by days past due. Stacked bar chart of Outstanding (£) by Past due (days): "
        "Current: £4.50 (North £1.50, South £3.00); 1-30 days: £3.00 (South £3.00); "
        "31-60 days: £23.00 (North £20.00, South £3.00)"
    )


def test_counts_are_whole_numbers_with_separators_and_a_single_series_has_no_total_column():
    chart = bar_chart(
        key="erasure",
        title="Rows erased per table",
        x_axis=Axis("Table"),
        y_axis=Axis("Erased", "rows"),
        labels=["billing.CallRecord", "accounts.Contact"],
        series=[("Rows erased", [12345, 2])],
    )

    assert chart.data["series"] == [{"label": "Rows erased", "values": [12345, 2], "texts": ["12,345", "2"]}]
    assert [(row.cells, row.total) for row in chart.table_rows] == [(("12,345",), None), (("2",), None)]
    assert chart.summary.endswith(": billing.CallRecord: 12,345; accounts.Contact: 2")
    assert not chart.is_empty


def test_a_chart_of_zeros_or_of_nothing_says_so():
    assert _aged([("North", [Decimal(0)] * 3)]).is_empty
    empty = _aged([])
    assert empty.is_empty and empty.summary.endswith(": nothing to show")
    assert [row.cells for row in empty.table_rows] == [(), (), ()]


@pytest.mark.parametrize(
    ("series", "error"),
    [
        ([("North", [Decimal(1)] * 2)], "Series 'North' has 2 values for 3 labels."),
        ([("North", [1, 2, 3])], "Series 'North': 1 is not a Decimal."),
    ],
)
def test_a_series_must_fit_its_labels_and_its_unit(series, error):
    with pytest.raises((ValueError, TypeError)) as raised:
        _aged(series)
    assert str(raised.value) == error


def test_counts_must_be_ints_and_the_key_an_id():
    with pytest.raises(TypeError, match="is not an int"):
        bar_chart(
            key="k",
            title="t",
            x_axis=Axis("x"),
            y_axis=Axis("y", "rows"),
            labels=["a"],
            series=[("s", [True])],
        )
    with pytest.raises(ValueError, match="lower-case letters"):
        bar_chart(key="Bad id", title="t", x_axis=Axis("x"), y_axis=Axis("y", "rows"), labels=[], series=[])


money = st.decimals(min_value=Decimal("-99999999.99"), max_value=Decimal("99999999.99"), places=2)
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


@given(
    labels=st.lists(names, min_size=1, max_size=6, unique=True),
    data=st.data(),
)
def test_the_rendered_table_and_data_hold_exactly_the_values_given(labels, data):
    """Property: whatever the amounts and names (markup characters included), the page's table shows each
    value as format_money does, the script's data parses back to the same Decimal, and the text
    alternative names every label with its total."""
    series_names = data.draw(st.lists(names, min_size=1, max_size=3, unique=True))
    series = [
        (name, data.draw(st.lists(money, min_size=len(labels), max_size=len(labels))))
        for name in series_names
    ]
    chart = _aged_with(labels, series)

    html = render_to_string("_chart.html", {"chart": chart})
    table = chart_table(html, "aged-debt")
    script = chart_data(html, "aged-debt")

    assert table[0][1 : 1 + len(series)] == series_names
    for index, label in enumerate(labels):
        row = table[index + 1]
        assert row[0] == label
        assert row[1 : 1 + len(series)] == [format_money(values[index]) for _name, values in series]
    for sent, (name, values) in zip(script["series"], series, strict=True):
        assert sent["label"] == name and [Decimal(value) for value in sent["values"]] == values
    summary = chart_summary(html, "aged-debt")
    totals = chart.totals()
    if not chart.is_empty:
        assert all(f"{label}: {format_money(totals[i])}" in summary for i, label in enumerate(labels))


def _aged_with(labels, series):
    return bar_chart(
        key="aged-debt",
        title="Outstanding",
        x_axis=Axis("Past due", "days"),
        y_axis=Axis("Outstanding", MONEY),
        labels=labels,
        series=series,
        stacked=True,
    )
