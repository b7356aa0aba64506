"""The tamper-evident audit trail: ``audit_record`` appends an event, ``verify_chain`` checks them all.

Any app may call ``audit_record(actor=..., action=..., target=..., detail=...)``: ``action`` is a dotted
code (``auth.login``, ``customer.processing_restricted``, ``bill_run.finalised``), ``target`` the model
instance acted on (or None), ``detail`` a small JSON-able dict of ids and codes (never personal data).
It joins the caller's transaction, so an event is kept exactly when the change it records is.
Once events are appended, ``events_recorded`` is sent (inside that transaction) to whoever subscribed:
the audit trail does not know its listeners, so it imports none of them (accounts.alerts connects from
``AccountsConfig.ready()``; an import-linter contract in pyproject.toml keeps it so).
``audit_record_many`` appends several events by one actor under one lock of the chain head (a retention
chunk records one erasure per customer).

Writers serialise on the chain head row (``SELECT ... FOR UPDATE``); on SQLite, which has no row locks,
the database's single writer lock does the same job.

Each event's hash is an HMAC-SHA256 under the newest key of ``AUDIT_HMAC_KEYS`` (``accounts.audit_keys``),
whose id the event keeps, so writing to the database is not enough to recompute a forged tail. Against
someone who also holds a key, ``audit_checkpoint_write`` signs the head into a file outside the database
every night (``accounts.audit_checkpoints``), and ``verify_chain`` checks the chain against every
checkpoint. Events recorded before the chain was keyed were re-signed, after their unkeyed chain was
checked intact, by migration ``accounts.0007_audit_key_id``: no unkeyed event is ever accepted.
"""

import datetime
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, models, transaction
from django.dispatch import Signal
from django.utils import timezone

from accounts.audit_checkpoints import Checkpoint, checkpoint_sign, checkpoint_write_file, checkpoints_read
from accounts.audit_keys import UnknownAuditKeyError, keyring
from accounts.models import AuditChainHead, AuditEvent, User
from fusion_site.bulk import insert_rows

GENESIS_HASH = "0" * 64
# Exports are counted for the unusual-access alert: name every export action "export.<what>".
EXPORT_ACTION_PREFIX = "export."
VERIFY_CHUNK = 2000

# Sent by ``audit_record_many`` after it appends events, inside the writer's transaction, with the keyword
# arguments ``actor`` (as given) and ``events`` (the AuditEvent rows, in order). A receiver that raises
# rolls the events back with the caller's change, as a direct call would.
events_recorded = Signal()


def _actor_fields(actor: Any) -> tuple[int | None, str]:
    if actor is None or not getattr(actor, "pk", None):
        return None, "anonymous"
    if isinstance(actor, User):
        # A portal user is the customer's own person: named by id only, like everywhere staff look.
        return actor.pk, str(actor)
    return actor.pk, str(actor)


def _target_fields(target: "models.Model | TargetRef | None") -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        return target
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
    """The HMAC of ``event`` under the key its ``key_id`` names (UnknownAuditKeyError if not configured)."""
    return keyring().sign(
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
        ),
        event.key_id,
    )


# A row named without loading it: its model's ``label_lower`` and its primary key, as text.
TargetRef = tuple[str, str]


@dataclass(frozen=True)
class AuditEntry:
    """One event to append: a dotted ``action``, the instance acted on (or a ``TargetRef`` naming a row
    written in SQL), and ids and codes (no personal data) in ``detail``."""

    action: str
    target: models.Model | TargetRef | None = None
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
    signing_id = keyring().signing_id
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
            key_id=signing_id,
        )
        event.hash = event_hash(event)
        events.append(event)
        last_id, last_hash = event.pk, event.hash
    _store(events)
    head.last_event_id = last_id
    head.last_hash = last_hash
    head.save(update_fields=["last_event_id", "last_hash"])
    events_recorded.send(sender=AuditEvent, actor=actor, events=events)
    return events


AUDIT_COLUMNS = (
    "id",
    "at",
    "actor_id",
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "detail",
    "previous_hash",
    "hash",
    "key_id",
)


def _store(events: list[AuditEvent]) -> None:
    """Insert the events as they were hashed, in database form (COPY on PostgreSQL): a ledger batch appends
    tens of thousands, and preparing each value through its field cost more than the insert."""
    adapt = connection.ops.adapt_datetimefield_value
    insert_rows(
        AuditEvent,
        AUDIT_COLUMNS,
        [
            (
                event.pk,
                adapt(event.at),
                event.actor_id,
                event.actor_label,
                event.action,
                event.target_type,
                event.target_id,
                json.dumps(event.detail, sort_keys=True),
                event.previous_hash,
                event.hash,
                event.key_id,
            )
            for event in events
        ],
    )
    for event in events:
        event._state.adding = False
        event._state.db = connection.alias


@dataclass(frozen=True)
class ChainProblem:
    """A problem with one event (``event_id``), or, without one, with a checkpoint file."""

    event_id: int | None
    problem: str

    def __str__(self) -> str:
        return self.problem if self.event_id is None else f"event {self.event_id}: {self.problem}"


def _events() -> Iterator[AuditEvent]:
    last_id = 0
    while True:
        chunk = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:VERIFY_CHUNK])
        if not chunk:
            return
        yield from chunk
        last_id = chunk[-1].pk


