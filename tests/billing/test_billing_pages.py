"""The billing pages through the test client: who sees what (200 / 403 / 404), the variance report, and the
bill run actions posted from the run's page."""

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.utils.html import escape

from accounts.models import Customer, Role, User
from billing.demo import uk_tariff
from billing.models import Band, BillRun, CallRecord, CreditNote, Invoice, Rate
from billing.services.bill_runs import bill_run_create, bill_run_start_calculation
from billing.services.charges import one_off_charge_create
from billing.services.credit_notes import credit_note_issue
from tests.billing.factories import (
    Call,
    billing_profile,
    calculated_run,
    call,
    cli_of,
    finalised_run,
    import_calls,
    month,
    run_on_commit,
)
from tests.chart_pages import chart_data, chart_summary, chart_table
from tests.factories import UserFactory, full_customer

JANUARY, FEBRUARY = month(2025, 1), month(2025, 2)


def _charge(customer: Customer, amount: str, day: datetime.date, agent: User) -> None:
    one_off_charge_create(
        customer=customer, description="Equipment", amount=Decimal(amount), charge_date=day, actor=agent
    )


@dataclass
class World:
    """A partner with a finalised January run and a calculated February run; another partner likewise."""

    own_final: BillRun
    own_draft: BillRun
    other_final: BillRun
    customer: Customer
    second_customer: Customer
    other_customer: Customer

    def invoice(self, bill_run: BillRun, customer: Customer) -> Invoice:
        return bill_run.invoices.get(customer=customer)


@pytest.fixture
def world(partner, other_partner, customer, other_customer, agent, finance) -> World:
    billing_profile(partner, default_tariff=uk_tariff(), invoice_prefix="OWN-")
    billing_profile(other_partner, default_tariff=uk_tariff(name="Other"), invoice_prefix="OTH-")
    second = full_customer(partner)
    for who, amount in ((customer, "100.00"), (second, "50.00")):
        _charge(who, amount, datetime.date(2025, 1, 5), agent)
    own_final = finalised_run(partner, JANUARY, agent=agent, finance=finance)
    # February: the first customer's bill rises by half, the second's stays the same, a third is new.
    _charge(customer, "150.00", datetime.date(2025, 2, 5), agent)
    _charge(second, "50.00", datetime.date(2025, 2, 5), agent)
    _charge(full_customer(partner), "20.00", datetime.date(2025, 2, 5), agent)
    own_draft = calculated_run(partner, FEBRUARY, actor=agent)

    other_agent = UserFactory(role=Role.BILLING_AGENT, partner=other_partner)
    other_finance = UserFactory(role=Role.FINANCE_MANAGER, partner=other_partner)
    _charge(other_customer, "10.00", datetime.date(2025, 1, 5), other_agent)
    other_final = finalised_run(other_partner, JANUARY, agent=other_agent, finance=other_finance)
    return World(own_final, own_draft, other_final, customer, second, other_customer)


PageUrl = Callable[[World], str]

OWN_PAGES: list[tuple[str, PageUrl]] = [
    ("bill-runs", lambda w: "/billing/runs/"),
    ("finalised-run", lambda w: f"/billing/runs/{w.own_final.pk}/"),
    ("draft-run", lambda w: f"/billing/runs/{w.own_draft.pk}/"),
    ("finalised-invoice", lambda w: f"/billing/invoices/{w.invoice(w.own_final, w.customer).pk}/"),
    ("draft-invoice", lambda w: f"/billing/invoices/{w.invoice(w.own_draft, w.customer).pk}/"),
    ("suspense", lambda w: "/billing/suspense/"),
    ("imports", lambda w: "/billing/imports/"),
]
OTHER_PARTNERS_PAGES: list[tuple[str, PageUrl]] = [
    ("run", lambda w: f"/billing/runs/{w.other_final.pk}/"),
    ("invoice", lambda w: f"/billing/invoices/{w.invoice(w.other_final, w.other_customer).pk}/"),
    ("run-action", lambda w: f"/billing/runs/{w.other_final.pk}/approve/"),
]


