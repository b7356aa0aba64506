"""The request workflow through its services: transitions and their events, refusals, four eyes, identity
codes, the clock, duplicates, carrying out restriction and objection, and the nightly reminder."""

import datetime
import re

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Contact, Role
from privacy import deadlines, erasure, selectors
from privacy.models import (
    DataExport,
    ErasureRecord,
    PrivacyRequest,
    PrivacyRequestEvent,
    ReminderRun,
    State,
    SuppressionEntry,
)
from privacy.services.requests.carrying_out import privacy_request_complete, privacy_request_lift_restriction
from privacy.services.requests.identity import (
    IDENTITY_CODE_MAX_ATTEMPTS,
    privacy_request_attest_identity,
    privacy_request_request_identity,
    privacy_request_send_identity_code,
    privacy_request_verify_identity_code,
)
from privacy.services.requests.workflow import (
    PrivacyRequestError,
    privacy_request_approve,
    privacy_request_extend,
    privacy_request_hold,
    privacy_request_reject,
    privacy_request_resume,
    privacy_request_start,
    privacy_request_submit_for_approval,
    privacy_request_withdraw,
)
from privacy.tasks import send_deadline_reminders
from tests.factories import CustomerFactory
from tests.privacy.conftest import receive

# The outcome turns on today's date: CI runs this module again at other frozen instants.
pytestmark = pytest.mark.date_sensitive

D = datetime.date
Kind = PrivacyRequest.Kind


def _code_from(message) -> str:
    found = re.search(r"Your code: (\d{6})\n", message.body)
    assert found, message.body
    return found.group(1)


def _ready_for_approval(privacy_request, dpo) -> PrivacyRequest:
    privacy_request_attest_identity(privacy_request=privacy_request, actor=dpo, reason="Known caller")
    privacy_request_start(privacy_request=privacy_request, actor=dpo)
    return privacy_request_submit_for_approval(privacy_request=privacy_request, actor=dpo)


def test_lifecycle_records_every_transition_with_actor_and_reason(
    customer, support, dpo, second_dpo, on_commit
):
    request = receive(support, customer=customer)
    assert request.state == State.RECEIVED
    assert request.reference == f"DSR-{request.pk:06d}"
    _ready_for_approval(request, dpo)
    privacy_request_approve(privacy_request=request, actor=second_dpo, reason="Checked the response")
    with on_commit():
        privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Copy sent by email")

    request.refresh_from_db()
    assert request.state == State.COMPLETED
    assert request.outcome == "Copy sent by email"
    assert request.closed_at is not None
    transitions = [
        (e.action, e.from_state, e.to_state, e.actor)
        for e in PrivacyRequestEvent.objects.filter(privacy_request=request)
        if e.is_transition
    ]
    assert transitions == [
        ("start", State.RECEIVED, State.IN_PROGRESS, dpo),
        ("submit_for_approval", State.IN_PROGRESS, State.AWAITING_APPROVAL, dpo),
        ("complete", State.AWAITING_APPROVAL, State.COMPLETED, second_dpo),
    ]
    actions = list(request.events.values_list("action", flat=True))
    assert actions[0] == "received" and "identity_attested" in actions and "approved" in actions
    history = list(request.history.order_by("history_id").values_list("state", "history_user"))
    assert history[0] == (State.RECEIVED, support.pk)
    assert history[-1] == (State.COMPLETED, second_dpo.pk)
    # The subject (the customer's primary contact) is told.
    assert [m.subject for m in mail.outbox] == [f"Your request {request.reference}: completed"]
    assert mail.outbox[0].to == [customer.contacts.get().email]


def test_subject_email_and_details_are_encrypted_at_rest(dpo):
    request = receive(dpo, subject_email="Pat.Public@Example.com", details="Everything you hold on me")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT subject_email, details, subject_email_index FROM privacy_privacyrequest WHERE id = %s",
            [request.pk],
        )
        email, details, index = cursor.fetchone()
    assert email.startswith("enc1$") and "example" not in email.lower()
    assert details.startswith("enc1$")
    assert len(index) == 64
    assert PrivacyRequest.objects.get(pk=request.pk).subject_email == "pat.public@example.com"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            lambda r, a: privacy_request_hold(privacy_request=r, actor=a, reason="x"),
            "only from in progress",
        ),
        (lambda r, a: privacy_request_resume(privacy_request=r, actor=a), "only from on hold"),
        (
            lambda r, a: privacy_request_submit_for_approval(privacy_request=r, actor=a),
            "in progress",
        ),
        (lambda r, a: privacy_request_complete(privacy_request=r, actor=a, reason="x"), "awaiting"),
    ],
)
def test_invalid_transitions_are_refused_with_a_clear_error(customer, dpo, step, message):
    request = receive(dpo, customer=customer)
    with pytest.raises(PrivacyRequestError, match=message) as caught:
        step(request, dpo)
    assert "is received" in str(caught.value)
    request.refresh_from_db()
    assert request.state == State.RECEIVED
    assert not request.events.exclude(action="received").exists()


