"""Invoices emailed to the customer: one ``InvoiceDelivery`` per finalised invoice.

Imported at the end of ``billing.models`` (so it is billing's model), like the ledger's and dunning's.

Finalising a bill run queues one delivery per invoice (``billing.services.invoice_delivery``), and a Celery
task per delivery emails the invoice as a PDF to the customer's billing contact (else the primary contact).
The row is the guard that makes sending idempotent: one per invoice (a unique constraint), sent only while
not ``sent`` and under its row lock, so a finalisation retried, a task delivered twice or a retry after a
failure never sends the same invoice twice. ``last_error`` names the failure's kind and SMTP code only,
never the address or the server's text (which can quote it); ``recipient`` is the address masked
(``accounts.pii.mask_email``: the first letter and the domain), enough for staff to see where it went.
"""

from django.db import models

from billing.models import Invoice


class InvoiceDelivery(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    invoice = models.OneToOneField(Invoice, on_delete=models.CASCADE, related_name="delivery")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipient = models.CharField(max_length=254, blank=True, help_text="The address it was sent to, masked.")

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [models.Index(fields=["status"], name="invoicedelivery_status")]
        constraints = [
            models.CheckConstraint(
                name="invoicedelivery_sent_has_time",
                condition=~models.Q(status="sent") | models.Q(sent_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"delivery of invoice {self.invoice_id} ({self.status})"
