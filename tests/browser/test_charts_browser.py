"""Every chart page, in real Chromium under the site's strict Content-Security-Policy: the vendored Chart.js
draws each chart of templates/_chart.html (static/js/charts.js) from the page's json_script data, with the
title, the axes titled with their units and one dataset per series, onto a canvas that is not blank; with
reduced motion asked for there is no animation; and no console error or CSP violation."""

import datetime
import json
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from billing.demo import uk_tariff
from billing.services.charges import one_off_charge_create
from privacy.models import PrivacyRequest
from privacy.services.exports import data_export_build, portability_export_create
from privacy.services.retention import retention_run
from privacy.website import services as website_services
from tests.billing.factories import billing_profile, calculated_run, finalised_run, month
from tests.browser.test_breach_browser import sign_in
from tests.privacy.conftest import receive

# Chromium keeps the real clock: relative times only. serialized_rollback keeps the role groups.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# What the page drew, read from Chart.js' own instance of the figure's canvas.
DRAWN = """(figure) => {
  const canvas = figure.querySelector("canvas");
  const chart = window.Chart && window.Chart.getChart(canvas);
  if (!chart) { return null; }
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) { if (pixels[i] !== 0) { painted += 1; } }
  return {
    width: canvas.width,
    height: canvas.height,
    painted: painted,
    title: chart.options.plugins.title.text,
    legend: chart.options.plugins.legend.display,
    x: chart.options.scales.x.title.text,
    y: chart.options.scales.y.title.text,
    labels: chart.data.labels,
    datasets: chart.data.datasets.map((d) => d.label),
    animation: chart.options.animation,
  };
}"""


def _charge(customer, amount: str, day: datetime.date, actor) -> None:
    one_off_charge_create(
        customer=customer, description="Equipment", amount=Decimal(amount), charge_date=day, actor=actor
    )


@pytest.fixture
def chart_pages(partner, customer, make_user, published_notice, settings, tmp_path):
    """Data for every chart: a January run and a February run whose totals moved (variance; their
    invoices are the aged debt), privacy requests, a retention run, a ready export and website forms."""
    settings.MEDIA_ROOT = str(tmp_path / "media")  # the export's zip
    agent = make_user(Role.BILLING_AGENT)
    finance = make_user(Role.FINANCE_MANAGER)
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    billing_profile(partner, default_tariff=uk_tariff())
    _charge(customer, "100.00", datetime.date(2025, 1, 5), agent)
    finalised_run(partner, month(2025, 1), agent=agent, finance=finance)
    _charge(customer, "150.00", datetime.date(2025, 2, 5), agent)
    february = calculated_run(partner, month(2025, 2), actor=agent)

    receive(dpo, customer=customer)
    receive(dpo, subject_email="pat@example.com", kind=PrivacyRequest.Kind.PORTABILITY)
    retention_run(today=timezone.localdate())
    export = portability_export_create(customer=customer, actor=dpo)
    data_export_build(export_id=export.pk)
    website_services.contact_submit(
        name="Ada", email="ada@example.com", message="Hello", consent_notice=published_notice
    )
    billing = {
        "aged-debt": reverse("billing:aged_debt"),
        "variance": reverse("billing:bill_run", args=[february.pk]),
    }
    privacy = {
        "requests": reverse("privacy:queue"),
        "retention": reverse("privacy:retention"),
        "fields": reverse("privacy:data_map"),
        "erasure": reverse("privacy:erasure_preview", args=[customer.reference]),
        "export-records": reverse("privacy:customer_exports", args=[customer.reference]),
        "submissions": reverse("website_staff:submissions"),
    }
    return [(finance, billing), (dpo, privacy)]


def test_every_chart_page_draws_its_chart_with_chartjs_under_the_csp(browsing, chart_pages):
    page = browsing.page
    page.emulate_media(reduced_motion="reduce")
    seen = []
    for user, pages in chart_pages:
        sign_in(browsing, user)
        for key, path in pages.items():
            browsing.goto(path)
            figure = page.locator(f"figure#chart-{key}")
            figure.wait_for()
            spec = json.loads(page.locator(f"#chart-{key}-data").text_content() or "")
            page.wait_for_function(
                "(canvas) => window.Chart && window.Chart.getChart(canvas)",
                arg=figure.locator("canvas").element_handle(),
            )
            drawn = figure.evaluate(DRAWN)

            assert drawn is not None, f"{key}: Chart.js drew nothing"
            assert drawn["width"] > 0 and drawn["height"] > 0 and drawn["painted"] > 0, (key, drawn)
            assert (drawn["title"], drawn["x"], drawn["y"]) == (
                spec["title"],
                spec["x"]["label"],
                spec["y"]["label"],
            ), key
            assert drawn["legend"] is True and drawn["animation"] is False, key
            assert drawn["labels"] == spec["labels"], key
            assert drawn["datasets"] == [series["label"] for series in spec["series"]], key
            assert figure.get_by_role("img").get_attribute("aria-label"), key
            assert figure.locator("details table").count() == 1, key
            seen.append(key)

    assert seen == [
        "aged-debt",
        "variance",
        "requests",
        "retention",
        "fields",
        "erasure",
        "export-records",
        "submissions",
    ]
    assert any(url.endswith("/static/vendor/chartjs/chart-4.6.2.umd.min.js") for url in browsing.requested)
    assert not [url for url in browsing.requested if not url.startswith(browsing.base_url)]  # no CDN
    assert browsing.problems == []
