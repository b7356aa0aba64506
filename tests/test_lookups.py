"""``any_of``: the same rows as ``__in``, with the ids as one parameter on PostgreSQL."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Customer
from tests.factories import CustomerFactory


@pytest.mark.django_db
def test_any_of_finds_exactly_the_rows_in_finds():
    customers = [CustomerFactory() for _ in range(4)]
    wanted = {customers[0].pk, customers[2].pk, 10**12}

    with CaptureQueriesContext(connection) as captured:
        found = set(Customer.objects.filter(pk__any_of=wanted).values_list("pk", flat=True))

    assert found == set(Customer.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    assert found == {customers[0].pk, customers[2].pk}
    sql = captured.captured_queries[0]["sql"]
    if connection.vendor == "postgresql":
        assert "= ANY(" in sql and " IN (" not in sql
    assert set(Customer.objects.exclude(pk__any_of=wanted).values_list("pk", flat=True)) == {
        customers[1].pk,
        customers[3].pk,
    }


@pytest.mark.django_db
def test_an_empty_list_matches_nothing_and_ids_must_be_numbers():
    CustomerFactory()

    assert not Customer.objects.filter(pk__any_of=[]).exists()
    with pytest.raises(ValueError):
        Customer.objects.filter(pk__any_of=["1); DROP TABLE x; --"])


@pytest.mark.django_db
def test_a_foreign_key_takes_it_too():
    first, second = CustomerFactory(), CustomerFactory()

    found = set(Customer.objects.filter(partner_id__any_of=[first.partner_id]).values_list("pk", flat=True))

    assert first.pk in found
    assert (second.pk in found) == (second.partner_id == first.partner_id)
