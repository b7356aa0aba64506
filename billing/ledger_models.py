"""The customer account ledger: payments, their allocation to invoices, write-offs, and the entries that
record every movement of money on an account.

Imported at the end of ``billing.models`` (so these are billing's models); kept apart so the ledger's
rules read in one place.

- A ``LedgerEntry`` is signed: positive means the customer owes more (an invoice, a refund paid out, an
  unpaid Direct Debit), negative means less (a credit note, a payment, a write-off). The balance of an
  account is the sum of its entries. Entries are never changed or deleted in normal use: a correction is
  a new entry (``save`` refuses an update, the queryset refuses ``update``/``delete``).
- A ``PaymentAllocation`` says how much of a payment settles which invoice. Allocations are immutable too:
  moving money between invoices writes a reversing row (negative, naming the row it reverses, who and
  why) and a new row. The outstanding amount of an invoice is the sum of the entries that name it (its
  own, its credit notes', its write-offs') less what is allocated to it; the services keep it between
  zero and the invoice's gross.
- A ``WriteOff`` is asked for by one person and approved by a finance manager who is someone else (four
  eyes, also a CHECK); only the approval posts its entry.
"""

import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from simple_history.models import HistoricalRecords

from accounts.models import Customer
from billing.models import CreditNote, Invoice, _money

# Days after its issue that an invoice falls due: the aged debt report counts overdue days from then.
INVOICE_PAYMENT_TERMS_DAYS = 14


def invoice_due_date(issue_date: datetime.date) -> datetime.date:
    return issue_date + datetime.timedelta(days=INVOICE_PAYMENT_TERMS_DAYS)


class ImmutableRowError(Exception):
    """A ledger row was about to be changed or deleted; post a correcting row instead."""


