import pytest

from accounts.models import Role
from billing.demo import uk_tariff
from tests.billing.factories import billing_profile


@pytest.fixture
def agent(make_user):
    return make_user(Role.BILLING_AGENT)


@pytest.fixture
def finance(make_user):
    return make_user(Role.FINANCE_MANAGER)


@pytest.fixture
def dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


@pytest.fixture
def profile(partner):
    """The partner bills on the standard UK tariff (billing.demo.UK_RATES) by default."""
    return billing_profile(partner, default_tariff=uk_tariff())
