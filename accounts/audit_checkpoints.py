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
import fnmatch
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from accounts.audit_keys import UnknownAuditKeyError, keyring

FORMAT = "fusion-audit-checkpoint/1"
FILE_MODE = 0o440
DIRECTORY_MODE = 0o700
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

    def message(self) -> bytes:
        return json.dumps(self.signed_fields(), sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> str:
        return json.dumps({**self.signed_fields(), "hmac": self.signature}, sort_keys=True, indent=2) + "\n"


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
        signature=ring.sign(unsigned.message()),
        filename=f"checkpoint-{stamp}-event-{last_event_id}.json",
    )


def checkpoint_write_file(*, directory: Path, checkpoint: Checkpoint) -> Path:
    """Write ``checkpoint`` as a new read-only file; raises FileExistsError rather than replace one."""
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    if stat.S_IMODE(directory.stat().st_mode) & 0o022:
        # Anyone else who may write here may also replace a checkpoint with one of their own making.
        raise CheckpointDirectoryError(f"{directory} is writable by its group or others: make it 0700.")
    final = directory / checkpoint.filename
    # A dot-name: readers never mistake a half-written file for a checkpoint.
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".checkpoint-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(checkpoint.to_json())
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, FILE_MODE)
        # link(), unlike rename(), refuses an existing name: a checkpoint is never replaced.
        os.link(temporary, final)
    finally:
        os.unlink(temporary)
    directory_descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(directory_descriptor)
    finally:
        os.close(directory_descriptor)
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
    try:
        if not keyring().verifies(checkpoint.message(), checkpoint.key_id, checkpoint.signature):
            raise CheckpointFileError(path.name, "its signature does not verify (forged or corrupted)")
    except UnknownAuditKeyError as exc:
        raise CheckpointFileError(
            path.name, f"is signed with key {exc.key_id}, which is not configured"
        ) from exc
    return checkpoint


def checkpoints_read(directory: Path) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint in ``directory`` that verifies, oldest first, and a problem for each file that
    does not (or for a directory that cannot be read). No directory yet: no checkpoints, no problem."""
    try:
        # scandir, not glob: glob answers an unreadable directory with nothing, which would look clean.
        with os.scandir(directory) as entries:
            paths = sorted(Path(entry.path) for entry in entries if fnmatch.fnmatch(entry.name, _PATTERN))
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
