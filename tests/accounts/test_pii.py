"""The PII gate: personal data is masked unless a cleared user reveals it with a reason, every clear read
by staff is logged, and payment details need their own permission.

Cleared means a signed confidentiality agreement and GDPR training within the last year.
"""

import datetime
import html

import pytest
from django.utils import timezone

from accounts import services
from accounts.forms import RevealForm
from accounts.models import AccessLog, Role
from tests.factories import ContactFactory, CustomerFactory, LineFactory, PaymentDetailsFactory, SiteFactory

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

STAFF_ROLES = [role for role in Role if role != Role.CUSTOMER]

# What the customer below shows in clear, and masked, on the Site Details page.
PERSONAL_CLEAR = {
    "contact name": "Jane Smith",
    "contact email": "jane.smith@example.com",
    "contact phone": "07700100123",
    "address line 1": "14 Wellington Street",
    "address line 2": "Unit 3",
    "town": "Leeds",
    "postcode": "LS1 4AP",
    "line": "01134960001",
}
PERSONAL_MASKED = {
    "contact name": "J***",
    "contact email": "j***@e***.com",
    "contact phone": "07*** ***123",
    "address line 1": "1***",
    "address line 2": "U***",
    "town": "L***",
    "postcode": "LS1 ***",
    "line": "01*** ***001",
}
PAYMENT_CLEAR = {
    "account holder": "Harold Holder",
    "sort code": "12-34-56",
    "account number": "87654321",
    "mandate reference": "DDMANDATE0001",
}
PAYMENT_MASKED = {
    "account holder": "H***",
    "sort code": "**-**-56",
    "account number": "****4321",
    "mandate reference": "***0001",
}
# Other spellings of the same values that must not appear either.
OTHER_CLEAR_SPELLINGS = ["+447700100123", "07700 100123", "+441134960001", "123456"]

PERSONAL_FIELDS = [
    "contact.email",
    "contact.name",
    "contact.phone",
    "line.cli",
    "site.address_line1",
    "site.address_line2",
    "site.postcode",
    "site.town",
]
PAYMENT_FIELDS = [
    "payment.account_holder",
    "payment.account_number",
    "payment.mandate_reference",
    "payment.sort_code",
]


@pytest.fixture
def customer(partner):
    """A customer of ``partner`` with the personal and payment values above."""
    customer = CustomerFactory(partner=partner, name="Harbour Lights Trading Ltd")
    site = SiteFactory(
        customer=customer,
        address_line1=PERSONAL_CLEAR["address line 1"],
        address_line2=PERSONAL_CLEAR["address line 2"],
        town=PERSONAL_CLEAR["town"],
        postcode=PERSONAL_CLEAR["postcode"],
    )
    ContactFactory(
        customer=customer,
        name=PERSONAL_CLEAR["contact name"],
        email=PERSONAL_CLEAR["contact email"],
        phone="07700 100123",
    )
    LineFactory(customer=customer, site=site, cli="0113 496 0001")
    PaymentDetailsFactory(
        customer=customer,
        account_holder=PAYMENT_CLEAR["account holder"],
        sort_code=PAYMENT_CLEAR["sort code"],
        account_number=PAYMENT_CLEAR["account number"],
        mandate_reference=PAYMENT_CLEAR["mandate reference"],
    )
    return customer


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def assert_shows(text: str, values: dict[str, str]) -> None:
    missing = [name for name, value in values.items() if value not in text]
    assert not missing, f"not shown: {missing}"


def assert_hides(text: str, values: list[str] | dict[str, str]) -> None:
    shown = [value for value in (values.values() if isinstance(values, dict) else values) if value in text]
    assert not shown, f"shown in clear: {shown}"


def assert_all_masked(text: str) -> None:
    assert_shows(text, {**PERSONAL_MASKED, **PAYMENT_MASKED})
    assert_hides(text, {**PERSONAL_CLEAR, **PAYMENT_CLEAR})
    assert_hides(text, OTHER_CLEAR_SPELLINGS)


def reveal_form_in(text: str, customer) -> bool:
    return f'action="/customers/{customer.reference}/reveal/"' in text