def test_closed_requests_take_no_further_steps(customer, dpo):
    request = receive(dpo, customer=customer)
    privacy_request_withdraw(privacy_request=request, actor=dpo, reason="Subject phoned to withdraw")
    with pytest.raises(PrivacyRequestError, match="withdrawn"):
        privacy_request_reject(privacy_request=request, actor=dpo, reason="Too late")
    with pytest.raises(PrivacyRequestError, match="closed"):
        privacy_request_extend(privacy_request=request, actor=dpo, reason="Complex")


def test_work_cannot_start_before_identity_is_established(customer, dpo):
    request = receive(dpo, customer=customer)
    with pytest.raises(PrivacyRequestError, match="identity"):
        privacy_request_start(privacy_request=request, actor=dpo)


def test_rejection_needs_a_reason_and_tells_the_subject(dpo, on_commit):
    request = receive(dpo, subject_email="pat@example.com")
    with pytest.raises(ValidationError) as caught:
        privacy_request_reject(privacy_request=request, actor=dpo, reason="  ")
    assert "reason" in caught.value.message_dict
    with on_commit():
        privacy_request_reject(privacy_request=request, actor=dpo, reason="Manifestly unfounded")
    assert mail.outbox[0].to == ["pat@example.com"]
    assert "Manifestly unfounded" in mail.outbox[0].body


def test_four_eyes_submitter_and_receiver_cannot_approve(customer, dpo, second_dpo, make_user):
    third = make_user(Role.DATA_PROTECTION_OFFICER)
    request = receive(second_dpo, customer=customer)
    _ready_for_approval(request, dpo)
    with pytest.raises(PrivacyRequestError, match="you submitted this request"):
        privacy_request_approve(privacy_request=request, actor=dpo)
    with pytest.raises(PrivacyRequestError, match="you received this request"):
        privacy_request_approve(privacy_request=request, actor=second_dpo)
    with pytest.raises(PrivacyRequestError, match="approval first"):
        privacy_request_complete(privacy_request=request, actor=dpo, reason="Done")
    privacy_request_approve(privacy_request=request, actor=third)
    request.refresh_from_db()
    assert request.approved_by == third


def test_approval_needs_the_approve_permission(customer, support, dpo):
    request = receive(dpo, customer=customer)
    with pytest.raises(PermissionDenied):
        privacy_request_approve(privacy_request=request, actor=support)


# Identity ------------------------------------------------------------------------------------------


@pytest.fixture
def awaiting_identity(customer, dpo, on_commit, today):
    today(D(2025, 9, 3))
    request = receive(dpo, customer=customer)
    with on_commit():
        privacy_request_request_identity(privacy_request=request, actor=dpo)
    request.refresh_from_db()
    return request


def test_requesting_identity_stops_the_clock_and_emails_a_code(awaiting_identity, customer):
    assert awaiting_identity.state == State.AWAITING_IDENTITY
    assert awaiting_identity.due_on is None and awaiting_identity.clock_started_on is None
    (message,) = mail.outbox
    assert message.to == [customer.contacts.get().email]
    code = _code_from(message)
    stored = awaiting_identity.identity_codes.get()
    assert code not in stored.code_hash and len(stored.code_hash) == 64