def _pages(pages: list[tuple[str, PageUrl]]) -> list:
    return [pytest.param(url, id=name) for name, url in pages]


@pytest.mark.parametrize(
    ("role", "url"),
    [
        pytest.param(role, url, id=f"{role.label}-{name}")
        for role in (Role.BILLING_AGENT, Role.FINANCE_MANAGER)
        for name, url in OWN_PAGES
        if not (role == Role.FINANCE_MANAGER and name == "imports")  # finance does not import calls
    ],
)
def test_the_partners_billing_staff_see_its_billing_pages(client, make_user, world, role, url):
    client.force_login(make_user(role))

    assert client.get(url(world)).status_code == 200


@pytest.mark.parametrize("url", _pages(OTHER_PARTNERS_PAGES))
@pytest.mark.parametrize("role", [Role.BILLING_AGENT, Role.FINANCE_MANAGER])
def test_another_partners_run_and_invoice_are_not_found(client, make_user, world, role, url):
    client.force_login(make_user(role))

    response = client.get(url(world)) if not url(world).endswith("/approve/") else client.post(url(world))

    assert response.status_code == 404


def test_the_run_list_shows_only_the_partners_runs(client, agent, world):
    client.force_login(agent)

    runs = list(client.get("/billing/runs/").context["runs"])

    assert runs == [world.own_draft, world.own_final]


@pytest.mark.parametrize(
    ("which", "status"),
    [
        pytest.param(lambda w: w.invoice(w.own_final, w.customer), 200, id="own-finalised"),
        pytest.param(lambda w: w.invoice(w.own_draft, w.customer), 404, id="own-draft"),
        pytest.param(
            lambda w: w.invoice(w.own_final, w.second_customer), 404, id="same-partner-other-customer"
        ),
        pytest.param(lambda w: w.invoice(w.other_final, w.other_customer), 404, id="other-partner"),
    ],
)
def test_a_portal_user_sees_only_its_own_finalised_invoices(client, make_user, world, which, status):
    client.force_login(make_user(Role.CUSTOMER, customer=world.customer))
    invoice = which(world)

    response = client.get(f"/billing/invoices/{invoice.pk}/")

    assert response.status_code == status
    if status == 200:
        html = response.content.decode()
        assert f"VAT invoice {invoice.number}" in html
        assert escape(world.customer.name) in html
        assert "Issue a credit note" not in html


@pytest.mark.parametrize("url", ["/billing/runs/", "/billing/suspense/", "/billing/imports/"])
def test_a_portal_user_is_refused_the_staff_billing_pages(client, make_user, world, url):
    client.force_login(make_user(Role.CUSTOMER, customer=world.customer))

    assert client.get(url).status_code == 403


def test_a_portal_user_lists_its_own_finalised_invoices(client, make_user, world):
    client.force_login(make_user(Role.CUSTOMER, customer=world.customer))

    response = client.get(f"/billing/customers/{world.customer.reference}/invoices/")

    assert response.status_code == 200
    assert list(response.context["invoices"]) == [world.invoice(world.own_final, world.customer)]


@pytest.mark.parametrize(
    ("url", "status"),
    [
        pytest.param(lambda w: "/billing/runs/", 403, id="bill-runs"),
        pytest.param(lambda w: "/billing/suspense/", 403, id="suspense"),
        pytest.param(lambda w: "/billing/imports/", 403, id="imports"),
        # Single objects the user may not see answer 404, as customers do (their existence is not told).
        pytest.param(lambda w: f"/billing/runs/{w.own_final.pk}/", 404, id="run"),
        pytest.param(
            lambda w: f"/billing/invoices/{w.invoice(w.own_final, w.customer).pk}/", 404, id="invoice"
        ),
    ],
)
def test_a_support_agent_has_no_billing_pages(client, make_user, world, url, status):
    client.force_login(make_user(Role.SUPPORT_AGENT))

    assert client.get(url(world)).status_code == status


