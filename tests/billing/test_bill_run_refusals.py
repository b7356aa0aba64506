"""The bill run's page offers only the steps the user may take now and says why the others are refused,
in the words the service refuses a POST with (``billing.services.bill_runs.bill_run_refusal``)."""

import pytest
from django.utils.html import escape

from accounts.models import Role
from billing.demo import uk_tariff
from billing.models import BillRun
from billing.services.bill_runs import bill_run_restrict
from tests.billing.factories import billing_profile, calculated_run, month, run_on_commit

JANUARY = month(2025, 1)
ONLY_FINANCE_APPROVES = "Only a finance manager may approve a bill run."
RESTRICTED = (
    "This bill run is restricted (Subject access dispute); "
    "it cannot be approved until the restriction is lifted."
)


@pytest.fixture
def bill_run(partner, customer, agent) -> BillRun:
    billing_profile(partner, default_tariff=uk_tariff())
    return calculated_run(partner, JANUARY, actor=agent)


def _page(client, user, bill_run: BillRun) -> str:
    client.force_login(user)
    response = client.get(f"/billing/runs/{bill_run.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def _post(client, bill_run: BillRun, action: str, **data: str):
    with run_on_commit():
        response = client.post(f"/billing/runs/{bill_run.pk}/{action}/", data, follow=True)
    bill_run.refresh_from_db()
    return response


def test_a_billing_agent_sees_why_not_instead_of_approve_and_is_refused_the_same_way(client, agent, bill_run):
    page = _page(client, agent, bill_run)

    assert "<button>Approve</button>" not in page
    assert f"<strong>Approve:</strong> {ONLY_FINANCE_APPROVES}" in page
    assert "<button>Recalculate</button>" in page  # the steps the agent may take are offered

    refused = _post(client, bill_run, "approve")
    assert refused.status_code == 403
    assert ONLY_FINANCE_APPROVES in refused.content.decode()
    assert bill_run.status == BillRun.Status.CALCULATED
    assert bill_run.events.filter(action="approve refused", detail="Missing permission").exists()


def test_the_finance_manager_is_offered_approve_with_no_reason_against_it(client, finance, bill_run):
    page = _page(client, finance, bill_run)

    assert "<button>Approve</button>" in page
    assert "<strong>Approve:</strong>" not in page
    assert f"<strong>Calculate:</strong> {escape('Only a billing agent may calculate a bill run.')}" in page


def test_a_restricted_run_says_why_it_cannot_be_approved_and_refuses_the_post_in_those_words(
    client, finance, dpo, bill_run
):
    bill_run_restrict(bill_run=bill_run, actor=dpo, reason="Subject access dispute")

    page = _page(client, finance, bill_run)
    assert "<button>Approve</button>" not in page
    assert f"<strong>Approve:</strong> {escape(RESTRICTED)}" in page

    refused = _post(client, bill_run, "approve")
    assert refused.status_code == 200
    assert [message.message for message in refused.context["messages"]] == [RESTRICTED]
    assert bill_run.status == BillRun.Status.CALCULATED


def test_only_the_dpo_is_offered_to_lift_a_restriction(client, finance, dpo, bill_run):
    bill_run_restrict(bill_run=bill_run, actor=dpo, reason="Subject access dispute")
    lift_refused = escape("Only the DPO or an administrator may lift a bill run's restriction.")

    finance_page = _page(client, finance, bill_run)
    assert "<button>Lift restriction</button>" not in finance_page
    assert f"<strong>Lift restriction:</strong> {lift_refused}" in finance_page
    refused = _post(client, bill_run, "lift", reason="Resolved")
    assert refused.status_code == 403
    assert lift_refused in refused.content.decode()

    dpo_page = _page(client, dpo, bill_run)
    assert (
        "<button>Lift restriction</button>" in dpo_page
        and "<strong>Lift restriction:</strong>" not in dpo_page
    )
    _post(client, bill_run, "lift", reason="Resolved")
    assert bill_run.restricted_at is None


@pytest.mark.parametrize("role", [Role.BILLING_AGENT, Role.FINANCE_MANAGER, Role.DATA_PROTECTION_OFFICER])
def test_every_step_the_status_offers_is_either_a_button_or_a_reason(client, make_user, bill_run, role):
    """A calculated run offers calculate, approve, cancel and restrict: each user sees each of them once,
    as a button or as a reason, never both and never neither."""
    page = _page(client, make_user(role), bill_run)
    for button, label in [
        ("Recalculate", "Calculate"),
        ("Approve", "Approve"),
        ("Cancel run", "Cancel run"),
        ("Restrict run", "Restrict run"),
    ]:
        shown = (f"<button>{button}</button>" in page) + (f"<strong>{label}:</strong>" in page)
        assert shown == 1, (role, label)
