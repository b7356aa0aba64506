"""The audit trail's HMAC key ring (``AUDIT_HMAC_KEYS``): the first key signs, every key verifies.

Keys live only in the environment (or, in development, the generated ``.local/keys.env``), never in
the database: someone who can write to the database but cannot read the servers' environment cannot
sign a forged event. Each event stores the id of the key that signed it (the first 8 hex digits of the
key's SHA-256, as for the encryption keys), so after a rotation the events signed with an older key
still verify for as long as that key stays configured.

Rotation: put the new key first, keep the old ones after it, deploy. Nothing is re-signed (re-signing a
trail is exactly what a forger does); an old key stays configured for as long as the events and
checkpoints it signed must verify. A retired key cannot sign anything new: verification names an event
signed with an older key than an event before it.
"""

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from fusion_site.crypto import key_id

# Shorter keys would be guessable offline from any signed event.
MINIMUM_KEY_LENGTH = 32


class UnknownAuditKeyError(Exception):
    def __init__(self, kid: str) -> None:
        super().__init__(f"Audit key {kid} is not configured.")
        self.key_id = kid


@dataclass(frozen=True)
class AuditKeyRing:
    signing_id: str
    keys: dict[str, bytes]  # newest first, as configured

    def age(self, kid: str) -> int:
        """0 for the newest key, 1 for the one before, ...: a chain only ever moves to newer keys."""
        return list(self.keys).index(kid)

    def sign(self, message: bytes, kid: str | None = None) -> str:
        # Only None means the newest key: an empty key id (an event from before the keys) is unknown.
        kid = self.signing_id if kid is None else kid
        if kid not in self.keys:
            raise UnknownAuditKeyError(kid)
        return hmac.new(self.keys[kid], message, hashlib.sha256).hexdigest()

    def verifies(self, message: bytes, kid: str, signature: str) -> bool:
        """Raises UnknownAuditKeyError for a key id that is not configured."""
        return hmac.compare_digest(self.sign(message, kid), signature)


def _build(keys: Sequence[str]) -> AuditKeyRing:
    keys = [key.strip() for key in keys if key.strip()]
    if not keys:
        raise ImproperlyConfigured("AUDIT_HMAC_KEYS is empty: no key to sign the audit trail with.")
    short = [key_id(key) for key in keys if len(key) < MINIMUM_KEY_LENGTH]
    if short:
        raise ImproperlyConfigured(
            f"AUDIT_HMAC_KEYS holds keys shorter than {MINIMUM_KEY_LENGTH} characters: {', '.join(short)}."
        )
    return AuditKeyRing(signing_id=key_id(keys[0]), keys={key_id(key): key.encode() for key in keys})


_last_configured: list[tuple[Sequence[str], AuditKeyRing]] = []


def keyring() -> AuditKeyRing:
    configured: Sequence[str] = settings.AUDIT_HMAC_KEYS
    # Rebuilt whenever the setting is another object, so overridden settings (tests, rotation) count at once.
    if _last_configured and _last_configured[0][0] is configured:
        return _last_configured[0][1]
    ring = _build(configured)
    _last_configured[:] = [(configured, ring)]
    return ring


def check_audit_keys() -> None:
    """The readiness check (fusion_site.health): the trail can be signed and verified with the keys."""
    ring = keyring()
    probe = b"readiness probe"
    if not ring.verifies(probe, ring.signing_id, ring.sign(probe)):
        raise ImproperlyConfigured("The audit key ring does not verify its own signature.")
