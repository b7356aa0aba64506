"""Files kept outside the database, each written once and signed with the audit keyring: the audit
checkpoints (``accounts.audit_checkpoints``) and the erasure journal (``privacy.erasure_journal``).

A file is created under a temporary dot-name (readers never mistake a half-written file for a real one),
synced, made read-only (0440), then linked to its final name: link(), unlike rename(), refuses an existing
name, so a file is never replaced. Nothing here deletes one. Its directory must be its owner's alone (0700):
anyone else who may write there may also remove or replace a file.
"""

import fnmatch
import json
import os
import stat
import tempfile
from pathlib import Path

from accounts.audit_keys import UnknownAuditKeyError, keyring

FILE_MODE = 0o440
DIRECTORY_MODE = 0o700


def canonical_message(fields: dict[str, object]) -> bytes:
    """What is signed: the fields as compact JSON with sorted keys."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def signed_json(fields: dict[str, object], signature: str) -> str:
    """The file's text: the fields and their HMAC."""
    return json.dumps({**fields, "hmac": signature}, sort_keys=True, indent=2) + "\n"


def sign(fields: dict[str, object]) -> str:
    return keyring().sign(canonical_message(fields))


def signature_problem(fields: dict[str, object], key_id: str, signature: str) -> str | None:
    """Why the signature does not hold (forged, corrupted, or under a key not configured), else None."""
    try:
        if keyring().verifies(canonical_message(fields), key_id, signature):
            return None
    except UnknownAuditKeyError as exc:
        return f"is signed with key {exc.key_id}, which is not configured"
    return "its signature does not verify (forged or corrupted)"


def private_directory(directory: Path) -> bool:
    """Made if missing (0700); False when its group or others may write to it."""
    directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    return not stat.S_IMODE(directory.stat().st_mode) & 0o022


def write_once(directory: Path, name: str, text: str, *, prefix: str) -> Path:
    """Write ``text`` as the new read-only file ``name``; raises FileExistsError rather than replace one.
    Call ``sync_directory`` after the last file of a batch, so their names survive a crash."""
    final = directory / name
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{prefix}-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, FILE_MODE)
        os.link(temporary, final)
    finally:
        os.unlink(temporary)
    return final


def sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def matching_files(directory: Path, pattern: str) -> list[Path]:
    """The files named like ``pattern``, sorted. Raises FileNotFoundError or OSError as the directory
    does: scandir, not glob, since glob answers an unreadable directory with nothing, which looks clean."""
    with os.scandir(directory) as found:
        return sorted(Path(item.path) for item in found if fnmatch.fnmatch(item.name, pattern))
