"""Import an ARUDD or ADDACS report (XML) for the partner of the finance manager named, with a progress bar
and every item not applied listed."""

from pathlib import Path
from typing import Any, TextIO, cast

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from accounts.models import User
from billing.services.bacs_reports import bacs_report_import


class Command(BaseCommand):
    help = "Import a Bacs ARUDD or ADDACS report (XML) as the finance manager given by --user."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--user",
            required=True,
            help="E-mail of the finance manager importing it (their partner's report).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        actor = User.objects.filter(email__iexact=options["user"], is_active=True).first()
        if actor is None:
            raise CommandError(f"No active user {options['user']!r}.")
        bar = tqdm(unit="item", desc="Importing", file=cast(TextIO, self.stderr._out))

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        try:
            with bar:
                report_import = bacs_report_import(
                    data=path.read_bytes(), filename=path.name, actor=actor, progress=progress
                )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        except PermissionDenied as exc:
            raise CommandError(str(exc) or "This user may not import Bacs reports.") from exc
        for error in report_import.errors.all():
            self.stderr.write(str(error))
        self.stdout.write(
            self.style.SUCCESS(
                f"{report_import.kind} report {report_import.report_id} (import #{report_import.pk}): "
                f"{report_import.applied} applied, {report_import.already_applied} already applied, "
                f"{report_import.rejected} not applied."
            )
        )
