"""Versioned privacy notices: published by the DPO, never edited, earlier versions reachable."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from accounts.models import Role
from privacy.models import PrivacyNotice
from privacy.website import services

pytestmark = pytest.mark.django_db


def test_current_notice_is_shown_with_its_last_modified_date_and_earlier_versions_stay_reachable(
    client, notice, dpo
):
    second = services.privacy_notice_publish(
        notice=services.privacy_notice_create(
            title="Version two", summary="S2", body="Changed words.", actor=dpo
        ),
        actor=dpo,
    )
    page = client.get(reverse("website:privacy_notice")).content.decode()
    assert "Version two" in page and "Changed words." in page
    assert f"Version {second.version}, published" in page
    assert "Last modified" in page
    assert reverse("website:privacy_notice_version", args=[notice.version]) in page
    earlier = client.get(reverse("website:privacy_notice_version", args=[notice.version])).content.decode()
    assert "<p>First paragraph.</p>" in earlier
    assert "This is an earlier version" in earlier


def test_a_draft_is_not_public(client, notice, dpo):
    draft = services.privacy_notice_create(title="Secret draft", summary="s", body="b", actor=dpo)
    assert client.get(reverse("website:privacy_notice_version", args=[draft.version])).status_code == 404
    assert "Secret draft" not in client.get(reverse("website:privacy_notice")).content.decode()


def test_a_published_notice_cannot_be_edited_by_service_model_or_staff_page(client, notice, dpo):
    with pytest.raises(ValidationError):
        services.privacy_notice_update_draft(notice=notice, actor=dpo, body="sneaky")
    notice.body = "sneaky"
    with pytest.raises(ValidationError):
        notice.save()
    client.force_login(dpo)
    client.post(
        reverse("website_staff:notice_edit", args=[notice.pk]), {"title": "t", "summary": "s", "body": "x"}
    )
    notice.refresh_from_db()
    assert notice.body == "First paragraph.\n\nSecond paragraph."


def test_dpo_drafts_and_publishes_through_the_staff_pages(client, notice, dpo):
    client.force_login(dpo)
    new_page = client.get(reverse("website_staff:notice_new")).content.decode()
    assert "First paragraph." in new_page  # a new version starts from the words in force
    client.post(reverse("website_staff:notice_new"), {"title": "v2", "summary": "s", "body": "New body"})
    draft = PrivacyNotice.objects.get(version=notice.version + 1)
    assert draft.status == PrivacyNotice.Status.DRAFT
    client.post(reverse("website_staff:notice_publish", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.is_published and draft.published_by == dpo
    assert draft.history.first().history_user == dpo


def test_only_the_dpo_may_publish(client, notice, make_user):
    admin_user = make_user(Role.ADMINISTRATOR)
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    draft = services.privacy_notice_create(title="v2", summary="s", body="b", actor=dpo)
    client.force_login(admin_user)
    assert client.post(reverse("website_staff:notice_publish", args=[draft.pk])).status_code == 403
    with pytest.raises(ValidationError):
        services.privacy_notice_publish(notice=draft, actor=admin_user)
    draft.refresh_from_db()
    assert not draft.is_published


def test_admin_publish_action_and_read_only_published_notice(client, notice, make_user):
    dpo = make_user(Role.DATA_PROTECTION_OFFICER)
    client.force_login(dpo)
    client.post(
        reverse("admin:privacy_privacynotice_add"), {"title": "From admin", "summary": "s", "body": "b"}
    )
    draft = PrivacyNotice.objects.get(title="From admin")
    assert draft.history.first().history_user == dpo
    client.post(
        reverse("admin:privacy_privacynotice_changelist"),
        {"action": "publish", "_selected_action": [draft.pk]},
    )
    draft.refresh_from_db()
    assert draft.is_published
    change_page = client.get(reverse("admin:privacy_privacynotice_change", args=[draft.pk])).content.decode()
    assert 'name="body"' not in change_page


def test_seed_command_publishes_the_first_notice_once(db, make_user):
    make_user(Role.DATA_PROTECTION_OFFICER)
    call_command("seed_privacy_demo")
    call_command("seed_privacy_demo")
    assert PrivacyNotice.objects.filter(status=PrivacyNotice.Status.PUBLISHED).count() == 1
