"""Bank details must pass Vocalink's modulus check wherever they are saved: the service, the admin form
people use, the demo data and the factories; a sort code the table does not cover is accepted, as the
spec says (2.2.1, step 1). The rules themselves are tested in test_modulus_rules.py."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from accounts import modulus, services, validation
from accounts.models import PaymentDetails, Role
from tests.factories import CustomerFactory, PaymentDetailsFactory

REFUSAL = "This account number is not valid for sort code 08-99-99: check both with the account holder."


def set_details(customer, **values):
    fields = {
        "account_holder": "Jane Smith",
        "sort_code": "08-99-99",
        "account_number": "66374958",
        "mandate_reference": "DD1",
        **values,
    }
    return services.payment_details_set(customer=customer, actor=None, **fields)


def test_the_service_refuses_an_account_number_failing_the_check_naming_the_field(db):
    customer = CustomerFactory()
    with pytest.raises(ValidationError) as raised:
        set_details(customer, account_number="66374959")  # spec test case 29: fails modulus 10
    assert raised.value.message_dict == {"account_number": [REFUSAL]}
    assert raised.value.error_dict["account_number"][0].code == "invalid_bank_details"
    assert not PaymentDetails.objects.exists()


def test_the_service_keeps_the_stored_details_when_a_change_fails_the_check(db):
    details = set_details(CustomerFactory())
    with pytest.raises(ValidationError):
        set_details(details.customer, sort_code="10-79-99", account_number="88837493")  # case 30
    stored = PaymentDetails.objects.get(pk=details.pk)
    assert (stored.sort_code, stored.account_number) == ("089999", "66374958")
    assert stored.history.count() == 1


@pytest.mark.parametrize(
    ("sort_code", "account_number"),
    [
        ("08-99-99", "66374958"),  # spec test case 1
        ("93-80-63", "5506 5200"),  # case 16, exception 5, entered with a space
        ("20-09-15", "41011166"),  # case 13, a foreign currency account: not checked
        ("12-34-56", "12345678"),  # no range of the table holds 123456: not checked, accepted
    ],
)
def test_the_service_accepts_what_the_spec_accepts(db, sort_code, account_number):
    details = set_details(CustomerFactory(), sort_code=sort_code, account_number=account_number)
    assert PaymentDetails.objects.get(pk=details.pk).account_number == account_number.replace(" ", "")


def test_a_badly_shaped_value_gets_its_own_message_not_the_modulus_one(db):
    with pytest.raises(ValidationError) as raised:
        set_details(CustomerFactory(), sort_code="08-99-9", account_number="66374959")
    assert raised.value.message_dict == {"sort_code": ["Enter a sort code of 6 digits."]}


def test_the_admin_refuses_a_failing_account_number_on_its_field(client, make_user, customer):
    details = customer.payment_details
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.post(
        f"/admin/accounts/paymentdetails/{details.pk}/change/",
        {
            "customer": customer.pk,
            "account_holder": "Jane Smith",
            "sort_code": "08-99-99",
            "account_number": "66374959",
            "mandate_reference": "DDMANDATE0001",
        },
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors == {"account_number": [REFUSAL]}
    assert REFUSAL in response.content.decode()
    stored = PaymentDetails.objects.get(pk=details.pk)
    assert (stored.account_number, stored.history.count()) == ("66374958", 1)


def test_the_admin_saves_details_that_pass(client, make_user, customer):
    details = customer.payment_details
    client.force_login(make_user(Role.ADMINISTRATOR))
    response = client.post(
        f"/admin/accounts/paymentdetails/{details.pk}/change/",
        {
            "customer": customer.pk,
            "account_holder": "Jane Smith",
            "sort_code": "10-79-99",
            "account_number": "88837491",  # spec test case 2
            "mandate_reference": "DDMANDATE0001",
        },
    )
    assert response.status_code == 302
    stored = PaymentDetails.objects.get(pk=details.pk)
    assert (stored.sort_code, stored.account_number) == ("107999", "88837491")


def test_factory_bank_details_are_checked_and_pass(db):
    details = PaymentDetailsFactory()
    outcome = modulus.check(details.sort_code, details.account_number, validation.modulus_tables())
    assert outcome is modulus.Outcome.VALID


def test_demo_bank_details_are_checked_and_pass(db):
    call_command("seed_demo", customers=12, partners=1, stdout=io.StringIO(), stderr=io.StringIO())
    tables = validation.modulus_tables()
    outcomes = {
        modulus.check(details.sort_code, details.account_number, tables)
        for details in PaymentDetails.objects.all()
    }
    assert PaymentDetails.objects.count() >= 12
    assert outcomes == {modulus.Outcome.VALID}
