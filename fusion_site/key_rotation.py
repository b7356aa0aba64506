"""Re-encrypt every encrypted value under the newest key, resumably, and count values per key id.

Every concrete model with an ``EncryptedTextField`` (``BulkEncryptedTextField`` included) is covered,
whichever app defines it, and so are their simple-history tables, which use the same field types.
Rows still needing work are found in SQL by their ciphertext prefix (``enc1$<kid>$`` / ``enc2$<kid>$``),
so a rerun after an interruption skips everything already under the newest key. Each chunk is one
transaction: the rows are read (decrypting under whatever key they carry) and written back with one
``bulk_update`` (one UPDATE ... CASE statement), which encrypts under the newest key.
"""

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.apps import apps
from django.db import connection, models, transaction

from fusion_site import crypto
from fusion_site.fields import encrypted_fields
from fusion_site.models import EncryptionKeyCensus

DEFAULT_CHUNK_SIZE = 500


@dataclass(frozen=True)
class EncryptedTable:
    model: type[models.Model]
    fields: tuple[str, ...]

    @property
    def label(self) -> str:
        return self.model._meta.label

    def columns(self) -> list[str]:
        return [str(self.model._meta.get_field(name).column) for name in self.fields]  # type: ignore[union-attr]


def encrypted_tables() -> list[EncryptedTable]:
    tables = []
    for model in apps.get_models():
        if model._meta.proxy or not model._meta.managed:
            continue
        fields = encrypted_fields(model)
        if fields:
            tables.append(EncryptedTable(model, tuple(field.name for field in fields)))
    return sorted(tables, key=lambda table: table.label)


def _stale_condition(columns: list[str], primary_id: str) -> tuple[str, list[str]]:
    quote = connection.ops.quote_name
    parts, params = [], []
    for column in columns:
        parts.append(
            f"({quote(column)} IS NOT NULL AND {quote(column)} NOT LIKE %s AND {quote(column)} NOT LIKE %s)"
        )
        params += [
            f"{crypto.CIPHERTEXT_PREFIX}${primary_id}$%",
            f"{crypto.BULK_CIPHERTEXT_PREFIX}${primary_id}$%",
        ]
    return " OR ".join(parts), params


def _stale_pks(table: EncryptedTable, primary_id: str, after: int, limit: int) -> list[int]:
    quote = connection.ops.quote_name
    pk_column = str(table.model._meta.pk.column)
    condition, params = _stale_condition(table.columns(), primary_id)
    sql = (
        f"SELECT {quote(pk_column)} FROM {quote(table.model._meta.db_table)} "  # noqa: S608 - quoted names
        f"WHERE {quote(pk_column)} > %s AND ({condition}) ORDER BY {quote(pk_column)} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [after, *params, limit])
        return [row[0] for row in cursor.fetchall()]


def stale_count(table: EncryptedTable, primary_id: str) -> int:
    quote = connection.ops.quote_name
    condition, params = _stale_condition(table.columns(), primary_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {quote(table.model._meta.db_table)} WHERE {condition}",  # noqa: S608
            params,
        )
        return int(cursor.fetchone()[0])


def _rotate_chunk(table: EncryptedTable, pks: list[int]) -> int:
    with transaction.atomic():
        manager = table.model._base_manager
        rows = list(manager.select_for_update().filter(pk__in=pks).only("pk", *table.fields))
        manager.bulk_update(rows, list(table.fields))
    return len(rows)


def rotate_table(
    table: EncryptedTable,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_chunk: Callable[[int], object] = lambda rows: None,
) -> int:
    """Re-encrypt the rows of one table that hold any value under an older key; returns rows rewritten."""
    primary_id = crypto.keyring().primary_id
    done = 0
    after = 0  # every encrypted table has an integer primary key (checked by the tests)
    while pks := _stale_pks(table, primary_id, after, chunk_size):
        done += _rotate_chunk(table, pks)
        after = pks[-1]
        on_chunk(len(pks))
    return done


def _key_ids(table: EncryptedTable) -> Iterator[tuple[str, int]]:
    quote = connection.ops.quote_name
    name = quote(table.model._meta.db_table)
    for column in table.columns():
        # 'enc1$' and 'enc2$' are both five characters: the key id is characters 6 to 13.
        sql = (
            f"SELECT SUBSTR({quote(column)}, 6, 8), COUNT(*) FROM {name} "  # noqa: S608 - quoted names
            f"WHERE {quote(column)} IS NOT NULL GROUP BY SUBSTR({quote(column)}, 6, 8)"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql)
            yield from cursor.fetchall()


def count_by_key_id() -> dict[str, int]:
    counts: Counter[str] = Counter()
    for table in encrypted_tables():
        for kid, number in _key_ids(table):
            counts[kid] += number
    return dict(sorted(counts.items()))


def take_census() -> EncryptionKeyCensus:
    return EncryptionKeyCensus.objects.create(
        primary_key_id=crypto.keyring().primary_id, counts=count_by_key_id()
    )
