"""Erasure of a customer: a preview of what goes and what stays, and the erasure itself.

Both read the same list of steps (``_steps``), so the preview counts exactly the rows the erasure then
deletes or anonymises. Each step is one set-based statement (``_raw_delete`` or ``update``), so the number
of queries does not depend on how many calls, sites or history rows the customer has: rows are never
loaded into Python, which also means no delete signals and no cascade collection. The steps are ordered
so that each subquery still finds the rows it reads (calls are found through the customer's lines before
the lines and their history go).

What stays:
- the Customer row, anonymised and marked ``erased_at``: finalised invoices, access logs and bill run
  records name it;
- finalised VAT invoices, their lines and credit notes, with the snapshot the law requires (number,
  dates, supplier, the customer's name and address as invoiced, amounts) for 6 years from issue
  (``privacy.data_map.VAT_RECORDS``); the retention job removes them after that;
- the access log (who read the data and why), kept under UK GDPR Art. 5(2)/32;
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
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Case, CharField, Q, QuerySet, Sum, TextField, Value, When
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from guardian.models import UserObjectPermission

from accounts.audit import audit_record
from accounts.models import (
    AccessLog,
    Contact,
    Customer,
    CustomerUserObjectPermission,
    Line,
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
    Invoice,
    InvoiceLine,
    LineTariff,
    OneOffCharge,
    RecurringCharge,
)
from fusion_site.customer_cache import customer_cache_forget
from fusion_site.models import save_with_actor
from privacy.data_map import ACCOUNTABILITY, VAT_RECORDS, ErasureAction, LegalObligation
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
class _Step:
    """One set-based statement of the erasure: delete the queryset, or update it with ``changes``."""

    queryset: QuerySet[Any]
    note: str
    changes: dict[str, Any] | None = None
    # Only rows that still hold something to scrub count, so a second run reports zero.
    still_personal: Q | None = None

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


def _erased_email() -> Concat:
    return Concat(
        Value("erased-"), Cast("id", CharField()), Value("@erased.invalid"), output_field=CharField()
    )


def _steps(customer: Customer) -> list[_Step]:
    pk = customer.pk
    line_history = Line.history.filter(customer_id=pk)
    line_ids = line_history.values("id")  # every line the customer ever had, not only today's
    subject_clis = line_history.exclude(cli_index="").values("cli_index")
    others_clis = Line.objects.exclude(customer_id=pk).values("cli_index")
    portal_users = User.objects.filter(customer_id=pk)
    finalised = Invoice.objects.filter(customer_id=pk, status=Invoice.Status.FINALISED)
    not_kept_invoices = Invoice.objects.filter(customer_id=pk).exclude(status=Invoice.Status.FINALISED)
    content_types = ContentType.objects.get_for_models(
        Customer, Site, Contact, Line, PaymentDetails, ProvisioningOrder
    )
    admin_entries = Q(content_type=content_types[Customer], object_id=str(pk))
    for model in (Site, Contact, Line, PaymentDetails, ProvisioningOrder):
        history_ids = model.history.filter(customer_id=pk).annotate(text_id=Cast("id", TextField()))
        admin_entries |= Q(content_type=content_types[model], object_id__in=history_ids.values("text_id"))
    reason_erased = {
        name: Case(When(**{name: ""}, then=Value("")), default=Value(ERASED_TEXT))
        for name in ("billing_ceased_reason", "processing_restricted_reason")
    }
    requests = PrivacyRequest.objects.filter(Q(customer_id=pk) | Q(contact__customer_id=pk))
    calls = CallRecord.objects.filter(
        Q(customer_id=pk)
        | Q(line_id__in=line_ids)
        # Unmatched calls from the customer's numbers, unless another customer's line has it now.
        | (
            Q(customer__isnull=True, line__isnull=True, cli_index__in=subject_clis)
            & ~Q(cli_index__in=others_clis)
        )
    )
    return [
        # Before anything whose history ids they read is gone.
        _Step(
            LogEntry.objects.filter(admin_entries),
            "Admin change log: the record's name and change message",
            {"object_repr": ERASED_TEXT, "change_message": ""},
            ~Q(object_repr=ERASED_TEXT),
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
        ),
        _Step(DataExport.objects.filter(customer_id=pk), "Portability exports (their files go after commit)"),
        _Step(DataExport.history.filter(customer_id=pk), "History of portability exports"),
        # Login attempts name the portal users by email: before their emails are anonymised below.
        _Step(
            AccessAttempt.objects.filter(username__in=portal_users.values("email")),
            "Failed login attempts of the portal users",
        ),
        # Which invoice billed each call: the invoice keeps its usage lines, the links go with the calls.
        _Step(BilledCall.objects.filter(call__in=calls.values("pk")), "Links of billed calls to invoices"),
        _Step(calls, "Traffic data: every call from the customer's lines, billed or not"),
        _Step(LineTariff.objects.filter(line_id__in=line_ids), "Tariffs of the customer's lines"),
        _Step(LineTariff.history.filter(line_id__in=line_ids), "History of line tariffs"),
        _Step(RecurringCharge.objects.filter(customer_id=pk), "Rentals"),
        _Step(RecurringCharge.history.filter(customer_id=pk), "History of rentals"),
        _Step(
            OneOffCharge.objects.filter(customer_id=pk),
            "One-off charges (invoiced ones stay as invoice lines)",
        ),
        _Step(OneOffCharge.history.filter(customer_id=pk), "History of one-off charges"),
        _Step(CustomerTariff.objects.filter(customer_id=pk), "The customer's tariff"),
        _Step(CustomerTariff.history.filter(customer_id=pk), "History of the customer's tariff"),
        _Step(InvoiceLine.objects.filter(invoice__in=not_kept_invoices), "Lines of invoices never issued"),
        _Step(not_kept_invoices, "Invoices never issued (drafts of cancelled runs)"),
        _Step(
            Invoice.history.filter(customer_id=pk).exclude(id__in=finalised.values("id")),
            "History of invoices never issued",
        ),
        _Step(
            BillRunException.objects.filter(customer_id=pk),
            "Bill run exceptions: the copied objection or restriction reason",
            {"detail": ""},
            ~Q(detail=""),
        ),
        _Step(ProvisioningOrder.objects.filter(customer_id=pk), "Provisioning orders"),
        _Step(ProvisioningOrder.history.filter(customer_id=pk), "History of provisioning orders"),
        _Step(PaymentDetails.objects.filter(customer_id=pk), "Direct Debit mandate"),
        _Step(PaymentDetails.history.filter(customer_id=pk), "History of the Direct Debit mandate"),
        _Step(Contact.objects.filter(customer_id=pk), "Contacts (names, emails, phones, blind indexes)"),
        _Step(Contact.history.filter(customer_id=pk), "History of contacts"),
        _Step(Line.objects.filter(customer_id=pk), "Lines (numbers and blind indexes)"),
        _Step(Site.objects.filter(customer_id=pk), "Sites (addresses, postcodes, blind indexes)"),
        _Step(Site.history.filter(customer_id=pk), "History of sites"),
        _Step(
            CustomerUserObjectPermission.objects.filter(user__in=portal_users.values("pk")),
            "Portal users' grants on the customer",
        ),
        _Step(
            UserObjectPermission.objects.filter(user__in=portal_users.values("pk")),
            "Portal users' other grants",
        ),
        _Step(User.groups.through.objects.filter(user__in=portal_users.values("pk")), "Portal users' roles"),
        _Step(
            User.user_permissions.through.objects.filter(user__in=portal_users.values("pk")),
            "Portal users' permissions",
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
        ),
        _Step(
            Customer.history.filter(id=pk),
            "History of the account: name and free-text reasons",
            {"name": _erased_name(customer), **reason_erased},
            ~Q(name=_erased_name(customer)),
        ),
        # Last: the subqueries above read the line history.
        _Step(line_history, "History of lines"),
    ]


def _erased_name(customer: Customer) -> str:
    return f"Erased customer {customer.reference}"


def _export_dir(customer: Customer) -> Path:
    return Path(settings.MEDIA_ROOT) / EXPORTS_DIR / str(customer.pk)


def _count_files(directory: Path) -> int:
    return sum(1 for path in directory.rglob("*") if path.is_file()) if directory.is_dir() else 0


def _blockers(customer: Customer) -> list[str]:
    open_runs = list(
        BillRun.objects.filter(invoices__customer=customer, status__in=BillRun.OPEN_STATUSES)
        .select_related("partner")
        .distinct()
    )
    holds = LegalHold.objects.filter(customer=customer, lifted_at__isnull=True).order_by("id")
    return [
        f"Bill run {run} ({run.get_status_display().lower()}) has a draft invoice for this customer: "
        "finalise the run (the invoice is then kept) or cancel it before erasing."
        for run in open_runs
    ] + [
        f"Legal hold ({hold.get_kind_display().lower()}, review on {hold.review_on:%d %B %Y}): the data "
        "must be kept while it lasts; the DPO lifts the hold before erasing."
        for hold in holds
    ]


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
        warnings.append(
            f"{unbilled['calls']} call(s) never invoiced (rated cost £{unbilled['cost'] or 0:.2f}) are "
            "deleted unbilled. Fusion records no payments: confirm with finance that nothing is owed."
        )
    if customer.contract_end is None or customer.contract_end > today:
        warnings.append("The contract has not ended; erasure ends it today.")
    return warnings


def _kept(customer: Customer) -> list[TableKept]:
    finalised = Invoice.objects.filter(customer=customer, status=Invoice.Status.FINALISED)
    summary = finalised.aggregate(n=models.Count("id"), last_issue=models.Max("issue_date"))
    last_issue: datetime.date | None = summary["last_issue"]
    until = last_issue.replace(year=last_issue.year + VAT_RETENTION_YEARS) if last_issue else None
    credit_notes = CreditNote.objects.filter(invoice__in=finalised.values("pk"))
    notes_last = credit_notes.aggregate(last=models.Max("issue_date"))["last"]
    return [
        TableKept(
            Invoice._meta.label,
            summary["n"],
            VAT_RECORDS,
            "Number, dates, supplier, the customer's name and address as invoiced, amounts",
            until,
        ),
        TableKept(
            InvoiceLine._meta.label,
            InvoiceLine.objects.filter(invoice__in=finalised.values("pk")).count(),
            VAT_RECORDS,
            "Description and amount of each supply",
            until,
        ),
        TableKept(
            CreditNote._meta.label,
            credit_notes.count(),
            VAT_RECORDS,
            "Number, date, reason, amounts",
            notes_last.replace(year=notes_last.year + VAT_RETENTION_YEARS) if notes_last else None,
        ),
        TableKept(
            AccessLog._meta.label,
            AccessLog.objects.filter(customer=customer).count(),
            ACCOUNTABILITY,
            "Who read the customer's data, when and why (no values)",
        ),
    ]


def erasure_preview(*, customer: Customer) -> ErasurePreview:
    """What erasing ``customer`` would delete or anonymise (rows per table), what it keeps and the law that
    keeps it, and what blocks it. Reads only; a fixed number of queries whatever the customer's size."""
    steps = _steps(customer)
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
        kept=_kept(customer),
        blockers=_blockers(customer),
        warnings=_warnings(customer),
        files=_count_files(_export_dir(customer)),
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
    if not reason.strip():
        raise ValidationError({"reason": "Say why the customer is erased."})
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    blockers = _blockers(customer)
    if blockers:
        raise ErasureBlockedError({"customer": blockers})
    repeat = customer.is_erased
    kept = {item.table: {"rows": item.rows, "law": item.law.citation} for item in _kept(customer)}
    counts: dict[str, int] = {}
    for step in _steps(customer):
        rows = step.run()
        if rows:
            counts[step.table] = counts.get(step.table, 0) + rows
    now = timezone.now()
    label = f" under request {request_reference}" if request_reference else ""
    if not repeat:
        customer.name = _erased_name(customer)
        customer.billing_ceased_reason = ERASED_TEXT if customer.billing_ceased_at else ""
        customer.processing_restricted_reason = ERASED_TEXT if customer.processing_restricted_at else ""
        customer.status = Customer.Status.ENDED
        today = timezone.localdate()
        if customer.contract_end is None or customer.contract_end > today:
            customer.contract_end = max(today, customer.contract_start)
        customer.erased_at = now
        save_with_actor(customer, actor=actor, reason=f"Erased{label}: {reason}")
        counts[Customer._meta.label] = 1
    directory = _export_dir(customer)
    files = _count_files(directory)
    record = ErasureRecord.objects.create(
        customer_pk=customer.pk,
        customer_reference=customer.reference,
        partner_id=customer.partner_id,
        request_reference=request_reference,
        actor=actor,
        reason=reason,
        erased_at=now,
        repeat=repeat,
        counts=counts,
        kept=kept,
        files_deleted=files,
    )
    ErasureEvent.objects.create(
        record=record,
        actor=actor,
        action=ErasureEvent.Action.REPEATED if repeat else ErasureEvent.Action.ERASED,
        detail=f"{sum(counts.values())} rows erased{label}",
    )
    audit_record(
        actor=actor,
        action="customer.erased_again" if repeat else "customer.erased",
        target=customer,
        detail={"request": request_reference, "rows": sum(counts.values()), "record": record.pk},
    )
    customer_pk = customer.pk
    transaction.on_commit(_after_commit(customer_pk, directory))
    return record


def _after_commit(customer_pk: int, directory: Path) -> Callable[[], None]:
    """Files and cache go only once the rows are gone for good: a rolled-back erasure leaves them, and the
    retry (or a repeat run) removes them."""

    def forget() -> None:
        shutil.rmtree(directory, ignore_errors=True)
        customer_cache_forget(customer_pk)

    return forget