def days_ago(days: int) -> datetime.datetime:
    return timezone.now() - datetime.timedelta(days=days)


# Site Details page


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_untrained_staff_see_only_masked_values(client, make_user, customer, role):
    client.force_login(make_user(role, cleared=False))

    response = client.get(f"/customers/{customer.reference}/")

    assert response.status_code == 200
    text = text_of(response)
    assert_all_masked(text)
    assert not reveal_form_in(text, customer)
    assert "/edit/" not in text  # no links to correction forms either
    assert "revealing it needs a signed confidentiality agreement" in text


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_untrained_staff_cannot_reveal(client, make_user, customer, role):
    client.force_login(make_user(role, cleared=False))

    response = client.post(
        f"/customers/{customer.reference}/reveal/",
        {"reason": "Customer on the phone", "include_payment": "on"},
    )

    assert response.status_code == 403
    assert_hides(text_of(response), {**PERSONAL_CLEAR, **PAYMENT_CLEAR})
    assert not AccessLog.objects.exists()


# Made when the test runs, under its frozen clock: a date computed at import would be the real today.
CLEARANCE_CASES = {
    "training 364 days ago": (lambda: {"gdpr_training_completed_at": days_ago(364)}, True),
    "training 366 days ago": (lambda: {"gdpr_training_completed_at": days_ago(366)}, False),
    "no training": (lambda: {"gdpr_training_completed_at": None}, False),
    "agreement not signed": (lambda: {"confidentiality_signed_at": None}, False),
}


@pytest.mark.parametrize("case", list(CLEARANCE_CASES))
def test_clearance_needs_current_training_and_a_signed_agreement(client, make_user, customer, case):
    make_fields, cleared = CLEARANCE_CASES[case]
    fields = make_fields()
    client.force_login(make_user(Role.SUPPORT_AGENT, **fields))

    page = client.get(f"/customers/{customer.reference}/")
    revealed = client.post(f"/customers/{customer.reference}/reveal/", {"reason": "Customer on the phone"})

    assert_all_masked(text_of(page))
    assert reveal_form_in(text_of(page), customer) == cleared
    if cleared:
        assert revealed.status_code == 200
        assert_shows(text_of(revealed), PERSONAL_CLEAR)
        assert AccessLog.objects.filter(action=AccessLog.Action.REVEAL).count() == 1
    else:
        assert revealed.status_code == 403
        assert_hides(text_of(revealed), PERSONAL_CLEAR)
        assert not AccessLog.objects.exists()


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_cleared_staff_see_masked_values_until_they_reveal_with_a_reason(client, make_user, customer, role):
    user = make_user(role)
    client.force_login(user)

    page = client.get(f"/customers/{customer.reference}/")
    assert_all_masked(text_of(page))
    assert reveal_form_in(text_of(page), customer)
    assert not AccessLog.objects.filter(action=AccessLog.Action.REVEAL).exists()

    revealed = client.post(f"/customers/{customer.reference}/reveal/", {"reason": "  Customer on the phone "})

    assert revealed.status_code == 200
    text = text_of(revealed)
    assert_shows(text, PERSONAL_CLEAR)
    assert_hides(text, PERSONAL_MASKED)
    assert_shows(text, PAYMENT_MASKED)  # payment details were not asked for
    assert_hides(text, PAYMENT_CLEAR)
    log = AccessLog.objects.get(action=AccessLog.Action.REVEAL)
    assert (log.user, log.customer, log.customer_reference) == (user, customer, customer.reference)
    assert log.fields == PERSONAL_FIELDS
    assert log.reason == "Customer on the phone"


@pytest.mark.parametrize("reason", ["", "   "])
def test_reveal_without_a_reason_shows_nothing_and_logs_nothing(client, make_user, customer, reason):
    client.force_login(make_user(Role.SUPPORT_AGENT))

    response = client.post(f"/customers/{customer.reference}/reveal/", {"reason": reason})

    assert response.status_code == 200
    assert response.context["reveal_form"].errors["reason"]
    assert_all_masked(text_of(response))
    assert not AccessLog.objects.exists()


