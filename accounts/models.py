"""Staff users and roles, partners, and customers with their Site Details.

Personal and payment fields are EncryptedTextFields; the values staff search by (phone numbers,
emails, postcodes, CLIs) also get an HMAC blind index, recomputed on every save from the
normalised value. Names (customers' and contacts') are searched by word: each word's HMAC is a row of
``NameToken``, rewritten whenever the name is saved. Every model here keeps its history with
django-simple-history (``NameToken`` excepted: it is derived from the names, whose history is kept).
"""

import datetime
from collections.abc import Iterable
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import Group, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
from simple_history.models import HistoricalRecords

from accounts import validation
from fusion_site.crypto import blind_index
from fusion_site.fields import EncryptedTextField
from fusion_site.models import NormalisedFieldsModel, TimeStampedModel


class Role(models.TextChoices):
    """Job roles; each is a Group of the same name holding its model permissions."""

    ADMINISTRATOR = "administrator", "Administrator"
    BILLING_AGENT = "billing agent", "Billing agent"
    SUPPORT_AGENT = "support agent", "Support agent"
    FINANCE_MANAGER = "finance manager", "Finance manager"
    DATA_PROTECTION_OFFICER = "data protection officer", "Data protection officer"
    CUSTOMER = "customer", "Customer (portal)"


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: object) -> "User":
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: object) -> "User":
        fields.setdefault("is_staff", True)
        fields.setdefault("is_superuser", True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who logs in: partner or provider staff, or a customer's portal user.

    Staff belong to at most one partner (the provider's own staff to none). A portal user belongs to
    exactly one customer and is granted that customer alone.
    """

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    partner = models.ForeignKey(
        "Partner", null=True, blank=True, on_delete=models.PROTECT, related_name="staff"
    )
    customer = models.ForeignKey(
        "Customer", null=True, blank=True, on_delete=models.CASCADE, related_name="portal_users"
    )
    confidentiality_signed_at = models.DateTimeField(null=True, blank=True)
    gdpr_training_completed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["password", "last_login"])
    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="user_partner_staff_or_portal_not_both",
                condition=Q(partner__isnull=True) | Q(customer__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        # Shown wherever the admin names a user (e.g. "changed by" in history): a portal user is the
        # customer's own person, whose identity stays behind the PII gate.
        return f"customer portal user #{self.pk}" if self.is_portal_user else self.email

    @property
    def actor_label(self) -> str:
        """How history names this user to staff: staff by name, a portal user as the customer."""
        return "the customer (portal)" if self.is_portal_user else self.full_name

    def get_full_name(self) -> str:
        return self.full_name

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email

    @property
    def is_portal_user(self) -> bool:
        return self.customer_id is not None

    @property
    def customer_reference(self) -> str:
        """A portal user's customer reference, without loading the customer (the layout's links show it
        on every page)."""
        return Customer.reference_of(self.customer_id) if self.customer_id is not None else ""

    def gdpr_training_expires_at(self) -> datetime.datetime | None:
        if self.gdpr_training_completed_at is None:
            return None
        return self.gdpr_training_completed_at + datetime.timedelta(days=settings.GDPR_TRAINING_VALID_DAYS)

    def is_cleared_for_personal_data(self, *, now: datetime.datetime | None = None) -> bool:
        """Confidentiality agreement signed and GDPR training current."""
        expires = self.gdpr_training_expires_at()
        return bool(
            self.confidentiality_signed_at is not None
            and expires is not None
            and expires > (now or timezone.now())
        )


class Partner(TimeStampedModel):
    """A reseller (billing agent) that bills its own end customers: the tenant boundary."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    vat_number = models.CharField(max_length=20, blank=True)
    staff_group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="partner")

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# The largest id a BigAutoField (DEFAULT_AUTO_FIELD) holds.
MAX_ID = 2**63 - 1


