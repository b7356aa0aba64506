"""fusion_site.compiled_reads: a read compiled once returns what the ORM's own queryset returns."""

import datetime
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count, Window
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import selectors, services
from accounts.models import Contact, Line, ProvisioningOrder, Site
from fusion_site.compiled_reads import CompiledRead, RowsRead, read_together
from tests.factories import ContactFactory, CustomerFactory, LineFactory, SiteFactory, full_customer

pytestmark = pytest.mark.django_db

# Text as users type it and files bring it: any letters, marks and symbols, but no NUL (PostgreSQL's
# text refuses it) and no surrogates (not encodable).
text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40
)
dates = st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2099, 12, 31))

SITES = CompiledRead(lambda pk: Site.objects.filter(customer_id=pk).order_by("-id"))
LINES = CompiledRead(lambda pk: Line.objects.filter(customer_id=pk).order_by("site_id", "-start_date", "id"))
CONTACT_NAMES = CompiledRead(
    lambda pk: Contact.objects.filter(customer_id=pk).only("id", "name").order_by("id")
)


def _as_stored(instances):
    """Every loaded attribute of each instance, in order: what a read must agree on."""
    return [
        (
            type(row),
            {
                f.attname: row.__dict__[f.attname]
                for f in row._meta.concrete_fields
                if f.attname in row.__dict__
            },
        )
        for row in instances
    ]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    addresses=st.lists(st.tuples(text, text, text), min_size=0, max_size=4),
    lines=st.lists(st.tuples(dates, st.none() | dates, st.booleans()), min_size=0, max_size=5),
    names=st.lists(text, min_size=0, max_size=3),
)
def test_a_compiled_read_returns_what_the_orm_returns(addresses, lines, names):
    customer = CustomerFactory()
    sites = [
        SiteFactory(customer=customer, label=f"Site {n}", address_line1=line1, address_line2=line2, town=town)
        for n, (line1, line2, town) in enumerate(addresses)
    ]
    for n, (start, end, on_a_site) in enumerate(lines):
        LineFactory(
            customer=customer,
            start_date=start,
            end_date=max(start, end) if end else None,
            site=sites[n % len(sites)] if on_a_site and sites else None,
        )
    for name in names:
        ContactFactory(customer=customer, name=name)
    CustomerFactory()  # another customer's rows are never read
    SiteFactory()

    for read in (SITES, LINES, CONTACT_NAMES):
        expected = _as_stored(read.queryset(customer.pk))
        with CaptureQueriesContext(connection) as queries:
            got = _as_stored(read(customer.pk))
        assert got == expected
        assert len(queries) == 1
    # Decrypted on the way out, as the ORM's field does: the clear values, not their ciphertext.
    assert sorted(site.address_line1 for site in SITES(customer.pk)) == sorted(a[0] for a in addresses)
    assert [c.name for c in CONTACT_NAMES(customer.pk)] == names


# A values_list() read: a related model's column, an encrypted one, annotations before and after the
# columns are named (a window), and an order by a column the tuples do not hold.
SITE_TUPLES = CompiledRead(
    lambda pk: (
        Site.objects.filter(customer_id=pk)
        .annotate(line_count=Count("lines"))
        .order_by("-town", "id")
        .values_list("address_line1", "id", "line_count", "customer__partner__name", "customer__name")
        .annotate(sites=Window(Count("pk")))
    )
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    addresses=st.lists(st.tuples(text, text, st.integers(min_value=0, max_value=3)), min_size=0, max_size=4)
)
def test_a_values_list_read_returns_the_orms_tuples_alone_and_beside_other_reads(addresses):
    customer = CustomerFactory()
    for n, (line1, town, lines) in enumerate(addresses):
        site = SiteFactory(customer=customer, label=f"Site {n}", address_line1=line1, town=town)
        for _line in range(lines):
            LineFactory(customer=customer, site=site)
    SiteFactory()  # another customer's site is never read

    expected = list(SITE_TUPLES.queryset(customer.pk))
    with CaptureQueriesContext(connection) as queries:
        alone = SITE_TUPLES(customer.pk)
    together, sites = read_together((SITE_TUPLES, (customer.pk,)), (SITES, (customer.pk,)))

    assert alone == together == expected
    assert all(type(row) is tuple for row in alone)
    assert len(queries) == 1
    # Decrypted as the ORM's field decrypts: the clear values, in the ORM's order of the columns.
    assert sorted(row[0] for row in alone) == sorted(line1 for line1, _town, _lines in addresses)
    assert {row[4] for row in alone} <= {customer.name}
    assert sorted(row[1] for row in alone) == sorted(site.pk for site in sites)
    assert sorted(row[2] for row in alone) == sorted(lines for _line1, _town, lines in addresses)