@pytest.mark.parametrize(
    ("role", "may_see_payment"),
    [
        (Role.SUPPORT_AGENT, False),
        (Role.DATA_PROTECTION_OFFICER, False),
        (Role.FINANCE_MANAGER, True),
        (Role.BILLING_AGENT, True),
        (Role.ADMINISTRATOR, True),
    ],
)
def test_payment_details_are_revealed_only_with_the_payment_permission(
    client, make_user, customer, role, may_see_payment
):
    client.force_login(make_user(role))

    page = client.get(f"/customers/{customer.reference}/")
    response = client.post(
        f"/customers/{customer.reference}/reveal/", {"reason": "Direct Debit query", "include_payment": "on"}
    )

    assert ('name="include_payment"' in text_of(page)) == may_see_payment
    assert response.status_code == 200
    text = text_of(response)
    assert_shows(text, PERSONAL_CLEAR)
    log = AccessLog.objects.get(action=AccessLog.Action.REVEAL)
    if may_see_payment:
        assert_shows(text, PAYMENT_CLEAR)
        assert log.fields == sorted(PERSONAL_FIELDS + PAYMENT_FIELDS)
    else:
        assert_shows(text, PAYMENT_MASKED)
        assert_hides(text, PAYMENT_CLEAR)
        assert log.fields == PERSONAL_FIELDS


def test_portal_user_sees_its_own_details_in_clear_but_payment_details_masked(client, make_user, customer):
    client.force_login(make_user(Role.CUSTOMER, customer=customer))

    response = client.get(f"/customers/{customer.reference}/")
    reveal = client.post(
        f"/customers/{customer.reference}/reveal/", {"reason": "Let me see", "include_payment": "on"}
    )

    assert response.status_code == 200
    text = text_of(response)
    assert_shows(text, PERSONAL_CLEAR)
    assert_shows(text, PAYMENT_MASKED)
    assert_hides(text, PAYMENT_CLEAR)
    assert not reveal_form_in(text, customer)
    assert reveal.status_code == 403
    assert not AccessLog.objects.exists()


# Correction forms


CORRECTION_FORMS = {
    "contact": (
        "/customers/{ref}/contacts/{contact}/edit/",
        ["contact.email", "contact.name", "contact.phone"],
    ),
    "site": (
        "/customers/{ref}/sites/{site}/edit/",
        ["site.address_line1", "site.address_line2", "site.postcode", "site.town"],
    ),
}


@pytest.mark.parametrize("what", list(CORRECTION_FORMS))
@pytest.mark.parametrize("cleared", [True, False], ids=["cleared", "untrained"])
def test_opening_a_correction_form_is_logged_and_needs_clearance(client, make_user, customer, what, cleared):
    user = make_user(Role.SUPPORT_AGENT, cleared=cleared)
    client.force_login(user)
    path, fields = CORRECTION_FORMS[what]
    url = path.format(
        ref=customer.reference, contact=customer.contacts.get().pk, site=customer.sites.get().pk
    )

    response = client.get(url)

    if cleared:
        assert response.status_code == 200
        log = AccessLog.objects.get()
        assert (log.user, log.customer, log.action) == (user, customer, AccessLog.Action.EDIT_FORM)
        assert log.fields == fields
    else:
        assert response.status_code == 403
        assert_hides(text_of(response), PERSONAL_CLEAR)
        assert not AccessLog.objects.exists()


def test_untrained_staff_cannot_post_a_correction(client, make_user, customer):
    client.force_login(make_user(Role.SUPPORT_AGENT, cleared=False))
    contact = customer.contacts.get()

    response = client.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/",
        {"name": "Janet Smythe", "email": contact.email, "phone": "07700 100999", "role": "primary"},
    )

    assert response.status_code == 403
    contact.refresh_from_db()
    assert (contact.name, contact.phone) == ("Jane Smith", "+447700100123")


def test_portal_user_opens_its_own_correction_form_without_a_log_entry(client, make_user, customer):
    client.force_login(make_user(Role.CUSTOMER, customer=customer))

    response = client.get(f"/customers/{customer.reference}/contacts/{customer.contacts.get().pk}/edit/")

    assert response.status_code == 200
    assert "Jane Smith" in text_of(response)
    assert not AccessLog.objects.exists()