@pytest.mark.parametrize("url", ["/billing/runs/", "/billing/suspense/", "/billing/invoices/1/"])
def test_billing_pages_need_a_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response.url.startswith("/login/")


# The run's page -----------------------------------------------------------------------------------


def test_the_run_page_shows_the_variance_against_the_previous_finalised_run(client, agent, world):
    client.force_login(agent)

    response = client.get(f"/billing/runs/{world.own_draft.pk}/")

    assert response.status_code == 200
    assert response.context["previous"] == world.own_final
    rows = {row.customer_reference: row for row in response.context["variance_rows"]}
    first, new = world.customer.reference, next(r for r in rows if r != world.customer.reference)
    assert set(rows) == {first, new}, "the second customer did not move"
    assert (rows[first].previous, rows[first].current, rows[first].change_percent) == (
        Decimal("100.00"),
        Decimal("150.00"),
        Decimal("50.0"),
    )
    assert (rows[new].previous, rows[new].change_percent) == (Decimal("0"), None)
    html = response.content.decode()
    data = chart_data(html, "variance")
    assert data["signed"] and data["y"]["label"] == "Change in net total (£)"
    changes = dict(zip(data["labels"], data["series"][0]["values"], strict=True))
    assert changes == {first: "50.00", new: str(rows[new].change)}
    assert [first, "£50.00"] in chart_table(html, "variance")
    assert f"{first}: £50.00" in chart_summary(html, "variance")
    assert f'<td>{first}</td><td class="num">£100.00</td><td class="num">£150.00</td>' in html
    assert "January 2025" in html


def test_the_first_run_has_no_variance_to_show(client, agent, world):
    client.force_login(agent)

    response = client.get(f"/billing/runs/{world.own_final.pk}/")

    assert response.context["previous"] is None
    assert "No earlier finalised run of this partner to compare with." in response.content.decode()
    assert '<figure class="chart"' not in response.content.decode()


def test_the_run_page_lists_skipped_customers_with_the_reason(client, partner, agent, make_user):
    billing_profile(partner, default_tariff=uk_tariff())
    held = full_customer(partner)
    held.billing_ceased_at = datetime.datetime(2025, 1, 3, tzinfo=datetime.UTC)
    held.billing_ceased_by = make_user(Role.DATA_PROTECTION_OFFICER)
    held.billing_ceased_reason = "Objection by email"
    held.save()
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    client.force_login(agent)

    html = client.get(f"/billing/runs/{bill_run.pk}/").content.decode()

    assert "Skipped: billing ceased (objection): 1 customer</h3>" in html
    assert held.reference in html and "Objection by email" in html


def _exceptions_section(html: str) -> tuple[list[str], list[list[str]]]:
    """The headings of the run page's exceptions and, under each, its listed items' text."""
    section = html[html.index('<section id="exceptions">') :]
    section = section[: section.index("</section>")]
    headings = re.findall(r"<h3>(.*?)</h3>", section)
    lists = [
        [re.sub(r"<[^>]+>", "", item).strip() for item in re.findall(r"<li>(.*?)</li>", block)]
        for block in re.findall(r"<ul>(.*?)</ul>", section, flags=re.S)
    ]
    return headings, lists


def test_the_exceptions_headings_count_what_they_list_in_the_unit_they_count(client, partner, agent):
    """Two calls from a number no line owns are one listed item: the heading said "(1)" beside "2 calls"."""
    billing_profile(partner, default_tariff=uk_tariff())
    rated, unrateable = full_customer(partner), full_customer(partner)
    full_customer(partner)  # a third customer with nothing in suspense
    import_calls(
        partner,
        [Call(cli="01134960111", start_time="2025-01-10T10:00"), Call(cli="01134960112")]
        + [Call(cli=cli_of(unrateable), dialled_number="05001234567") for _ in range(3)]
        + [Call(cli=cli_of(rated))],
    )
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    client.force_login(agent)

    html = client.get(f"/billing/runs/{bill_run.pk}/").content.decode()

    headings, lists = _exceptions_section(html)
    assert headings == [
        "Calls in suspense in the period: 3 calls of 1 customer",
        "Calls from numbers no line owns: 2 calls",
    ]
    assert lists == [
        [f"{unrateable.reference} 3 calls Calls that could not be rated"],
        ["2 calls Fix the lines, then re-rate from the suspense queue"],
    ]
    assert "2 exceptions listed below, one a line." in html


