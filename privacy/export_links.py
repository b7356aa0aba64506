"""Download links of data exports: signed, naming the export, and valid until a time they carry.

A link is good for PRIVACY_EXPORT_LINK_MAX_AGE seconds and never beyond the export's own expiry. It
is not a bearer token: the download also needs a login that may see the customer. The expiry is checked
against a ``now`` the caller may pass, so it can be tested without touching the clock.
"""

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.utils import timezone

from privacy.models import DataExport

DOWNLOAD_SALT = "privacy.data-export-download"


class InvalidDownloadLink(Exception):
    """The link was not made by this site (or was altered)."""


@dataclass(frozen=True)
class DownloadLink:
    export_public_id: uuid.UUID
    valid_until: datetime.datetime

    def has_expired(self, *, now: datetime.datetime | None = None) -> bool:
        return (now or timezone.now()) >= self.valid_until


def download_token(export: DataExport, *, now: datetime.datetime | None = None) -> str:
    now = now or timezone.now()
    until = min(now + datetime.timedelta(seconds=settings.PRIVACY_EXPORT_LINK_MAX_AGE), export.expires_at)
    payload = {"export": str(export.public_id), "until": until.timestamp()}
    return signing.dumps(payload, salt=DOWNLOAD_SALT)


def read_download_token(token: str) -> DownloadLink:
    try:
        payload = signing.loads(token, salt=DOWNLOAD_SALT)
        return DownloadLink(
            export_public_id=uuid.UUID(payload["export"]),
            valid_until=datetime.datetime.fromtimestamp(float(payload["until"]), tz=datetime.UTC),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidDownloadLink from exc