# The admin

# Per admin page: the record, its masked values, its values in clear (as the admin form holds them) and
# the fields named in the access log.
ADMIN_RECORDS = {
    "contact": (
        lambda c: c.contacts.get(),
        ["J***", "j***@e***.com", "07*** ***123"],
        ["Jane Smith", "jane.smith@example.com", "+447700100123"],
        ["contact.email", "contact.name", "contact.phone"],
    ),
    "site": (
        lambda c: c.sites.get(),
        ["1***", "U***", "L***", "LS1 ***"],
        ["14 Wellington Street", "Unit 3", "Leeds", "LS1 4AP"],
        ["site.address_line1", "site.address_line2", "site.postcode", "site.town"],
    ),
    "line": (lambda c: c.lines.get(), ["01*** ***001"], ["+441134960001"], ["line.cli"]),
    "paymentdetails": (
        lambda c: c.payment_details,
        list(PAYMENT_MASKED.values()),
        ["Harold Holder", "123456", "87654321", "DDMANDATE0001"],
        [
            "paymentdetails.account_holder",
            "paymentdetails.account_number",
            "paymentdetails.mandate_reference",
            "paymentdetails.sort_code",
        ],
    ),
}
# Roles that may open each admin page: support agents do not see payment details at all.
ADMIN_VIEWER = {
    "contact": Role.SUPPORT_AGENT,
    "site": Role.SUPPORT_AGENT,
    "line": Role.SUPPORT_AGENT,
    "paymentdetails": Role.FINANCE_MANAGER,
}


@pytest.mark.parametrize("model", list(ADMIN_RECORDS))
def test_admin_change_page_masks_personal_data_for_untrained_staff(client, make_user, customer, model):
    client.force_login(make_user(ADMIN_VIEWER[model], cleared=False))
    record, masked, clear, _fields = ADMIN_RECORDS[model]

    response = client.get(f"/admin/accounts/{model}/{record(customer).pk}/change/")

    assert response.status_code == 200
    text = text_of(response)
    assert_shows(text, dict(enumerate(masked)))
    assert_hides(text, clear)
    assert not AccessLog.objects.exists()


@pytest.mark.parametrize("model", list(ADMIN_RECORDS))
def test_admin_change_page_shows_cleared_staff_plaintext_and_logs_it(client, make_user, customer, model):
    user = make_user(ADMIN_VIEWER[model])
    client.force_login(user)
    record, _masked, clear, fields = ADMIN_RECORDS[model]

    response = client.get(f"/admin/accounts/{model}/{record(customer).pk}/change/")

    assert response.status_code == 200
    assert_shows(text_of(response), dict(enumerate(clear)))
    log = AccessLog.objects.get()
    assert (log.user, log.customer, log.action) == (user, customer, AccessLog.Action.ADMIN_VIEW)
    assert log.fields == fields


def test_admin_payment_details_stay_masked_for_cleared_staff_without_the_payment_permission(
    client, make_user, customer
):
    client.force_login(make_user(Role.DATA_PROTECTION_OFFICER))
    record, masked, clear, _fields = ADMIN_RECORDS["paymentdetails"]

    response = client.get(f"/admin/accounts/paymentdetails/{record(customer).pk}/change/")

    assert response.status_code == 200
    text = text_of(response)
    assert_shows(text, dict(enumerate(masked)))
    assert_hides(text, clear)
    assert not AccessLog.objects.exists()


@pytest.fixture
def corrected_contact(make_user, customer):
    """The contact after a staff correction, so its history holds old and new values."""
    contact = customer.contacts.get()
    editor = make_user(Role.SUPPORT_AGENT, full_name="Edith Editor")
    return services.contact_update(
        contact=contact,
        actor=editor,
        reason="Customer rang",
        name="Janet Smythe",
        email="janet.smythe@example.com",
        phone="07700 100999",
    )


