"""The grant tally (accounts.models.GrantTally) and, on PostgreSQL, the triggers that keep it.

Each grant table gets one statement-level trigger per kind of change, reading the changed rows from the
statement's transition tables, so a bulk insert or a cascade of deletes updates each holder's row once.
The rows are updated in (holder, permission) order so that two statements lock them in the same order.
Existing grants are counted into the tally once, here."""

from django.db import migrations, models

GRANT_TABLES = (
    ("group", "accounts_customergroupobjectpermission", "group_id"),
    ("user", "accounts_customeruserobjectpermission", "user_id"),
)

UPSERT = (
    "INSERT INTO accounts_granttally AS tally (holder, holder_id, permission_id, grants)"
    " SELECT '{holder}', {column}, permission_id, {sign}COUNT(*) FROM {rows}"
    " GROUP BY {column}, permission_id ORDER BY {column}, permission_id"
    " ON CONFLICT (holder, holder_id, permission_id) DO UPDATE SET grants = tally.grants + EXCLUDED.grants;"
)

FUNCTION = """
CREATE FUNCTION accounts_tally_{holder}_grants() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM accounts_granttally WHERE holder = '{holder}';
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        {removed}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {added}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER accounts_tally_insert AFTER INSERT ON {table}
    REFERENCING NEW TABLE AS added_grants
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_tally_{holder}_grants();
CREATE TRIGGER accounts_tally_update AFTER UPDATE ON {table}
    REFERENCING OLD TABLE AS removed_grants NEW TABLE AS added_grants
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_tally_{holder}_grants();
CREATE TRIGGER accounts_tally_delete AFTER DELETE ON {table}
    REFERENCING OLD TABLE AS removed_grants
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_tally_{holder}_grants();
CREATE TRIGGER accounts_tally_truncate AFTER TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION accounts_tally_{holder}_grants();
"""

FILL = (
    "INSERT INTO accounts_granttally (holder, holder_id, permission_id, grants)"
    " SELECT '{holder}', {column}, permission_id, COUNT(*) FROM {table} GROUP BY {column}, permission_id"
)

DROP = "DROP FUNCTION accounts_tally_{holder}_grants() CASCADE"  # with its triggers


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for holder, table, column in GRANT_TABLES:
        removed = UPSERT.format(holder=holder, column=column, sign="-", rows="removed_grants")
        added = UPSERT.format(holder=holder, column=column, sign="", rows="added_grants")
        schema_editor.execute(FUNCTION.format(holder=holder, table=table, removed=removed, added=added))
        schema_editor.execute(FILL.format(holder=holder, table=table, column=column))


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for holder, _table, _column in GRANT_TABLES:
        schema_editor.execute(DROP.format(holder=holder))


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0014_access_log_breach_review"),
    ]

    operations = [
        migrations.CreateModel(
            name="GrantTally",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("holder", models.CharField(choices=[("group", "group"), ("user", "user")], max_length=5)),
                ("holder_id", models.IntegerField()),
                ("permission_id", models.IntegerField()),
                ("grants", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("holder", "holder_id", "permission_id"), name="grant_tally_unique"
                    )
                ],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
