"""Billing in the admin: tariffs and rates to set up; charges and tariff assignments to enter; runs,
invoices and credit notes to look at. Scoped like the pages by ``accounts.admin_scoping``: partner staff
see and link to their partner's rows (and the provider's shared tariffs) and the rows of customers they
may see; assignments and charges are written through ``billing.services``, with their checks."""

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from accounts.admin_scoping import ScopedInline, TenantScopedAdmin, UpdatedByServiceMixin, copy_saved
from accounts.models import User
from accounts.security import signed_in_user
from billing.models import (
    BacsReportImport,
    BacsReportImportError,
    BillRun,
    CreditNote,
    CustomerTariff,
    DirectDebitCollection,
    DunningAction,
    DunningStep,
    Invoice,
    LedgerEntry,
    LineTariff,
    OneOffCharge,
    PartnerBillingProfile,
    Payment,
    PaymentAllocation,
    Rate,
    RateCard,
    RecurringCharge,
    Tariff,
    WriteOff,
)
from billing.services.charges import (
    ONE_OFF_CHARGE_EDITABLE_FIELDS,
    RECURRING_CHARGE_EDITABLE_FIELDS,
    one_off_charge_create,
    one_off_charge_update,
    recurring_charge_create,
    recurring_charge_update,
)
from billing.services.dunning import dunning_step_create, dunning_step_update
from billing.services.tariffs import customer_set_tariff, line_set_tariff, partner_billing_profile_save
from fusion_site.admin_mixins import ReadOnlyMixin


class BillingAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    pass


class RateInline(ScopedInline):
    model = Rate
    extra = 3


class RateCardInline(ScopedInline):
    model = RateCard
    extra = 0
    show_change_link = True


@admin.register(Tariff)
class TariffAdmin(BillingAdmin):
    list_display = ["name", "partner"]
    list_filter = ["partner"]
    search_fields = ["name"]
    inlines = [RateCardInline]


@admin.register(RateCard)
class RateCardAdmin(BillingAdmin):
    list_display = ["tariff", "effective_from", "effective_to"]
    list_select_related = ["tariff"]
    inlines = [RateInline]


@admin.register(PartnerBillingProfile)
class PartnerBillingProfileAdmin(BillingAdmin):
    list_display = ["partner", "legal_name", "vat_number", "invoice_prefix", "next_invoice_number"]
    readonly_fields = ["next_invoice_number", "next_credit_note_number"]

    def save_with_services(
        self, request: HttpRequest, obj: PartnerBillingProfile, form: Any, change: bool
    ) -> None:
        partner_billing_profile_save(profile=obj, actor=signed_in_user(request))


class AssignmentAdmin(BillingAdmin):
    """A tariff given to one customer or line; which one is fixed once saved."""

    assigned_to = ""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, self.assigned_to] if obj is not None else readonly


@admin.register(CustomerTariff)
class CustomerTariffAdmin(AssignmentAdmin):
    assigned_to = "customer"
    list_display = ["customer", "tariff"]
    list_select_related = ["customer", "tariff"]
    autocomplete_fields = ["customer"]

    def save_with_services(self, request: HttpRequest, obj: CustomerTariff, form: Any, change: bool) -> None:
        saved = customer_set_tariff(customer=obj.customer, tariff=obj.tariff, actor=signed_in_user(request))
        copy_saved(saved, obj)


@admin.register(LineTariff)
class LineTariffAdmin(AssignmentAdmin):
    assigned_to = "line"
    list_display = ["line", "tariff"]
    autocomplete_fields = ["line"]

    def save_with_services(self, request: HttpRequest, obj: LineTariff, form: Any, change: bool) -> None:
        saved = line_set_tariff(line=obj.line, tariff=obj.tariff, actor=signed_in_user(request))
        copy_saved(saved, obj)


class ChargeAdmin(UpdatedByServiceMixin, BillingAdmin):
    """A charge stays on the customer it was entered for; it is created and changed by its services."""

    create_service: Callable[..., Any]
    entered_fields: tuple[str, ...]
    updated_as = "charge"

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "customer"] if obj is not None else readonly

    def create_with_service(self, obj: Any, form: Any, actor: User) -> Any:
        entered = {name: getattr(obj, name) for name in self.entered_fields}
        return self.create_service(customer=obj.customer, line=obj.line, actor=actor, **entered)


@admin.register(RecurringCharge)
class RecurringChargeAdmin(ChargeAdmin):
    list_display = ["description", "customer", "monthly_amount", "start_date", "end_date"]
    list_select_related = ["customer"]
    autocomplete_fields = ["customer", "line"]
    create_service = staticmethod(recurring_charge_create)
    update_service = staticmethod(recurring_charge_update)
    entered_fields = ("description", "monthly_amount", "start_date", "end_date")
    editable_fields = RECURRING_CHARGE_EDITABLE_FIELDS


