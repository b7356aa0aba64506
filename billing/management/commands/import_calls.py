"""Import a CSV of call records for a partner, with a progress bar and every rejected line listed."""

from pathlib import Path
from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from accounts.models import Partner
from accounts.services import system_user
from billing.importer.parse import ImportFileError, text_stream
from billing.services.call_imports import call_import_run


class Command(BaseCommand):
    help = "Import call records (CSV: cli, dialled_number, start_time, duration, call_type, call_reference)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("partner", help="The partner's code.")
        parser.add_argument("csv_file", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        partner = Partner.objects.filter(code=options["partner"]).first()
        if partner is None:
            raise CommandError(f"No partner with code {options['partner']!r}.")
        path: Path = options["csv_file"]
        if not path.is_file():
            raise CommandError(f"No such file: {path}")
        total = sum(1 for _ in path.open("rb")) - 1
        with (
            path.open("rb") as raw,
            text_stream(raw) as stream,
            tqdm(
                total=max(total, 0), unit="line", desc="Importing", file=cast(TextIO, self.stderr._out)
            ) as bar,
        ):
            try:
                call_import = call_import_run(
                    partner=partner,
                    stream=stream,
                    file_name=path.name,
                    actor=system_user(job="call-import"),
                    progress=bar.update,
                )
            except ImportFileError as exc:
                raise CommandError(str(exc)) from exc
        for error in call_import.errors.all():
            self.stderr.write(f"line {error.line_number}: {error.reason}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Import #{call_import.pk}: {call_import.imported} imported, "
                f"{call_import.duplicates} already imported, {call_import.rejected} rejected, "
                f"{call_import.suspense} in suspense."
            )
        )
