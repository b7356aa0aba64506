"""Which invoices of a finalised bill run a Direct Debit submission collects, from which mandate, which
mandates it lodges (AUDDIS 0N) or cancels (0C), and why the others are left out; ``billing.bacs`` writes
the file from what this chooses.

``choose`` and ``build_standard18`` only read; the caller (``services.direct_debit.direct_debit_export``)
dates the collections by their advance notices, records the submission and moves the mandates. The amount
collected is the invoice's gross less the gross of its credit notes: what the customer still owes. Only an
active mandate is collected from (``accounts.mandates`` holds the lifecycle).

Instructions are made for the mandates of the run's own customers (those with an invoice in it): a file
holds bank details, and erasure finds the files holding a customer's through the customer's invoices.

Besides the run's own invoices, a submission collects the partner's earlier finalised invoices that are
still outstanding and whose customer's mandate is active now (``_earlier_invoices``), for the amount still
owed, each with its advance notice as usual:
- never collected (no live ``DirectDebitCollection``): a new mandate's first invoices, skipped while it was
  being lodged;
- returned "presentation overdue" (ARUDD 9) and not collected since: the scheme's special instruction is
  that the service user "must give further advance notice to the payer before Direct Debit is collected"
  (``billing.bacs_reports.ARUDD_RULES``), so the debit carries ``notice_sent_after`` and a notice sent
  before the return is not used (``services.direct_debit``). The new collection ``follows`` the returned
  one (``DirectDebitCollection.represents``), which keeps "an invoice is collected once" true.
One query finds them all, whatever their number. A run's own invoice collected meanwhile by another
submission (as an earlier invoice) is left out.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.mandates import CANCELLATION_PENDING
from accounts.models import Customer, Partner, PaymentDetails
from billing import bacs, bacs_reports
from billing.models import BillRun, DirectDebitCollection, Invoice, PartnerBillingProfile
from billing.services.ledger import invoice_outstanding_expression
from fusion_site.money import to_money


@dataclass(frozen=True)
class Debit:
    """A collection with the invoice it collects and the mandate it collects under. ``follows_id``: the
    returned collection (ARUDD 9) this one collects again; ``notice_sent_after``: an advance notice sent
    before this instant is not good for it."""

    collection: bacs.Collection
    payer: bacs.Payer
    invoice: Invoice
    mandate: PaymentDetails
    follows_id: int | None = None
    notice_sent_after: datetime.datetime | None = None


@dataclass(frozen=True)
class Lodgement:
    """An AUDDIS instruction with the mandate it lodges or cancels. ``superseded``: a 0C of the instruction
    the mandate's previous bank details were lodged under (``accounts.mandates.mandate_relodge``)."""

    instruction: bacs.Instruction
    payer: bacs.Payer
    mandate: PaymentDetails
    superseded: bool = False


@dataclass
class Choice:
    originator: bacs.Originator
    debits: list[Debit] = field(default_factory=list)
    lodgements: list[Lodgement] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def build_standard18(
    bill_run: BillRun,
    *,
    processing_date: datetime.date,
    serial: str = "000001",
    creation_date: datetime.date | None = None,
) -> bacs.Standard18File:
    """The run's AUDDIS instructions and Direct Debit collections as a Standard 18 submission
    (``bacs.standard18``), every file on ``processing_date``.

    ``creation_date`` (today by default) dates HDR1 and EOF1. Raises ValueError as ``choose`` does, or when
    ``bacs.standard18`` refuses the serial or the processing day.
    """
    choice = choose(bill_run)
    return bacs.standard18(
        debits=[(debit.collection, debit.payer) for debit in choice.debits],
        instructions=[(lodgement.instruction, lodgement.payer) for lodgement in choice.lodgements],
        originator=choice.originator,
        processing_date=processing_date,
        creation_date=creation_date or timezone.localdate(),
        serial=serial,
        period_start=bill_run.period_start,
        skipped=choice.skipped,
    )