class Customer(TimeStampedModel):
    """An end customer account of a partner."""

    class Status(models.TextChoices):
        PROSPECT = "prospect", "Prospect"
        ACTIVE = "active", "Active"
        ENDED = "ended", "Contract ended"

    REFERENCE_PREFIX = "C-"

    partner = models.ForeignKey(Partner, on_delete=models.PROTECT, related_name="customers")
    # A sole trader's or partnership's trading name is a person's name: encrypted like every personal
    # field, and searched by word through NameToken. SQL can no longer sort by it: lists order by id.
    name = EncryptedTextField(help_text="The account's trading name.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    contract_start = models.DateField()
    contract_end = models.DateField(null=True, blank=True)

    # Set by an objection (privacy); billing reads it and skips the customer.
    billing_ceased_at = models.DateTimeField(null=True, blank=True)
    billing_ceased_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    billing_ceased_reason = models.TextField(blank=True)
    # Set by a restriction (privacy); bill runs skip the customer and provisioning orders are held.
    processing_restricted_at = models.DateTimeField(null=True, blank=True)
    processing_restricted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    processing_restricted_reason = models.TextField(blank=True)
    # Set by erasure (privacy): the row stays, anonymised, because kept invoices and records name it.
    erased_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]
        permissions = [
            ("view_all_customers", "Can see the customers of every partner"),
            ("reveal_personal_data", "Can reveal masked personal data (with current training)"),
        ]
        constraints = [
            models.CheckConstraint(
                name="customer_contract_ends_after_start",
                condition=Q(contract_end__isnull=True) | Q(contract_end__gte=models.F("contract_start")),
            ),
            models.CheckConstraint(
                name="customer_billing_ceased_has_reason",
                condition=Q(billing_ceased_at__isnull=True) | ~Q(billing_ceased_reason=""),
            ),
            models.CheckConstraint(
                name="customer_processing_restricted_has_reason",
                condition=Q(processing_restricted_at__isnull=True) | ~Q(processing_restricted_reason=""),
            ),
        ]
        indexes = [
            models.Index(fields=["partner", "status"], name="customer_partner_status"),
            models.Index(fields=["contract_end"], name="customer_contract_end"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} {self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        if _saves_field(kwargs, "name"):
            name_tokens_rebuild(customers=[self])

    @property
    def reference(self) -> str:
        """The public account reference, C-000123, derived from the primary key."""
        return self.reference_of(self.pk)

    @classmethod
    def reference_of(cls, pk: int) -> str:
        """The reference of the customer with this primary key, without loading it."""
        return f"{cls.REFERENCE_PREFIX}{pk:06d}"

    @classmethod
    def pk_from_reference(cls, reference: str) -> int | None:
        """The primary key a reference names, or None when it names none a customer could have: ASCII
        digits only ("²" passes ``isdigit`` but not ``int``) and within the id column's range (a larger
        number reaches the database as an out-of-range error, not as no customer)."""
        text = reference.strip().upper()
        text = text.removeprefix(cls.REFERENCE_PREFIX)
        if not (text.isascii() and text.isdecimal()):
            return None
        pk = int(text)
        return pk if 0 < pk <= MAX_ID else None

    @property
    def is_billing_ceased(self) -> bool:
        return self.billing_ceased_at is not None

    @property
    def is_processing_restricted(self) -> bool:
        return self.processing_restricted_at is not None

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class CustomerUserObjectPermission(UserObjectPermissionBase):
    """Direct foreign-key table for per-user grants on customers (portal users, exceptions)."""

    content_object = models.ForeignKey(Customer, on_delete=models.CASCADE)


class CustomerGroupObjectPermission(GroupObjectPermissionBase):
    """Direct foreign-key table for per-group grants on customers (a partner's staff group)."""

    content_object = models.ForeignKey(Customer, on_delete=models.CASCADE)


class GrantTally(models.Model):
    """How many customers each group or user holds each permission on, through the two grant tables above:
    kept by PostgreSQL triggers on those tables (migration 0015), in the same transaction as the change, for
    every insert, update, delete (a customer's erasure cascades to its grants) and truncate, however it is
    made. Read by the staff list's total (``accounts.selectors``): counting a partner's grants was the
    largest part of the list page's database time, and grows with the partner (9,000 grants, about 2 ms a
    page, bench/load.py). Not kept on SQLite, where the total is counted from the grants themselves.

    No foreign keys: a row only counts, and names its holder and permission by id."""

    class Holder(models.TextChoices):
        GROUP = "group", "group"
        USER = "user", "user"

    holder = models.CharField(max_length=5, choices=Holder.choices)
    holder_id = models.IntegerField()
    permission_id = models.IntegerField()
    grants = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["holder", "holder_id", "permission_id"], name="grant_tally_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.holder} {self.holder_id}: {self.grants} grants of permission {self.permission_id}"


class BlindIndexedModel(NormalisedFieldsModel, TimeStampedModel):
    """Recomputes the blind indexes named in ``blind_indexes`` (index field -> (value field, purpose))
    from the normalised values on every save; bulk writers call ``refresh_blind_indexes`` themselves."""

    blind_indexes: ClassVar[dict[str, tuple[str, str]]] = {}

    class Meta:
        abstract = True

    def refresh_blind_indexes(self) -> None:
        for index_field, (value_field, purpose) in self.blind_indexes.items():
            value = getattr(self, value_field)
            setattr(self, index_field, blind_index(purpose, value) if value else "")

    def save(self, *args: object, **kwargs: object) -> None:
        self.refresh_blind_indexes()
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class Site(BlindIndexedModel):
    """A customer's premises."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="sites")
    label = models.CharField(max_length=100, help_text="What the customer calls it, e.g. Head office.")
    address_line1 = EncryptedTextField()
    address_line2 = EncryptedTextField(blank=True, default="")
    town = EncryptedTextField()
    postcode = EncryptedTextField()
    postcode_index = models.CharField(max_length=64, db_index=True, editable=False)

    normalisers = {"postcode": validation.normalise_postcode}
    blind_indexes = {"postcode_index": ("postcode", "postcode")}
    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.label


class Contact(BlindIndexedModel):
    """A person at the customer."""

    class ContactRole(models.TextChoices):
        PRIMARY = "primary", "Primary"
        BILLING = "billing", "Billing"
        TECHNICAL = "technical", "Technical"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="contacts")
    name = EncryptedTextField()
    email = EncryptedTextField()
    email_index = models.CharField(max_length=64, db_index=True, editable=False)
    phone = EncryptedTextField(help_text="Stored in E.164.")
    phone_index = models.CharField(max_length=64, db_index=True, editable=False)
    role = models.CharField(max_length=20, choices=ContactRole.choices, default=ContactRole.PRIMARY)

    normalisers = {"email": validation.normalise_email, "phone": validation.normalise_phone}
    blind_indexes = {"email_index": ("email", "email"), "phone_index": ("phone", "phone")}
    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.get_role_display()} contact"

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        if _saves_field(kwargs, "name"):
            name_tokens_rebuild(contacts=[self])


NAME_TOKEN_PURPOSE = "name"  # noqa: S105 - the blind index's purpose, not a secret


class NameToken(models.Model):
    """One word of a customer's name, or of one of its contacts' names, as an HMAC (blind index).

    Names are encrypted, so SQL cannot match them; a search finds the owners that hold a row for every
    word of the query, each word an indexed exact match on ``name_index``. The words are normalised by
    ``validation.name_words`` (case, accents, punctuation). Rows with ``contact`` empty are the
    customer's own name. An erased customer's placeholder name is not indexed.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="name_tokens")
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="name_tokens"
    )
    name_index = models.CharField(max_length=64, editable=False)

    class Meta:
        indexes = [models.Index(fields=["name_index", "customer"], name="nametoken_index_customer")]

    def __str__(self) -> str:
        return f"name word of customer {self.customer_id}"


