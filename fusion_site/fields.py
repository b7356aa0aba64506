"""Model fields that keep personal and payment data encrypted at rest."""

from typing import Any

from django.core.exceptions import FieldError
from django.db import models

from fusion_site import crypto


class EncryptedTextField(models.TextField):
    """Text stored as Fernet ciphertext (see fusion_site.crypto).

    Python code sees plaintext; the database (and every simple-history table, which copies this
    field type) sees only ciphertext. Only ``isnull`` can be queried: equality on ciphertext would
    silently never match, so searching goes through a blind-index column instead.
    """

    description = "Text encrypted at rest"
    encrypted = True
    _allowed_lookups = frozenset({"isnull"})

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None:
            return None
        return crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None:
            return None
        return crypto.encrypt(str(value))

    def get_lookup(self, lookup_name: str) -> Any:
        if lookup_name not in self._allowed_lookups:
            raise FieldError(
                f"{self.model.__name__}.{self.name} is encrypted; '{lookup_name}' cannot be queried. "
                "Search through its blind index instead."
            )
        return super().get_lookup(lookup_name)


class BulkEncryptedTextField(EncryptedTextField):
    """An EncryptedTextField for tables written a million rows at a time (call records): AES-GCM under
    a key derived from the same key ring, so rotation and decryption treat both alike."""

    description = "Text encrypted at rest (AES-GCM)"

    def get_prep_value(self, value: Any) -> Any:
        value = models.TextField.get_prep_value(self, value)
        if value is None:
            return None
        return crypto.encrypt_bulk(str(value))


def encrypted_fields(model: type[models.Model]) -> list[EncryptedTextField]:
    return [field for field in model._meta.concrete_fields if isinstance(field, EncryptedTextField)]
