"""Admin writes go through the services, so their checks apply and their refusals are shown on the form;
past versions are reverted only by who may change the record; the deletions the README asks
administrators to make in the admin are in the audit trail."""

import datetime
from decimal import Decimal

import pytest
from axes.models import AccessAttempt
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.models import AuditEvent, Line, Partner, Role
from accounts.signals import username_digest
from billing.demo import uk_tariff
from billing.models import OneOffCharge
from billing.services.charges import one_off_charge_create, recurring_charge_create, recurring_charge_update
from tests.billing.factories import billing_profile, finalised_run, month
from tests.factories import CustomerFactory, LineFactory, SiteFactory, UserFactory


def test_admin_one_off_charge_is_made_by_the_service_with_its_actor(client, make_user, customer):
    agent = make_user(Role.BILLING_AGENT)
    client.force_login(agent)
    line = customer.lines.get()

    response = client.post(
        "/admin/billing/oneoffcharge/add/",
        {
            "customer": customer.pk,
            "line": line.pk,
            "description": "Router",
            "amount": "49.99",
            "charge_date": "2025-02-03",
        },
    )

    assert response.status_code == 302
    charge = OneOffCharge.objects.get(customer=customer, description="Router")
    assert (charge.line, charge.amount) == (line, Decimal("49.99"))
    assert charge.history.get().history_user == agent