def name_index_digests(name: str) -> list[str]:
    """The blind index of each word of ``name`` (of a stored name, or of a search)."""
    return sorted({blind_index(NAME_TOKEN_PURPOSE, word) for word in validation.name_words(name)})


def _saves_field(save_kwargs: dict[str, Any], name: str) -> bool:
    update_fields = save_kwargs.get("update_fields")
    return update_fields is None or name in update_fields


@transaction.atomic(savepoint=False)
def name_tokens_rebuild(*, customers: Iterable[Customer] = (), contacts: Iterable[Contact] = ()) -> int:
    """Replace the name words of these customers (their own names) and contacts, in three statements
    whatever their number; bulk writers that bypass ``save`` call it themselves. Returns rows written."""
    customers, contacts = list(customers), list(contacts)
    if customers:
        NameToken.objects.filter(customer__in=[c.pk for c in customers], contact__isnull=True).delete()
    if contacts:
        NameToken.objects.filter(contact__in=[c.pk for c in contacts]).delete()
    rows = [
        NameToken(customer_id=customer.pk, name_index=digest)
        for customer in customers
        if not customer.is_erased
        for digest in name_index_digests(customer.name)
    ] + [
        NameToken(customer_id=contact.customer_id, contact_id=contact.pk, name_index=digest)
        for contact in contacts
        for digest in name_index_digests(contact.name)
    ]
    NameToken.objects.bulk_create(rows)
    return len(rows)