def choose(bill_run: BillRun) -> Choice:
    """What a submission of this run collects and lodges, and what it leaves out. Raises ValueError when the
    run is not finalised or is restricted, or when the partner's Bacs originator details are missing or
    malformed."""
    # Read again: services return a fresh locked copy, so the caller's instance may still say "approved".
    bill_run = BillRun.objects.select_related("partner").get(pk=bill_run.pk)
    if bill_run.status != BillRun.Status.FINALISED:
        raise ValueError(
            f"The bill run {bill_run} is {bill_run.get_status_display().lower()}; "
            "Direct Debit files are made from finalised bill runs only."
        )
    if bill_run.is_restricted:
        raise ValueError(
            f"The bill run {bill_run} is restricted ({bill_run.restricted_reason}); "
            "its collections cannot be exported until the restriction is lifted."
        )
    choice = Choice(originator=_originator(bill_run))
    for invoice in _earlier_invoices(bill_run):
        tip = invoice.renotice_tip  # type: ignore[attr-defined]
        outcome = _collect(
            invoice,
            due=to_money(Decimal(invoice.outstanding)),  # type: ignore[attr-defined]
            follows_id=tip,
            notice_sent_after=invoice.renotice_returned_at if tip else None,  # type: ignore[attr-defined]
        )
        if isinstance(outcome, str):
            choice.skipped.append((invoice.customer_reference, f"{invoice.number} (earlier): {outcome}"))
        else:
            choice.debits.append(outcome)
    mandates: dict[int, tuple[Customer, PaymentDetails]] = {}
    for invoice in _invoices(bill_run):
        outcome = (
            bacs.SKIP_COLLECTED_ELSEWHERE
            if invoice.collected_elsewhere  # type: ignore[attr-defined]
            else _collect(invoice)
        )
        if isinstance(outcome, str):
            choice.skipped.append((invoice.customer_reference, outcome))
        else:
            choice.debits.append(outcome)
        customer = invoice.customer
        mandate = _mandate_of(customer) if customer is not None else None
        if customer is not None and mandate is not None:
            mandates[mandate.pk] = (customer, mandate)
    pending_cancellation = set(
        PaymentDetails.objects.filter(CANCELLATION_PENDING, pk__in=list(mandates)).values_list(
            "pk", flat=True
        )
    )
    for pk, (customer, mandate) in sorted(mandates.items()):
        # A change of bank details: the old instruction's 0C goes first, then the new one's 0N.
        found: list[Lodgement | str | None] = (
            [_superseded_cancellation(customer, mandate)] if mandate.superseded_cancellation_pending else []
        )
        found.append(_lodgement(customer, mandate, cancel=pk in pending_cancellation))
        for lodgement in found:
            if isinstance(lodgement, str):
                choice.skipped.append((customer.reference, lodgement))
            elif lodgement is not None:
                choice.lodgements.append(lodgement)
    return choice


def _superseded_cancellation(customer: Customer, mandate: PaymentDetails) -> Lodgement | str:
    """The 0C of the instruction a change of bank details replaced, quoting the details it was lodged
    under (the payer's old bank holds it under those), or why it cannot be made."""
    if customer.is_processing_restricted:
        return bacs.SKIP_INSTRUCTION + bacs.SKIP_RESTRICTED
    payer = bacs.Payer(
        sort_code=mandate.superseded_sort_code,
        account_number=mandate.superseded_account_number,
        account_holder=mandate.superseded_account_holder,
    )
    reference = mandate.superseded_mandate_reference.strip().upper()
    problem = bacs.payer_problem(payer, reference)
    if problem is not None:
        return bacs.SKIP_INSTRUCTION + problem
    instruction = bacs.Instruction(
        customer_reference=customer.reference,
        transaction_code=bacs.TRANSACTION_CANCEL_INSTRUCTION,
        mandate_reference=reference,
    )
    return Lodgement(instruction=instruction, payer=payer, mandate=mandate, superseded=True)


def _lodgement(customer: Customer, mandate: PaymentDetails, *, cancel: bool) -> Lodgement | str | None:
    """The AUDDIS instruction a mandate needs (0N when new, 0C when ended here but still lodged at the
    bank), None when it needs none, or why one cannot be made."""
    if mandate.status == PaymentDetails.Status.NEW:
        code = bacs.TRANSACTION_NEW_INSTRUCTION
    elif cancel:
        code = bacs.TRANSACTION_CANCEL_INSTRUCTION
    else:
        return None
    # A restriction holds every export to a third party; a customer who objected is not lodged anew.
    if customer.is_processing_restricted:
        return bacs.SKIP_INSTRUCTION + bacs.SKIP_RESTRICTED
    if code == bacs.TRANSACTION_NEW_INSTRUCTION and customer.is_billing_ceased:
        return bacs.SKIP_INSTRUCTION + bacs.SKIP_BILLING_CEASED
    payer = _payer(mandate)
    reference = mandate.mandate_reference.strip().upper()
    problem = bacs.payer_problem(payer, reference)
    if problem is not None:
        return bacs.SKIP_INSTRUCTION + problem
    instruction = bacs.Instruction(
        customer_reference=customer.reference, transaction_code=code, mandate_reference=reference
    )
    return Lodgement(instruction=instruction, payer=payer, mandate=mandate)


def _payer(mandate: PaymentDetails) -> bacs.Payer:
    return bacs.Payer(
        sort_code=mandate.sort_code,
        account_number=mandate.account_number,
        account_holder=mandate.account_holder,
    )


def _originator(bill_run: BillRun) -> bacs.Originator:
    return partner_originator(bill_run.partner)


def partner_originator(partner: Partner) -> bacs.Originator:
    """The partner's Bacs originator details, checked; ValueError when missing or malformed."""
    profile = PartnerBillingProfile.objects.filter(partner_id=partner.pk).first()
    if profile is None:
        raise ValueError(f"{partner} has no billing profile, so no Bacs originator details.")
    return bacs.originator(
        owner=str(partner),
        service_user_number=profile.bacs_service_user_number,
        sort_code=profile.bacs_sort_code,
        account_number=profile.bacs_account_number,
        account_name=profile.bacs_account_name,
    )


