"""Encryption at rest: a Fernet key ring and HMAC blind indexes.

Ciphertext is stored as ``enc1$<key id>$<Fernet token>``, or, for high-volume rows such as call records,
``enc2$<key id>$<base64 nonce+AES-GCM ciphertext>`` under a key derived from the same Fernet key
(AES-GCM is about six times faster per value, which a million call records a month
need). The key id (the first 8 hex digits of the
SHA-256 of the key) lets rotation count which values are still under an old key. The first key of
``FIELD_ENCRYPTION_KEYS`` encrypts; every key decrypts. A value under an unknown key, a token that does
not verify, or a value that is not ciphertext at all raises ``DecryptionError``: ciphertext is never
handed back as if it were data.
"""

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

CIPHERTEXT_PREFIX = "enc1"
BULK_CIPHERTEXT_PREFIX = "enc2"
_AEAD_INFO = b"fusion bulk field encryption v1"
_SEPARATOR = "$"


class DecryptionError(Exception):
    """A stored value could not be decrypted with any configured key."""


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    primary_id: str
    fernets: dict[str, Fernet]
    aeads: dict[str, AESGCM]

    def encrypt_bulk(self, plaintext: str) -> str:
        nonce = os.urandom(12)
        sealed = self.aeads[self.primary_id].encrypt(nonce, plaintext.encode(), None)
        token = base64.urlsafe_b64encode(nonce + sealed).decode()
        return _SEPARATOR.join((BULK_CIPHERTEXT_PREFIX, self.primary_id, token))

    def encrypt(self, plaintext: str) -> str:
        token = self.fernets[self.primary_id].encrypt(plaintext.encode()).decode()
        return _SEPARATOR.join((CIPHERTEXT_PREFIX, self.primary_id, token))

    def decrypt(self, stored: str) -> str:
        prefix, kid, token = split_ciphertext(stored)
        if kid not in self.fernets:
            raise DecryptionError(f"Value is encrypted under key {kid}, which is not configured.")
        try:
            if prefix == BULK_CIPHERTEXT_PREFIX:
                raw = base64.urlsafe_b64decode(token.encode())
                return self.aeads[kid].decrypt(raw[:12], raw[12:], None).decode()
            return self.fernets[kid].decrypt(token.encode()).decode()
        except (InvalidToken, InvalidTag, ValueError) as exc:
            raise DecryptionError(f"Value under key {kid} failed verification.") from exc


def split_ciphertext(stored: str) -> tuple[str, str, str]:
    parts = stored.split(_SEPARATOR, 2)
    if len(parts) != 3 or parts[0] not in (CIPHERTEXT_PREFIX, BULK_CIPHERTEXT_PREFIX):
        raise DecryptionError("Stored value is not ciphertext.")
    return parts[0], parts[1], parts[2]


@lru_cache(maxsize=8)
def _build_keyring(keys: tuple[str, ...]) -> KeyRing:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: no key to encrypt personal data with.")
    fernets: dict[str, Fernet] = {}
    aeads: dict[str, AESGCM] = {}
    for key in keys:
        try:
            fernets[key_id(key)] = Fernet(key.encode())
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS holds a key ({key_id(key)}) that is not a Fernet key."
            ) from exc
        derived = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=_AEAD_INFO).derive(
            base64.urlsafe_b64decode(key.encode())
        )
        aeads[key_id(key)] = AESGCM(derived)
    return KeyRing(primary_id=key_id(keys[0]), fernets=fernets, aeads=aeads)


_last_configured: list[tuple[Sequence[str], KeyRing]] = []


def keyring() -> KeyRing:
    keys: Sequence[str] = settings.FIELD_ENCRYPTION_KEYS
    # Called once per encrypted value (a million times per call import): reuse the ring while the
    # setting is the same object, so changed settings (tests, rotation) still take effect at once.
    if _last_configured and _last_configured[0][0] is keys:
        return _last_configured[0][1]
    ring = _build_keyring(tuple(key.strip() for key in keys if key.strip()))
    _last_configured[:] = [(keys, ring)]
    return ring


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext)


def encrypt_bulk(plaintext: str) -> str:
    return keyring().encrypt_bulk(plaintext)


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
