"""Rating calls into costs, and the money rules of invoices and rentals.

Calls go in the way users put them in (a CSV import, which rates what it loads); invoices come out of a
calculated bill run."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts import services as accounts_services
from accounts.models import Line
from billing.demo import uk_tariff
from billing.models import Band, BillRun, CallRecord, InvoiceLine, Rate
from billing.rating import RatingResult
from billing.services.call_imports import suspense_rerate
from billing.services.charges import one_off_charge_create, recurring_charge_create
from billing.services.tariffs import customer_set_tariff, line_set_tariff
from tests.billing.factories import (
    Call,
    RateSpec,
    add_rate_card,
    billing_profile,
    calculated_run,
    call,
    cli_of,
    import_calls,
    month,
    simple_tariff,
    uk,
)
from tests.factories import LineFactory, full_customer

UNKNOWN_CLI = "020 7946 0123"  # no line of any partner has this number


def _rate_one(partner, customer, **call_fields) -> CallRecord:
    fields = {"cli": cli_of(customer), **call_fields}
    made = Call(**fields)
    import_calls(partner, [made])
    return call(made.call_reference)


# Prefixes and prices -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "prefix", "band", "cost"),
    [
        ("0033123456789", "00", Band.INTERNATIONAL, "0.6000"),  # 0.50/min + 0.10 connection
        ("0035312345678", "00353", Band.INTERNATIONAL, "0.1200"),
        ("0035387123456", "0035387", Band.INTERNATIONAL, "0.2500"),
        ("+353 87 123 4567", "0035387", Band.INTERNATIONAL, "0.2500"),  # normalised to 00353...
        ("01134960000", "01", Band.GEOGRAPHIC, "0.0150"),
        ("+44 113 496 0000", "01", Band.GEOGRAPHIC, "0.0150"),
        ("08001234567", "080", Band.FREEPHONE, "0.0000"),
    ],
)
def test_the_longest_matching_prefix_prices_the_call(partner, customer, profile, dialled, prefix, band, cost):
    rated = _rate_one(partner, customer, dialled_number=dialled, duration="60")

    assert rated.status == CallRecord.Status.RATED
    assert (rated.rate.prefix, rated.band, rated.cost) == (prefix, band, Decimal(cost))
    assert rated.customer_id == customer.pk
    assert rated.line_id == customer.lines.get().pk


@pytest.mark.parametrize(
    ("dialled", "seconds", "cost"),
    [
        # 0.015/min per second: 61 s = 0.01525 -> 0.0153 half-up (half-even would give 0.0152).
        ("01134960000", 61, "0.0153"),
        ("01134960000", 1, "0.0003"),  # 0.00025 -> 0.0003
        ("01134960000", 100, "0.0250"),
        ("01134960000", 0, "0.0000"),
        # 084: 0.07/min in 60-second increments plus 0.05 connection.
        ("08451234567", 1, "0.1200"),
        ("08451234567", 60, "0.1200"),
        ("08451234567", 61, "0.1900"),
        # 07: 0.08/min with a 0.01 minimum: 5 s = 0.0067, charged 0.0100.
        ("07700900123", 5, "0.0100"),
        ("07700900123", 60, "0.0800"),
        # 09: 1.50/min, 0.25 connection, 0.50 minimum.
        ("09012345678", 1, "0.5000"),
        ("09012345678", 60, "1.7500"),
        # 00: 0.50/min and 0.10 connection: 1 s = 0.00833 + 0.10.
        ("0033123456789", 1, "0.1083"),
    ],
)
def test_increments_connection_and_minimum_charges_round_half_up_to_4_places(
    partner, customer, profile, dialled, seconds, cost
):
    rated = _rate_one(partner, customer, dialled_number=dialled, duration=str(seconds))

    assert rated.cost == Decimal(cost)


@pytest.mark.parametrize(
    ("seconds", "cost"),
    [(1, "0.0600"), (60, "0.0600"), (61, "0.1200"), (120, "0.1200"), (121, "0.1800")],
)
def test_a_60_second_increment_rounds_the_duration_up_to_whole_minutes(partner, customer, seconds, cost):
    billing_profile(partner, default_tariff=simple_tariff("0.0600", increment_seconds=60))

    rated = _rate_one(partner, customer, duration=str(seconds))

    assert rated.cost == Decimal(cost)


# Effective dates and precedence ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started", "cost"),
    [
        ("2024-12-01T12:00:00", "0.0150"),
        ("2025-05-31T23:59:59", "0.0150"),  # last second of the old prices (BST)
        ("2025-06-01T00:00:00", "0.0300"),  # midnight UK time, 23:00 UTC the day before
        ("2025-07-15T12:00:00", "0.0300"),
    ],
)
def test_a_new_rate_card_prices_calls_from_its_effective_date(partner, customer, started, cost):
    change = uk("2025-06-01 00:00")
    tariff = simple_tariff("0.0150")
    tariff.rate_cards.update(effective_to=change)
    add_rate_card(tariff, [RateSpec("01", "0.0300")], effective_from=change)
    billing_profile(partner, default_tariff=tariff)

    rated = _rate_one(partner, customer, start_time=started, duration="60")

    assert rated.status == CallRecord.Status.RATED
    assert rated.cost == Decimal(cost)


def test_a_new_rate_card_supersedes_an_open_ended_one(partner, customer):
    tariff = simple_tariff("0.0150")  # effective from 2020, effective_to left empty
    add_rate_card(tariff, [RateSpec("01", "0.0300")], effective_from=uk("2025-06-01 00:00"))
    billing_profile(partner, default_tariff=tariff)
    cli = cli_of(customer)
    before = Call(cli=cli, start_time="2025-05-31T12:00:00")
    after = [Call(cli=cli, start_time=f"2025-06-{day:02d}T12:00:00") for day in (1, 2, 15, 30)]

    import_calls(partner, [before, *after])

    assert call(before.call_reference).cost == Decimal("0.0150")
    assert [call(c.call_reference).cost for c in after] == [Decimal("0.0300")] * len(after)


@pytest.mark.parametrize(
    ("customer_tariff", "line_tariff", "expected_first", "expected_second"),
    [
        pytest.param(False, False, "0.0100", "0.0100", id="partner-default"),
        pytest.param(True, False, "0.0200", "0.0200", id="customer-over-partner"),
        pytest.param(True, True, "0.0300", "0.0200", id="line-over-customer"),
        pytest.param(False, True, "0.0300", "0.0100", id="line-over-partner"),
    ],
)
def test_tariff_precedence_is_line_then_customer_then_partner_default(
    partner, agent, customer_tariff, line_tariff, expected_first, expected_second
):
    billing_profile(partner, default_tariff=simple_tariff("0.0100", name="Partner default"))
    customer = full_customer(partner, lines=2)
    first, second = customer.lines.order_by("pk")
    if customer_tariff:
        customer_set_tariff(
            customer=customer, tariff=simple_tariff("0.0200", name="Customer", partner=partner), actor=agent
        )
    if line_tariff:
        line_set_tariff(line=first, tariff=simple_tariff("0.0300", name="Line", partner=partner), actor=agent)
    calls = [Call(cli=first.cli), Call(cli=second.cli)]

    import_calls(partner, calls)

    assert [call(c.call_reference).cost for c in calls] == [Decimal(expected_first), Decimal(expected_second)]


def test_another_partners_tariff_cannot_be_assigned(partner, other_partner, customer, agent):
    with pytest.raises(ValidationError, match="another partner") as raised:
        customer_set_tariff(customer=customer, tariff=simple_tariff(partner=other_partner), actor=agent)
    assert "tariff" in raised.value.message_dict


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("004420", "national form"),
        ("0044", "national form"),
        ("0001", "never starts with 0"),
        ("003538712", "at most the first 8 digits"),
    ],
)
def test_a_rate_for_a_prefix_no_normalised_call_can_have_is_refused(prefix, message, db):
    """Calls are rated in the form dialled from the UK (0044 20 ... is stored as 020 ...), so a rate for
    0044 would silently never match; the admin's rate inline validates through Rate.full_clean."""
    tariff = simple_tariff()
    rate = Rate(rate_card=tariff.rate_cards.get(), prefix=prefix, band=Band.INTERNATIONAL, price_per_minute=1)

    with pytest.raises(ValidationError, match=message) as raised:
        rate.full_clean()

    assert list(raised.value.message_dict) == ["prefix"]
    Rate(
        rate_card=tariff.rate_cards.get(), prefix="0045", band=Band.INTERNATIONAL, price_per_minute=1
    ).full_clean()