def test_deferred_columns_are_loaded_on_first_use_as_the_orm_would():
    contact = ContactFactory(email="jane@example.com")

    (read,) = CONTACT_NAMES(contact.customer_id)

    assert read.get_deferred_fields() >= {"email", "phone"}
    assert read.email == "jane@example.com"


@pytest.mark.parametrize(
    ("build", "refusal"),
    [
        (lambda pk: Site.objects.filter(customer_id=pk)[: abs(pk) % 7 + 1], "changes the SQL"),
        (lambda pk: Site.objects.filter(customer_id=1), "every value must be a parameter"),
        (lambda pk: Site.objects.filter(customer_id=pk).values("id"), "queryset of model rows"),
        (
            lambda pk: Site.objects.filter(customer_id=pk).values_list("id", flat=True),
            "queryset of model rows",
        ),
        (
            lambda pk: Site.objects.filter(customer_id=pk).values_list("id", named=True),
            "queryset of model rows",
        ),
    ],
)
def test_a_read_whose_sql_is_not_its_values_away_from_its_rows_is_refused(build, refusal):
    with pytest.raises(ValueError, match=refusal):
        CompiledRead(build)(1)


def test_select_related_rows_and_constants_and_several_values_read_as_the_orm_reads_them():
    site = SiteFactory(label="Head office", town="Leeds")
    on_site = LineFactory(customer=site.customer, site=site)
    LineFactory(customer=site.customer)  # no site: its select_related row is None
    read = CompiledRead(
        lambda customer_id, site_id: (
            Line.objects.filter(customer_id=customer_id, cli_index__gt="")
            .exclude(site_id=site_id)
            .select_related("site", "customer__partner")
            .order_by("id")
        )
    )
    everything = CompiledRead(
        lambda pk: Line.objects.filter(customer_id=pk).select_related("site").order_by("id")
    )

    (other,) = read(site.customer_id, site.pk)
    lines = everything(site.customer_id)

    assert other.pk != on_site.pk and other.site is None
    assert other.customer.partner.name == site.customer.partner.name
    with CaptureQueriesContext(connection) as queries:
        assert [line.site.town if line.site else None for line in lines] == ["Leeds", None]
    assert len(queries) == 0
    assert _as_stored(lines) == _as_stored(everything.queryset(site.customer_id))
    with pytest.raises(TypeError):
        read(site.customer_id)


def test_site_details_rows_know_their_customer_and_orders_their_requester_without_more_queries(agent):
    customer = full_customer(partner=agent.partner, sites=2, lines=3, contacts=2)
    ordered = [
        services.provisioning_order_create(
            customer=customer, kind=ProvisioningOrder.Kind.PROVIDE, actor=agent
        )
        for _ in range(2)
    ]

    with CaptureQueriesContext(connection) as queries:
        rows = selectors.customer_site_details(customer)
    reads = len(queries)
    with CaptureQueriesContext(connection) as queries:
        assert all(
            row.customer is customer for row in [*rows.sites, *rows.contacts, *rows.lines, rows.payment]
        )
        assert [order.requested_by for order in rows.orders] == [agent, agent]
    assert len(queries) == 0
    # Sites, contacts, lines, orders, payment details and the orders' requesters: one round trip on
    # PostgreSQL, one query each elsewhere.
    assert reads == (1 if connection.vendor == "postgresql" else 6)
    assert [order.pk for order in rows.orders] == [order.pk for order in reversed(ordered)]
    assert [site.pk for site in rows.sites] == sorted(customer.sites.values_list("id", flat=True))
    assert [line.pk for line in rows.lines] == list(
        customer.lines.order_by("site_id", "id").values_list("id", flat=True)
    )


# Another shape with two values and a constant, to be sent beside the others.
OTHER_LINES = CompiledRead(
    lambda customer_id, site_id: (
        Line.objects.filter(customer_id=customer_id, cli_index__gt="")
        .exclude(site_id=site_id)
        .select_related("site")
        .order_by("id")
    )
)
# Values that would end or bend a statement if they were pasted into SQL rather than bound.
awkward = text | st.sampled_from(["x'; SELECT 1; --", "%s", "%%", "50%", ";", "$1", "\\", "'", '"'])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    towns=st.lists(awkward, min_size=0, max_size=4),
    names=st.lists(awkward, min_size=0, max_size=3),
    lines=st.integers(min_value=0, max_value=4),
)
def test_reads_sent_together_return_what_each_returns_alone_in_one_round_trip_on_postgresql(
    towns, names, lines
):
    customer, other = CustomerFactory(), CustomerFactory()
    sites = [SiteFactory(customer=customer, town=town) for town in towns]
    for n in range(lines):
        LineFactory(customer=customer, site=sites[n % len(sites)] if sites and n % 2 else None)
    for name in names:
        ContactFactory(customer=customer, name=name)
    SiteFactory(customer=other, town=";")
    reads: list[tuple[CompiledRead[Any], tuple[Any, ...]]] = [
        (SITES, (customer.pk,)),
        (CONTACT_NAMES, (customer.pk,)),
        (OTHER_LINES, (customer.pk, sites[0].pk if sites else -1)),
        (SITES, (other.pk,)),
        (LINES, (customer.pk,)),
    ]
    alone = [_as_stored(read(*values)) for read, values in reads]

    with CaptureQueriesContext(connection) as queries:
        together = [_as_stored(rows) for rows in read_together(*reads)]

    assert together == alone
    assert together == [_as_stored(read.queryset(*values)) for read, values in reads]
    assert len(queries) == (1 if connection.vendor == "postgresql" else len(reads))
    assert sorted(site.town for site in read_together((SITES, (customer.pk,)))[0]) == sorted(towns)