@dataclass
class _SignatureCheck:
    """Each event's HMAC under the key it names, and that keys only ever get newer along the chain (so a
    retired key, even if it leaked, cannot sign an event after the rotation)."""

    newest_age: int | None = None
    newest_by: int = 0

    def check(self, event: AuditEvent) -> str | None:
        ring = keyring()
        try:
            if event_hash(event) != event.hash:
                return "edited (its content no longer matches its hash)"
        except UnknownAuditKeyError:
            return f"signed with key {event.key_id or '(none)'}, which is not configured (unknown key id)"
        age = ring.age(event.key_id)
        if self.newest_age is not None and age > self.newest_age:
            return (
                f"signed with the retired key {event.key_id}, though event {self.newest_by} before it "
                "was signed with a newer key"
            )
        self.newest_age, self.newest_by = age, event.pk
        return None


@dataclass
class _CheckpointWitness:
    """The checkpoints, by the event each one records, and what the walk found of them."""

    by_event: dict[int, Checkpoint]
    last_matching_id: int = 0
    first_difference_reported: bool = False

    @classmethod
    def of(cls, checkpoints: list[Checkpoint]) -> "_CheckpointWitness":
        # Oldest first, so an event checkpointed on several nights is compared with the latest of them.
        return cls({checkpoint.last_event_id: checkpoint for checkpoint in checkpoints})

    def check(self, event: AuditEvent) -> str | None:
        checkpoint = self.by_event.get(event.pk)
        if checkpoint is None:
            return None
        if checkpoint.last_hash == event.hash:
            self.last_matching_id = event.pk
            return None
        problem = f"differs from the checkpoint of {checkpoint.label}"
        if not self.first_difference_reported:
            self.first_difference_reported = True
            problem += (
                f"; the events after {self.last_matching_id}, the last that matches a checkpoint, may have "
                "been rewritten"
                if self.last_matching_id
                else "; no checkpointed event before it matches"
            )
        return problem

    def beyond(self, last_event_id: int) -> ChainProblem | None:
        """The chain ends before the latest checkpointed event: its tail was cut, head row and all."""
        latest = max(self.by_event, default=0)
        if latest <= last_event_id:
            return None
        checkpoint = self.by_event[latest]
        return ChainProblem(
            latest,
            f"missing: the checkpoint of {checkpoint.label} records the chain up to this event, "
            f"but it now ends at event {last_event_id}",
        )


def verify_chain() -> tuple[int, list[ChainProblem]]:
    """Recompute every HMAC and link, and compare with the head row and every checkpoint; returns (events
    checked, problems). Reads in chunks by id; the head is read first, so events appended during the
    walk are checked but not mistaken for a head that moved."""
    head = AuditChainHead.objects.filter(pk=1).first()
    head_id, head_hash = (head.last_event_id, head.last_hash) if head else (0, GENESIS_HASH)
    checkpoints, checkpoint_problems = checkpoints_read(Path(settings.AUDIT_CHECKPOINT_DIR))
    witness = _CheckpointWitness.of(checkpoints)
    signatures = _SignatureCheck()
    problems = [ChainProblem(None, problem) for problem in checkpoint_problems]
    expected_id = 1
    previous_hash = GENESIS_HASH
    hash_at_head = GENESIS_HASH if head_id == 0 else None
    checked = 0
    for event in _events():
        checked += 1
        if event.pk != expected_id:
            missing = f"{expected_id}" if event.pk == expected_id + 1 else f"{expected_id} to {event.pk - 1}"
            problems.append(ChainProblem(expected_id, f"deleted (events {missing} are missing)"))
        elif event.previous_hash != previous_hash:
            problems.append(ChainProblem(event.pk, "does not link to the event before it"))
        for problem in (signatures.check(event), witness.check(event)):
            if problem:
                problems.append(ChainProblem(event.pk, problem))
        if event.pk == head_id:
            hash_at_head = event.hash
        expected_id = event.pk + 1
        previous_hash = event.hash
    last_id = expected_id - 1
    if head_id > last_id:
        missing = f"{expected_id}" if head_id == expected_id else f"{expected_id} to {head_id}"
        problems.append(ChainProblem(expected_id, f"deleted (events {missing} are missing at the end)"))
    elif hash_at_head is not None and hash_at_head != head_hash:
        problems.append(ChainProblem(head_id, "edited (the chain head records another hash)"))
    beyond = witness.beyond(last_id)
    if beyond:
        problems.append(beyond)
    return checked, problems


def audit_events_per_key_id() -> dict[str, int]:
    rows = AuditEvent.objects.order_by("key_id").values_list("key_id").annotate(events=models.Count("id"))
    return dict(rows)


def audit_checkpoint_write(*, actor: Any, now: datetime.datetime) -> tuple[Checkpoint, Path]:
    """Sign the chain's head as it stands into a new file in ``AUDIT_CHECKPOINT_DIR`` and record that in
    the trail. The head is signed whether or not the chain verifies: a checkpoint pins what is there
    now, and every event is still checked on its own HMAC, so a tampered event is not made to pass."""
    head, _ = AuditChainHead.objects.get_or_create(pk=1)
    checkpoint = checkpoint_sign(last_event_id=head.last_event_id, last_hash=head.last_hash, at=now)
    path = checkpoint_write_file(directory=Path(settings.AUDIT_CHECKPOINT_DIR), checkpoint=checkpoint)
    audit_record(
        actor=actor,
        action="audit.checkpoint_written",
        detail={"event": checkpoint.last_event_id, "file": checkpoint.filename, "key_id": checkpoint.key_id},
    )
    return checkpoint, path