def test_admin_charge_on_a_line_of_another_customer_is_refused_on_the_line_field(client, make_user, customer):
    """Both customers are the agent's partner's: the form offers both lines; the service refuses the mix."""
    sibling_line = LineFactory(customer=CustomerFactory(partner=customer.partner))
    client.force_login(make_user(Role.BILLING_AGENT))

    response = client.post(
        "/admin/billing/oneoffcharge/add/",
        {
            "customer": customer.pk,
            "line": sibling_line.pk,
            "description": "Router",
            "amount": "49.99",
            "charge_date": "2025-02-03",
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["line"] == ["The line belongs to another customer."]
    assert not OneOffCharge.objects.filter(description="Router").exists()


def test_admin_cannot_give_a_customer_another_partners_tariff(client, make_user, customer, other_partner):
    """An administrator sees every tariff, so the form offers it; the service's check refuses it."""
    foreign_tariff = uk_tariff(name="Their tariff", partner=other_partner)
    client.force_login(make_user(Role.ADMINISTRATOR))

    response = client.post(
        "/admin/billing/customertariff/add/", {"customer": customer.pk, "tariff": foreign_tariff.pk}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["tariff"] == ["That tariff belongs to another partner."]
    assert not hasattr(type(customer).objects.get(pk=customer.pk), "tariff_assignment")


def test_admin_cannot_make_another_partners_tariff_a_default(client, make_user, partner, other_partner):
    profile = billing_profile(partner)
    foreign_tariff = uk_tariff(name="Their tariff", partner=other_partner)
    client.force_login(make_user(Role.ADMINISTRATOR))
    url = f"/admin/billing/partnerbillingprofile/{profile.pk}/change/"
    data = {
        "partner": partner.pk,
        "legal_name": profile.legal_name,
        "address": profile.address,
        "vat_number": profile.vat_number,
        "invoice_prefix": profile.invoice_prefix,
        "default_tariff": foreign_tariff.pk,
    }

    response = client.post(url, data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["default_tariff"] == [
        "That tariff belongs to another partner."
    ]
    profile.refresh_from_db()
    assert profile.default_tariff is None


def test_admin_line_change_keeps_its_site_within_its_customer(client, make_user, customer):
    """The site of a sibling customer (same partner) is not offered by the line's form, which lists its own
    customer's sites only, so posting it is a field error; ``line_update`` refuses it too, for every
    other door."""
    sibling_site = SiteFactory(customer=CustomerFactory(partner=customer.partner))
    line = customer.lines.get()
    client.force_login(make_user(Role.BILLING_AGENT))

    response = client.post(
        f"/admin/accounts/line/{line.pk}/change/",
        {"site": sibling_site.pk, "cli": line.cli, "line_type": line.line_type, "start_date": "2024-01-01"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["site"] == [
        "Select a valid choice. That choice is not one of the available choices."
    ]
    line.refresh_from_db()
    assert line.site.customer_id == customer.pk
    with pytest.raises(ValidationError, match="The site belongs to another customer"):
        services.line_update(line=line, actor=make_user(Role.BILLING_AGENT), site=sibling_site)


def test_invoiced_charge_cannot_be_changed_in_the_admin(client, make_user, customer, profile):
    agent, finance = make_user(Role.BILLING_AGENT), make_user(Role.FINANCE_MANAGER)
    charge = one_off_charge_create(
        customer=customer,
        description="Router",
        amount=Decimal("10.00"),
        charge_date=datetime.date(2025, 1, 5),
        actor=agent,
    )
    finalised_run(customer.partner, month(2025, 1), agent=agent, finance=finance)
    charge.refresh_from_db()
    assert charge.invoice is not None
    client.force_login(agent)

    response = client.post(
        f"/admin/billing/oneoffcharge/{charge.pk}/change/",
        {"description": "Router", "amount": "12.00", "charge_date": "2025-01-05"},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.non_field_errors() == [
        "This charge is on an invoice already; credit the invoice instead."
    ]
    charge.refresh_from_db()
    assert charge.amount == Decimal("10.00")


def test_view_only_staff_cannot_revert_a_past_version(client, make_user, customer):
    """simple-history saves a posted past version for anyone who may view the history; a support agent
    views provisioning orders but may not change them."""
    agent = make_user(Role.BILLING_AGENT)
    order = services.provisioning_order_create(customer=customer, kind="modify", actor=agent, notes="First")
    services.provisioning_order_update_notes(order=order, actor=agent, notes="Second")
    first = order.history.order_by("history_id").first()
    client.force_login(make_user(Role.SUPPORT_AGENT))
    url = f"/admin/accounts/provisioningorder/{order.pk}/history/{first.history_id}/"

    assert client.get(url).status_code == 200
    response = client.post(url, {"notes": "First", "kind": "modify", "customer": customer.pk})

    assert response.status_code == 403
    order.refresh_from_db()
    assert order.notes == "Second"


def test_reverting_a_line_goes_through_the_service(client, make_user, customer):
    agent = make_user(Role.BILLING_AGENT)
    line = customer.lines.get()
    first = line.history.get()
    services.line_update(line=line, actor=agent, line_type=Line.LineType.SIP, reason="Upgraded")
    client.force_login(agent)
    url = f"/admin/accounts/line/{line.pk}/history/{first.history_id}/"
    data = {
        "site": first.site_id,
        "cli": first.cli,
        "line_type": first.line_type,
        "start_date": first.start_date.isoformat(),
    }

    response = client.post(url, data)

    assert response.status_code == 302
    line.refresh_from_db()
    assert line.line_type == Line.LineType.WLR_ANALOGUE
    assert line.history.latest().history_user == agent


def test_history_of_another_partners_object_is_404(client, make_user, other_customer):
    client.force_login(make_user(Role.BILLING_AGENT))
    line = other_customer.lines.get()
    version = line.history.get()

    assert client.get(f"/admin/accounts/line/{line.pk}/history/").status_code == 404
    assert client.get(f"/admin/accounts/line/{line.pk}/history/{version.history_id}/").status_code == 404


def test_removing_an_authenticator_in_the_admin_is_audited(client, make_user):
    administrator = make_user(Role.ADMINISTRATOR)
    owner = UserFactory(role=Role.SUPPORT_AGENT)
    device = TOTPDevice.objects.create(user=owner, name="lost phone", confirmed=True)
    client.force_login(administrator)

    response = client.post(f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
    event = AuditEvent.objects.get(action="auth.device_removed")
    assert (event.actor_id, event.target_type, event.target_id) == (
        administrator.pk,
        "accounts.user",
        str(owner.pk),
    )
    assert event.detail == {"device": device.persistent_id}


def test_unlocking_a_login_in_the_admin_is_audited(client, make_user):
    administrator = make_user(Role.ADMINISTRATOR)
    attempt = AccessAttempt.objects.create(
        username="locked@example.com",
        ip_address="203.0.113.9",
        user_agent="test",
        failures_since_start=5,
        attempt_time=timezone.now(),
        get_data="",
        post_data="",
        http_accept="",
        path_info="/login/",
    )
    client.force_login(administrator)

    response = client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(pk=attempt.pk).exists()
    event = AuditEvent.objects.get(action="auth.lockout_cleared")
    assert event.actor_id == administrator.pk
    assert event.detail == {"username_digest": username_digest("locked@example.com"), "ip": "203.0.113.9"}


def test_an_update_service_changes_only_the_fields_it_is_given_and_none_clears_one(make_user, customer):
    """A field left out keeps its value; ``None`` is a value: it takes the line off its site and the
    charge's end date off, which an omitted argument never does."""
    agent = make_user(Role.BILLING_AGENT)
    line = customer.lines.get()
    assert line.site is not None
    started = line.start_date

    services.line_update(line=line, actor=agent, site=None, reason="Moved off site")
    line.refresh_from_db()
    assert (line.site, line.start_date, line.line_type) == (None, started, Line.LineType.WLR_ANALOGUE)

    charge = recurring_charge_create(
        customer=customer,
        description="Rental",
        monthly_amount=Decimal("12.00"),
        start_date=datetime.date(2025, 1, 1),
        end_date=datetime.date(2025, 12, 31),
        actor=agent,
    )
    recurring_charge_update(charge=charge, actor=agent, end_date=None, reason="Rolling contract")
    charge.refresh_from_db()
    assert (charge.description, charge.monthly_amount, charge.end_date) == ("Rental", Decimal("12.00"), None)


def test_admin_partner_is_registered_and_renamed_by_the_services_with_its_actor(client, make_user):
    admin_user = make_user(Role.ADMINISTRATOR)
    client.force_login(admin_user)

    added = client.post("/admin/accounts/partner/add/", {"code": "ACME", "name": "Acme", "vat_number": ""})
    partner = Partner.objects.get(code="ACME")
    changed = client.post(
        f"/admin/accounts/partner/{partner.pk}/change/", {"name": "Acme Telecom", "vat_number": ""}
    )

    assert (added.status_code, changed.status_code) == (302, 302)
    partner.refresh_from_db()
    assert (partner.name, partner.staff_group.name) == ("Acme Telecom", "partner:ACME")
    assert [(h.history_type, h.history_user) for h in partner.history.order_by("history_id")] == [
        ("+", admin_user),
        ("~", admin_user),
    ]
