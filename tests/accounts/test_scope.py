"""``accounts.selectors.scope_of``: whose a row is, found from the foreign keys, and who sees it."""

from accounts.models import AccessLog, Customer, Line, Partner, Role
from accounts.selectors import owner_path, rows_visible_to
from billing.demo import uk_tariff
from billing.models import CreditNote, Invoice, RateCard, Tariff
from privacy.models import CookieConsentRecord, PrivacyNotice


def test_owner_is_found_through_the_foreign_keys_not_through_actors():
    assert owner_path(Customer) == (Customer, "pk")
    assert owner_path(Partner) == (Partner, "pk")
    assert owner_path(Line) == (Customer, "customer")
    # A customer's row is the customer's, though it also names the partner directly.
    assert owner_path(Invoice) == (Customer, "customer")
    assert owner_path(CreditNote) == (Customer, "invoice__customer")
    assert owner_path(RateCard) == (Partner, "tariff__partner")
    assert owner_path(AccessLog) == (Customer, "customer")
    # Linked to users only (who published it): nobody's.
    assert owner_path(PrivacyNotice) is None
    assert owner_path(CookieConsentRecord) is None


def test_partner_staff_see_their_partners_and_the_shared_tariffs_only(make_user, partner, other_partner):
    shared = uk_tariff(name="Standard")
    own = uk_tariff(name="Own", partner=partner)
    uk_tariff(name="Theirs", partner=other_partner)

    assert set(rows_visible_to(make_user(Role.BILLING_AGENT), Tariff)) == {shared, own}
    assert set(
        rows_visible_to(make_user(Role.BILLING_AGENT), RateCard).values_list("tariff__name", flat=True)
    ) == {
        "Standard",
        "Own",
    }
    assert rows_visible_to(make_user(Role.ADMINISTRATOR), Tariff).count() == 3


def test_rows_of_customers_follow_customer_visibility(make_user, customer, other_customer):
    agent = make_user(Role.BILLING_AGENT)

    assert set(rows_visible_to(agent, Line)) == set(customer.lines.all())
    assert set(rows_visible_to(agent, Partner)) == {customer.partner}
    assert set(rows_visible_to(make_user(Role.ADMINISTRATOR), Line)) == set(Line.objects.all())
