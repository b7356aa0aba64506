"""No plaintext personal value reaches the logs, whichever flow runs and whichever handler listens."""

import logging

import pytest
from django.conf import settings as django_settings
from django.test import Client

from accounts.models import Role
from fusion_site.log_redaction import redact
from tests.billing.factories import Call, billing_profile, cli_of, import_calls


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("mail jane.smith@example.com now", "mail [email] now"),
        ("call 07700 900123", "call [phone]"),
        ("call +447700900123", "call [phone]"),
        ("call 0113 496 0000", "call [phone]"),
        ("at SW1A 1AA today", "at [postcode] today"),
        ("at ls14ap", "at [postcode]"),
        ("sort 12-34-56", "sort [sort code]"),
        ("account 12345678", "account [number]"),
        ("bill run 42 finished", "bill run 42 finished"),
    ],
)
def test_redact(text, redacted):
    assert redact(text) == redacted


def test_every_configured_handler_redacts():
    handlers = django_settings.LOGGING["handlers"]

    assert handlers
    assert all("redact_personal_data" in handler.get("filters", []) for handler in handlers.values())


def test_the_main_flows_log_no_personal_data(caplog, make_user, partner, customer):
    caplog.set_level(logging.DEBUG)
    contact = customer.contacts.first()
    site = customer.sites.first()
    details = customer.payment_details
    agent = make_user(Role.BILLING_AGENT)
    plaintext = [
        contact.name,
        contact.email,
        contact.phone,
        site.postcode,
        site.address_line1,
        details.sort_code,
        details.account_number,
        agent.email,
        "new.person@example.org",
        "+447700100999",
    ]
    # A login that fails, one that works, reveals, corrections, an import, pages that are refused.
    Client().post("/login/", {"username": agent.email, "password": "wrong"})
    client = Client()
    client.post("/login/", {"username": agent.email, "password": "correct-horse-battery-staple"})
    from tests.conftest import VerifiedClient

    staff = VerifiedClient()
    staff.force_login(agent)
    staff.post(f"/customers/{customer.reference}/reveal/", {"reason": "call", "include_payment": "on"})
    staff.get(f"/customers/{customer.reference}/contacts/{contact.pk}/edit/")
    staff.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/",
        {"name": contact.name, "email": "new.person@example.org", "phone": "07700 100999", "role": "primary"},
    )
    staff.post(
        f"/customers/{customer.reference}/sites/{site.pk}/edit/",
        {"label": "HQ", "address_line1": site.address_line1, "town": "Leeds", "postcode": "not a postcode"},
    )
    staff.get("/customers/C-999999/")
    billing_profile(partner)
    import_calls(partner, [Call(cli=cli_of(customer)), Call(cli="07700 100999")], actor=agent)
    # A careless log line in new code is redacted as well: this proves the check can fail.
    logging.getLogger("fusion.careless").warning("contact %s on %s", contact.email, contact.phone)

    assert len(caplog.records) > 5
    logged = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    leaked = [value for value in plaintext if value and value in logged]
    assert leaked == []
    assert "contact [email] on [phone]" in logged