def test_right_code_starts_the_clock_from_the_day_of_verification(awaiting_identity, dpo, clock):
    code = _code_from(mail.outbox[0])
    # The code was sent at noon on 3 September; it is entered the next morning, within its 24 hours.
    clock.shift(datetime.timedelta(hours=20))
    privacy_request_verify_identity_code(privacy_request=awaiting_identity, code=code, actor=dpo)
    awaiting_identity.refresh_from_db()
    assert awaiting_identity.state == State.IN_PROGRESS
    assert awaiting_identity.identity_method == PrivacyRequest.IdentityMethod.CODE
    assert awaiting_identity.clock_started_on == D(2025, 9, 4)
    # A month from 4 September 2025 is Saturday 4 October: the next working day is Monday the 6th.
    assert awaiting_identity.due_on == D(2025, 10, 6)
    # A used code cannot be used again.
    privacy_request_hold(privacy_request=awaiting_identity, actor=dpo, reason="Which account?")
    assert awaiting_identity.identity_codes.get().used_at is not None


def test_wrong_code_uses_an_attempt_that_is_kept(awaiting_identity, dpo):
    with pytest.raises(PrivacyRequestError, match="4 attempts left") as caught:
        privacy_request_verify_identity_code(privacy_request=awaiting_identity, code="000000x", actor=dpo)
    assert "code" in caught.value.message_dict
    assert awaiting_identity.identity_codes.get().attempts == 1
    assert awaiting_identity.events.filter(action="identity_code_wrong").count() == 1
    awaiting_identity.refresh_from_db()
    assert awaiting_identity.state == State.AWAITING_IDENTITY


def test_too_many_attempts_lock_the_code_until_a_new_one_is_sent(awaiting_identity, dpo, on_commit):
    code = _code_from(mail.outbox[0])
    for _ in range(IDENTITY_CODE_MAX_ATTEMPTS):
        with pytest.raises(PrivacyRequestError, match="wrong"):
            privacy_request_verify_identity_code(privacy_request=awaiting_identity, code="x", actor=dpo)
    with pytest.raises(PrivacyRequestError, match="Too many wrong attempts"):
        privacy_request_verify_identity_code(privacy_request=awaiting_identity, code=code, actor=dpo)
    with on_commit():
        privacy_request_send_identity_code(privacy_request=awaiting_identity, actor=dpo)
    new_code = _code_from(mail.outbox[-1])
    old, new = awaiting_identity.identity_codes.order_by("id")
    assert old.superseded_at is not None and new.superseded_at is None and new.attempts == 0
    privacy_request_verify_identity_code(privacy_request=awaiting_identity, code=new_code, actor=dpo)
    awaiting_identity.refresh_from_db()
    assert awaiting_identity.state == State.IN_PROGRESS