# Suspense ----------------------------------------------------------------------------------------


def _fix_unknown_cli(*, customer, agent, **_):
    accounts_services.line_create(
        customer=customer,
        cli=UNKNOWN_CLI,
        line_type=Line.LineType.WLR_ANALOGUE,
        start_date=datetime.date(2024, 1, 1),
        actor=agent,
    )


def _fix_unrateable(*, partner, **_):
    card = partner.billing_profile.default_tariff.rate_cards.get()
    Rate.objects.create(rate_card=card, prefix="05", band=Band.OTHER, price_per_minute=Decimal("0.1000"))


def _fix_no_tariff(*, customer, agent, **_):
    customer_set_tariff(customer=customer, tariff=uk_tariff(name="Late tariff"), actor=agent)


@pytest.mark.parametrize(
    ("reason", "with_default_tariff", "from_unknown_cli", "dialled", "fix", "cost_after_fix"),
    [
        (CallRecord.SuspenseReason.UNKNOWN_CLI, True, True, "01134960000", _fix_unknown_cli, "0.0150"),
        (CallRecord.SuspenseReason.UNRATEABLE, True, False, "05001234567", _fix_unrateable, "0.1000"),
        (CallRecord.SuspenseReason.NO_TARIFF, False, False, "01134960000", _fix_no_tariff, "0.0150"),
    ],
)
def test_calls_that_cannot_be_rated_wait_in_suspense_until_rerated(
    partner,
    customer,
    agent,
    reason,
    with_default_tariff,
    from_unknown_cli,
    dialled,
    fix,
    cost_after_fix,
):
    billing_profile(partner, default_tariff=uk_tariff() if with_default_tariff else None)
    stuck = Call(cli=UNKNOWN_CLI if from_unknown_cli else cli_of(customer), dialled_number=dialled)
    fine = Call(cli=cli_of(customer), dialled_number="01134960000") if with_default_tariff else None
    call_import = import_calls(partner, [stuck, *([fine] if fine else [])])

    held = call(stuck.call_reference)
    assert (held.status, held.suspense_reason, held.cost) == (CallRecord.Status.SUSPENSE, reason, None)
    assert call_import.suspense == 1
    assert call_import.imported == (2 if fine else 1)

    fix(partner=partner, customer=customer, agent=agent)
    suspense_rerate(partner=partner, actor=agent)

    held.refresh_from_db()
    assert (held.status, held.suspense_reason, held.cost) == (
        CallRecord.Status.RATED,
        "",
        Decimal(cost_after_fix),
    )
    assert held.customer_id == customer.pk
    if fine:
        assert call(fine.call_reference).status == CallRecord.Status.RATED


