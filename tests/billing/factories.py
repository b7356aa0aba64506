"""Billing test data built through the services, with a realistic UK tariff."""



from accounts.models import Partner
from billing.models import PartnerBillingProfile, Tariff


def billing_profile(partner: Partner, *, default_tariff: Tariff | None = None) -> PartnerBillingProfile:
    return PartnerBillingProfile.objects.create(
        partner=partner,
        default_tariff=default_tariff,
        legal_name=f"{partner.name} Trading Ltd",
        address="1 Exchange Square\nLeeds\nLS1 4AP",
        vat_number="GB123456789",
        invoice_prefix=f"{partner.code[:6].upper()}-",
        bacs_service_user_number="123456",
        bacs_sort_code="200000",
        bacs_account_number="55779911",
        bacs_account_name="PARTNER COLLECT",
    )