class _InsertOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        raise ImmutableRowError(f"{self.model.__name__} rows are never updated; post a correction.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ImmutableRowError(f"{self.model.__name__} rows are never deleted; post a correction.")


class _InsertOnlyModel(models.Model):
    objects = _InsertOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ImmutableRowError(f"{type(self).__name__} {self.pk} is immutable; post a correction.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ImmutableRowError(f"{type(self).__name__} {self.pk} is immutable; post a correction.")


class Payment(models.Model):
    """Money received from a customer. What became of it (allocated, refunded, returned unpaid) is in
    its allocations and ledger entries; the row itself records the receipt and is not edited."""

    class Method(models.TextChoices):
        DIRECT_DEBIT = "direct_debit", "Direct Debit"
        CARD = "card", "Card"
        BANK_TRANSFER = "bank_transfer", "Bank transfer"
        CHEQUE = "cheque", "Cheque"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    method = models.CharField(max_length=20, choices=Method.choices)
    amount = _money()
    received_on = models.DateField()
    reference = models.CharField(max_length=60, blank=True, help_text="Bank or card reference.")
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["received_on", "id"]
        indexes = [models.Index(fields=["customer", "received_on"], name="payment_customer_received")]
        constraints = [models.CheckConstraint(name="payment_amount_positive", condition=Q(amount__gt=0))]
        permissions = [
            ("refund_payment", "Can refund a customer's account credit"),
            ("reallocate_payment", "Can move a payment between invoices"),
            ("reverse_payment", "Can record a payment returned unpaid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_method_display()} payment of {self.amount} on {self.received_on}"


class WriteOff(models.Model):
    """A request to stop collecting (part of) an invoice, approved or rejected by a finance manager who
    did not ask for it."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Awaiting approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="write_offs")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="write_offs")
    amount = _money()
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "requested_at"], name="writeoff_status_requested")]
        constraints = [
            models.CheckConstraint(name="writeoff_amount_positive", condition=Q(amount__gt=0)),
            models.CheckConstraint(
                name="writeoff_four_eyes",
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
            ),
            models.CheckConstraint(
                name="writeoff_decision_complete",
                condition=Q(status="requested", decided_by__isnull=True, decided_at__isnull=True)
                | (~Q(status="requested") & Q(decided_by__isnull=False, decided_at__isnull=False)),
            ),
        ]
        permissions = [("approve_writeoff", "Can approve or reject write-offs (finance, four eyes)")]

    def __str__(self) -> str:
        return f"Write-off of {self.amount} ({self.get_status_display()})"


class LedgerEntry(_InsertOnlyModel):
    """One movement of money on a customer's account; positive = the customer owes more."""

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"
        PAYMENT = "payment", "Payment"
        REFUND = "refund", "Refund"
        UNPAID_REVERSAL = "unpaid_reversal", "Payment returned unpaid"
        WRITE_OFF = "write_off", "Write-off"
        ADJUSTMENT = "adjustment", "Adjustment"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = _money()
    effective_on = models.DateField()
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    credit_note = models.ForeignKey(
        CreditNote, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    write_off = models.ForeignKey(
        WriteOff, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["effective_on", "id"]
        verbose_name_plural = "ledger entries"
        permissions = [("post_adjustment", "Can post an adjustment to a customer's account")]
        indexes = [
            # Balance and statement: a customer's entries in date order.
            models.Index(fields=["customer", "effective_on", "id"], name="ledger_customer_date"),
        ]
        constraints = [
            models.CheckConstraint(name="ledger_amount_not_zero", condition=~Q(amount=0)),
            models.CheckConstraint(
                name="ledger_invoice_entry",
                condition=~Q(kind="invoice") | Q(invoice__isnull=False, amount__gt=0),
            ),
            models.CheckConstraint(
                name="ledger_credit_note_entry",
                condition=~Q(kind="credit_note")
                | Q(credit_note__isnull=False, invoice__isnull=False, amount__lt=0),
            ),
            models.CheckConstraint(
                name="ledger_payment_entry",
                condition=~Q(kind="payment") | Q(payment__isnull=False, amount__lt=0),
            ),
            models.CheckConstraint(
                name="ledger_refund_entry",
                condition=~Q(kind="refund") | Q(payment__isnull=False, amount__gt=0),
            ),
            models.CheckConstraint(
                name="ledger_unpaid_reversal_entry",
                condition=~Q(kind="unpaid_reversal") | Q(payment__isnull=False, amount__gt=0),
            ),
            models.CheckConstraint(
                name="ledger_write_off_entry",
                condition=~Q(kind="write_off")
                | Q(write_off__isnull=False, invoice__isnull=False, amount__lt=0),
            ),
            # Only documents name an invoice: its own entry, its credit notes', its write-offs'. What is
            # outstanding on an invoice is their sum less its allocations (payments settle invoices
            # through allocations, not through entries).
            models.CheckConstraint(
                name="ledger_invoice_only_on_documents",
                condition=Q(invoice__isnull=True) | Q(kind__in=["invoice", "credit_note", "write_off"]),
            ),
            models.CheckConstraint(
                name="ledger_correction_has_reason",
                condition=~Q(kind__in=["adjustment", "refund", "unpaid_reversal", "write_off"])
                | ~Q(reason=""),
            ),
            # Each document and each payment is posted once, and a payment returned unpaid once: posting
            # twice (a retried finalisation, an unpaid report imported twice) is refused by the database.
            models.UniqueConstraint(
                fields=["invoice"], condition=Q(kind="invoice"), name="ledger_invoice_posted_once"
            ),
            models.UniqueConstraint(
                fields=["credit_note"], condition=Q(kind="credit_note"), name="ledger_credit_note_posted_once"
            ),
            models.UniqueConstraint(
                fields=["payment"], condition=Q(kind="payment"), name="ledger_payment_posted_once"
            ),
            models.UniqueConstraint(
                fields=["payment"], condition=Q(kind="unpaid_reversal"), name="ledger_payment_reversed_once"
            ),
            models.UniqueConstraint(
                fields=["write_off"], condition=Q(kind="write_off"), name="ledger_write_off_posted_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount} on {self.effective_on}"


class PaymentAllocation(_InsertOnlyModel):
    """Part of a payment settling an invoice, or (negative, with ``reverses``) the undoing of such a part."""

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="allocations")
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = _money()
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    reason = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                name="allocation_sign_matches_reversal",
                condition=Q(reverses__isnull=True, amount__gt=0)
                | (Q(reverses__isnull=False, amount__lt=0) & ~Q(reason="")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} of payment {self.payment_id} to invoice {self.invoice_id}"
