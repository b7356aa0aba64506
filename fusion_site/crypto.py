"""Encryption at rest: a Fernet key ring and HMAC blind indexes.

Ciphertext is stored as ``enc1$<key id>$<Fernet token>``. The key id (the first 8 hex digits of the
SHA-256 of the key) lets rotation count which values are still under an old key. The first key of
``FIELD_ENCRYPTION_KEYS`` encrypts; every key decrypts. A value under an unknown key, a token that does
not verify, or a value that is not ciphertext at all raises ``DecryptionError``: ciphertext is never
handed back as if it were data.
"""

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

CIPHERTEXT_PREFIX = "enc1"
_SEPARATOR = "$"


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key."""


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    primary_id: str
    fernets: dict[str, Fernet]

    def encrypt(self, plaintext: str) -> str:
        token = self.fernets[self.primary_id].encrypt(plaintext.encode()).decode()
        return _SEPARATOR.join((CIPHERTEXT_PREFIX, self.primary_id, token))

    def decrypt(self, stored: str) -> str:
        _prefix, kid, token = split_ciphertext(stored)
        fernet = self.fernets.get(kid)
        if fernet is None:
            raise DecryptionError(f"Value is encrypted under key {kid}, which is not configured.")
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionError(f"Value under key {kid} failed verification.") from exc


def split_ciphertext(stored: str) -> tuple[str, str, str]:
    parts = stored.split(_SEPARATOR, 2)
    if len(parts) != 3 or parts[0] != CIPHERTEXT_PREFIX:
        raise DecryptionError("Stored value is not ciphertext.")
    return parts[0], parts[1], parts[2]


@lru_cache(maxsize=8)
def _build_keyring(keys: tuple[str, ...]) -> KeyRing:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: no key to encrypt personal data with.")
    fernets: dict[str, Fernet] = {}
    for key in keys:
        try:
            fernets[key_id(key)] = Fernet(key.encode())
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS holds a key ({key_id(key)}) that is not a Fernet key."
            ) from exc
    return KeyRing(primary_id=key_id(keys[0]), fernets=fernets)


def keyring() -> KeyRing:
    keys: Sequence[str] = settings.FIELD_ENCRYPTION_KEYS
    return _build_keyring(tuple(key.strip() for key in keys if key.strip()))


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext)


def decrypt(stored: str) -> str:
    return keyring().decrypt(stored)


def blind_index(purpose: str, normalised_value: str) -> str:
    """HMAC-SHA256 of an already normalised value, separated by purpose so equal values in
    different roles (a phone number and a line's CLI, say) still give unrelated digests."""
    key: str = settings.BLIND_INDEX_KEY
    if not key:
        raise ImproperlyConfigured("BLIND_INDEX_KEY is not set.")
    message = f"{purpose}:{normalised_value}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
