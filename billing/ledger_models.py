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
from decimal import Decimal
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
    # What of the payment is still the customer's credit: derived from the allocations and entries and kept
    # by ``billing.services.ledger`` in the transaction that writes them (``refresh_cached_amounts``).
    amount_unallocated = _money(default=Decimal("0"), db_default=Decimal("0"), editable=False)

    # The cached amount is the ledger's to keep; the history records the receipt.
    history = HistoricalRecords(excluded_fields=["amount_unallocated"])

    class Meta:
        ordering = ["received_on", "id"]
        indexes = [
            models.Index(fields=["customer", "received_on"], name="payment_customer_received"),
            # The payments holding credit, found per account without reading its paid history.
            models.Index(
                fields=["customer", "received_on", "id"],
                condition=Q(amount_unallocated__gt=0),
                name="payment_with_credit",
            ),
        ]
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


class DirectDebitCollection(models.Model):
    """One invoice collected by Direct Debit in a submission, and the payment that collection put on the
    ledger (``billing.services.direct_debit``). A Bacs Direct Debit is good unless the payer's bank returns
    it (ARUDD): the scheme sends no confirmation of a paid one, so the payment is recorded when the file
    is made, received on the debit (entry) day, and reversed by the ARUDD item that returns it or by the
    submission's cancellation. ``mandate_id`` names the ``accounts.PaymentDetails`` collected from (not a
    key: erasure deletes mandates with raw deletes; the row keeps no personal data of its own).

    A re-presentation (ARUDD 0, "refer to payer") is recorded as due here (``representation_due_by``) and
    made by ``billing.services.direct_debit_representation`` as a collection with ``represents`` set and
    transaction code 18, which is never re-presented again. A collection made again after ARUDD 9 (a fresh
    advance notice) also ``represents`` the one returned, with transaction code 17. ``action`` holds the
    ARUDD item's action, or what became of a due re-presentation that was not made (left to dunning,
    settled otherwise)."""

    class Outcome(models.TextChoices):
        COLLECTED = "", "Collected"
        RETURNED = "returned", "Returned unpaid (ARUDD)"
        CANCELLED = "cancelled", "Submission cancelled"

    submission = models.ForeignKey(
        "billing.DirectDebitSubmission", on_delete=models.PROTECT, related_name="collection_rows"
    )
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="direct_debit_collections")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    mandate_id = models.PositiveBigIntegerField()
    payment = models.OneToOneField(Payment, on_delete=models.PROTECT, related_name="direct_debit_collection")
    amount_pence = models.PositiveBigIntegerField()
    processing_date = models.DateField(help_text="Bacs processing day of the file that carries it.")
    debit_date = models.DateField(help_text="Entry day: the day the payer is debited.")
    transaction_code = models.CharField(max_length=2, help_text="Standard 18: 01, 17, 18 (re-presented).")
    represents = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="representations"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.COLLECTED, blank=True)
    returned_reason_code = models.CharField(max_length=2, blank=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    # The ARUDD item's action (billing.bacs_reports.Action) and, for "refer to payer", the last day the
    # re-presentation may be processed on.
    action = models.CharField(max_length=40, blank=True)
    representation_due_by = models.DateField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["processing_date", "id"]
        indexes = [
            # An ARUDD item is matched on its processing day and amount, then the mandate's reference.
            models.Index(fields=["processing_date", "amount_pence"], name="ddcollection_match"),
        ]
        constraints = [
            # A re-submitted run never collects an invoice twice: one first presentation of an invoice
            # that is not cancelled.
            models.UniqueConstraint(
                fields=["invoice"],
                condition=Q(represents__isnull=True) & ~Q(outcome="cancelled"),
                name="ddcollection_invoice_collected_once",
            ),
            # And it is re-presented once.
            models.UniqueConstraint(
                fields=["represents"],
                condition=Q(represents__isnull=False) & ~Q(outcome="cancelled"),
                name="ddcollection_represented_once",
            ),
            models.CheckConstraint(name="ddcollection_amount_positive", condition=Q(amount_pence__gt=0)),
        ]

    def __str__(self) -> str:
        return f"Direct Debit collection of invoice {self.invoice_id} ({self.processing_date})"


class BacsReportImport(models.Model):
    """One ARUDD or ADDACS report imported, once: its id is unique per service user number, and the
    file's SHA-256 is kept. What each item did is in the ledger and the mandates' history; what could not
    be applied is in its errors."""

    class Kind(models.TextChoices):
        ARUDD = "ARUDD", "ARUDD (unpaid Direct Debits)"
        ADDACS = "ADDACS", "ADDACS (instruction amendments and cancellations)"

    partner = models.ForeignKey(
        "accounts.Partner", on_delete=models.PROTECT, related_name="bacs_report_imports"
    )
    kind = models.CharField(max_length=6, choices=Kind.choices)
    service_user_number = models.CharField(max_length=6)
    report_id = models.CharField(max_length=80)
    file_name = models.CharField(max_length=200)
    sha256 = models.CharField(max_length=64)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField()
    items = models.PositiveIntegerField(default=0)
    applied = models.PositiveIntegerField(default=0)
    already_applied = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-imported_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["service_user_number", "report_id"], name="bacsreport_imported_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} report {self.report_id}"


class BacsReportImportError(models.Model):
    """An item that was not applied: its line and why. The item itself is not kept (it names a payer)."""

    report_import = models.ForeignKey(BacsReportImport, on_delete=models.CASCADE, related_name="errors")
    line_number = models.PositiveIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["line_number", "id"]

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.reason}" if self.line_number else self.reason
