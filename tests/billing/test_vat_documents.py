"""VAT invoices and credit notes through their pages (HMRC VAT Notice 700): each line's particulars
(s.16.3), the totals per VAT rate, the tax point of continuous supplies (s.14), and the credit note as a
document of its own, scoped like its invoice."""

import datetime
import re
from decimal import Decimal

import pytest

from accounts.models import Customer, Role, User
from billing.models import CreditNote, Invoice
from tests.billing.factories import (
    Call,
    calculated_run,
    cli_of,
    finalised_run,
    import_calls,
    january_charges,
    month,
)
from tests.factories import UserFactory, full_customer

JANUARY, FEBRUARY = month(2025, 1), month(2025, 2)
ISSUED = "1 February 2025"  # finalised_run issues the day after the usage period


def _customer_with_every_kind_of_line(partner, agent: User) -> Customer:
    """A one-off charge, a rental billed in advance, geographic calls at one rate and non-geographic
    calls at two rates (084 and 087, per minute rounded up to the minute)."""
    customer = january_charges(full_customer(partner), agent)
    cli = cli_of(customer)
    import_calls(
        partner,
        [
            Call(cli=cli, dialled_number="01134960999", duration="61"),
            Call(cli=cli, dialled_number="01134960998", duration="122"),
            Call(cli=cli, dialled_number="08450000001", duration="30"),
            Call(cli=cli, dialled_number="08700000001", duration="30"),
        ],
    )
    return customer


@pytest.fixture
def issued(partner, profile, agent, finance) -> tuple[Invoice, Customer]:
    customer = _customer_with_every_kind_of_line(partner, agent)
    run = finalised_run(partner, JANUARY, agent=agent, finance=finance)
    return run.invoices.get(customer=customer), customer


def _rows(html: str) -> dict[str, list[str]]:
    """The invoice's lines: description -> the other cells, tags stripped."""
    rows = re.findall(r'<tr class="invoice-line">(.*?)</tr>', html, flags=re.S)
    cells = [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
        for row in rows
    ]
    return {row[0]: row[1:] for row in cells}


def _row(rows: dict[str, list[str]], description: str) -> list[str]:
    """The cells of the one line whose description starts with ``description``."""
    (cells,) = [cells for name, cells in rows.items() if name.startswith(description)]
    return cells


def test_each_invoice_line_shows_its_quantity_and_unit_unit_price_and_vat_rate(client, issued, finance):
    invoice, _customer = issued
    client.force_login(finance)

    rows = _rows(client.get(f"/billing/invoices/{invoice.pk}/").content.decode())

    assert rows["Installation"] == ["1 item", "£100.00", "20%", "£100.00"]
    assert _row(rows, "Line rental (in advance 1 Feb to 28 Feb 2025)") == [
        "28 days",
        "£12.50 a month",
        "20%",
        "£12.50",
    ]  # February billed in advance
    # 61 s + 122 s at 1.5p a minute, per second.
    assert _row(rows, "Calls: UK geographic") == ["2 calls, 3.05 min", "1.5p a minute", "20%", "£0.05"]
    # 30 s each, billed by the minute, at 7p and 10p a minute plus 5p to connect: no one unit price.
    assert _row(rows, "Calls: Non-geographic") == [
        "2 calls, 2.00 min",
        "various (Non-geographic (084/087))",
        "20%",
        "£0.27",
    ]
    assert invoice.lines.filter(vat_rate=Decimal("0.20")).count() == invoice.lines.count() == 4


def test_the_totals_per_vat_rate_add_up_to_the_invoices_net_and_vat(client, issued, finance):
    invoice, _customer = issued
    client.force_login(finance)

    response = client.get(f"/billing/invoices/{invoice.pk}/")

    totals = response.context["vat_totals"]
    assert [total.vat_rate for total in totals] == ["20%"]
    assert sum(t.net for t in totals) == invoice.net == Decimal("112.82")
    assert sum(t.vat for t in totals) == invoice.vat == Decimal("22.56")
    table = response.content.decode().split('class="vat-totals"')[1].split("</table>")[0]
    assert re.search(r"<td>20%</td><td[^>]*>£112.82</td><td[^>]*>£22.56</td>", table)


