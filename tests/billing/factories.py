"""Billing test data built through the services, with a realistic UK tariff."""

import datetime
from decimal import Decimal

from django.utils import timezone

from accounts.models import Partner
from billing.models import Band, PartnerBillingProfile, Rate, RateCard, Tariff

# prefix, band, pence per minute, connection, minimum, increment
UK_RATES = [
    ("01", Band.GEOGRAPHIC, "0.0150", "0", "0", 1),
    ("02", Band.GEOGRAPHIC, "0.0150", "0", "0", 1),
    ("03", Band.GEOGRAPHIC, "0.0150", "0", "0", 1),
    ("07", Band.MOBILE, "0.0800", "0", "0.0100", 1),
    ("080", Band.FREEPHONE, "0", "0", "0", 1),
    ("084", Band.NON_GEOGRAPHIC, "0.0700", "0.0500", "0", 60),
    ("087", Band.NON_GEOGRAPHIC, "0.1000", "0.0500", "0", 60),
    ("09", Band.PREMIUM, "1.5000", "0.2500", "0.5000", 1),
    ("00", Band.INTERNATIONAL, "0.5000", "0.1000", "0", 1),
    ("00353", Band.INTERNATIONAL, "0.1200", "0", "0", 1),
    ("0035387", Band.INTERNATIONAL, "0.2500", "0", "0", 1),
]


def uk_tariff(
    *,
    partner: Partner | None = None,
    name: str = "Business standard",
    effective_from: datetime.datetime | None = None,
) -> Tariff:
    tariff = Tariff.objects.create(partner=partner, name=name)
    card = RateCard.objects.create(
        tariff=tariff, effective_from=effective_from or datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    )
    Rate.objects.bulk_create(
        Rate(
            rate_card=card,
            prefix=prefix,
            band=band,
            price_per_minute=Decimal(ppm),
            connection_charge=Decimal(conn),
            minimum_charge=Decimal(minimum),
            increment_seconds=increment,
        )
        for prefix, band, ppm, conn, minimum, increment in UK_RATES
    )
    return tariff


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


def now_in_period() -> datetime.datetime:
    return timezone.now()
