"""Signed checkpoints of the audit chain's head, written outside the database (``AUDIT_CHECKPOINT_DIR``).

The HMAC keys stop someone who can only write to the database from forging events; a checkpoint also
stops someone who holds a key as well. Every night the head (last event id and hash) is written to a
new file, with the time and an HMAC under the newest audit key, and mailed to the DPO group. Verification
(``accounts.audit.verify_chain``) then names any checkpointed event whose hash has changed since, or that
has gone.

A checkpoint only helps if the database's writers cannot also rewrite it, so:

- files are created under a temporary name, synced, made read-only (0440), then linked to their final
  name, which fails rather than replace an existing checkpoint; nothing here ever deletes one;
- in production the directory belongs to the user the Celery worker and beat run as (mode 0700); the
  web process runs as another user, which can neither read nor write there.
"""

import datetime
import json
from dataclasses import dataclass
from pathlib import Path

from accounts.audit_keys import keyring
from accounts.signed_files import (
    matching_files,
    private_directory,
    sign,
    signature_problem,
    signed_json,
    sync_directory,
    write_once,
)

FORMAT = "fusion-audit-checkpoint/1"
_PATTERN = "checkpoint-*.json"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Checkpoint:
    last_event_id: int
    last_hash: str
    written_at: datetime.datetime
    key_id: str
    signature: str
    filename: str = ""

    @property
    def label(self) -> str:
        """How problems name it: when it was written, and its file."""
        return f"{self.written_at:%Y-%m-%d %H:%M} UTC ({self.filename})"

    def signed_fields(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "last_event_id": self.last_event_id,
            "last_hash": self.last_hash,
            "written_at": self.written_at.astimezone(datetime.UTC).strftime(_TIME_FORMAT),
            "key_id": self.key_id,
        }

    def to_json(self) -> str:
        return signed_json(self.signed_fields(), self.signature)


class CheckpointDirectoryError(Exception):
    """The checkpoint directory is open to writers other than its owner."""


class CheckpointFileError(Exception):
    """A file in the checkpoint directory that is not a checkpoint signed with a configured key."""

    def __init__(self, filename: str, problem: str) -> None:
        super().__init__(f"checkpoint file {filename}: {problem}")
        self.filename = filename


def checkpoint_sign(*, last_event_id: int, last_hash: str, at: datetime.datetime) -> Checkpoint:
    ring = keyring()
    at = at.astimezone(datetime.UTC)
    unsigned = Checkpoint(last_event_id, last_hash, at, ring.signing_id, signature="")
    stamp = at.strftime("%Y%m%dT%H%M%SZ")
    return Checkpoint(
        last_event_id,
        last_hash,
        at,
        ring.signing_id,
        signature=sign(unsigned.signed_fields()),
        filename=f"checkpoint-{stamp}-event-{last_event_id}.json",
    )


def checkpoint_write_file(*, directory: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` as a new read-only file; raises FileExistsError rather than replace one."""
    if not private_directory(directory):
        # Anyone else who may write here may also replace a checkpoint with one of their own making.
        raise CheckpointDirectoryError(f"{directory} is writable by its group or others: make it 0700.")
    final = write_once(directory, checkpoint.filename, checkpoint.to_json(), prefix="checkpoint")
    sync_directory(directory)
    return final


def _parse(path: Path) -> Checkpoint:
    try:
        data = json.loads(path.read_text())
        checkpoint = Checkpoint(
            last_event_id=int(data["last_event_id"]),
            last_hash=str(data["last_hash"]),
            written_at=datetime.datetime.strptime(data["written_at"], _TIME_FORMAT).replace(
                tzinfo=datetime.UTC
            ),
            key_id=str(data["key_id"]),
            signature=str(data["hmac"]),
            filename=path.name,
        )
        if data.get("format") != FORMAT:
            raise ValueError(data.get("format"))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointFileError(path.name, "is not a checkpoint in the expected format") from exc
    if problem := signature_problem(checkpoint.signed_fields(), checkpoint.key_id, checkpoint.signature):
        raise CheckpointFileError(path.name, problem)
    return checkpoint


def checkpoints_read(directory: Path) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint in ``directory`` that verifies, oldest first, and a problem for each file that
    does not (or for a directory that cannot be read). No directory yet: no checkpoints, no problem."""
    try:
        paths = matching_files(directory, _PATTERN)
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        return [], [f"the checkpoint directory {directory} cannot be read ({exc.strerror})"]
    checkpoints, problems = [], []
    for path in paths:
        try:
            checkpoints.append(_parse(path))
        except CheckpointFileError as exc:
            problems.append(str(exc))
        except OSError as exc:
            problems.append(f"checkpoint file {path.name}: cannot be read ({exc.strerror})")
    checkpoints.sort(key=lambda checkpoint: (checkpoint.written_at, checkpoint.last_event_id))
    return checkpoints, problems
