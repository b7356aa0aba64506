"""Billing's documents: what an invoice, a credit note and a statement show, for the page and its PDF.

One context per document, used by the page (``billing.views``), its PDF download and the invoice emailed at
finalisation (``billing.services.invoice_delivery``), so the three never differ. The PDF is the page's own
template printed by ``fusion_site.pdf.render_pdf``.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from accounts.models import Customer
from billing import selectors
from billing.models import CreditNote, Invoice, InvoiceLine
from fusion_site.money import format_money, vat_on
from fusion_site.pdf import render_pdf

INVOICE_TEMPLATE = "billing/invoice.html"
CREDIT_NOTE_TEMPLATE = "billing/credit_note.html"
STATEMENT_TEMPLATE = "billing/account.html"


@dataclass(frozen=True)
class LineParticulars:
    description: str
    quantity: str
    unit_price: str
    vat_rate: str
    amount: Decimal


@dataclass(frozen=True)
class RateTotal:
    vat_rate: str
    net: Decimal
    vat: Decimal


def _percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f}%"


def _line_particulars(line: InvoiceLine) -> LineParticulars:
    quantity = line.quantity.normalize()
    unit = line.unit or "items"
    if quantity == 1:
        unit = unit.removesuffix("s")
    if line.kind == InvoiceLine.Kind.USAGE and line.minutes is not None:
        shown = f"{quantity:f} {unit}, {line.minutes:f} min"
    else:
        shown = f"{quantity:f} {unit}"
    if line.unit_price is None:
        price = f"various ({line.get_band_display()})" if line.band else ""
    elif line.price_per == "minute":
        # Rates per minute have four decimal places: shown in pence, never as fractions of pennies.
        price = f"{(line.unit_price * 100).normalize():f}p a minute"
    elif line.price_per == "month":
        price = f"{format_money(line.unit_price)} a month"
    else:
        price = format_money(line.unit_price)
    return LineParticulars(line.description, shown, price, _percent(line.vat_rate), line.amount)


def _totals_per_rate(lines: list[InvoiceLine]) -> list[RateTotal]:
    """Net and VAT per VAT rate; VAT is worked out on each rate's net, as the invoice's own VAT is."""
    nets: dict[Decimal, Decimal] = {}
    for line in lines:
        nets[line.vat_rate] = nets.get(line.vat_rate, Decimal("0")) + line.amount
    return [RateTotal(_percent(rate), net, vat_on(net, rate)) for rate, net in sorted(nets.items())]


def invoice_context(invoice: Invoice, recipient: dict[str, str]) -> dict[str, Any]:
    """A full VAT invoice shows, per VAT Notice 700 s.16.3, for each supply the quantity, the unit price and
    the rate of VAT, and the totals per rate: rows and totals are built here, read from the lines.
    ``recipient`` is the customer's name and address as this reader may see them."""
    lines = list(invoice.lines.all())
    return {
        "invoice": invoice,
        "recipient": recipient,
        "lines": [_line_particulars(line) for line in lines],
        "vat_totals": _totals_per_rate(lines),
        "credit_notes": invoice.credit_notes.all(),
    }


def invoice_filename(invoice: Invoice) -> str:
    return f"invoice-{invoice.number or f'draft-{invoice.pk}'}.pdf"


def invoice_pdf(invoice: Invoice, recipient: dict[str, str]) -> bytes:
    return render_pdf(INVOICE_TEMPLATE, invoice_context(invoice, recipient))


def credit_note_context(note: CreditNote, recipient: dict[str, str]) -> dict[str, Any]:
    return {"note": note, "invoice": note.invoice, "recipient": recipient}


def credit_note_filename(note: CreditNote) -> str:
    return f"credit-note-{note.number}.pdf"


def statement_context(customer: Customer, *, portal: bool) -> dict[str, Any]:
    """The account as a statement: balance, open invoices, the entries with the running balance, payments."""
    return {
        "customer": customer,
        "portal": portal,
        "balance": selectors.customer_balance(customer),
        "statement": selectors.customer_statement(customer),
        "open_invoices": list(selectors.open_invoices(customer)),
        "payments": list(selectors.customer_payments(customer)),
    }


def statement_filename(customer: Customer, today: Any) -> str:
    return f"statement-{customer.reference}-{today:%Y-%m-%d}.pdf"
