"""Erasure of a customer: a preview of what goes and what stays, and the erasure itself.

Both read the same list of steps (``_steps``), so the preview counts exactly the rows the erasure then
deletes or anonymises. Each step is one set-based statement (``_raw_delete`` or ``update``), so the number
of queries does not depend on how many calls, sites or history rows the customer has: rows are never
loaded into Python, which also means no delete signals and no cascade collection. The steps are ordered
so that each subquery still finds the rows it reads (calls are found through the customer's lines before
the lines and their history go).

``customers_erase`` erases several customers (a retention chunk) in one transaction with the same
statements, filtered by ``customer_id IN (...)``: the number of queries does not depend on how many
customers there are either. Blockers are checked per customer first; a blocked customer is left untouched
and reported, the others are erased. Each erased customer still gets its own ``ErasureRecord``, event and
audit entry (bulk-inserted), with the rows counted per customer: every step says whose each row is
(``_Step.owner``) and its rows are counted by that owner just before the statement runs. ``customer_erase``
is the same code with one customer, which raises instead of reporting when it is blocked.

What stays:
- the Customer row, anonymised and marked ``erased_at``: finalised invoices, access logs and bill run
  records name it;
- finalised VAT invoices, their lines and credit notes, with the snapshot the law requires (number,
  dates, supplier, the customer's name and address as invoiced, amounts) for 6 years from issue
  (``privacy.data_map.VAT_RECORDS``); the retention job removes them after that;
- the access log (who read the data and why), kept under UK GDPR Art. 5(2)/32;
- Direct Debit submissions of the customer's bill runs, without the file's text (which names every payer
  of the run, so it is cleared for any of them): serial, dates, SHA-256, count and total;
- portal users, deactivated and stripped of name, email, password and every permission (history rows
  and the access log point at them).

Blocked: a customer with a draft invoice in an open bill run. Erasing would either remove a run's
invoice while it is reviewed or leave a run billing an erased account; the run is finalised (the
invoice is then kept) or cancelled first. Other findings (active lines, orders in flight, calls rated but
never billed) are warnings the approver reads: Fusion records no payments, so whether money is owed is
confirmed with finance before approval (legal holds, when they exist, stop erasure the same way).
"""

from __future__ import annotations

import datetime
import os
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    CharField,
    Count,
    DateField,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    TextField,
    Value,
    When,
)
from django.db.models.expressions import BaseExpression
from django.db.models.functions import Cast, Concat, Greatest
from django.utils import timezone
from guardian.models import UserObjectPermission
from simple_history.utils import bulk_create_with_history

from accounts.audit import AuditEntry, audit_record_many
from accounts.models import (
    AccessLog,
    Contact,
    Customer,
    CustomerUserObjectPermission,
    Line,
    NameToken,
    PaymentDetails,
    ProvisioningOrder,
    Site,
    User,
)
from billing.models import (
    BilledCall,
    BillRun,
    BillRunException,
    CallRecord,
    CreditNote,
    CustomerTariff,
    DirectDebitSubmission,
    Invoice,
    InvoiceLine,
    LineTariff,
    OneOffCharge,
    RecurringCharge,
)
from fusion_site.crypto import encrypt
from fusion_site.customer_cache import customer_cache_forget_many
from fusion_site.money import format_money
from privacy.data_map import ACCOUNTABILITY, VAT_RECORDS, ErasureAction, LegalObligation
from privacy.deadlines import add_calendar_months
from privacy.models import DataExport, ErasureEvent, ErasureRecord, LegalHold, PrivacyRequest

EXPORTS_DIR = "exports"
VAT_RETENTION_YEARS = 6
# A password starting with "!" never verifies (Django's unusable password).
ERASED_PASSWORD = "!erased"  # noqa: S105
ERASED_TEXT = "(erased)"


class ErasureBlockedError(ValidationError):
    """Something stops erasure now; the message says what and what to do first."""


@dataclass(frozen=True)
class TableErasure:
    table: str
    action: ErasureAction
    rows: int
    note: str


