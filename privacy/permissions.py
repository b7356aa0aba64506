"""The privacy app's permissions, named once. Role groups get them through migrations."""

from enum import StrEnum


class PrivacyPermission(StrEnum):
    VIEW_DATA_MAP = "privacy.view_data_map"
    PREVIEW_ERASURE = "privacy.preview_erasure"
    ERASE_CUSTOMER = "privacy.erase_customer"

    @property
    def codename(self) -> str:
        return self.value.split(".", 1)[1]