def test_expired_code_is_refused(awaiting_identity, dpo):
    code = _code_from(mail.outbox[0])
    awaiting_identity.identity_codes.update(expires_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    with pytest.raises(PrivacyRequestError, match="expired"):
        privacy_request_verify_identity_code(privacy_request=awaiting_identity, code=code, actor=dpo)


def test_attestation_needs_a_reason_and_starts_the_clock(awaiting_identity, dpo, today):
    with pytest.raises(ValidationError) as caught:
        privacy_request_attest_identity(privacy_request=awaiting_identity, actor=dpo, reason="")
    assert "reason" in caught.value.message_dict
    today(D(2025, 9, 12))
    privacy_request_attest_identity(
        privacy_request=awaiting_identity, actor=dpo, reason="Passport seen at the Leeds office"
    )
    awaiting_identity.refresh_from_db()
    assert awaiting_identity.state == State.IN_PROGRESS
    assert awaiting_identity.identity_attestation == "Passport seen at the Leeds office"
    assert awaiting_identity.due_on == D(2025, 10, 13)  # Sun 12 Oct: Monday


# The clock ----------------------------------------------------------------------------------------


def test_hold_stops_the_clock_and_resume_moves_the_deadline(customer, dpo, today):
    today(D(2025, 9, 3))
    request = receive(dpo, customer=customer)
    assert request.due_on == D(2025, 10, 3)
    privacy_request_attest_identity(privacy_request=request, actor=dpo, reason="Known caller")
    privacy_request_start(privacy_request=request, actor=dpo)
    today(D(2025, 9, 10))
    privacy_request_hold(privacy_request=request, actor=dpo, reason="Which of the two accounts?")
    today(D(2025, 9, 15))
    privacy_request_resume(privacy_request=request, actor=dpo)
    request.refresh_from_db()
    # Held Wed 10 to Mon 15 September, both days included (UK GDPR Art. 12A): 6 days.
    assert request.days_on_hold == 6
    assert request.due_on == D(2025, 10, 9)
    resume = request.events.get(action="resume")
    assert (resume.from_state, resume.to_state) == (State.ON_HOLD, State.IN_PROGRESS)
    assert "6 days on hold" in resume.reason


@pytest.mark.parametrize(
    ("answered_on", "days_on_hold", "due_on"),
    [
        # Received Mon 1 September, due Wed 1 October; clarification asked for on Wed 10 September.
        # Answered the same day: that day does not count, so Thu 2 October (not Wed 1).
        (D(2025, 9, 10), 1, D(2025, 10, 2)),
        # Answered the next day: both days, Fri 3 October (not Thu 2).
        (D(2025, 9, 11), 2, D(2025, 10, 3)),
        # Answered on the Friday: three days, Sat 4 October, so Monday 6.
        (D(2025, 9, 12), 3, D(2025, 10, 6)),
    ],
)
def test_clock_stop_includes_the_day_asked_and_the_day_answered(
    customer, dpo, today, answered_on, days_on_hold, due_on
):
    today(D(2025, 9, 1))
    request = receive(dpo, customer=customer)
    privacy_request_attest_identity(privacy_request=request, actor=dpo, reason="Known caller")
    privacy_request_start(privacy_request=request, actor=dpo)
    today(D(2025, 9, 10))
    privacy_request_hold(privacy_request=request, actor=dpo, reason="Which of the two accounts?")
    today(answered_on)
    privacy_request_resume(privacy_request=request, actor=dpo)
    request.refresh_from_db()
    assert (request.days_on_hold, request.due_on) == (days_on_hold, due_on)


def test_extension_once_within_the_first_month_with_notice(customer, dpo, today, on_commit):
    today(D(2025, 9, 3))
    request = receive(dpo, customer=customer)
    today(D(2025, 9, 20))
    with on_commit():
        privacy_request_extend(privacy_request=request, actor=dpo, reason="Ten years of call records")
    request.refresh_from_db()
    assert request.due_on == D(2025, 12, 3)
    assert request.extension_reason == "Ten years of call records"
    (notice,) = mail.outbox
    assert "03 December 2025" in notice.body and "Ten years of call records" in notice.body
    with pytest.raises(PrivacyRequestError, match="already been extended once"):
        privacy_request_extend(privacy_request=request, actor=dpo, reason="Again")


def test_extension_after_the_first_month_is_refused(customer, dpo, today):
    today(D(2025, 9, 3))
    request = receive(dpo, customer=customer)
    today(D(2025, 10, 4))
    with pytest.raises(PrivacyRequestError, match="first month ended on 03 October 2025"):
        privacy_request_extend(privacy_request=request, actor=dpo, reason="Complex")
    request.refresh_from_db()
    assert request.extended_at is None and request.due_on == D(2025, 10, 3)


# Receiving ---------------------------------------------------------------------------------------


def test_duplicate_is_flagged_not_refused(customer, dpo):
    first = receive(dpo, customer=customer)
    second = receive(dpo, customer=customer)
    other_kind = receive(dpo, customer=customer, kind=Kind.ERASURE)
    assert second.duplicate_of == first
    assert second.events.filter(action="flagged_duplicate", reason__contains=first.reference).exists()
    assert other_kind.duplicate_of is None
    privacy_request_withdraw(privacy_request=first, actor=dpo, reason="Withdrawn")
    privacy_request_withdraw(privacy_request=second, actor=dpo, reason="Withdrawn")
    assert receive(dpo, customer=customer).duplicate_of is None


def test_duplicate_of_a_member_of_the_public_matches_by_email_index(dpo):
    first = receive(dpo, subject_email="pat@example.com")
    assert receive(dpo, subject_email=" PAT@example.com ").duplicate_of == first
    assert receive(dpo, subject_email="sam@example.com").duplicate_of is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "subject_email"),
        ({"subject_email": "not-an-email"}, "subject_email"),
        ({"subject_email": "pat@example.com", "details": " "}, "details"),
        ({"subject_email": "pat@example.com", "received_on": D(2999, 1, 1)}, "received_on"),
        ({"subject_email": "pat@example.com", "kind": Kind.RESTRICTION}, "customer"),
        ({"subject_email": "pat@example.com", "kind": Kind.OBJECTION}, "objection_scope"),
    ],
)
def test_bad_input_names_the_field(dpo, fields, field):
    with pytest.raises(ValidationError) as caught:
        receive(dpo, **fields)
    assert field in caught.value.message_dict
    assert not PrivacyRequest.objects.exists()