@dataclass(frozen=True)
class TableKept:
    table: str
    rows: int
    law: LegalObligation
    what: str
    until: datetime.date | None = None


@dataclass(frozen=True)
class ErasurePreview:
    customer_pk: int
    customer_reference: str
    already_erased_at: datetime.datetime | None
    erased: list[TableErasure]
    kept: list[TableKept]
    blockers: list[str]
    warnings: list[str]
    files: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def can_erase(self) -> bool:
        return not self.blockers

    @property
    def rows_to_erase(self) -> int:
        return sum(item.rows for item in self.erased)


@dataclass(frozen=True)
class BlockedErasure:
    customer: Customer
    blockers: list[str]


@dataclass(frozen=True)
class CustomersErased:
    """What ``customers_erase`` did: a record per customer erased (or erased again), in id order; the
    customers it left untouched and why; and the rows per table over them all."""

    records: list[ErasureRecord]
    blocked: list[BlockedErasure]
    counts: dict[str, int]


# The customer a row is erased for, as an annotation, when one statement erases several customers' rows.
OWNER = "erasure_owner"


@dataclass(frozen=True)
class _Step:
    """One set-based statement of the erasure: delete the queryset, or update it with ``changes``."""

    queryset: QuerySet[Any]
    note: str
    changes: dict[str, Any] | None = None
    # Only rows that still hold something to scrub count, so a second run reports zero.
    still_personal: Q | None = None
    # Whose row it is (a column or an expression giving the customer's id), to count rows per customer.
    owner: str | BaseExpression = "customer_id"

    @property
    def table(self) -> str:
        return self.queryset.model._meta.label

    @property
    def action(self) -> ErasureAction:
        return ErasureAction.DELETE if self.changes is None else ErasureAction.ANONYMISE

    def pending(self) -> QuerySet[Any]:
        return self.queryset if self.still_personal is None else self.queryset.filter(self.still_personal)

    def run(self) -> int:
        if self.changes is None:
            return int(self.queryset._raw_delete(self.queryset.db))
        return self.pending().update(**self.changes)

    def run_counting(self, customer_ids: Sequence[int]) -> tuple[int, dict[int, int]]:
        """Run the statement; returns its rows and those rows per customer. With one customer they are all
        its own; with several they are counted by owner just before, in the same transaction (a row two of
        them share counts once, for one of them)."""
        if len(customer_ids) == 1:
            rows = self.run()
            return rows, {customer_ids[0]: rows}
        owner = F(self.owner) if isinstance(self.owner, str) else self.owner
        per_customer = dict(
            self.pending()
            .order_by()
            .annotate(**{OWNER: owner})
            .values(OWNER)
            .annotate(rows=Count("*"))
            .values_list(OWNER, "rows")
        )
        return self.run(), per_customer


def _erased_email() -> Concat:
    return Concat(
        Value("erased-"), Cast("id", CharField()), Value("@erased.invalid"), output_field=CharField()
    )


def _first_owner(queryset: QuerySet[Any], column: str = "customer_id") -> Subquery:
    return Subquery(queryset.order_by(column).values(column)[:1], output_field=BigIntegerField())


