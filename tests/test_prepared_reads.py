"""Prepared reads (fusion_site.compiled_reads): on PostgreSQL each compiled read is PREPAREd once per
connection and sent as EXECUTE with its values, with the rows it returned before; a statement PostgreSQL
will not prepare is sent as it is, inside a transaction that goes on; DATABASE_PREPARED_READS=false
sends the SQL itself. The placeholders are numbered as psycopg reads them, left to right."""

import re

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from accounts.models import Customer, Site
from fusion_site.compiled_reads import CompiledRead, RowsRead, _numbered, statement_of
from tests.factories import CustomerFactory, SiteFactory

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL: reads are prepared only there"
)

SITES = CompiledRead(lambda pk: Site.objects.filter(customer_id=pk).order_by("id"))


def prepared_statements() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements")
        return dict(cursor.fetchall())


@on_postgresql
@pytest.mark.django_db
def test_a_read_is_prepared_once_on_the_connection_and_sent_as_execute_with_the_same_rows():
    customer = CustomerFactory()
    sites = [SiteFactory(customer=customer) for _ in range(3)]
    expected = [(site.pk, site.label, site.postcode) for site in sites]

    with CaptureQueriesContext(connection) as first:
        rows = SITES(customer.pk)
    with CaptureQueriesContext(connection) as second:
        again = SITES(customer.pk)

    assert [(site.pk, site.label, site.postcode) for site in rows] == expected
    assert [(site.pk, site.label, site.postcode) for site in again] == expected
    # The PREPARE is not one of the read's statements: one statement each time, an EXECUTE.
    assert len(first) == len(second) == 1
    (sent,) = [query["sql"] for query in second]
    name = re.match(r"EXECUTE (fusion_read_\d+)\(", sent)
    assert name is not None, sent
    compiled = SITES.queryset(customer.pk).query.sql_with_params()[0]
    assert statement_of(sent).startswith(compiled.partition("%s")[0])  # the log names the read's own SQL
    assert name[1] in prepared_statements()


@on_postgresql
@pytest.mark.django_db
def test_a_statement_postgresql_will_not_prepare_is_sent_as_it_is_and_the_transaction_goes_on(caplog):
    # A parameter of no type its place can give: PostgreSQL cannot prepare it, yet runs it with a literal.
    is_null = RowsRead(lambda connection: "SELECT %s IS NULL", arity=1)
    with transaction.atomic():
        customer = CustomerFactory()
        assert is_null("x") == [(False,)]
        assert is_null("y") == [(False,)]
        assert Customer.objects.filter(pk=customer.pk).exists()  # the transaction is usable
    assert "compiled read not prepared" in caplog.text
    assert not [sql for sql in prepared_statements().values() if "IS NULL" in sql]


@on_postgresql
@pytest.mark.django_db
def test_with_prepared_reads_off_the_sql_itself_is_sent(settings):
    settings.PREPARED_READS = False
    customer = CustomerFactory()
    site = SiteFactory(customer=customer)
    with CaptureQueriesContext(connection) as captured:
        assert [row.pk for row in SITES(customer.pk)] == [site.pk]
    (sent,) = [query["sql"] for query in captured]
    assert sent.startswith("SELECT") and 'FROM "accounts_site"' in sent


def _numbered_left_to_right(sql: str) -> str:
    """As psycopg reads a query with parameters: %% is a percent sign, %s the next placeholder."""
    count = 0
    out = []
    for token in re.findall(r"%%|%s|[^%]", sql, flags=re.S):
        if token == "%%":
            out.append("%")
        elif token == "%s":
            count += 1
            out.append(f"${count}")
        else:
            out.append(token)
    return "".join(out)


@given(st.lists(st.sampled_from(["%s", "%%", "s", "'", "$1", " LIKE '", "a", "\n", ";"]), max_size=30))
def test_placeholders_are_numbered_left_to_right_and_escaped_percents_kept(parts):
    sql = "".join(parts)
    assert _numbered(sql) == _numbered_left_to_right(sql)


@on_postgresql
@pytest.mark.django_db
def test_an_id_past_an_integer_columns_range_finds_no_row_prepared_as_unprepared():
    """A whole number is bound as a bigint: compared with an integer column, an id past its range finds
    nothing, as the SQL itself does, rather than failing as a parameter inferred as an integer would."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    devices = CompiledRead(lambda pk: TOTPDevice.objects.filter(id=pk))
    assert devices(1) == devices(1)
    assert devices(2**31 + 5) == []