# Amounts of money on the pages --------------------------------------------------------------------

SHOWN_AMOUNT = re.compile(r"-?£\d{1,3}(?:,\d{3})*\.\d{2}(?![\d,])")
MORE_THAN_PENNIES = re.compile(r"\d\.\d{3,}")


@pytest.fixture
def money_world(partner, customer, agent, finance) -> dict[str, str]:
    """Amounts with thousands, a fall between runs (a negative change), a credit note, calls whose
    costs have four decimal places (summed unrounded), and calls never billed."""
    billing_profile(partner, default_tariff=uk_tariff(), invoice_prefix="OWN-")
    small = full_customer(partner)
    _charge(customer, "8953.84", datetime.date(2025, 1, 5), agent)
    _charge(small, "0.05", datetime.date(2025, 1, 5), agent)
    import_calls(partner, [Call(cli=cli_of(small), duration=str(37 + n)) for n in range(7)])
    january = finalised_run(partner, JANUARY, agent=agent, finance=finance)
    credit_note_issue(
        invoice=january.invoices.get(customer=customer),
        actor=finance,
        reason="Goodwill",
        net=Decimal("1234.56"),
    )
    _charge(customer, "1000.00", datetime.date(2025, 2, 5), agent)
    february = calculated_run(partner, FEBRUARY, actor=agent)
    import_calls(partner, [Call(cli=cli_of(small), start_time="2025-03-03T09:00:00", duration="71")])
    return {
        "bill runs": "/billing/runs/",
        "January run": f"/billing/runs/{january.pk}/",
        "February run": f"/billing/runs/{february.pk}/",
        "January invoice": f"/billing/invoices/{january.invoices.get(customer=customer).pk}/",
        "small January invoice": f"/billing/invoices/{january.invoices.get(customer=small).pk}/",
        "February draft invoice": f"/billing/invoices/{february.invoices.get(customer=customer).pk}/",
        "customer invoices": f"/billing/customers/{customer.reference}/invoices/",
        "suspense": "/billing/suspense/",
        "erasure preview": f"/privacy/customers/{small.reference}/erasure-preview/",
    }


def test_every_amount_on_the_billing_pages_is_shown_in_pounds_and_pennies(
    client, money_world, finance, make_user
):
    client.force_login(finance)
    pages = {}
    for name, url in money_world.items():
        if name == "erasure preview":
            client.force_login(make_user(Role.DATA_PROTECTION_OFFICER))
        response = client.get(url)
        assert response.status_code == 200, name
        pages[name] = response.content.decode()

    for name, html in pages.items():
        assert not MORE_THAN_PENNIES.findall(html), name
        for amount in re.findall(r"-?£\d[\d,.]*", html):
            assert SHOWN_AMOUNT.fullmatch(amount), (name, amount)
    assert "£8,953.84" in pages["January invoice"]
    assert "£1,234.56" in pages["January invoice"] and "£246.91" in pages["January invoice"]
    assert "-£7,953.84" in pages["February run"]  # the fall in the first customer's net
    assert "rated cost £0." in pages["erasure preview"]


# Approving a run with exceptions -------------------------------------------------------------------