def _steps(customer_ids: Sequence[int]) -> list[_Step]:
    """The statements that erase these customers, each filtered by ``customer_id IN (customer_ids)``."""
    ids = list(customer_ids)
    now = timezone.now()
    line_history = Line.history.filter(customer_id__in=ids)
    line_ids = line_history.values("id")  # every line the customers ever had, not only today's
    subject_clis = line_history.exclude(cli_index="").values("cli_index")
    others_clis = Line.objects.exclude(customer_id__in=ids).values("cli_index")
    portal_users = User.objects.filter(customer_id__in=ids)
    finalised = Invoice.objects.filter(customer_id__in=ids, status=Invoice.Status.FINALISED)
    not_kept_invoices = Invoice.objects.filter(customer_id__in=ids).exclude(status=Invoice.Status.FINALISED)
    content_types = ContentType.objects.get_for_models(
        Customer, Site, Contact, Line, PaymentDetails, ProvisioningOrder
    )
    admin_entries = Q(content_type=content_types[Customer], object_id__in=[str(pk) for pk in ids])
    admin_owner = [When(content_type=content_types[Customer], then=Cast("object_id", BigIntegerField()))]
    for model in (Site, Contact, Line, PaymentDetails, ProvisioningOrder):
        history_ids = model.history.filter(customer_id__in=ids).annotate(text_id=Cast("id", TextField()))
        admin_entries |= Q(content_type=content_types[model], object_id__in=history_ids.values("text_id"))
        admin_owner.append(
            When(
                content_type=content_types[model],
                then=_first_owner(history_ids.filter(text_id=OuterRef("object_id"))),
            )
        )
    reason_erased = {
        name: Case(When(**{name: ""}, then=Value("")), default=Value(ERASED_TEXT))
        for name in ("billing_ceased_reason", "processing_restricted_reason")
    }
    requests = PrivacyRequest.objects.filter(Q(customer_id__in=ids) | Q(contact__customer_id__in=ids))
    request_owner = Case(
        When(customer_id__in=ids, then=F("customer_id")),
        default=F("contact__customer_id"),
        output_field=BigIntegerField(),
    )
    calls = CallRecord.objects.filter(
        Q(customer_id__in=ids)
        | Q(line_id__in=line_ids)
        # Unmatched calls from the customers' numbers, unless another customer's line has it now.
        | (
            Q(customer__isnull=True, line__isnull=True, cli_index__in=subject_clis)
            & ~Q(cli_index__in=others_clis)
        )
    )
    line_owner = _first_owner(line_history.filter(id=OuterRef("line_id")))
    call_owner = Case(
        When(customer_id__in=ids, then=F("customer_id")),
        When(line_id__in=line_ids, then=line_owner),
        default=_first_owner(line_history.filter(cli_index=OuterRef("cli_index"))),
        output_field=BigIntegerField(),
    )
    return [
        # Before anything whose history ids they read is gone.
        _Step(
            LogEntry.objects.filter(admin_entries),
            "Admin change log: the record's name and change message",
            {"object_repr": ERASED_TEXT, "change_message": ""},
            ~Q(object_repr=ERASED_TEXT),
            owner=Case(*admin_owner, output_field=BigIntegerField()),
        ),
        # Before the contacts they may name go. The request records stay, as the law asks, without the
        # subject's email, words or contact.
        _Step(
            requests,
            "Privacy requests of the customer: the subject's email, words and contact",
            {
                "subject_email": "",
                "subject_email_index": "",
                "details": ERASED_TEXT,
                "contact": None,
                "subject_erased_at": timezone.now(),
            },
            Q(subject_erased_at__isnull=True),
            owner=request_owner,
        ),
        _Step(
            PrivacyRequest.history.filter(id__in=requests.values("pk")),
            "History of the customer's privacy requests",
            {
                "subject_email": "",
                "subject_email_index": "",
                "details": ERASED_TEXT,
                "contact_id": None,
                "subject_erased_at": timezone.now(),
            },
            Q(subject_erased_at__isnull=True),
            owner=_first_owner(requests.filter(pk=OuterRef("id")).annotate(**{OWNER: request_owner}), OWNER),
        ),
        _Step(
            DataExport.objects.filter(customer_id__in=ids),
            "Portability exports (their files go after commit)",
        ),
        _Step(DataExport.history.filter(customer_id__in=ids), "History of portability exports"),
        # Login attempts name the portal users by email: before their emails are anonymised below.
        _Step(
            AccessAttempt.objects.filter(username__in=portal_users.values("email")),
            "Failed login attempts of the portal users",
            owner=_first_owner(portal_users.filter(email=OuterRef("username"))),
        ),
        # A Direct Debit file names every payer of its run: the text goes whole (it is encrypted, so the
        # customer's records cannot be cut out in SQL, and an edited file would no longer be what was
        # submitted); the submission's facts stay. Found through the customers' invoices in the run, so
        # before any invoice goes.
        _Step(
            DirectDebitSubmission.objects.filter(
                bill_run_id__in=Invoice.objects.filter(customer_id__in=ids).values("bill_run_id")
            ),
            "Direct Debit files of the customer's bill runs: the file's text (every payer's bank details) "
            "is cleared; serial, dates, SHA-256, count and total stay",
            {
                "content": "",
                "content_cleared_at": now,
                "content_cleared_for": DirectDebitSubmission.ContentCleared.ERASURE,
                "updated_at": now,
            },
            Q(content_cleared_at__isnull=True),
            owner=_first_owner(
                Invoice.objects.filter(customer_id__in=ids, bill_run_id=OuterRef("bill_run_id"))
            ),
        ),
        # Which invoice billed each call: the invoice keeps its usage lines, the links go with the calls.
        _Step(
            BilledCall.objects.filter(call__in=calls.values("pk")),
            "Links of billed calls to invoices",
            owner=_first_owner(
                CallRecord.objects.filter(pk=OuterRef("call_id")).annotate(**{OWNER: call_owner}), OWNER
            ),
        ),
        _Step(calls, "Traffic data: every call from the customer's lines, billed or not", owner=call_owner),
        _Step(
            LineTariff.objects.filter(line_id__in=line_ids),
            "Tariffs of the customer's lines",
            owner=line_owner,
        ),
        _Step(LineTariff.history.filter(line_id__in=line_ids), "History of line tariffs", owner=line_owner),
        _Step(RecurringCharge.objects.filter(customer_id__in=ids), "Rentals"),
        _Step(RecurringCharge.history.filter(customer_id__in=ids), "History of rentals"),
        _Step(
            OneOffCharge.objects.filter(customer_id__in=ids),
            "One-off charges (invoiced ones stay as invoice lines)",
        ),
        _Step(OneOffCharge.history.filter(customer_id__in=ids), "History of one-off charges"),
        _Step(CustomerTariff.objects.filter(customer_id__in=ids), "The customer's tariff"),
        _Step(CustomerTariff.history.filter(customer_id__in=ids), "History of the customer's tariff"),
        _Step(
            InvoiceLine.objects.filter(invoice__in=not_kept_invoices),
            "Lines of invoices never issued",
            owner="invoice__customer_id",
        ),
        _Step(not_kept_invoices, "Invoices never issued (drafts of cancelled runs)"),
        _Step(
            Invoice.history.filter(customer_id__in=ids).exclude(id__in=finalised.values("id")),
            "History of invoices never issued",
        ),
        _Step(
            BillRunException.objects.filter(customer_id__in=ids),
            "Bill run exceptions: the copied objection or restriction reason",
            {"detail": ""},
            ~Q(detail=""),
        ),
        _Step(ProvisioningOrder.objects.filter(customer_id__in=ids), "Provisioning orders"),
        _Step(ProvisioningOrder.history.filter(customer_id__in=ids), "History of provisioning orders"),
        _Step(PaymentDetails.objects.filter(customer_id__in=ids), "Direct Debit mandate"),
        _Step(PaymentDetails.history.filter(customer_id__in=ids), "History of the Direct Debit mandate"),
        # Before the contacts they point at go.
        _Step(
            NameToken.objects.filter(customer_id__in=ids),
            "Name search index: keyed hashes of the words of the account's and its contacts' names",
        ),
        _Step(Contact.objects.filter(customer_id__in=ids), "Contacts (names, emails, phones, blind indexes)"),
        _Step(Contact.history.filter(customer_id__in=ids), "History of contacts"),
        _Step(Line.objects.filter(customer_id__in=ids), "Lines (numbers and blind indexes)"),
        _Step(Site.objects.filter(customer_id__in=ids), "Sites (addresses, postcodes, blind indexes)"),
        _Step(Site.history.filter(customer_id__in=ids), "History of sites"),
        _Step(
            CustomerUserObjectPermission.objects.filter(user__in=portal_users.values("pk")),
            "Portal users' grants on the customer",
            owner="user__customer_id",
        ),
        _Step(
            UserObjectPermission.objects.filter(user__in=portal_users.values("pk")),
            "Portal users' other grants",
            owner="user__customer_id",
        ),
        _Step(
            User.groups.through.objects.filter(user__in=portal_users.values("pk")),
            "Portal users' roles",
            owner="user__customer_id",
        ),
        _Step(
            User.user_permissions.through.objects.filter(user__in=portal_users.values("pk")),
            "Portal users' permissions",
            owner="user__customer_id",
        ),
        _Step(
            portal_users,
            "Portal users: deactivated; name, email and password removed",
            {
                "email": _erased_email(),
                "full_name": "",
                "password": ERASED_PASSWORD,
                "is_active": False,
                "last_login": None,
            },
            ~Q(full_name="") | Q(is_active=True),
        ),
        _Step(
            User.history.filter(id__in=portal_users.values("pk")),
            "History of portal users: name and email",
            {"email": _erased_email(), "full_name": ""},
            ~Q(full_name=""),
            owner=_first_owner(portal_users.filter(pk=OuterRef("id"))),
        ),
        _Step(
            Customer.history.filter(id__in=ids),
            "History of the account: name and free-text reasons",
            {"name": _erased_names(ids, "id"), **reason_erased},
            # The encrypted name cannot be compared in SQL: what is left to scrub is every version written
            # before the customer was erased (or since, should anyone have edited it after).
            Q(
                Exists(
                    Customer.objects.filter(pk=OuterRef("id")).filter(
                        Q(erased_at__isnull=True) | Q(erased_at__lt=OuterRef("history_date"))
                    )
                )
            ),
            owner="id",
        ),
        # Last: the subqueries above read the line history.
        _Step(line_history, "History of lines"),
    ]


