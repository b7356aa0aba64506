"""Importing a Bacs report (ARUDD: unpaid Direct Debits; ADDACS: instruction amendments and cancellations)
into the ledger and the mandates, once.

``bacs_report_import`` parses the file (``billing.bacs_reports``, pure), checks that it is the importing
partner's (its service user number), and applies every item it can read: ARUDD items set-based, a chunk
at a time (matched in memory, then the payments reversed and the collections marked together, so an
ARUDD of thousands of items costs a fixed number of queries per chunk), ADDACS items each in its own
savepoint. An item that cannot be applied never undoes the good ones: it is a ``BacsReportImportError``
naming the item, and nothing is dropped silently.

Once only: a report's id is unique per service user number and its SHA-256 is kept, so a report imported
again is refused before anything is applied; and each item is idempotent on its own (a collection already
returned, a mandate already cancelled, details already amended count as ``already_applied``), so the same
item in another report changes nothing twice either.

Scope: items are matched only among the importing partner's collections and mandates; another partner's
mandate reference is "not found", exactly as an unknown one.

ARUDD: the item is matched to the collection it returns on the mandate reference, the original processing
day and the amount (``DirectDebitCollection``); its payment is reversed (``payment_reverse_unpaid``) with the
reason code; then the scheme's action for the code (``billing.bacs_reports.ARUDD_RULES``, which cites the
guidance) is applied:
- represent (0, refer to payer): the re-presentation is recorded as due by one month from the original
  processing day (``representation_deadline``), and re-presented by
  ``billing.services.direct_debit_representation``. Once only: a collection that was itself a
  re-presentation (transaction code 18) is recovered outside Direct Debit instead.
- cancel the mandate (1, 2, 3, 5, 6, B): ``mandate_cancel(by_bank=True)``; the bank has cancelled it,
  so no 0C is sent.
- hold until resolved (4, 7, 8): recorded on the collection, and the mandate is held
  (``mandates.mandate_hold``): nothing more is collected under it until staff clear the hold with a reason.
- new advance notice (9): recorded; the invoice is collected again in a later submission after a fresh
  advance notice (``billing.bacs_collections``). Check the service user (A): recorded for staff to act on.

ADDACS (``ADDACS_RULES``): cancel (0, 1, 2, B, and 3 without new details) cancels the mandate as by the bank;
amend (C, E) sets the new sort code and account number through ``accounts.services.payment_details_set`` (so
the modulus check applies, and a failure is the item's error); move (3 with new details) sets them and
makes the mandate new again, so the next submission lodges it at the new bank (0N; no 0C is sent to the old
one); reinstate (R) makes a bank-cancelled mandate new again if the reinstatement is within two months of the
cancellation (``reinstatement_deadline``), otherwise it is an error saying a new instruction is needed;
hold (D) holds the mandate as ARUDD 4 does.
"""

import datetime
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import mandates
from accounts.audit import AuditEntry, audit_record, audit_record_many
from accounts.models import Partner, PaymentDetails, User
from accounts.services import payment_details_set
from billing import bacs_reports
from billing.bacs_reports import Action, InstructionAdvice, UnpaidDebit
from billing.models import (
    BacsReportImport,
    BacsReportImportError,
    DirectDebitCollection,
    PartnerBillingProfile,
)
from billing.services.errors import BillingError
from billing.services.ledger import lock_customers, require
from billing.services.payments import payments_partly_refunded, payments_reverse_unpaid_many
from fusion_site.bulk import record_history_in_sql

Progress = Callable[[int, int], None]
UNPAID_CHUNK = 1000
MAX_REASON_LENGTH = 300
MAX_HISTORY_REASON = 80
ENDED = (PaymentDetails.Status.CANCELLED, PaymentDetails.Status.EXPIRED)


class ItemNotApplied(Exception):
    """The item cannot be applied; the message says why and becomes its line error."""


@dataclass
class _Outcome:
    applied: int = 0
    already_applied: int = 0


def _reference(value: str) -> str:
    return value.strip().upper()


def _item_name(item: bacs_reports.ReportItem) -> str:
    # The reference is the mandate's, which is kept encrypted: the error names its last four characters.
    return f"item {item.position} (ref ending {_reference(item.reference)[-4:]})"


def _pounds(pence: int) -> str:
    return f"\u00a3{pence // 100:,}.{pence % 100:02d}"


def _partner_for(actor: User, partner: Partner | None) -> Partner:
    """Partner staff import for their own partner only; provider staff name the partner."""
    if actor.partner_id is not None:
        if partner is not None and partner.pk != actor.partner_id:
            raise PermissionDenied("You may import reports for your own partner only.")
        assert actor.partner is not None
        return actor.partner
    if partner is None:
        raise ValidationError({"partner": "Choose the partner whose report this is."})
    return partner