def test_support_agent_opens_requests_only_for_customers_it_sees(support, customer, other_customer):
    assert receive(support, customer=customer).received_by == support
    with pytest.raises(ValidationError) as caught:
        receive(support, customer=other_customer)
    assert caught.value.message_dict["customer"] == ["No such customer."]
    with pytest.raises(ValidationError, match="only the DPO"):
        receive(support, subject_email="pat@example.com")


def test_billing_agent_may_not_open_requests(make_user, customer):
    with pytest.raises(PermissionDenied):
        receive(make_user(Role.BILLING_AGENT), customer=customer)


def test_portal_request_has_identity_by_login_and_is_about_its_own_account(make_user, partner):
    portal = make_user(Role.CUSTOMER)
    request = receive(portal, customer=portal.customer, channel=PrivacyRequest.Channel.EMAIL)
    assert request.channel == PrivacyRequest.Channel.PORTAL
    assert request.identity_method == PrivacyRequest.IdentityMethod.PORTAL_LOGIN
    assert request.is_identity_established
    assert request.subject_email == portal.email
    with pytest.raises(PermissionDenied):
        receive(portal, customer=CustomerFactory(partner=partner))


def test_scoping_hides_other_partners_requests(customer, other_customer, dpo, support, make_user):
    own = receive(dpo, customer=customer)
    other = receive(dpo, customer=other_customer)
    public = receive(dpo, subject_email="pat@example.com")
    assert set(selectors.privacy_requests_visible_to(support)) == {own}
    assert set(selectors.privacy_requests_visible_to(dpo)) == {own, other, public}
    admin = make_user(Role.ADMINISTRATOR)
    assert set(selectors.privacy_requests_visible_to(admin)) == {own, other, public}
    assert not selectors.privacy_requests_visible_to(make_user(Role.BILLING_AGENT)).exists()


# Carrying out restriction and objection ----------------------------------------------------------


def _approved(request, dpo, second_dpo):
    _ready_for_approval(request, dpo)
    return privacy_request_approve(privacy_request=request, actor=second_dpo)


def test_completed_restriction_restricts_the_customer_and_lifting_tells_the_subject(
    customer, dpo, second_dpo, on_commit
):
    request = _approved(receive(dpo, customer=customer, kind=Kind.RESTRICTION), dpo, second_dpo)
    customer.refresh_from_db()
    assert not customer.is_processing_restricted  # nothing happens before completion
    privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Processing restricted")
    customer.refresh_from_db()
    assert customer.is_processing_restricted
    assert request.reference in customer.processing_restricted_reason
    assert customer.processing_restricted_by == second_dpo

    with on_commit():
        privacy_request_lift_restriction(privacy_request=request, actor=dpo, reason="Accuracy confirmed")
    customer.refresh_from_db()
    assert not customer.is_processing_restricted
    assert mail.outbox[-1].subject == f"Your request {request.reference}: restriction lifted"
    assert "Accuracy confirmed" in mail.outbox[-1].body
    with pytest.raises(PrivacyRequestError, match="already lifted"):
        privacy_request_lift_restriction(privacy_request=request, actor=dpo, reason="Again")


def test_objection_to_billing_ceases_billing(customer, dpo, second_dpo):
    request = receive(
        dpo, customer=customer, kind=Kind.OBJECTION, objection_scope=PrivacyRequest.ObjectionScope.PROCESSING
    )
    _approved(request, dpo, second_dpo)
    privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Billing ceased")
    customer.refresh_from_db()
    assert customer.is_billing_ceased
    assert request.reference in customer.billing_ceased_reason
    assert customer.history.filter(history_change_reason__startswith="Billing ceased").exists()


def test_objection_to_marketing_suppresses_hmacs_only(customer, dpo, second_dpo):
    contact = Contact.objects.get(customer=customer)
    request = receive(
        dpo, contact=contact, kind=Kind.OBJECTION, objection_scope=PrivacyRequest.ObjectionScope.MARKETING
    )
    _approved(request, dpo, second_dpo)
    privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Suppressed")
    entries = list(SuppressionEntry.objects.values_list("channel", "value_hmac"))
    assert sorted(channel for channel, _ in entries) == ["email", "phone"]
    assert all(len(digest) == 64 and "@" not in digest for _, digest in entries)
    assert selectors.is_suppressed(channel="email", value=contact.email.upper())
    assert selectors.is_suppressed(channel="phone", value="07700 100123")
    assert not selectors.is_suppressed(channel="email", value="someone.else@example.com")
    customer.refresh_from_db()
    assert not customer.is_billing_ceased


