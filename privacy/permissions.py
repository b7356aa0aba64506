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

    @property
    def codename(self) -> str:
        return self.value.split(".", 1)[1]
