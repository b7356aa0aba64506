"""Key the audit chain: each event records the id of the HMAC key that signed it.

Events recorded before this migration were hashed with plain SHA-256, which anyone who can write to
the database can recompute. They are not kept as a legacy kind that verification would accept (a
forger would simply write legacy events): instead their unkeyed chain is checked here, event by event
and against the head row, and only if it is intact is every event re-signed with the newest key of
``AUDIT_HMAC_KEYS``, its links recomputed, and the head moved to the new last hash. A broken unkeyed
chain stops the migration, naming the event, for the DPO to investigate first (``verify_audit_chain``
on the previous release lists every problem).

Reversing does the opposite: checks the keyed chain and re-hashes it with plain SHA-256.

The serialisation is frozen here (a copy of ``accounts.audit.canonical_serialisation`` as it is now),
so a later change there cannot change what this migration did.
"""

import datetime
import hashlib
import hmac
import json

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import migrations, models

GENESIS_HASH = "0" * 64
CHUNK = 2000


def _serialise(event, previous_hash):
    payload = {
        "id": event.pk,
        "at": event.at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "detail": event.detail,
        "previous_hash": previous_hash,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _unkeyed(message, _kid):
    return hashlib.sha256(message).hexdigest()


def _keys():
    keys = [key.strip() for key in settings.AUDIT_HMAC_KEYS if key.strip()]
    if not keys:
        raise ImproperlyConfigured("AUDIT_HMAC_KEYS must be set to sign the existing audit events.")
    return {hashlib.sha256(key.encode()).hexdigest()[:8]: key.encode() for key in keys}


def _keyed(keys):
    def sign(message, kid):
        if kid not in keys:
            raise ImproperlyConfigured(f"Audit event signed with key {kid}, which is not configured.")
        return hmac.new(keys[kid], message, hashlib.sha256).hexdigest()

    return sign


def _resign(apps, *, check, sign, new_key_id):
    """Walk the chain by id, checking each event with ``check`` and rewriting it with ``sign``."""
    AuditEvent = apps.get_model("accounts", "AuditEvent")
    AuditChainHead = apps.get_model("accounts", "AuditChainHead")
    old_previous, new_previous, expected_id = GENESIS_HASH, GENESIS_HASH, 1
    while chunk := list(AuditEvent.objects.filter(id__gte=expected_id).order_by("id")[:CHUNK]):
        for event in chunk:
            if event.pk != expected_id:
                raise RuntimeError(f"Audit event {expected_id} is missing: investigate before migrating.")
            if event.previous_hash != old_previous:
                raise RuntimeError(f"Audit event {event.pk} does not link to the one before: investigate first.")
            if check(_serialise(event, event.previous_hash), event.key_id) != event.hash:
                raise RuntimeError(f"Audit event {event.pk} was edited: investigate before migrating.")
            old_previous = event.hash
            event.previous_hash = new_previous
            event.key_id = new_key_id
            event.hash = sign(_serialise(event, new_previous), new_key_id)
            new_previous = event.hash
            expected_id += 1
        AuditEvent.objects.bulk_update(chunk, ["previous_hash", "hash", "key_id"])
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None:
        return
    if (head.last_event_id, head.last_hash) != (expected_id - 1, old_previous):
        raise RuntimeError("The audit chain head does not match the last event: investigate before migrating.")
    head.last_hash = new_previous
    head.save(update_fields=["last_hash"])


def sign_existing_events(apps, schema_editor):
    if not apps.get_model("accounts", "AuditEvent").objects.exists():
        return
    keys = _keys()
    _resign(apps, check=_unkeyed, sign=_keyed(keys), new_key_id=next(iter(keys)))


def unsign_events(apps, schema_editor):
    if not apps.get_model("accounts", "AuditEvent").objects.exists():
        return
    _resign(apps, check=_keyed(_keys()), sign=_unkeyed, new_key_id="")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_security_role_permissions"),
    ]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(default="", max_length=16),
            preserve_default=False,
        ),
        migrations.RunPython(sign_existing_events, unsign_events),
    ]