def test_an_approved_erasure_erases_the_customer_on_completion_and_tells_the_subject_first(
    customer, dpo, second_dpo, on_commit
):
    contact = Contact.objects.get(customer=customer)
    request = _approved(
        receive(dpo, contact=contact, kind=Kind.ERASURE, subject_email=contact.email), dpo, second_dpo
    )
    with on_commit():
        privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Erased")

    customer.refresh_from_db()
    assert customer.is_erased and not customer.contacts.exists()
    record = ErasureRecord.objects.get(customer_pk=customer.pk)
    assert record.request_reference == request.reference and record.actor == second_dpo
    request.refresh_from_db()
    assert request.state == State.COMPLETED and request.subject_erased_at is not None
    assert request.subject_email == "" and request.contact is None
    # The completion notice went to the address on file before it was erased.
    assert mail.outbox[-1].to == [contact.email]


def test_erasure_needs_the_erase_permission_and_a_customer(customer, dpo, second_dpo, make_user):
    public = _approved(receive(dpo, kind=Kind.ERASURE, subject_email="someone@example.com"), dpo, second_dpo)
    with pytest.raises(PrivacyRequestError, match="needs the customer"):
        privacy_request_complete(privacy_request=public, actor=second_dpo, reason="Erased")

    request = _approved(receive(dpo, customer=customer, kind=Kind.ERASURE), dpo, second_dpo)
    second_dpo.groups.clear()
    second_dpo.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="privacy", codename__in=["change_privacyrequest", "view_privacyrequest"]
        )
    )
    second_dpo = type(second_dpo).objects.get(pk=second_dpo.pk)  # fresh permission cache
    with pytest.raises(PermissionDenied, match="may erase a customer"):
        privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Erased")
    customer.refresh_from_db()
    assert not customer.is_erased
    request.refresh_from_db()
    assert request.state == State.AWAITING_APPROVAL, "the refusal rolled the completion back"


def test_a_blocked_erasure_cannot_complete(customer, dpo, second_dpo, monkeypatch):
    monkeypatch.setattr(
        erasure,
        "_blockers",
        lambda customer_ids: {pk: ["Bill run X has a draft invoice"] for pk in customer_ids},
    )
    request = _approved(receive(dpo, customer=customer, kind=Kind.ERASURE), dpo, second_dpo)
    with pytest.raises(ValidationError, match="draft invoice"):
        privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Erased")
    request.refresh_from_db()
    assert request.state == State.AWAITING_APPROVAL
    customer.refresh_from_db()
    assert not customer.is_erased


# Reminders --------------------------------------------------------------------------------------


def test_nightly_reminder_emails_the_dpo_group_once_a_day(customer, dpo, second_dpo, on_commit):
    today = timezone.localdate()
    overdue = receive(dpo, customer=customer, received_on=today - datetime.timedelta(days=45))
    # 28 days ago plus one calendar month is today to 3 days ahead, then at most 4 days of holidays.
    soon = receive(dpo, customer=customer, kind=Kind.ERASURE, received_on=today - datetime.timedelta(days=28))
    later = receive(dpo, customer=customer, kind=Kind.PORTABILITY)
    held = receive(
        dpo, customer=customer, kind=Kind.RECTIFICATION, received_on=today - datetime.timedelta(days=60)
    )
    privacy_request_attest_identity(privacy_request=held, actor=dpo, reason="Known")
    privacy_request_start(privacy_request=held, actor=dpo)
    privacy_request_hold(privacy_request=held, actor=dpo, reason="Which line?")
    assert overdue.due_on and soon.due_on and later.due_on
    assert overdue.due_on < today <= soon.due_on <= today + datetime.timedelta(days=7) < later.due_on

    with on_commit():
        assert send_deadline_reminders.delay().get() == 2
    assert sorted(message.to[0] for message in mail.outbox) == sorted([dpo.email, second_dpo.email])
    body = mail.outbox[0].body
    overdue_part, soon_part = body.split("Due within 7 days")
    assert overdue.reference in overdue_part and soon.reference not in overdue_part
    assert soon.reference in soon_part
    assert later.reference not in body and held.reference not in body  # clock stopped while on hold
    assert mail.outbox[0].subject == "Privacy requests: 1 overdue, 1 due within 7 days"
    run = ReminderRun.objects.get()
    assert (run.overdue, run.due_soon, run.recipients) == (1, 1, 2)

    with on_commit():
        assert send_deadline_reminders.delay().get() == 0
    assert len(mail.outbox) == 2


