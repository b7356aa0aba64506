"""Data protection impact assessments: one per activity of the data map, signed off against the
fingerprint of the activity's entry (flagged once the entry changes), reminders to the DPO sent once before
the review date, the likelihood x severity matrix, errors naming the field, and the DPO and administrators
alone (only the DPO signs off)."""

import dataclasses
import datetime

import pytest
from django.conf import settings
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from privacy import data_map, governance
from privacy.governance import AssessmentState, RiskLevel, risk_level
from privacy.models import AssessmentReminder, ImpactAssessment
from privacy.services import governance as services
from privacy.tasks import send_assessment_reminders

BILLING = "Billing and payment"


def _assessment(dpo, activity: str = BILLING) -> ImpactAssessment:
    assessment = services.assessment_create(
        activity=activity,
        actor=dpo,
        screening=["data_matching"],
        description="Rating calls and collecting payment by Direct Debit.",
        necessity="Billing is needed to perform the contract; only the data the bill needs.",
        dpo_advice="Proceed; review the Bacs bureau contract yearly.",
    )
    services.assessment_risk_save(
        assessment=assessment,
        actor=dpo,
        description="Bank details disclosed in a breach",
        likelihood=2,
        severity=3,
        measures="Encrypted at rest, reveals logged",
        residual_likelihood=1,
        residual_severity=3,
    )
    return assessment


def _signed(dpo, review_on: datetime.date, activity: str = BILLING) -> ImpactAssessment:
    return services.assessment_sign_off(assessment=_assessment(dpo, activity), actor=dpo, review_on=review_on)


def _state(assessment: ImpactAssessment) -> AssessmentState:
    assessment.refresh_from_db()
    activity = governance.activity_of(assessment.activity)
    return governance.assessment_state(
        assessment,
        today=timezone.localdate(),
        current=governance.fingerprint(activity) if activity else None,
    )


# Fingerprints and the flag ------------------------------------------------------------------------------


def test_the_fingerprint_is_stable_and_canonical():
    activity = governance.activity_of(BILLING)
    assert activity is not None
    assert governance.fingerprint(activity) == governance.fingerprint(dataclasses.replace(activity))
    assert len(governance.fingerprint(activity)) == 64
    others = {governance.fingerprint(other) for other in data_map.ACTIVITIES}
    assert len(others) == len(data_map.ACTIVITIES)


def test_an_activity_changed_since_sign_off_is_flagged(dpo, monkeypatch, client):
    signed = _signed(dpo, timezone.localdate() + datetime.timedelta(days=365))
    assert _state(signed) == AssessmentState.SIGNED_OFF

    changed = tuple(
        dataclasses.replace(activity, recipients=(*activity.recipients, "mail"))
        if activity.name == BILLING
        else activity
        for activity in data_map.ACTIVITIES
    )
    monkeypatch.setattr(data_map, "ACTIVITIES", changed)

    assert _state(signed) == AssessmentState.CHANGED
    client.force_login(dpo)
    ropa = client.get(reverse("privacy:data_map")).content.decode()
    row = ropa[ropa.index(f"<td>{BILLING}</td>") :].split("</tr>", 1)[0]
    assert "Changed since sign-off" in row and reverse("privacy:assessment", args=[signed.pk]) in row


def test_a_change_to_a_model_the_activity_names_is_flagged_too(dpo, monkeypatch):
    signed = _signed(dpo, timezone.localdate() + datetime.timedelta(days=365))
    untouched = _signed(dpo, timezone.localdate() + datetime.timedelta(days=365), activity="Public website")
    # The call records' purpose changes in the data map: billing names billing.CallRecord, the website not.
    changed = tuple(
        dataclasses.replace(entry, purpose="Also used for marketing")
        if entry.label == "billing.CallRecord"
        else entry
        for entry in data_map.DATA_MAP
    )
    monkeypatch.setattr(data_map, "DATA_MAP", changed)

    assert _state(signed) == AssessmentState.CHANGED
    assert _state(untouched) == AssessmentState.SIGNED_OFF


