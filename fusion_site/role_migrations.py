"""Granting job-role groups their permissions from a data migration: one way for every app.

A migration lists, per role group, the permissions it adds as "app_label.codename" and hands the list to
``grant_role_permissions``. Permissions of models created in the same run are made first (Django only makes
them after the last migration); a name that matches no permission fails the migration instead of granting
less than it says. Reversing removes exactly what was listed."""

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations


def _permissions(apps: Any, names: list[str]) -> list[Any]:
    Permission = apps.get_model("auth", "Permission")
    found = []
    for name in names:
        app_label, codename = name.split(".", 1)
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is None:
            raise RuntimeError(f"Unknown permission {name}.")
        found.append(permission)
    return found


def grant_role_permissions(role_permissions: dict[str, list[str]]) -> migrations.RunPython:
    def grant(apps: Any, schema_editor: Any) -> None:
        for app_config in apps.get_app_configs():
            app_config.models_module = True
            create_permissions(app_config, apps=apps, verbosity=0)
            app_config.models_module = None
        Group = apps.get_model("auth", "Group")
        for role, names in role_permissions.items():
            Group.objects.get(name=role).permissions.add(*_permissions(apps, names))

    def revoke(apps: Any, schema_editor: Any) -> None:
        Group = apps.get_model("auth", "Group")
        for role, names in role_permissions.items():
            for group in Group.objects.filter(name=role):
                group.permissions.remove(*_permissions(apps, names))

    return migrations.RunPython(grant, revoke)