class Line(BlindIndexedModel):
    """A service on a site: a telephone line (CLI) or another product."""

    class LineType(models.TextChoices):
        WLR_ANALOGUE = "wlr_analogue", "Analogue line (WLR)"
        ISDN = "isdn", "ISDN"
        SIP = "sip", "SIP trunk"
        MOBILE = "mobile", "Mobile"
        BROADBAND = "broadband", "Broadband"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="lines")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.SET_NULL, related_name="lines")
    cli = EncryptedTextField(help_text="The line's number (E.164).")
    cli_index = models.CharField(max_length=64, db_index=True, editable=False)
    line_type = models.CharField(max_length=20, choices=LineType.choices)
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    normalisers = {"cli": validation.normalise_phone}
    blind_indexes = {"cli_index": ("cli", "phone")}
    history = HistoricalRecords()

    class Meta:
        ordering = ["id"]
        verbose_name = "service / line"
        constraints = [
            models.CheckConstraint(
                name="line_ends_after_start",
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
            ),
        ]

    def __str__(self) -> str:
        # Where a line is chosen (admin autocomplete, selects) it must be told apart from the customer's
        # other lines without showing the number: the account reference, the type and the number masked
        # as accounts.pii.mask_phone masks it (07*** ***123), with no query.
        digits = validation.national_phone_digits(self.cli) if self.cli else ""
        number = f" {digits[:2]}*** ***{digits[-3:]}" if digits else ""
        return f"{Customer.reference_of(self.customer_id)} {self.get_line_type_display()}{number}"

    def clean(self) -> None:
        """A number belongs to one line at a time: calls are matched to lines by number and date."""
        if not self.cli or self.start_date is None:
            return
        try:
            index = blind_index("phone", validation.normalise_phone(self.cli))
        except ValidationError:
            return  # reported on the field already
        clash = Line.objects.filter(cli_index=index).exclude(pk=self.pk)
        clash = clash.filter(Q(end_date__isnull=True) | Q(end_date__gte=self.start_date))
        if self.end_date is not None:
            clash = clash.filter(start_date__lte=self.end_date)
        if clash.exists():
            raise ValidationError({"cli": "Another line has this number over some of the same dates."})


