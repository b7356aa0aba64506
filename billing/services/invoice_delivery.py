"""Invoices emailed with their PDF when a bill run is finalised (``billing.InvoiceDelivery``).

``invoice_deliveries_queue`` runs inside the finalisation's transaction: one delivery row per invoice
(inserted once: a second finalisation, or a retried one, finds them) and, on commit, one Celery task per
delivery (``billing.tasks.send_invoice_email``). ``invoice_delivery_send`` is the task's work: under the
delivery's row lock it sends nothing for a delivery already sent, so no invoice is sent twice; a failure of
the mail server is recorded (kind and SMTP code, never the address or the server's words) and raised again
for the task to retry with backoff.
"""

import datetime
import smtplib
from collections.abc import Sequence

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from accounts.pii import mask_email
from accounts.services import system_user
from billing import documents
from billing.models import Invoice, InvoiceDelivery
from billing.services.direct_debit import notice_addresses
from fusion_site.money import format_money
from fusion_site.pdf import PdfUnavailable

INVOICE_DELIVERY_JOB = "invoice-delivery"
NO_ADDRESS = "No billing or primary contact with an email address"
# What a retry may cure: the mail server refusing or unreachable. Anything else is a defect, not retried.
TRANSIENT_MAIL_ERRORS: tuple[type[BaseException], ...] = (smtplib.SMTPException, OSError)
# A server that cannot make PDFs (Pango missing) is recorded and tried again too, once it is installed.
RETRIED_FAILURES: tuple[type[BaseException], ...] = (*TRANSIENT_MAIL_ERRORS, PdfUnavailable)


class InvoiceDeliveryFailed(Exception):
    """The mail server failed; the message names the kind of failure only (it is logged and stored by the
    task queue, so it carries no address and none of the server's words)."""


def invoice_deliveries_queue(*, invoices: Sequence[Invoice], actor: User) -> int:
    """Queue the email of each finalised invoice that has no delivery yet; returns how many were queued.
    Called in the finalisation's transaction: the tasks start once it commits."""
    from billing.tasks import send_invoice_email

    finalised = [invoice for invoice in invoices if invoice.status == Invoice.Status.FINALISED]
    if not finalised:
        return 0
    now = timezone.now()
    existing = set(
        InvoiceDelivery.objects.filter(invoice__in=[i.pk for i in finalised]).values_list(
            "invoice_id", flat=True
        )
    )
    InvoiceDelivery.objects.bulk_create(
        [
            InvoiceDelivery(invoice=invoice, queued_at=now)
            for invoice in finalised
            if invoice.pk not in existing
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    queued = list(
        InvoiceDelivery.objects.filter(
            invoice__in=[i.pk for i in finalised], status=InvoiceDelivery.Status.QUEUED
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if queued:
        audit_record(actor=actor, action="billing.invoice_emails_queued", detail={"invoices": len(queued)})
        transaction.on_commit(lambda: [send_invoice_email.delay(pk) for pk in queued])
    return len(queued)


def _error_text(exc: BaseException) -> str:
    """The failure without personal data: an SMTP error's text can quote the recipient, so only its kind
    and code are kept."""
    code = getattr(exc, "smtp_code", None)
    return f"{type(exc).__name__}{f' {code}' if code else ''}"[:200]


def invoice_delivery_send(*, delivery_id: int) -> InvoiceDelivery:
    """Email the invoice with its PDF to the customer's billing contact (else the primary contact), once.

    A delivery already sent sends nothing. A mail server failure, or a server that cannot make PDFs, is
    recorded on the row (attempts, kind of error, status failed) and raised again, for the task to retry;
    a customer with no address to send to is recorded as failed and not retried."""
    actor = system_user(job=INVOICE_DELIVERY_JOB)
    failure: str = ""
    with transaction.atomic():
        delivery = InvoiceDelivery.objects.select_for_update().select_related("invoice").get(pk=delivery_id)
        if delivery.status == InvoiceDelivery.Status.SENT:
            return delivery
        invoice = delivery.invoice
        now = timezone.now()
        delivery.attempts += 1
        delivery.last_attempt_at = now
        address = (
            notice_addresses({invoice.customer_id}).get(invoice.customer_id) if invoice.customer_id else None
        )
        if address is None:
            delivery.status, delivery.last_error = InvoiceDelivery.Status.FAILED, NO_ADDRESS
        else:
            delivery.recipient = mask_email(address)
            try:
                _message(invoice, address).send(fail_silently=False)
            except RETRIED_FAILURES as exc:
                failure = _error_text(exc)
                delivery.status, delivery.last_error = InvoiceDelivery.Status.FAILED, failure
            else:
                delivery.status, delivery.sent_at, delivery.last_error = InvoiceDelivery.Status.SENT, now, ""
        delivery.save()
        audit_record(
            actor=actor,
            action=f"billing.invoice_email_{delivery.status}",
            target=invoice,
            detail={
                "attempt": delivery.attempts,
                **({"error": delivery.last_error} if delivery.last_error else {}),
            },
        )
    if failure:
        raise InvoiceDeliveryFailed(f"Invoice delivery {delivery_id}: {failure}")
    return delivery


def invoice_deliveries_unsent(*, now: datetime.datetime, max_attempts: int) -> list[int]:
    """Deliveries still to send an hour after they were queued or last tried, with attempts left: a task
    lost with its worker, or a failure whose retries ran out while the mail server was down."""
    stale = now - datetime.timedelta(hours=1)
    return list(
        InvoiceDelivery.objects.filter(
            status__in=[InvoiceDelivery.Status.QUEUED, InvoiceDelivery.Status.FAILED],
            attempts__lt=max_attempts,
        )
        .exclude(last_error=NO_ADDRESS)
        .filter(Q(last_attempt_at__lte=stale) | Q(last_attempt_at__isnull=True, queued_at__lte=stale))
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _message(invoice: Invoice, address: str) -> EmailMessage:
    recipient = {"name": invoice.customer_name, "address": invoice.customer_address}
    body = (
        f"Dear customer,\n\nYour invoice {invoice.number} from {invoice.supplier_name}, for "
        f"{invoice.period_start:%B %Y}, is attached as a PDF.\n\n"
        f"Account: {invoice.customer_reference}\nInvoice date: {invoice.issue_date:%d %B %Y}\n"
        f"Total: {format_money(invoice.gross)}\n\n"
        "You can also see your invoices and statement by logging in to your account.\n"
    )
    message = EmailMessage(
        subject=f"Your invoice {invoice.number} from {invoice.supplier_name}",
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
    )
    message.attach(
        documents.invoice_filename(invoice), documents.invoice_pdf(invoice, recipient), "application/pdf"
    )
    return message