def erased_name(customer_pk: int) -> str:
    return f"Erased customer {Customer.reference_of(customer_pk)}"


def _erased_names(customer_ids: Sequence[int], column: str) -> Case:
    """Each customer's placeholder name, "Erased customer C-000123", for the rows whose ``column`` is its
    id. Encrypted here, as SQL cannot encrypt: one ciphertext per customer, written to every row of it in
    the same statement, so the queries still do not depend on the number of customers or rows."""
    return Case(
        *(When(**{column: pk}, then=Value(encrypt(erased_name(pk)))) for pk in customer_ids),
        output_field=TextField(),
    )


def _export_dirs(customer_ids: Collection[int]) -> dict[int, Path]:
    """The export directories (``MEDIA_ROOT/exports/<customer id>/``) that exist for these customers.

    Read from one listing of the exports directory, not a ``Path`` built per customer: pathlib interns each
    part of a path, so a path per customer interns a new string per customer, and that churn makes the
    interpreter reallocate its table of interned strings (about 2 MiB) every few thousand customers,
    which showed as the retention run's memory peak growing with the customers due."""
    root = Path(settings.MEDIA_ROOT) / EXPORTS_DIR
    if not root.is_dir():
        return {}
    wanted = {str(pk): pk for pk in customer_ids}
    with os.scandir(root) as entries:
        return {
            wanted[entry.name]: Path(entry.path)
            for entry in entries
            if entry.name in wanted and entry.is_dir()
        }


