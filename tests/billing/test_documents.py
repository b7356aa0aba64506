"""Invoices, credit notes, statements and the Art. 15 report as PDF (the page's own template, printed by
WeasyPrint), scoped and logged like their pages; and invoices emailed with their PDF at finalisation, once."""

import datetime
import io
import smtplib
import socket

import pytest
from celery.exceptions import Retry
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from pypdf import PdfReader

from accounts.models import AccessLog, Contact, Role
from billing.models import InvoiceDelivery
from billing.services.bill_runs import bill_run_finalise
from billing.services.credit_notes import credit_note_issue
from billing.services.invoice_delivery import invoice_deliveries_queue
from billing.tasks import invoice_emails_sweep, send_invoice_email
from fusion_site import pdf
from fusion_site.money import format_money
from tests.billing.factories import finalised_run, january_charges, month, run_on_commit
from tests.factories import ContactFactory, full_customer

JANUARY = month(2025, 1)


def _text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


@pytest.fixture
def billed(partner, profile, agent, finance):
    """A customer with a billing contact (and the primary one full_customer gives), billed for January."""
    customer = january_charges(full_customer(partner), agent)
    ContactFactory(customer=customer, role=Contact.ContactRole.BILLING, email="accounts@acme.example")
    with run_on_commit():
        run = finalised_run(partner, JANUARY, agent=agent, finance=finance)
    return run.invoices.get(customer=customer)