HISTORY_VALUES = [
    "Jane Smith",
    "jane.smith@example.com",
    "+447700100123",
    "Janet Smythe",
    "janet.smythe@example.com",
    "+447700100999",
]


@pytest.mark.parametrize("cleared", [False, True], ids=["untrained", "cleared"])
def test_admin_history_shows_personal_data_only_to_cleared_staff(
    client, make_user, corrected_contact, cleared
):
    client.force_login(make_user(Role.SUPPORT_AGENT, cleared=cleared))
    versions = corrected_contact.history.order_by("history_id")

    history = client.get(f"/admin/accounts/contact/{corrected_contact.pk}/history/")
    past_version = client.get(
        f"/admin/accounts/contact/{corrected_contact.pk}/history/{versions.first().history_id}/"
    )

    assert history.status_code == 200
    assert len(history.context["page_obj"].object_list) == 2
    assert "Customer rang" in text_of(history)
    if cleared:
        assert_shows(text_of(history), dict(enumerate(HISTORY_VALUES)))
        assert past_version.status_code == 200
        assert "Jane Smith" in text_of(past_version)
    else:
        assert_hides(text_of(history), HISTORY_VALUES)
        assert past_version.status_code == 404
        assert_hides(text_of(past_version), HISTORY_VALUES)
        assert not AccessLog.objects.exists()


@pytest.mark.parametrize("page", ["history", "past version"])
def test_admin_history_read_in_clear_is_logged(client, make_user, customer, corrected_contact, page):
    """History shows old and new values in clear to cleared staff: a read like the change page's."""
    user = make_user(Role.SUPPORT_AGENT)
    client.force_login(user)
    first_version = corrected_contact.history.order_by("history_id").first()
    url = f"/admin/accounts/contact/{corrected_contact.pk}/history/"
    if page == "past version":
        url += f"{first_version.history_id}/"

    response = client.get(url)

    assert response.status_code == 200
    assert "Jane Smith" in text_of(response)
    log = AccessLog.objects.get(user=user)
    assert (log.customer, log.action) == (customer, AccessLog.Action.ADMIN_VIEW)


@pytest.mark.parametrize("page", ["site details timeline", "admin contact history"])
def test_portal_users_identity_is_not_shown_in_clear_to_untrained_staff(client, make_user, customer, page):
    """A portal user is the customer's own person: history names it as the customer, not by name or email."""
    contact = customer.contacts.get()
    portal = make_user(Role.CUSTOMER, customer=customer, full_name="Jane Smith", email=contact.email)
    client.force_login(portal)
    corrected = client.post(
        f"/customers/{customer.reference}/contacts/{contact.pk}/edit/",
        {"name": "Jane Smith", "email": contact.email, "phone": "07700 100999", "role": "primary"},
    )
    assert corrected.status_code == 302
    client.force_login(make_user(Role.SUPPORT_AGENT, cleared=False))
    url = {
        "site details timeline": f"/customers/{customer.reference}/",
        "admin contact history": f"/admin/accounts/contact/{contact.pk}/history/",
    }[page]

    response = client.get(url)

    assert response.status_code == 200
    assert_hides(text_of(response), ["Jane Smith", contact.email])


def test_the_reveal_form_is_djangos_own_rendering_blank_and_given_back(client, make_user, customer):
    """The blank form's fields are rendered once per process; the page shows exactly what Django renders
    for a blank form, and a refused reveal gives back its own values and errors."""
    client.force_login(make_user(Role.FINANCE_MANAGER))  # may reveal personal and payment details
    blank = RevealForm()

    page = client.get(f"/customers/{customer.reference}/").content.decode()
    refused = client.post(
        f"/customers/{customer.reference}/reveal/", {"reason": " ", "include_payment": "on"}
    )

    assert str(blank["reason"]) in page and str(blank["include_payment"]) in page
    given_back = RevealForm({"reason": " ", "include_payment": "on"})
    assert not given_back.is_valid()
    body = refused.content.decode()
    assert str(given_back["reason"].errors) in body and given_back["reason"].errors
    assert str(given_back["include_payment"]) in body and "checked" in str(given_back["include_payment"])
    assert str(blank["include_payment"]) not in body
