"""The main pages, as the demo's users see them in real Chromium at 1366 x 768: axe-core (from npm,
``package.json``) finds no serious or critical accessibility violation on any of them, and each page's
full-page screenshot is saved for review (``artifacts/screenshots/``, or ``FUSION_SCREENSHOT_DIR``).

The data is the demo's own (``seed_demo``, ``seed_billing_demo``, ``seed_privacy_demo`` at a small size),
so the pages hold what a reviewer of the demo sees."""

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from accounts.models import Customer, User
from billing.models import BillRun
from privacy.models import PrivacyRequest, State
from tests.browser.conftest import sign_in
from tests.conftest import require_service

# Chromium keeps the real clock; serialized_rollback keeps the role groups for the tests after these.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORT = {"width": 1366, "height": 768}
FAILING_IMPACTS = {"serious", "critical"}
RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 8).map(n => n.target.join(" ") + ": " + n.failureSummary.replace(/\\s+/g, " ")),
  }));
}"""


def screenshot_dir() -> Path:
    return Path(
        os.environ.get("FUSION_SCREENSHOT_DIR") or Path(settings.BASE_DIR) / "artifacts" / "screenshots"
    )


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@dataclass(frozen=True)
class Visit:
    name: str  # the screenshot's file name, without .png
    path: str
    who: str  # the demo user's email, or "" for the public


def demo_visits() -> list[Visit]:
    """Seed the demo (small) and list the main pages with the demo user who opens each."""
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("seed_demo", customers=8, partners=1, **quiet)
    call_command("seed_billing_demo", **quiet)
    call_command("seed_privacy_demo", requests=8, **quiet)
    portal_user = User.objects.get(email="portal@demo-1.example")
    assert portal_user.customer is not None
    customer = Customer.objects.exclude(pk=portal_user.customer.pk).order_by("pk").first()
    assert customer is not None
    run = BillRun.objects.filter(status=BillRun.Status.FINALISED).order_by("-period_start").first()
    assert run is not None
    invoice = run.invoices.order_by("pk").first()
    awaiting = PrivacyRequest.objects.filter(state=State.AWAITING_APPROVAL).order_by("pk").first()
    assert invoice is not None and awaiting is not None
    agent, support, dpo = "billing@demo-1.example", "support@demo-1.example", "dpo@fusion.example"
    return [
        Visit("staff-home", "/", support),
        Visit("staff-site-details", f"/customers/{customer.reference}/", support),
        Visit("staff-customer-account", f"/billing/customers/{customer.reference}/account/", agent),
        Visit("staff-bill-runs", "/billing/runs/", agent),
        Visit("staff-bill-run", f"/billing/runs/{run.pk}/", agent),
        Visit("staff-invoice", f"/billing/invoices/{invoice.pk}/", agent),
        Visit("privacy-queue", "/privacy/", dpo),
        Visit("privacy-request", f"/privacy/requests/{awaiting.pk}/", dpo),
        Visit("privacy-data-map", "/privacy/data-map/", dpo),
        Visit("privacy-breaches", "/privacy/breaches/", dpo),
        # The portal's home (/my-account/) is the customer's own Site Details.
        Visit("portal-site-details", f"/customers/{portal_user.customer.reference}/", portal_user.email),
        Visit("website-home", "/site/", ""),
        Visit("website-privacy-notice", "/site/privacy-notice/", ""),
        Visit("website-contact", "/site/contact/", ""),
        Visit("website-mailing-list", "/site/mailing-list/", ""),
        Visit("website-jobs", "/site/jobs/apply/", ""),
        Visit("website-privacy-request", "/site/privacy-request/", ""),
        Visit("website-cookies", "/site/cookies/", ""),
    ]


def test_the_main_pages_pass_axe_and_their_screenshots_are_saved(browsing):
    require_service("axe-core", AXE.exists(), f"{AXE} is missing; run `make install` (npm ci)")
    axe_source = AXE.read_text()
    visits = demo_visits()
    page = browsing.page
    page.set_viewport_size(VIEWPORT)
    folder = screenshot_dir()
    folder.mkdir(parents=True, exist_ok=True)
    found: list[str] = []
    signed_in_as = None
    for visit in visits:
        if visit.who != signed_in_as:
            page.context.clear_cookies()
            if visit.who:
                sign_in(browsing, User.objects.get(email=visit.who))
            signed_in_as = visit.who
        response = page.goto(f"{browsing.base_url}{visit.path}")
        assert response is not None and response.status == 200, (visit, response and response.status)
        assert page.url.endswith(visit.path), f"{visit.name}: ended at {page.url}"
        # Evaluated through the DevTools protocol, which the pages' Content-Security-Policy does not
        # govern: page.add_script_tag would add an inline <script>, which the CSP (script-src 'self')
        # rightly blocks, and the pages are checked under the CSP they are served with.
        page.evaluate(axe_source + "\n;0")
        for violation in page.evaluate(RUN_AXE):
            if violation["impact"] in FAILING_IMPACTS:
                nodes = "\n      ".join(violation["nodes"])
                found.append(
                    f"{visit.name} ({visit.path}): {violation['id']} [{violation['impact']}] "
                    f"{violation['help']}\n      {nodes}"
                )
        shot = folder / f"{visit.name}.png"
        shot.unlink(missing_ok=True)
        page.screenshot(path=str(shot), full_page=True)

    assert not found, "axe-core found serious or critical violations:\n  " + "\n  ".join(found)
    for visit in visits:
        shot = folder / f"{visit.name}.png"
        assert shot.exists(), f"no screenshot of {visit.name}"
        assert png_size(shot)[0] == VIEWPORT["width"], (shot, png_size(shot))
    assert browsing.problems == []
