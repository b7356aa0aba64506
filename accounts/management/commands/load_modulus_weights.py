"""Install a newly published Vocalink modulus weight table (VALACDOS.txt), and with it, if given, the
sorting code substitution table (SCSUBTAB.txt). Both are validated first; a bad file is refused naming
its line and the version in use stays. Without a path, says which version is in use."""

import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts import modulus, validation
from accounts.audit import audit_record
from accounts.services import system_user

# Vocalink names its files by version, e.g. valacdos-v8-50.txt or valacdos-v850.txt.
_VERSION_IN_NAME = re.compile(r"v(\d+)[-_.](\d{2})\b|v(\d)(\d{2})\b", re.IGNORECASE)


class Command(BaseCommand):
    help = (
        "Validate and install Vocalink's modulus weight table (and optionally the sorting code "
        "substitution table) as the version in use; with no path, show the version in use."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("weights", nargs="?", type=Path, help="The published VALACDOS text file.")
        parser.add_argument(
            "--substitutions", type=Path, help="The SCSUBTAB text file published with it (else kept)."
        )
        parser.add_argument(
            "--table-version",
            dest="table_version",
            help="Vocalink's version of the files, e.g. 8.50 (else read from the file name).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        directory = validation.modulus_data_dir()
        if options["weights"] is None:
            self._show(directory)
            return
        weights_path = Path(options["weights"])
        version = options["table_version"] or _version_from_name(weights_path.name)
        substitutions_path = Path(options["substitutions"]) if options["substitutions"] else None
        try:
            tables = modulus.install(
                directory,
                version=version,
                weights=_read(weights_path),
                substitutions=_read(substitutions_path) if substitutions_path else None,
                installed_at=timezone.now().isoformat(),
                source=weights_path.name,
            )
        except modulus.TableError as exc:
            raise CommandError(f"{weights_path.name}: {exc}. The version in use is unchanged.") from exc
        audit_record(
            actor=system_user(job="modulus-weights"),
            action="modulus.weights_installed",
            detail={"version": tables.version, "rows": len(tables.rows), "file": weights_path.name},
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Modulus weight table {tables.version} installed: {len(tables.rows)} rows, "
                f"{len(tables.substitutions)} sort code substitutions."
            )
        )

    def _show(self, directory: Path) -> None:
        manifest = modulus.installed_manifest(directory)
        self.stdout.write(
            f"Modulus weight table in use: version {manifest['version']}, {manifest['rows']} rows, "
            f"installed {manifest['installed_at']} from {manifest['source']}."
        )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}.") from exc


def _version_from_name(name: str) -> str:
    found = _VERSION_IN_NAME.search(name)
    if not found:
        raise CommandError(f"No version in the file name {name!r}: give it with --table-version, e.g. 8.50.")
    major, minor = (found.group(1), found.group(2)) if found.group(1) else (found.group(3), found.group(4))
    return f"{int(major)}.{minor}"
