"""Erasure records in the admin, read-only: they are written by ``customer_erase`` alone. Only roles
with ``view_erasurerecord`` (DPO, administrator) see them, and they hold no personal data."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from privacy.models import ErasureEvent, ErasureRecord


class ErasureEventInline(admin.TabularInline):
    model = ErasureEvent
    extra = 0
    fields = ("at", "actor", "action", "detail")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ErasureRecord)
class ErasureRecordAdmin(admin.ModelAdmin):
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
