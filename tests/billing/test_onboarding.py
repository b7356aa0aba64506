"""Taking on a customer through the pages: the form, the summary, the save in one transaction with
history and an audit event; field errors named; partners kept apart; roles that may not onboard refused;
and the bill run charging the new lines' rental from their product."""

import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent, Contact, Customer, Line, PaymentDetails, Role, Site
from billing.models import CustomerTariff, InvoiceLine, LineProduct
from billing.onboarding_views import DRAFT_KEY
from billing.services.catalogue import product_create, product_price_add
from billing.services.onboarding import NewContact, NewLine, NewSite, customer_onboard
from tests.billing.factories import calculated_run, month

NEW = "/billing/customers/new/"
CONFIRM = "/billing/customers/new/confirm/"


@pytest.fixture
def product(partner, profile, agent):
    return product_create(
        partner=partner,
        name="Analogue line",
        monthly_price=Decimal("15.00"),
        valid_from=datetime.date(2026, 1, 1),
        actor=agent,
    )


@pytest.fixture
def other_product(other_partner):
    return product_create(
        partner=other_partner,
        name="Their line",
        monthly_price=Decimal("9.00"),
        valid_from=datetime.date(2026, 1, 1),
        actor=None,
    )


def form_data(product, profile, **changes: str) -> dict[str, str]:
    data = {
        "customer-name": "Harbour Bakery Ltd",
        "customer-contract_start": "2026-11-10",
        "customer-tariff": str(profile.default_tariff_id),
        "site-label": "Head office",
        "site-address_line1": "1 Quay Street",
        "site-address_line2": "",
        "site-town": "Whitby",
        "site-postcode": "yo21 1aa",
        "contact-name": "Ann Baker",
        "contact-email": "Ann@Harbour.example",
        "contact-phone": "07700 100456",
        "contact-role": "primary",
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "10",
        "lines-0-cli": "01947 600100",
        "lines-0-line_type": "wlr_analogue",
        "lines-0-product": str(product.pk),
        "lines-1-cli": "01947 600101",
        "lines-1-line_type": "wlr_analogue",
        "lines-1-product": str(product.pk),
        "lines-2-cli": "",
        "lines-2-line_type": "wlr_analogue",
        "lines-2-product": "",
        "bank-account_holder": "Harbour Bakery",
        "bank-sort_code": "08-99-99",
        "bank-account_number": "66374958",
    }
    data.update(changes)
    return data


def onboard(client, data) -> Customer:
    reviewed = client.post(NEW, data)
    assert reviewed.status_code == 302, reviewed.content.decode()[:3000]
    assert reviewed.url == CONFIRM
    saved = client.post(CONFIRM)
    assert saved.status_code == 302
    return Customer.objects.get(pk=Customer.pk_from_reference(saved.url.strip("/").split("/")[-1]) or 0)