def test_signing_off_again_clears_the_flag_and_editing_returns_to_draft(dpo, monkeypatch):
    signed = _signed(dpo, timezone.localdate() + datetime.timedelta(days=365))
    changed = tuple(
        dataclasses.replace(activity, purpose="Rate calls, bill and chase debt")
        if activity.name == BILLING
        else activity
        for activity in data_map.ACTIVITIES
    )
    monkeypatch.setattr(data_map, "ACTIVITIES", changed)
    assert _state(signed) == AssessmentState.CHANGED

    again = services.assessment_sign_off(
        assessment=signed, actor=dpo, review_on=timezone.localdate() + datetime.timedelta(days=365)
    )
    assert _state(again) == AssessmentState.SIGNED_OFF
    services.assessment_update(
        assessment=again, actor=dpo, reason="Saved unchanged", necessity=again.necessity
    )
    assert _state(again) == AssessmentState.SIGNED_OFF
    services.assessment_update(assessment=again, actor=dpo, reason="Debt recovery added", necessity="More")
    assert _state(again) == AssessmentState.DRAFT
    assert again.history.filter(status="signed_off").count() == 2  # what was signed stays in history


def test_the_ropa_shows_each_activitys_state(dpo, client):
    _signed(dpo, timezone.localdate() + datetime.timedelta(days=365))
    services.assessment_create(activity="VAT records", actor=dpo)
    client.force_login(dpo)
    page = client.get(reverse("privacy:data_map")).content.decode()

    def row(name: str) -> str:
        return page[page.index(f"<td>{name}</td>") :].split("</tr>", 1)[0]

    assert "Signed off" in row(BILLING)
    assert "Draft" in row("VAT records")
    assert "No assessment" in row("Public website") and "Start one" in row("Public website")


def test_a_review_date_reached_shows_review_due(dpo, clock):
    signed = _signed(dpo, timezone.localdate() + datetime.timedelta(days=10))
    clock.shift(datetime.timedelta(days=10))
    assert _state(signed) == AssessmentState.REVIEW_DUE


# Reminders ---------------------------------------------------------------------------------------------


@pytest.mark.date_sensitive
def test_the_review_reminder_is_sent_once_before_the_review_date(dpo, clock, on_commit):
    days = settings.DPIA_REVIEW_REMINDER_DAYS
    review_on = timezone.localdate() + datetime.timedelta(days=days + 5)
    signed = _signed(dpo, review_on)

    clock.shift(datetime.timedelta(days=4))  # 31 days before: not yet
    with on_commit():
        assert send_assessment_reminders() == 0
    assert mail.outbox == []

    clock.shift(datetime.timedelta(days=1))  # 30 days before
    with on_commit():
        assert send_assessment_reminders() == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [dpo.email] and BILLING in mail.outbox[0].body

    with on_commit():
        assert send_assessment_reminders() == 0  # the same day again
    clock.shift(datetime.timedelta(days=days + 3))  # past the review date
    with on_commit():
        assert send_assessment_reminders() == 0
    assert len(mail.outbox) == 1
    reminder = AssessmentReminder.objects.get()
    assert (reminder.assessment, reminder.kind, reminder.occasion) == (
        signed,
        AssessmentReminder.Kind.REVIEW_DUE,
        review_on.isoformat(),
    )

    # A new review date is a new occasion: reminded once more.
    services.assessment_sign_off(
        assessment=signed, actor=dpo, review_on=timezone.localdate() + datetime.timedelta(days=10)
    )
    with on_commit():
        assert send_assessment_reminders() == 1
        assert send_assessment_reminders() == 0
    assert len(mail.outbox) == 2


