"""Which invoices of a finalised bill run a Direct Debit file collects, from which mandate, and why the
others are left out; ``billing.bacs`` writes the file from what this chooses.

``build_standard18`` only reads: it returns the file's text with what it collected and what it skipped,
and the caller (``services.direct_debit.direct_debit_export``) records the submission. The amount
collected is the invoice's gross less the gross of its credit notes: what the customer still owes.
"""

import datetime
from decimal import Decimal

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from accounts.models import Customer, PaymentDetails
from billing import bacs
from billing.models import BillRun, Invoice, PartnerBillingProfile


def build_standard18(
    bill_run: BillRun,
    *,
    processing_date: datetime.date,
    serial: str = "000001",
    creation_date: datetime.date | None = None,
) -> bacs.Standard18File:
    """The Direct Debit collections of a finalised bill run as a Standard 18 file (``bacs.standard18``).

    ``creation_date`` (today by default) dates HDR1 and EOF1. Raises ValueError when the run is not
    finalised or is restricted, when the partner's Bacs originator details are missing or malformed, or
    when ``bacs.standard18`` refuses the serial or the processing day.
    """
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
    originator = _originator(bill_run)
    debits: list[tuple[bacs.Collection, bacs.Payer]] = []
    skipped: list[tuple[str, str]] = []
    for invoice in _invoices(bill_run):
        outcome = _collect(invoice)
        if isinstance(outcome, str):
            skipped.append((invoice.customer_reference, outcome))
        else:
            debits.append(outcome)
    return bacs.standard18(
        debits=debits,
        originator=originator,
        processing_date=processing_date,
        creation_date=creation_date or timezone.localdate(),
        serial=serial,
        period_start=bill_run.period_start,
        skipped=skipped,
    )


def _originator(bill_run: BillRun) -> bacs.Originator:
    profile = PartnerBillingProfile.objects.filter(partner_id=bill_run.partner_id).first()
    if profile is None:
        raise ValueError(f"{bill_run.partner} has no billing profile, so no Bacs originator details.")
    return bacs.originator(
        owner=str(bill_run.partner),
        service_user_number=profile.bacs_service_user_number,
        sort_code=profile.bacs_sort_code,
        account_number=profile.bacs_account_number,
        account_name=profile.bacs_account_name,
    )


def _invoices(bill_run: BillRun) -> list[Invoice]:
    # Three queries whatever the size of the run: invoices with customer and mandate, then credit notes.
    return list(
        bill_run.invoices.filter(status=Invoice.Status.FINALISED)
        .select_related("customer__payment_details")
        .prefetch_related("credit_notes")
        .order_by("customer_reference", "pk")
    )


def _collect(invoice: Invoice) -> tuple[bacs.Collection, bacs.Payer] | str:
    """The collection for an invoice, or why there is none."""
    customer = invoice.customer
    if customer is None:
        return bacs.SKIP_ERASED
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
    payer = bacs.Payer(
        sort_code=mandate.sort_code,
        account_number=mandate.account_number,
        account_holder=mandate.account_holder,
    )
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
    return collection, payer


def _mandate_of(customer: Customer) -> PaymentDetails | None:
    try:
        return customer.payment_details
    except ObjectDoesNotExist:
        return None