def test_the_agent_sees_the_link_and_onboards_a_customer_with_everything_in_one_go(
    client, agent, product, profile, partner
):
    client.force_login(agent)
    assert 'href="/billing/customers/new/"' in client.get("/").content.decode()
    before = AuditEvent.objects.count()

    reviewed = client.post(NEW, form_data(product, profile))
    assert reviewed.status_code == 302, reviewed.content.decode()
    # Between the steps the draft is encrypted in the session: no bank detail (nor any value) in clear.
    stored = client.session[DRAFT_KEY]
    assert "66374958" not in stored and "Harbour" not in stored
    summary = client.get(CONFIRM).content.decode()
    assert "Harbour Bakery Ltd" in summary and "01947600100" in summary
    assert "****4958" in summary and "66374958" not in summary
    assert "£15.00" in summary
    assert not Customer.objects.exists()  # nothing saved before the confirmation

    saved = client.post(CONFIRM)
    customer = Customer.objects.get(partner=partner)
    assert saved.url == f"/customers/{customer.reference}/"
    assert DRAFT_KEY not in client.session
    assert customer.name == "Harbour Bakery Ltd" and customer.contract_start == datetime.date(2026, 11, 10)
    site = Site.objects.get(customer=customer)
    assert (site.label, site.postcode) == ("Head office", "YO21 1AA")
    contact = Contact.objects.get(customer=customer)
    assert (contact.email, contact.phone) == ("ann@harbour.example", "+447700100456")
    lines = list(Line.objects.filter(customer=customer).order_by("pk"))
    assert [line.cli for line in lines] == ["+441947600100", "+441947600101"]
    assert all(line.site_id == site.pk and line.start_date == customer.contract_start for line in lines)
    assert set(LineProduct.objects.filter(line__in=lines).values_list("product_id", flat=True)) == {
        product.pk
    }
    mandate = PaymentDetails.objects.get(customer=customer)
    assert (mandate.sort_code, mandate.account_number) == ("089999", "66374958")
    assert mandate.mandate_reference == f"DD{customer.pk:08d}"
    assert mandate.status == PaymentDetails.Status.NEW
    assert CustomerTariff.objects.get(customer=customer).tariff_id == profile.default_tariff_id
    # Every row's history names the agent; one audit event says what was taken on.
    for row in [customer, site, contact, *lines, mandate, CustomerTariff.objects.get(customer=customer)]:
        assert row.history.get().history_user == agent, row
    for rental in LineProduct.objects.filter(line__in=lines):
        assert rental.history.get().history_user == agent
    event = AuditEvent.objects.get(action="customer.onboarded")
    assert event.actor_id == agent.pk and event.target_id == str(customer.pk)
    assert event.detail["lines"] == [line.pk for line in lines]
    assert AuditEvent.objects.count() > before
    # The agent's partner sees the new customer (object permission granted to its group).
    assert client.get(saved.url).status_code == 200