def bacs_report_import(
    *,
    data: bytes,
    filename: str,
    actor: User,
    partner: Partner | None = None,
    progress: Progress | None = None,
) -> BacsReportImport:
    """Import one ARUDD or ADDACS report for ``partner`` (the actor's own, for partner staff). A file that
    cannot be read, is another service user's, or was imported before is refused whole (ValidationError
    naming the file), and nothing changes."""
    require(actor, "billing.add_bacsreportimport", "import Bacs reports")
    partner = _partner_for(actor, partner)
    try:
        report = bacs_reports.parse_report(data)
    except bacs_reports.BacsReportRejected as exc:
        raise ValidationError({"file": str(exc)}) from exc
    sha256 = hashlib.sha256(data).hexdigest()
    with transaction.atomic():
        # The partner's profile row serialises its imports: the second of two identical uploads waits,
        # then finds the first.
        profile = PartnerBillingProfile.objects.select_for_update().filter(partner=partner).first()
        if profile is None or profile.bacs_service_user_number != report.service_user_number:
            raise ValidationError(
                {
                    "file": f"This report is for service user number {report.service_user_number}, "
                    f"not {partner.name}'s; it was not imported."
                }
            )
        earlier = (
            BacsReportImport.objects.filter(service_user_number=report.service_user_number)
            .filter(report_id=report.report_id)
            .first()
        ) or BacsReportImport.objects.filter(partner=partner, sha256=sha256).first()
        if earlier is not None:
            raise ValidationError(
                {
                    "file": f"Report {earlier.report_id} was already imported on "
                    f"{timezone.localtime(earlier.imported_at):%d %B %Y %H:%M}; nothing was changed again."
                }
            )
        record = BacsReportImport(
            partner=partner,
            kind=report.kind.value,
            service_user_number=report.service_user_number,
            report_id=report.report_id,
            file_name=filename[:200],
            sha256=sha256,
            imported_by=actor,
            imported_at=timezone.now(),
            items=len(report.items) + len(report.errors),
        )
        record.full_clean()
        try:
            with transaction.atomic():
                record.save()
        except IntegrityError as exc:  # a concurrent import of the same report won the race
            raise ValidationError({"file": f"Report {report.report_id} was already imported."}) from exc
        errors = [
            BacsReportImportError(report_import=record, line_number=error.line, reason=str(error)[:300])
            for error in report.errors
        ]
        outcome = _Outcome()
        today = report.report_date or timezone.localdate()
        applier = _Applier(partner=partner, actor=actor, record=record, today=today)
        applier.load(report.items)
        unpaid = [item for item in report.items if isinstance(item, UnpaidDebit)]
        advices = [item for item in report.items if not isinstance(item, UnpaidDebit)]
        total = len(report.items)
        # Unpaid items in chunks, each set-based (a report returns thousands); an item that cannot be
        # applied is its own line error, and the others of its chunk are applied.
        for start in range(0, len(unpaid), UNPAID_CHUNK):
            chunk = unpaid[start : start + UNPAID_CHUNK]
            applied, already, chunk_errors = applier.unpaid_many(chunk)
            outcome.applied += applied
            outcome.already_applied += already
            errors += [
                BacsReportImportError(
                    report_import=record,
                    line_number=item.line,
                    reason=f"{_item_name(item)}: {message}"[:MAX_REASON_LENGTH],
                )
                for item, message in chunk_errors
            ]
            if progress is not None:
                progress(start + len(chunk), total)
        for done, item in enumerate(advices, start=len(unpaid) + 1):
            try:
                with transaction.atomic():
                    applied = applier.apply(item)
            except (ItemNotApplied, ValidationError, BillingError) as exc:
                message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                errors.append(
                    BacsReportImportError(
                        report_import=record,
                        line_number=item.line,
                        reason=f"{_item_name(item)}: {message}"[:MAX_REASON_LENGTH],
                    )
                )
            else:
                if applied:
                    outcome.applied += 1
                else:
                    outcome.already_applied += 1
            if progress is not None:
                progress(done, total)
        BacsReportImportError.objects.bulk_create(errors)
        record.applied = outcome.applied
        record.already_applied = outcome.already_applied
        record.rejected = len(errors)
        record.save(update_fields=["applied", "already_applied", "rejected"])
        audit_record(
            actor=actor,
            action="bacs_report.imported",
            target=record,
            detail={
                "report": record.report_id,
                "sha256": sha256,
                "applied": outcome.applied,
                "already_applied": outcome.already_applied,
                "rejected": len(errors),
            },
        )
    return record