def _count_files(directory: Path | None) -> int:
    if directory is None:
        return 0
    return sum(1 for path in directory.rglob("*") if path.is_file())


def _blockers(customer_ids: Collection[int]) -> dict[int, list[str]]:
    """What stops erasing each of these customers now (customers with nothing in the way are absent)."""
    blockers: dict[int, list[str]] = {}
    open_runs = (
        BillRun.objects.filter(invoices__customer_id__in=customer_ids, status__in=BillRun.OPEN_STATUSES)
        .annotate(blocked_customer_id=F("invoices__customer_id"))
        .select_related("partner")
        .order_by("blocked_customer_id", "-period_start", "partner", "pk")
        .distinct()
    )
    for run in open_runs:
        blockers.setdefault(run.blocked_customer_id, []).append(
            f"Bill run {run} ({run.get_status_display().lower()}) has a draft invoice for this customer: "
            "finalise the run (the invoice is then kept) or cancel it before erasing."
        )
    holds = LegalHold.objects.filter(customer_id__in=customer_ids, lifted_at__isnull=True).order_by("id")
    for hold in holds:
        blockers.setdefault(hold.customer_id, []).append(
            f"Legal hold ({hold.get_kind_display().lower()}, review on {hold.review_on:%d %B %Y}): the "
            "data must be kept while it lasts; the DPO lifts the hold before erasing."
        )
    return blockers