@pytest.fixture
def run_with_exceptions(partner, agent) -> BillRun:
    """A calculated January run with two listed exceptions: calls no line owns, and a customer's
    calls no rate covers."""
    billing_profile(partner, default_tariff=uk_tariff())
    unrateable = full_customer(partner)
    _charge(unrateable, "10.00", datetime.date(2025, 1, 5), agent)
    import_calls(
        partner,
        [
            Call(cli="01134960111"),
            Call(cli="01134960112"),
            Call(cli=cli_of(unrateable), dialled_number="05001234567"),
        ],
    )
    return calculated_run(partner, JANUARY, actor=agent)


def test_the_approve_form_asks_the_approver_to_confirm_the_exceptions_counted(
    client, finance, run_with_exceptions
):
    client.force_login(finance)

    html = client.get(f"/billing/runs/{run_with_exceptions.pk}/").content.decode()

    assert re.search(
        r'<input type="checkbox" name="acknowledge_exceptions"[^>]*>'
        r" I have reviewed the 2 exceptions listed below",
        html,
    )
    assert "2 exceptions listed below, one a line." in html


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param({}, "Confirm you have reviewed the 2 exceptions before approving.", id="not-ticked"),
        pytest.param(
            {"exceptions_seen": "2"},
            "Confirm you have reviewed the 2 exceptions before approving.",
            id="count-only",
        ),
        pytest.param(
            {"acknowledge_exceptions": "on", "exceptions_seen": "1"},
            "The run now has 2 exceptions, not the 1 you reviewed: review them again before approving.",
            id="stale-count",
        ),
    ],
)
def test_approving_without_acknowledging_the_exceptions_is_refused_on_the_checkbox(
    client, finance, run_with_exceptions, data, error
):
    bill_run = run_with_exceptions
    client.force_login(finance)

    response = client.post(f"/billing/runs/{bill_run.pk}/approve/", data)

    assert response.status_code == 200
    assert response.context["approve_form"].errors == {"acknowledge_exceptions": [error]}
    assert escape(error) in response.content.decode()
    bill_run.refresh_from_db()
    assert (bill_run.status, bill_run.approved_by) == (BillRun.Status.CALCULATED, None)
    refusal = bill_run.events.get(action="approve refused")
    assert (refusal.actor, refusal.detail) == (finance, "Exceptions not acknowledged (2 open)")


def test_approving_with_the_exceptions_acknowledged_records_who_and_how_many(
    client, finance, run_with_exceptions
):
    bill_run = run_with_exceptions
    client.force_login(finance)

    response = _post(client, bill_run, "approve", acknowledge_exceptions="on", exceptions_seen="2")

    assert _messages(response) == ["Bill run: approve done."]
    assert (bill_run.status, bill_run.approved_by) == (BillRun.Status.APPROVED, finance)
    approved = bill_run.events.get(action="approved")
    assert (approved.actor, approved.detail) == (finance, "2 exceptions reviewed and acknowledged")
    assert (
        bill_run.history.latest().history_change_reason == "Approved; 2 exceptions reviewed and acknowledged"
    )
    assert "2 exceptions reviewed and acknowledged" in response.content.decode()


def test_a_run_without_exceptions_is_approved_without_a_checkbox(client, partner, customer, agent, finance):
    billing_profile(partner, default_tariff=uk_tariff())
    _charge(customer, "10.00", datetime.date(2025, 1, 5), agent)
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    client.force_login(finance)

    assert "acknowledge_exceptions" not in client.get(f"/billing/runs/{bill_run.pk}/").content.decode()
    _post(client, bill_run, "approve")

    assert bill_run.status == BillRun.Status.APPROVED
    assert bill_run.events.get(action="approved").detail == ""


# Actions posted from the run's page ---------------------------------------------------------------


def _post(client, bill_run: BillRun, action: str, **data: str):
    """Post the action as the run's page does and follow the redirect back to the page."""
    with run_on_commit():
        response = client.post(f"/billing/runs/{bill_run.pk}/{action}/", data, follow=True)
    bill_run.refresh_from_db()
    return response


def _messages(response) -> list[str]:
    return [message.message for message in response.context["messages"]]


