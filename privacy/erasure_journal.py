"""The erasure journal: a signed file per completed erasure, kept outside the database
(``ERASURE_JOURNAL_DIR``), so that a database restored from a backup can have the erasures done since
the backup applied again (``manage.py reapply_erasures``) instead of bringing erased customers back.

An entry holds no personal data: the erasure record's id, the customer's id, the time of the erasure and
the privacy request's reference (``DSR-…``, a number of ours), signed with the audit trail's HMAC key
(``accounts.audit_keys``). The signature is what lets the re-applying command trust an entry: someone who
can write the directory but holds no key cannot make it erase a customer.

The files are written as the audit checkpoints are, by ``accounts.signed_files``: created under a
temporary dot-name, synced, made read-only (0440), then linked to their final name, which fails rather
than replace an existing entry; nothing here deletes or rewrites one. The directory belongs to the jobs
user (mode 0700): entries are written by a task once the erasure commits (``privacy.tasks``), not by the
web process, and the hourly reconciliation writes any entry a lost task left out, from the database's
``ErasureRecord`` rows.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

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

FORMAT = "fusion-erasure-journal/1"
DEFAULT_DIRECTORY_NAME = "erasure-journal"
_PATTERN = "erasure-*.json"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_FILENAME_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def journal_directory() -> Path:
    """``ERASURE_JOURNAL_DIR``, or (unset, in development and tests) a folder beside the audit checkpoints."""
    configured = getattr(settings, "ERASURE_JOURNAL_DIR", None)
    if configured:
        return Path(configured)
    return Path(settings.AUDIT_CHECKPOINT_DIR).parent / DEFAULT_DIRECTORY_NAME


@dataclass(frozen=True)
class JournalEntry:
    """One completed erasure: which record, which customer, when, under which request (if any)."""

    record_id: int
    customer_id: int
    erased_at: datetime.datetime
    request_reference: str = ""
    key_id: str = ""
    signature: str = ""

    @property
    def key(self) -> tuple[int, int, datetime.datetime]:
        """What identifies the erasure: a record id alone does not, since a restored database hands out
        the ids used after its backup again."""
        return (self.record_id, self.customer_id, self.erased_at)

    @property
    def filename(self) -> str:
        stamp = self.erased_at.astimezone(datetime.UTC).strftime(_FILENAME_TIME_FORMAT)
        return f"erasure-{stamp}-record-{self.record_id}.json"

    def signed_fields(self) -> dict[str, object]:
        return {
            "format": FORMAT,
            "record_id": self.record_id,
            "customer_id": self.customer_id,
            "erased_at": self.erased_at.astimezone(datetime.UTC).strftime(_TIME_FORMAT),
            "request_reference": self.request_reference,
            "key_id": self.key_id,
        }

    def to_json(self) -> str:
        return signed_json(self.signed_fields(), self.signature)


class JournalDirectoryError(Exception):
    """The journal directory is missing, unreadable, or open to writers other than its owner."""


class JournalFileError(Exception):
    """A file in the journal directory that is not an entry signed with a configured key."""

    def __init__(self, filename: str, problem: str) -> None:
        super().__init__(f"erasure journal file {filename}: {problem}")
        self.filename = filename


class JournalInvalidError(Exception):
    """Files in the journal that do not verify: the journal is not acted on until they are explained."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def journal_entry_sign(
    *, record_id: int, customer_id: int, erased_at: datetime.datetime, request_reference: str = ""
) -> JournalEntry:
    ring = keyring()
    unsigned = JournalEntry(
        record_id, customer_id, erased_at.astimezone(datetime.UTC), request_reference, ring.signing_id
    )
    return JournalEntry(
        unsigned.record_id,
        unsigned.customer_id,
        unsigned.erased_at,
        unsigned.request_reference,
        unsigned.key_id,
        signature=sign(unsigned.signed_fields()),
    )


def journal_write(*, directory: Path, entries: Iterable[JournalEntry]) -> list[Path]:
    """Write each entry as a new read-only file; an entry already there is left as it is (the task and the
    reconciliation may both write the same one). Returns the files written."""
    if not private_directory(directory):
        # Anyone else who may write here may also remove an entry, and an erased customer would come back
        # with the next restore.
        raise JournalDirectoryError(f"{directory} is writable by its group or others: make it 0700.")
    written = []
    for entry in entries:
        # The task and the reconciliation may both write the same entry: the first one stands.
        with contextlib.suppress(FileExistsError):
            written.append(write_once(directory, entry.filename, entry.to_json(), prefix="erasure"))
    if written:
        sync_directory(directory)
    return written


def _parse(path: Path) -> JournalEntry:
    try:
        text = path.read_text()
    except OSError as exc:
        raise JournalFileError(path.name, f"cannot be read ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JournalFileError(path.name, f"line {exc.lineno}: is not JSON ({exc.msg})") from exc
    try:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("format")
        entry = JournalEntry(
            record_id=int(data["record_id"]),
            customer_id=int(data["customer_id"]),
            erased_at=datetime.datetime.strptime(data["erased_at"], _TIME_FORMAT).replace(
                tzinfo=datetime.UTC
            ),
            request_reference=str(data["request_reference"]),
            key_id=str(data["key_id"]),
            signature=str(data["hmac"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise JournalFileError(path.name, "is not an erasure journal entry in the expected format") from exc
    if problem := signature_problem(entry.signed_fields(), entry.key_id, entry.signature):
        raise JournalFileError(path.name, problem)
    if entry.filename != path.name:
        # A signed entry copied or renamed: its name no longer says which erasure it is.
        raise JournalFileError(path.name, f"holds the entry of {entry.filename}")
    return entry


def journal_read(directory: Path, *, missing_ok: bool = False) -> tuple[list[JournalEntry], list[str]]:
    """Every entry in ``directory`` that verifies, oldest first, and a problem for each file that does
    not. A missing or unreadable directory raises JournalDirectoryError (unless ``missing_ok``, when a
    directory not made yet reads as empty)."""
    try:
        paths = matching_files(directory, _PATTERN)
    except FileNotFoundError as exc:
        if missing_ok:
            return [], []
        raise JournalDirectoryError(f"the erasure journal directory {directory} does not exist") from exc
    except OSError as exc:
        raise JournalDirectoryError(
            f"the erasure journal directory {directory} cannot be read ({exc.strerror})"
        ) from exc
    entries, problems = [], []
    for path in paths:
        try:
            entries.append(_parse(path))
        except JournalFileError as exc:
            problems.append(str(exc))
    entries.sort(key=lambda entry: (entry.erased_at, entry.record_id))
    return entries, problems