class PaymentDetails(NormalisedFieldsModel, TimeStampedModel):
    """A Direct Debit mandate (the scheme's Direct Debit Instruction, DDI) and where it stands.

    Lifecycle (``accounts.mandates`` holds the transitions and their rules): new -> lodged (its AUDDIS
    0N went into a submission file) -> active (the lodgement period passed) -> cancelled (by staff, or the
    payer's bank) or expired (dormant: no collection in 13 months). Only an active mandate is collected
    from. The lifecycle fields are not editable in forms or the admin: only the services change them.

    The submissions that carried the 0N and the 0C are held as ids of ``billing.DirectDebitSubmission``,
    not foreign keys: accounts sits below billing and never names its tables.
    """

    class Status(models.TextChoices):
        NEW = "new", "New (not yet lodged)"
        LODGED = "lodged", "Lodged (AUDDIS 0N sent)"
        ACTIVE = "active", "Active"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired (dormant)"

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="payment_details")
    account_holder = EncryptedTextField()
    sort_code = EncryptedTextField()
    account_number = EncryptedTextField()
    mandate_reference = EncryptedTextField()

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW, editable=False)
    lodged_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When the AUDDIS 0N was put in a submission."
    )
    lodgement_submission_id = models.PositiveBigIntegerField(
        null=True, blank=True, editable=False, help_text="The billing.DirectDebitSubmission carrying the 0N."
    )
    active_from = models.DateField(
        null=True,
        blank=True,
        editable=False,
        help_text="First day a collection may be made (lodged + scheme period).",
    )
    last_collected_on = models.DateField(
        null=True, blank=True, editable=False, help_text="Debit date of the latest collection."
    )
    cancelled_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When it was cancelled or expired."
    )
    cancellation_reason = models.TextField(blank=True, editable=False)
    # The payer's bank cancelled it (ADDACS, AUDDIS rejection): no 0C is sent for it.
    cancelled_by_bank = models.BooleanField(default=False, editable=False)
    cancellation_submission_id = models.PositiveBigIntegerField(
        null=True, blank=True, editable=False, help_text="The billing.DirectDebitSubmission carrying the 0C."
    )
    # A hold (ARUDD 4, 7, 8; ADDACS D: the payer disputes the advance notice, the amount or the date): nothing
    # is collected under the instruction until staff have resolved the dispute and cleared it with a reason.
    # Held on the mandate because the scheme's instruction is about the instruction ("should not collect
    # further Direct Debits until it has resolved the dispute"), the mandate is what a submission reads for
    # every collection already, and its history records who held and cleared it and why.
    collection_held_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When collections under it were held."
    )
    collection_held_reason = models.TextField(blank=True, editable=False)
    # The instruction lodged at the bank before staff changed the bank details: its 0C goes in the next
    # submission, beside the 0N of the new details (accounts.mandates.mandate_relodge). Cleared once sent.
    superseded_account_holder = EncryptedTextField(blank=True, editable=False)
    superseded_sort_code = EncryptedTextField(blank=True, editable=False)
    superseded_account_number = EncryptedTextField(blank=True, editable=False)
    superseded_mandate_reference = EncryptedTextField(blank=True, editable=False)
    superseded_cancellation_submission_id = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="The billing.DirectDebitSubmission carrying the superseded instruction's 0C.",
    )

    normalisers = {
        "sort_code": validation.normalise_sort_code,
        "account_number": validation.normalise_account_number,
    }

    history = HistoricalRecords()

    class Meta:
        verbose_name = "payment details"
        verbose_name_plural = "payment details"
        permissions = [
            ("reveal_paymentdetails", "Can reveal payment details (with current training)"),
            ("clear_mandate_hold", "Can clear a Direct Debit hold once the payer's dispute is resolved"),
        ]
        constraints = [
            models.CheckConstraint(
                name="mandate_new_is_not_lodged",
                condition=~Q(status="new")
                | Q(lodged_at__isnull=True, lodgement_submission_id__isnull=True, active_from__isnull=True),
            ),
            models.CheckConstraint(
                name="mandate_lodged_or_active_has_dates",
                condition=~Q(status__in=["lodged", "active"])
                | Q(lodged_at__isnull=False, active_from__isnull=False),
            ),
            models.CheckConstraint(
                name="mandate_ended_has_date_and_reason",
                condition=~Q(status__in=["cancelled", "expired"])
                | (Q(cancelled_at__isnull=False) & ~Q(cancellation_reason="")),
            ),
            models.CheckConstraint(
                name="mandate_live_is_not_cancelled",
                condition=Q(status__in=["cancelled", "expired"]) | Q(cancelled_at__isnull=True),
            ),
            models.CheckConstraint(
                name="mandate_hold_has_date_and_reason",
                condition=Q(collection_held_at__isnull=True, collection_held_reason="")
                | (Q(collection_held_at__isnull=False) & ~Q(collection_held_reason="")),
            ),
        ]
        indexes = [
            # The daily job's two questions: which lodged mandates are due to activate, which active ones
            # have been dormant too long.
            models.Index(fields=["status", "active_from"], name="mandate_status_active_from"),
            models.Index(fields=["status", "last_collected_on"], name="mandate_status_last_collected"),
        ]

    def __str__(self) -> str:
        return "Direct Debit mandate"

    @property
    def is_held(self) -> bool:
        return self.collection_held_at is not None

    @property
    def superseded_cancellation_pending(self) -> bool:
        """A superseded instruction is still lodged at the bank and its 0C is not in a submission yet."""
        return bool(self.superseded_sort_code) and self.superseded_cancellation_submission_id is None

    def clean(self) -> None:
        # After clean_fields has normalised both: the pair must pass Vocalink's modulus check.
        validation.validate_bank_details(self.sort_code, self.account_number)