def test_the_invoice_shows_its_issue_date_as_the_tax_point(client, issued, finance):
    invoice, _customer = issued
    client.force_login(finance)

    html = client.get(f"/billing/invoices/{invoice.pk}/").content.decode()

    assert invoice.tax_point == invoice.issue_date == datetime.date(2025, 2, 1)
    assert f"<dt>Tax point</dt><dd>{ISSUED}</dd>" in html


def test_a_draft_invoice_says_its_tax_point_is_set_on_issue(client, partner, profile, agent):
    customer = _customer_with_every_kind_of_line(partner, agent)
    run = calculated_run(partner, JANUARY, actor=agent)
    client.force_login(agent)

    html = client.get(f"/billing/invoices/{run.invoices.get(customer=customer).pk}/").content.decode()

    assert "<dt>Tax point</dt><dd>the invoice date, on issue</dd>" in html


def test_a_portal_customer_sees_the_particulars_of_its_own_invoice(client, issued, make_user):
    invoice, customer = issued
    client.force_login(make_user(Role.CUSTOMER, customer=customer))

    rows = _rows(client.get(f"/billing/invoices/{invoice.pk}/").content.decode())

    assert _row(rows, "Calls: UK geographic")[:3] == ["2 calls, 3.05 min", "1.5p a minute", "20%"]


# Credit notes ---------------------------------------------------------------------------------------


@pytest.fixture
def credit_note(client, issued, finance) -> CreditNote:
    invoice, _customer = issued
    client.force_login(finance)
    response = client.post(
        f"/billing/invoices/{invoice.pk}/", {"net": "25.00", "reason": "Line fault in January"}
    )
    assert response.status_code == 302
    return CreditNote.objects.get(invoice=invoice)


def test_the_invoice_page_links_to_its_credit_note(client, issued, credit_note, finance):
    invoice, _customer = issued
    client.force_login(finance)

    html = client.get(f"/billing/invoices/{invoice.pk}/").content.decode()

    assert f'<a href="/billing/credit-notes/{credit_note.pk}/">{credit_note.number}</a>' in html


@pytest.mark.parametrize("role", [Role.FINANCE_MANAGER, Role.BILLING_AGENT, Role.CUSTOMER])
def test_the_credit_note_page_shows_its_particulars(client, issued, credit_note, make_user, role):
    invoice, customer = issued
    user = make_user(role, customer=customer) if role == Role.CUSTOMER else make_user(role)
    client.force_login(user)

    response = client.get(f"/billing/credit-notes/{credit_note.pk}/")

    assert response.status_code == 200
    html = response.content.decode()
    assert f"Credit note {credit_note.number}" in html
    assert "<dt>Credit note date</dt><dd>30 November 2026</dd>" in html  # the frozen clock's today
    assert f">{invoice.number}</a> of {ISSUED}" in html
    assert "Line fault in January" in html
    assert 'Net credited</th><td class="num">£25.00' in html
    assert 'VAT credited</th><td class="num">£5.00' in html
    assert 'Total credited</th><td class="num"><strong>£30.00' in html
    assert invoice.supplier_name in html and f"VAT registration number {invoice.supplier_vat_number}" in html
    assert f"Account {invoice.customer_reference}" in html


@pytest.mark.parametrize("role", [Role.FINANCE_MANAGER, Role.BILLING_AGENT])
def test_another_partners_staff_do_not_find_the_credit_note(client, other_partner, credit_note, role):
    client.force_login(UserFactory(role=role, partner=other_partner))

    assert client.get(f"/billing/credit-notes/{credit_note.pk}/").status_code == 404


def test_another_customer_does_not_find_the_credit_note(client, credit_note, make_user):
    client.force_login(make_user(Role.CUSTOMER))

    assert client.get(f"/billing/credit-notes/{credit_note.pk}/").status_code == 404
