"""The privacy app's permissions, named once. Role groups get them through migrations."""

from enum import StrEnum


class PrivacyPermission(StrEnum):
    """Every privacy permission, by its full name, as ``user.has_perm`` takes it."""

    VIEW = "privacy.view_privacyrequest"
    ADD = "privacy.add_privacyrequest"
    CHANGE = "privacy.change_privacyrequest"
    APPROVE = "privacy.approve_privacyrequest"
    VIEW_DATA_MAP = "privacy.view_data_map"
    PREVIEW_ERASURE = "privacy.preview_erasure"
    ERASE_CUSTOMER = "privacy.erase_customer"
    VIEW_PROCESSOR = "privacy.view_processor"
    ADD_PROCESSOR = "privacy.add_processor"
    CHANGE_PROCESSOR = "privacy.change_processor"
    VIEW_ASSESSMENT = "privacy.view_impactassessment"
    ADD_ASSESSMENT = "privacy.add_impactassessment"
    CHANGE_ASSESSMENT = "privacy.change_impactassessment"
    SIGN_OFF_ASSESSMENT = "privacy.signoff_impactassessment"

    @property
    def codename(self) -> str:
        return self.value.split(".", 1)[1]
