"""Tariffs, call records, charges, bill runs, invoices and credit notes.

Money is Decimal with the precisions of fusion_site.money. Invoices and credit notes are legal
documents: foreign keys to them PROTECT, a finalised invoice is never edited, and numbers are assigned
only at finalisation, gapless per partner (PartnerBillingProfile holds the counters, locked while used).
"""

import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from accounts.models import Customer, Line, Partner
from fusion_site.fields import BulkEncryptedTextField, EncryptedTextField
from fusion_site.models import TimeStampedModel
from fusion_site.money import COST_DIGITS, MONEY_DIGITS, STANDARD_VAT_RATE


def _money(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=MONEY_DIGITS, decimal_places=2, **kwargs)  # type: ignore[arg-type]


def _cost(**kwargs: object) -> models.DecimalField:
    return models.DecimalField(max_digits=COST_DIGITS, decimal_places=4, **kwargs)  # type: ignore[arg-type]


# The leading digits of a dialled number kept in clear on each call, and so the longest rate prefix that
# can ever match (billing.rating joins on them).
DIALLED_PREFIX_LENGTH = 8


class Band(models.TextChoices):
    """UK destination bands, by the prefix of the dialled number."""

    GEOGRAPHIC = "geographic", "UK geographic (01/02/03)"
    MOBILE = "mobile", "UK mobile (07)"
    FREEPHONE = "freephone", "Freephone (080)"
    NON_GEOGRAPHIC = "non_geographic", "Non-geographic (084/087)"
    PREMIUM = "premium", "Premium rate (09)"
    INTERNATIONAL = "international", "International (00)"
    OTHER = "other", "Other"


class Tariff(TimeStampedModel):
    """A price plan. Its rates change over time through effective-dated rate cards."""

    partner = models.ForeignKey(
        Partner,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tariffs",
        help_text="Empty for a tariff of the provider that every partner may use.",
    )
    name = models.CharField(max_length=100)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RateCard(TimeStampedModel):
    """The rates of a tariff over [effective_from, effective_to)."""

    tariff = models.ForeignKey(Tariff, on_delete=models.CASCADE, related_name="rate_cards")
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["tariff", "effective_from"]
        constraints = [
            models.CheckConstraint(
                name="ratecard_ends_after_start",
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=models.F("effective_from")),
            ),
            models.UniqueConstraint(fields=["tariff", "effective_from"], name="ratecard_unique_start"),
        ]

    def __str__(self) -> str:
        return f"{self.tariff} from {self.effective_from:%Y-%m-%d}"

    def clean(self) -> None:
        """One card at a time: a new card must start after the previous one ends (close it first)."""
        if self.effective_from is None or self.tariff_id is None:
            return
        overlapping = RateCard.objects.filter(tariff_id=self.tariff_id).exclude(pk=self.pk)
        overlapping = overlapping.filter(
            Q(effective_to__isnull=True) | Q(effective_to__gt=self.effective_from)
        )
        if self.effective_to is not None:
            overlapping = overlapping.filter(effective_from__lt=self.effective_to)
        if overlapping.exists():
            raise ValidationError(
                {
                    "effective_from": "This period overlaps another rate card of the tariff; "
                    "end that card first."
                }
            )