class DirectDebitNotice(models.Model):
    """An advance notice emailed to the payer: the amount and debit date of one collection (one invoice).

    The scheme's rule (Direct Debit Guarantee; Bacs, "The Service User's Guide and Rules to the Direct
    Debit Scheme", section 4, Advance notice): the payer is told the amount and date at least 10 working
    days before the first collection and before any change of amount or date. ``billing.services.
    direct_debit`` sends one for every collection (a phone bill's amount changes every month) and never
    collects before the date given here. ``submission_id`` is the ``billing.DirectDebitSubmission`` that
    collected it (empty until collected, and again if that submission is cancelled); the invoice is named by
    its number, not a key, for the same layering reason as the mandate's submissions.
    """

    # No database constraint: erasure deletes mandates with set-based raw deletes, which do not cascade; a
    # notice left behind names no one (an invoice number, an amount, a date: what the kept invoice says).
    mandate = models.ForeignKey(
        PaymentDetails, on_delete=models.CASCADE, db_constraint=False, related_name="notices"
    )
    invoice_number = models.CharField(max_length=40)
    amount_pence = models.PositiveBigIntegerField()
    collection_date = models.DateField(help_text="The debit (entry) date the payer was told.")
    sent_at = models.DateTimeField()
    submission_id = models.PositiveBigIntegerField(null=True, blank=True)
    # The mandate's last collection date before this one was recorded, put back if the submission that
    # collected it is cancelled.
    previous_last_collected_on = models.DateField(null=True, blank=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["mandate", "invoice_number"], name="ddnotice_one_per_invoice"),
        ]
        indexes = [models.Index(fields=["submission_id"], name="ddnotice_submission")]

    def __str__(self) -> str:
        return f"advance notice for {self.invoice_number}"


class ProvisioningOrder(TimeStampedModel):
    """An order to the line gateway to provide, cease or modify a line."""

    class Kind(models.TextChoices):
        PROVIDE = "provide", "Provide"
        CEASE = "cease", "Cease"
        MODIFY = "modify", "Modify"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        HELD = "held", "Held (processing restricted)"
        SUBMITTED = "submitted", "Submitted"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        # Never sent: withdrawn while held or queued (a dunning suspension whose debt was paid meanwhile).
        WITHDRAWN = "withdrawn", "Withdrawn"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="provisioning_orders")
    line = models.ForeignKey(
        Line, null=True, blank=True, on_delete=models.SET_NULL, related_name="provisioning_orders"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    notes = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    gateway_reference = models.CharField(max_length=64, blank=True)
    failure_reason = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "created_at"], name="provisioning_status_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} order #{self.pk}"


class AccessLog(models.Model):
    """An append-only record of a read of personal data: who, when, which customer, which fields, why."""

    class Action(models.TextChoices):
        REVEAL = "reveal", "Revealed masked data"
        EDIT_FORM = "edit_form", "Opened for correction"
        ADMIN_VIEW = "admin_view", "Viewed in the admin"
        CROSS_PARTNER_VIEW = "cross_partner_view", "Viewed another partner's customer"
        EXPORT_DOWNLOAD = "export_download", "Downloaded a data export"
        EXPORT = "export", "Exported"
        BREACH_REVIEW = "breach_review", "Listed as affected by a personal data breach"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.SET_NULL, related_name="access_log_entries"
    )
    customer_reference = models.CharField(max_length=20)
    action = models.CharField(max_length=20, choices=Action.choices)
    fields = models.JSONField(default=list)
    reason = models.TextField()

    class Meta:
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["customer", "at"], name="accesslog_customer_at"),
            models.Index(fields=["user", "at"], name="accesslog_user_at"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.customer_reference} by user {self.user_id}"


class AuditEvent(models.Model):
    """One link of the tamper-evident audit trail (written only through ``accounts.audit.audit_record`` and
    ``audit_record_many``).

    Append-only: the id is the event's place in the chain (1, 2, 3, ... with no gaps), ``previous_hash``
    is the hash of the event before it and ``hash`` is HMAC-SHA256, under the audit key ``key_id`` names
    (``accounts.audit_keys``; the key itself is never in the database), over this event's canonical
    serialisation (which includes ``previous_hash``). Editing a row breaks its own hash, and without the
    key nobody can compute a new one; deleting one leaves a gap in the ids or a chain head
    (``AuditChainHead``) that does not match the last row; rewriting a tail with the key is caught by
    the signed checkpoints kept outside the database (``accounts.audit_checkpoints``). The actor is kept as
    an id and a label, not a foreign key, so erasing a user can never rewrite the trail. ``detail``
    holds ids and codes, never personal data.
    """

    id = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField()
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_label = models.CharField(max_length=254)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    detail = models.JSONField(default=dict)
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(max_length=16)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["action", "at"], name="auditevent_action_at")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_label}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise ValueError("Audit events are append-only and cannot be changed.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValueError("Audit events are append-only and cannot be deleted.")


class AuditChainHead(models.Model):
    """The single row naming the chain's last event: the lock concurrent writers queue on, and the
    witness that catches a deleted tail (a chain cut short is still a valid chain on its own)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_event_id = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        constraints = [models.CheckConstraint(name="auditchainhead_singleton", condition=Q(id=1))]

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_event_id}"
