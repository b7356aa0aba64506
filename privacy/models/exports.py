"""Data portability exports: one zip of a customer's data, kept for a short while, then deleted."""

import datetime
import uuid
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from accounts.models import Customer
from fusion_site.models import TimeStampedModel

# The erasure engine removes a customer's exports by this directory; keep the layout in one place.
EXPORTS_DIRECTORY = "exports"


def export_directory_of(customer_id: int) -> Path:
    """MEDIA_ROOT/exports/<customer id>/: private storage, never under a static or public directory."""
    return Path(settings.MEDIA_ROOT) / EXPORTS_DIRECTORY / str(customer_id)


class DataExport(TimeStampedModel):
    """One portability export of a customer's data (Article 20): requested, built by a task, downloaded
    through short-lived signed links, and deleted when it expires."""

    class Status(models.TextChoices):
        PENDING = "pending", "Being prepared"
        READY = "ready", "Ready to download"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired (file deleted)"

    # Names the file and the download links, so neither reveals how many exports exist.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="data_exports")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    request_reference = models.CharField(
        max_length=64, blank=True, help_text="The privacy request this export answers, if any."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Relative to MEDIA_ROOT; empty until the file exists and again once it is deleted.
    file_path = models.CharField(max_length=255, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    row_counts = models.JSONField(default=dict, blank=True, help_text="Rows written per category.")
    completed_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    failure_reason = models.CharField(max_length=200, blank=True)
    download_count = models.PositiveIntegerField(default=0)
    last_downloaded_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="dataexport_ready_has_file", condition=~Q(status="ready") | ~Q(file_path="")
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "created_at"], name="dataexport_customer_created"),
            models.Index(fields=["status", "expires_at"], name="dataexport_status_expires"),
        ]

    def __str__(self) -> str:
        return f"Data export {self.public_id} of customer {self.customer_id}"

    @property
    def file_name(self) -> str:
        return f"{self.public_id}.zip"

    @property
    def download_name(self) -> str:
        """What the browser saves it as: the account reference and the day it was made."""
        return f"fusion-data-{Customer.REFERENCE_PREFIX}{self.customer_id:06d}-{self.created_at:%Y%m%d}.zip"

    def storage_path(self) -> Path:
        return export_directory_of(self.customer_id) / self.file_name

    def is_downloadable(self, *, now: datetime.datetime | None = None) -> bool:
        return self.status == self.Status.READY and self.expires_at > (now or timezone.now())
