"""Billing in the admin: tariffs and rates to set up; runs, invoices and credit notes to look at.
Scoped like the pages: partner staff see their partner's rows (and the provider's shared tariffs)."""

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from accounts.models import User
from accounts.selectors import VIEW_ALL_CUSTOMERS, customer_ids_visible_to
from billing.models import (
    BillRun,
    CreditNote,
    CustomerTariff,
    Invoice,
    LineTariff,
    OneOffCharge,
    PartnerBillingProfile,
    Rate,
    RateCard,
    RecurringCharge,
    Tariff,
)
from fusion_site.admin_mixins import ReadOnlyMixin


def _sees_all(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(VIEW_ALL_CUSTOMERS))


def _partner_id(request: HttpRequest) -> int | None:
    user = request.user
    return user.partner_id if isinstance(user, User) else None


class PartnerScopedAdmin(SimpleHistoryAdmin):
    partner_lookup = "partner"
    shared_when_partner_empty = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if _sees_all(request):
            return queryset
        scope = Q(**{self.partner_lookup: _partner_id(request)}) if _partner_id(request) else Q(pk__in=[])
        if self.shared_when_partner_empty:
            scope |= Q(**{f"{self.partner_lookup}__isnull": True})
        return queryset.filter(scope)


class CustomerScopedBillingAdmin(SimpleHistoryAdmin):
    customer_lookup = "customer"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        visible = customer_ids_visible_to(request.user)
        return super().get_queryset(request).filter(**{f"{self.customer_lookup}__in": visible})


class RateInline(admin.TabularInline):
    model = Rate
    extra = 3


class RateCardInline(admin.TabularInline):
    model = RateCard
    extra = 0
    show_change_link = True


@admin.register(Tariff)
class TariffAdmin(PartnerScopedAdmin):
    shared_when_partner_empty = True
    list_display = ["name", "partner"]
    list_filter = ["partner"]
    search_fields = ["name"]
    inlines = [RateCardInline]


@admin.register(RateCard)
class RateCardAdmin(PartnerScopedAdmin):
    partner_lookup = "tariff__partner"
    shared_when_partner_empty = True
    list_display = ["tariff", "effective_from", "effective_to"]
    list_select_related = ["tariff"]
    inlines = [RateInline]


@admin.register(PartnerBillingProfile)
class PartnerBillingProfileAdmin(PartnerScopedAdmin):
    list_display = ["partner", "legal_name", "vat_number", "invoice_prefix", "next_invoice_number"]
    readonly_fields = ["next_invoice_number", "next_credit_note_number"]


@admin.register(CustomerTariff)
class CustomerTariffAdmin(CustomerScopedBillingAdmin):
    list_display = ["customer", "tariff"]
    list_select_related = ["customer", "tariff"]
    autocomplete_fields = ["customer"]


@admin.register(LineTariff)
class LineTariffAdmin(CustomerScopedBillingAdmin):
    customer_lookup = "line__customer"
    list_display = ["line", "tariff"]
    autocomplete_fields = ["line"]


@admin.register(RecurringCharge)
class RecurringChargeAdmin(CustomerScopedBillingAdmin):
    list_display = ["description", "customer", "monthly_amount", "start_date", "end_date"]
    list_select_related = ["customer"]
    autocomplete_fields = ["customer", "line"]


@admin.register(OneOffCharge)
class OneOffChargeAdmin(CustomerScopedBillingAdmin):
    list_display = ["description", "customer", "amount", "charge_date", "invoice"]
    list_select_related = ["customer", "invoice"]
    autocomplete_fields = ["customer", "line"]
    readonly_fields = ["invoice"]


@admin.register(BillRun)
class BillRunAdmin(ReadOnlyMixin, PartnerScopedAdmin):
    list_display = ["__str__", "partner", "period_start", "status", "restricted_at"]
    list_filter = ["status", "partner"]
    list_select_related = ["partner"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyMixin, CustomerScopedBillingAdmin):
    list_display = ["number", "customer_reference", "partner", "status", "issue_date", "net", "vat", "gross"]
    list_filter = ["status", "partner"]
    list_select_related = ["partner"]
    search_fields = ["number", "customer_reference"]
    exclude = ["customer_name", "customer_address"]


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyMixin, CustomerScopedBillingAdmin):
    customer_lookup = "invoice__customer"
    list_display = ["number", "invoice", "issue_date", "net", "vat", "gross"]
    list_select_related = ["invoice"]