class Rate(models.Model):
    """Price of calls whose dialled number starts with ``prefix`` (national format: 01, 07, 0800, 00353)."""

    rate_card = models.ForeignKey(RateCard, on_delete=models.CASCADE, related_name="rates")
    prefix = models.CharField(max_length=12)
    band = models.CharField(max_length=20, choices=Band.choices)
    price_per_minute = _cost()
    connection_charge = _cost(default=Decimal("0"))
    minimum_charge = _cost(default=Decimal("0"))
    increment_seconds = models.PositiveSmallIntegerField(
        default=1, help_text="Billing increment; 1 = per second."
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["rate_card", "prefix"]
        constraints = [
            models.UniqueConstraint(fields=["rate_card", "prefix"], name="rate_unique_prefix"),
            models.CheckConstraint(name="rate_prefix_digits", condition=Q(prefix__regex=r"^[0-9]+$")),
            models.CheckConstraint(name="rate_increment_positive", condition=Q(increment_seconds__gte=1)),
            models.CheckConstraint(
                name="rate_prices_not_negative",
                condition=Q(price_per_minute__gte=0, connection_charge__gte=0, minimum_charge__gte=0),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix} ({self.get_band_display()})"

    def clean(self) -> None:
        super().clean()
        # Calls are matched in the form dialled from the UK (billing.importer.parse.normalise_dialled): a UK
        # number is 0 and its national significant number, never 0044, and a country code never starts
        # with 0. A rate for such a prefix would never match a call.
        if self.prefix.startswith("0044"):
            raise ValidationError(
                {"prefix": "Rate UK numbers by their national form: 0 then the number (020, not 004420)."}
            )
        if self.prefix.startswith("000"):
            raise ValidationError({"prefix": "After 00 comes a country code, which never starts with 0."})
        if len(self.prefix) > DIALLED_PREFIX_LENGTH:
            raise ValidationError(
                {"prefix": f"Rating matches at most the first {DIALLED_PREFIX_LENGTH} digits of a number."}
            )


class PartnerBillingProfile(TimeStampedModel):
    """What a partner's invoices say about the supplier, its default tariff, and its number counters.

    The counters are only ever advanced under ``select_for_update`` of this row, during finalisation."""

    partner = models.OneToOneField(Partner, on_delete=models.PROTECT, related_name="billing_profile")
    default_tariff = models.ForeignKey(
        Tariff, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    legal_name = models.CharField(max_length=200)
    address = models.TextField()
    vat_number = models.CharField(max_length=20)
    invoice_prefix = models.CharField(max_length=10)
    next_invoice_number = models.PositiveIntegerField(default=1)
    next_credit_note_number = models.PositiveIntegerField(default=1)
    # Bacs originator: the partner's service user number and the account collections are paid into.
    bacs_service_user_number = models.CharField(max_length=6, blank=True)
    bacs_sort_code = models.CharField(max_length=6, blank=True)
    bacs_account_number = models.CharField(max_length=8, blank=True)
    bacs_account_name = models.CharField(max_length=18, blank=True)

    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"Billing profile of {self.partner}"


class CustomerTariff(TimeStampedModel):
    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="tariff_assignment")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="customer_assignments")

    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"{self.customer.reference} on {self.tariff}"


class LineTariff(TimeStampedModel):
    """A line on a tariff of its own, overriding its customer's."""

    line = models.OneToOneField(Line, on_delete=models.CASCADE, related_name="tariff_assignment")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, related_name="line_assignments")

    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"Line {self.line_id} on {self.tariff}"


