"""The demo the README's run command shows: privacy requests in the DPO's queue."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import User
from privacy.models import ImpactAssessment, PrivacyRequest, Processor, State


def test_seed_privacy_demo_fills_the_dpo_queue_with_every_kind_and_state(db, client):
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    call_command("seed_demo", customers=12, partners=2, **quiet)
    call_command("seed_privacy_demo", requests=12, **quiet)

    assert PrivacyRequest.objects.count() == 12
    assert set(PrivacyRequest.objects.values_list("kind", flat=True)) == set(PrivacyRequest.Kind.values)
    states = set(PrivacyRequest.objects.values_list("state", flat=True))
    assert {State.RECEIVED, State.IN_PROGRESS, State.ON_HOLD} <= states
    client.force_login(User.objects.get(email="dpo@fusion.example"))
    page = client.get(reverse("privacy:queue")).content.decode()
    assert (
        '<figure class="chart" id="chart-requests"' in page
        and PrivacyRequest.objects.first().reference in page
    )

    # The governance registers: processors completed, the main activities assessed.
    assert not Processor.objects.filter(role=Processor.Role.PROCESSOR, contract_date__isnull=True).exists()
    assessed = dict(ImpactAssessment.objects.values_list("activity", "status"))
    assert assessed["Billing and payment"] == assessed["Customer accounts and Site Details"] == "signed_off"
    assert assessed["Public website"] == "draft"
    history_rows = Processor.history.count()

    again = io.StringIO()
    call_command("seed_privacy_demo", stdout=again, stderr=io.StringIO())
    assert "already present" in again.getvalue() and PrivacyRequest.objects.count() == 12
    assert Processor.history.count() == history_rows and ImpactAssessment.objects.count() == len(assessed)


def test_seed_privacy_demo_needs_the_accounts_demo_first(db):
    with pytest.raises(CommandError, match="seed_demo"):
        call_command("seed_privacy_demo", stdout=io.StringIO())
