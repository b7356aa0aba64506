import enum
from collections.abc import Callable, Collection, Iterable
from typing import Any, ClassVar, TypeVar

from django.core.exceptions import ValidationError
from django.db import models


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class NormalisedFieldsModel(models.Model):
    """Validates and normalises fields with ``normalisers`` (field name -> function that returns the
    normal form or raises ValidationError). Runs inside ``clean_fields``, so a bad value is reported on
    its own field, once, by services, forms and the admin alike."""

    normalisers: ClassVar[dict[str, Callable[[str], str]]] = {}

    class Meta:
        abstract = True

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        errors: dict[str, list[ValidationError]] = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        for name, normalise in self.normalisers.items():
            value = getattr(self, name)
            if (exclude and name in exclude) or name in errors or not value:
                continue
            try:
                setattr(self, name, normalise(value))
            except ValidationError as exc:
                errors[name] = exc.error_list
        if errors:
            raise ValidationError(errors)


M = TypeVar("M", bound=models.Model)


def save_with_actor(instance: M, *, actor: Any, reason: str = "") -> M:
    """Validate and save, with the history row attributed to ``actor`` (and ``reason``, if given).
    Every service write goes through here."""
    instance.full_clean()
    instance._history_user = actor  # type: ignore[attr-defined]
    if reason:
        instance._change_reason = reason  # type: ignore[attr-defined]
    instance.save()
    return instance


def update_with_actor(
    instance: M, *, actor: Any, changes: dict[str, Any], allowed: Iterable[str], reason: str = ""
) -> M:
    """Apply an ``*_update`` service's ``changes`` and save them through ``save_with_actor``. A field
    outside ``allowed`` is refused by name, before anything is set."""
    unknown = set(changes) - set(allowed)
    if unknown:
        raise ValidationError({name: "This field cannot be changed here." for name in sorted(unknown)})
    for name, value in changes.items():
        setattr(instance, name, value)
    return save_with_actor(instance, actor=actor, reason=reason)


class Unchanged(enum.Enum):
    """The default of an ``*_update`` service's field arguments: a field not given keeps its value."""

    UNCHANGED = "unchanged"


UNCHANGED = Unchanged.UNCHANGED


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The field arguments an ``*_update`` service was given: those not left UNCHANGED."""
    return {name: value for name, value in values.items() if value is not UNCHANGED}


class EncryptionKeyCensus(models.Model):
    """How many encrypted values each key id held when ``rotate_encryption_keys`` last counted them.

    The system check ``fusion_site.W001`` reads the newest census instead of scanning every table at
    each start-up (a full count reads every encrypted column of every table, call records included).
    """

    counted_at = models.DateTimeField(auto_now_add=True, db_index=True)
    primary_key_id = models.CharField(max_length=8)
    counts = models.JSONField(default=dict, help_text="key id -> number of values under it")

    class Meta:
        ordering = ["-counted_at", "-id"]

    def __str__(self) -> str:
        return f"key census {self.counted_at:%Y-%m-%d %H:%M}"

    @property
    def values_under_old_keys(self) -> dict[str, int]:
        return {kid: n for kid, n in self.counts.items() if kid != self.primary_key_id and n}