def test_a_run_goes_from_draft_to_finalised_through_its_page(client, partner, customer, agent, finance):
    billing_profile(partner, default_tariff=uk_tariff(), invoice_prefix="OWN-", next_invoice_number=7)
    _charge(customer, "10.00", datetime.date(2025, 1, 5), agent)
    client.force_login(agent)

    created = client.post("/billing/runs/", {"month": "2025-01"})
    bill_run = BillRun.objects.get()
    assert created.status_code == 302
    assert created.url == f"/billing/runs/{bill_run.pk}/"
    assert (bill_run.period_start, bill_run.period_end) == JANUARY

    steps = [(agent, "calculate", BillRun.Status.CALCULATED), (finance, "approve", BillRun.Status.APPROVED)]
    steps.append((finance, "finalise", BillRun.Status.FINALISED))
    for user, action, status in steps:
        client.force_login(user)
        response = _post(client, bill_run, action)
        assert response.redirect_chain == [(f"/billing/runs/{bill_run.pk}/", 302)]
        assert bill_run.status == status, action
        assert _messages(response) == [f"Bill run: {action} done."]

    assert bill_run.invoices.get().number == "OWN-000007"


@pytest.mark.parametrize(
    ("role", "action", "status_code"),
    [
        (Role.BILLING_AGENT, "approve", 403),
        (Role.BILLING_AGENT, "finalise", 403),
        (Role.FINANCE_MANAGER, "calculate", 403),
        (Role.BILLING_AGENT, "restrict", 403),
        (Role.BILLING_AGENT, "delete", 403),
    ],
)
def test_a_role_without_the_permission_cannot_post_the_action(
    client, partner, customer, agent, make_user, role, action, status_code
):
    billing_profile(partner, default_tariff=uk_tariff())
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    client.force_login(make_user(role))

    response = _post(client, bill_run, action, reason="Because")

    assert response.status_code == status_code
    assert (bill_run.status, bill_run.restricted_at) == (BillRun.Status.CALCULATED, None)


def test_a_restricted_run_refuses_approval_on_its_page_and_lifting_restores_it(
    client, partner, customer, agent, finance, make_user
):
    billing_profile(partner, default_tariff=uk_tariff())
    bill_run = calculated_run(partner, JANUARY, actor=agent)
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    client.force_login(dpo)
    _post(client, bill_run, "restrict", reason="Subject access dispute")
    assert bill_run.restricted_reason == "Subject access dispute"

    client.force_login(finance)
    refused = _post(client, bill_run, "approve")

    assert refused.status_code == 200
    assert bill_run.status == BillRun.Status.CALCULATED
    [message] = _messages(refused)
    assert "restricted (Subject access dispute)" in message
    assert "Subject access dispute" in refused.content.decode()

    client.force_login(dpo)
    _post(client, bill_run, "lift", reason="Resolved")
    client.force_login(finance)
    _post(client, bill_run, "approve")

    assert (bill_run.status, bill_run.restricted_at) == (BillRun.Status.APPROVED, None)


def test_resume_on_the_run_page_finishes_a_crashed_calculation(client, partner, customer, agent, monkeypatch):
    from billing import calculation

    billing_profile(partner, default_tariff=uk_tariff())
    bill_run = bill_run_create(partner=partner, period_start=JANUARY[0], period_end=JANUARY[1], actor=agent)
    real = calculation.calculate_chunk

    def crash(**kwargs):
        raise RuntimeError("worker lost")

    monkeypatch.setattr(calculation, "calculate_chunk", crash)
    with pytest.raises(RuntimeError), run_on_commit():
        bill_run_start_calculation(bill_run=bill_run, actor=agent)
    monkeypatch.setattr(calculation, "calculate_chunk", real)
    client.force_login(agent)

    page = client.get(f"/billing/runs/{bill_run.pk}/").content.decode()
    assert "1 chunk failed: #1 (RuntimeError: worker lost)" in page
    assert "Resume unfinished chunks" in page

    _post(client, bill_run, "resume")

    assert (bill_run.status, bill_run.chunks_done) == (BillRun.Status.CALCULATED, 1)
    assert bill_run.invoices.filter(customer=customer).exists()
    assert {"chunk failed", "calculation resumed", "calculated"} <= set(
        bill_run.events.values_list("action", flat=True)
    )


