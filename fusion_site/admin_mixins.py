"""What every app's admin shares."""

from typing import Any

from django.http import HttpRequest


class ReadOnlyMixin:
    """An admin that shows records and never adds, changes or deletes them (trails, logs, bill runs)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