def test_rerating_without_a_fix_leaves_the_call_in_suspense(partner, profile, agent):
    stuck = Call(cli=UNKNOWN_CLI)
    import_calls(partner, [stuck])

    suspense_rerate(partner=partner, actor=agent)

    held = call(stuck.call_reference)
    assert (held.status, held.suspense_reason) == (
        CallRecord.Status.SUSPENSE,
        CallRecord.SuspenseReason.UNKNOWN_CLI,
    )


def test_rerating_reports_how_many_calls_were_rated_and_how_many_stay_in_suspense(
    partner, customer, profile, agent
):
    fixable = [Call(cli=cli_of(customer), dialled_number="05001234567") for _ in range(2)]
    hopeless = [Call(cli=UNKNOWN_CLI) for _ in range(3)]
    import_calls(partner, [*fixable, *hopeless])
    _fix_unrateable(partner=partner)

    result = suspense_rerate(partner=partner, actor=agent)

    assert (result.rated, result.suspense) == (2, 3)


def test_rerating_touches_only_the_chosen_suspense_calls_of_its_own_partner(
    partner, customer, profile, agent, other_partner, other_customer
):
    """Re-rating is for calls in suspense: never a rated call (it may be invoiced already), never another
    partner's call, and with ``call_ids`` only those calls."""
    billing_profile(other_partner, default_tariff=uk_tariff(name="Other partner's tariff"))
    rated = Call(cli=cli_of(customer), dialled_number="05001234567")
    chosen, left = (Call(cli=cli_of(customer), dialled_number="05001234567") for _ in range(2))
    import_calls(partner, [Call(cli=cli_of(customer), dialled_number="01134960000")])
    theirs = Call(cli=cli_of(other_customer), dialled_number="05001234567")
    import_calls(other_partner, [theirs])
    import_calls(partner, [chosen, left])
    _fix_unrateable(partner=partner)
    import_calls(partner, [rated])  # rated at 0.1000 a minute by the rate just added
    Rate.objects.filter(prefix="05", rate_card__tariff=profile.default_tariff).update(
        price_per_minute=Decimal("0.2000")
    )
    _fix_unrateable(partner=other_partner)

    result = suspense_rerate(partner=partner, actor=agent, call_ids=[call(chosen.call_reference).pk])

    assert (result.rated, result.suspense) == (1, 0)
    assert call(chosen.call_reference).cost == Decimal("0.2000")  # a minute at the price now
    assert call(rated.call_reference).cost == Decimal("0.1000")  # as rated: a minute at the old price
    assert (call(left.call_reference).status, call(left.call_reference).suspense_reason) == (
        CallRecord.Status.SUSPENSE,
        CallRecord.SuspenseReason.UNRATEABLE,
    )
    assert (call(theirs.call_reference).status, call(theirs.call_reference).suspense_reason) == (
        CallRecord.Status.SUSPENSE,
        CallRecord.SuspenseReason.UNRATEABLE,
    )

    assert suspense_rerate(partner=partner, actor=agent) == RatingResult(rated=1, suspense=0)  # all of ours
    assert call(left.call_reference).status == CallRecord.Status.RATED
    assert call(theirs.call_reference).status == CallRecord.Status.SUSPENSE  # never another partner's


