"""The tamper-evident audit trail: ``audit_record`` appends an event, ``verify_chain`` checks them all.

Any app may call ``audit_record(actor=..., action=..., target=..., detail=...)``: ``action`` is a dotted
code (``auth.login``, ``customer.processing_restricted``, ``bill_run.finalised``), ``target`` the model
instance acted on (or None), ``detail`` a small JSON-able dict of ids and codes (never personal data).
It joins the caller's transaction, so an event is kept exactly when the change it records is.
``audit_record_many`` appends several events by one actor under one lock of the chain head (a retention
chunk records one erasure per customer).

Writers serialise on the chain head row (``SELECT ... FOR UPDATE``); on SQLite, which has no row locks,
the database's single writer lock does the same job.
"""

import datetime
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from accounts import alerts
from accounts.models import AuditChainHead, AuditEvent, User

GENESIS_HASH = "0" * 64
# Exports are counted for the unusual-access alert: name every export action "export.<what>".
EXPORT_ACTION_PREFIX = "export."
VERIFY_CHUNK = 2000


def _actor_fields(actor: Any) -> tuple[int | None, str]:
    if actor is None or not getattr(actor, "pk", None):
        return None, "anonymous"
    if isinstance(actor, User):
        # A portal user is the customer's own person: named by id only, like everywhere staff look.
        return actor.pk, str(actor)
    return actor.pk, str(actor)


def _target_fields(target: models.Model | None) -> tuple[str, str]:
    if target is None:
        return "", ""
    return target._meta.label_lower, str(target.pk)


def canonical_serialisation(
    *,
    event_id: int,
    at: datetime.datetime,
    actor_id: int | None,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    detail: Any,
    previous_hash: str,
) -> bytes:
    """Sorted keys, no whitespace, UTC microsecond timestamps: the same event always gives the same
    bytes, whichever database stored it."""
    payload = {
        "id": event_id,
        "at": at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": actor_id,
        "actor_label": actor_label,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "detail": detail,
        "previous_hash": previous_hash,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(
        canonical_serialisation(
            event_id=event.pk,
            at=event.at,
            actor_id=event.actor_id,
            actor_label=event.actor_label,
            action=event.action,
            target_type=event.target_type,
            target_id=event.target_id,
            detail=event.detail,
            previous_hash=event.previous_hash,
        )
    ).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One event to append: a dotted ``action``, the instance acted on, and ids and codes (no personal
    data) in ``detail``."""

    action: str
    target: models.Model | None = None
    detail: dict[str, Any] | None = None


@transaction.atomic
def audit_record(
    *, actor: Any, action: str, target: models.Model | None = None, detail: dict[str, Any] | None = None
) -> AuditEvent:
    """Append one event to the chain."""
    return audit_record_many(actor=actor, entries=[AuditEntry(action, target, detail)])[0]


@transaction.atomic
def audit_record_many(*, actor: Any, entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append events by ``actor`` in the order given, with a fixed number of queries however many: the
    head is locked once, each event hashes the one before it exactly as if appended alone, and they are
    inserted together."""
    if not entries:
        return []
    AuditChainHead.objects.get_or_create(pk=1)
    head = AuditChainHead.objects.select_for_update().get(pk=1)
    actor_id, actor_label = _actor_fields(actor)
    at = timezone.now()
    events: list[AuditEvent] = []
    last_id, last_hash = head.last_event_id, head.last_hash
    for entry in entries:
        target_type, target_id = _target_fields(entry.target)
        event = AuditEvent(
            id=last_id + 1,
            at=at,
            actor_id=actor_id,
            actor_label=actor_label[:254],
            action=entry.action,
            target_type=target_type,
            target_id=target_id,
            # Through JSON first, so what is hashed is exactly what the database hands back.
            detail=json.loads(json.dumps(entry.detail or {}, sort_keys=True, default=str)),
            previous_hash=last_hash,
        )
        event.hash = event_hash(event)
        events.append(event)
        last_id, last_hash = event.pk, event.hash
    AuditEvent.objects.bulk_create(events)
    head.last_event_id = last_id
    head.last_hash = last_hash
    head.save(update_fields=["last_event_id", "last_hash"])
    if isinstance(actor, User) and any(entry.action.startswith(EXPORT_ACTION_PREFIX) for entry in entries):
        alerts.check_export_volume(user=actor)
    return events


@dataclass(frozen=True)
class ChainProblem:
    event_id: int
    problem: str

    def __str__(self) -> str:
        return f"event {self.event_id}: {self.problem}"


def _events() -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        chunk = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:VERIFY_CHUNK])
        if not chunk:
            return
        yield from chunk
        last_id = chunk[-1].pk


def verify_chain() -> tuple[int, list[ChainProblem]]:
    """Recompute every hash and link; returns (events checked, problems). Reads in chunks by id."""
    problems: list[ChainProblem] = []
    expected_id = 1
    previous_hash = GENESIS_HASH
    checked = 0
    for event in _events():
        checked += 1
        if event.pk != expected_id:
            missing = f"{expected_id}" if event.pk == expected_id + 1 else f"{expected_id} to {event.pk - 1}"
            problems.append(ChainProblem(expected_id, f"deleted (events {missing} are missing)"))
        elif event.previous_hash != previous_hash:
            problems.append(ChainProblem(event.pk, "does not link to the event before it"))
        if event_hash(event) != event.hash:
            problems.append(ChainProblem(event.pk, "edited (its content no longer matches its hash)"))
        expected_id = event.pk + 1
        previous_hash = event.hash
    head = AuditChainHead.objects.filter(pk=1).first()
    last_id, last_hash = (head.last_event_id, head.last_hash) if head else (0, GENESIS_HASH)
    if last_id >= expected_id:
        missing = f"{expected_id}" if last_id == expected_id else f"{expected_id} to {last_id}"
        problems.append(ChainProblem(expected_id, f"deleted (events {missing} are missing at the end)"))
    elif last_id == expected_id - 1 and last_hash != previous_hash:
        problems.append(ChainProblem(last_id, "edited (the chain head records another hash)"))
    return checked, problems