@admin.register(OneOffCharge)
class OneOffChargeAdmin(ChargeAdmin):
    list_display = ["description", "customer", "amount", "charge_date", "invoice"]
    list_select_related = ["customer", "invoice"]
    autocomplete_fields = ["customer", "line"]
    readonly_fields = ["invoice"]
    create_service = staticmethod(one_off_charge_create)
    update_service = staticmethod(one_off_charge_update)
    entered_fields = ("description", "amount", "charge_date")
    editable_fields = ONE_OFF_CHARGE_EDITABLE_FIELDS


@admin.register(BillRun)
class BillRunAdmin(ReadOnlyMixin, BillingAdmin):
    list_display = ["__str__", "partner", "period_start", "status", "restricted_at"]
    list_filter = ["status", "partner"]
    list_select_related = ["partner"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyMixin, BillingAdmin):
    list_display = ["number", "customer_reference", "partner", "status", "issue_date", "net", "vat", "gross"]
    list_filter = ["status", "partner"]
    list_select_related = ["partner"]
    search_fields = ["number", "customer_reference"]
    exclude = ["customer_name", "customer_address"]


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyMixin, BillingAdmin):
    list_display = ["number", "invoice", "issue_date", "net", "vat", "gross"]
    list_select_related = ["invoice"]


# The ledger is written only through its services (the account pages); the admin shows it.


@admin.register(Payment)
class PaymentAdmin(ReadOnlyMixin, BillingAdmin):
    list_display = ["received_on", "customer", "method", "amount", "reference", "recorded_by"]
    list_filter = ["method"]
    list_select_related = ["customer", "recorded_by"]
    date_hierarchy = "received_on"


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = ["effective_on", "customer", "kind", "amount", "invoice", "actor", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["customer", "invoice", "actor"]
    date_hierarchy = "effective_on"


@admin.register(PaymentAllocation)
class PaymentAllocationAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = ["created_at", "payment", "invoice", "amount", "reverses", "actor"]
    list_select_related = ["payment", "invoice", "reverses", "actor"]


@admin.register(WriteOff)
class WriteOffAdmin(ReadOnlyMixin, BillingAdmin):
    list_display = ["requested_at", "customer", "invoice", "amount", "status", "requested_by", "decided_by"]
    list_filter = ["status"]
    list_select_related = ["customer", "invoice", "requested_by", "decided_by"]


@admin.register(DirectDebitCollection)
class DirectDebitCollectionAdmin(ReadOnlyMixin, BillingAdmin):
    """Written by the Direct Debit services (a submission, an ARUDD return, a cancellation)."""

    list_display = ["processing_date", "customer", "invoice", "amount_pence", "transaction_code", "outcome"]
    list_filter = ["outcome", "transaction_code"]
    list_select_related = ["customer", "invoice"]
    date_hierarchy = "processing_date"


class BacsReportImportErrorInline(ScopedInline):
    model = BacsReportImportError
    extra = 0
    can_delete = False
    fields = ["line_number", "reason"]
    readonly_fields = ["line_number", "reason"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BacsReportImport)
class BacsReportImportAdmin(ReadOnlyMixin, TenantScopedAdmin):
    """Imported once through ``bacs_report_import`` (the Bacs reports page); never changed after."""

    list_display = ["imported_at", "partner", "kind", "report_id", "items", "applied", "rejected"]
    list_filter = ["kind", "partner"]
    list_select_related = ["partner"]
    search_fields = ["report_id"]
    inlines = [BacsReportImportErrorInline]


@admin.register(BacsReportImportError)
class BacsReportImportErrorAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = ["report_import", "line_number", "reason"]
    list_select_related = ["report_import"]


@admin.register(DunningStep)
class DunningStepAdmin(BillingAdmin):
    """A partner's steps, added and changed through the dunning services (their permission and partner
    checks); switched off, never deleted (the actions taken name them)."""

    list_display = ["__str__", "partner", "days_overdue", "kind", "active", "effective_from"]
    list_filter = ["partner", "kind", "active"]
    list_select_related = ["partner"]
    step_fields = ("days_overdue", "kind", "effective_from", "active")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["partner"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_with_services(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        actor = signed_in_user(request)
        values = {name: form.cleaned_data[name] for name in self.step_fields}
        if change:
            saved = dunning_step_update(step=DunningStep.objects.get(pk=obj.pk), actor=actor, **values)
        else:
            saved = dunning_step_create(partner=form.cleaned_data["partner"], actor=actor, **values)
        copy_saved(saved, obj)


@admin.register(DunningAction)
class DunningActionAdmin(ReadOnlyMixin, TenantScopedAdmin):
    """Recorded by the daily dunning job only."""

    list_display = ["taken_at", "customer", "kind", "days_overdue", "due_on", "overdue_amount", "outcome"]
    list_filter = ["outcome", "kind"]
    list_select_related = ["customer"]
    date_hierarchy = "taken_at"