def test_a_number_of_another_partners_line_is_unknown_here(partner, profile, other_customer):
    foreign = Call(cli=cli_of(other_customer))

    import_calls(partner, [foreign])

    held = call(foreign.call_reference)
    assert (held.status, held.suspense_reason) == (CallRecord.Status.SUSPENSE, "unknown_cli")
    assert held.customer_id is None


@pytest.mark.parametrize(
    ("started", "status"),
    [
        pytest.param("2025-05-31T23:59:00", CallRecord.Status.SUSPENSE, id="day-before-start"),
        pytest.param(
            "2025-06-01T00:30:00",
            CallRecord.Status.RATED,
            id="first-hour-of-start-day-bst",
        ),
        pytest.param("2025-06-01T12:00:00", CallRecord.Status.RATED, id="start-day"),
    ],
)
def test_a_call_is_matched_to_the_line_that_owned_the_number_on_the_uk_day_of_the_call(
    partner, profile, agent, started, status
):
    customer = full_customer(partner, lines=0)
    LineFactory(customer=customer, cli=UNKNOWN_CLI, start_date=datetime.date(2025, 6, 1))
    made = Call(cli=UNKNOWN_CLI, start_time=started)

    import_calls(partner, [made])

    assert call(made.call_reference).status == status


# Invoice money ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("durations", "line_amount"),
    [
        # 3 x 0.0153 = 0.0459 -> 0.05 (rounding each call to pennies first would give 0.06).
        ([61, 61, 61], "0.05"),
        # 0.0250 -> 0.03 half-up (half-even would give 0.02).
        ([100], "0.03"),
        ([60] * 10, "0.15"),
    ],
)
def test_usage_lines_are_rounded_to_pennies_from_the_sum_of_call_costs(
    partner, customer, profile, agent, durations, line_amount
):
    import_calls(
        partner,
        [
            Call(cli=cli_of(customer), duration=str(seconds), start_time="2025-01-10T09:00")
            for seconds in durations
        ],
    )

    bill_run = calculated_run(partner, month(2025, 1), actor=agent)

    invoice = bill_run.invoices.get(customer=customer)
    usage = invoice.lines.get(kind=InvoiceLine.Kind.USAGE)
    assert (usage.band, usage.quantity, usage.amount) == (
        Band.GEOGRAPHIC,
        len(durations),
        Decimal(line_amount),
    )
    assert invoice.net == Decimal(line_amount)