def _warnings(customer: Customer) -> list[str]:
    today = timezone.localdate()
    warnings = []
    active_lines = Line.objects.filter(customer=customer).filter(
        Q(end_date__isnull=True) | Q(end_date__gte=today)
    )
    if count := active_lines.count():
        warnings.append(
            f"{count} line(s) still active: erasure deletes them here but sends no cease order to the "
            "wholesale provider; cease them first if the service must stop."
        )
    in_flight = ProvisioningOrder.objects.filter(
        customer=customer,
        status__in=[
            ProvisioningOrder.Status.QUEUED,
            ProvisioningOrder.Status.HELD,
            ProvisioningOrder.Status.SUBMITTED,
        ],
    )
    if count := in_flight.count():
        warnings.append(
            f"{count} provisioning order(s) not finished; they are deleted unsent or unconfirmed."
        )
    unbilled = CallRecord.objects.filter(customer=customer, billing__isnull=True).aggregate(
        calls=models.Count("id"), cost=Sum("cost")
    )
    if unbilled["calls"]:
        cost = format_money(unbilled["cost"] or 0)
        warnings.append(
            f"{unbilled['calls']} call(s) never invoiced (rated cost {cost}) are "
            "deleted unbilled. Fusion records no payments: confirm with finance that nothing is owed."
        )
    if customer.contract_end is None or customer.contract_end > today:
        warnings.append("The contract has not ended; erasure ends it today.")
    return warnings


def _six_years_after(day: datetime.date | None) -> datetime.date | None:
    # Calendar months, so an invoice of 29 February is kept until 28 February six years on.
    return add_calendar_months(day, VAT_RETENTION_YEARS * 12) if day else None


def _rows_by(queryset: QuerySet[Any], key: str) -> dict[int, int]:
    return dict(queryset.order_by().values(key).annotate(rows=Count("id")).values_list(key, "rows"))


def _rows_and_last_issue(queryset: QuerySet[Any], key: str) -> dict[int, tuple[int, datetime.date | None]]:
    grouped = queryset.order_by().values(key).annotate(rows=Count("id"), last_issue=Max("issue_date"))
    return {row[key]: (row["rows"], row["last_issue"]) for row in grouped}


def _kept(customer_ids: Collection[int]) -> dict[int, list[TableKept]]:
    """What erasure keeps of each customer, and the law that keeps it: four grouped queries for them all."""
    finalised = Invoice.objects.filter(customer_id__in=customer_ids, status=Invoice.Status.FINALISED)
    invoices = _rows_and_last_issue(finalised, "customer_id")
    invoice_lines = _rows_by(InvoiceLine.objects.filter(invoice__in=finalised), "invoice__customer_id")
    credit_notes = _rows_and_last_issue(
        CreditNote.objects.filter(invoice__in=finalised), "invoice__customer_id"
    )
    access_logs = _rows_by(AccessLog.objects.filter(customer_id__in=customer_ids), "customer_id")
    kept = {}
    for pk in customer_ids:
        invoice_rows, last_invoice = invoices.get(pk, (0, None))
        note_rows, last_note = credit_notes.get(pk, (0, None))
        kept[pk] = [
            TableKept(
                Invoice._meta.label,
                invoice_rows,
                VAT_RECORDS,
                "Number, dates, supplier, the customer's name and address as invoiced, amounts",
                _six_years_after(last_invoice),
            ),
            TableKept(
                InvoiceLine._meta.label,
                invoice_lines.get(pk, 0),
                VAT_RECORDS,
                "Description and amount of each supply",
                _six_years_after(last_invoice),
            ),
            TableKept(
                CreditNote._meta.label,
                note_rows,
                VAT_RECORDS,
                "Number, date, reason, amounts",
                _six_years_after(last_note),
            ),
            TableKept(
                AccessLog._meta.label,
                access_logs.get(pk, 0),
                ACCOUNTABILITY,
                "Who read the customer's data, when and why (no values)",
            ),
        ]
    return kept


