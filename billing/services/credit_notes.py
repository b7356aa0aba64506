"""Crediting a finalised invoice in full or in part, under the partner's gapless credit note numbering."""

from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from billing.models import (
    CreditNote,
    Invoice,
    PartnerBillingProfile,
    WriteOff,
)
from billing.services.errors import BillingError
from billing.services.ledger import ledger_post_credit_note
from fusion_site.models import save_with_actor
from fusion_site.money import to_money, vat_on


@transaction.atomic
def credit_note_issue(
    *, invoice: Invoice, actor: User, reason: str, net: Decimal | None = None
) -> CreditNote:
    """Credit a finalised invoice in full (no amount) or in part (a net amount); VAT at the invoice's rate.
    The invoice itself is never changed."""
    if not actor.has_perm("billing.add_creditnote"):
        raise PermissionDenied("You may not issue credit notes.")
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.FINALISED:
        raise BillingError("Only a finalised invoice can be credited.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the invoice is credited."})
    earlier = list(invoice.credit_notes.all())
    remaining = invoice.net - sum((note.net for note in earlier), Decimal("0"))
    amount = remaining if net is None else to_money(net)
    if amount <= 0 or amount > remaining:
        raise ValidationError(
            {"net": f"The credit must be more than 0 and at most {remaining} (net not yet credited)."}
        )
    # The last credit takes exactly the VAT not yet credited, so full credits always net to zero.
    vat = (
        invoice.vat - sum((note.vat for note in earlier), Decimal("0"))
        if amount == remaining
        else vat_on(amount, invoice.vat_rate)
    )
    # What was written off is no longer owed, so it cannot be credited as well: the customer would get the
    # same money back twice (and the invoice would owe less than nothing).
    written_off = sum(
        (write_off.amount for write_off in invoice.write_offs.filter(status=WriteOff.Status.APPROVED)),
        Decimal("0"),
    )
    creditable = invoice.gross - sum((note.gross for note in earlier), Decimal("0")) - written_off
    if written_off and amount + vat > creditable:
        raise ValidationError(
            {
                "net": f"{written_off} of this invoice was written off; a credit may take at most "
                f"{creditable} gross (VAT included) of what is left."
            }
        )
    profile = PartnerBillingProfile.objects.select_for_update().get(partner_id=invoice.partner_id)
    sequence = profile.next_credit_note_number
    profile.next_credit_note_number += 1
    save_with_actor(profile, actor=actor, reason="Credit note number assigned")
    note = CreditNote(
        invoice=invoice,
        partner_id=invoice.partner_id,
        sequence=sequence,
        number=f"{profile.invoice_prefix}CN{sequence:06d}",
        issue_date=timezone.localdate(),
        reason=reason,
        net=amount,
        vat=vat,
        gross=amount + vat,
        issued_by=actor,
    )
    save_with_actor(note, actor=actor)
    ledger_post_credit_note(credit_note=note, actor=actor)
    return note
