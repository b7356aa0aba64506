"""Privacy in the admin. The breach register and erasure records, read-only: incidents are written on the
DPO's pages and never deleted; erasure records are written by ``privacy.erasure`` alone, and only
roles with ``view_erasurerecord`` (DPO, administrator) see them; they hold no personal data. Privacy notices
(drafts edited, published versions read-only) and anonymous cookie choices.

Website submissions are kept out of the admin on purpose: their pages scope job applications to the
recruitment permission and mask personal data, which a plain ModelAdmin would not."""

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from accounts.admin_scoping import ScopedInline, TenantScopedAdmin
from accounts.models import User
from fusion_site.admin_mixins import ReadOnlyMixin
from privacy.models import BreachIncident, CookieConsentRecord, ErasureEvent, ErasureRecord, PrivacyNotice
from privacy.website import services


class ErasureEventInline(ScopedInline):
    model = ErasureEvent
    extra = 0
    fields = ("at", "actor", "action", "detail")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(BreachIncident)
class BreachIncidentAdmin(ReadOnlyMixin, TenantScopedAdmin, SimpleHistoryAdmin):
    """The breach register, read-only: incidents are recorded and corrected on the DPO's pages (with a
    reason in their history), and never deleted by anyone."""

    list_display = (
        "__str__",
        "pecr",
        "became_aware_at",
        "ico_decision",
        "subjects_decision",
        "status",
        "handler",
    )
    list_filter = ("pecr", "status", "ico_decision", "subjects_decision")
    list_select_related = ("handler",)
    search_fields = ("title",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in BreachIncident._meta.fields]


@admin.register(ErasureRecord)
class ErasureRecordAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = (
        "customer_reference",
        "request_reference",
        "erased_at",
        "actor",
        "repeat",
        "files_deleted",
    )
    list_filter = ("repeat",)
    search_fields = ("customer_reference", "request_reference")
    list_select_related = ("actor",)
    inlines = [ErasureEventInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in ErasureRecord._meta.fields]


@admin.register(PrivacyNotice)
class PrivacyNoticeAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    list_display = ["version", "title", "status", "published_at", "updated_at"]
    list_filter = ["status"]
    fields = ["version", "title", "summary", "body", "status", "published_at", "published_by", "updated_at"]
    actions = ["publish"]

    def get_readonly_fields(self, request: HttpRequest, obj: PrivacyNotice | None = None) -> list[str]:
        always = ["version", "status", "published_at", "published_by", "updated_at"]
        if obj is not None and obj.is_published:
            return [*always, "title", "summary", "body"]
        return always

    def has_delete_permission(self, request: HttpRequest, obj: PrivacyNotice | None = None) -> bool:
        # Consents point at published versions; a draft nobody consented to may go.
        return obj is not None and not obj.is_published and super().has_delete_permission(request, obj)

    def save_with_services(self, request: HttpRequest, obj: PrivacyNotice, form: Any, change: bool) -> None:
        actor = request.user
        assert isinstance(actor, User)
        fields = {name: form.cleaned_data[name] for name in ("title", "summary", "body")}
        if change:
            services.privacy_notice_update_draft(notice=obj, actor=actor, **fields)
        else:
            created = services.privacy_notice_create(actor=actor, **fields)
            obj.pk, obj.version = created.pk, created.version

    @admin.action(description="Publish the selected draft", permissions=["publish"])
    def publish(self, request: HttpRequest, queryset: QuerySet[PrivacyNotice]) -> None:
        actor = request.user
        assert isinstance(actor, User)
        for notice in queryset.order_by("version"):
            try:
                services.privacy_notice_publish(notice=notice, actor=actor)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
            else:
                self.message_user(request, f"Version {notice.version} published.", messages.SUCCESS)

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("privacy.publish_privacynotice")


@admin.register(CookieConsentRecord)
class CookieConsentRecordAdmin(ReadOnlyMixin, TenantScopedAdmin):
    list_display = ["recorded_hour", "choice", "notice"]
    list_filter = ["choice"]