def test_deadline_helpers_agree_with_the_stored_due_date(customer, dpo, today):
    today(D(2027, 2, 26))
    request = receive(dpo, customer=customer)
    assert request.due_on == deadlines.statutory_deadline(clock_started_on=D(2027, 2, 26)) == D(2027, 3, 30)


# Rectification through the normal edit screens --------------------------------------------------


def test_a_correction_naming_the_request_is_recorded_against_it_with_its_history(client, customer, dpo):
    contact = Contact.objects.get(customer=customer)
    old_email = contact.email
    request = receive(dpo, contact=contact, kind=Kind.RECTIFICATION, details="My email is wrong")
    other_customers_request = receive(dpo, customer=CustomerFactory(partner=customer.partner))
    client.force_login(dpo)

    response = client.post(
        reverse("accounts:contact_edit", args=[customer.reference, contact.pk]),
        {
            "name": contact.name,
            "role": contact.role,
            "email": "corrected@example.com",
            "phone": contact.phone,
            "reason": f"{request.reference} and {other_customers_request.reference}: email corrected",
        },
    )

    assert response.status_code == 302
    event = request.events.get(action="rectified")
    assert event.actor == dpo and "email" in event.reason and "corrected@" not in event.reason
    history = contact.history.get(history_id=int(event.reason.rsplit(" ", 1)[1]))
    assert history.email == "corrected@example.com" and history.prev_record.email == old_email
    assert not other_customers_request.events.filter(action="rectified").exists(), "only its own customer"


def test_completing_a_portability_request_builds_the_export_for_the_portal(
    customer, dpo, second_dpo, on_commit, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path)
    request = _approved(receive(dpo, customer=customer, kind=Kind.PORTABILITY), dpo, second_dpo)
    with on_commit():
        privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Export sent")
    export = DataExport.objects.get(customer=customer)
    assert export.request_reference == request.reference
    assert export.status == DataExport.Status.READY and export.storage_path().is_file()


def test_lifting_a_restriction_does_not_suspend_a_customer_who_paid_since_the_suspension_was_held(
    customer, dpo, second_dpo, agent, on_commit, clock
):
    """Paid and lifted on the same day, before the daily dunning run: the lift runs the customer's
    dunning first, which withdraws the held suspension instead of letting the lift release it."""
    from decimal import Decimal

    from accounts.models import ProvisioningOrder
    from billing.models import DunningAction, Payment
    from billing.services.payments import payment_record
    from billing.tasks import dunning_daily
    from tests.billing.factories import billing_profile, issued_invoice

    billing_profile(customer.partner)
    issued_invoice(customer, "100.00", issued=datetime.date(2026, 9, 1))  # due 15 September
    request = _approved(receive(dpo, customer=customer, kind=Kind.RESTRICTION), dpo, second_dpo)
    privacy_request_complete(privacy_request=request, actor=second_dpo, reason="Processing restricted")
    with on_commit():
        dunning_daily()  # 76 days overdue: every step held, the suspension ordered and held
    order = ProvisioningOrder.objects.get(customer=customer)
    assert order.status == ProvisioningOrder.Status.HELD

    payment_record(
        customer=customer,
        method=Payment.Method.CARD,
        amount=Decimal("120.00"),
        received_on=timezone.localdate(),
        actor=agent,
    )
    with on_commit():
        privacy_request_lift_restriction(privacy_request=request, actor=dpo, reason="Accuracy confirmed")

    order.refresh_from_db()
    assert order.status == ProvisioningOrder.Status.WITHDRAWN
    assert set(
        DunningAction.objects.filter(customer=customer).values_list("released_outcome", flat=True)
    ) == {DunningAction.Outcome.SKIPPED_PAID}
    assert [m.subject for m in mail.outbox if "overdue" in m.subject] == []
