"""Re-encrypt every encrypted value under the newest key (the first of FIELD_ENCRYPTION_KEYS).

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS, keep the old ones after it, deploy, run this
command (safe to interrupt and rerun), and remove an old key only once the report shows none of its
values left.
"""

from typing import Any, TextIO, cast

from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from fusion_site import crypto, key_rotation


class Command(BaseCommand):
    help = "Re-encrypt all encrypted fields (history tables included) under the newest key; resumable."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--chunk-size", type=int, default=key_rotation.DEFAULT_CHUNK_SIZE)
        parser.add_argument("--count-only", action="store_true", help="Only count values per key id.")

    def handle(self, *args: Any, **options: Any) -> None:
        primary_id = crypto.keyring().primary_id
        if not options["count_only"]:
            self.stdout.write(f"Re-encrypting under key {primary_id}.")
            for table in key_rotation.encrypted_tables():
                remaining = key_rotation.stale_count(table, primary_id)
                if not remaining:
                    continue
                with tqdm(
                    total=remaining, desc=table.label, unit="row", file=cast(TextIO, self.stderr._out)
                ) as bar:
                    rewritten = key_rotation.rotate_table(
                        table, chunk_size=options["chunk_size"], on_chunk=bar.update
                    )
                self.stdout.write(f"  {table.label}: {rewritten} rows re-encrypted")
        census = key_rotation.take_census()
        self.stdout.write("Values per key id:")
        for kid, number in census.counts.items():
            marker = " (newest)" if kid == primary_id else ""
            self.stdout.write(f"  {kid}{marker}: {number}")
        old = census.values_under_old_keys
        if old:
            self.stdout.write(self.style.WARNING(f"{sum(old.values())} values remain under older keys."))
        else:
            self.stdout.write(self.style.SUCCESS("Every value is under the newest key."))