def test_vat_is_20_percent_of_the_net_total_not_the_sum_of_each_lines_vat(partner, customer, profile, agent):
    cli = cli_of(customer)
    import_calls(
        partner,
        [
            Call(cli=cli, dialled_number="01134960000", duration="120", start_time="2025-01-10T09:00"),
            *[
                Call(cli=cli, dialled_number="07700900123", duration="5", start_time="2025-01-11T09:00")
                for _ in range(3)
            ],
        ],
    )

    bill_run = calculated_run(partner, month(2025, 1), actor=agent)

    invoice = bill_run.invoices.get(customer=customer)
    amounts = dict(invoice.lines.values_list("band", "amount"))
    assert amounts == {Band.GEOGRAPHIC: Decimal("0.03"), Band.MOBILE: Decimal("0.03")}
    # 20% of 0.06 = 0.012 -> 0.01; VAT per line would be 0.01 + 0.01.
    assert (invoice.net, invoice.vat, invoice.gross) == (Decimal("0.06"), Decimal("0.01"), Decimal("0.07"))


@pytest.mark.parametrize(
    ("net", "vat"),
    [("0.13", "0.03"), ("10.02", "2.00"), ("10.03", "2.01"), ("99.99", "20.00"), ("31.00", "6.20")],
)
def test_vat_on_an_invoice_is_rounded_half_up_to_pennies(partner, customer, profile, agent, net, vat):
    one_off_charge_create(
        customer=customer,
        description="Equipment",
        amount=Decimal(net),
        charge_date=datetime.date(2025, 1, 5),
        actor=agent,
    )

    invoice = calculated_run(partner, month(2025, 1), actor=agent).invoices.get(customer=customer)

    assert (invoice.net, invoice.vat, invoice.gross) == (
        Decimal(net),
        Decimal(vat),
        Decimal(net) + Decimal(vat),
    )


# Rentals ----------------------------------------------------------------------------------------


def _rental_lines(partner, customer, agent, period):
    bill_run = calculated_run(partner, period, actor=agent)
    invoice = bill_run.invoices.get(customer=customer)
    return bill_run, sorted(
        (line.description, line.quantity, line.amount)
        for line in invoice.lines.filter(kind=InvoiceLine.Kind.RENTAL)
    )


def test_rental_is_billed_for_the_month_after_the_usage_period(partner, customer, profile, agent):
    recurring_charge_create(
        customer=customer,
        line=customer.lines.get(),
        description="Line rental",
        monthly_amount=Decimal("12.50"),
        start_date=datetime.date(2024, 1, 1),
        actor=agent,
    )

    bill_run, lines = _rental_lines(partner, customer, agent, month(2025, 1))

    assert bill_run.rental_period == (datetime.date(2025, 2, 1), datetime.date(2025, 2, 28))
    assert lines == [("Line rental (in advance 1 Feb to 28 Feb 2025)", Decimal("28"), Decimal("12.50"))]