# Invoice page: credit notes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "credited", "error"),
    [
        ("", Decimal("100.00"), None),
        ("25.00", Decimal("25.00"), None),
        ("100.01", None, "at most 100.00"),
    ],
    ids=["full", "partial", "over-credit"],
)
def test_finance_credits_an_invoice_from_its_page(client, world, finance, net, credited, error):
    invoice = world.invoice(world.own_final, world.customer)
    client.force_login(finance)

    response = client.post(f"/billing/invoices/{invoice.pk}/", {"net": net, "reason": "Goodwill"})

    if error:
        assert response.status_code == 200
        assert error in " ".join(response.context["form"].errors["net"])
        assert not CreditNote.objects.exists()
    else:
        assert response.status_code == 302
        assert CreditNote.objects.get(invoice=invoice).net == credited
    invoice.refresh_from_db()
    assert (invoice.net, invoice.gross) == (Decimal("100.00"), Decimal("120.00"))


def test_a_billing_agent_cannot_credit_an_invoice(client, world, agent):
    invoice = world.invoice(world.own_final, world.customer)
    client.force_login(agent)

    assert "Issue a credit note" not in client.get(f"/billing/invoices/{invoice.pk}/").content.decode()
    response = client.post(f"/billing/invoices/{invoice.pk}/", {"net": "1.00", "reason": "Goodwill"})

    assert response.status_code == 403
    assert not CreditNote.objects.exists()


# Suspense queue ----------------------------------------------------------------------------------


@pytest.fixture
def unrateable(partner, other_partner, customer, other_customer) -> Call:
    """A call of each partner to a number no rate covers; returns the partner's own."""
    billing_profile(partner, default_tariff=uk_tariff())
    billing_profile(other_partner, default_tariff=uk_tariff(name="Other"))
    own = Call(cli=cli_of(customer), dialled_number="05001234567")
    import_calls(partner, [own])
    import_calls(other_partner, [Call(cli=cli_of(other_customer), dialled_number="05001234567")])
    return own


def _add_05_rate(partner) -> None:
    Rate.objects.create(
        rate_card=partner.billing_profile.default_tariff.rate_cards.get(),
        prefix="05",
        band=Band.OTHER,
        price_per_minute=Decimal("0.1000"),
    )


def test_the_suspense_queue_shows_the_partners_calls_and_rerates_them(client, partner, agent, unrateable):
    own = unrateable
    client.force_login(agent)

    page = client.get("/billing/suspense/")

    assert page.status_code == 200
    assert [c.call_reference for c in page.context["page"]] == [own.call_reference]
    assert page.context["summary"] == [("No rate for this destination", 1)]

    _add_05_rate(partner)
    response = client.post("/billing/suspense/")

    assert response.status_code == 302
    assert call(own.call_reference).status == CallRecord.Status.RATED
    assert CallRecord.objects.filter(status=CallRecord.Status.SUSPENSE).count() == 1, "the other partner's"


def test_the_suspense_queue_says_how_many_calls_were_rerated(client, partner, agent, unrateable):
    _add_05_rate(partner)
    client.force_login(agent)

    response = client.post("/billing/suspense/", follow=True)

    assert [m.message for m in response.context["messages"]] == [
        "Re-rated: 1 calls rated, 0 still in suspense."
    ]


def test_a_finance_manager_may_look_at_but_not_rerate_the_suspense_queue(client, finance, unrateable):
    client.force_login(finance)

    assert client.get("/billing/suspense/").status_code == 200
    assert client.post("/billing/suspense/").status_code == 403
    assert CallRecord.objects.filter(status=CallRecord.Status.SUSPENSE).count() == 2
