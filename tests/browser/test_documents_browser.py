"""A bill run from draft to finalised through the staff pages in real Chromium, then the invoice downloaded
as a PDF and opened: the file is the invoice, and its customer was emailed the same PDF."""

import datetime
import io
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone
from pypdf import PdfReader

from accounts.models import Role
from billing.demo import uk_tariff
from billing.models import Invoice, InvoiceDelivery
from billing.services.charges import one_off_charge_create
from tests.billing.factories import billing_profile
from tests.conftest import VerifiedClient

# Chromium keeps the real clock: relative times only. serialized_rollback keeps the role groups.
pytestmark = [pytest.mark.real_clock, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def sign_in(browsing, user) -> None:
    """The session of a verified login (password and second factor), handed to the browser."""
    client = VerifiedClient()
    client.force_login(user)
    browsing.page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": browsing.base_url}]
    )


def test_a_bill_run_is_finalised_and_its_invoice_downloaded_as_pdf(browsing, make_user, customer, partner):
    agent, finance = make_user(Role.BILLING_AGENT), make_user(Role.FINANCE_MANAGER)
    billing_profile(partner, default_tariff=uk_tariff(name="Browser tariff"), invoice_prefix="BRW-")
    last_month = (timezone.localdate().replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
    one_off_charge_create(
        customer=customer, description="Router", amount=Decimal("40.00"), charge_date=last_month, actor=agent
    )
    page = browsing.page

    sign_in(browsing, agent)
    browsing.goto("/billing/runs/")
    page.fill("#id_month", last_month.strftime("%Y-%m"))
    page.get_by_role("button", name="New bill run").click()
    page.get_by_role("button", name="Calculate").click()
    page.get_by_role("button", name="Recalculate").wait_for()
    run_url = page.url

    sign_in(browsing, finance)
    page.goto(run_url)
    acknowledge = page.locator("#id_acknowledge_exceptions")
    if acknowledge.count():
        acknowledge.check()
    page.get_by_role("button", name="Approve").click()
    page.get_by_role("button", name="Finalise and number invoices").click()
    page.get_by_role("button", name="Make and download Direct Debit file (Bacs Standard 18)").wait_for()

    invoice = Invoice.objects.get(customer=customer, status=Invoice.Status.FINALISED)
    assert invoice.number.startswith("BRW-")
    page.get_by_role("link", name=invoice.number).click()
    assert page.locator("#delivery").inner_text().count("Sent") == 1
    with page.expect_download() as download_info:
        page.locator("#invoice-pdf").click()
    download = download_info.value

    assert download.suggested_filename == f"invoice-{invoice.number}.pdf"
    content = download.path().read_bytes()
    assert content.startswith(b"%PDF-")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)
    assert f"VAT invoice {invoice.number}" in text and "Router" in text
    # The customer was emailed the same invoice once, at finalisation.
    ((message),) = mail.outbox
    assert invoice.number in message.subject
    assert InvoiceDelivery.objects.get(invoice=invoice).status == InvoiceDelivery.Status.SENT
    assert browsing.problems == []