def erasure_preview(*, customer: Customer) -> ErasurePreview:
    """What erasing ``customer`` would delete or anonymise (rows per table), what it keeps and the law that
    keeps it, and what blocks it. Reads only; a fixed number of queries whatever the customer's size."""
    steps = _steps([customer.pk])
    erased = [TableErasure(step.table, step.action, step.pending().count(), step.note) for step in steps]
    erased.append(
        TableErasure(
            Customer._meta.label, ErasureAction.ANONYMISE, 0 if customer.is_erased else 1, "The account"
        )
    )
    return ErasurePreview(
        customer_pk=customer.pk,
        customer_reference=customer.reference,
        already_erased_at=customer.erased_at,
        erased=erased,
        kept=_kept([customer.pk])[customer.pk],
        blockers=_blockers([customer.pk]).get(customer.pk, []),
        warnings=_warnings(customer),
        files=_count_files(_export_dirs([customer.pk]).get(customer.pk)),
        notes=[
            "Portal users stay, deactivated, without name, email or password: history and logs name them.",
            "Portal users' sessions stop authenticating at once (the users are inactive) and expire.",
        ],
    )


@transaction.atomic
def customer_erase(
    *, customer: Customer, actor: User, reason: str, request_reference: str = ""
) -> ErasureRecord:
    """Carry out the data map's erasure action for everything about ``customer``, in one transaction.

    Idempotent: a second run finds nothing left and records a repeat with zero counts. Raises
    ErasureBlockedError (naming what blocks it) before changing anything."""
    erased = customers_erase(
        customer_ids=[customer.pk], actor=actor, reason=reason, request_reference=request_reference
    )
    if erased.blocked:
        raise ErasureBlockedError({"customer": erased.blocked[0].blockers})
    if not erased.records:
        raise Customer.DoesNotExist(f"No customer with id {customer.pk}.")
    return erased.records[0]