def _live(collections: QuerySet[DirectDebitCollection]) -> QuerySet[DirectDebitCollection]:
    return collections.exclude(outcome=DirectDebitCollection.Outcome.CANCELLED)


def _invoices(bill_run: BillRun) -> list[Invoice]:
    # Three queries whatever the size of the run: invoices with customer and mandate, then credit notes.
    return list(
        bill_run.invoices.filter(status=Invoice.Status.FINALISED)
        .select_related("customer__payment_details")
        .prefetch_related("credit_notes")
        .annotate(
            collected_elsewhere=Exists(_live(DirectDebitCollection.objects.filter(invoice=OuterRef("pk"))))
        )
        .order_by("customer_reference", "pk")
    )


def _earlier_invoices(bill_run: BillRun) -> list[Invoice]:
    """The partner's other finalised invoices, still outstanding, whose mandate is active now, and that were
    never collected or whose last collection came back "presentation overdue" (ARUDD 9). One query."""
    live = _live(DirectDebitCollection.objects.filter(invoice=OuterRef("pk")))
    # The end of an invoice's chain of collections: a live one no live collection follows.
    followed = _live(DirectDebitCollection.objects.filter(represents=OuterRef("pk")))
    renotice = (
        DirectDebitCollection.objects.filter(
            invoice=OuterRef("pk"),
            outcome=DirectDebitCollection.Outcome.RETURNED,
            action=bacs_reports.Action.NEW_ADVANCE_NOTICE.value,
        )
        .exclude(Exists(followed))
        .order_by("-pk")
    )
    return list(
        Invoice.objects.filter(
            partner_id=bill_run.partner_id,
            status=Invoice.Status.FINALISED,
            bill_run__restricted_at__isnull=True,
            customer__payment_details__status=PaymentDetails.Status.ACTIVE,
        )
        .exclude(bill_run_id=bill_run.pk)
        .annotate(
            renotice_tip=Subquery(renotice.values("pk")[:1]),
            renotice_returned_at=Subquery(renotice.values("returned_at")[:1]),
            outstanding=invoice_outstanding_expression(),
        )
        # Not collected at all, or only up to a return that asks for a new notice (no live collection
        # beyond it: the returned one is the end of the chain).
        .filter(~Exists(live) | Q(renotice_tip__isnull=False), outstanding__gt=0)
        .select_related("customer__payment_details")
        .order_by("customer_reference", "issue_date", "pk")
    )


def _collect(
    invoice: Invoice,
    *,
    due: Decimal | None = None,
    follows_id: int | None = None,
    notice_sent_after: datetime.datetime | None = None,
) -> Debit | str:
    """The collection for an invoice (of ``due`` when given: what is still owed on an earlier invoice;
    otherwise its gross less its credit notes), or why there is none."""
    customer = invoice.customer
    if customer is None:
        return bacs.SKIP_ERASED
    if due is None:
        if invoice.gross <= 0:
            return bacs.SKIP_NOTHING_DUE
        credited = sum((note.gross for note in invoice.credit_notes.all()), Decimal("0"))
        due = invoice.gross - credited
        if due <= 0:
            return bacs.SKIP_CREDITED
    # A restriction holds exports to third parties; an objection stops billing. A human decides either.
    if customer.is_processing_restricted:
        return bacs.SKIP_RESTRICTED
    if customer.is_billing_ceased:
        return bacs.SKIP_BILLING_CEASED
    mandate = _mandate_of(customer)
    if mandate is None:
        return bacs.SKIP_NO_MANDATE
    if mandate.status != PaymentDetails.Status.ACTIVE:
        return bacs.SKIP_MANDATE[mandate.status]
    if mandate.is_held:
        return bacs.SKIP_HELD + mandate.collection_held_reason
    payer = _payer(mandate)
    reference = mandate.mandate_reference.strip().upper()
    problem = bacs.payer_problem(payer, reference)
    if problem is not None:
        return problem
    amount = bacs.to_pence(due)
    if amount >= 10**bacs.AMOUNT_DIGITS:
        raise ValueError(f"Invoice {invoice.number} is too large for one Bacs collection.")
    collection = bacs.Collection(
        customer_reference=invoice.customer_reference,
        amount_pence=amount,
        mandate_reference=reference,
        invoice_number=invoice.number,
    )
    return Debit(
        collection=collection,
        payer=payer,
        invoice=invoice,
        mandate=mandate,
        follows_id=follows_id,
        notice_sent_after=notice_sent_after,
    )


def _mandate_of(customer: Customer) -> PaymentDetails | None:
    try:
        return customer.payment_details
    except ObjectDoesNotExist:
        return None