def test_a_changed_activity_is_reminded_once(dpo, monkeypatch, on_commit):
    _signed(dpo, timezone.localdate() + datetime.timedelta(days=365))
    with on_commit():
        assert send_assessment_reminders() == 0
    changed = tuple(
        dataclasses.replace(activity, subjects="Everyone") if activity.name == BILLING else activity
        for activity in data_map.ACTIVITIES
    )
    monkeypatch.setattr(data_map, "ACTIVITIES", changed)
    with on_commit():
        assert send_assessment_reminders() == 1
        assert send_assessment_reminders() == 0
    assert "changed since sign-off" in mail.outbox[0].body


def test_the_reminders_run_from_the_beat_schedule():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "privacy.tasks.send_assessment_reminders" in tasks


# The risk matrix ---------------------------------------------------------------------------------------


def test_risk_levels_follow_the_ico_scale():
    assert risk_level(1, 1) == risk_level(1, 2) == risk_level(2, 1) == RiskLevel.LOW
    assert risk_level(1, 3) == risk_level(2, 2) == risk_level(3, 1) == RiskLevel.MEDIUM
    # A probable significant harm, or a possible severe one, is high.
    assert risk_level(3, 2) == risk_level(2, 3) == risk_level(3, 3) == RiskLevel.HIGH
    with pytest.raises(ValueError):
        risk_level(0, 2)
    with pytest.raises(ValueError):
        risk_level(2, 4)


def test_the_matrix_places_each_risk_before_and_after_its_measures(dpo, client):
    assessment = _assessment(dpo)
    services.assessment_risk_save(
        assessment=assessment,
        actor=dpo,
        description="Wrong customer billed",
        likelihood=3,
        severity=1,
        residual_likelihood=1,
        residual_severity=1,
    )
    matrix = governance.risk_matrix(assessment.risks.order_by("pk"))
    cells = {(cell.likelihood, cell.severity): cell for cell in matrix.cells}
    assert [row[0].likelihood for row in matrix.rows] == [3, 2, 1]  # probable on top
    assert cells[(2, 3)].before == (1,) and cells[(1, 3)].after == (1,)
    assert cells[(3, 1)].before == (2,) and cells[(1, 1)].after == (2,)
    assert sum(len(cell.before) for cell in matrix.cells) == 2
    assert (
        "Risk 1: possible and severe (high), after measures remote and severe (medium)." in matrix.description
    )

    client.force_login(dpo)
    page = client.get(reverse("privacy:assessment", args=[assessment.pk])).content.decode()
    assert "<caption>Risk matrix: likelihood of harm by its severity</caption>" in page
    assert "Severity of harm" in page and "Likelihood of harm" in page
    assert 'class="legend"' in page and 'aria-describedby="risk-matrix-text"' in page
    assert matrix.description in page
    assert "<script" not in page.split("<main", 1)[1] and "style=" not in page


# Validation --------------------------------------------------------------------------------------------


def test_sign_off_names_what_is_missing(dpo, client):
    draft = services.assessment_create(activity="VAT records", actor=dpo)
    with pytest.raises(ValidationError) as refused:
        services.assessment_sign_off(assessment=draft, actor=dpo, review_on=timezone.localdate())
    assert set(refused.value.message_dict) == {"description", "necessity", "dpo_advice", "risks", "review_on"}

    client.force_login(dpo)
    response = client.post(
        reverse("privacy:assessment_sign_off", args=[draft.pk]), {"review_on": "not a date"}
    )
    assert response.status_code == 400 and "review_on" in response.context["sign_off_form"].errors
    draft.refresh_from_db()
    assert draft.status == ImpactAssessment.Status.DRAFT


def test_a_risk_form_names_the_field(dpo, client):
    assessment = _assessment(dpo)
    client.force_login(dpo)
    response = client.post(
        reverse("privacy:assessment_risk_new", args=[assessment.pk]),
        {
            "description": "Over-collection",
            "likelihood": 1,
            "severity": 2,
            "residual_likelihood": 3,
            "residual_severity": 2,
        },
    )
    assert response.status_code == 200
    assert "residual_likelihood" in response.context["form"].errors
    assert assessment.risks.count() == 1