class CallImport(TimeStampedModel):
    """One CSV file of call records and what became of each of its lines."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="call_imports")
    file_name = models.CharField(max_length=255)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    lines_read = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    suspense = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Import {self.pk} ({self.file_name})"


class CallImportError(models.Model):
    """A rejected line: its number and why. The line itself is not kept (it may hold personal data)."""

    call_import = models.ForeignKey(CallImport, on_delete=models.CASCADE, related_name="errors")
    line_number = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)

    class Meta:
        ordering = ["line_number"]

    def __str__(self) -> str:
        return f"line {self.line_number}: {self.reason}"


# Statuses of calls not (yet) rated: few at any time, so their indexes cost the import almost nothing.
UNRATED = ("pending", "suspense")


def _derived_link(to: type[models.Model], **options: Any) -> models.ForeignKey[Any, Any]:
    """A link of a call record that only the import and rating statements write, from the row they join:
    no database constraint (a deferred check per row at every commit) and no index of its own."""
    return models.ForeignKey(to, db_index=False, db_constraint=False, **options)


class CallRecord(models.Model):
    """One call from a line, rated into a cost (or held in suspense with the reason)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting rating"
        RATED = "rated", "Rated"
        SUSPENSE = "suspense", "In suspense"
        WAIVED = "waived", "Waived (not billed)"

    class SuspenseReason(models.TextChoices):
        UNKNOWN_CLI = "unknown_cli", "No line has this number"
        NO_TARIFF = "no_tariff", "The line has no tariff"
        UNRATEABLE = "unrateable", "No rate for this destination"

    # Every index and foreign-key check here is paid once per imported call, a million times a month, so
    # only what the queries use is kept: the full indexes serve billing (by customer) and deduplication; the
    # others cover only calls awaiting rating or in suspense, which are few. Billing never rewrites a call:
    # the invoice that bills it is recorded in BilledCall.
    #
    # partner, line, customer, rate and call_import are written only by the import and rating statements,
    # from rows they join at that moment (the import's partner, the matched line and its customer, the
    # chosen rate), so they carry no database constraint (a deferred check per row at every commit) nor an
    # index of their own; the ORM still applies on_delete to them. Lines and customers are ended, not
    # deleted, in normal use; erasure deletes a customer's calls by customer first.
    call_reference = models.CharField(max_length=64)
    call_import = _derived_link(CallImport, null=True, on_delete=models.SET_NULL, related_name="calls")
    partner = _derived_link(Partner, on_delete=models.PROTECT, related_name="+")
    cli = BulkEncryptedTextField(help_text="The calling line's number (E.164).")
    cli_index = models.CharField(max_length=64)
    dialled_number = BulkEncryptedTextField(help_text="National format, e.g. 01134960000 or 0035312345678.")
    # The leading digits rating matches prefixes against; the rest of the number stays encrypted.
    dialled_prefix = models.CharField(max_length=DIALLED_PREFIX_LENGTH)
    started_at = models.DateTimeField()
    # The call's date in UK time: what line dates and billing periods are compared with, on any database.
    started_on = models.DateField()
    duration_seconds = models.PositiveIntegerField()
    call_type = models.CharField(max_length=20)
    line = _derived_link(Line, null=True, blank=True, on_delete=models.CASCADE, related_name="calls")
    customer = _derived_link(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="calls")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    suspense_reason = models.CharField(max_length=20, choices=SuspenseReason.choices, blank=True)
    rate = _derived_link(Rate, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    band = models.CharField(max_length=20, choices=Band.choices, blank=True)
    cost = _cost(null=True, blank=True)

    class Meta:
        ordering = ["started_at"]
        indexes = [
            models.Index(fields=["customer", "status", "started_on"], name="call_customer_status_day"),
            models.Index(
                fields=["partner", "status", "started_on"],
                name="call_unrated_partner_day",
                condition=Q(status__in=UNRATED),
            ),
            models.Index(fields=["cli_index"], name="call_unrated_cli", condition=Q(status__in=UNRATED)),
            models.Index(
                fields=["call_import", "status"], name="call_unrated_import", condition=Q(status__in=UNRATED)
            ),
        ]
        # On PostgreSQL the table is partitioned by month of started_on (billing/partitions.py; migration
        # 0024): its primary key is (id, started_on) there, and a reference's uniqueness, which a
        # partitioned table cannot enforce across months, is CallReference's.
        constraints = [
            models.CheckConstraint(
                name="call_rated_has_cost",
                condition=~Q(status="rated")
                | Q(cost__isnull=False, rate__isnull=False, customer__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.call_reference


class CallReference(models.Model):
    """A partner's call reference, once: what makes importing a file twice import nothing twice.

    A reference is the partner's network's: two partners may use the same one for different calls. The
    import inserts the batch's references here first (ON CONFLICT DO NOTHING) and stores only the calls
    whose reference was new; the call records themselves, partitioned by month on PostgreSQL, cannot hold
    a unique constraint that spans months. A reference goes with its call (erasure, retention), so the
    table holds as many rows as the calls kept. A file re-imported after retention deleted its calls
    loads them again, but harmlessly: they are older than any bill run's reach (BILL_RUN_LATE_CALL_MONTHS),
    so never billed, and past their period, so the next retention run deletes them (on PostgreSQL they
    land in the default partition, which the partition task reports).

    Written only by the import's statements, from the rows they insert: its links carry no database
    constraint (a call's key on PostgreSQL is (id, started_on), which a foreign key would have to name)."""

    partner = _derived_link(Partner, on_delete=models.PROTECT, related_name="+")
    call_reference = models.CharField(max_length=64)
    # The key: references are deleted by their calls' ids (erasure, retention's rows) or by month.
    call = models.OneToOneField(
        CallRecord, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # The call's started_on: which month's partition holds it, and which references retention drops with
    # a month.
    started_on = models.DateField()

    class Meta:
        constraints = [
            # The import's ON CONFLICT names these columns.
            models.UniqueConstraint(
                fields=["partner", "call_reference"], name="call_reference_unique_partner"
            ),
        ]

    def __str__(self) -> str:
        return self.call_reference


class RecurringCharge(TimeStampedModel):
    """A monthly charge (line rental, maintenance), billed monthly in advance and prorated by day."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="recurring_charges")
    line = models.ForeignKey(
        Line, null=True, blank=True, on_delete=models.CASCADE, related_name="recurring_charges"
    )
    description = models.CharField(max_length=200)
    monthly_amount = _money()
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["customer", "id"]
        constraints = [
            models.CheckConstraint(
                name="recurring_ends_after_start",
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
            ),
        ]

    def __str__(self) -> str:
        return self.description


class OneOffCharge(TimeStampedModel):
    """A single charge (connection, equipment), billed on the first run that covers its date."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="one_off_charges")
    line = models.ForeignKey(Line, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    description = models.CharField(max_length=200)
    amount = _money()
    charge_date = models.DateField()
    invoice = models.ForeignKey(
        "Invoice", null=True, blank=True, on_delete=models.SET_NULL, related_name="one_off_charges"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["charge_date", "id"]

    def __str__(self) -> str:
        return self.description


class BillRun(TimeStampedModel):
    """The billing of one partner's customers for one period (a calendar month of usage)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        CALCULATING = "calculating", "Calculating"
        CALCULATED = "calculated", "Calculated (review)"
        APPROVED = "approved", "Approved"
        FINALISED = "finalised", "Finalised"
        CANCELLED = "cancelled", "Cancelled"

    OPEN_STATUSES = (Status.DRAFT, Status.CALCULATING, Status.CALCULATED, Status.APPROVED)

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="bill_runs")
    period_start = models.DateField()
    period_end = models.DateField(help_text="Last day of the usage period, inclusive.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Set by a restriction (privacy); a restricted run can be neither calculated, approved nor finalised.
    restricted_at = models.DateTimeField(null=True, blank=True)
    restricted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    restricted_reason = models.TextField(blank=True)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    calculated_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    finalised_at = models.DateTimeField(null=True, blank=True)
    finalised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    issue_date = models.DateField(null=True, blank=True)
    cancelled_reason = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-period_start", "partner"]
        permissions = [
            ("calculate_billrun", "Can calculate bill runs"),
            ("approve_billrun", "Can approve bill runs (finance)"),
            ("finalise_billrun", "Can finalise bill runs (finance)"),
            ("restrict_billrun", "Can restrict and lift restriction of bill runs"),
            ("view_billing_data", "Can see billing data: invoices, totals, Direct Debit files"),
        ]
        constraints = [
            models.CheckConstraint(
                name="billrun_period_order", condition=Q(period_end__gte=models.F("period_start"))
            ),
            models.UniqueConstraint(
                fields=["partner", "period_start"],
                condition=~Q(status="cancelled"),
                name="billrun_one_per_partner_period",
            ),
            models.CheckConstraint(
                name="billrun_restricted_has_reason",
                condition=Q(restricted_at__isnull=True) | ~Q(restricted_reason=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.partner} {self.period_start:%B %Y}"

    @property
    def is_restricted(self) -> bool:
        return self.restricted_at is not None

    @property
    def progress_percent(self) -> int:
        return int(100 * self.chunks_done / self.chunks_total) if self.chunks_total else 0

    @property
    def rental_period(self) -> tuple[datetime.date, datetime.date]:
        """The month after the usage period: rentals are billed monthly in advance."""
        start = self.period_end + datetime.timedelta(days=1)
        next_month = (start.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        return start, next_month - datetime.timedelta(days=1)


class BillRunEvent(models.Model):
    """A step of a bill run, or a step refused, with who and why."""

    bill_run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=40)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} at {self.at:%Y-%m-%d %H:%M}"


class BillRunChunk(models.Model):
    """A slice of the run's customers, calculated in one task and one transaction."""

    bill_run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_customer_id = models.BigIntegerField()
    last_customer_id = models.BigIntegerField()
    done_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["bill_run", "number"]
        constraints = [models.UniqueConstraint(fields=["bill_run", "number"], name="chunk_unique_number")]

    def __str__(self) -> str:
        return f"Chunk {self.number} of {self.bill_run}"


class BillRunException(models.Model):
    """Something a reviewer must see: a customer skipped and why, or a pre-billing check that failed."""

    class Kind(models.TextChoices):
        BILLING_CEASED = "billing_ceased", "Skipped: billing ceased (objection)"
        PROCESSING_RESTRICTED = "processing_restricted", "Skipped: processing restricted"
        NO_TARIFF = "no_tariff", "Customer has no tariff"
        UNKNOWN_CLI_CALLS = "unknown_cli_calls", "Calls from numbers no line owns"
        SUSPENSE_CALLS = "suspense_calls", "Calls in suspense in the period"

    SKIP_KINDS = (Kind.BILLING_CEASED, Kind.PROCESSING_RESTRICTED)
    # Kinds whose ``count`` is a number of calls; the other kinds are one customer each.
    CALL_KINDS = (Kind.UNKNOWN_CLI_CALLS, Kind.SUSPENSE_CALLS)

    bill_run = models.ForeignKey(BillRun, on_delete=models.CASCADE, related_name="exceptions")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField(default=1)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["kind", "customer_id"]
        indexes = [models.Index(fields=["bill_run", "kind"], name="billrunexception_run_kind")]

    def __str__(self) -> str:
        return self.get_kind_display()


class Invoice(TimeStampedModel):
    """A VAT invoice. (gross = net + vat is kept by the services, not a CHECK: SQLite compares decimals as
    floating point.) Draft while its run is open; numbered, dated and frozen at finalisation.

    The supplier and customer details are snapshots taken at calculation, so the invoice stays what
    was issued whatever happens to the account later (including erasure of the customer)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALISED = "finalised", "Finalised"

    bill_run = models.ForeignKey(BillRun, on_delete=models.PROTECT, related_name="invoices")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="invoices")
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="invoices"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    number = models.CharField(max_length=30, blank=True)
    issue_date = models.DateField(null=True, blank=True)
    tax_point = models.DateField(
        help_text="Time of supply: the issue date once finalised (a continuous supply); period end in drafts."
    )
    period_start = models.DateField()
    period_end = models.DateField()
    supplier_name = models.CharField(max_length=200)
    supplier_address = models.TextField()
    supplier_vat_number = models.CharField(max_length=20)
    customer_reference = models.CharField(max_length=20)
    # AES-GCM like the call records: a bill run encrypts two snapshots per invoice, thousands at a time.
    customer_name = BulkEncryptedTextField()
    customer_address = BulkEncryptedTextField()
    net = _money(default=Decimal("0"))
    vat_rate = models.DecimalField(max_digits=5, decimal_places=4, default=STANDARD_VAT_RATE)
    vat = _money(default=Decimal("0"))
    gross = _money(default=Decimal("0"))
    calls = models.ManyToManyField(CallRecord, through="BilledCall", related_name="invoices")
    # What is still owed: derived from the ledger entries naming the invoice less the allocations to it,
    # and kept by ``billing.services.ledger`` in the transaction that writes them (refresh_cached_amounts).
    amount_outstanding = _money(default=Decimal("0"), db_default=Decimal("0"), editable=False)

    # The cached amount is the ledger's to keep; the history records the document.
    history = HistoricalRecords(excluded_fields=["amount_outstanding"])

    class Meta:
        ordering = ["bill_run", "customer_reference"]
        indexes = [
            # Open invoices per account (allocation, the account page) and per partner (aged debt), without
            # reading the paid ones.
            models.Index(
                fields=["customer", "issue_date", "id"],
                condition=Q(amount_outstanding__gt=0),
                name="invoice_open_by_customer",
            ),
            models.Index(
                fields=["partner", "issue_date"],
                condition=Q(amount_outstanding__gt=0),
                name="invoice_open_by_partner",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["bill_run", "customer"], name="invoice_one_per_customer_per_run"),
            models.UniqueConstraint(
                fields=["partner", "sequence"],
                condition=Q(sequence__isnull=False),
                name="invoice_unique_sequence",
            ),
            models.CheckConstraint(
                name="invoice_finalised_is_numbered",
                condition=Q(status="draft") | Q(sequence__isnull=False, issue_date__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.number or '(draft)'}"


class BilledCall(models.Model):
    """The invoice that bills a call. Insert-only and narrow: claiming a month's calls writes a million
    small rows instead of rewriting a million wide call records and their indexes. Deleting a draft
    invoice (recalculation) deletes its claims, which releases the calls.

    Claims are written only by the bill run's INSERT ... SELECT that joins the call and the invoice it
    names in the same transaction, so neither link carries a database constraint: checking them would
    lock each of a million call rows at commit (18 s of a 43 s calculation). The ORM still cascades
    deletes of calls and invoices to their claims."""

    call = models.OneToOneField(
        CallRecord, primary_key=True, on_delete=models.CASCADE, related_name="billing", db_constraint=False
    )
    # Looked up by invoice only to release or delete an invoice's claims, a few hundred invoices at a
    # time, while a million claims a month are written: on PostgreSQL the index is BRIN (claims are
    # written in invoice order, so block ranges map to invoices), which costs next to nothing to keep
    # where a B-tree doubled the cost of each claim. Migration 0006 creates it (a B-tree elsewhere).
    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, related_name="billed_calls", db_constraint=False, db_index=False
    )

    def __str__(self) -> str:
        return f"call {self.call_id} on invoice {self.invoice_id}"


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        RENTAL = "rental", "Rental"
        ONE_OFF = "one_off", "One-off charge"
        USAGE = "usage", "Call usage"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    description = models.CharField(max_length=200)
    band = models.CharField(max_length=20, choices=Band.choices, blank=True)
    quantity = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("1"))
    # The particulars VAT Notice 700 s.16.3 asks of each line: quantity with its unit, unit price, VAT rate.
    # Lines written before migration 0009 have no unit (shown as "item") and no price.
    unit = models.CharField(max_length=10, blank=True, help_text="days, calls or items.")
    minutes = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, help_text="Billable minutes (usage)."
    )
    unit_price = _cost(
        null=True, blank=True, help_text="Price per ``price_per``; empty for usage at several rates."
    )
    price_per = models.CharField(max_length=10, blank=True, help_text="month, minute or item.")
    vat_rate = models.DecimalField(max_digits=5, decimal_places=4, default=STANDARD_VAT_RATE)
    amount = _money()

    class Meta:
        ordering = ["invoice", "kind", "id"]

    def __str__(self) -> str:
        return self.description


class CreditNote(TimeStampedModel):
    """A credit against a finalised invoice, full or partial, with its own gapless number."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="credit_notes")
    sequence = models.PositiveIntegerField()
    number = models.CharField(max_length=30)
    issue_date = models.DateField()
    reason = models.TextField()
    net = _money()
    vat = _money()
    gross = _money()
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["-issue_date", "-sequence"]
        constraints = [
            models.UniqueConstraint(fields=["partner", "sequence"], name="creditnote_unique_sequence"),
            models.CheckConstraint(name="creditnote_positive", condition=Q(net__gt=0)),
        ]

    def __str__(self) -> str:
        return f"Credit note {self.number}"


class DirectDebitSubmission(TimeStampedModel):
    """The Standard 18 file made from a bill run's collections, kept byte for byte.

    A run's collections are submitted once: while a submission is live (not cancelled) every download of
    the run's Direct Debit file gives back these bytes, so two files can never collect from a customer
    twice. Only a recorded cancellation (who, when, why) lets a new file be made.

    The file names every payer with their sort code and account number, so its text is encrypted at rest
    and is cleared (``content`` set to empty, ``content_cleared_at``/``content_cleared_for`` set) by the
    retention job once no dispute needs the exact file (``privacy.data_map.DIRECT_DEBIT_FILES``) and by
    the erasure of any customer it collects from. The facts of the submission (serial, dates, counts,
    total, SHA-256) stay: they answer a dispute without anyone's bank details."""

    class ContentCleared(models.TextChoices):
        KEPT = "", "Kept"
        ERASURE = "erasure", "Cleared for a customer's erasure"
        RETENTION = "retention", "Cleared by the retention policy"

    # Empty for a re-presentation file (billing.services.direct_debit_representation): it collects the
    # partner's Direct Debits returned "refer to payer", not a run's invoices.
    bill_run = models.ForeignKey(
        BillRun,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="direct_debit_submissions",
    )
    # The serial is unique per service user number, which belongs to the partner.
    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="direct_debit_submissions")
    serial = models.CharField(max_length=6, help_text="Submission serial number (VOL1, HDR1).")
    processing_date = models.DateField(help_text="Bacs processing day (day 2 of the cycle), as in UHL1.")
    promised_date = models.DateField(help_text="The collection date the payers were given notice of.")
    file_name = models.CharField(max_length=120)
    # ASCII only (the Bacs character set and CRLF), so the text is the file's bytes. Empty once cleared.
    content = EncryptedTextField(blank=True)
    content_cleared_at = models.DateTimeField(null=True, blank=True)
    content_cleared_for = models.CharField(
        max_length=20, choices=ContentCleared.choices, default=ContentCleared.KEPT, blank=True
    )
    sha256 = models.CharField(max_length=64, help_text="SHA-256 of the file's bytes, hex.")
    collections = models.PositiveIntegerField()
    total_pence = models.PositiveBigIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_reason = models.TextField(blank=True)

    # The file never changes after it is made; the history records the cancellation, not the bytes again.
    history = HistoricalRecords(excluded_fields=["content"])

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # The backstop of the row lock in services.direct_debit_export: one live file a run.
            models.UniqueConstraint(
                fields=["bill_run"],
                condition=Q(cancelled_at__isnull=True),
                name="ddsubmission_one_live_per_run",
            ),
            models.UniqueConstraint(fields=["partner", "serial"], name="ddsubmission_unique_serial"),
            models.CheckConstraint(
                name="ddsubmission_clearance_complete",
                condition=Q(content_cleared_at__isnull=True, content_cleared_for="")
                | (Q(content_cleared_at__isnull=False) & ~Q(content_cleared_for="")),
            ),
            models.CheckConstraint(
                name="ddsubmission_cancellation_complete",
                condition=Q(cancelled_at__isnull=True, cancelled_reason="")
                | (Q(cancelled_at__isnull=False) & ~Q(cancelled_reason="")),
            ),
        ]

    def __str__(self) -> str:
        if self.bill_run_id is None:
            return f"Direct Debit re-presentation submission {self.serial}"
        return f"Direct Debit submission {self.serial} of {self.bill_run}"

    @property
    def is_representation(self) -> bool:
        return self.bill_run_id is None

    @property
    def is_cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def is_content_cleared(self) -> bool:
        return self.content_cleared_at is not None

    @property
    def file_bytes(self) -> bytes:
        return self.content.encode("ascii")


# The customer account ledger (payments, allocations, write-offs, entries) lives in its own module;
# imported here (explicit re-exports) so they are billing's models and importable from billing.models.
from billing.catalogue_models import LineProduct as LineProduct  # noqa: E402
from billing.catalogue_models import Product as Product  # noqa: E402
from billing.catalogue_models import ProductPrice as ProductPrice  # noqa: E402
from billing.delivery_models import InvoiceDelivery as InvoiceDelivery  # noqa: E402
from billing.dunning_models import DEFAULT_DUNNING_STEPS as DEFAULT_DUNNING_STEPS  # noqa: E402
from billing.dunning_models import DunningAction as DunningAction  # noqa: E402
from billing.dunning_models import DunningStep as DunningStep  # noqa: E402
from billing.ledger_models import INVOICE_PAYMENT_TERMS_DAYS as INVOICE_PAYMENT_TERMS_DAYS  # noqa: E402
from billing.ledger_models import BacsReportImport as BacsReportImport  # noqa: E402
from billing.ledger_models import BacsReportImportError as BacsReportImportError  # noqa: E402
from billing.ledger_models import DirectDebitCollection as DirectDebitCollection  # noqa: E402
from billing.ledger_models import ImmutableRowError as ImmutableRowError  # noqa: E402
from billing.ledger_models import LedgerEntry as LedgerEntry  # noqa: E402
from billing.ledger_models import Payment as Payment  # noqa: E402
from billing.ledger_models import PaymentAllocation as PaymentAllocation  # noqa: E402
from billing.ledger_models import WriteOff as WriteOff  # noqa: E402
from billing.ledger_models import invoice_due_date as invoice_due_date  # noqa: E402