def test_a_field_error_names_the_field_and_stores_nothing(client, agent, product, profile):
    client.force_login(agent)
    data = form_data(
        product,
        profile,
        **{"site-postcode": "LS1 4A", "bank-account_number": "66374959", "lines-1-cli": "12"},
    )
    response = client.post(NEW, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "First site postcode: Enter a valid UK postcode." in page
    assert "Direct Debit account number: This account number is not valid for sort code 08-99-99" in page
    assert "Line 2 number: Enter a valid phone number." in page
    assert DRAFT_KEY not in client.session
    assert client.get(CONFIRM).status_code == 302  # nothing to confirm
    assert not Customer.objects.exists() and not Line.objects.exists()


def test_a_partial_direct_debit_and_a_number_given_twice_are_named(client, agent, product, profile):
    client.force_login(agent)
    data = form_data(product, profile, **{"bank-sort_code": "", "lines-1-cli": "01947 600100"})
    page = client.post(NEW, data).content.decode()
    assert "Direct Debit sort code: Give every Direct Debit detail, or none." in page
    assert "Line 2 number: Line 1 has this number already." in page
    assert not Customer.objects.exists()


def test_without_bank_details_no_mandate_is_made(client, agent, product, profile):
    client.force_login(agent)
    customer = onboard(
        client,
        form_data(
            product, profile, **{"bank-account_holder": "", "bank-sort_code": "", "bank-account_number": ""}
        ),
    )
    assert not PaymentDetails.objects.filter(customer=customer).exists()


def test_a_refusal_while_saving_leaves_nothing_behind(agent, product, profile, partner):
    """The service saves in one transaction: the second line's number clashing with the first undoes the
    customer, its site, contact and first line."""
    with pytest.raises(ValidationError) as raised:
        customer_onboard(
            partner=partner,
            actor=agent,
            name="Half Made Ltd",
            contract_start=datetime.date(2026, 11, 10),
            site=NewSite(label="Head office", address_line1="1 Road", town="Leeds", postcode="LS1 4AP"),
            contact=NewContact(name="A Person", email="a@example.com", phone="07700100001", role="primary"),
            lines=[NewLine("01947 600200", "wlr_analogue", product), NewLine("01947600200", "isdn", product)],
            tariff=profile.default_tariff,
            bank_details=None,
        )
    assert "lines.2.cli" in raised.value.message_dict
    assert not Customer.objects.exists() and not Site.objects.exists() and not Line.objects.exists()
    assert not AuditEvent.objects.filter(action="customer.onboarded").exists()


def test_another_partners_staff_cannot_onboard_into_it_nor_use_its_products(
    client, agent, product, other_product, other_partner, profile
):
    client.force_login(agent)
    assert client.get(f"{NEW}?partner={other_partner.pk}").status_code == 404
    assert client.post(f"{NEW}?partner={other_partner.pk}", form_data(product, profile)).status_code == 404
    # Another partner's product is not offered, and posting its id is a field error.
    page = client.get(NEW).content.decode()
    assert "Their line" not in page
    response = client.post(NEW, form_data(product, profile, **{"lines-0-product": str(other_product.pk)}))
    assert "Line 1 rental product: Select a valid choice." in response.content.decode()
    assert client.get(f"/billing/products/{other_product.pk}/").status_code == 404
    assert "Their line" not in client.get("/billing/products/").content.decode()
    assert not Customer.objects.filter(partner=other_partner).exists()


@pytest.mark.parametrize("role", [Role.SUPPORT_AGENT, Role.FINANCE_MANAGER, Role.DATA_PROTECTION_OFFICER])
def test_roles_that_may_not_create_customers_are_refused_and_see_no_link(
    client, make_user, role, product, profile
):
    client.force_login(make_user(role))
    assert 'href="/billing/customers/new/"' not in client.get("/").content.decode()
    assert client.get(NEW).status_code == 403
    assert client.post(NEW, form_data(product, profile)).status_code == 403
    assert client.post(CONFIRM).status_code == 403
    assert not Customer.objects.exists()


def test_an_administrator_chooses_the_partner_first(client, make_user, product, profile, partner):
    client.force_login(make_user(Role.ADMINISTRATOR))
    assert 'name="partner"' in client.get(NEW).content.decode()
    reviewed = client.post(f"{NEW}?partner={partner.pk}", form_data(product, profile))
    assert reviewed.status_code == 302
    client.post(reviewed.url)
    assert Customer.objects.get().partner == partner


@pytest.mark.frozen_at("2026-11-30T12:00:00+00:00")
def test_the_bill_run_after_onboarding_charges_the_rental_from_the_product(
    client, clock, agent, product, profile, partner
):
    """Started 10 November: November's 21 days in arrears at £15.00, December in advance at £15.00 until the
    new price of £18.00 takes effect on 15 December."""
    product_price_add(
        product=product, valid_from=datetime.date(2026, 12, 15), monthly_price=Decimal("18.00"), actor=agent
    )
    client.force_login(agent)
    customer = onboard(client, form_data(product, profile, **{"lines-1-cli": "", "lines-1-product": ""}))

    clock.move_to(datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.UTC))
    run = calculated_run(partner, month(2026, 11), actor=agent)

    lines = InvoiceLine.objects.filter(
        invoice__bill_run=run, invoice__customer=customer, kind=InvoiceLine.Kind.RENTAL
    )
    got = sorted((line.description, line.quantity, line.amount, line.unit_price) for line in lines)
    assert got == sorted(
        [
            (
                "Analogue line rental (in arrears 10 Nov to 30 Nov 2026)",
                21,
                Decimal("10.50"),
                Decimal("15.00"),
            ),
            ("Analogue line rental (in advance 1 Dec to 14 Dec 2026)", 14, Decimal("6.77"), Decimal("15.00")),
            (
                "Analogue line rental (in advance 15 Dec to 31 Dec 2026)",
                17,
                Decimal("9.87"),
                Decimal("18.00"),
            ),
        ]
    )
