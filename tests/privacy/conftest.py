import pytest

from accounts.models import Role
from privacy.website import services


@pytest.fixture
def dpo(make_user):
    return make_user(Role.DATA_PROTECTION_OFFICER)


@pytest.fixture
def notice(dpo):
    draft = services.privacy_notice_create(
        title="How we use your data",
        summary="We use what you send us only to answer you.",
        body="First paragraph.\n\nSecond paragraph.",
        actor=dpo,
    )
    return services.privacy_notice_publish(notice=draft, actor=dpo)


@pytest.fixture(autouse=True)
def _private_media(settings, tmp_path):
    """Uploaded CVs land in a throwaway MEDIA_ROOT."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"