def _save_returned(rows: list[DirectDebitCollection], *, actor: User) -> None:
    """Store the returned collections with a history row each: one UPDATE per distinct outcome (a report's
    items share a handful of codes and days), not one CASE per row."""
    fields = ("outcome", "returned_reason_code", "returned_at", "action", "representation_due_by")
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for row in rows:
        groups[tuple(getattr(row, name) for name in fields)].append(row.pk)
    reasons = {row.pk: row._change_reason for row in rows}  # type: ignore[attr-defined]
    now = timezone.now()
    for values, ids in groups.items():
        changed = DirectDebitCollection.objects.filter(pk__any_of=ids)
        changed.update(**dict(zip(fields, values, strict=True)))
        # One reason per group: it is made from the code and the action, which the group shares.
        record_history_in_sql(changed, actor=actor, reason=reasons[ids[0]], when=now, history_type="~")


class _Applier:
    """Applies the items of one report, with the partner's collections and mandates looked up in bulk."""

    def __init__(self, *, partner: Partner, actor: User, record: BacsReportImport, today: datetime.date):
        self.partner = partner
        self.actor = actor
        self.record = record
        self.today = today
        # Candidate collections by (processing date, amount, mandate reference): a report's items often share
        # a day and an amount (a flat tariff), so a list per (day, amount) made matching quadratic.
        self.collections: dict[tuple[datetime.date, int, str], list[DirectDebitCollection]] = defaultdict(
            list
        )
        self.mandate_references: dict[int, str] = {}
        self.mandates_by_reference: dict[str, list[int]] = defaultdict(list)
        self.loaded: dict[int, DirectDebitCollection] = {}
        # Collections returned by this report so far.
        self.returned_now: set[int] = set()

    def load(self, items: tuple[bacs_reports.ReportItem, ...]) -> None:
        """One query for the candidate collections, one for the partner's mandates (their references are
        encrypted, so they are compared here, not in SQL)."""
        unpaid = [item for item in items if isinstance(item, UnpaidDebit)]
        if unpaid:
            rows = DirectDebitCollection.objects.filter(
                submission__partner=self.partner,
                processing_date__in={item.original_processing_date for item in unpaid},
                amount_pence__in={item.amount_pence for item in unpaid},
            ).exclude(outcome=DirectDebitCollection.Outcome.CANCELLED)
            for row in rows.order_by("pk"):
                self.loaded[row.pk] = row
        if items:
            for pk, reference in PaymentDetails.objects.filter(customer__partner=self.partner).values_list(
                "pk", "mandate_reference"
            ):
                self.mandate_references[pk] = _reference(reference)
                self.mandates_by_reference[_reference(reference)].append(pk)
        for row in self.loaded.values():
            known = self.mandate_references.get(row.mandate_id)
            if known is not None:
                self.collections[(row.processing_date, row.amount_pence, known)].append(row)

    def apply(self, item: InstructionAdvice) -> bool:
        """Apply one ADDACS item; True if it changed something, False if it had been applied already."""
        return self._advice(item)

    # ARUDD

    def _match(self, item: UnpaidDebit) -> DirectDebitCollection:
        """The collection an item returns, among those loaded: one not returned yet (by an earlier report
        or an earlier item of this one) before one that was."""
        key = (item.original_processing_date, item.amount_pence, _reference(item.reference))
        candidates = list(self.collections.get(key, []))
        if not candidates:
            raise ItemNotApplied(
                f"no Direct Debit of {_pounds(item.amount_pence)} processed on "
                f"{item.original_processing_date:%d %B %Y} under this reference in this partner's "
                "submissions; nothing was reversed"
            )
        # Two collections of one amount on one day under one mandate: the one not yet returned first.
        candidates.sort(key=lambda row: (self._returned(row), row.pk))
        return candidates[0]

    def _returned(self, row: DirectDebitCollection) -> bool:
        return row.outcome == DirectDebitCollection.Outcome.RETURNED or row.pk in self.returned_now

    def unpaid_many(
        self, items: list[UnpaidDebit]
    ) -> tuple[int, int, list[tuple[bacs_reports.ReportItem, str]]]:
        """Apply unpaid items set-based: match each, lock the accounts and the collections, reverse the
        payments together (``payments_reverse_unpaid_many``), mark the collections with the scheme's
        action for each code, then cancel the mandates the codes cancel. Returns how many were applied,
        how many had been applied already, and each item that could not be with why."""
        errors: list[tuple[bacs_reports.ReportItem, str]] = []
        matched: dict[int, UnpaidDebit] = {}
        for item in items:
            try:
                row = self._match(item)
            except ItemNotApplied as exc:
                errors.append((item, str(exc)))
                continue
            if not self._returned(row):
                matched[row.pk] = item
                self.returned_now.add(row.pk)
        already = len(items) - len(errors) - len(matched)
        if not matched:
            return 0, already, errors
        lock_customers(self.loaded[pk].customer_id for pk in matched)
        # Read again under lock: a concurrent import of another report may have returned some.
        locked = list(
            DirectDebitCollection.objects.select_for_update()
            .select_related("payment")
            .filter(pk__any_of=list(matched))
            .order_by("pk")
        )
        returned_meanwhile = [row for row in locked if row.outcome == DirectDebitCollection.Outcome.RETURNED]
        already += len(returned_meanwhile)
        rows = [row for row in locked if row.outcome != DirectDebitCollection.Outcome.RETURNED]
        refunded = payments_partly_refunded(row.payment_id for row in rows)
        for row in rows:
            if row.payment_id in refunded:
                errors.append(
                    (
                        matched[row.pk],
                        "part of its payment was refunded, so it cannot simply be returned unpaid: "
                        "post an adjustment for what the customer owes",
                    )
                )
        rows = [row for row in rows if row.payment_id not in refunded]
        payments_reverse_unpaid_many(
            returns=[
                (
                    row.payment,
                    f"ARUDD {matched[row.pk].reason_code} ({matched[row.pk].rule.reason}), "
                    f"report {self.record.report_id}",
                )
                for row in rows
            ],
            actor=self.actor,
            returned_on=self.today,
        )
        now = timezone.now()
        for row in rows:
            self._mark_returned(row, matched[row.pk], now)
        _save_returned(rows, actor=self.actor)
        audit_record_many(
            actor=self.actor,
            entries=[
                AuditEntry(
                    "direct_debit.returned_unpaid",
                    row,
                    {
                        "report": self.record.report_id,
                        "reason_code": matched[row.pk].reason_code,
                        "action": row.action,
                        "invoice": row.invoice_id,
                    },
                )
                for row in rows
            ],
        )
        for row in rows:
            errors += self._after_return(row, matched[row.pk])
        return len(rows), already, errors

    def _mark_returned(self, row: DirectDebitCollection, item: UnpaidDebit, now: datetime.datetime) -> None:
        """The collection returned with the action the scheme's guidance gives for the code."""
        action = bacs_reports.item_action(item)
        # A re-presentation is transaction code 18 (our record's, whatever the bank quotes); a collection
        # made again after ARUDD 9 also ``represents`` the one returned, but is a collection of its own (17).
        was_representation = row.transaction_code == bacs_reports.TRANSACTION_REPRESENTATION
        if action is Action.REPRESENT and was_representation:
            # The product re-presents once (ARUDD_RULES "0"): a returned re-presentation is recovered
            # another way, whatever transaction code the bank quotes.
            action = Action.RECOVER_OUTSIDE_DIRECT_DEBIT
        row.outcome = DirectDebitCollection.Outcome.RETURNED
        row.returned_reason_code = item.reason_code
        row.returned_at = now
        row.action = action.value
        if action is Action.REPRESENT:
            row.representation_due_by = bacs_reports.representation_deadline(item)
        row._change_reason = (  # type: ignore[attr-defined]  # the history row's reason (_save_returned)
            f"Returned unpaid: ARUDD {item.reason_code} ({item.rule.reason}); {action.value}"[:100]
        )

    def _after_return(
        self, row: DirectDebitCollection, item: UnpaidDebit
    ) -> list[tuple[bacs_reports.ReportItem, str]]:
        """What the code's action does beyond the collection (cancel or hold the mandate), item by item in
        its own savepoint: the payment stays returned if this fails, and the item's error says what is left
        to do."""
        if row.action not in (Action.CANCEL_MANDATE.value, Action.HOLD_UNTIL_RESOLVED.value):
            return []  # nothing beyond the collection: no savepoint to open
        why = f"ARUDD {item.reason_code}: {item.rule.reason}"
        try:
            with transaction.atomic():
                if row.action == Action.CANCEL_MANDATE.value:
                    self._cancel(row.mandate_id, why[:MAX_HISTORY_REASON])
                else:
                    self._hold(row.mandate_id, why)
        except (ValidationError, BillingError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            return [(item, f"the payment was returned, but the mandate could not be changed: {message}")]
        return []

    def _cancel(self, mandate_id: int, reason: str) -> bool:
        mandate = PaymentDetails.objects.filter(pk=mandate_id).first()
        if mandate is None or mandate.status in ENDED:
            return False
        mandates.mandate_cancel(mandate=mandate, actor=self.actor, reason=reason, by_bank=True)
        return True

    def _hold(self, mandate_id: int, reason: str) -> bool:
        """Hold collections under the mandate until staff clear it (ARUDD 4, 7, 8; ADDACS D). True when
        this changed the hold."""
        mandate = PaymentDetails.objects.filter(pk=mandate_id).first()
        if mandate is None:
            return False
        before = (mandate.collection_held_at, mandate.collection_held_reason)
        held = mandates.mandate_hold(mandate=mandate, actor=self.actor, reason=reason)
        return (held.collection_held_at, held.collection_held_reason) != before

    # ADDACS

    def _mandate(self, item: InstructionAdvice) -> PaymentDetails:
        found = self.mandates_by_reference.get(_reference(item.reference), [])
        if len(found) != 1:
            raise ItemNotApplied(
                "no mandate of this partner has this reference; nothing was changed"
                if not found
                else f"{len(found)} mandates of this partner share this reference; change it by hand"
            )
        return PaymentDetails.objects.select_for_update().select_related("customer").get(pk=found[0])

    def _advice(self, item: InstructionAdvice) -> bool:
        mandate = self._mandate(item)
        action = bacs_reports.item_action(item)
        rule = item.rule
        # History keeps a change reason of up to 100 characters, "Cancelled: " or "Reinstated: " included.
        why = f"ADDACS {item.reason_code}: {rule.reason}"[:MAX_HISTORY_REASON]
        if action is Action.CANCEL_MANDATE:
            changed = self._cancel(mandate.pk, why)
        elif action is Action.AMEND_MANDATE:
            changed = self._set_account(mandate, item, why)
        elif action is Action.MOVE_MANDATE_TO_NEW_ACCOUNT:
            changed = self._move(mandate, item, why)
        elif action is Action.REINSTATE_MANDATE:
            changed = self._reinstate(mandate, item, why)
        else:  # HOLD_UNTIL_RESOLVED: nothing is collected until staff resolve it with the payer
            changed = self._hold(mandate.pk, f"ADDACS {item.reason_code}: {rule.reason}")
        if changed:
            audit_record(
                actor=self.actor,
                action="direct_debit.instruction_advice",
                target=mandate,
                detail={
                    "report": self.record.report_id,
                    "reason_code": item.reason_code,
                    "action": action.value,
                },
            )
        return changed

    def _set_account(self, mandate: PaymentDetails, item: InstructionAdvice, why: str) -> bool:
        if not item.has_new_account:
            # E without new details: the bank amended something we do not hold. Recorded, nothing to set.
            return True
        assert item.new_sort_code is not None and item.new_account_number is not None
        if (mandate.sort_code.replace("-", ""), mandate.account_number) == (
            item.new_sort_code.replace("-", ""),
            item.new_account_number,
        ):
            return False
        payment_details_set(
            customer=mandate.customer,
            actor=self.actor,
            account_holder=mandate.account_holder,
            sort_code=item.new_sort_code,
            account_number=item.new_account_number,
            mandate_reference=mandate.mandate_reference,
            # The bank applied the change itself: "A 0C/0N pair must not be sent" (ADDACS C, E; for 3,
            # _move lodges the new instruction without a 0C to the old bank).
            amended_by_bank=True,
        )
        return True

    def _move(self, mandate: PaymentDetails, item: InstructionAdvice, why: str) -> bool:
        if not self._set_account(mandate, item, why):
            return False
        # The instruction now lives at the new bank: lodge it there (0N), and send the old bank no 0C.
        if mandate.status not in ENDED:
            mandates.mandate_cancel(mandate=mandate, actor=self.actor, reason=why, by_bank=True)
        mandates.mandate_reinstate(
            mandate=mandate, actor=self.actor, reason=f"ADDACS {item.reason_code}: lodge at the new bank"
        )
        return True

    def _reinstate(self, mandate: PaymentDetails, item: InstructionAdvice, why: str) -> bool:
        if mandate.status not in ENDED:
            return False
        cancelled_on = timezone.localdate(mandate.cancelled_at) if mandate.cancelled_at else None
        if cancelled_on is None:
            raise ItemNotApplied("the mandate has no cancellation date; obtain a new instruction")
        if item.effective_date > bacs_reports.reinstatement_deadline(cancelled_on):
            raise ItemNotApplied(
                "the bank reinstated the instruction more than two months after it was cancelled "
                f"({cancelled_on:%d %B %Y}); a new instruction must be obtained from the payer"
            )
        mandates.mandate_reinstate(mandate=mandate, actor=self.actor, reason=why)
        return True