@transaction.atomic
def customers_erase(
    *, customer_ids: Collection[int], actor: User, reason: str, request_reference: str = ""
) -> CustomersErased:
    """Erase each of these customers as ``customer_erase`` does, in one transaction and a fixed number of
    queries however many they are. A customer something blocks is left untouched and listed in
    ``blocked``; one already erased is erased again (a repeat with what was left)."""
    if not reason.strip():
        raise ValidationError({"reason": "Say why the customer is erased."})
    # Locked in id order, so two erasures of overlapping sets cannot deadlock.
    customers = list(Customer.objects.select_for_update().filter(pk__in=customer_ids).order_by("pk"))
    blockers = _blockers([customer.pk for customer in customers])
    blocked = [BlockedErasure(c, blockers[c.pk]) for c in customers if c.pk in blockers]
    customers = [customer for customer in customers if customer.pk not in blockers]
    if not customers:
        return CustomersErased(records=[], blocked=blocked, counts={})
    ids = [customer.pk for customer in customers]
    kept = _kept(ids)
    totals: dict[str, int] = {}
    counts: dict[int, dict[str, int]] = {pk: {} for pk in ids}
    for step in _steps(ids):
        table = step.table  # one string shared by every customer's counts
        rows, per_customer = step.run_counting(ids)
        if rows:
            totals[table] = totals.get(table, 0) + rows
        for pk, owned in per_customer.items():
            if owned and pk in counts:
                counts[pk][table] = counts[pk].get(table, 0) + owned
    now = timezone.now()
    label = f" under request {request_reference}" if request_reference else ""
    repeats = {customer.pk for customer in customers if customer.is_erased}
    newly_erased = [pk for pk in ids if pk not in repeats]
    if newly_erased:
        _anonymise(newly_erased, now=now, actor=actor, reason=f"Erased{label}: {reason}")
        totals[Customer._meta.label] = len(newly_erased)
        for pk in newly_erased:
            counts[pk][Customer._meta.label] = 1
    directories = _export_dirs(ids)
    records = bulk_create_with_history(
        [
            ErasureRecord(
                customer_pk=customer.pk,
                customer_reference=customer.reference,
                partner_id=customer.partner_id,
                request_reference=request_reference,
                actor=actor,
                reason=reason,
                erased_at=now,
                repeat=customer.pk in repeats,
                counts=counts[customer.pk],
                kept={
                    item.table: {"rows": item.rows, "law": item.law.citation} for item in kept[customer.pk]
                },
                files_deleted=_count_files(directories.get(customer.pk)),
            )
            for customer in customers
        ],
        ErasureRecord,
        default_user=actor,
    )
    ErasureEvent.objects.bulk_create(
        ErasureEvent(
            record=record,
            actor=actor,
            action=ErasureEvent.Action.REPEATED if record.repeat else ErasureEvent.Action.ERASED,
            detail=f"{sum(record.counts.values())} rows erased{label}",
        )
        for record in records
    )
    audit_record_many(
        actor=actor,
        entries=[
            AuditEntry(
                "customer.erased_again" if record.repeat else "customer.erased",
                customer,
                {"request": request_reference, "rows": sum(record.counts.values()), "record": record.pk},
            )
            for customer, record in zip(customers, records, strict=True)
        ],
    )
    transaction.on_commit(_after_commit(ids))
    return CustomersErased(records=list(records), blocked=blocked, counts=totals)


def _anonymise(customer_ids: list[int], *, now: datetime.datetime, actor: User, reason: str) -> None:
    """The account rows stay, anonymised and marked erased: one UPDATE, then their history rows as the
    database now holds them, attributed to ``actor`` with ``reason``.

    Not ``full_clean``: it would query per customer, and every value is valid by construction (the check
    constraints, which the database enforces anyway, hold: a reason stays wherever a date does, and the
    contract never ends before it starts)."""
    today = timezone.localdate()
    Customer.objects.filter(pk__in=customer_ids).update(
        name=_erased_names(customer_ids, "pk"),
        billing_ceased_reason=Case(
            When(billing_ceased_at__isnull=True, then=Value("")), default=Value(ERASED_TEXT)
        ),
        processing_restricted_reason=Case(
            When(processing_restricted_at__isnull=True, then=Value("")), default=Value(ERASED_TEXT)
        ),
        status=Customer.Status.ENDED,
        # An open or future contract ends today (or on its start, if that is later).
        contract_end=Case(
            When(
                Q(contract_end__isnull=True) | Q(contract_end__gt=today),
                then=Greatest(Value(today), F("contract_start")),
            ),
            default=F("contract_end"),
            output_field=DateField(),
        ),
        erased_at=now,
        updated_at=now,
    )
    Customer.history.bulk_history_create(
        list(Customer.objects.filter(pk__in=customer_ids).order_by("pk")),
        update=True,
        default_user=actor,
        default_change_reason=reason,
        default_date=now,
    )


def _after_commit(customer_ids: list[int]) -> Callable[[], None]:
    """Files and cache go only once the rows are gone for good: a rolled-back erasure leaves them, and the
    retry (or a repeat run) removes them. The directories are listed again then, so one written since
    the count goes too."""

    def forget() -> None:
        for directory in _export_dirs(customer_ids).values():
            shutil.rmtree(directory, ignore_errors=True)
        customer_cache_forget_many(customer_ids)

    return forget
