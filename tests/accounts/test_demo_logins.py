"""The demo's users let every flow be finished by demo users, four-eyes steps included (a second DPO, a
second finance manager per partner), and the logins ``seed_demo`` prints are exactly the demo users that
can log in, each with its role."""

import io
import re
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from accounts.demo import DEMO_PASSWORD, SECOND_DPO
from accounts.models import Role, User
from billing.models import Invoice, WriteOff
from billing.services.ledger import write_off_request
from privacy.models import PrivacyRequest, State

QUIET = {"stderr": io.StringIO()}


def _seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", customers=12, partners=2, stdout=out, **QUIET, **options)
    return out.getvalue()


def _role(user: User) -> Role:
    return Role(user.groups.get(name__in=Role.values).name)


def _printed_logins(printed: str) -> dict[str, str]:
    """Email -> the rest of its line, from the logins section (before the second-factor section)."""
    logins = printed.split("Second factor", 1)[0]
    return {
        match.group(1): match.group(2)
        for match in re.finditer(r"^  (\S+@\S+\.example)\s+(.*)$", logins, flags=re.MULTILINE)
    }


def test_the_demo_has_a_second_dpo_and_a_second_finance_manager_per_partner(db):
    printed = _printed_logins(_seed())

    second_dpo = User.objects.get(email=SECOND_DPO)
    assert _role(second_dpo) == Role.DATA_PROTECTION_OFFICER
    assert second_dpo.check_password(DEMO_PASSWORD) and second_dpo.partner is None
    assert "second DPO" in printed[SECOND_DPO]
    for code in ("demo-1", "demo-2"):
        second_finance = User.objects.get(email=f"finance2@{code}.example")
        assert _role(second_finance) == Role.FINANCE_MANAGER
        assert second_finance.partner.code == code
        assert second_finance.partner == User.objects.get(email=f"finance@{code}.example").partner
        assert "second finance manager" in printed[second_finance.email]


def test_the_printed_logins_are_exactly_the_demo_users_who_can_log_in_with_their_roles(db):
    printed = _printed_logins(_seed())

    active = User.objects.filter(is_active=True, email__endswith=".example").prefetch_related("groups")
    assert set(printed) == {user.email for user in active}
    for user in active:
        assert printed[user.email].startswith(_role(user).label), user.email
        assert user.check_password(DEMO_PASSWORD), user.email
    # Printed again, unchanged, by a second run on the seeded database.
    assert _printed_logins(_seed()) == printed


def test_a_request_the_first_demo_dpo_prepared_is_approved_and_completed_by_the_second(db, client):
    _seed()
    call_command("seed_privacy_demo", requests=12, stdout=io.StringIO(), **QUIET)
    item = PrivacyRequest.objects.filter(state=State.AWAITING_APPROVAL).order_by("pk").first()
    assert item is not None, "the privacy demo leaves requests awaiting the second DPO's approval"
    page = reverse("privacy:request", args=[item.pk])

    client.force_login(User.objects.get(email="dpo@fusion.example"))
    assert "another DPO must approve it" in client.get(page).content.decode()

    client.force_login(User.objects.get(email=SECOND_DPO))
    assert "<button>Approve</button>" in client.get(page).content.decode()
    client.post(reverse("privacy:request_action", args=[item.pk, "approve"]))
    client.post(reverse("privacy:request_action", args=[item.pk, "complete"]), {"reason": "Done (demo)"})
    item.refresh_from_db()
    assert item.state == State.COMPLETED and item.approved_by.email == SECOND_DPO


@pytest.mark.parametrize("code", ["demo-1"])
def test_a_write_off_the_demo_finance_manager_asks_for_is_approved_by_the_second(db, client, code):
    _seed()
    call_command("seed_billing_demo", stdout=io.StringIO(), **QUIET)
    finance = User.objects.get(email=f"finance@{code}.example")
    invoice = (
        Invoice.objects.filter(
            partner=finance.partner, status=Invoice.Status.FINALISED, amount_outstanding__gt=0
        )
        .order_by("pk")
        .first()
    )
    assert invoice is not None, "the billing demo leaves unpaid invoices"
    write_off = write_off_request(invoice=invoice, amount=Decimal("0.01"), reason="Demo", actor=finance)
    url = reverse("billing:write_off_decide", args=[invoice.customer.reference, write_off.pk, "approve"])

    client.force_login(User.objects.get(email=f"finance2@{code}.example"))
    assert client.post(url).status_code == 302
    assert WriteOff.objects.get(pk=write_off.pk).status == WriteOff.Status.APPROVED
