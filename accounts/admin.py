"""The staff web admin, filtered through the same selectors and PII gate as the pages."""

import json
from collections.abc import Callable
from typing import Any

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin as OtpStaticDeviceAdmin
from django_otp.plugins.otp_static.admin import StaticTokenInline as OtpStaticTokenInline
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin as OtpTOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice
from simple_history.admin import SimpleHistoryAdmin

from accounts import pii, selectors, services
from accounts.admin_scoping import (
    ScopedFormFieldsMixin,
    ScopedInline,
    TenantScopedAdmin,
    UpdatedByServiceMixin,
    copy_saved,
)
from accounts.audit import audit_record
from accounts.forms import SiteChoiceField, UserChangeForm, UserCreationForm
from accounts.models import (
    AccessLog,
    AuditEvent,
    Contact,
    Customer,
    Line,
    Partner,
    PaymentDetails,
    ProvisioningOrder,
    Site,
    User,
)
from accounts.security import signed_in_user
from accounts.signals import username_digest
from fusion_site.admin_mixins import ReadOnlyMixin

Masker = Callable[[str], str]
# Search fields naming an encrypted name, which the admin searches by word through its blind index.
NAME_SEARCH_FIELDS = frozenset({"name", "customer__name"})


class CustomerScopedAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    """Rows of customers the user may not see do not exist here (``TenantScopedAdmin``). Personal fields
    are masked for users who may not reveal them, and reading them in clear is logged."""

    personal_fields: dict[str, Masker] = {}
    reveal_check: Callable[[Any], bool] = staticmethod(pii.may_reveal_personal_data)

    def __init__(self, model: type[Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        for name, masker in self.personal_fields.items():
            setattr(self, f"masked_{name}", self._masked_display(name, masker))

    @staticmethod
    def _masked_display(name: str, masker: Masker) -> Callable[[Model], str]:
        def display(obj: Model) -> str:
            return masker(getattr(obj, name) or "")

        display.short_description = name.replace("_", " ")  # type: ignore[attr-defined]
        return display

    def _may_reveal(self, request: HttpRequest) -> bool:
        return bool(self.reveal_check(request.user))

    def _masks_personal_data(self, request: HttpRequest) -> bool:
        return bool(self.personal_fields) and not self._may_reveal(request)

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        excluded = list(super().get_exclude(request, obj) or [])
        if self._masks_personal_data(request):
            excluded += list(self.personal_fields)
        return excluded

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        if self._masks_personal_data(request):
            readonly += [f"masked_{name}" for name in self.personal_fields]
        return readonly

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        # Entering personal data is a reveal of it: only cleared staff may.
        return super().has_add_permission(request, *args) and not self._masks_personal_data(request)

    def _customer_of(self, obj: Any) -> Customer:
        return obj if isinstance(obj, Customer) else obj.customer

    def _log_read_in_clear(self, request: HttpRequest, object_id: str, what: str) -> None:
        """Cleared staff reading personal fields in the admin: the same access log as a reveal."""
        if request.method != "GET" or not self.personal_fields or not self._may_reveal(request):
            return
        services.access_log_record(
            user=request.user,  # type: ignore[arg-type]
            customer=self._customer_of(self.get_object(request, object_id)),
            action=AccessLog.Action.ADMIN_VIEW,
            fields=[f"{self.model._meta.model_name}.{name}" for name in self.personal_fields],
            reason=f"{what} of {self.model._meta.verbose_name} in the admin",
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        self._log_read_in_clear(request, object_id, "Opened the record")
        return super().change_view(request, object_id, form_url, extra_context)

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        self.get_object(request, unquote(object_id))
        self._log_read_in_clear(request, object_id, "Read the change history")
        return super().history_view(request, object_id, extra_context)

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        self.get_object(request, unquote(object_id))
        if self._masks_personal_data(request):
            raise Http404("Past versions show personal data in clear.")
        self._log_read_in_clear(request, object_id, f"Opened past version {version_id}")
        return super().history_form_view(request, object_id, version_id, extra_context)

    def set_history_delta_changes(self, request: HttpRequest, historical_records: Any, **kwargs: Any) -> None:
        if not self._masks_personal_data(request):
            super().set_history_delta_changes(request, historical_records, **kwargs)

    # Blind-index lookups searched exactly, by purpose: {"phone": ["phone_index"]}.
    search_blind_indexes: dict[str, list[str]] = {}

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        fields = [str(name) for name in self.get_search_fields(request)]
        if term and any(name in NAME_SEARCH_FIELDS for name in fields):
            results, may_have_duplicates = self._search_with_names(queryset, term, fields), False
        else:
            results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        for index_filter in selectors.blind_index_filters(term, self.search_blind_indexes):
            results = results | queryset.filter(**index_filter)
        return results, may_have_duplicates

    def _search_with_names(self, queryset: QuerySet[Any], term: str, fields: list[str]) -> QuerySet[Any]:
        """Encrypted names cannot be matched in SQL: every word of the term must be a word of the name
        (through ``NameToken``); other search fields match the whole term with icontains."""
        names = selectors.names_holding_words(term)
        own_names = names.filter(contact__isnull=True).values("customer_id")
        found = Q(pk__in=[])
        for name in fields:
            if name == "customer__name":
                found |= Q(customer_id__in=own_names)
            elif name == "name" and self.model is Contact:
                found |= Q(pk__in=names.filter(contact__isnull=False).values("contact_id"))
            elif name == "name" and self.model is Customer:
                found |= Q(pk__in=own_names)
            else:
                found |= Q(**{f"{name}__icontains": term})
        return queryset.filter(found)


@admin.register(Partner)
class PartnerAdmin(UpdatedByServiceMixin, TenantScopedAdmin, SimpleHistoryAdmin):
    list_display = ["name", "code", "vat_number"]
    search_fields = ["name", "code"]
    exclude = ["staff_group"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["code"] if obj else []

    update_service = staticmethod(services.partner_update)
    updated_as = "partner"
    editable_fields = services.PARTNER_EDITABLE_FIELDS

    def create_with_service(self, obj: Partner, form: Any, actor: User) -> Partner:
        return services.partner_register(partner=obj, actor=actor)


def _form_values(form: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: form.cleaned_data[name] for name in names if name in form.cleaned_data}


class SiteInline(ScopedInline):
    model = Site
    fields = ["label"]
    readonly_fields = ["label"]
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(UpdatedByServiceMixin, CustomerScopedAdmin):
    customer_lookup = ""
    list_display = [
        "reference",
        "trading_name",
        "partner",
        "status",
        "contract_start",
        "contract_end",
        "billing_ceased_at",
        "processing_restricted_at",
    ]
    list_filter = [
        "status",
        ("partner", admin.RelatedOnlyFieldListFilter),
        ("billing_ceased_at", admin.EmptyFieldListFilter),
        ("processing_restricted_at", admin.EmptyFieldListFilter),
    ]
    list_select_related = ["partner"]
    search_fields = ["name"]  # searched by selectors.search_customers (get_search_results below)
    search_help_text = (
        "A reference, whole words of the customer's or a contact's name, or an exact phone number, email "
        "or postcode."
    )
    date_hierarchy = "contract_start"
    readonly_fields = [
        "billing_ceased_at",
        "billing_ceased_by",
        "billing_ceased_reason",
        "processing_restricted_at",
        "processing_restricted_by",
        "processing_restricted_reason",
        "erased_at",
    ]
    inlines = [SiteInline]

    @admin.display(description="Reference", ordering="id")
    def reference(self, obj: Customer) -> str:
        return obj.reference

    # Not sortable: the name is encrypted, so SQL would sort ciphertext.
    @admin.display(description="Name")
    def trading_name(self, obj: Customer) -> str:
        return obj.name

    # The admin's change log stores ``str(obj)`` (reference and name) in clear, in a table no field
    # encrypts: it names the customer by reference instead.
    def log_addition(self, request: HttpRequest, obj: Customer, message: Any) -> LogEntry:
        return self._log(request, obj, ADDITION, message)

    def log_change(self, request: HttpRequest, obj: Customer, message: Any) -> LogEntry:
        return self._log(request, obj, CHANGE, message)

    def log_deletions(self, request: HttpRequest, queryset: Any) -> list[LogEntry]:
        return [self._log(request, obj, DELETION, "") for obj in queryset]

    @staticmethod
    def _log(request: HttpRequest, obj: Customer, action_flag: int, message: Any) -> LogEntry:
        assert isinstance(request.user, User)  # the admin is behind login
        return LogEntry.objects.create(
            user=request.user,
            content_type=ContentType.objects.get_for_model(Customer),
            object_id=str(obj.pk),
            object_repr=obj.reference,
            action_flag=action_flag,
            change_message=json.dumps(message) if isinstance(message, list) else message,
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "partner"] if obj else readonly

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        return selectors.search_customers(queryset, search_term), True

    update_service = staticmethod(services.customer_update)
    updated_as = "customer"
    editable_fields = services.CUSTOMER_EDITABLE_FIELDS

    def create_with_service(self, obj: Customer, form: Any, actor: User) -> Customer:
        return services.customer_register(customer=obj, actor=actor)


class CustomerChildAdmin(CustomerScopedAdmin):
    """Rows of one customer, which they never move away from: the customer is fixed once saved."""

    list_select_related = ["customer"]
    autocomplete_fields = ["customer"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "customer"] if obj is not None else readonly

    @admin.display(description="Customer", ordering="customer_id")
    def customer_reference(self, obj: Any) -> str:
        return obj.customer.reference


class EditedByServicesAdmin(UpdatedByServiceMixin, CustomerChildAdmin):
    """A child row created and changed through its two services, with the fields the pages edit."""

    create_service: Callable[..., Any]

    def create_with_service(self, obj: Any, form: Any, actor: User) -> Any:
        fields = _form_values(form, self.editable_fields)
        return self.create_service(customer=obj.customer, actor=actor, **fields)


@admin.register(Site)
class SiteAdmin(EditedByServicesAdmin):
    personal_fields = {
        "address_line1": pii.mask_text,
        "address_line2": pii.mask_text,
        "town": pii.mask_text,
        "postcode": pii.mask_postcode,
    }
    list_display = ["label", "customer_reference", "masked_postcode"]
    search_fields = ["label"]
    search_blind_indexes = {"postcode": ["postcode_index"]}
    create_service = staticmethod(services.site_create)
    update_service = staticmethod(services.site_update)
    updated_as = "site"
    editable_fields = services.SITE_EDITABLE_FIELDS


@admin.register(Contact)
class ContactAdmin(EditedByServicesAdmin):
    personal_fields = {"name": pii.mask_text, "email": pii.mask_email, "phone": pii.mask_phone}
    list_display = ["__str__", "customer_reference", "role", "masked_email", "masked_phone"]
    list_filter = ["role"]
    search_fields = ["name", "customer__name"]
    search_blind_indexes = {"email": ["email_index"], "phone": ["phone_index"]}
    create_service = staticmethod(services.contact_create)
    update_service = staticmethod(services.contact_update)
    updated_as = "contact"
    editable_fields = services.CONTACT_EDITABLE_FIELDS


@admin.register(Line)
class LineAdmin(UpdatedByServiceMixin, CustomerChildAdmin):
    personal_fields = {"cli": pii.mask_phone}
    list_display = ["__str__", "customer_reference", "masked_cli", "line_type", "start_date", "end_date"]
    list_filter = ["line_type", ("end_date", admin.EmptyFieldListFilter)]
    search_fields = ["customer__name"]
    search_blind_indexes = {"phone": ["cli_index"]}

    search_help_text = "The line's number in any UK format (exact), or whole words of the customer's name."

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "site":
            # Named so that the many "Head office" sites can be told apart (accounts.forms.site_choice_label).
            kwargs["form_class"] = SiteChoiceField
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "site" and field is not None:
            field.queryset = field.queryset.select_related("customer")
        return field

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        site = form.base_fields.get("site")
        # Only the line's own customer's sites: the saved line's, or the one the add form was opened for
        # (?customer=<id>, as the Site Details page links it).
        customer_id = obj.customer_id if obj is not None else request.GET.get("customer", "")
        if site is not None and str(customer_id).isdigit():
            site.queryset = site.queryset.filter(customer_id=customer_id)
        return form

    update_service = staticmethod(services.line_update)
    updated_as = "line"
    editable_fields = services.LINE_EDITABLE_FIELDS

    def create_with_service(self, obj: Line, form: Any, actor: User) -> Line:
        return services.line_create(
            customer=obj.customer,
            site=obj.site,
            cli=obj.cli,
            line_type=obj.line_type,
            start_date=obj.start_date,
            end_date=obj.end_date,
            actor=actor,
        )


@admin.register(PaymentDetails)
class PaymentDetailsAdmin(CustomerChildAdmin):
    personal_fields = {
        "account_holder": pii.mask_text,
        "sort_code": pii.mask_sort_code,
        "account_number": pii.mask_account_number,
        "mandate_reference": pii.mask_reference,
    }
    reveal_check = staticmethod(pii.may_reveal_payment_details)
    list_display = ["customer_reference", "masked_sort_code", "masked_account_number"]
    search_fields = ["customer__name"]

    def save_with_services(self, request: HttpRequest, obj: PaymentDetails, form: Any, change: bool) -> None:
        saved = services.payment_details_set(
            customer=obj.customer,
            actor=signed_in_user(request),
            account_holder=obj.account_holder,
            sort_code=obj.sort_code,
            account_number=obj.account_number,
            mandate_reference=obj.mandate_reference,
        )
        copy_saved(saved, obj)


@admin.register(ProvisioningOrder)
class ProvisioningOrderAdmin(CustomerChildAdmin):
    list_display = ["__str__", "customer_reference", "kind", "status", "gateway_reference", "created_at"]
    list_filter = ["status", "kind"]
    readonly_fields = [
        "status",
        "gateway_reference",
        "failure_reason",
        "submitted_at",
        "completed_at",
        "requested_by",
    ]
    search_fields = ["gateway_reference"]
    autocomplete_fields = ["customer", "line"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "line", "kind"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # orders are placed from the Site Details page, which holds restricted customers' orders

    def save_with_services(
        self, request: HttpRequest, obj: ProvisioningOrder, form: Any, change: bool
    ) -> None:
        saved = services.provisioning_order_update_notes(
            order=ProvisioningOrder.objects.get(pk=obj.pk), actor=signed_in_user(request), notes=obj.notes
        )
        copy_saved(saved, obj)


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = ["at", "user", "customer_reference", "action", "reason"]
    list_filter = ["action"]
    search_fields = ["customer_reference", "user__email"]
    list_select_related = ["user"]
    date_hierarchy = "at"


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyMixin, TenantScopedAdmin):
    """Read-only: the trail is append-only (``manage.py verify_audit_chain`` proves it stayed so)."""

    list_display = ["id", "at", "actor_label", "action", "target_type", "target_id"]
    list_filter = ["action"]
    search_fields = ["action", "target_id", "actor_label"]
    date_hierarchy = "at"


@admin.register(User)
class UserAdmin(TenantScopedAdmin, DjangoUserAdmin, SimpleHistoryAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = [
        "email",
        "full_name",
        "partner",
        "is_staff",
        "is_active",
        "confidentiality_signed_at",
        "gdpr_training_completed_at",
    ]
    list_filter = ["is_staff", "is_active", "groups", "partner"]
    list_select_related = ["partner"]
    search_fields = ["email", "full_name"]
    autocomplete_fields = ["customer"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Person", {"fields": ("full_name", "partner", "customer")}),
        (
            "Confidentiality and training",
            {"fields": ("confidentiality_signed_at", "gdpr_training_completed_at")},
        ),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "partner", "password1", "password2")}),
    )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        services.user_sync_scope(user=form.instance)


# The README tells administrators to remove a lost authenticator and to unlock a locked-out login here;
# both are security events, so the admin's deletions of them go into the audit trail.


class AuditedDeletionAdmin(TenantScopedAdmin):
    deletion_action = ""

    def deletion_audit(self, obj: Any) -> tuple[Model | None, dict[str, Any]]:
        """The target and detail of the audit event for deleting ``obj``."""
        raise NotImplementedError

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        with transaction.atomic():
            target, detail = self.deletion_audit(obj)
            audit_record(actor=request.user, action=self.deletion_action, target=target, detail=detail)
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        with transaction.atomic():
            for obj in queryset:
                target, detail = self.deletion_audit(obj)
                audit_record(actor=request.user, action=self.deletion_action, target=target, detail=detail)
            super().delete_queryset(request, queryset)


class _DeviceDeletionAudit(AuditedDeletionAdmin):
    deletion_action = "auth.device_removed"

    def deletion_audit(self, obj: Any) -> tuple[Model | None, dict[str, Any]]:
        return obj.user, {"device": obj.persistent_id}


class TOTPDeviceAdmin(_DeviceDeletionAudit, OtpTOTPDeviceAdmin):
    pass


class StaticTokenInline(ScopedFormFieldsMixin, OtpStaticTokenInline):
    pass


class StaticDeviceAdmin(_DeviceDeletionAudit, OtpStaticDeviceAdmin):
    inlines = [StaticTokenInline]


class AccessAttemptAdmin(AuditedDeletionAdmin, AxesAccessAttemptAdmin):
    deletion_action = "auth.lockout_cleared"

    def deletion_audit(self, obj: Any) -> tuple[Model | None, dict[str, Any]]:
        # Named as the lockout event names it: the username's blind index, never its text.
        return None, {"username_digest": username_digest(obj.username or ""), "ip": obj.ip_address or ""}


for _model, _admin_class in (
    (TOTPDevice, TOTPDeviceAdmin),
    (StaticDevice, StaticDeviceAdmin),
    (AccessAttempt, AccessAttemptAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin_class)