def test_the_invoice_pdf_is_the_invoice_as_an_attachment_never_cached(client, billed, finance):
    client.force_login(finance)

    response = client.get(f"/billing/invoices/{billed.pk}/pdf/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="invoice-{billed.number}.pdf"'
    assert response["Cache-Control"] == "no-store"
    text = _text(response.content)
    assert f"VAT invoice {billed.number}" in text
    assert "Installation" in text and format_money(billed.gross) in text
    assert "Log out" not in text and "Issue a credit note" not in text  # the print stylesheet's work


def test_each_pdf_download_is_logged_as_an_export(client, billed, finance):
    client.force_login(finance)

    client.get(f"/billing/invoices/{billed.pk}/pdf/")

    entry = AccessLog.objects.get(user=finance, action=AccessLog.Action.EXPORT)
    assert entry.customer == billed.customer
    assert entry.fields == ["customer_address", "customer_name", "invoice_pdf"]
    assert billed.number in entry.reason


def test_staff_who_may_not_reveal_get_the_names_masked_in_the_pdf_too(client, billed, make_user):
    untrained = make_user(Role.FINANCE_MANAGER, cleared=False)
    client.force_login(untrained)

    text = _text(client.get(f"/billing/invoices/{billed.pk}/pdf/").content)

    assert billed.customer_name not in text
    assert AccessLog.objects.get(user=untrained).fields == ["invoice_pdf"]


def test_another_partners_staff_and_another_customer_get_404(client, billed, make_user, other_partner):
    outsider = make_user(Role.FINANCE_MANAGER, partner=other_partner)
    someone_else = make_user(Role.CUSTOMER)  # a portal user of another customer of the same partner
    for user in (outsider, someone_else):
        client.force_login(user)
        assert client.get(f"/billing/invoices/{billed.pk}/pdf/").status_code == 404
        assert (
            client.get(f"/billing/customers/{billed.customer.reference}/account/statement.pdf").status_code
            == 404
        )
    assert not AccessLog.objects.filter(action=AccessLog.Action.EXPORT).exists()


def test_the_customer_lists_and_downloads_its_own_invoices(client, billed, make_user):
    portal = make_user(Role.CUSTOMER, customer=billed.customer)
    client.force_login(portal)

    listing = client.get(f"/billing/customers/{billed.customer.reference}/invoices/").content.decode()
    response = client.get(f"/billing/invoices/{billed.pk}/pdf/")

    assert f'href="/billing/invoices/{billed.pk}/pdf/"' in listing
    assert billed.number in _text(response.content)
    entry = AccessLog.objects.get(user=portal)
    assert entry.reason.startswith("The customer downloaded its own invoice")


def test_credit_note_and_statement_pdfs(client, billed, finance):
    note = credit_note_issue(invoice=billed, actor=finance, reason="Goodwill")
    client.force_login(finance)

    note_pdf = client.get(f"/billing/credit-notes/{note.pk}/pdf/")
    statement = client.get(f"/billing/customers/{billed.customer.reference}/account/statement.pdf")

    assert note_pdf["Content-Disposition"] == f'attachment; filename="credit-note-{note.number}.pdf"'
    assert f"Credit note {note.number}" in _text(note_pdf.content)
    assert statement["Cache-Control"] == "no-store"
    text = _text(statement.content)
    assert f"Statement of account {billed.customer.reference}" in text
    assert billed.number in text and note.number in text
    assert "Write-offs" not in text and "Dunning" not in text
    logged = {e.fields[0] for e in AccessLog.objects.filter(user=finance, action=AccessLog.Action.EXPORT)}
    assert logged == {"credit_note_pdf", "statement_pdf"}


def test_the_access_report_pdf_for_staff_and_for_the_customer(client, customer, dpo, make_user):
    client.force_login(dpo)
    staff = client.get(f"/privacy/customers/{customer.reference}/access-report.pdf")
    portal = make_user(Role.CUSTOMER, customer=customer)
    client.force_login(portal)
    own = client.get("/privacy/my-account/access-report.pdf")

    for response in (staff, own):
        assert response["Cache-Control"] == "no-store"
        assert response["Content-Disposition"].startswith(
            f'attachment; filename="personal-data-{customer.reference}-'
        )
        assert f"Your personal data {customer.reference}" in _text(response.content)
    assert AccessLog.objects.filter(action=AccessLog.Action.EXPORT, customer=customer).count() == 2


def test_documents_fetch_only_the_projects_static_files():
    fetcher = pdf._fetcher()

    css = fetcher.fetch(f"{pdf.DOCUMENT_BASE_URL}static/css/document.css")
    assert b"@page" in css.read() and css.content_type == "text/css"
    for url in (
        "http://example.com/tracker.png",
        "https://documents.fusion.invalid/media/secret.txt",
        "https://documents.fusion.invalid/static/../fusion_site/settings.py",
        "https://documents.fusion.invalid/static/%2e%2e/manage.py",
        "file:///etc/passwd",
        "data:text/plain,hello",
    ):
        with pytest.raises(pdf.RefusedUrl):
            fetcher.fetch(url)


def test_rendering_opens_no_network_connection(billed, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("a document tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)

    content = pdf.render_pdf("billing/invoice.html", {"invoice": billed, "recipient": {}, "lines": []})

    assert billed.number in _text(content)


def test_missing_system_libraries_fail_with_the_debian_package_to_install(monkeypatch):
    from django.core.checks import run_checks

    monkeypatch.setattr(pdf, "weasyprint_problem", lambda: "WeasyPrint cannot load its system libraries")

    (warning,) = [m for m in run_checks() if m.id == "fusion_site.W002"]
    assert "apt-get install libpango-1.0-0" in str(warning.hint)
    with pytest.raises(pdf.PdfUnavailable, match="system libraries"):
        pdf.render_pdf("billing/invoice.html", {})


def test_a_download_where_pdfs_cannot_be_made_says_so(client, billed, finance, monkeypatch):
    monkeypatch.setattr(pdf, "weasyprint_problem", lambda: "WeasyPrint cannot load its system libraries")
    client.force_login(finance)

    response = client.get(f"/billing/invoices/{billed.pk}/pdf/")

    assert response.status_code == 503
    assert "PDF documents cannot be made" in response.content.decode()


# Emailed at finalisation.


def test_finalising_emails_each_invoice_once_to_the_billing_contact_with_its_pdf(
    partner, profile, agent, finance
):
    customers = [january_charges(full_customer(partner), agent) for _ in range(2)]
    ContactFactory(customer=customers[0], role=Contact.ContactRole.BILLING, email="accounts@acme.example")

    with run_on_commit():
        run = finalised_run(partner, JANUARY, agent=agent, finance=finance)

    invoices = {invoice.customer_id: invoice for invoice in run.invoices.all()}
    assert len(mail.outbox) == 2
    by_number = {message.subject.split()[2]: message for message in mail.outbox}
    first = by_number[invoices[customers[0].pk].number]
    assert first.to == ["accounts@acme.example"]  # the billing contact, not the primary one
    ((filename, content, mimetype),) = first.attachments
    assert (filename, mimetype) == (f"invoice-{invoices[customers[0].pk].number}.pdf", "application/pdf")
    assert invoices[customers[0].pk].number in _text(content)
    delivery = InvoiceDelivery.objects.get(invoice=invoices[customers[0].pk])
    assert (delivery.status, delivery.attempts, delivery.recipient) == ("sent", 1, "a***@a***.example")
    assert delivery.sent_at is not None

    # Finalising again, queueing again, or the task delivered twice: nothing is sent twice.
    bill_run_finalise(bill_run=run, actor=finance)
    assert invoice_deliveries_queue(invoices=list(run.invoices.all()), actor=finance) == 0
    send_invoice_email.apply(args=[delivery.pk])
    assert len(mail.outbox) == 2
    assert InvoiceDelivery.objects.filter(status="sent").count() == 2


def _mail_server_fails_once(monkeypatch, failure: Exception) -> None:
    real_send = EmailBackend.send_messages
    failures = iter([failure])

    def flaky(self, messages):
        failing = next(failures, None)
        if failing is not None:
            raise failing
        return real_send(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", flaky)


def test_a_mail_server_failure_is_recorded_and_retried_then_sent_once(
    partner, profile, agent, finance, monkeypatch
):
    january_charges(full_customer(partner), agent)
    _mail_server_fails_once(monkeypatch, smtplib.SMTPRecipientsRefused({"jane@example.com": (451, b"later")}))
    run = finalised_run(partner, JANUARY, agent=agent, finance=finance)
    (delivery_id,) = InvoiceDelivery.objects.filter(invoice__bill_run=run).values_list("pk", flat=True)
    # As a worker runs it (tasks not in-process): a failure asks to be retried.
    monkeypatch.setitem(send_invoice_email.app.conf, "task_always_eager", False)

    with pytest.raises(Retry) as retry:
        send_invoice_email.apply(args=[delivery_id])

    assert retry.value.when == 60  # then 120, 240 ... at most an hour apart
    assert "jane" not in str(retry.value)
    delivery = InvoiceDelivery.objects.get(pk=delivery_id)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert delivery.last_error == "SMTPRecipientsRefused"  # no address, no server text
    assert mail.outbox == []

    assert send_invoice_email.apply(args=[delivery_id], retries=1).get() == "sent"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("sent", 2, "")
    send_invoice_email.apply(args=[delivery_id])
    assert len(mail.outbox) == 1


def test_in_process_tasks_record_a_failure_without_breaking_the_finalisation_and_the_sweep_retries(
    partner, profile, agent, finance, monkeypatch, clock
):
    january_charges(full_customer(partner), agent)
    _mail_server_fails_once(monkeypatch, smtplib.SMTPServerDisconnected("gone"))

    with run_on_commit():
        run = finalised_run(partner, JANUARY, agent=agent, finance=finance)

    delivery = InvoiceDelivery.objects.get(invoice__bill_run=run)
    assert (delivery.status, delivery.last_error) == ("failed", "SMTPServerDisconnected")
    assert invoice_emails_sweep.apply().get() == 0  # not yet: an hour after the last try
    clock.shift(datetime.timedelta(minutes=61))
    assert invoice_emails_sweep.apply().get() == 1
    assert invoice_emails_sweep.apply().get() == 0
    assert len(mail.outbox) == 1
    assert InvoiceDelivery.objects.get(pk=delivery.pk).status == "sent"


def test_the_delivery_status_is_on_the_invoice_page_for_staff_only(client, billed, finance, make_user):
    client.force_login(finance)
    staff_page = client.get(f"/billing/invoices/{billed.pk}/").content.decode()
    client.force_login(make_user(Role.CUSTOMER, customer=billed.customer))
    portal_page = client.get(f"/billing/invoices/{billed.pk}/").content.decode()

    assert 'id="delivery"' in staff_page and "<strong>Sent</strong>" in staff_page
    assert "a***@a***.example" in staff_page
    assert 'id="delivery"' not in portal_page