@pytest.mark.parametrize("ended_by", ["line", "charge", "contract"])
def test_rental_ending_on_the_10th_of_a_31_day_month_bills_10_days(partner, profile, agent, ended_by):
    customer = full_customer(partner, lines=0)
    line = LineFactory(customer=customer)
    end = datetime.date(2025, 1, 10)
    if ended_by == "line":
        line.end_date = end
        line.save()
    elif ended_by == "contract":
        accounts_services.customer_update(customer=customer, actor=agent, contract_end=end)
    recurring_charge_create(
        customer=customer,
        line=line,
        description="Line rental",
        monthly_amount=Decimal("31.00"),
        start_date=datetime.date(2024, 1, 1),
        end_date=end if ended_by == "charge" else None,
        actor=agent,
    )

    _run, lines = _rental_lines(partner, customer, agent, month(2024, 12))

    assert lines == [("Line rental (in advance 1 Jan to 10 Jan 2025)", Decimal("10"), Decimal("10.00"))]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Usage January 2024; rentals in advance for February 2024, 29 days.
        pytest.param(
            datetime.date(2024, 1, 1),
            None,
            [("Rental (in advance 1 Feb to 29 Feb 2024)", Decimal("29"), Decimal("29.00"))],
            id="whole-leap-february",
        ),
        pytest.param(
            datetime.date(2024, 2, 20),
            None,
            [("Rental (in advance 20 Feb to 29 Feb 2024)", Decimal("10"), Decimal("10.00"))],
            id="starts-20-feb",
        ),
        pytest.param(
            datetime.date(2024, 1, 1),
            datetime.date(2024, 2, 28),
            [("Rental (in advance 1 Feb to 28 Feb 2024)", Decimal("28"), Decimal("28.00"))],
            id="ends-28-feb",
        ),
        pytest.param(
            datetime.date(2024, 1, 1),
            datetime.date(2024, 2, 29),
            [("Rental (in advance 1 Feb to 29 Feb 2024)", Decimal("29"), Decimal("29.00"))],
            id="ends-29-feb",
        ),
        # Started inside the usage period: in arrears for 22-31 January (10 of 31 days) as well.
        pytest.param(
            datetime.date(2024, 1, 22),
            None,
            [
                ("Rental (in advance 1 Feb to 29 Feb 2024)", Decimal("29"), Decimal("29.00")),
                ("Rental (in arrears 22 Jan to 31 Jan 2024)", Decimal("10"), Decimal("9.35")),
            ],
            id="starts-in-usage-period",
        ),
        pytest.param(
            datetime.date(2024, 1, 22),
            datetime.date(2024, 1, 31),
            [("Rental (in arrears 22 Jan to 31 Jan 2024)", Decimal("10"), Decimal("9.35"))],
            id="starts-and-ends-in-usage-period",
        ),
        pytest.param(datetime.date(2024, 3, 1), None, [], id="starts-after-rental-period"),
    ],
)
def test_rentals_are_prorated_by_day_in_a_leap_february(partner, profile, agent, start, end, expected):
    customer = full_customer(partner, lines=0)
    recurring_charge_create(
        customer=customer,
        description="Rental",
        monthly_amount=Decimal("29.00"),
        start_date=start,
        end_date=end,
        actor=agent,
    )

    _run, lines = _rental_lines(partner, customer, agent, month(2024, 1))

    # 29.00 x 10 / 31 = 9.354... -> 9.35
    assert lines == expected


def test_a_rental_on_a_line_starts_no_earlier_than_the_line(partner, profile, agent):
    customer = full_customer(partner, lines=0)
    line = LineFactory(customer=customer, start_date=datetime.date(2025, 1, 22))
    recurring_charge_create(
        customer=customer,
        line=line,
        description="Line rental",
        monthly_amount=Decimal("31.00"),
        start_date=datetime.date(2025, 1, 1),
        actor=agent,
    )

    bill_run, lines = _rental_lines(partner, customer, agent, month(2025, 1))

    assert bill_run.status == BillRun.Status.CALCULATED
    assert lines == [
        ("Line rental (in advance 1 Feb to 28 Feb 2025)", Decimal("28"), Decimal("31.00")),
        ("Line rental (in arrears 22 Jan to 31 Jan 2025)", Decimal("10"), Decimal("10.00")),
    ]