# A hand-written statement: the ids of one customer's sites, each beside a value given back as it was sent.
SITE_IDS = RowsRead(
    lambda connection: (
        f"SELECT {connection.ops.quote_name('id')}, %s FROM {connection.ops.quote_name(Site._meta.db_table)}"
        " WHERE customer_id = %s ORDER BY id"
    ),
    arity=2,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sites=st.integers(min_value=0, max_value=3), word=st.sampled_from(["O'Hara; DROP", "100%", "%s", ""]))
def test_a_hand_written_read_returns_its_rows_alone_and_beside_compiled_reads(sites, word):
    customer, other = CustomerFactory(), CustomerFactory()
    made = [SiteFactory(customer=customer).pk for _ in range(sites)]
    SiteFactory(customer=other)

    with CaptureQueriesContext(connection) as queries:
        rows, instances = read_together((SITE_IDS, (word, customer.pk)), (SITES, (customer.pk,)))

    assert rows == SITE_IDS(word, customer.pk) == [(pk, word) for pk in made]
    assert sorted(site.pk for site in instances) == made
    assert len(queries) == (1 if connection.vendor == "postgresql" else 2)
    with pytest.raises(TypeError):
        SITE_IDS(customer.pk)


def test_a_value_compared_with_a_text_column_is_a_parameter_too():
    customer = CustomerFactory()
    ContactFactory(customer=customer, email="jane@acme.example")
    digest = Contact.objects.get(customer_id=customer.pk).email_index
    read = CompiledRead(lambda index: Contact.objects.filter(email_index=index))

    assert [contact.customer_id for contact in read(digest)] == [customer.pk]
    assert read("O'Hara; %s") == []
    with pytest.raises(ValueError, match="a value changes the SQL"):
        CompiledRead(lambda index: Contact.objects.filter(email_index=f"x{index}"))("x")


def test_gated_reads_after_a_first_that_finds_nothing_come_back_empty():
    customer = CustomerFactory()
    SiteFactory(customer=customer)
    LineFactory(customer=customer)
    reads = [(SITES, (customer.pk,)), (LINES, (customer.pk,))]

    assert read_together((SITES, (-1,)), *reads, gated=True) == [[], [], []]
    opened = read_together((SITES, (customer.pk,)), *reads, gated=True)
    assert opened == read_together((SITES, (customer.pk,)), *reads) and all(opened)
    assert read_together((SITES, (-1,)), *reads)[1:] == [SITES(customer.pk), LINES(customer.pk)]


def test_reads_sent_together_check_their_values_before_sending_any():
    customer = CustomerFactory()
    with CaptureQueriesContext(connection) as queries, pytest.raises(TypeError):
        read_together((SITES, (customer.pk,)), (OTHER_LINES, (customer.pk,)))
    assert len(queries) == 0
    assert read_together() == []


def test_annotated_values_and_values_given_through_star_args_read_as_the_orm_reads_them():
    customer = full_customer(sites=3, lines=4)
    first, *_others = customer.sites.order_by("id")
    read = CompiledRead(
        lambda pk, *site_ids: (
            Site.objects.filter(customer_id=pk)
            .exclude(pk__in=site_ids)
            .annotate(line_count=Count("lines"), doubled=Count("lines") * 2)
            .order_by("id")
        ),
        arity=2,
    )

    sites = read(customer.pk, first.pk)
    expected = list(read.queryset(customer.pk, first.pk))

    assert [(s.pk, s.line_count, s.doubled, s.town) for s in sites] == [
        (s.pk, s.line_count, s.doubled, s.town) for s in expected
    ]
    assert first.pk not in [s.pk for s in sites] and len(sites) == 2
    assert sum(s.line_count for s in sites) == Line.objects.filter(site__in=[s.pk for s in sites]).count()
    with pytest.raises(TypeError):
        read(customer.pk)