def test_an_activity_not_in_the_data_map_is_refused(dpo, client):
    client.force_login(dpo)
    response = client.post(reverse("privacy:assessment_new"), {"activity": "Telepathy"})
    assert response.status_code == 200 and "activity" in response.context["form"].errors
    with pytest.raises(ValidationError) as refused:
        services.assessment_create(activity="Telepathy", actor=dpo)
    assert "activity" in refused.value.message_dict


def test_the_dpo_works_an_assessment_through_the_pages(dpo, client):
    client.force_login(dpo)
    response = client.post(
        reverse("privacy:assessment_new"),
        {
            "activity": BILLING,
            "screening": ["data_matching"],
            "description": "Calls rated",
            "necessity": "Needed",
            "dpo_advice": "Go",
        },
    )
    assessment = ImpactAssessment.objects.get(activity=BILLING)
    assert response.status_code == 302
    client.post(
        reverse("privacy:assessment_risk_new", args=[assessment.pk]),
        {
            "description": "Breach",
            "likelihood": 2,
            "severity": 2,
            "measures": "Encryption",
            "residual_likelihood": 1,
            "residual_severity": 2,
        },
    )
    review_on = timezone.localdate() + datetime.timedelta(days=365)
    response = client.post(
        reverse("privacy:assessment_sign_off", args=[assessment.pk]), {"review_on": review_on.isoformat()}
    )
    assert response.status_code == 302
    assessment.refresh_from_db()
    assert (assessment.status, assessment.signed_off_by, assessment.review_on) == (
        "signed_off",
        dpo,
        review_on,
    )
    assert assessment.fingerprint == governance.fingerprint(governance.activity_of(BILLING))
    page = client.get(reverse("privacy:assessment", args=[assessment.pk])).content.decode()
    assert "Signed off" in page and "Combining, comparing or matching" in page


# Access ------------------------------------------------------------------------------------------------


def test_an_administrator_edits_but_does_not_sign_off(make_user, dpo, client):
    assessment = _assessment(dpo)
    client.force_login(make_user(Role.ADMINISTRATOR))
    assert client.get(reverse("privacy:assessment", args=[assessment.pk])).status_code == 200
    assert client.get(reverse("privacy:assessment_edit", args=[assessment.pk])).status_code == 200
    review_on = (timezone.localdate() + datetime.timedelta(days=30)).isoformat()
    response = client.post(
        reverse("privacy:assessment_sign_off", args=[assessment.pk]), {"review_on": review_on}
    )
    assert response.status_code == 403
    assessment.refresh_from_db()
    assert assessment.status == ImpactAssessment.Status.DRAFT


@pytest.mark.parametrize(
    "role", [Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.FINANCE_MANAGER, Role.CUSTOMER]
)
def test_others_are_refused(make_user, dpo, client, role):
    assessment = _assessment(dpo)
    client.force_login(make_user(role))
    for name in ("privacy:assessment", "privacy:assessment_edit", "privacy:assessment_risk_new"):
        assert client.get(reverse(name, args=[assessment.pk])).status_code == 403, name
    assert client.get(reverse("privacy:assessments")).status_code == 403
    response = client.post(reverse("privacy:assessment_edit", args=[assessment.pk]), {"dpo_advice": "Stop"})
    assert response.status_code == 403
    assessment.refresh_from_db()
    assert assessment.dpo_advice.startswith("Proceed")


def test_the_roles_hold_the_permissions_the_migration_grants(make_user):
    dpo, admin = make_user(Role.DATA_PROTECTION_OFFICER), make_user(Role.ADMINISTRATOR)
    assert dpo.has_perm("privacy.signoff_impactassessment") and not admin.has_perm(
        "privacy.signoff_impactassessment"
    )
    for user in (dpo, admin):
        assert user.has_perm("privacy.change_impactassessment") and user.has_perm("privacy.change_processor")
    for role in (Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.FINANCE_MANAGER, Role.CUSTOMER):
        other = make_user(role)
        assert not other.has_perm("privacy.view_impactassessment") and not other.has_perm(
            "privacy.view_processor"
        )
